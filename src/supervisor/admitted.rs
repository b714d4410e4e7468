//! The pods admission counts against, read through a cache: one file in the pods
//! directory (written under the pods lock) keeps what each pod's record said the last
//! time, with the stamps of its files, so a pod is read again only when a file of it
//! changed. Without it, admission read and parsed every other pod's record, under the
//! lock: the 1000th pod of a burst waited for 999 reads, and the burst for half a million.
use super::pending::is_bound_and_active;
use super::store::{self, PodStore};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The cache file, in the pods directory (a dot name: no pod is called so).
pub const CACHE_FILE: &str = ".admission.json";

/// One version of a file: inode (atomic writes replace it), mtime in ns, size.
type Stamp = (u64, i128, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.ino(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        m.len(),
    ))
}

/// What one pod's record said: the pod as admission sees it when it is bound and
/// active (None: it takes no room), and the stamps of pod.json and status.json then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    stamps: [Option<Stamp>; 2],
    pod: Option<Pod>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cache {
    pods: BTreeMap<String, Entry>,
}

/// The pods bound to this node that still hold room, but the one in `except`. Call with
/// the pods lock held (the cache is rewritten).
pub fn bound_pods(pods: &PodStore, except: &Path) -> Vec<Pod> {
    let dir = pods.pods_dir();
    let cache_path = dir.join(CACHE_FILE);
    let old: Cache = store::read_json(&cache_path).unwrap_or_default();
    let mut new = Cache::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    for d in entries.flatten() {
        let key = d.file_name().to_string_lossy().into_owned();
        let path = d.path();
        if key.starts_with('.') || path == except || !d.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let stamps = [
            stamp(&path.join(store::POD_FILE)),
            stamp(&path.join(store::STATUS_FILE)),
        ];
        // No pod.json yet: a pod being created, not bound (it binds under this lock).
        if stamps[0].is_none() {
            continue;
        }
        let entry = match old.pods.get(&key) {
            Some(e) if e.stamps == stamps => e.clone(),
            _ => Entry {
                stamps,
                pod: read_bound(&path),
            },
        };
        new.pods.insert(key, entry);
    }
    if new != old {
        let _ = store::write_json(&cache_path, &new);
    }
    new.pods.into_values().filter_map(|e| e.pod).collect()
}

/// A pod's record as admission needs it, when it is bound and active: its status cut
/// down to its phase and conditions (admission asks no more of it).
fn read_bound(dir: &Path) -> Option<Pod> {
    let mut pod: Pod = store::read_json(&dir.join(store::POD_FILE)).ok()?;
    let status: PodStatus = store::read_json(&dir.join(store::STATUS_FILE)).ok()?;
    pod.status = Some(PodStatus {
        phase: status.phase,
        conditions: status.conditions,
        ..Default::default()
    });
    is_bound_and_active(&pod).then_some(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodCondition;

    fn status(phase: &str, scheduled: bool) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: if scheduled { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn pod(root: &Path, name: &str, st: Option<PodStatus>) -> std::path::PathBuf {
        let dir = root.join("pods").join(format!("default_{name}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        store::write_json(&dir.join(store::POD_FILE), &p).expect("pod");
        if let Some(st) = st {
            store::write_json(&dir.join(store::STATUS_FILE), &st).expect("status");
        }
        dir
    }

    fn names(pods: &[Pod]) -> Vec<String> {
        let mut n: Vec<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn only_bound_active_pods_count_and_a_changed_status_is_read_again() {
        let root = std::env::temp_dir().join(format!("podrun-admitted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let me = pod(&root, "me", None);
        pod(&root, "running", Some(status("Running", true)));
        let done = pod(&root, "done", Some(status("Running", true)));
        pod(&root, "pending", Some(status("Pending", false)));
        pod(&root, "new", None);
        let store = PodStore::new(&root);
        assert_eq!(names(&bound_pods(&store, &me)), ["done", "running"]);
        assert!(root.join("pods").join(CACHE_FILE).exists());
        // The cache is taken as it is while no file changed...
        assert_eq!(names(&bound_pods(&store, &me)), ["done", "running"]);
        // ...and a pod whose status changed is read again.
        store::write_json(&done.join(store::STATUS_FILE), &status("Succeeded", true))
            .expect("status");
        assert_eq!(names(&bound_pods(&store, &me)), ["running"]);
        std::fs::remove_dir_all(done).expect("rm");
        assert_eq!(names(&bound_pods(&store, &me)), ["running"]);
        // A broken cache is only a slower admission.
        std::fs::write(root.join("pods").join(CACHE_FILE), "{").expect("broken");
        assert_eq!(names(&bound_pods(&store, &me)), ["running"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
