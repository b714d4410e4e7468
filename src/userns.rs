//! The node's id ranges for pods with `hostUsers: false`, as kubelet's userns manager
//! hands them out: 65536 ids per pod from the node range (the `kubelet` entry of
//! /etc/subuid and /etc/subgid, else every id from 65536 up), never two live pods on the
//! same range. One lease file per range under `<data-dir>/userns/`, named by its first
//! host id and holding the owner's pod dir: a [`crate::lease_dir`], as the IP leases of
//! [`crate::network::ipam`] are.
use crate::lease_dir::{LeaseDir, LeaseError};
use std::path::{Path, PathBuf};

/// Ids per pod (kubelet's default `userNamespaces.idsPerPod`).
pub const IDS_PER_POD: u32 = 65536;
/// kubelet's default maxPods: the node range must hold at least that many pods.
pub const MAX_PODS: u32 = 110;
/// The user whose subordinate ids kubelet uses.
pub const KUBELET_USER: &str = "kubelet";

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// kubelet's words when the node range is unusable.
    #[error("kubelet mappings: {0}")]
    Mappings(String),
    #[error("could not find an empty slot to allocate a user namespace")]
    Exhausted,
    #[error("user namespace lease {path}: {source}")]
    Lease {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A contiguous id range on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub first: u32,
    pub len: u32,
}

impl IdRange {
    /// kubelet's default: every id but the first 65536.
    pub const DEFAULT: IdRange = IdRange {
        first: IDS_PER_POD,
        len: u32::MAX - IDS_PER_POD + 1,
    };

    fn blocks(&self) -> u32 {
        self.len / IDS_PER_POD
    }
}

/// The `name` (or `uid`) entries of a subuid/subgid file, as (start, count).
fn subid_entries(text: &str, name: &str, uid: Option<u32>) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let me = who == name || uid.is_some_and(|u| who == u.to_string());
            if !me {
                return None;
            }
            Some((start.trim().parse().ok()?, count.trim().parse().ok()?))
        })
        .collect()
}

/// The node range from the texts of /etc/subuid and /etc/subgid (None: no file) and
/// the kubelet user's uid (None: no such user, kubelet's default range). Checked as
/// kubelet's MakeUserNsManager checks it.
pub fn node_range(
    subuid: Option<&str>,
    subgid: Option<&str>,
    kubelet_uid: Option<u32>,
) -> Result<IdRange, UsernsError> {
    let bad = |m: String| Err(UsernsError::Mappings(m));
    let range = match kubelet_uid {
        None => IdRange::DEFAULT,
        Some(uid) => {
            let u = subid_entries(subuid.unwrap_or(""), KUBELET_USER, Some(uid));
            let g = subid_entries(subgid.unwrap_or(""), KUBELET_USER, Some(uid));
            if u.is_empty() && g.is_empty() {
                IdRange::DEFAULT
            } else {
                if u != g {
                    return bad(format!(
                        "error configuring kubelet user {KUBELET_USER:?}: uids and gids mappings differ"
                    ));
                }
                if u.len() != 1 {
                    return bad(format!(
                        "error configuring kubelet user {KUBELET_USER:?}: it must contain only one line"
                    ));
                }
                IdRange {
                    first: u[0].0,
                    len: u[0].1,
                }
            }
        }
    };
    if range.first % IDS_PER_POD != 0 {
        return bad(format!(
            "kubelet user assigned ID {} is not a multiple of {IDS_PER_POD}",
            range.first
        ));
    }
    if range.first < IDS_PER_POD {
        return bad(format!(
            "kubelet user assigned ID {} must be greater or equal to {IDS_PER_POD}",
            range.first
        ));
    }
    if range.len % IDS_PER_POD != 0 {
        return bad(format!(
            "kubelet user assigned IDs length {} is not a multiple of {IDS_PER_POD}",
            range.len
        ));
    }
    if range.blocks() < MAX_PODS {
        return bad(format!(
            "kubelet user assigned IDs are not enough to support {MAX_PODS} pods"
        ));
    }
    if u64::from(range.first) + u64::from(range.len) > 1u64 << 32 {
        return bad(format!(
            "kubelet user assigned IDs {}+{} go past the last id",
            range.first, range.len
        ));
    }
    Ok(range)
}

