//! The garbage collector of owned objects, as kube's: a ReplicaSet, Job or pod whose
//! controller is gone is deleted (background cascading), and an object being deleted in
//! the foreground goes once its dependents are gone.
use super::meta;
use super::store::{self, Workload};
use super::Turn;
use crate::objects::ObjectStore;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::collections::HashSet;

/// The finalizer of an object deleted with `--cascade=foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";

/// The owner kinds whose dependents the collector looks after.
fn collected(r: &OwnerReference) -> bool {
    matches!(
        (r.api_version.as_str(), r.kind.as_str()),
        (
            "apps/v1",
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        ) | ("batch/v1", "Job" | "CronJob")
    )
}

/// Whether an object's controller is of a collected kind and no longer exists.
fn orphaned(m: &ObjectMeta, live: &HashSet<String>) -> bool {
    meta::controller_of(m).is_some_and(|r| collected(r) && !live.contains(&r.uid))
}

/// One pass of the collector.
pub fn collect(turn: &mut Turn) {
    let deployments: Vec<Deployment> = store::list(&turn.store, None);
    let sets: Vec<ReplicaSet> = store::list(&turn.store, None);
    let jobs: Vec<Job> = store::list(&turn.store, None);
    let cronjobs: Vec<CronJob> = store::list(&turn.store, None);
    let mut live: HashSet<String> = HashSet::new();
    live.extend(deployments.iter().filter_map(|o| o.metadata.uid.clone()));
    live.extend(sets.iter().filter_map(|o| o.metadata.uid.clone()));
    live.extend(jobs.iter().filter_map(|o| o.metadata.uid.clone()));
    live.extend(cronjobs.iter().filter_map(|o| o.metadata.uid.clone()));
    remove_orphans(&turn.store, &sets, &live);
    remove_orphans(&turn.store, &jobs, &live);
    for p in &turn.pods {
        if p.metadata.deletion_timestamp.is_none() && orphaned(&p.metadata, &live) {
            let (ns, name) = (meta::ns(&p.metadata), meta::name(&p.metadata));
            turn.deleter.delete(&turn.ctx, &ns, &name);
        }
    }
    let has_pods = |uid: &str| {
        turn.pods
            .iter()
            .any(|p| meta::controlled_by(&p.metadata, uid))
    };
    let has_objects = |uid: &str| {
        sets.iter().any(|o| meta::controlled_by(&o.metadata, uid))
            || jobs.iter().any(|o| meta::controlled_by(&o.metadata, uid))
    };
    let mut pods_to_delete = Vec::new();
    for d in &deployments {
        foreground(&turn.store, d, &sets, |uid| has_objects(uid));
    }
    for c in &cronjobs {
        foreground(&turn.store, c, &jobs, |uid| has_objects(uid));
    }
    for rs in &sets {
        if foreground_pending(&rs.metadata) {
            pods_to_delete.extend(rs.metadata.uid.clone());
            if !has_pods(rs.metadata.uid.as_deref().unwrap_or("")) {
                let _ = turn.store.delete(&store::key_of(rs));
            }
        }
    }
    for j in &jobs {
        if foreground_pending(&j.metadata) {
            pods_to_delete.extend(j.metadata.uid.clone());
            if !has_pods(j.metadata.uid.as_deref().unwrap_or("")) {
                let _ = turn.store.delete(&store::key_of(j));
            }
        }
    }
    for uid in pods_to_delete {
        for p in super::pods::owned(&turn.pods, &uid) {
            if p.metadata.deletion_timestamp.is_none() {
                let (ns, name) = (meta::ns(&p.metadata), meta::name(&p.metadata));
                turn.deleter.delete(&turn.ctx, &ns, &name);
            }
        }
    }
}

fn foreground_pending(m: &ObjectMeta) -> bool {
    m.deletion_timestamp.is_some() && m.finalizers.iter().flatten().any(|f| f == FOREGROUND)
}

/// Deletes every stored object whose controller is gone.
fn remove_orphans<T: Workload>(store: &ObjectStore, objs: &[T], live: &HashSet<String>) {
    for o in objs {
        if orphaned(o.meta(), live) {
            let _ = store.delete(&store::key_of(o));
        }
    }
}

/// An owner deleted in the foreground: its dependent objects are marked for foreground
/// deletion too; once none is left, the owner goes.
fn foreground<O: Workload, D: Workload>(
    store: &ObjectStore,
    owner: &O,
    dependents: &[D],
    has_dependents: impl Fn(&str) -> bool,
) {
    if !foreground_pending(owner.meta()) {
        return;
    }
    let uid = owner.meta().uid.clone().unwrap_or_default();
    if !has_dependents(&uid) {
        let _ = store.delete(&store::key_of(owner));
        return;
    }
    for d in dependents {
        if meta::controlled_by(d.meta(), &uid) && !foreground_pending(d.meta()) {
            let _ = store::modify(store, d, mark_foreground);
        }
    }
}

/// Marks an object as deleted in the foreground (deletionTimestamp and the finalizer).
pub fn mark_foreground<T: Workload>(o: &mut T) {
    let m = o.meta_mut();
    m.deletion_timestamp
        .get_or_insert_with(|| Time(crate::util::now()));
    let f = m.finalizers.get_or_insert_with(Vec::new);
    if !f.iter().any(|x| x == FOREGROUND) {
        f.push(FOREGROUND.into());
    }
}
