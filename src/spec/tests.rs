//! container_spec as a whole: what config.json a pod container gets.
use super::user::tests::tempdir::Dir;
use super::*;
use crate::manifest::{load, LoadOptions, Manifest};
use oci_spec::runtime::Capability;

fn manifest(text: &str) -> Manifest {
    load(text, &LoadOptions::default()).unwrap()
}

fn image(config: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap()
}

fn nginx_image() -> ImageConfiguration {
    image(serde_json::json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.17.1"],
        "Entrypoint": null,
        "Cmd": ["nginx", "-g", "daemon off;"],
        "StopSignal": "SIGTERM"
    }))
}

fn rootfs() -> Dir {
    let d = Dir::new("spec-rootfs");
    std::fs::create_dir_all(d.path().join("etc")).unwrap();
    std::fs::write(
        d.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101::/var/cache/nginx:/bin/false\n",
    )
    .unwrap();
    std::fs::write(d.path().join("etc/group"), "root:x:0:\nnginx:x:101:\n").unwrap();
    d
}

struct Fixture {
    m: Manifest,
    root: Dir,
    ips: Vec<String>,
}

impl Fixture {
    fn new(text: &str) -> Fixture {
        Fixture {
            m: manifest(text),
            root: rootfs(),
            ips: vec!["10.88.0.7".into(), "192.168.0.10".into()],
        }
    }

    fn ctx(&self) -> EnvContext<'_> {
        EnvContext {
            pod: &self.m.pods[0],
            config_maps: &self.m.config_maps,
            secrets: &self.m.secrets,
            pod_ips: &self.ips[..1],
            host_ips: &self.ips[1..],
            node_name: "node-a",
            node_allocatable: NodeAllocatable {
                cpu_milli: 2000,
                memory_bytes: 16 << 30,
                ephemeral_storage_bytes: 100 << 30,
            },
        }
    }

    fn spec_with(
        &self,
        idx: usize,
        img: &ImageConfiguration,
        mounts: &[ResolvedMount],
    ) -> Result<Spec, SpecError> {
        self.spec_in(idx, img, mounts, None)
    }

    fn spec_in(
        &self,
        idx: usize,
        img: &ImageConfiguration,
        mounts: &[ResolvedMount],
        user: Option<PodUserNamespace>,
    ) -> Result<Spec, SpecError> {
        let pod = &self.m.pods[0];
        let c = &pod.spec.as_ref().unwrap().containers[idx];
        let input = ContainerSpecInput {
            ctx: self.ctx(),
            container: c,
            image_config: img,
            rootfs: self.root.path(),
            namespaces: SandboxNamespaces {
                net: Some("/proc/4242/ns/net".into()),
                ipc: Some("/proc/4242/ns/ipc".into()),
                uts: Some("/proc/4242/ns/uts".into()),
                pid: Some("/proc/4242/ns/pid".into()),
                user,
            },
            cgroups_path: container_cgroup_path(pod, "ctr1"),
            mounts,
            pod_files: PodFiles {
                hosts: Some("/run/podrun/pods/x/hosts".into()),
                hostname: Some("/run/podrun/pods/x/hostname".into()),
                resolv_conf: Some("/run/podrun/pods/x/resolv.conf".into()),
                shm: None,
            },
            node_memory_capacity: 16 << 30,
            seccomp_profile_root: None,
        };
        container_spec(&input)
    }

    fn spec(&self, idx: usize) -> Spec {
        self.spec_with(idx, &nginx_image(), &[]).unwrap()
    }
}

fn env_of(s: &Spec) -> Vec<String> {
    s.process().as_ref().unwrap().env().clone().unwrap()
}

fn args_of(s: &Spec) -> Vec<String> {
    s.process().as_ref().unwrap().args().clone().unwrap()
}

fn pod_yaml(container: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: dev}}\nspec:\n  containers:\n  - name: c\n    image: nginx:1.17.1\n{container}")
}

