//! The ReplicaSet controller: keeps `replicas` active pods matching the template (a
//! deleted or failed pod is replaced), removes the surplus in kube's order (not ready
//! before ready, newer before older), and reports the counts as status.
use super::apply::{field_error, invalid, template_errors};
use super::meta::{self, POD_TEMPLATE_HASH};
use super::pods::{self, PodExtras};
use super::store::{self, workload_meta, Workload};
use super::Turn;
use crate::manifest::validate::{ErrorType, FieldError, InvalidError};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;

impl Workload for ReplicaSet {
    const RESOURCE: &'static str = "replicasets";
    const KIND: &'static str = "ReplicaSet";
    const API_VERSION: &'static str = "apps/v1";
    const GROUP_KIND: &'static str = "replicaset.apps";
    workload_meta!();

    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        if let Some(t) = spec.template.as_mut() {
            super::apply::default_template(t);
        }
    }

    fn validate(&self) -> Result<(), InvalidError> {
        let mut errs = Vec::new();
        let spec = self.spec.clone().unwrap_or_default();
        errs.extend(selector_errors(
            Some(&spec.selector),
            spec.template
                .as_ref()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        ));
        errs.extend(replica_errors("spec.replicas", spec.replicas));
        match &spec.template {
            Some(t) => errs.extend(template_errors(t, "spec.template.", &["Always"])),
            None => errs.push(field_error("spec.template", ErrorType::Required, None, "")),
        }
        invalid(Self::KIND, &meta::name(&self.metadata), errs)
    }
}

/// spec.replicas must not be negative.
pub fn replica_errors(field: &str, replicas: Option<i32>) -> Vec<FieldError> {
    match replicas {
        Some(r) if r < 0 => vec![field_error(
            field,
            ErrorType::Invalid,
            Some(r.to_string()),
            "must be greater than or equal to 0",
        )],
        _ => Vec::new(),
    }
}

/// A selector is required, non-empty, and must select the template's labels.
pub fn selector_errors(
    sel: Option<&LabelSelector>,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<FieldError> {
    let empty = |s: &LabelSelector| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
    };
    match sel {
        None => vec![field_error("spec.selector", ErrorType::Required, None, "")],
        Some(s) if empty(s) => vec![field_error(
            "spec.selector",
            ErrorType::Invalid,
            Some("v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}".into()),
            "empty selector is invalid for deployment",
        )],
        Some(s) if !meta::selector_matches(s, labels) => {
            let shown: Vec<String> = labels
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k:?}:{v:?}"))
                .collect();
            vec![field_error(
                "spec.template.metadata.labels",
                ErrorType::Invalid,
                Some(format!("map[string]string{{{}}}", shown.join(", "))),
                "`selector` does not match template `labels`",
            )]
        }
        Some(_) => Vec::new(),
    }
}

/// What one turn does to a ReplicaSet's pods.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// How many pods to create.
    pub create: usize,
    /// The pods to delete (names).
    pub delete: Vec<String>,
    pub status: ReplicaSetStatus,
}

/// kube's ranking of pods to delete first: not running before running, not ready
/// before ready, ready for less time first, more restarts first, newer first.
fn deletion_rank(p: &Pod) -> (u8, u8, i64, i64, i64) {
    let running = u8::from(meta::phase(p) == "Running");
    let since = meta::ready_since(p);
    let restarts: i32 = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    let created = p
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    (
        running,
        u8::from(since.is_some()),
        -since.map(|t| t.as_second()).unwrap_or(0),
        -i64::from(restarts),
        -created,
    )
}

/// The decision for one ReplicaSet from its pods (pure: unit-tested).
pub fn plan(rs: &ReplicaSet, pods: &[&Pod], now: Timestamp) -> Plan {
    let spec = rs.spec.clone().unwrap_or_default();
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut active: Vec<&Pod> = pods.iter().copied().filter(|p| meta::active(p)).collect();
    // Failed pods do not count and are removed so that their replacements are the pods.
    let mut delete: Vec<String> = pods
        .iter()
        .filter(|p| meta::phase(p) == "Failed" && p.metadata.deletion_timestamp.is_none())
        .map(|p| meta::name(&p.metadata))
        .collect();
    let mut create = 0;
    let deleting = store::deleting(&rs.metadata);
    if !deleting && active.len() < want {
        create = want - active.len();
    } else if active.len() > want {
        active.sort_by_key(|p| deletion_rank(p));
        delete.extend(
            active[..active.len() - want]
                .iter()
                .map(|p| meta::name(&p.metadata)),
        );
    }
    let counted: Vec<&&Pod> = pods.iter().filter(|p| meta::active(p)).collect();
    let labels_match = |p: &Pod| {
        spec.template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.as_ref())
            .is_none_or(|l| {
                l.iter()
                    .all(|(k, v)| p.metadata.labels.as_ref().and_then(|pl| pl.get(k)) == Some(v))
            })
    };
    let n = |f: &dyn Fn(&Pod) -> bool| counted.iter().filter(|p| f(p)).count() as i32;
    let status = ReplicaSetStatus {
        replicas: counted.len() as i32,
        fully_labeled_replicas: Some(n(&|p| labels_match(p))),
        ready_replicas: Some(n(&|p| meta::ready_since(p).is_some())),
        available_replicas: Some(n(&|p| meta::available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: None,
        terminating_replicas: None,
    };
    Plan {
        create,
        delete,
        status,
    }
}

/// The pods a ReplicaSet creates: `<rs>-<5 chars>`, its pod-template-hash label kept.
fn new_pods(rs: &ReplicaSet, count: usize) -> Vec<Pod> {
    let Some(template) = rs.spec.as_ref().and_then(|s| s.template.clone()) else {
        return Vec::new();
    };
    let ns = meta::ns(&rs.metadata);
    let name = meta::name(&rs.metadata);
    let owner = meta::controller_ref(ReplicaSet::API_VERSION, ReplicaSet::KIND, &rs.metadata);
    let mut extras = PodExtras::default();
    if let Some(h) = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH))
    {
        extras.labels.insert(POD_TEMPLATE_HASH.into(), h.clone());
    }
    (0..count)
        .filter_map(|_| {
            let pod_name = format!("{name}-{}", meta::name_suffix());
            match pods::new_pod(&template, &ns, &pod_name, owner.clone(), &extras) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("podrun serve: replicaset {ns}/{name}: {e}");
                    None
                }
            }
        })
        .collect()
}

/// One turn of the ReplicaSet controller over every ReplicaSet.
pub fn reconcile(turn: &mut Turn) {
    let sets: Vec<ReplicaSet> = store::list(&turn.store, None);
    let mut to_create = Vec::new();
    for rs in &sets {
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let owned = pods::owned(&turn.pods, &uid);
        let p = plan(rs, &owned, turn.now);
        let ns = meta::ns(&rs.metadata);
        for name in &p.delete {
            turn.deleter.delete(&turn.ctx, &ns, name);
        }
        to_create.extend(new_pods(rs, p.create));
        let status = serde_json::to_value(Some(&p.status)).unwrap_or_default();
        store::write_status(&turn.store, rs, status);
    }
    if !to_create.is_empty() {
        turn.changed = true;
    }
    pods::create_all(&turn.ctx, to_create);
}

#[cfg(test)]
#[path = "replicaset_tests.rs"]
mod tests;
