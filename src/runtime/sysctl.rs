//! linux.sysctl: which keys a container may set (only those of a namespace it owns, as
//! runc decides), and writing them under the container's /proc/sys.
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The IPC namespace's sysctls besides `fs.mqueue.*` (kernel/ipc/ipc_sysctl.c).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// A sysctl key in dotted form: `net/ipv4/conf/eno2.100/rp_filter` (slashes, dots in
/// names) becomes `net.ipv4.conf.eno2/100.rp_filter`, as sysctl(8) and runc read it.
pub fn dotted(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// The file under /proc/sys for a key in either form.
pub fn proc_path(key: &str) -> PathBuf {
    let rel: String = dotted(key)
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    Path::new("/proc/sys").join(rel)
}

/// How the container holds the namespaces sysctls live in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespaces {
    /// A new or joined IPC namespace (not the caller's).
    pub ipc: bool,
    /// A new UTS namespace.
    pub uts: bool,
    /// A new network namespace, or a joined one that is not the caller's.
    pub net: bool,
}

impl Namespaces {
    /// Reads the config's namespaces; a joined network namespace is the host's when it
    /// is the one this process is in (runc: "host" means "current").
    pub fn of(namespaces: &[LinuxNamespace]) -> Result<Namespaces, String> {
        let find = |t| namespaces.iter().find(|n| n.typ() == t);
        let net = match find(LinuxNamespaceType::Network) {
            None => false,
            Some(n) => match n.path() {
                None => true,
                Some(p) => !same_file(Path::new("/proc/self/ns/net"), p)?,
            },
        };
        Ok(Namespaces {
            ipc: find(LinuxNamespaceType::Ipc).is_some(),
            uts: find(LinuxNamespaceType::Uts).is_some_and(|n| n.path().is_none()),
            net,
        })
    }
}

fn same_file(a: &Path, b: &Path) -> Result<bool, String> {
    let meta = |p: &Path| std::fs::metadata(p).map_err(|e| format!("stat {}: {e}", p.display()));
    let (ma, mb) = (meta(a)?, meta(b)?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// Why `key` may not be set in a container with `ns`, in runc's words; None: allowed.
pub fn refusal(key: &str, ns: Namespaces) -> Option<String> {
    let s = dotted(key);
    if IPC_SYSCTLS.contains(&s.as_str()) || s.starts_with("fs.mqueue.") {
        return (!ns.ipc)
            .then(|| format!("sysctl {s:?} is not allowed in the hosts ipc namespace"));
    }
    if s.starts_with("net.") {
        return (!ns.net).then(|| format!("sysctl {s:?} not allowed in host network namespace"));
    }
    if ns.uts {
        match s.as_str() {
            "kernel.domainname" => return None,
            "kernel.hostname" => {
                return Some(format!(
                    "sysctl {s:?} is not allowed as it conflicts with the OCI \"hostname\" field"
                ))
            }
            _ => {}
        }
    }
    Some(format!(
        "sysctl {s:?} is not in a separate kernel namespace"
    ))
}

/// Checks every linux.sysctl key against the config's namespaces (sorted, so the first
/// refused key is the same on every run). Err: (field, message).
pub fn validate(spec: &Spec) -> Result<(), (String, String)> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    let Some(map) = linux.sysctl().as_ref().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let ns = Namespaces::of(linux.namespaces().as_deref().unwrap_or_default())
        .map_err(|e| ("linux.namespaces".to_string(), e))?;
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        if let Some(msg) = refusal(k, ns) {
            return Err((format!("linux.sysctl.{k}"), msg));
        }
    }
    Ok(())
}

/// Writes linux.sysctl under `<root>/proc/sys` (the container's proc).
pub fn apply(spec: &Spec, root: &Path) -> Result<(), String> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (k, v) in map {
        let path = super::rootfs::resolve_in_root(root, &proc_path(k));
        std::fs::write(&path, v.as_bytes())
            .map_err(|e| format!("sysctl {k} {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(ipc: bool, uts: bool, net: bool) -> Namespaces {
        Namespaces { ipc, uts, net }
    }

    #[test]
    fn slash_keys_become_dotted_keeping_dots_in_names() {
        assert_eq!(
            dotted("net/ipv4/conf/eno2.100/rp_filter"),
            "net.ipv4.conf.eno2/100.rp_filter"
        );
        assert_eq!(dotted("kernel.shmmax"), "kernel.shmmax");
        assert_eq!(
            proc_path("net.ipv4.conf.eno2/100.rp_filter"),
            Path::new("/proc/sys/net/ipv4/conf/eno2.100/rp_filter")
        );
        assert_eq!(
            proc_path("kernel/shm_rmid_forced"),
            Path::new("/proc/sys/kernel/shm_rmid_forced")
        );
    }

    #[test]
    fn host_wide_sysctls_are_refused_in_runcs_words() {
        let all = ns(true, true, true);
        assert_eq!(
            refusal("vm.drop_caches", all).unwrap(),
            "sysctl \"vm.drop_caches\" is not in a separate kernel namespace"
        );
        assert_eq!(
            refusal("kernel.pid_max", all).unwrap(),
            "sysctl \"kernel.pid_max\" is not in a separate kernel namespace"
        );
        assert_eq!(
            refusal("kernel.hostname", all).unwrap(),
            "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
        );
        assert!(refusal("kernel.domainname", all).is_none());
        assert!(refusal("kernel.domainname", ns(true, false, true)).is_some());
    }

    #[test]
    fn namespaced_sysctls_need_their_namespace() {
        assert!(refusal("kernel.shmmax", ns(true, false, false)).is_none());
        assert!(refusal("fs.mqueue.msg_max", ns(true, false, false)).is_none());
        assert_eq!(
            refusal("kernel/msgmax", ns(false, true, true)).unwrap(),
            "sysctl \"kernel.msgmax\" is not allowed in the hosts ipc namespace"
        );
        assert!(refusal("net.ipv4.ip_forward", ns(false, false, true)).is_none());
        assert_eq!(
            refusal("net.ipv4.ip_forward", ns(true, true, false)).unwrap(),
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"
        );
    }
}
