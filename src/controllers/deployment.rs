//! The Deployment controller: one ReplicaSet per template (`<deploy>-<pod-template-hash>`),
//! rolled to by RollingUpdate (maxSurge/maxUnavailable against available pods) or
//! Recreate, the revision annotation, revisionHistoryLimit, and the Available and
//! Progressing conditions with kube's reasons.
use super::apply::{field_error, invalid, template_errors};
use super::meta::{self, POD_TEMPLATE_HASH};
use super::replicaset::{replica_errors, selector_errors};
use super::store::{self, workload_meta, Workload};
use super::Turn;
use crate::manifest::validate::{ErrorType, InvalidError};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, DeploymentStrategy, ReplicaSet,
    ReplicaSetSpec, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The revision annotation of a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

impl Workload for Deployment {
    const RESOURCE: &'static str = "deployments";
    const KIND: &'static str = "Deployment";
    const API_VERSION: &'static str = "apps/v1";
    const GROUP_KIND: &'static str = "deployment.apps";
    workload_meta!();

    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if kind == "RollingUpdate" {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            ru.max_surge
                .get_or_insert(IntOrString::String("25%".into()));
            ru.max_unavailable
                .get_or_insert(IntOrString::String("25%".into()));
        }
        super::apply::default_template(&mut spec.template);
    }

    fn validate(&self) -> Result<(), InvalidError> {
        let spec = self.spec.clone().unwrap_or_default();
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref());
        let mut errs = selector_errors(Some(&spec.selector), labels);
        errs.extend(replica_errors("spec.replicas", spec.replicas));
        errs.extend(template_errors(
            &spec.template,
            "spec.template.",
            &["Always"],
        ));
        let strategy = spec.strategy.unwrap_or_default();
        match strategy.type_.as_deref() {
            Some("RollingUpdate") => {
                let (surge, unavail) = surge_and_unavailable(self, 100);
                if surge == 0 && unavail == 0 && spec.replicas.unwrap_or(1) > 0 {
                    errs.push(field_error(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        ErrorType::Invalid,
                        Some("0".into()),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
            Some("Recreate") if strategy.rolling_update.is_some() => errs.push(field_error(
                "spec.strategy.rollingUpdate",
                ErrorType::Forbidden,
                None,
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            Some("Recreate") => {}
            other => errs.push(field_error(
                "spec.strategy.type",
                ErrorType::NotSupported,
                Some(format!("{:?}", other.unwrap_or(""))),
                "supported values: \"Recreate\", \"RollingUpdate\"",
            )),
        }
        invalid(Self::KIND, &meta::name(&self.metadata), errs)
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down) against `replicas`; both 0
/// gives maxUnavailable 1, as kube's ResolveFenceposts does.
pub fn surge_and_unavailable(d: &Deployment, replicas: i32) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let pct = IntOrString::String("25%".into());
    let surge = meta::scaled(ru.max_surge.as_ref().unwrap_or(&pct), replicas, true).unwrap_or(0);
    let unavail =
        meta::scaled(ru.max_unavailable.as_ref().unwrap_or(&pct), replicas, false).unwrap_or(0);
    if surge == 0 && unavail == 0 {
        (0, 1)
    } else {
        (surge.max(0), unavail.max(0))
    }
}

/// One change to the ReplicaSets of a Deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A new ReplicaSet for the current template.
    Create {
        replicas: i32,
        revision: i64,
    },
    Scale {
        name: String,
        replicas: i32,
    },
    /// The ReplicaSet rolled back to becomes the newest revision.
    Revision {
        name: String,
        revision: i64,
    },
    Delete {
        name: String,
    },
}

/// What one turn does to a Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The new ReplicaSet's name (`<deploy>-<hash>`) and hash.
    pub new_name: String,
    pub hash: String,
    pub steps: Vec<Step>,
    pub status: DeploymentStatus,
    pub revision: i64,
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

/// The decision for one Deployment from its ReplicaSets (pure: unit-tested).
pub fn plan(d: &Deployment, sets: &[ReplicaSet], now: Timestamp) -> Plan {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let hash = meta::compute_hash(
        &spec.template,
        d.status.as_ref().and_then(|s| s.collision_count),
    );
    let new_name = format!("{}-{hash}", meta::name(&d.metadata));
    let new = sets.iter().find(|rs| meta::name(&rs.metadata) == new_name);
    let mut olds: Vec<&ReplicaSet> = sets
        .iter()
        .filter(|rs| meta::name(&rs.metadata) != new_name)
        .collect();
    olds.sort_by_key(|rs| revision_of(rs));
    let max_old = olds.iter().map(|rs| revision_of(rs)).max().unwrap_or(0);
    let mut steps = Vec::new();
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let (surge, unavail) = surge_and_unavailable(d, replicas);
    let old_total: i32 = olds.iter().map(|rs| spec_replicas(rs)).sum();
    let old_running: i32 = olds.iter().map(|rs| status_of(rs).0).sum();
    let paused = spec.paused == Some(true) || store::deleting(&d.metadata);
    let mut revision = new.map(revision_of).unwrap_or(max_old + 1);
    if let Some(rs) = new {
        if revision_of(rs) <= max_old {
            revision = max_old + 1;
            steps.push(Step::Revision {
                name: new_name.clone(),
                revision,
            });
        }
    }
    let new_replicas = new.map(spec_replicas).unwrap_or(0);
    let all_total = old_total + new_replicas;
    if !paused {
        let target = if recreate {
            if old_total > 0 || old_running > 0 {
                0
            } else {
                replicas
            }
        } else if new_replicas > replicas {
            replicas
        } else {
            let room = (replicas + surge - all_total).max(0);
            new_replicas + room.min(replicas - new_replicas)
        };
        match new {
            None => steps.push(Step::Create {
                replicas: target,
                revision,
            }),
            Some(_) if target != new_replicas => steps.push(Step::Scale {
                name: new_name.clone(),
                replicas: target,
            }),
            Some(_) if recreate => {
                steps.extend(olds.iter().filter(|rs| spec_replicas(rs) > 0).map(|rs| {
                    Step::Scale {
                        name: meta::name(&rs.metadata),
                        replicas: 0,
                    }
                }));
            }
            Some(rs) => steps.extend(scale_down_old(&olds, rs, replicas, unavail)),
        }
        if recreate && new.is_none() {
            steps.extend(
                olds.iter()
                    .filter(|rs| spec_replicas(rs) > 0)
                    .map(|rs| Step::Scale {
                        name: meta::name(&rs.metadata),
                        replicas: 0,
                    }),
            );
        }
        steps.extend(cleanup(&olds, spec.revision_history_limit.unwrap_or(10)));
    }
    let status = status(d, new, &olds, (replicas, unavail), &steps, now);
    Plan {
        new_name,
        hash,
        steps,
        status,
        revision,
    }
}

/// kube's reconcileOldReplicaSets: unhealthy old pods first, then as many available ones
/// as keep `replicas - maxUnavailable` pods available.
fn scale_down_old(
    olds: &[&ReplicaSet],
    new: &ReplicaSet,
    replicas: i32,
    unavail: i32,
) -> Vec<Step> {
    let old_total: i32 = olds.iter().map(|rs| spec_replicas(rs)).sum();
    if old_total == 0 {
        return Vec::new();
    }
    let all_total = old_total + spec_replicas(new);
    let min_available = replicas - unavail;
    let new_unavailable = spec_replicas(new) - status_of(new).2;
    let mut budget = all_total - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }
    let mut target: Vec<i32> = olds.iter().map(|rs| spec_replicas(rs)).collect();
    for (i, rs) in olds.iter().enumerate() {
        let unhealthy = (target[i] - status_of(rs).2).max(0).min(budget);
        target[i] -= unhealthy;
        budget -= unhealthy;
    }
    let available: i32 = olds
        .iter()
        .enumerate()
        .map(|(i, rs)| status_of(rs).2.min(target[i]))
        .sum::<i32>()
        + status_of(new).2;
    let mut down = (available - min_available).max(0);
    for t in target.iter_mut() {
        let d = (*t).min(down);
        *t -= d;
        down -= d;
    }
    olds.iter()
        .zip(target)
        .filter(|(rs, t)| spec_replicas(rs) != *t)
        .map(|(rs, t)| Step::Scale {
            name: meta::name(&rs.metadata),
            replicas: t,
        })
        .collect()
}

/// Old ReplicaSets past revisionHistoryLimit, oldest first, once they have no pods.
fn cleanup(olds: &[&ReplicaSet], limit: i32) -> Vec<Step> {
    let idle: Vec<&&ReplicaSet> = olds
        .iter()
        .filter(|rs| spec_replicas(rs) == 0 && status_of(rs).0 == 0)
        .collect();
    let surplus = idle.len().saturating_sub(limit.max(0) as usize);
    idle.iter()
        .take(surplus)
        .map(|rs| Step::Delete {
            name: meta::name(&rs.metadata),
        })
        .collect()
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: &Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The status: counts over every ReplicaSet, and the two conditions.
fn status(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    olds: &[&ReplicaSet],
    (replicas, unavail): (i32, i32),
    steps: &[Step],
    now: Timestamp,
) -> DeploymentStatus {
    let prev = d.status.clone().unwrap_or_default();
    let all: Vec<&ReplicaSet> = olds.iter().copied().chain(new).collect();
    let sum = |f: fn((i32, i32, i32)) -> i32| all.iter().map(|rs| f(status_of(rs))).sum::<i32>();
    let (total, ready, available) = (sum(|s| s.0), sum(|s| s.1), sum(|s| s.2));
    let updated = new.map(|rs| status_of(rs).0).unwrap_or(0);
    let t = Time(now);
    let rs_name = new.map(|rs| meta::name(&rs.metadata)).unwrap_or_default();
    let mut conds: Vec<DeploymentCondition> = prev.conditions.clone().unwrap_or_default();
    let avail_ok = available >= replicas - unavail;
    let available_cond = if avail_ok {
        condition(
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            &t,
        )
    } else {
        condition(
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            &t,
        )
    };
    set_condition(&mut conds, available_cond);
    let complete = new.is_some()
        && updated == replicas
        && available == replicas
        && total == replicas
        && spec_replicas(new.unwrap_or(&ReplicaSet::default())) == replicas;
    let progressed = !steps.is_empty()
        || (
            prev.updated_replicas,
            prev.ready_replicas,
            prev.available_replicas,
            prev.replicas,
        ) != (Some(updated), Some(ready), Some(available), Some(total));
    let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
    let old_prog = conds.iter().find(|c| c.type_ == "Progressing").cloned();
    let progressing = if complete {
        Some(condition(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            format!("ReplicaSet {rs_name:?} has successfully progressed."),
            &t,
        ))
    } else if steps.iter().any(|s| matches!(s, Step::Create { .. })) {
        Some(condition(
            "Progressing",
            true,
            "NewReplicaSetCreated",
            String::new(),
            &t,
        ))
    } else if progressed {
        Some(condition(
            "Progressing",
            true,
            "ReplicaSetUpdated",
            format!("ReplicaSet {rs_name:?} is progressing."),
            &t,
        ))
    } else {
        let timed_out = old_prog.as_ref().is_some_and(|c| {
            c.reason.as_deref() != Some("NewReplicaSetAvailable")
                && c.status == "True"
                && deadline.is_some_and(|s| {
                    c.last_update_time
                        .as_ref()
                        .is_some_and(|u| u.0.as_second() + i64::from(s) < now.as_second())
                })
        });
        timed_out.then(|| {
            condition(
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                format!("ReplicaSet {rs_name:?} has timed out progressing."),
                &t,
            )
        })
    };
    if let Some(mut p) = progressing {
        if p.reason.as_deref() == Some("NewReplicaSetCreated") {
            p.message = Some(format!("Created new replica set {:?}", plan_name(d)));
        }
        set_condition(&mut conds, p);
    }
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas - available).max(0)),
        conditions: Some(conds),
        collision_count: prev.collision_count,
        terminating_replicas: None,
    }
}

