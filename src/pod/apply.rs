//! `apply` of one pod, as the API server and kubelet take it: created when missing, left
//! alone when identical, changed in place where a pod allows it (the supervisor restarts
//! only the containers whose image changed), refused otherwise — or, with `force`,
//! deleted and created again.
use super::{create, delete, CreateError, DeleteError, DeleteOptions, PodContext};
use crate::manifest::update::{pod_update, PodUpdate};
use crate::supervisor::store::{self, PodObjects, StoreError};
use k8s_openapi::api::core::v1::Pod;

/// What `apply` did to a pod (kubectl's words: `pod/x created`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Unchanged,
    Configured,
}

impl Applied {
    pub fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Unchanged => "unchanged",
            Applied::Configured => "configured",
        }
    }
}

/// Why a pod was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server's refusal, whole (`The Pod "x" is invalid: spec: Forbidden: ...`).
    #[error("{0}")]
    Forbidden(String),
    #[error("pod {name}: its record cannot be read ({why}): delete it first")]
    Damaged { name: String, why: String },
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Delete(#[from] DeleteError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `pod` (with the objects of its manifest).
pub fn apply(
    ctx: &PodContext,
    pod: &Pod,
    objects: &PodObjects,
    force: bool,
) -> Result<Applied, ApplyError> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(rec) = ctx.store().load(&ns, &name) else {
        create(ctx, pod, objects)?;
        return Ok(Applied::Created);
    };
    if let Some(why) = rec.damaged {
        return Err(ApplyError::Damaged { name, why });
    }
    match pod_update(&rec.pod, pod, None) {
        PodUpdate::Unchanged => Ok(Applied::Unchanged),
        PodUpdate::Configured { pod: next, .. } => {
            let mut next = *next;
            next.status = None;
            store::write_json(&rec.dir.join(store::POD_FILE), &next)?;
            let _ = super::desired::record(ctx, &next, objects);
            // SIGHUP: the supervisor reads pod.json again and restarts what changed.
            let pid_file = rec.dir.join(store::PID_FILE);
            store::signal_pid_file(&pid_file, nix::sys::signal::Signal::SIGHUP);
            Ok(Applied::Configured)
        }
        PodUpdate::Forbidden(msg) if !force => Err(ApplyError::Forbidden(msg)),
        PodUpdate::Forbidden(_) => {
            delete(ctx, &ns, &name, DeleteOptions::default())?;
            create(ctx, pod, objects)?;
            Ok(Applied::Configured)
        }
    }
}
