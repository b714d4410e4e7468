//! The pod sandbox: the pause container holding the pod's network, IPC and UTS (and, with
//! shareProcessNamespace, PID) namespaces, the pod cgroup with its pod-level limits, the
//! shared /dev/shm, and the per-pod /etc/hosts, /etc/hostname and /etc/resolv.conf.
use super::worker::SuperviseArgs;
use crate::runtime::{CreateOptions, Runtime};
use crate::spec::{PodFiles, PodIdMapping, PodUserNamespace, SandboxNamespaces};
use k8s_openapi::api::core::v1::Pod;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    pub pid: i32,
    pub exited: bool,
    pub files: PodFiles,
    pub pod_ip: Option<String>,
    host_network: bool,
    host_ipc: bool,
    share_pid: bool,
    shm: Option<PathBuf>,
    pod_cgroup: String,
    network: Option<crate::network::PodNetwork>,
    /// hostUsers: false: the pod's id range, leased from the node range.
    pub userns: Option<PodIdMapping>,
    data_dir: PathBuf,
    pod_dir: PathBuf,
}

/// Brings the loopback interface of the network namespace at `ns` up (a fresh network
/// namespace starts with it down), by entering it briefly on this thread.
pub fn loopback_up(ns: &Path) -> std::io::Result<()> {
    crate::network::in_netns(ns, || {
        // SAFETY: a plain datagram socket for the interface ioctls; closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: ifreq is plain data; zeroed is a valid initial value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        // SAFETY: valid socket and ifreq for SIOCGIFFLAGS / SIOCSIFFLAGS.
        let res = unsafe {
            if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
                -1
            } else {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(sock, libc::SIOCSIFFLAGS, &req)
            }
        };
        let err = std::io::Error::last_os_error();
        // SAFETY: closing the socket we opened.
        unsafe { libc::close(sock) };
        if res < 0 {
            Err(err)
        } else {
            Ok(())
        }
    })
}