#[test]
fn image_cmd_runs_when_the_pod_says_nothing() {
    let f = Fixture::new(&crate::manifest::tests::seed("pod-base.yaml"));
    let s = f.spec(0);
    assert_eq!(args_of(&s), ["nginx", "-g", "daemon off;"]);
    assert_eq!(s.process().as_ref().unwrap().cwd(), Path::new("/"));
    let env = env_of(&s);
    assert!(env.contains(&"NGINX_VERSION=1.17.1".to_string()));
    assert!(env.contains(&"HOSTNAME=pod-base".to_string()));
    assert!(env.contains(&"HOME=/root".to_string()));
}

#[test]
fn pod_env_seed_sets_username_and_password_after_image_env() {
    let f = Fixture::new(&crate::manifest::tests::seed("pod-env.yaml"));
    let s = f.spec(0);
    let env = env_of(&s);
    assert!(env.contains(&"username=admin".to_string()), "{env:?}");
    assert!(env.contains(&"password=123456".to_string()));
    assert_eq!(args_of(&s)[0], "/bin/sh");
}

#[test]
fn container_env_overrides_image_env() {
    let f = Fixture::new(&pod_yaml(
        "    env: [{name: NGINX_VERSION, value: custom}]\n",
    ));
    let env = env_of(&f.spec(0));
    assert_eq!(
        env.iter()
            .filter(|e| e.starts_with("NGINX_VERSION="))
            .count(),
        1
    );
    assert!(env.contains(&"NGINX_VERSION=custom".to_string()));
}

#[test]
fn working_dir_from_pod_or_image() {
    let f = Fixture::new(&pod_yaml("    workingDir: /srv\n"));
    assert_eq!(
        f.spec(0).process().as_ref().unwrap().cwd(),
        Path::new("/srv")
    );
    let f = Fixture::new(&pod_yaml(""));
    let img = image(serde_json::json!({"Cmd": ["x"], "WorkingDir": "/app"}));
    let s = f.spec_with(0, &img, &[]).unwrap();
    assert_eq!(s.process().as_ref().unwrap().cwd(), Path::new("/app"));
}

#[test]
fn image_user_by_name_and_security_context_override() {
    let f = Fixture::new(&pod_yaml(""));
    let img = image(serde_json::json!({"Cmd": ["x"], "User": "nginx"}));
    let s = f.spec_with(0, &img, &[]).unwrap();
    let u = s.process().as_ref().unwrap().user();
    assert_eq!((u.uid(), u.gid()), (101, 101));
    let f = Fixture::new(&pod_yaml(
        "    securityContext: {runAsUser: 2000, runAsGroup: 3000}\n",
    ));
    let s = f.spec_with(0, &img, &[]).unwrap();
    let u = s.process().as_ref().unwrap().user();
    assert_eq!((u.uid(), u.gid()), (2000, 3000));
}

#[test]
fn run_as_non_root_with_a_root_image_is_refused() {
    let f = Fixture::new(&pod_yaml("    securityContext: {runAsNonRoot: true}\n"));
    let e = f.spec_with(0, &nginx_image(), &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("container has runAsNonRoot and image will run as root (pod: \"web_dev("),
        "{e}"
    );
    assert!(e.ends_with(")\", container: c)"), "{e}");
}

#[test]
fn resources_reach_the_cgroup_settings() {
    let f = Fixture::new(&crate::manifest::tests::seed("pod-resources.yaml"));
    let s = f.spec(0);
    let linux = s.linux().as_ref().unwrap();
    let r = linux.resources().as_ref().unwrap();
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(cpu.quota(), Some(200_000));
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(cpu.shares(), Some(1024));
    assert_eq!(r.memory().as_ref().unwrap().limit(), Some(10 << 30));
    let uid = f.m.pods[0].metadata.uid.clone().unwrap();
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new(&format!("/kubepods/burstable/pod{uid}/ctr1")))
    );
    assert_eq!(s.process().as_ref().unwrap().oom_score_adj(), Some(999));
}

