//! Pod lifecycle as a library: create (record, supervisor), delete (request, wait,
//! orphan cleanup), exec and logs, callable without the CLI (plain option structs).
//!
//! A pod has one owner at a time, named by the flock on `pods/NS_NAME/lock`: `create`
//! takes it before the record exists and hands it to the supervisor it spawns, which
//! holds it for its whole life. `delete` only ever cleans up a pod whose lock it holds
//! itself, so it never races a live supervisor.
pub mod apply;
pub mod create;
pub mod delete;
pub mod desired;
pub mod exec;
pub mod logs;
pub mod owner;

pub use create::{
    create, preflight, supervise, wait_ready, CreateError, PreflightError, SuperviseError,
    Supervision,
};
pub use delete::{delete, DeleteError, DeleteOptions};
pub use exec::{exec, ExecError, ExecRequest, ExecSession};
pub use logs::{open_logs, LogsError, LogsRequest};

use crate::supervisor::store::{PodRecord, PodStore};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use std::path::PathBuf;

/// Where pods live: the state root (`--root`) and the data dir (`--data-dir`).
#[derive(Debug, Clone)]
pub struct PodContext {
    pub root: PathBuf,
    pub data_dir: PathBuf,
}

impl PodContext {
    pub fn store(&self) -> PodStore {
        PodStore::new(&self.root)
    }
}

/// The container a command acts on, and the names it was picked from when defaulted
/// (kubectl tells the user: `Defaulted container "a" out of: a, b`).
#[derive(Debug, Clone)]
pub struct PickedContainer {
    pub name: String,
    pub defaulted_from: Option<Vec<String>>,
}

/// A container name the pod does not have, or a pod without containers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PickError {
    #[error("container {wanted} is not valid for pod {pod}; valid containers: [{}]", valid.join(" "))]
    NotValid {
        wanted: String,
        pod: String,
        valid: Vec<String>,
    },
    #[error("pod has no containers")]
    NoContainers,
}

/// Picks the container: the one asked for (regular or init), or the first.
pub fn pick_container(pod: &Pod, wanted: Option<&str>) -> Result<PickedContainer, PickError> {
    let empty = Default::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let names = || -> Vec<String> { spec.containers.iter().map(|c| c.name.clone()).collect() };
    match wanted {
        Some(w) => spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == w)
            .map(|c: &Container| PickedContainer {
                name: c.name.clone(),
                defaulted_from: None,
            })
            .ok_or_else(|| PickError::NotValid {
                wanted: w.to_string(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                valid: names(),
            }),
        None => {
            let first = spec.containers.first().ok_or(PickError::NoContainers)?;
            Ok(PickedContainer {
                name: first.name.clone(),
                defaulted_from: (spec.containers.len() > 1).then(names),
            })
        }
    }
}

/// The status of container `name` (regular or init).
pub fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .chain(st.init_container_statuses.iter().flatten())
        .find(|s| s.name == name)
}

/// Loads pod `ns/name`, or None when there is no such pod.
pub fn load(ctx: &PodContext, ns: &str, name: &str) -> Option<PodRecord> {
    ctx.store().load(ns, name)
}
