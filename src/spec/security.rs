//! Security defaults as containerd's CRI gives a pod container (capabilities, masked and
//! read-only paths, device rules) and the securityContext settings that change them.
use super::SpecError;
use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::runtime::{
    Capability, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType,
};
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

/// containerd's default capability set for CRI containers.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, in kernel number order (0 … 40).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// containerd's masked paths (bind-mounted over with /dev/null or an empty tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Sysctls Kubernetes considers safe (namespaced and isolated): allowed without node opt-in.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// The capabilities this process may hand out: its own bounding set (containerd's
/// WithAllCurrentCapabilities), or all the kernel knows when that cannot be read.
fn current_capabilities() -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPABILITIES.len() - 1);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| *i <= last && bounding.is_none_or(|b| b & (1u64 << i) != 0))
        .map(|(_, c)| *c)
        .collect()
}

/// `NET_ADMIN`, `net_admin` or `CAP_NET_ADMIN` → `CAP_NET_ADMIN`, if it is a capability.
pub fn normalize_capability(name: &str) -> Result<String, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability {
            name: name.to_string(),
        })
    }
}

/// The container's capability set, as containerd computes it: privileged → all this
/// process holds; else the
/// defaults, then `add: [ALL]`/`drop: [ALL]`, then individual adds, then individual drops.
pub fn container_capabilities(c: &Container) -> Result<Vec<String>, SpecError> {
    let sc = c.security_context.as_ref();
    if sc.and_then(|s| s.privileged) == Some(true) {
        return Ok(current_capabilities()
            .iter()
            .map(|s| s.to_string())
            .collect());
    }
    let mut caps: BTreeSet<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    let spec_caps = sc.and_then(|s| s.capabilities.as_ref());
    let add = spec_caps.and_then(|c| c.add.clone()).unwrap_or_default();
    let drop = spec_caps.and_then(|c| c.drop.clone()).unwrap_or_default();
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
    if add.iter().any(is_all) {
        caps.extend(current_capabilities().iter().map(|s| s.to_string()));
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    for a in add.iter().filter(|s| !is_all(s)) {
        caps.insert(normalize_capability(a)?);
    }
    for d in drop.iter().filter(|s| !is_all(s)) {
        caps.remove(&normalize_capability(d)?);
    }
    // Kernel order reads better than alphabetical in config.json and /proc/self/status.
    Ok(ALL_CAPABILITIES
        .iter()
        .filter(|c| caps.contains(**c))
        .map(|s| s.to_string())
        .collect())
}

/// OCI capability values for names from [`container_capabilities`].
pub fn to_oci_capabilities(names: &[String]) -> oci_spec::runtime::Capabilities {
    names
        .iter()
        .filter_map(|n| Capability::from_str(n.trim_start_matches("CAP_")).ok())
        .collect()
}

fn dev_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Option<LinuxDeviceCgroup> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().ok()
}

/// The device cgroup rules: deny all but mknod and the standard devices (null, zero,
/// full, random, urandom, tty, console, ptmx, pts); privileged allows everything.
/// containerd's CRI writes only the deny-all and leaves the rest to runc's built-in
/// list, which is this one plus tun (10:200, dropped in runc 1.2.0, back in 1.2.4): the
/// runtime adds that list to every container, so pods get tun from there, as under runc.
pub fn device_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, B, C};
    if privileged {
        return dev_rule(true, A, None, None, "rwm").into_iter().collect();
    }
    let rules = [
        (false, A, None, None, "rwm"),
        (true, C, None, None, "m"),
        (true, B, None, None, "m"),
        (true, C, Some(1), Some(3), "rwm"),
        (true, C, Some(1), Some(8), "rwm"),
        (true, C, Some(1), Some(7), "rwm"),
        (true, C, Some(5), Some(0), "rwm"),
        (true, C, Some(1), Some(5), "rwm"),
        (true, C, Some(1), Some(9), "rwm"),
        (true, C, Some(5), Some(1), "rwm"),
        (true, C, Some(136), None, "rwm"),
        (true, C, Some(5), Some(2), "rwm"),
    ];
    rules
        .into_iter()
        .filter_map(|(allow, t, ma, mi, acc)| dev_rule(allow, t, ma, mi, acc))
        .collect()
}