#[test]
fn containers_join_the_sandbox_namespaces() {
    let f = Fixture::new(&crate::manifest::tests::seed("pod-command.yaml"));
    let s = f.spec(1);
    let ns = s.linux().as_ref().unwrap().namespaces().clone().unwrap();
    let path_of =
        |t: LinuxNamespaceType| ns.iter().find(|n| n.typ() == t).map(|n| n.path().clone());
    assert_eq!(
        path_of(LinuxNamespaceType::Network),
        Some(Some("/proc/4242/ns/net".into()))
    );
    assert_eq!(
        path_of(LinuxNamespaceType::Ipc),
        Some(Some("/proc/4242/ns/ipc".into()))
    );
    assert_eq!(
        path_of(LinuxNamespaceType::Uts),
        Some(Some("/proc/4242/ns/uts".into()))
    );
    assert_eq!(
        path_of(LinuxNamespaceType::Pid),
        Some(None),
        "own PID namespace by default"
    );
    assert_eq!(path_of(LinuxNamespaceType::Mount), Some(None));
    assert_eq!(args_of(&s)[0], "/bin/sh");
}

#[test]
fn share_process_namespace_and_host_namespaces() {
    let f = Fixture::new(&format!("{}  shareProcessNamespace: true\n", pod_yaml("")));
    let ns = f
        .spec(0)
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .clone()
        .unwrap();
    let pid = ns
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Pid)
        .unwrap();
    assert_eq!(pid.path().as_deref(), Some(Path::new("/proc/4242/ns/pid")));
    let f = Fixture::new(&format!(
        "{}  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n",
        pod_yaml("")
    ));
    let ns = f
        .spec(0)
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .clone()
        .unwrap();
    let types: Vec<_> = ns.iter().map(|n| n.typ()).collect();
    assert_eq!(
        types,
        [LinuxNamespaceType::Mount],
        "host namespaces are not unshared"
    );
    assert!(env_of(&f.spec(0)).contains(&"HOSTNAME=node-a".to_string()));
}

#[test]
fn default_hardening_as_containerd_gives_it() {
    let f = Fixture::new(&pod_yaml(""));
    let s = f.spec(0);
    let p = s.process().as_ref().unwrap();
    let caps = p.capabilities().as_ref().unwrap();
    let bounding = caps.bounding().as_ref().unwrap();
    assert_eq!(bounding.len(), 14);
    assert!(bounding.contains(&Capability::NetBindService));
    assert!(!bounding.contains(&Capability::SysAdmin));
    assert_eq!(caps.effective(), caps.bounding());
    assert!(caps.inheritable().as_ref().unwrap().is_empty());
    assert_eq!(
        p.no_new_privileges(),
        Some(false),
        "allowPrivilegeEscalation unset"
    );
    let linux = s.linux().as_ref().unwrap();
    let masked = linux.masked_paths().clone().unwrap();
    for m in [
        "/proc/kcore",
        "/proc/keys",
        "/sys/firmware",
        "/proc/scsi",
        "/sys/devices/virtual/powercap",
    ] {
        assert!(masked.contains(&m.to_string()), "{m}");
    }
    let ro = linux.readonly_paths().clone().unwrap();
    assert!(ro.contains(&"/proc/sys".to_string()));
    assert!(ro.contains(&"/proc/sysrq-trigger".to_string()));
    let sys = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(
        sys.options().as_ref().unwrap().contains(&"ro".to_string()),
        "/sys read-only"
    );
    let devs = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert!(!devs[0].allow());
    assert!(linux.devices().is_none(), "no extra devices");
    assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
}

#[test]
fn privileged_gets_everything_and_no_masks() {
    let f = Fixture::new(&pod_yaml("    securityContext: {privileged: true}\n"));
    let s = f.spec(0);
    let caps = s
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    assert!(caps
        .bounding()
        .as_ref()
        .unwrap()
        .contains(&Capability::SysAdmin));
    let linux = s.linux().as_ref().unwrap();
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    assert!(linux
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .any(|d| d.path() == Path::new("/dev/null")));
    let sys = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
}

