//! The pod sandbox's spec: the pause process that holds the pod's namespaces (network,
//! IPC, UTS, and PID when shared), with the hostname, sysctls and hardening containerd
//! gives a sandbox.
use super::{mount, security, standard_mounts, without_library_defaults, SpecError};
use k8s_openapi::api::core::v1::Pod;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// kubelet's oom_score_adj for the pod infrastructure process.
pub const SANDBOX_OOM_SCORE_ADJ: i32 = -998;

/// What the sandbox spec needs.
#[derive(Debug, Clone)]
pub struct SandboxSpecInput<'a> {
    pub pod: &'a Pod,
    /// A root holding the pause binary (read-only in the spec).
    pub rootfs: &'a Path,
    /// The pause command line, e.g. `["/pause"]`.
    pub args: Vec<String>,
    /// e.g. `pod_cgroup_path(pod) + "/" + sandbox id`.
    pub cgroups_path: String,
    /// From [`super::pod_hostname`].
    pub hostname: String,
    /// A network namespace prepared beforehand (e.g. by CNI); a new one when None.
    pub net_ns: Option<PathBuf>,
    /// hostUsers: false: the pod's id mapping; pause makes the user namespace, which
    /// then owns the pod's network, IPC and UTS namespaces.
    pub userns: Option<super::PodIdMapping>,
}

