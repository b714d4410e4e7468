//! Pod events as kubelet and the scheduler write them: type, reason, source, message,
//! appended one JSON line each (O_APPEND keeps concurrent writers whole) and aggregated
//! on read as kubectl shows them ("(x4 over 8m38s)").
//!
//! Events outlive their pod as the apiserver keeps them (its --event-ttl, 1 h): when a pod
//! is created its events.jsonl is hard-linked to `<root>/events/<ns>/<name>_<uid>.jsonl`,
//! so every later append lands in both names and the second one survives the removal of
//! the pod's directory. [`prune_retained`] drops those a deleted pod left an hour ago.
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long the events of a deleted pod are kept (kube-apiserver's default --event-ttl).
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// One event occurrence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    /// kubelet, default-scheduler, taint-eviction-controller ...
    pub source: String,
    /// The part of the pod it is about, e.g. `spec.containers{nginx}` (empty: the pod).
    #[serde(default, rename = "fieldPath")]
    pub field_path: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

/// Events with identical type, reason, source, object and message folded together.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedEvent {
    pub record: EventRecord,
    pub count: u32,
    pub first: String,
    pub last: String,
}

/// Appends one event to `path` (events.jsonl in the pod's state dir).
pub fn record(
    path: &Path,
    type_: &str,
    reason: &str,
    source: &str,
    field_path: &str,
    message: &str,
) -> std::io::Result<()> {
    let ev = EventRecord {
        type_: type_.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        source: source.to_string(),
        field_path: field_path.to_string(),
        time: crate::util::now().to_string(),
    };
    let mut line = serde_json::to_vec(&ev).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)
}

/// Reads every event of a pod, oldest first; unreadable lines are skipped.
pub fn read_all(path: &Path) -> Vec<EventRecord> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Folds repeated events, ordered by their last occurrence (as kubectl describe sorts).
pub fn aggregate(events: &[EventRecord]) -> Vec<AggregatedEvent> {
    let mut out: Vec<AggregatedEvent> = Vec::new();
    for ev in events {
        let key = |a: &AggregatedEvent| {
            a.record.type_ == ev.type_
                && a.record.reason == ev.reason
                && a.record.source == ev.source
                && a.record.field_path == ev.field_path
                && a.record.message == ev.message
        };
        if let Some(agg) = out.iter_mut().find(|a| key(a)) {
            agg.count += 1;
            agg.last = ev.time.clone();
        } else {
            out.push(AggregatedEvent {
                record: ev.clone(),
                count: 1,
                first: ev.time.clone(),
                last: ev.time.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.last.cmp(&b.last));
    out
}

/// Where retained event files live under the state root.
pub fn retained_dir(root: &Path) -> PathBuf {
    root.join("events")
}

/// The node's own events (a static pod manifest that does not parse), beside the
/// retained pods' (a file where they keep namespace directories: never pruned as one).
pub fn node_events_path(root: &Path) -> PathBuf {
    retained_dir(root).join("node.jsonl")
}

/// The retained name of pod `ns/name` (uid `uid`)'s events.
pub fn retained_path(root: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    retained_dir(root)
        .join(ns)
        .join(format!("{name}_{uid}.jsonl"))
}

/// Creates the pod's events.jsonl in `pod_dir` and its retained second name (a hard
/// link, so both always hold the same events).
pub fn link_for_retention(
    root: &Path,
    pod_dir: &Path,
    ns: &str,
    name: &str,
    uid: &str,
) -> std::io::Result<()> {
    let file = pod_dir.join(super::store::EVENTS_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)?;
    let keep = retained_path(root, ns, name, uid);
    if let Some(parent) = keep.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::hard_link(&file, &keep) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// One retained event file: whose events it holds, and whether its pod still exists.
#[derive(Debug, Clone, PartialEq)]
pub struct RetainedFile {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub path: PathBuf,
}

/// Every retained event file (of live and deleted pods), in no particular order.
pub fn list_retained(root: &Path) -> Vec<RetainedFile> {
    let mut out = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(retained_dir(root)) else {
        return out;
    };
    for ns in namespaces.flatten() {
        let namespace = ns.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(ns.path()) else {
            continue;
        };
        for f in files.flatten() {
            let file_name = f.file_name().to_string_lossy().into_owned();
            // Pod names and uids never hold '_'.
            let Some((name, uid)) = file_name
                .strip_suffix(".jsonl")
                .and_then(|s| s.rsplit_once('_'))
            else {
                continue;
            };
            out.push(RetainedFile {
                namespace: namespace.clone(),
                name: name.to_string(),
                uid: uid.to_string(),
                path: f.path(),
            });
        }
    }
    out
}

/// Removes the retained events of pods deleted (their file has no second link left)
/// and untouched for `ttl`, and namespace directories left empty.
pub fn prune_retained(root: &Path, ttl: Duration) {
    let now = SystemTime::now();
    for f in list_retained(root) {
        let Ok(meta) = std::fs::metadata(&f.path) else {
            continue;
        };
        let idle = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if meta.nlink() <= 1 && idle >= ttl {
            let _ = std::fs::remove_file(&f.path);
            if let Some(parent) = f.path.parent() {
                // Fails (and is meant to) while the namespace still holds files.
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(reason: &str, time: &str) -> EventRecord {
        EventRecord {
            type_: "Warning".into(),
            reason: reason.into(),
            message: "m".into(),
            source: "kubelet".into(),
            field_path: String::new(),
            time: time.into(),
        }
    }

    #[test]
    fn repeated_events_fold_with_count_and_span() {
        let evs = vec![
            ev("BackOff", "2026-01-01T00:00:01Z"),
            ev("Pulled", "2026-01-01T00:00:02Z"),
            ev("BackOff", "2026-01-01T00:00:05Z"),
        ];
        let agg = aggregate(&evs);
        assert_eq!(agg.len(), 2);
        assert_eq!(agg[0].record.reason, "Pulled");
        assert_eq!(agg[1].count, 2);
        assert_eq!(agg[1].first, "2026-01-01T00:00:01Z");
        assert_eq!(agg[1].last, "2026-01-01T00:00:05Z");
    }

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "podrun-events-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn retained_events_outlive_the_pod_dir_until_the_ttl() {
        let root = temp("retain");
        let pod_dir = root.join("pods").join("dev_web");
        std::fs::create_dir_all(&pod_dir).unwrap();
        link_for_retention(&root, &pod_dir, "dev", "web", "u-1").unwrap();
        // Linking twice (a retried create) is harmless.
        link_for_retention(&root, &pod_dir, "dev", "web", "u-1").unwrap();
        let file = pod_dir.join(crate::supervisor::store::EVENTS_FILE);
        record(&file, "Normal", "Scheduled", "default-scheduler", "", "m").unwrap();
        let kept = retained_path(&root, "dev", "web", "u-1");
        assert_eq!(read_all(&kept).len(), 1);
        assert_eq!(
            list_retained(&root),
            vec![RetainedFile {
                namespace: "dev".into(),
                name: "web".into(),
                uid: "u-1".into(),
                path: kept.clone(),
            }]
        );
        // A live pod's events are never pruned, however old.
        prune_retained(&root, Duration::ZERO);
        assert!(kept.exists());
        std::fs::remove_dir_all(&pod_dir).unwrap();
        prune_retained(&root, Duration::from_secs(3600));
        assert_eq!(read_all(&kept).len(), 1, "kept for the TTL after deletion");
        prune_retained(&root, Duration::ZERO);
        assert!(!kept.exists());
        assert!(!retained_dir(&root).join("dev").exists());
        let _ = std::fs::remove_dir_all(&root);
    }
}
