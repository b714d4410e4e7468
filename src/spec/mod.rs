//! Pod + container + image config → OCI runtime spec (config.json) for each container.
//!
//! [`container_spec`] is the one entry point: it applies Kubernetes' rules (command/args
//! over ENTRYPOINT/CMD, env and the downward API, `$(VAR)` expansion, user, resources)
//! and containerd's CRI security defaults. Volumes are prepared separately, once per
//! pod ([`volumes::prepare_volumes`]); their per-container mounts come in the input.
pub mod env;
pub mod fsutil;
pub mod podfiles;
pub mod resources;
pub mod sandbox;
pub mod seccomp;
pub mod security;
pub mod user;
pub mod volumes;

pub use env::{EnvContext, NodeAllocatable};
pub use resources::{
    container_cgroup_path, container_resources, pod_cgroup_path, pod_resources, CgroupResources,
};
pub use sandbox::{sandbox_spec, SandboxSpecInput};
pub use volumes::{cleanup_volumes, prepare_volumes, PreparedVolumes, ResolvedMount, VolumeError};

use k8s_openapi::api::core::v1::Container;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxSeccomp, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a container's spec cannot be made. Messages follow kubelet/containerd where a
/// user would see them (CreateContainerConfigError and friends).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound { name: String },
    #[error("secret {name:?} not found")]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("unsupported fieldPath {path:?}")]
    UnsupportedFieldPath { path: String },
    #[error("resourceFieldRef {resource:?}: {reason}")]
    ResourceField { resource: String, reason: String },
    #[error("failed to generate container spec for {container:?}: no command specified")]
    NoCommand { container: String },
    #[error("{message}")]
    RunAsNonRoot { message: String },
    #[error("{reason}")]
    User { reason: String },
    #[error("unknown capability {name:?} in securityContext.capabilities")]
    UnknownCapability { name: String },
    #[error("{reason}")]
    Seccomp { reason: String },
    #[error("forbidden sysctl: {reason}")]
    ForbiddenSysctl { reason: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("image StopSignal {name:?} is not a signal")]
    StopSignal { name: String },
    #[error("building the OCI spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// The sandbox's namespaces a container joins, as paths (e.g. `/proc/<pause pid>/ns/net`).
/// `None` for net/ipc/uts means a fresh namespace (no sandbox); host* pod settings win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pause process' PID namespace, joined when shareProcessNamespace is true.
    pub pid: Option<PathBuf>,
    /// The pod's own user namespace (hostUsers: false), joined by every container.
    pub user: Option<PodUserNamespace>,
}

/// A pod's user namespace: container ids 0..size are host ids host_base.., for uids and
/// gids alike (kubelet's single mapping per pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodIdMapping {
    pub host_base: u32,
    pub size: u32,
}

impl PodIdMapping {
    /// As OCI linux.uidMappings / gidMappings (and mount-level mappings).
    pub fn to_oci(self) -> Result<Vec<oci_spec::runtime::LinuxIdMapping>, SpecError> {
        Ok(vec![oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(self.host_base)
            .size(self.size)
            .build()?])
    }
}

/// The pod user namespace a container joins: where it is, and what it maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUserNamespace {
    /// e.g. `/proc/<pause pid>/ns/user`.
    pub path: PathBuf,
    pub mapping: PodIdMapping,
}

/// Per-pod files bind-mounted into every container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFiles {
    pub hosts: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    /// The sandbox's /dev/shm (shared by the pod's containers); a private tmpfs if None.
    pub shm: Option<PathBuf>,
}