/// This host's node range (reads /etc/passwd, /etc/subuid, /etc/subgid).
pub fn host_range() -> Result<IdRange, UsernsError> {
    let uid = nix::unistd::User::from_name(KUBELET_USER)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    let subuid = std::fs::read_to_string("/etc/subuid").ok();
    let subgid = std::fs::read_to_string("/etc/subgid").ok();
    node_range(subuid.as_deref(), subgid.as_deref(), uid)
}

/// kubelet's words when a pod asks for `hostUsers: false` and the node cannot give it.
pub const UNSUPPORTED: &str =
    "can't set `spec.hostUsers: false`, runtime does not support user namespaces";

/// Whether this node can run pods in user namespaces, from what the kernel offers:
/// idmapped mounts (mount_setattr exists) and user namespaces (user.max_user_namespaces).
pub fn check_support(has_idmap: bool, max_user_namespaces: Option<u64>) -> Result<(), String> {
    if max_user_namespaces == Some(0) {
        return Err(format!("{UNSUPPORTED}: user.max_user_namespaces is 0"));
    }
    if !has_idmap {
        return Err(format!(
            "{UNSUPPORTED}: the kernel has no idmapped mounts (Linux 5.12 or later needed)"
        ));
    }
    Ok(())
}

/// [`check_support`] on this host.
pub fn host_support() -> Result<(), String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    check_support(crate::idmap::kernel_has_idmap(), max)
}

/// The lease store: a [`LeaseDir`] whose slots are the ranges' first host ids.
pub struct UsernsLeases {
    leases: LeaseDir,
    range: IdRange,
}

impl From<LeaseError> for UsernsError {
    fn from(e: LeaseError) -> UsernsError {
        UsernsError::Lease {
            path: e.path,
            source: e.source,
        }
    }
}

impl UsernsLeases {
    pub fn new(dir: PathBuf, range: IdRange) -> UsernsLeases {
        // 10: the longest u32.
        UsernsLeases {
            leases: LeaseDir::new(dir, 10),
            range,
        }
    }

    /// `<data-dir>/userns` over this host's node range.
    pub fn for_host(data_dir: &Path) -> Result<UsernsLeases, UsernsError> {
        Ok(UsernsLeases::new(data_dir.join("userns"), host_range()?))
    }

    /// Leases a free range to `owner` (a pod dir) and returns its first host id. A range
    /// `owner` already holds is returned again. Continues after the last range handed
    /// out, so a released range is not reused at once; when the node range is full,
    /// leases whose owner dir is gone (a crashed supervisor, a reboot) are reclaimed.
    pub fn allocate(&self, owner: &Path) -> Result<u32, UsernsError> {
        let blocks = self.range.blocks();
        let first = self.range.first;
        let start = self
            .leases
            .last_reserved()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|b| *b >= first)
            .map(|b| (b - first) / IDS_PER_POD + 1)
            .filter(|i| *i < blocks)
            .unwrap_or(0);
        let candidates =
            || (0..blocks).map(move |k| (first + ((start + k) % blocks) * IDS_PER_POD).to_string());
        match self.leases.allocate_once(owner, candidates)? {
            Some(slot) => slot.parse().map_err(|_| UsernsError::Exhausted),
            None => Err(UsernsError::Exhausted),
        }
    }

    /// The leases as (first host id, owner).
    pub fn leases(&self) -> Vec<(u32, PathBuf)> {
        self.leases
            .leases()
            .into_iter()
            .filter_map(|(slot, owner)| Some((slot.parse().ok()?, owner)))
            .collect()
    }

    /// Releases every range `owner` holds (absent is fine).
    pub fn release(&self, owner: &Path) -> Result<(), UsernsError> {
        Ok(self.leases.release_owner(owner)?)
    }
}

