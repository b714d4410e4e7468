//! Where pods live on the host: `<root>/pods/<namespace>_<name>/` holding pod.json (the
//! admitted Pod), objects.json (its ConfigMaps and Secrets), status.json (PodStatus,
//! replaced atomically), events.jsonl, supervisor.pid and a lock.
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const POD_FILE: &str = "pod.json";
pub const OBJECTS_FILE: &str = "objects.json";
pub const STATUS_FILE: &str = "status.json";
pub const EVENTS_FILE: &str = "events.jsonl";
pub const PID_FILE: &str = "supervisor.pid";
pub const LOCK_FILE: &str = "lock";
/// Written by `delete`: the grace period asked for, and when deletion began.
pub const DELETION_FILE: &str = "deletion.json";

/// What went wrong reading or writing a pod's state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The ConfigMaps and Secrets that came in the same manifest as a pod.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodObjects {
    #[serde(default, rename = "configMaps")]
    pub config_maps: Vec<ConfigMap>,
    #[serde(default)]
    pub secrets: Vec<Secret>,
}

/// A deletion request: grace period in seconds and whether --force was given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeletionRequest {
    #[serde(rename = "gracePeriodSeconds")]
    pub grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub force: bool,
    /// RFC 3339, the pod's metadata.deletionTimestamp.
    pub timestamp: String,
}

/// All pods under one state root.
#[derive(Debug, Clone)]
pub struct PodStore {
    pods_dir: PathBuf,
}

/// One pod as read back from disk: the Pod (status merged in) and its directory.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub dir: PathBuf,
    pub pod: Pod,
}

impl PodRecord {
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
    /// The supervisor's pid if it is alive.
    pub fn supervisor_pid(&self) -> Option<i32> {
        read_pid(&self.dir.join(PID_FILE))
    }
}

/// Reads a pid file and checks the process still exists.
pub fn read_pid(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    // SAFETY: signal 0 only checks that the pid exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&data).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    crate::util::write_atomic(path, &data).map_err(io_err(path))
}

impl PodStore {
    pub fn new(root: &Path) -> PodStore {
        PodStore {
            pods_dir: root.join("pods"),
        }
    }

    pub fn pods_dir(&self) -> &Path {
        &self.pods_dir
    }

    /// The directory of pod `namespace/name`.
    pub fn dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.pods_dir.join(format!("{namespace}_{name}"))
    }

    /// Loads one pod; None when it does not exist (or is half-created).
    pub fn load(&self, namespace: &str, name: &str) -> Option<PodRecord> {
        load_dir(&self.dir(namespace, name))
    }

    /// Every pod, sorted by namespace then name.
    pub fn list(&self) -> Vec<PodRecord> {
        let Ok(entries) = std::fs::read_dir(&self.pods_dir) else {
            return Vec::new();
        };
        let mut out: Vec<PodRecord> = entries
            .flatten()
            .filter_map(|e| load_dir(&e.path()))
            .collect();
        out.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        out
    }

    /// Holds the store-wide lock (pod creation, admission) while alive.
    pub fn lock(&self) -> Result<crate::util::FileLock> {
        std::fs::create_dir_all(&self.pods_dir).map_err(io_err(&self.pods_dir))?;
        let path = self.pods_dir.join(".lock");
        crate::util::FileLock::exclusive(&path).map_err(io_err(&path))
    }
}

fn load_dir(dir: &Path) -> Option<PodRecord> {
    let mut pod: Pod = read_json(&dir.join(POD_FILE)).ok()?;
    if let Ok(status) = read_json::<PodStatus>(&dir.join(STATUS_FILE)) {
        pod.status = Some(status);
    }
    if let Ok(del) = read_json::<DeletionRequest>(&dir.join(DELETION_FILE)) {
        if let Ok(ts) = del.timestamp.parse() {
            pod.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts));
        }
        pod.metadata.deletion_grace_period_seconds = del.grace_period_seconds;
    }
    Some(PodRecord {
        dir: dir.to_path_buf(),
        pod,
    })
}