/// The pause container: new network/IPC/UTS namespaces (PID too, always: pause is PID 1
/// of a shared PID namespace), none where the pod uses the host's; no capabilities,
/// no_new_privs, read-only root, cpu shares 2, oom_score_adj -998.
pub fn sandbox_spec(input: &SandboxSpecInput<'_>) -> Result<Spec, SpecError> {
    let spec = input.pod.spec.clone().unwrap_or_default();
    let host_net = spec.host_network == Some(true);
    let none = oci_spec::runtime::Capabilities::new();
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .args(input.args.clone())
        .env(vec![format!("PATH={}", super::DEFAULT_PATH)])
        .cwd("/")
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(none.clone())
                .effective(none.clone())
                .permitted(none.clone())
                .inheritable(none.clone())
                .ambient(none)
                .build()?,
        )
        .no_new_privileges(true)
        .oom_score_adj(super::attainable_oom_score_adj(SANDBOX_OOM_SCORE_ADJ))
        .build()?;

    let mut namespaces = vec![LinuxNamespaceBuilder::default()
        .typ(LinuxNamespaceType::Mount)
        .build()?];
    if input.userns.is_some() {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()?,
        );
    }
    let mut add = |t: LinuxNamespaceType, path: Option<&PathBuf>| -> Result<(), SpecError> {
        let mut b = LinuxNamespaceBuilder::default().typ(t);
        if let Some(p) = path {
            b = b.path(p.clone());
        }
        namespaces.push(b.build()?);
        Ok(())
    };
    if spec.host_pid != Some(true) {
        add(LinuxNamespaceType::Pid, None)?;
    }
    if spec.host_ipc != Some(true) {
        add(LinuxNamespaceType::Ipc, None)?;
    }
    if !host_net {
        add(LinuxNamespaceType::Uts, None)?;
        add(LinuxNamespaceType::Network, input.net_ns.as_ref())?;
    }

    let mut mounts = standard_mounts("ro")?;
    mounts.push(mount(
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    )?);
    let resources = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().shares(2u64).build()?)
        .devices(security::device_rules(false))
        .build()?;
    let to_vec = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let sysctl: HashMap<String, String> = security::pod_sysctls(input.pod)?;
    let mut lb = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .masked_paths(to_vec(security::MASKED_PATHS))
        .readonly_paths(to_vec(security::READONLY_PATHS))
        .rootfs_propagation("rprivate");
    if !sysctl.is_empty() {
        lb = lb.sysctl(sysctl);
    }
    if let Some(m) = input.userns {
        lb = lb.uid_mappings(m.to_oci()?).gid_mappings(m.to_oci()?);
    }
    let meta = &input.pod.metadata;
    let annotations: HashMap<String, String> = [
        ("io.kubernetes.pod.name", meta.name.clone()),
        ("io.kubernetes.pod.namespace", meta.namespace.clone()),
        ("io.kubernetes.pod.uid", meta.uid.clone()),
        (
            "io.kubernetes.cri.container-type",
            Some("sandbox".to_string()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.unwrap_or_default()))
    .collect();
    let b = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(input.rootfs)
                .readonly(true)
                .build()?,
        )
        .process(process)
        .mounts(mounts)
        .linux(lb.build()?)
        .annotations(annotations);
    let mut spec = b.build()?;
    without_library_defaults(&mut spec);
    if !host_net {
        spec.set_hostname(Some(input.hostname.clone()));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn pod(extra: &str) -> Pod {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{extra}  containers: [{{name: c, image: i}}]\n");
        load(&text, &LoadOptions::default()).unwrap().pods.remove(0)
    }

    fn spec_of(p: &Pod, net_ns: Option<PathBuf>) -> Spec {
        spec_in(p, net_ns, None)
    }

    fn spec_in(
        p: &Pod,
        net_ns: Option<PathBuf>,
        userns: Option<super::super::PodIdMapping>,
    ) -> Spec {
        sandbox_spec(&SandboxSpecInput {
            pod: p,
            rootfs: Path::new("/var/lib/podrun/pause"),
            args: vec!["/pause".into()],
            cgroups_path: "/kubepods/besteffort/podx/sandbox".into(),
            hostname: "web".into(),
            net_ns,
            userns,
        })
        .unwrap()
    }

    fn ns_types(s: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        s.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect()
    }

    #[test]
    fn pause_holds_fresh_namespaces_and_the_hostname() {
        let s = spec_of(&pod(""), None);
        let ns = ns_types(&s);
        for t in [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Network,
        ] {
            assert!(ns.contains(&(t, None)), "{t:?}");
        }
        assert_eq!(s.hostname().as_deref(), Some("web"));
        let p = s.process().as_ref().unwrap();
        assert_eq!(
            p.oom_score_adj(),
            Some(crate::spec::attainable_oom_score_adj(-998))
        );
        assert_eq!(p.no_new_privileges(), Some(true));
        assert!(p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap()
            .is_empty());
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        let cpu = s
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .cpu()
            .clone()
            .unwrap();
        assert_eq!(cpu.shares(), Some(2));
    }

    #[test]
    fn a_prepared_network_namespace_is_joined() {
        let s = spec_of(&pod(""), Some("/run/netns/pod-web".into()));
        assert!(ns_types(&s).contains(&(
            LinuxNamespaceType::Network,
            Some("/run/netns/pod-web".into())
        )));
    }

    #[test]
    fn host_namespaces_are_not_unshared() {
        let s = spec_of(
            &pod("  hostNetwork: true\n  hostIPC: true\n  hostPID: true\n"),
            None,
        );
        assert_eq!(ns_types(&s), [(LinuxNamespaceType::Mount, None)]);
        assert_eq!(
            s.hostname(),
            &None,
            "the host's UTS namespace keeps its name"
        );
    }

    #[test]
    fn safe_sysctls_are_set_on_the_sandbox() {
        let p = pod("  securityContext: {sysctls: [{name: net.ipv4.ping_group_range, value: '0 2147483647'}]}\n");
        let s = spec_of(&p, None);
        let sysctl = s.linux().as_ref().unwrap().sysctl().clone().unwrap();
        assert_eq!(sysctl["net.ipv4.ping_group_range"], "0 2147483647");
    }

    #[test]
    fn pause_makes_the_pods_user_namespace_with_its_mapping() {
        let m = super::super::PodIdMapping {
            host_base: 196608,
            size: 65536,
        };
        let s = spec_in(&pod("  hostUsers: false\n"), None, Some(m));
        assert!(ns_types(&s).contains(&(LinuxNamespaceType::User, None)));
        let linux = s.linux().as_ref().unwrap();
        for maps in [linux.uid_mappings(), linux.gid_mappings()] {
            let m = &maps.as_ref().unwrap()[0];
            assert_eq!(
                (m.container_id(), m.host_id(), m.size()),
                (0, 196608, 65536)
            );
        }
        // Without it, no user namespace and no mappings.
        let s = spec_of(&pod(""), None);
        assert!(!ns_types(&s)
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::User));
        assert!(s.linux().as_ref().unwrap().uid_mappings().is_none());
    }
}
