//! Inter-pod affinity and anti-affinity on this node, as kube-scheduler's InterPodAffinity
//! filter decides them with every pod of the cluster on one node.
use super::selector::{Op, Selector, SelectorError};
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use std::collections::BTreeMap;

/// The only label a namespace has here.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

pub fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

pub fn pod_labels(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// A compiled PodAffinityTerm of `owner`.
#[derive(Debug, Clone)]
pub struct AffinityTerm<'a> {
    namespaces: Vec<&'a str>,
    namespace_selector: Selector<'a>,
    selector: Selector<'a>,
    pub topology_key: &'a str,
}

impl<'a> AffinityTerm<'a> {
    pub fn new(
        owner: &'a Pod,
        term: &'a PodAffinityTerm,
    ) -> Result<AffinityTerm<'a>, SelectorError> {
        let mut selector = Selector::from_label_selector(term.label_selector.as_ref())?;
        // matchLabelKeys / mismatchLabelKeys: merged into the selector with the owner's
        // values, as the API server does when it stores the pod.
        if !selector.is_nothing() {
            let labels = pod_labels(owner);
            for k in term.match_label_keys.iter().flatten() {
                if let Some(v) = labels.get(k) {
                    selector.push(k, Op::In, v);
                }
            }
            for k in term.mismatch_label_keys.iter().flatten() {
                if let Some(v) = labels.get(k) {
                    selector.push(k, Op::NotIn, v);
                }
            }
        }
        let listed = term.namespaces.as_deref().unwrap_or(&[]);
        let namespaces = if listed.is_empty() && term.namespace_selector.is_none() {
            vec![pod_namespace(owner)]
        } else {
            listed.iter().map(String::as_str).collect()
        };
        Ok(AffinityTerm {
            namespaces,
            namespace_selector: Selector::from_label_selector(term.namespace_selector.as_ref())?,
            selector,
            topology_key: &term.topology_key,
        })
    }

    /// Whether `pod` is one this term selects: in a listed or selected namespace, and
    /// with matching labels.
    pub fn matches(&self, pod: &Pod) -> bool {
        let ns = pod_namespace(pod);
        let in_ns = self.namespaces.contains(&ns)
            || self
                .namespace_selector
                .matches_with(&|k| (k == NAMESPACE_NAME_LABEL).then_some(ns));
        in_ns && self.selector.matches(pod_labels(pod))
    }
}

fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

pub fn preferred_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

pub fn preferred_anti_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

fn compile<'a>(
    owner: &'a Pod,
    terms: &'a [PodAffinityTerm],
) -> Result<Vec<AffinityTerm<'a>>, SelectorError> {
    terms.iter().map(|t| AffinityTerm::new(owner, t)).collect()
}

/// Which InterPodAffinity rule keeps the pod off the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterPodFailure {
    /// "node(s) didn't match pod affinity rules" (unresolvable).
    Affinity,
    /// "node(s) didn't match pod anti-affinity rules".
    AntiAffinity,
    /// "node(s) didn't satisfy existing pods anti-affinity rules".
    ExistingAntiAffinity,
}

impl InterPodFailure {
    pub fn reason(self) -> &'static str {
        match self {
            InterPodFailure::Affinity => "node(s) didn't match pod affinity rules",
            InterPodFailure::AntiAffinity => "node(s) didn't match pod anti-affinity rules",
            InterPodFailure::ExistingAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules"
            }
        }
    }
}

/// The InterPodAffinity filter for `pod` on a node labelled `node_labels` that runs
/// `existing`. `Err` when the pod's own terms cannot be built (the scheduler fails the
/// pod with that error); existing pods' unbuildable terms are ignored, as the scheduler
/// ignores them.
pub fn check(
    pod: &Pod,
    node_labels: &BTreeMap<String, String>,
    existing: &[&Pod],
) -> Result<Option<InterPodFailure>, SelectorError> {
    let affinity = compile(pod, required_affinity(pod))?;
    let anti = compile(pod, required_anti_affinity(pod))?;

    if !affinity.is_empty() {
        // All topology keys must exist on the node.
        if affinity
            .iter()
            .any(|t| !node_labels.contains_key(t.topology_key))
        {
            return Ok(Some(InterPodFailure::Affinity));
        }
        let some_pod_matches_all = existing
            .iter()
            .any(|p| affinity.iter().all(|t| t.matches(p)));
        // The first pod of a group that has affinity to itself may start when no other
        // pod matches, provided it matches its own terms.
        if !some_pod_matches_all && !affinity.iter().all(|t| t.matches(pod)) {
            return Ok(Some(InterPodFailure::Affinity));
        }
    }

    for t in &anti {
        if node_labels.contains_key(t.topology_key) && existing.iter().any(|p| t.matches(p)) {
            return Ok(Some(InterPodFailure::AntiAffinity));
        }
    }

    for p in existing {
        let terms = required_anti_affinity(p);
        if terms.is_empty() {
            continue;
        }
        for term in terms {
            let Ok(t) = AffinityTerm::new(p, term) else {
                continue;
            };
            if node_labels.contains_key(t.topology_key) && t.matches(pod) {
                return Ok(Some(InterPodFailure::ExistingAntiAffinity));
            }
        }
    }
    Ok(None)
}

/// Sum of the weights of preferred terms that some pod here satisfies (for the report).
pub fn preferred_score(
    owner: &Pod,
    terms: &[WeightedPodAffinityTerm],
    node_labels: &BTreeMap<String, String>,
    existing: &[&Pod],
) -> (i32, i32) {
    let mut got = 0;
    let mut total = 0;
    for w in terms {
        total += w.weight;
        let Ok(t) = AffinityTerm::new(owner, &w.pod_affinity_term) else {
            continue;
        };
        if node_labels.contains_key(t.topology_key) && existing.iter().any(|p| t.matches(p)) {
            got += w.weight;
        }
    }
    (got, total)
}
