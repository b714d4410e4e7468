//! Taints and tolerations: which taint a pod does not tolerate, and which running pods a
//! NoExecute taint evicts now or after their tolerationSeconds (the taint manager's rule).
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// `Toleration.ToleratesTaint`: an empty effect matches every effect, an empty key (only
/// valid with `Exists`) every key; `Equal` (or no operator) compares values.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

pub fn tolerated_by(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint (in the node's order) that passes `filter` and no toleration matches.
pub fn find_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .find(|t| filter(t) && !tolerated_by(tolerations, t))
}

/// The scheduler's filter: only NoSchedule and NoExecute taints keep a pod off the node;
/// PreferNoSchedule only lowers a node's score.
pub fn is_do_not_schedule(t: &Taint) -> bool {
    t.effect == "NoSchedule" || t.effect == "NoExecute"
}

pub fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// PreferNoSchedule taints the pod does not tolerate (reported, never blocking).
pub fn untolerated_prefer_no_schedule<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
) -> Vec<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated_by(tolerations, t))
        .collect()
}

/// When a NoExecute taint makes a running pod go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictionTime {
    /// Not tolerated (or tolerationSeconds <= 0, or its time has come): delete now.
    Now,
    /// Tolerated for tolerationSeconds: delete at this instant unless the taint goes first.
    At(Timestamp),
}

/// One pod the taint manager marks for deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct Eviction<'a> {
    pub pod: &'a Pod,
    pub when: EvictionTime,
}

impl Eviction<'_> {
    /// The TaintManagerEviction event message.
    pub fn message(&self) -> String {
        format!(
            "Marking for deletion Pod {}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.pod.metadata.name.as_deref().unwrap_or("")
        )
    }
}

/// The pods that the node's NoExecute taints evict, as the taint eviction controller
/// decides: a pod that does not tolerate every NoExecute taint goes now; one that
/// tolerates them all goes after the smallest tolerationSeconds among the tolerations
/// used (none given: it stays forever; <= 0: now). The clock starts at the later of the
/// newest NoExecute taint's timeAdded and the pod's start, so a restart of podrun does
/// not restart the clock. Pods returned with `At(t)` where `t <= now` come back as `Now`;
/// call again on every taint change and when the earliest `At` passes.
pub fn noexecute_evictions<'a>(
    taints: &[Taint],
    pods: &'a [Pod],
    now: Timestamp,
) -> Vec<Eviction<'a>> {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Vec::new();
    }
    let newest_taint = no_execute
        .iter()
        .filter_map(|t| t.time_added.as_ref().map(|x| x.0))
        .max();
    let mut out = Vec::new();
    for pod in pods {
        let tolerations = pod_tolerations(pod);
        let mut min_seconds: Option<i64> = None;
        let mut all_tolerated = true;
        for taint in &no_execute {
            let used: Vec<&Toleration> =
                tolerations.iter().filter(|t| tolerates(t, taint)).collect();
            if used.is_empty() {
                all_tolerated = false;
                break;
            }
            for t in used {
                if let Some(s) = t.toleration_seconds {
                    min_seconds = Some(min_seconds.map_or(s, |m| m.min(s)));
                }
            }
        }
        let when = if !all_tolerated {
            EvictionTime::Now
        } else {
            match min_seconds {
                None => continue,
                Some(s) if s <= 0 => EvictionTime::Now,
                Some(s) => {
                    let started = pod_start(pod);
                    let since = match (newest_taint, started) {
                        (Some(a), Some(b)) => a.max(b),
                        (Some(a), None) | (None, Some(a)) => a,
                        (None, None) => now,
                    };
                    let at = since
                        .checked_add(SignedDuration::from_secs(s))
                        .unwrap_or(Timestamp::MAX);
                    if at <= now {
                        EvictionTime::Now
                    } else {
                        EvictionTime::At(at)
                    }
                }
            }
        };
        out.push(Eviction { pod, when });
    }
    out
}