fn write_file(path: &Path, content: &str) -> Result<(), String> {
    crate::util::write_atomic(path, content.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// /etc/resolv.conf per dnsPolicy. Without a cluster DNS, ClusterFirst falls back to the
/// node's resolver, as kubelet does when no clusterDNS is configured.
pub fn resolv_conf(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut nameservers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    if policy != "None" {
        for line in host.lines() {
            let mut parts = line.split_whitespace();
            match parts.next() {
                Some("nameserver") => nameservers.extend(parts.map(String::from)),
                Some("search") => searches = parts.map(String::from).collect(),
                Some("options") => options.extend(parts.map(String::from)),
                _ => {}
            }
        }
    }
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        nameservers.extend(cfg.nameservers.clone().unwrap_or_default());
        searches.extend(cfg.searches.clone().unwrap_or_default());
        for o in cfg.options.clone().unwrap_or_default() {
            let name = o.name.clone().unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(match o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    nameservers.dedup();
    nameservers.truncate(3);
    let mut out = String::new();
    for n in &nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !searches.is_empty() {
        searches.dedup();
        searches.truncate(32);
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The pause container's OCI id.
fn pause_id(pod: &Pod) -> String {
    let uid: String = pod
        .metadata
        .uid
        .clone()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("{uid}-pause")
}

/// The sandbox's hostname: the node's with hostNetwork, else the pod's.
fn sandbox_hostname(pod: &Pod, host_network: bool) -> String {
    if host_network {
        return nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    crate::spec::pod_hostname(&crate::spec::EnvContext {
        pod,
        config_maps: &[],
        secrets: &[],
        pod_ips: &[],
        host_ips: &[],
        node_name: "",
        node_allocatable: Default::default(),
    })
}

/// hostUsers: false: a range of the node's ids for this pod, released by destroy (or by
/// create, if the sandbox cannot be made).
fn lease_userns(args: &SuperviseArgs, wanted: bool) -> Result<Option<PodIdMapping>, String> {
    if !wanted {
        return Ok(None);
    }
    crate::userns::host_support()?;
    let leases =
        crate::userns::UsernsLeases::for_host(&args.data_dir).map_err(|e| e.to_string())?;
    let base = leases.allocate(&args.pod_dir).map_err(|e| e.to_string())?;
    Ok(Some(PodIdMapping {
        host_base: base,
        size: crate::userns::IDS_PER_POD,
    }))
}

/// The id range this pod already holds (hostUsers: false), from the node's leases.
fn leased_userns(args: &SuperviseArgs) -> Option<PodIdMapping> {
    let leases = crate::userns::UsernsLeases::for_host(&args.data_dir).ok()?;
    let base = leases
        .leases()
        .into_iter()
        .find(|(_, owner)| owner == &args.pod_dir)?
        .0;
    Some(PodIdMapping {
        host_base: base,
        size: crate::userns::IDS_PER_POD,
    })
}

impl Sandbox {
    /// The sandbox a dead supervisor left running: its pause (the same process, by
    /// start time), its pod files and /dev/shm. None when pause is gone. The network is
    /// left to the directory sweep at teardown (network::cleanup_pod_dir).
    pub fn adopt(runtime: &Runtime, args: &SuperviseArgs, pod: &Pod) -> Option<Sandbox> {
        let spec = pod.spec.clone().unwrap_or_default();
        let id = pause_id(pod);
        let state = runtime.record(&id).ok()?;
        if !state.init_alive() {
            return None;
        }
        let host_ipc = spec.host_ipc.unwrap_or(false);
        let userns = match spec.host_users == Some(false) {
            true => Some(leased_userns(args)?),
            false => None,
        };
        let etc = args.pod_dir.join("etc");
        let shm = (!host_ipc).then(|| args.pod_dir.join("shm"));
        let status: Option<k8s_openapi::api::core::v1::PodStatus> =
            super::store::read_json(&args.pod_dir.join(super::store::STATUS_FILE)).ok();
        Some(Sandbox {
            id,
            pid: state.pid,
            exited: false,
            files: PodFiles {
                hosts: Some(etc.join("hosts")),
                hostname: Some(etc.join("hostname")),
                resolv_conf: Some(etc.join("resolv.conf")),
                shm: shm.clone(),
            },
            pod_ip: status.and_then(|s| s.pod_ip),
            host_network: spec.host_network.unwrap_or(false),
            host_ipc,
            share_pid: spec.share_process_namespace.unwrap_or(false)
                && !spec.host_pid.unwrap_or(false),
            shm,
            pod_cgroup: crate::spec::resources::pod_cgroup_path(pod),
            network: None,
            userns,
            data_dir: args.data_dir.clone(),
            pod_dir: args.pod_dir.clone(),
        })
    }

    /// Starts the pause container and prepares the pod files; undoes itself on failure.
    pub fn create(runtime: &Runtime, args: &SuperviseArgs, pod: &Pod) -> Result<Sandbox, String> {
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let host_ipc = spec.host_ipc.unwrap_or(false);
        let host_pid = spec.host_pid.unwrap_or(false);
        let share_pid = spec.share_process_namespace.unwrap_or(false) && !host_pid;
        let id = pause_id(pod);
        let pause_root = args.root.join("pause").join("rootfs");
        super::pause::install(&pause_root)
            .map_err(|e| format!("installing pause in {}: {e}", pause_root.display()))?;
        let hostname = sandbox_hostname(pod, host_network);
        let pod_cgroup = crate::spec::resources::pod_cgroup_path(pod);
        let userns = lease_userns(args, spec.host_users == Some(false))?;
        let release_userns = || {
            if userns.is_some() {
                let _ = crate::userns::release_pod(&args.data_dir, &args.pod_dir);
            }
        };
        let config = crate::spec::sandbox_spec(&crate::spec::SandboxSpecInput {
            pod,
            rootfs: &pause_root,
            args: vec!["/pause".to_string()],
            cgroups_path: format!("{pod_cgroup}/{id}"),
            hostname: hostname.clone(),
            net_ns: None,
            userns,
        })
        .map_err(|e| {
            release_userns();
            e.to_string()
        })?;
        let bundle = args.pod_dir.join("sandbox");
        let written = std::fs::create_dir_all(&bundle)
            .map_err(|e| format!("{}: {e}", bundle.display()))
            .and_then(|()| serde_json::to_vec(&config).map_err(|e| e.to_string()))
            .and_then(|data| {
                write_file(&bundle.join("config.json"), &String::from_utf8_lossy(&data))
            });
        if let Err(e) = written {
            release_userns();
            return Err(e);
        }
        // Pod-level limits on the pod cgroup (the sum of its containers').
        let pod_res = crate::spec::resources::pod_resources(pod).to_oci();
        if let Err(e) = limit_pod_pids(&args.data_dir, &pod_cgroup) {
            release_userns();
            return Err(e);
        }
        if let Ok(cg) = crate::runtime::cgroups::open(&pod_cgroup) {
            // The pod cgroup exists only through its children; set limits once created.
            let _ = cg.set(&pod_res);
        }
        update_qos_tiers();
        // Until the Sandbox exists (its destroy undoes all), a failure undoes by hand: the
        // id lease and the pod cgroup made above (a sandbox refused for a bad sysctl or
        // memory limit left it in every hierarchy).
        let undo = || {
            release_userns();
            remove_pod_cgroup(&pod_cgroup);
        };
        let devnull = File::open("/dev/null").map_err(|e| {
            undo();
            format!("/dev/null: {e}")
        })?;
        let fd = devnull.as_fd().as_raw_fd();
        let opts = CreateOptions {
            stdin: Some(fd),
            stdout: Some(fd),
            stderr: Some(fd),
            ..Default::default()
        };
        let state = runtime.create(&id, &bundle, &opts).map_err(|e| {
            let _ = runtime.delete(&id, true);
            undo();
            e.to_string()
        })?;
        let mut sb = Sandbox {
            id: id.clone(),
            pid: state.pid,
            exited: false,
            files: PodFiles::default(),
            pod_ip: None,
            host_network,
            host_ipc,
            share_pid,
            shm: None,
            pod_cgroup: pod_cgroup.clone(),
            network: None,
            userns,
            data_dir: args.data_dir.clone(),
            pod_dir: args.pod_dir.clone(),
        };
        if let Err(e) = runtime.start(&id) {
            sb.destroy(runtime);
            return Err(e.to_string());
        }
        if let Ok(cg) = crate::runtime::cgroups::open(&pod_cgroup) {
            let _ = cg.set(&pod_res);
        }
        match sb.finish_setup(args, pod, &hostname) {
            Ok(()) => Ok(sb),
            Err(e) => {
                sb.destroy(runtime);
                Err(e)
            }
        }
    }

    fn finish_setup(
        &mut self,
        args: &SuperviseArgs,
        pod: &Pod,
        hostname: &str,
    ) -> Result<(), String> {
        if !self.host_network {
            let ns = self.ns_path("net");
            loopback_up(&ns).map_err(|e| format!("bringing up lo in {}: {e}", ns.display()))?;
            match crate::network::setup_pod(&args.data_dir, &args.pod_dir, pod, &ns) {
                Ok(net) => {
                    self.pod_ip = net.as_ref().map(|n| n.ip.clone());
                    self.network = net;
                }
                Err(e) => return Err(format!("pod network: {e}")),
            }
        } else {
            self.pod_ip = crate::network::host_ip();
        }
        let etc = args.pod_dir.join("etc");
        std::fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
        let hosts = etc.join("hosts");
        let hostname_file = etc.join("hostname");
        let resolv = etc.join("resolv.conf");
        if self.host_network {
            let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            write_file(&hosts, &host_hosts)?;
        } else {
            write_file(
                &hosts,
                &crate::spec::podfiles::hosts_file(
                    pod,
                    hostname,
                    &self.pod_ip.iter().cloned().collect::<Vec<_>>(),
                ),
            )?;
        }
        write_file(&hostname_file, &format!("{hostname}\n"))?;
        write_file(&resolv, &resolv_conf(pod))?;
        if let Some(m) = self.userns {
            // Per-pod files podrun made (not volume contents): the pod's root owns them,
            // as root owns them in a pod without a user namespace.
            for f in [&hosts, &hostname_file, &resolv] {
                std::os::unix::fs::chown(f, Some(m.host_base), Some(m.host_base))
                    .map_err(|e| format!("{}: {e}", f.display()))?;
            }
        }
        // One /dev/shm for the pod: its containers share the IPC namespace, so they share it.
        let shm = args.pod_dir.join("shm");
        if !self.host_ipc {
            std::fs::create_dir_all(&shm).map_err(|e| format!("{}: {e}", shm.display()))?;
            nix::mount::mount(
                Some("shm"),
                &shm,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID
                    | nix::mount::MsFlags::MS_NODEV
                    | nix::mount::MsFlags::MS_NOEXEC,
                Some("mode=1777,size=65536k"),
            )
            .map_err(|e| format!("mounting shm on {}: {e}", shm.display()))?;
            self.shm = Some(shm.clone());
        }
        self.files = PodFiles {
            hosts: Some(hosts),
            hostname: Some(hostname_file),
            resolv_conf: Some(resolv),
            shm: self.shm.clone(),
        };
        Ok(())
    }

    fn ns_path(&self, ns: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{ns}", self.pid))
    }

    /// The namespaces a container of this pod joins.
    pub fn namespaces(&self) -> SandboxNamespaces {
        SandboxNamespaces {
            net: (!self.host_network).then(|| self.ns_path("net")),
            ipc: (!self.host_ipc).then(|| self.ns_path("ipc")),
            uts: (!self.host_network).then(|| self.ns_path("uts")),
            pid: self.share_pid.then(|| self.ns_path("pid")),
            user: self.userns.map(|mapping| PodUserNamespace {
                path: self.ns_path("user"),
                mapping,
            }),
        }
    }

    /// Stops pause and removes everything the sandbox made.
    pub fn destroy(mut self, runtime: &Runtime) {
        if let Some(net) = self.network.take() {
            net.teardown();
        }
        let _ = runtime.kill(&self.id, nix::sys::signal::Signal::SIGKILL, true);
        let _ = runtime.delete(&self.id, true);
        if !self.exited {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        }
        if let Some(shm) = self.shm.take() {
            let _ = nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&shm);
        }
        if self.userns.is_some() {
            // After pause is gone: no process of the pod holds the range any more.
            if let Err(e) = crate::userns::release_pod(&self.data_dir, &self.pod_dir) {
                eprintln!("releasing the pod's user namespace range: {e}");
            }
        }
        remove_pod_cgroup(&self.pod_cgroup);
    }
}

/// Removes the pod cgroup, then its QoS parent when no other pod uses it.
fn remove_pod_cgroup(pod_cgroup: &str) {
    if let Ok(cg) = crate::runtime::cgroups::open(pod_cgroup) {
        let _ = cg.remove();
    }
    remove_empty_cgroup_parents(pod_cgroup);
    update_qos_tiers();
}

/// The QoS tiers' cpu.shares follow the pods in them (kubelet's QoS manager).
fn update_qos_tiers() {
    if let Err(e) = crate::housekeeping::qos_tiers::update() {
        eprintln!("supervisor: QoS tier cgroups: {e}");
    }
}

/// Removes the now-empty `/kubepods[/class]` parents the pods made (never the root).
/// pids.max of the pod cgroup from the node's podPidsLimit, set before any of the pod's
/// processes exists: a fork bomb stops there, not at the host's pid_max.
fn limit_pod_pids(data_dir: &Path, pod_cgroup: &str) -> Result<(), String> {
    let config = crate::node_config::load(data_dir).map_err(|e| e.to_string())?;
    let limit = config.pod_pids_max().unwrap_or(-1);
    let pids = oci_spec::runtime::LinuxPidsBuilder::default()
        .limit(limit)
        .build()
        .map_err(|e| e.to_string())?;
    let mut res = oci_spec::runtime::LinuxResources::default();
    res.set_pids(Some(pids));
    let cg = crate::runtime::cgroups::open(pod_cgroup).map_err(|e| e.to_string())?;
    cg.set(&res).map_err(|e| {
        remove_pod_cgroup(pod_cgroup);
        format!("podPidsLimit {limit} on the pod cgroup: {e}")
    })
}

fn remove_empty_cgroup_parents(pod_cgroup: &str) {
    let mut parent = Path::new(pod_cgroup).parent().map(Path::to_path_buf);
    while let Some(p) = parent {
        let s = p.to_string_lossy().into_owned();
        if s == "/" || s.is_empty() {
            break;
        }
        // A plain rmdir per hierarchy: it fails at once while other pods' cgroups remain.
        if let Ok(cg) = crate::runtime::cgroups::open(&s) {
            let removed = cg
                .paths()
                .iter()
                .filter(|d| std::fs::remove_dir(d).is_ok())
                .count();
            if removed == 0 && cg.exists() {
                break;
            }
        }
        parent = p.parent().map(Path::to_path_buf);
    }
}