/// Releases what a pod dir holds in `<data-dir>/userns` without reading the node range
/// (cleanup after a crashed supervisor, whatever /etc/subuid says now).
pub fn release_pod(data_dir: &Path, pod_dir: &Path) -> Result<(), UsernsError> {
    UsernsLeases::new(data_dir.join("userns"), IdRange::DEFAULT).release(pod_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_skips_the_first_65536_ids() {
        let r = node_range(None, None, None).unwrap();
        assert_eq!(r, IdRange::DEFAULT);
        assert_eq!(r.first, 65536);
        assert_eq!(r.blocks(), 65535);
        // A kubelet user without subordinate ids also gets the default.
        assert_eq!(
            node_range(Some("root:100000:65536\n"), None, Some(999)).unwrap(),
            r
        );
    }

    #[test]
    fn the_kubelet_entry_of_subuid_is_the_node_range() {
        let sub = "alice:100000:65536\nkubelet:655360:7208960\n";
        let r = node_range(Some(sub), Some(sub), Some(999)).unwrap();
        assert_eq!(
            r,
            IdRange {
                first: 655360,
                len: 7208960
            }
        );
        // By uid as well as by name.
        let sub = "999:655360:7208960\n";
        assert_eq!(
            node_range(Some(sub), Some(sub), Some(999)).unwrap().first,
            655360
        );
    }

    #[test]
    fn unusable_ranges_get_kubelets_words() {
        let e = |u: &str, g: &str| {
            node_range(Some(u), Some(g), Some(1))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("kubelet:100000:7208960", "kubelet:100000:7208960"),
            "kubelet mappings: kubelet user assigned ID 100000 is not a multiple of 65536"
        );
        assert_eq!(
            e("kubelet:0:7208960", "kubelet:0:7208960"),
            "kubelet mappings: kubelet user assigned ID 0 must be greater or equal to 65536"
        );
        assert_eq!(
            e("kubelet:65536:70000", "kubelet:65536:70000"),
            "kubelet mappings: kubelet user assigned IDs length 70000 is not a multiple of 65536"
        );
        assert_eq!(
            e("kubelet:65536:655360", "kubelet:65536:655360"),
            "kubelet mappings: kubelet user assigned IDs are not enough to support 110 pods"
        );
        assert!(e("kubelet:65536:7208960", "kubelet:131072:7208960")
            .contains("uids and gids mappings differ"));
    }

    #[test]
    fn a_node_without_user_namespaces_or_idmapped_mounts_gets_kubelets_words() {
        assert!(check_support(true, Some(15000)).is_ok());
        assert!(check_support(true, None).is_ok());
        let e = check_support(true, Some(0)).unwrap_err();
        assert!(
            e.starts_with(
                "can't set `spec.hostUsers: false`, runtime does not support user namespaces"
            ),
            "{e}"
        );
        assert!(e.ends_with("user.max_user_namespaces is 0"));
        let e = check_support(false, Some(15000)).unwrap_err();
        assert!(e.contains("no idmapped mounts"), "{e}");
    }

    fn store(name: &str, range: IdRange) -> (PathBuf, UsernsLeases) {
        let dir = std::env::temp_dir().join(format!("podrun-userns-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let leases = UsernsLeases::new(dir.join("userns"), range);
        (dir, leases)
    }

    #[test]
    fn live_pods_never_share_a_range_and_released_ranges_are_not_reused_at_once() {
        let (dir, l) = store(
            "unique",
            IdRange {
                first: 65536,
                len: 3 * 65536,
            },
        );
        let owners: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("pod{i}"))).collect();
        for o in &owners {
            std::fs::create_dir_all(o).unwrap();
        }
        let got: Vec<u32> = owners.iter().map(|o| l.allocate(o).unwrap()).collect();
        assert_eq!(got, vec![65536, 131072, 196608]);
        // Asking again for the same pod gives its own range back.
        assert_eq!(l.allocate(&owners[1]).unwrap(), 131072);
        assert!(matches!(
            l.allocate(&dir.join("pod3")),
            Err(UsernsError::Exhausted)
        ));
        l.release(&owners[0]).unwrap();
        l.release(&dir.join("not-an-owner")).unwrap();
        let p4 = dir.join("pod4");
        std::fs::create_dir_all(&p4).unwrap();
        assert_eq!(l.allocate(&p4).unwrap(), 65536);
        for o in owners.iter().chain([&p4]) {
            l.release(o).unwrap();
        }
        assert!(l.leases().is_empty());
        // Rotation: after 65536 the next pod starts past the last range handed out.
        assert_eq!(l.allocate(&p4).unwrap(), 131072);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leases_of_vanished_pods_are_reclaimed_when_the_range_is_full() {
        let (dir, l) = store(
            "stale",
            IdRange {
                first: 65536,
                len: 65536,
            },
        );
        let gone = dir.join("gone");
        assert_eq!(l.allocate(&gone).unwrap(), 65536);
        let live = dir.join("live");
        std::fs::create_dir_all(&live).unwrap();
        assert_eq!(l.allocate(&live).unwrap(), 65536);
        assert_eq!(l.leases(), vec![(65536, live.clone())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
