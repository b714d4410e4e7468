//! Node admission: kube-scheduler predicates (nodeName, nodeSelector, affinity, taints, resource fit) for this one node.
//!
//! [`admit`] is a pure function of (pod, node, pods already on the node): no I/O, no
//! clock. It runs kube-scheduler's filters in the default profile's order and stops at
//! the first plugin that rejects the node, as the framework does, then words the result
//! as the FailedScheduling event does, including the `preemption:` part that PostFilter
//! (DefaultPreemption) appends:
//!
//! `0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.`
//!
//! A pod whose spec.nodeName is set never meets the scheduler: if it names another node
//! nobody here runs it (it stays Pending); if it names this node, kubelet's own admission
//! (resources, node affinity, ports, NoExecute taints) accepts or rejects it (phase Failed).
//!
//! Use from the supervisor: `let node = NodeStore::new(data_dir).load()?;` then
//! `admit(&pod, &node, &pods_on_node)`; on `Unschedulable`, record PodScheduled=False
//! (reason [`CONDITION_UNSCHEDULABLE`]) and a Warning [`EVENT_FAILED_SCHEDULING`] event from
//! [`SCHEDULER_NAME`], and admit again whenever the node (its `resourceVersion`) or the set
//! of pods changes. For NoExecute taints, [`taints::noexecute_evictions`] says which
//! running pods go now and which at a later instant.
pub mod affinity;
pub mod resources;
pub mod selector;
pub mod taints;

pub use crate::manifest::scheduling::validate_scheduling;
pub use crate::manifest::validate::{ErrorType, FieldError, InvalidError};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Taint};
use resources::Insufficient;
use std::collections::BTreeMap;

/// The outcome of admitting one pod on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The pod runs here.
    Admitted(Admitted),
    /// kube-scheduler would leave it Pending: condition PodScheduled=False reason
    /// Unschedulable, event Warning FailedScheduling from default-scheduler with
    /// `message`. Retry when the node or its pods change.
    Unschedulable(Unschedulable),
    /// spec.nodeName names another node: it stays Pending, no node here will run it.
    BoundElsewhere { node: String, message: String },
    /// Bound to this node by spec.nodeName and refused by kubelet's admission: phase
    /// Failed, status.reason `reason`, status.message `Pod was rejected: <message>`,
    /// event Warning `reason` with `message`.
    Rejected(Rejected),
    /// spec.schedulingGates is not empty: the scheduler does not try it. Condition
    /// PodScheduled=False reason `SchedulingGated` with [`SCHEDULING_GATED_MESSAGE`], no
    /// event; kubectl shows STATUS `SchedulingGated`.
    SchedulingGated { gates: Vec<String> },
    /// The API server would refuse the pod (field errors in its words).
    Invalid(InvalidError),
}

pub const SCHEDULING_GATED_REASON: &str = "SchedulingGated";
pub const SCHEDULING_GATED_MESSAGE: &str =
    "Scheduling is blocked due to non-empty scheduling gates";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub node: String,
    /// True when the scheduler chose the node (event Scheduled); false when spec.nodeName
    /// bound the pod and the scheduler never saw it.
    pub scheduled: bool,
    /// What scoring would have weighed (preferences, PreferNoSchedule taints): on one node
    /// they change nothing, but a user may want to know.
    pub notes: Vec<String>,
}

