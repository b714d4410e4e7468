//! The workload controllers of the node agent (Deployment, ReplicaSet, Job, CronJob) and
//! the garbage collector of what they own: each turn reads the stored objects and the
//! pods and moves the pods toward what the objects ask, as kube-controller-manager does.
//!
//! The agent calls [`start`] once: the controllers run in a thread of their own, so that
//! the pods they create reach the agent's socket (which starts their supervisors) while
//! the agent's loop goes on. Each controller file keeps its decision a pure function
//! (`plan`) of the object, its pods and the time, apart from the I/O that carries it out.
pub mod apply;
pub mod cronjob;
pub mod deployment;
pub mod gc;
pub mod job;
pub mod meta;
pub mod pods;
pub mod replicaset;
pub mod store;

pub use apply::{apply_object, is_workload, resource_of, ObjectApplied, WorkloadError};

use crate::objects::ObjectStore;
use crate::pod::PodContext;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// How often the controllers look again when nothing changed.
const IDLE_TURN: Duration = Duration::from_millis(200);

/// What one turn of the controllers works on.
pub struct Turn {
    pub ctx: PodContext,
    pub store: ObjectStore,
    /// Every pod of the node, with status, as the turn began (or after a controller
    /// created some).
    pub pods: Vec<Pod>,
    pub now: Timestamp,
    pub deleter: pods::Deleter,
    /// Set by a controller that changed something the next one reads.
    pub changed: bool,
}

impl Turn {
    /// Reads the pods again (after a controller created or deleted some).
    pub fn refresh(&mut self) {
        self.pods = pods::observe(&self.ctx, &self.deleter);
        self.now = crate::util::now();
        self.changed = false;
    }
}

/// Starts the controllers' thread; they run until the agent's process ends.
pub fn start(ctx: &PodContext) {
    let ctx = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("controllers".into())
        .spawn(move || {
            let deleter = pods::Deleter::default();
            loop {
                let busy = reconcile(&ctx, &deleter);
                if !busy {
                    std::thread::sleep(IDLE_TURN);
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("podrun serve: the workload controllers did not start: {e}");
    }
}

/// One turn of every controller; true when it changed something (the next turn comes
/// at once).
pub fn reconcile(ctx: &PodContext, deleter: &pods::Deleter) -> bool {
    let mut turn = Turn {
        ctx: ctx.clone(),
        store: ObjectStore::new(&ctx.data_dir),
        pods: Vec::new(),
        now: crate::util::now(),
        deleter: deleter.clone(),
        changed: false,
    };
    turn.refresh();
    let mut busy = false;
    deployment::reconcile(&mut turn);
    cronjob::reconcile(&mut turn);
    job::reconcile(&mut turn);
    busy |= turn.changed;
    if turn.changed {
        turn.refresh();
    }
    replicaset::reconcile(&mut turn);
    busy |= turn.changed;
    if turn.changed {
        turn.refresh();
    }
    gc::collect(&mut turn);
    busy
}