#[test]
fn security_context_switches() {
    // procMount: Unmasked needs a user namespace (the API server says so).
    let f = Fixture::new(
        &pod_yaml("    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, procMount: Unmasked, capabilities: {drop: [ALL]}}\n")
            .replace("spec:\n", "spec:\n  hostUsers: false\n"),
    );
    let s = f.spec(0);
    let p = s.process().as_ref().unwrap();
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
    assert!(
        s.linux()
            .as_ref()
            .unwrap()
            .masked_paths()
            .as_ref()
            .unwrap()
            .is_empty(),
        "Unmasked procMount"
    );
    let hosts = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/etc/hosts"))
        .unwrap();
    assert!(
        hosts
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string()),
        "pod files follow a read-only root"
    );
}

#[test]
fn unsafe_sysctl_fails_the_spec() {
    let f = Fixture::new(&format!(
        "{}  securityContext: {{sysctls: [{{name: kernel.msgmax, value: '65536'}}]}}\n",
        pod_yaml("")
    ));
    let e = f.spec_with(0, &nginx_image(), &[]).unwrap_err();
    assert!(matches!(e, SpecError::ForbiddenSysctl { .. }), "{e}");
    let f = Fixture::new(&format!("{}  securityContext: {{sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: '0'}}]}}\n", pod_yaml("")));
    let s = f.spec(0);
    assert_eq!(
        s.linux().as_ref().unwrap().sysctl().as_ref().unwrap()
            ["net.ipv4.ip_unprivileged_port_start"],
        "0"
    );
}

#[test]
fn pod_files_and_volumes_are_bind_mounted_parents_first() {
    let f = Fixture::new(&pod_yaml(""));
    let mounts = vec![
        ResolvedMount {
            destination: "/data/sub".into(),
            source: "/tmp/b".into(),
            read_only: true,
        },
        ResolvedMount {
            destination: "/data".into(),
            source: "/tmp/a".into(),
            read_only: false,
        },
        ResolvedMount {
            destination: "/etc/resolv.conf".into(),
            source: "/tmp/r".into(),
            read_only: true,
        },
    ];
    let s = f.spec_with(0, &nginx_image(), &mounts).unwrap();
    let ms = s.mounts().as_ref().unwrap();
    let pos = |d: &str| {
        ms.iter()
            .position(|m| m.destination() == Path::new(d))
            .unwrap()
    };
    assert!(pos("/data") < pos("/data/sub"));
    assert!(pos("/proc") < pos("/etc/hosts"));
    let data = &ms[pos("/data")];
    assert_eq!(data.typ().as_deref(), Some("bind"));
    assert_eq!(data.source().as_deref(), Some(Path::new("/tmp/a")));
    assert!(data.options().as_ref().unwrap().contains(&"rw".to_string()));
    assert!(ms[pos("/data/sub")]
        .options()
        .as_ref()
        .unwrap()
        .contains(&"ro".to_string()));
    let resolv: Vec<_> = ms
        .iter()
        .filter(|m| m.destination() == Path::new("/etc/resolv.conf"))
        .collect();
    assert_eq!(
        resolv.len(),
        1,
        "a volume replaces the pod file at the same place"
    );
    assert_eq!(resolv[0].source().as_deref(), Some(Path::new("/tmp/r")));
    let shm = &ms[pos("/dev/shm")];
    assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
}

#[test]
fn tty_sets_terminal_and_term() {
    let f = Fixture::new(&pod_yaml("    tty: true\n    stdin: true\n"));
    let s = f.spec(0);
    assert_eq!(s.process().as_ref().unwrap().terminal(), Some(true));
    assert!(env_of(&s).contains(&"TERM=xterm".to_string()));
}

#[test]
fn missing_config_map_is_the_kubelet_error() {
    let f = Fixture::new(&pod_yaml(
        "    envFrom: [{configMapRef: {name: settings}}]\n",
    ));
    let e = f.spec_with(0, &nginx_image(), &[]).unwrap_err();
    assert_eq!(e.to_string(), "configmap \"settings\" not found");
}