fn plan_name(d: &Deployment) -> String {
    let spec = d.spec.clone().unwrap_or_default();
    let hash = meta::compute_hash(
        &spec.template,
        d.status.as_ref().and_then(|s| s.collision_count),
    );
    format!("{}-{hash}", meta::name(&d.metadata))
}

/// Sets a condition; the transition time stays while the status does, and the update
/// time too while the reason and message do.
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(old) = conds.iter_mut().find(|o| o.type_ == c.type_) {
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
            if old.reason == c.reason && old.message == c.message && c.type_ == "Available" {
                c.last_update_time = old.last_update_time.clone();
            }
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

/// The ReplicaSet a Deployment creates for its current template.
fn new_replica_set(d: &Deployment, p: &Plan, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let tm = template.metadata.get_or_insert_with(Default::default);
    tm.labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), p.hash.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), p.hash.clone());
    let (surge, _) = surge_and_unavailable(d, spec.replicas.unwrap_or(1));
    let annotations = [
        (REVISION.to_string(), p.revision.to_string()),
        (DESIRED.to_string(), spec.replicas.unwrap_or(1).to_string()),
        (
            MAX_REPLICAS.to_string(),
            (spec.replicas.unwrap_or(1) + surge).to_string(),
        ),
    ];
    let mut metadata = ObjectMeta {
        name: Some(p.new_name.clone()),
        namespace: d.metadata.namespace.clone(),
        labels: tm.labels.clone(),
        annotations: Some(annotations.into()),
        owner_references: Some(vec![meta::controller_ref(
            Deployment::API_VERSION,
            Deployment::KIND,
            &d.metadata,
        )]),
        ..Default::default()
    };
    crate::manifest::defaults::default_object_meta(&mut metadata);
    metadata.generation = Some(1);
    ReplicaSet {
        metadata,
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// One turn of the Deployment controller over every Deployment.
pub fn reconcile(turn: &mut Turn) {
    let deployments: Vec<Deployment> = store::list(&turn.store, None);
    let sets: Vec<ReplicaSet> = store::list(&turn.store, None);
    for d in &deployments {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let ns = meta::ns(&d.metadata);
        let owned: Vec<ReplicaSet> = sets
            .iter()
            .filter(|rs| meta::ns(&rs.metadata) == ns && meta::controlled_by(&rs.metadata, &uid))
            .cloned()
            .collect();
        let p = plan(d, &owned, turn.now);
        carry_out(turn, d, &owned, &p);
        let status = serde_json::to_value(Some(&p.status)).unwrap_or_default();
        let revision = p.revision.to_string();
        let has_rev = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            == Some(&revision);
        if d.status_value() != status || !has_rev {
            let _ = store::modify(&turn.store, d, |cur| {
                cur.set_status_value(status);
                cur.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(REVISION.into(), revision);
            });
        }
    }
}

fn carry_out(turn: &mut Turn, d: &Deployment, owned: &[ReplicaSet], p: &Plan) {
    let find = |name: &str| owned.iter().find(|rs| meta::name(&rs.metadata) == name);
    for step in &p.steps {
        turn.changed = true;
        let res = match step {
            Step::Create { replicas, .. } => {
                store::create(&turn.store, &new_replica_set(d, p, *replicas))
            }
            Step::Scale { name, replicas } => match find(name) {
                Some(rs) => store::modify(&turn.store, rs, |cur| {
                    if let Some(s) = cur.spec.as_mut() {
                        s.replicas = Some(*replicas);
                    }
                    let a = cur
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default);
                    a.insert(
                        DESIRED.into(),
                        d.spec
                            .as_ref()
                            .and_then(|s| s.replicas)
                            .unwrap_or(1)
                            .to_string(),
                    );
                })
                .map(|_| ()),
                None => Ok(()),
            },
            Step::Revision { name, revision } => match find(name) {
                Some(rs) => store::modify(&turn.store, rs, |cur| {
                    let a = cur
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default);
                    a.insert(REVISION.into(), revision.to_string());
                })
                .map(|_| ()),
                None => Ok(()),
            },
            Step::Delete { name } => match find(name) {
                Some(rs) => turn.store.delete(&store::key_of(rs)).map(|_| ()),
                None => Ok(()),
            },
        };
        if let Err(e) = res {
            eprintln!("podrun serve: deployment {}: {e}", meta::name(&d.metadata));
        }
    }
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