impl Admitted {
    /// The Scheduled event message: `Successfully assigned dev/NAME to NODE`.
    pub fn scheduled_message(&self, pod: &Pod) -> String {
        format!(
            "Successfully assigned {}/{} to {}",
            affinity::pod_namespace(pod),
            pod.metadata.name.as_deref().unwrap_or(""),
            self.node
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// The scheduler plugin that rejected the node (NodeAffinity, TaintToleration, ...).
    pub plugin: &'static str,
    /// Its reasons, e.g. ["Insufficient cpu", "Insufficient memory"].
    pub reasons: Vec<String>,
    /// False when no change of pods on the node can help (UnschedulableAndUnresolvable).
    pub resolvable: bool,
    /// The FailedScheduling event message.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// `OutOfmemory`, `OutOfcpu`, `OutOfpods`, `NodeAffinity`, `NodePorts`, `TaintToleration`.
    pub reason: String,
    pub message: String,
}

/// Event source, reasons and condition reason the scheduler uses.
pub const SCHEDULER_NAME: &str = "default-scheduler";
pub const EVENT_FAILED_SCHEDULING: &str = "FailedScheduling";
pub const EVENT_SCHEDULED: &str = "Scheduled";
/// PodScheduled=False reason for a pod that fits no node.
pub const CONDITION_UNSCHEDULABLE: &str = "Unschedulable";
/// Event reason (and source `taint-eviction-controller`) for a NoExecute eviction.
pub const EVENT_TAINT_EVICTION: &str = "TaintManagerEviction";
pub const TAINT_EVICTION_SOURCE: &str = "taint-eviction-controller";

pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NODE_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// kubelet's words for an untolerated NoExecute taint at admission.
pub const ERR_TAINTS_KUBELET: &str = "node(s) had taints that the pod didn't tolerate";

/// The FailedScheduling reason for an untolerated taint. kube-scheduler v1.26 to v1.34
/// name it (`{tag: test}`); kubernetes#134740 (v1.35, backported to a v1.34 patch
/// release by #135023) hides key and value behind `node(s) had untolerated taint(s)`
/// for privacy. One host has nothing to hide, and the named form is the one the seed
/// walk-through and users search for, so podrun keeps it.
pub fn untolerated_taint_reason(t: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        t.key,
        t.value.as_deref().unwrap_or("")
    )
}

/// A filter plugin's rejection.
struct Failure {
    plugin: &'static str,
    reasons: Vec<String>,
    resolvable: bool,
}

impl Failure {
    fn new(plugin: &'static str, reason: impl Into<String>, resolvable: bool) -> Failure {
        Failure {
            plugin,
            reasons: vec![reason.into()],
            resolvable,
        }
    }
}

static EMPTY_SPEC: std::sync::LazyLock<PodSpec> = std::sync::LazyLock::new(PodSpec::default);

fn spec(pod: &Pod) -> &PodSpec {
    pod.spec.as_ref().unwrap_or(&EMPTY_SPEC)
}

fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn same_pod(a: &Pod, b: &Pod) -> bool {
    match (&a.metadata.uid, &b.metadata.uid) {
        (Some(x), Some(y)) => x == y,
        _ => {
            a.metadata.name == b.metadata.name
                && affinity::pod_namespace(a) == affinity::pod_namespace(b)
        }
    }
}

/// NodeAffinity's Filter: nodeSelector AND required node affinity.
fn node_affinity_matches(pod: &Pod, node: &Node) -> bool {
    let labels = crate::node::node_labels(node);
    let name = crate::node::node_name(node);
    let s = spec(pod);
    let selector_ok = s
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = s
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok && required.is_none_or(|r| selector::node_selector_matches(r, labels, name))
}

/// NodeAffinity's PreFilter: terms that all pin node names (matchFields metadata.name In)
/// narrow the candidate nodes; `Err` when they pin none at all (conflict), `Ok(false)` when
/// this node is not among them.
fn node_affinity_prefilter(pod: &Pod, node_name: &str) -> Result<bool, ()> {
    let Some(req) = spec(pod)
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return Ok(true);
    };
    let mut union: Option<Vec<&str>> = None;
    for t in &req.node_selector_terms {
        let mut term_names: Option<Vec<&str>> = None;
        for r in t.match_fields.iter().flatten() {
            if r.key == "metadata.name" && r.operator == "In" {
                let vals: Vec<&str> = r.values.iter().flatten().map(String::as_str).collect();
                term_names = Some(match term_names {
                    None => vals,
                    Some(prev) => prev.into_iter().filter(|n| vals.contains(n)).collect(),
                });
            }
        }
        // A term without a node-name field leaves every node eligible (terms are ORed).
        let Some(names) = term_names else {
            return Ok(true);
        };
        union.get_or_insert_with(Vec::new).extend(names);
    }
    match union {
        None => Ok(true),
        Some(names) if names.is_empty() => Err(()),
        Some(names) => Ok(names.contains(&node_name)),
    }
}

fn used_ports(existing: &[&Pod]) -> Vec<resources::HostPort> {
    existing
        .iter()
        .flat_map(|p| resources::host_ports(p))
        .collect()
}

fn resource_fit(
    pod_req: &resources::ResourceList,
    node: &Node,
    existing: &[&Pod],
) -> Vec<Insufficient> {
    let used = resources::requested_by(existing);
    resources::fits(
        pod_req,
        existing.len(),
        &used,
        &resources::node_allocatable(node),
    )
}

