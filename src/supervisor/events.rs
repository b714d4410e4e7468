//! Pod events as kubelet and the scheduler write them: type, reason, source, message,
//! appended one JSON line each (O_APPEND keeps concurrent writers whole) and aggregated
//! on read as kubectl shows them ("(x4 over 8m38s)").
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

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
}