/// Every device node under the host's /dev (for privileged containers).
pub fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                // Per-container filesystems, not host devices.
                if !matches!(
                    p.to_str(),
                    Some("/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev/fd")
                ) {
                    stack.push(p);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if p.to_str() == Some("/dev/console") {
                continue;
            }
            let rdev = m.rdev();
            let dev = LinuxDeviceBuilder::default()
                .path(p.clone())
                .typ(typ)
                .major(i64::try_from(nix::sys::stat::major(rdev)).unwrap_or(0))
                .minor(i64::try_from(nix::sys::stat::minor(rdev)).unwrap_or(0))
                .file_mode(m.mode() & 0o7777)
                .uid(m.uid())
                .gid(m.gid())
                .build();
            if let Ok(d) = dev {
                out.push(d);
            }
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

/// The pod's sysctls: the safe set only, and none in a namespace shared with the host.
pub fn pod_sysctls(pod: &Pod) -> Result<HashMap<String, String>, SpecError> {
    let spec = pod.spec.as_ref();
    let host_net = spec.and_then(|s| s.host_network) == Some(true);
    let host_ipc = spec.and_then(|s| s.host_ipc) == Some(true);
    let mut out = HashMap::new();
    for s in spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
    {
        let name = s.name.replace('/', ".");
        if !SAFE_SYSCTLS.contains(&name.as_str()) {
            return Err(SpecError::ForbiddenSysctl {
                reason: format!("{name:?} not allowlisted"),
            });
        }
        if host_net && name.starts_with("net.") {
            return Err(SpecError::ForbiddenSysctl {
                reason: format!("{name:?} not allowed with host net enabled"),
            });
        }
        if host_ipc && name.starts_with("kernel.shm") {
            return Err(SpecError::ForbiddenSysctl {
                reason: format!("{name:?} not allowed with host ipc enabled"),
            });
        }
        out.insert(name, s.value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn container(sc: &str) -> Container {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    securityContext: {sc}\n");
        load(&text, &LoadOptions::default())
            .unwrap()
            .pods
            .remove(0)
            .spec
            .unwrap()
            .containers
            .remove(0)
    }

    #[test]
    fn default_capabilities_are_containerds_fourteen() {
        let caps = container_capabilities(&container("{}")).unwrap();
        assert_eq!(caps.len(), 14);
        for c in DEFAULT_CAPABILITIES {
            assert!(caps.contains(&c.to_string()), "{c}");
        }
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_ADMIN".to_string()));
    }

    #[test]
    fn add_and_drop_with_or_without_prefix() {
        let caps = container_capabilities(&container(
            "{capabilities: {add: [NET_ADMIN, CAP_SYS_TIME], drop: [net_raw, CAP_KILL]}}",
        ))
        .unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_SYS_TIME".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert_eq!(caps.len(), 14);
    }

    #[test]
    fn drop_all_then_add_one() {
        let caps = container_capabilities(&container(
            "{capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}",
        ))
        .unwrap();
        assert_eq!(caps, ["CAP_NET_BIND_SERVICE"]);
        let caps =
            container_capabilities(&container("{capabilities: {add: [ALL], drop: [CHOWN]}}"))
                .unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
    }

    #[test]
    fn privileged_gets_every_kernel_capability() {
        let caps = container_capabilities(&container("{privileged: true}")).unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(caps.len(), current_capabilities().len());
        assert_eq!(
            to_oci_capabilities(&caps).len(),
            caps.len(),
            "every name maps to an OCI capability"
        );
    }

    #[test]
    fn unknown_capability_is_an_error() {
        let e = container_capabilities(&container("{capabilities: {add: [FLY]}}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown capability \"FLY\" in securityContext.capabilities"
        );
    }

    #[test]
    fn device_rules_deny_all_but_the_standard_devices() {
        let rules = device_rules(false);
        assert!(!rules[0].allow(), "first rule denies everything");
        assert!(
            rules
                .iter()
                .any(|r| r.allow() && r.major() == Some(1) && r.minor() == Some(3)),
            "/dev/null"
        );
        assert!(
            rules
                .iter()
                .any(|r| r.allow() && r.major() == Some(136) && r.minor().is_none()),
            "pts"
        );
        // containerd's CRI list: no tun (runc's built-in list adds it at run time).
        assert!(
            !rules.iter().any(|r| r.major() == Some(10)),
            "no /dev/net/tun"
        );
        assert_eq!(rules.len(), 12, "deny-all, c/b mknod and nine devices");
        let p = device_rules(true);
        assert_eq!(p.len(), 1);
        assert!(p[0].allow());
    }

    #[test]
    fn host_devices_include_null() {
        let devs = host_devices();
        let null = devs
            .iter()
            .find(|d| d.path().to_str() == Some("/dev/null"))
            .unwrap();
        assert_eq!((null.major(), null.minor()), (1, 3));
    }

    fn pod(sc: &str, host: &str) -> Pod {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{host}  securityContext: {sc}\n  containers: [{{name: c, image: i}}]\n");
        load(&text, &LoadOptions::default()).unwrap().pods.remove(0)
    }

    #[test]
    fn safe_sysctls_pass_others_are_refused() {
        let s = pod_sysctls(&pod("{sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: '0'}, {name: kernel/shm_rmid_forced, value: '1'}]}", "")).unwrap();
        assert_eq!(s["net.ipv4.ip_unprivileged_port_start"], "0");
        assert_eq!(s["kernel.shm_rmid_forced"], "1");
        let e =
            pod_sysctls(&pod("{sysctls: [{name: kernel.msgmax, value: '1'}]}", "")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "forbidden sysctl: \"kernel.msgmax\" not allowlisted"
        );
        let e = pod_sysctls(&pod(
            "{sysctls: [{name: net.ipv4.tcp_syncookies, value: '1'}]}",
            "  hostNetwork: true\n",
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("not allowed with host net enabled"),
            "{e}"
        );
    }
}