/// kube-scheduler's filters in the default profile's order; the first rejection wins.
fn scheduler_filters(
    pod: &Pod,
    pod_req: &resources::ResourceList,
    node: &Node,
    existing: &[&Pod],
) -> Result<Option<Failure>, InvalidError> {
    let s = spec(pod);
    let tolerations = s.tolerations.as_deref().unwrap_or(&[]);
    let node_spec = node.spec.as_ref();

    // NodeUnschedulable
    if node_spec.and_then(|n| n.unschedulable).unwrap_or(false) {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        };
        if !taints::tolerated_by(tolerations, &cordon) {
            return Ok(Some(Failure::new(
                "NodeUnschedulable",
                ERR_UNSCHEDULABLE,
                false,
            )));
        }
    }
    // TaintToleration
    if let Some(t) = taints::find_untolerated(
        crate::node::node_taints(node),
        tolerations,
        taints::is_do_not_schedule,
    ) {
        return Ok(Some(Failure::new(
            "TaintToleration",
            untolerated_taint_reason(t),
            false,
        )));
    }
    // NodeAffinity
    if !node_affinity_matches(pod, node) {
        return Ok(Some(Failure::new("NodeAffinity", ERR_NODE_AFFINITY, false)));
    }
    // NodePorts
    if resources::port_conflict(&resources::host_ports(pod), &used_ports(existing)) {
        return Ok(Some(Failure::new("NodePorts", ERR_NODE_PORTS, true)));
    }
    // NodeResourcesFit
    let insufficient = resource_fit(pod_req, node, existing);
    if !insufficient.is_empty() {
        return Ok(Some(Failure {
            plugin: "NodeResourcesFit",
            reasons: insufficient.iter().map(|i| i.reason.clone()).collect(),
            resolvable: true,
        }));
    }
    // InterPodAffinity
    match affinity::check(pod, crate::node::node_labels(node), existing) {
        Ok(None) => Ok(None),
        Ok(Some(f)) => Ok(Some(Failure::new(
            "InterPodAffinity",
            f.reason(),
            f != affinity::InterPodFailure::Affinity,
        ))),
        Err(e) => Err(invalid(pod, "spec.affinity", None, e.to_string())),
    }
}

/// The FailedScheduling message for one node rejected with `reasons` (or, for a
/// PreFilter rejection, `prefilter`), followed by DefaultPreemption's verdict.
fn fit_error_message(
    pod: &Pod,
    prefilter: Option<&str>,
    reasons: &[String],
    resolvable: bool,
) -> String {
    let mut msg = String::from("0/1 nodes are available:");
    if let Some(p) = prefilter {
        msg.push_str(&format!(" {p}."));
    } else {
        let mut hist: Vec<String> = reasons.iter().map(|r| format!("1 {r}")).collect();
        hist.sort();
        msg.push_str(&format!(" {}.", hist.join(", ")));
    }
    msg.push_str(" preemption: ");
    if spec(pod).preemption_policy.as_deref() == Some("Never") {
        msg.push_str("not eligible due to preemptionPolicy=Never.");
    } else if resolvable {
        // Every pod here has the same priority (podrun has no PriorityClasses), so no
        // pod is a lower-priority victim.
        msg.push_str("0/1 nodes are available: 1 No preemption victims found for incoming pod.");
    } else {
        msg.push_str("0/1 nodes are available: 1 Preemption is not helpful for scheduling.");
    }
    msg
}

fn unschedulable(pod: &Pod, f: Failure) -> Decision {
    let message = fit_error_message(pod, None, &f.reasons, f.resolvable);
    Decision::Unschedulable(Unschedulable {
        plugin: f.plugin,
        reasons: f.reasons,
        resolvable: f.resolvable,
        message,
    })
}

/// kubelet's admission of a pod bound to this node (lifecycle.generalFilter): all
/// resource shortfalls, node affinity, ports, then NoExecute taints; the first reason
/// found is the one reported.
fn kubelet_admission(
    pod: &Pod,
    pod_req: &resources::ResourceList,
    node: &Node,
    existing: &[&Pod],
) -> Option<Rejected> {
    if let Some(i) = resource_fit(pod_req, node, existing).into_iter().next() {
        return Some(Rejected {
            reason: format!("OutOf{}", i.resource),
            message: format!(
                "Node didn't have enough resource: {}, requested: {}, used: {}, capacity: {}",
                i.resource, i.requested, i.used, i.capacity
            ),
        });
    }
    let predicate = |name: &str, desc: &str| Rejected {
        reason: name.to_string(),
        message: format!("Predicate {name} failed: {desc}"),
    };
    if !node_affinity_matches(pod, node) {
        return Some(predicate("NodeAffinity", ERR_NODE_AFFINITY));
    }
    if resources::port_conflict(&resources::host_ports(pod), &used_ports(existing)) {
        return Some(predicate("NodePorts", ERR_NODE_PORTS));
    }
    let tolerations = spec(pod).tolerations.as_deref().unwrap_or(&[]);
    if taints::find_untolerated(crate::node::node_taints(node), tolerations, |t| {
        t.effect == "NoExecute"
    })
    .is_some()
    {
        return Some(predicate("TaintToleration", ERR_TAINTS_KUBELET));
    }
    None
}