/// Everything [`container_spec`] needs to know about one container of one pod.
#[derive(Debug, Clone)]
pub struct ContainerSpecInput<'a> {
    /// The pod (defaulted), its ConfigMaps/Secrets, IPs, node name and allocatable.
    pub ctx: EnvContext<'a>,
    /// The container: regular, init or sidecar.
    pub container: &'a Container,
    pub image_config: &'a ImageConfiguration,
    /// The container's root filesystem (the overlay mount point).
    pub rootfs: &'a Path,
    pub namespaces: SandboxNamespaces,
    /// e.g. from [`container_cgroup_path`].
    pub cgroups_path: String,
    /// The container's volume mounts, from [`PreparedVolumes::mounts_for`].
    pub mounts: &'a [ResolvedMount],
    pub pod_files: PodFiles,
    /// For oom_score_adj of Burstable containers.
    pub node_memory_capacity: u64,
    /// Where Localhost seccomp profiles live (kubelet's /var/lib/kubelet/seccomp).
    pub seccomp_profile_root: Option<&'a Path>,
}

/// containerd's PATH for images that set none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

fn bind(dest: &str, source: &Path, read_only: bool) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec![
            "rbind".to_string(),
            "rprivate".to_string(),
            if read_only { "ro" } else { "rw" }.to_string(),
        ])
        .build()?)
}

/// Makes a bind mount idmapped with `mapping` (runtime-spec: `idmap` and the mount's
/// uidMappings/gidMappings).
fn idmapped(m: &mut Mount, mapping: PodIdMapping) -> Result<(), SpecError> {
    let mut opts = m.options().clone().unwrap_or_default();
    opts.push("idmap".into());
    m.set_options(Some(opts));
    m.set_uid_mappings(Some(mapping.to_oci()?));
    m.set_gid_mappings(Some(mapping.to_oci()?));
    Ok(())
}

/// The filesystems every container gets: /proc, /dev, /dev/pts, /dev/mqueue, /sys and
/// its cgroups (read-only unless `sys` is "rw").
fn standard_mounts(sys_ro: &str) -> Result<Vec<Mount>, SpecError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        )?,
    ])
}

/// The pod's hostname as the sandbox sets it: spec.hostname or the pod name, ≤ 63 chars.
pub fn pod_hostname(ctx: &EnvContext<'_>) -> String {
    let spec = ctx.pod.spec.as_ref();
    if spec.and_then(|s| s.host_network) == Some(true) {
        return ctx.node_name.to_string();
    }
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| ctx.pod.metadata.name.clone())
        .unwrap_or_default();
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

fn image_list(v: &Option<Vec<String>>) -> Vec<String> {
    v.clone().unwrap_or_default()
}

/// The signal that asks the container to stop: the image's StopSignal ("SIGQUIT", "QUIT"
/// or "3"), SIGTERM when it names none.
pub fn stop_signal(
    image_config: &ImageConfiguration,
) -> Result<nix::sys::signal::Signal, SpecError> {
    use nix::sys::signal::Signal;
    let Some(name) = image_config
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().clone())
        .filter(|s| !s.is_empty())
    else {
        return Ok(Signal::SIGTERM);
    };
    let upper = name.trim().to_ascii_uppercase();
    let parsed = match upper.parse::<i32>() {
        Ok(n) => Signal::try_from(n).ok(),
        Err(_) => {
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            full.parse::<Signal>().ok()
        }
    };
    parsed.ok_or(SpecError::StopSignal { name })
}

/// `wanted` where this process may give it: lowering oom_score_adj below our own needs
/// CAP_SYS_RESOURCE, which some hosts (containers, sandboxes) withhold even from root;
/// there the value stops at our own rather than failing the container's start.
pub fn attainable_oom_score_adj(wanted: i32) -> i32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    const CAP_SYS_RESOURCE: u32 = 24;
    if cap_eff & (1u64 << CAP_SYS_RESOURCE) != 0 {
        return wanted;
    }
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    wanted.max(own)
}

