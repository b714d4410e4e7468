//! Deleting a pod: the deletion request, SIGTERM to its supervisor (which stops the pod
//! and removes it), and, when no supervisor owns the pod any more, the cleanup of what
//! it left, under the pod's owner lock.
use super::owner::{OwnerError, Ownership, PodOwner};
use super::PodContext;
use crate::supervisor::store::{self, DeletionRequest, PodRecord, StoreError};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// How to delete: `--grace-period` and `--force` as kubectl takes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub force: bool,
}

impl DeleteOptions {
    /// kubectl's: --force without --grace-period means immediately.
    fn grace(&self) -> Option<i64> {
        if self.force && self.grace_period.is_none() {
            Some(0)
        } else {
            self.grace_period
        }
    }
}

/// Why a pod was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("pods {name:?} not found")]
    NotFound { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Owner(#[from] OwnerError),
}

/// How long a supervisor may take past the grace period before it is killed.
const SUPERVISOR_SLACK_SECS: i64 = 60;
/// How long a killed supervisor's lock may linger (a child it forked) before the
/// leftovers are removed anyway.
const KILLED_WAIT: Duration = Duration::from_secs(10);

/// Deletes pod `ns/name`: Ok once nothing of it is left (no process, no record) and
/// its name is free again.
pub fn delete(
    ctx: &PodContext,
    ns: &str,
    name: &str,
    opts: DeleteOptions,
) -> Result<(), DeleteError> {
    let store = ctx.store();
    let Some(rec) = store.load(ns, name) else {
        return Err(DeleteError::NotFound {
            name: name.to_string(),
        });
    };
    super::desired::forget(ctx, ns, name);
    let grace = opts.grace();
    let path = rec.dir.join(store::DELETION_FILE);
    if !path.exists() {
        let req = DeletionRequest {
            grace_period_seconds: grace,
            force: opts.force,
            timestamp: crate::util::now_rfc3339(),
        };
        store::write_json(&path, &req)?;
    }
    let grace_secs = grace
        .or(rec
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    let wait =
        crate::supervisor::pod_state::seconds(grace_secs.saturating_add(SUPERVISOR_SLACK_SECS));
    wait_for_owner(
        ctx,
        &rec,
        crate::supervisor::pod_state::deadline(Instant::now(), wait),
    )
}

/// Until the pod's directory is gone: signals its supervisor (once its pid file names
/// it: a supervisor still starting writes it a moment later), and cleans up itself as
/// soon as it holds the pod's lock, that is once no supervisor is left.
fn wait_for_owner(ctx: &PodContext, rec: &PodRecord, deadline: Instant) -> Result<(), DeleteError> {
    let pid_file = rec.dir.join(store::PID_FILE);
    let mut signalled = false;
    let mut killed_at: Option<Instant> = None;
    loop {
        if !rec.dir.exists() {
            return Ok(());
        }
        match PodOwner::try_take(&rec.dir)? {
            Ownership::Taken(owner) => {
                remove_leftovers(ctx, rec, Some(owner));
                return Ok(());
            }
            // A pod without a lock is ownerless once its supervisor is gone.
            Ownership::NoLock if store::read_pid(&pid_file).is_none() => {
                remove_leftovers(ctx, rec, None);
                return Ok(());
            }
            Ownership::Gone => return Ok(()),
            Ownership::NoLock | Ownership::Held => {}
        }
        if !signalled {
            signalled = store::signal_pid_file(&pid_file, Signal::SIGTERM);
        }
        let now = Instant::now();
        match killed_at {
            None if now >= deadline => {
                store::signal_pid_file(&pid_file, Signal::SIGKILL);
                killed_at = Some(now);
            }
            Some(t) if now.duration_since(t) >= KILLED_WAIT => {
                // Whatever still holds the lock is one of the pod's own processes.
                crate::supervisor::leftovers::remove(&ctx.root, &ctx.data_dir, &rec.dir, &rec.pod);
                return Ok(());
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes what a pod left when no supervisor owns it (crashed, killed, or never
/// started), holding its lock so that nothing else touches the directory meanwhile.
fn remove_leftovers(ctx: &PodContext, rec: &PodRecord, owner: Option<PodOwner>) {
    // Read again under the lock: the supervisor may have bound the pod (uid, cgroup)
    // after our first look.
    let pod = store::PodStore::new(&ctx.root)
        .load(rec.namespace(), rec.name())
        .filter(|r| r.damaged.is_none())
        .map(|r| r.pod)
        .unwrap_or_else(|| rec.pod.clone());
    crate::supervisor::leftovers::remove(&ctx.root, &ctx.data_dir, &rec.dir, &pod);
    drop(owner);
}