/// What scoring would weigh on this node; reported, never deciding.
fn preference_notes(pod: &Pod, node: &Node, existing: &[&Pod]) -> Vec<String> {
    let mut notes = Vec::new();
    let labels = crate::node::node_labels(node);
    let name = crate::node::node_name(node);
    let s = spec(pod);
    let preferred = s
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[]);
    if !preferred.is_empty() {
        let total: i32 = preferred.iter().map(|p| p.weight).sum();
        let got: i32 = preferred
            .iter()
            .filter(|p| selector::term_matches(&p.preference, labels, name).unwrap_or(false))
            .map(|p| p.weight)
            .sum();
        notes.push(format!(
            "preferred node affinity: weight {got} of {total} matches this node (the only node, so it runs here regardless)"
        ));
    }
    for (what, terms) in [
        ("preferred pod affinity", affinity::preferred_affinity(pod)),
        (
            "preferred pod anti-affinity",
            affinity::preferred_anti_affinity(pod),
        ),
    ] {
        if !terms.is_empty() {
            let (got, total) = affinity::preferred_score(pod, terms, labels, existing);
            notes.push(format!(
                "{what}: weight {got} of {total} matched by pods on this node (the only node, so it runs here regardless)"
            ));
        }
    }
    let tolerations = s.tolerations.as_deref().unwrap_or(&[]);
    for t in taints::untolerated_prefer_no_schedule(crate::node::node_taints(node), tolerations) {
        notes.push(format!(
            "node has PreferNoSchedule taint {} that the pod does not tolerate (it only lowers the node's score)",
            crate::node::taint_string(t)
        ));
    }
    notes
}

/// One Invalid field error of `pod`, as the API server words it.
fn invalid(pod: &Pod, field: &str, value: Option<String>, detail: String) -> InvalidError {
    InvalidError {
        kind: "Pod".into(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        errors: vec![FieldError {
            field: field.into(),
            kind: ErrorType::Invalid,
            value,
            detail,
        }],
    }
}

/// Admits `pod` on `node`, which already runs `pods_on_node` (terminated pods and the
/// pod itself are ignored; pods being deleted still count, as they do in the scheduler).
pub fn admit(pod: &Pod, node: &Node, pods_on_node: &[Pod]) -> Decision {
    if let Err(e) = validate_scheduling(pod) {
        return Decision::Invalid(e);
    }
    let pod_req = match resources::pod_requests(pod) {
        Ok(r) => r,
        Err((path, e)) => {
            return Decision::Invalid(invalid(
                pod,
                &path,
                Some(format!("{:?}", e.0)),
                e.to_string(),
            ))
        }
    };
    let existing: Vec<&Pod> = pods_on_node
        .iter()
        .filter(|p| !is_terminated(p) && !same_pod(p, pod))
        .collect();
    let node_name = crate::node::node_name(node);

    if let Some(bound) = spec(pod).node_name.as_deref().filter(|n| !n.is_empty()) {
        if bound != node_name {
            return Decision::BoundElsewhere {
                node: bound.to_string(),
                message: format!(
                    "pod is bound to node {bound:?} by spec.nodeName, which is not this node ({node_name:?}); it stays Pending"
                ),
            };
        }
        return match kubelet_admission(pod, &pod_req, node, &existing) {
            Some(r) => Decision::Rejected(r),
            None => Decision::Admitted(Admitted {
                node: node_name.to_string(),
                scheduled: false,
                notes: preference_notes(pod, node, &existing),
            }),
        };
    }

    let gates: Vec<String> = spec(pod)
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.clone())
        .collect();
    if !gates.is_empty() {
        return Decision::SchedulingGated { gates };
    }
    match node_affinity_prefilter(pod, node_name) {
        Err(()) => {
            return Decision::Unschedulable(Unschedulable {
                plugin: "NodeAffinity",
                reasons: vec![ERR_NODE_AFFINITY_CONFLICT.into()],
                resolvable: false,
                message: fit_error_message(pod, Some(ERR_NODE_AFFINITY_CONFLICT), &[], false),
            })
        }
        Ok(false) => {
            return unschedulable(
                pod,
                Failure::new(
                    "NodeAffinity",
                    "node(s) didn't satisfy plugin(s) [NodeAffinity]",
                    false,
                ),
            )
        }
        Ok(true) => {}
    }
    match scheduler_filters(pod, &pod_req, node, &existing) {
        Err(e) => Decision::Invalid(e),
        Ok(Some(f)) => unschedulable(pod, f),
        Ok(None) => Decision::Admitted(Admitted {
            node: node_name.to_string(),
            scheduled: true,
            notes: preference_notes(pod, node, &existing),
        }),
    }
}

/// A pod's effective requests and limits (cpu in millicores, the rest in bytes or units)
/// for `describe node`'s tables; `None` when a quantity does not parse.
pub fn pod_requests_and_limits(
    pod: &Pod,
) -> Option<(BTreeMap<String, i128>, BTreeMap<String, i128>)> {
    Some((
        resources::pod_requests(pod).ok()?,
        resources::pod_limits(pod).ok()?,
    ))
}

#[cfg(test)]
mod tests;