/// Builds the OCI runtime spec of one pod container.
pub fn container_spec(input: &ContainerSpecInput<'_>) -> Result<Spec, SpecError> {
    let pod = input.ctx.pod;
    let c = input.container;
    let csc = c.security_context.clone().unwrap_or_default();
    let privileged = csc.privileged == Some(true);
    let rootfs_ro = csc.read_only_root_filesystem == Some(true);
    let (process, seccomp) = container_process(input, privileged)?;
    let mounts = container_mounts(input, privileged, rootfs_ro)?;

    let mut res = resources::container_resources(c).to_oci();
    res.set_devices(Some(security::device_rules(privileged)));
    let unmasked = privileged || csc.proc_mount.as_deref() == Some("Unmasked");
    let to_vec = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let sysctl: HashMap<String, String> = security::pod_sysctls(pod)?;
    let mut lb = LinuxBuilder::default()
        .namespaces(container_namespaces(input)?)
        .resources(res)
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .masked_paths(if unmasked {
            vec![]
        } else {
            to_vec(security::MASKED_PATHS)
        })
        .readonly_paths(if unmasked {
            vec![]
        } else {
            to_vec(security::READONLY_PATHS)
        })
        .rootfs_propagation("rprivate");
    if !sysctl.is_empty() {
        lb = lb.sysctl(sysctl);
    }
    if privileged {
        lb = lb.devices(security::host_devices());
    }
    if let Some(s) = seccomp {
        lb = lb.seccomp(s);
    }

    let mut annotations = HashMap::new();
    let meta = &pod.metadata;
    for (k, v) in [
        ("io.kubernetes.pod.name", meta.name.clone()),
        ("io.kubernetes.pod.namespace", meta.namespace.clone()),
        ("io.kubernetes.pod.uid", meta.uid.clone()),
        ("io.kubernetes.container.name", Some(c.name.clone())),
    ] {
        annotations.insert(k.to_string(), v.unwrap_or_default());
    }

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(input.rootfs)
                .readonly(rootfs_ro)
                .build()?,
        )
        .process(process)
        .mounts(mounts)
        .linux(lb.build()?)
        .annotations(annotations)
        .build()?;
    without_library_defaults(&mut spec);
    Ok(spec)
}

/// The container's process (args, env: defaults, HOSTNAME, the image's, then the
/// container's, later wins; user, cwd, capabilities, noNewPrivileges, oomScoreAdj) and
/// its seccomp profile.
fn container_process(
    input: &ContainerSpecInput<'_>,
    privileged: bool,
) -> Result<(oci_spec::runtime::Process, Option<LinuxSeccomp>), SpecError> {
    let ctx = &input.ctx;
    let pod = ctx.pod;
    let c = input.container;
    let img = input.image_config.config().clone().unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let container_env = env::container_env(ctx, c)?;
    let mut full_env = env::EnvList::default();
    full_env.set("PATH", DEFAULT_PATH.into());
    full_env.set("HOSTNAME", pod_hostname(ctx));
    for kv in image_list(img.env()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        full_env.set(k, v.to_string());
    }
    for (k, v) in container_env.iter() {
        full_env.set(k, v.clone());
    }
    if c.tty == Some(true) && full_env.get("TERM").is_none() {
        full_env.set("TERM", "xterm".into());
    }

    let args = env::container_args(
        c,
        &image_list(img.entrypoint()),
        &image_list(img.cmd()),
        &container_env,
    )?;
    let user = user::resolve_user(input.rootfs, pod, c, img.user().as_deref().unwrap_or(""))?;
    if full_env.get("HOME").is_none() {
        full_env.set("HOME", user.home.clone().unwrap_or_else(|| "/".into()));
    }
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| img.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    let cap_names = security::container_capabilities(c)?;
    let seccomp =
        seccomp::container_seccomp(pod, c, &cap_names, privileged, input.seccomp_profile_root)?;
    let caps = security::to_oci_capabilities(&cap_names);
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()?;
    let mut ub = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        ub = ub.additional_gids(user.additional_gids.clone());
    }
    let process = ProcessBuilder::default()
        .terminal(c.tty == Some(true))
        .user(ub.build()?)
        .args(args)
        .env(full_env.to_oci())
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(csc.allow_privilege_escalation == Some(false))
        .oom_score_adj(attainable_oom_score_adj(crate::manifest::oom_score_adj(
            pod,
            c,
            input.node_memory_capacity,
        )))
        .build()?;
    Ok((process, seccomp))
}

