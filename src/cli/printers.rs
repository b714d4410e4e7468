//! kubectl's output conventions: aligned tables, human ages, and the pod STATUS, READY and
//! RESTARTS columns computed exactly as `kubectl get pods` computes them.
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;

/// Formats rows as kubectl's tabwriter does: columns padded to the widest cell plus 3.
pub fn table(rows: &[Vec<String>]) -> String {
    table_pad(rows, 3)
}

/// Formats rows with `pad` spaces after the widest cell of each column (describe uses 2).
pub fn table_pad(rows: &[Vec<String>], pad: usize) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// kubectl's human duration (k8s.io/apimachinery/pkg/util/duration.HumanDuration).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of a timestamp as kubectl prints it ("<unknown>" when absent).
pub fn age(t: Option<&Timestamp>) -> String {
    match t {
        Some(t) => human_duration(crate::util::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn is_restartable_init(c: Option<&Container>) -> bool {
    c.and_then(|c| c.restart_policy.as_deref()) == Some("Always")
}

/// The READY, STATUS and RESTARTS columns of `kubectl get pods`.
pub struct PodColumns {
    pub ready: String,
    pub status: String,
    pub restarts: String,
}

/// Computes the columns with kubectl's printPod rules.
pub fn pod_columns(pod: &Pod) -> PodColumns {
    let empty = Default::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let status = pod.status.clone().unwrap_or_default();
    let init_specs: &[Container] = spec.init_containers.as_deref().unwrap_or(&[]);
    let mut total = spec.containers.len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init(Some(c)))
            .count();
    let mut tally = Tally::default();
    let mut reason = status
        .reason
        .clone()
        .or(status.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let init = init_reason(&status, init_specs, &mut tally);
    let initialized = has_condition(&status, "Initialized");
    if let Some(r) = &init {
        reason = r.clone();
    }
    if init.is_none() || initialized {
        reason = containers_reason(&status, &mut tally, reason);
    }
    let phase = status.phase.as_deref().unwrap_or("");
    if pod.metadata.deletion_timestamp.is_some() && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    if total == 0 {
        total = spec.containers.len();
    }
    let restarts = match tally.last_restart {
        Some(t) if tally.restarts > 0 => format!("{} ({} ago)", tally.restarts, age(Some(&t))),
        _ => tally.restarts.to_string(),
    };
    PodColumns {
        ready: format!("{}/{total}", tally.ready),
        status: reason,
        restarts,
    }
}

/// Ready containers, restarts and the latest restart, summed over the statuses.
#[derive(Default)]
struct Tally {
    ready: usize,
    restarts: i32,
    last_restart: Option<Timestamp>,
}

impl Tally {
    fn note_restarts(&mut self, cs: &ContainerStatus) {
        self.restarts += cs.restart_count;
        if let Some(t) = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
        {
            if self.last_restart.is_none_or(|l| l < t.0) {
                self.last_restart = Some(t.0);
            }
        }
    }
}

fn has_condition(status: &k8s_openapi::api::core::v1::PodStatus, type_: &str) -> bool {
    status
        .conditions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// kubectl's word for a terminated container: its reason, else Signal:N or ExitCode:N.
fn terminated_reason(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> String {
    match t.reason.as_deref() {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => match t.signal {
            Some(s) if s != 0 => format!("Signal:{s}"),
            _ => format!("ExitCode:{}", t.exit_code),
        },
    }
}

/// The init containers' part: Some(`Init:...`) while the pod is initializing.
fn init_reason(
    status: &k8s_openapi::api::core::v1::PodStatus,
    init_specs: &[Container],
    tally: &mut Tally,
) -> Option<String> {
    let init_statuses = status.init_container_statuses.as_deref().unwrap_or(&[]);
    for (i, cs) in init_statuses.iter().enumerate() {
        tally.note_restarts(cs);
        let cspec = init_specs.iter().find(|c| c.name == cs.name);
        if is_restartable_init(cspec) && cs.started == Some(true) {
            if cs.ready {
                tally.ready += 1;
            }
            continue;
        }
        let st = cs.state.clone().unwrap_or_default();
        if let Some(t) = &st.terminated {
            if t.exit_code == 0 {
                continue;
            }
            return Some(format!("Init:{}", terminated_reason(t)));
        }
        let waiting = st
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .filter(|r| !r.is_empty() && r != "PodInitializing");
        return Some(match waiting {
            Some(w) => format!("Init:{w}"),
            None => format!("Init:{i}/{}", init_specs.len()),
        });
    }
    None
}

/// The regular containers' part, walked last to first as kubectl does.
fn containers_reason(
    status: &k8s_openapi::api::core::v1::PodStatus,
    tally: &mut Tally,
    mut reason: String,
) -> String {
    let mut has_running = false;
    for cs in status.container_statuses.iter().flatten().rev() {
        tally.note_restarts(cs);
        let st = cs.state.clone().unwrap_or_default();
        if let Some(r) = st
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .filter(|r| !r.is_empty())
        {
            reason = r;
        } else if let Some(t) = &st.terminated {
            reason = terminated_reason(t);
        } else if cs.ready && st.running.is_some() {
            has_running = true;
            tally.ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = if has_condition(status, "Ready") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }

    #[test]
    fn table_pads_columns_by_three() {
        let t = table(&[
            vec!["NAME".into(), "READY".into()],
            vec!["pod-base".into(), "1/2".into()],
        ]);
        assert_eq!(t, "NAME       READY\npod-base   1/2\n");
    }

    fn pod_from(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn crashloop_container_shows_its_waiting_reason() {
        let pod = pod_from(serde_json::json!({
            "metadata": {"name": "pod-base"},
            "spec": {"containers": [{"name": "nginx"}, {"name": "busybox"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "nginx", "ready": true, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}},
                {"name": "busybox", "ready": false, "restartCount": 3, "image": "", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        }));
        let c = pod_columns(&pod);
        assert_eq!(
            (c.ready.as_str(), c.status.as_str(), c.restarts.as_str()),
            ("1/2", "CrashLoopBackOff", "3")
        );
    }

    #[test]
    fn init_progress_shows_init_n_of_m() {
        let pod = pod_from(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "main"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}}
            ]}
        }));
        assert_eq!(pod_columns(&pod).status, "Init:1/2");
    }
}
