//! Which cgroup hierarchies this host mounts, read once per process from
//! /proc/self/mountinfo.
use super::{CgroupError, Result};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The cgroup layout of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CgroupMode {
    /// Only cgroup v1 hierarchies.
    Legacy,
    /// cgroup v1 controllers plus a cgroup2 hierarchy beside them (e.g. at
    /// /sys/fs/cgroup/unified); controllers are driven through v1.
    Hybrid,
    /// cgroup2 alone at /sys/fs/cgroup.
    Unified,
}

/// One mounted cgroup filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    pub mountpoint: PathBuf,
    /// Which cgroup of the hierarchy is mounted there ("/" unless in a cgroup namespace
    /// or a bind mount).
    pub root: String,
}

/// One cgroup v1 hierarchy and the controllers bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Hierarchy {
    pub mount: Mount,
    /// e.g. ["cpu", "cpuacct"], or ["name=systemd"] for a named hierarchy.
    pub controllers: Vec<String>,
}

impl V1Hierarchy {
    /// The controllers field of this hierarchy's line in /proc/<pid>/cgroup.
    pub fn proc_key(&self) -> String {
        self.controllers.join(",")
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    Unified(Mount),
    Legacy {
        hierarchies: Vec<V1Hierarchy>,
        unified: Option<Mount>,
    },
}

impl Layout {
    pub fn mode(&self) -> CgroupMode {
        match self {
            Layout::Unified(_) => CgroupMode::Unified,
            Layout::Legacy { unified: None, .. } => CgroupMode::Legacy,
            Layout::Legacy {
                unified: Some(_), ..
            } => CgroupMode::Hybrid,
        }
    }
}

/// v1 controllers podrun places processes in (plus the systemd named hierarchy, which
/// runc joins too so tools that look there find the container).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];
const SYSTEMD_NAMED: &str = "name=systemd";

static HOST: OnceLock<std::result::Result<Layout, String>> = OnceLock::new();

/// The host's layout, detected on first use.
pub(crate) fn host() -> Result<&'static Layout> {
    HOST.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
        parse(&text)
    })
    .as_ref()
    .map_err(|e| CgroupError::NotMounted(e.clone()))
}

/// Decodes the octal escapes (\040 for space, ...) mountinfo uses in paths.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds the layout from the text of a mountinfo file.
pub(crate) fn parse(mountinfo: &str) -> std::result::Result<Layout, String> {
    let mut hierarchies: Vec<V1Hierarchy> = Vec::new();
    let mut cgroup2: Vec<Mount> = Vec::new();
    for line in mountinfo.lines() {
        // "<id> <parent> <maj:min> <root> <mountpoint> <opts> [optional...] - <fstype> <src> <superopts>"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let super_opts = r.nth(1).unwrap_or("");
        let l: Vec<&str> = left.split(' ').collect();
        if l.len() < 5 {
            continue;
        }
        let mount = Mount {
            root: unescape(l[3]),
            mountpoint: PathBuf::from(unescape(l[4])),
        };
        if fstype == "cgroup2" {
            cgroup2.push(mount);
            continue;
        }
        let controllers: Vec<String> = super_opts
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o) || *o == SYSTEMD_NAMED)
            .map(str::to_string)
            .collect();
        if controllers.is_empty() {
            continue;
        }
        // The same hierarchy mounted twice (bind mounts): keep the first.
        if hierarchies.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        hierarchies.push(V1Hierarchy { mount, controllers });
    }
    let at_root = cgroup2
        .iter()
        .position(|m| m.mountpoint == std::path::Path::new("/sys/fs/cgroup"));
    if let Some(i) = at_root {
        return Ok(Layout::Unified(cgroup2.swap_remove(i)));
    }
    if !hierarchies
        .iter()
        .any(|h| h.controllers[0] != SYSTEMD_NAMED)
    {
        return match cgroup2.into_iter().next() {
            Some(m) => Ok(Layout::Unified(m)),
            None => Err("neither cgroup v1 controllers nor cgroup2 are mounted".into()),
        };
    }
    Ok(Layout::Legacy {
        hierarchies,
        unified: cgroup2.into_iter().next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host_is_v1_plus_unified() {
        let l = parse(HYBRID).unwrap();
        assert_eq!(l.mode(), CgroupMode::Hybrid);
        let Layout::Legacy {
            hierarchies,
            unified,
        } = l
        else {
            panic!("not legacy")
        };
        let keys: Vec<String> = hierarchies.iter().map(|h| h.proc_key()).collect();
        assert_eq!(keys, ["cpu", "cpuacct", "memory", "name=systemd"]);
        assert_eq!(
            unified.unwrap().mountpoint,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn pure_v2_and_comounted_v1() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse(v2).unwrap().mode(), CgroupMode::Unified);
        let v1 = "29 26 0:26 /x /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let Layout::Legacy { hierarchies, .. } = parse(v1).unwrap() else {
            panic!("not legacy")
        };
        assert_eq!(hierarchies[0].proc_key(), "cpu,cpuacct");
        assert_eq!(hierarchies[0].mount.root, "/x");
        assert!(parse("1 0 8:1 / / rw - ext4 /dev/sda rw\n").is_err());
    }

    #[test]
    fn unescapes_mount_paths() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain\"), r"/plain\");
    }
}