/// Mounts: the standard filesystems, the pod's files, then volumes (shallowest first);
/// a volume at the same destination replaces the default.
fn container_mounts(
    input: &ContainerSpecInput<'_>,
    privileged: bool,
    rootfs_ro: bool,
) -> Result<Vec<Mount>, SpecError> {
    let sys_ro = if privileged { "rw" } else { "ro" };
    let mut mounts = standard_mounts(sys_ro)?;
    match &input.pod_files.shm {
        Some(p) => mounts.push(bind("/dev/shm", p, false)?),
        None => mounts.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?),
    }
    for (dest, file) in [
        ("/etc/hosts", &input.pod_files.hosts),
        ("/etc/hostname", &input.pod_files.hostname),
        ("/etc/resolv.conf", &input.pod_files.resolv_conf),
    ] {
        if let Some(f) = file {
            mounts.push(bind(dest, f, rootfs_ro)?);
        }
    }
    let mut vol: Vec<&ResolvedMount> = input.mounts.iter().collect();
    vol.sort_by_key(|m| Path::new(&m.destination).components().count());
    for m in vol {
        let dest = Path::new(&m.destination);
        mounts.retain(|existing| existing.destination() != dest);
        let mut b = bind(&m.destination, &m.source, m.read_only)?;
        if let Some(u) = input.namespaces.user.as_ref() {
            // Volumes appear with the pod's ids: an idmapped bind with the pod's own
            // mapping (what kubelet asks of the runtime in the CRI Mount), no chown.
            idmapped(&mut b, u.mapping)?;
        }
        mounts.push(b);
    }
    Ok(mounts)
}

/// Namespaces: a new mount namespace; pid new unless shared with the pod or the host;
/// net/ipc/uts joined from the sandbox unless the pod uses the host's.
fn container_namespaces(input: &ContainerSpecInput<'_>) -> Result<Vec<LinuxNamespace>, SpecError> {
    let spec = input.ctx.pod.spec.clone().unwrap_or_default();
    let ns =
        |typ: LinuxNamespaceType, path: Option<&PathBuf>| -> Result<LinuxNamespace, SpecError> {
            let mut b = LinuxNamespaceBuilder::default().typ(typ);
            if let Some(p) = path {
                b = b.path(p.clone());
            }
            Ok(b.build()?)
        };
    let mut namespaces = vec![ns(LinuxNamespaceType::Mount, None)?];
    if let Some(u) = input.namespaces.user.as_ref() {
        namespaces.push(ns(LinuxNamespaceType::User, Some(&u.path))?);
    }
    if spec.host_pid != Some(true) {
        let share = spec.share_process_namespace == Some(true);
        namespaces.push(ns(
            LinuxNamespaceType::Pid,
            if share {
                input.namespaces.pid.as_ref()
            } else {
                None
            },
        )?);
    }
    if spec.host_ipc != Some(true) {
        namespaces.push(ns(LinuxNamespaceType::Ipc, input.namespaces.ipc.as_ref())?);
    }
    if spec.host_network != Some(true) {
        namespaces.push(ns(LinuxNamespaceType::Uts, input.namespaces.uts.as_ref())?);
        namespaces.push(ns(
            LinuxNamespaceType::Network,
            input.namespaces.net.as_ref(),
        )?);
    }
    Ok(namespaces)
}

/// oci-spec's builders start from its own defaults, which are not ours: a hostname
/// ("youki") that a runtime would set in the pod's shared UTS namespace, and a 1024
/// RLIMIT_NOFILE. The sandbox names the host; containers inherit the runtime's rlimits.
fn without_library_defaults(spec: &mut Spec) {
    spec.set_hostname(None);
    if let Some(p) = spec.process_mut() {
        p.set_rlimits(None);
    }
}

#[cfg(test)]
mod tests;