fn pod_start(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }
    fn tol(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: secs,
        }
    }

    #[test]
    fn toleration_matching_table() {
        let t = taint("tag", "test", "NoExecute");
        let cases = [
            (tol("tag", "Equal", "test", "NoExecute", None), true),
            (tol("tag", "", "test", "NoExecute", None), true), // empty operator is Equal
            (tol("tag", "Equal", "other", "NoExecute", None), false),
            (tol("tag", "Equal", "test", "NoSchedule", None), false),
            (tol("tag", "Equal", "test", "", None), true), // empty effect matches all
            (tol("tag", "Exists", "", "NoExecute", None), true),
            (tol("tag", "Exists", "", "", None), true),
            (tol("", "Exists", "", "", None), true), // empty key + Exists tolerates everything
            (tol("", "Exists", "", "NoSchedule", None), false),
            (tol("other", "Exists", "", "", None), false),
            (tol("tag", "Gt", "1", "", None), false), // unknown operator tolerates nothing
        ];
        for (tl, want) in cases {
            assert_eq!(tolerates(&tl, &t), want, "{tl:?}");
        }
    }

    #[test]
    fn prefer_no_schedule_never_blocks() {
        let taints = vec![taint("tag", "test", "PreferNoSchedule")];
        assert_eq!(find_untolerated(&taints, &[], is_do_not_schedule), None);
        assert_eq!(untolerated_prefer_no_schedule(&taints, &[]).len(), 1);
        let taints = vec![
            taint("a", "", "PreferNoSchedule"),
            taint("tag", "test", "NoSchedule"),
        ];
        assert_eq!(
            find_untolerated(&taints, &[], is_do_not_schedule).map(|t| t.key.as_str()),
            Some("tag")
        );
    }

    fn pod(name: &str, tolerations: Vec<Toleration>, started: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("dev".into()),
                creation_timestamp: Some(Time(Timestamp::from_second(started).unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                tolerations: Some(tolerations),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn noexecute_now_later_never() {
        let mut t = taint("tag", "test", "NoExecute");
        t.time_added = Some(Time(Timestamp::from_second(1000).unwrap()));
        let taints = vec![t, taint("soft", "", "PreferNoSchedule")];
        let pods = vec![
            pod("plain", vec![], 0),
            pod(
                "forever",
                vec![tol("tag", "Equal", "test", "NoExecute", None)],
                0,
            ),
            pod(
                "sixty",
                vec![tol("tag", "Exists", "", "NoExecute", Some(60))],
                0,
            ),
            pod("zero", vec![tol("tag", "Exists", "", "", Some(0))], 0),
            pod(
                "min",
                vec![
                    tol("tag", "Exists", "", "", Some(300)),
                    tol("", "Exists", "", "", Some(30)),
                ],
                0,
            ),
            pod(
                "late-start",
                vec![tol("tag", "Exists", "", "NoExecute", Some(60))],
                2000,
            ),
        ];
        let now = Timestamp::from_second(1010).unwrap();
        let ev = noexecute_evictions(&taints, &pods, now);
        let got: Vec<(&str, EvictionTime)> = ev
            .iter()
            .map(|e| (e.pod.metadata.name.as_deref().unwrap(), e.when.clone()))
            .collect();
        let at = |s| EvictionTime::At(Timestamp::from_second(s).unwrap());
        assert_eq!(
            got,
            vec![
                ("plain", EvictionTime::Now),
                ("sixty", at(1060)),
                ("zero", EvictionTime::Now),
                ("min", at(1030)),
                ("late-start", at(2060)),
            ]
        );
        assert_eq!(ev[0].message(), "Marking for deletion Pod dev/plain");
        // Once the time has come, the pod is due now.
        let later = noexecute_evictions(&taints, &pods, Timestamp::from_second(1061).unwrap());
        assert!(later.iter().any(
            |e| e.pod.metadata.name.as_deref() == Some("sixty") && e.when == EvictionTime::Now
        ));
    }

    #[test]
    fn no_noexecute_taint_no_eviction() {
        let taints = vec![taint("tag", "test", "NoSchedule")];
        let pods = vec![pod("plain", vec![], 0)];
        assert!(noexecute_evictions(&taints, &pods, Timestamp::from_second(5).unwrap()).is_empty());
    }
}