#[test]
fn the_spec_serialises_as_config_json() {
    let f = Fixture::new(&crate::manifest::tests::seed("pod-env.yaml"));
    let s = f.spec(0);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["ociVersion"], "1.0.2");
    assert_eq!(json["process"]["args"][0], "/bin/sh");
    assert_eq!(json["annotations"]["io.kubernetes.pod.name"], "pod-env");
    assert!(json["linux"]["maskedPaths"].as_array().unwrap().len() >= 10);
}

#[test]
fn stop_signal_comes_from_the_image() {
    use nix::sys::signal::Signal;
    let img = |s: serde_json::Value| image(serde_json::json!({"Cmd": ["x"], "StopSignal": s}));
    assert_eq!(
        stop_signal(&img(serde_json::json!("SIGQUIT"))).unwrap(),
        Signal::SIGQUIT
    );
    assert_eq!(
        stop_signal(&img(serde_json::json!("quit"))).unwrap(),
        Signal::SIGQUIT
    );
    assert_eq!(
        stop_signal(&img(serde_json::json!("9"))).unwrap(),
        Signal::SIGKILL
    );
    assert_eq!(
        stop_signal(&image(serde_json::json!({"Cmd": ["x"]}))).unwrap(),
        Signal::SIGTERM
    );
    assert!(stop_signal(&img(serde_json::json!("SIGNOPE"))).is_err());
}

#[test]
fn oom_score_adj_is_kubelets_where_this_process_may_set_it() {
    assert_eq!(
        attainable_oom_score_adj(500),
        500,
        "raising is always allowed"
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    let has_sys_resource = u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << 24) != 0;
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let expected = if has_sys_resource {
        -997
    } else {
        own.max(-997)
    };
    assert_eq!(attainable_oom_score_adj(-997), expected);
}

#[test]
fn containers_never_rename_the_pod_and_inherit_rlimits() {
    let f = Fixture::new(&crate::manifest::tests::seed("pod-env.yaml"));
    let s = f.spec(0);
    assert_eq!(
        s.hostname(),
        &None,
        "a hostname would be set in the shared UTS namespace"
    );
    assert_eq!(s.process().as_ref().unwrap().rlimits(), &None);
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("youki"), "no library defaults leak: {json}");
}

#[test]
fn a_pod_user_namespace_is_joined_and_volumes_are_idmapped_with_its_mapping() {
    let f = Fixture::new(&pod_yaml("").replace("spec:\n", "spec:\n  hostUsers: false\n"));
    let mapping = PodIdMapping {
        host_base: 131072,
        size: 65536,
    };
    let user = PodUserNamespace {
        path: "/proc/4242/ns/user".into(),
        mapping,
    };
    let mounts = [ResolvedMount {
        destination: "/data".into(),
        source: "/tmp/a".into(),
        read_only: false,
    }];
    let s = f.spec_in(0, &nginx_image(), &mounts, Some(user)).unwrap();
    let linux = s.linux().as_ref().unwrap();
    let ns = linux.namespaces().as_ref().unwrap();
    assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::User
        && n.path().as_deref() == Some(Path::new("/proc/4242/ns/user"))));
    // Joined by path: the mappings are the namespace's, not the container's to set.
    assert!(linux.uid_mappings().is_none());
    let data = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/data"))
        .unwrap();
    assert!(data
        .options()
        .as_ref()
        .unwrap()
        .contains(&"idmap".to_string()));
    let m = &data.uid_mappings().as_ref().unwrap()[0];
    assert_eq!(
        (m.container_id(), m.host_id(), m.size()),
        (0, 131072, 65536)
    );
    assert_eq!(data.gid_mappings(), data.uid_mappings());
    // The pod's own files are not volumes: plain binds.
    let hosts = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/etc/hosts"))
        .unwrap();
    assert!(hosts.uid_mappings().is_none());
}
