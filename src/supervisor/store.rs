//! Where pods live on the host: `<root>/pods/<namespace>_<name>/` holding pod.json (the
//! admitted Pod), objects.json (its ConfigMaps and Secrets), status.json (PodStatus,
//! replaced atomically), events.jsonl, supervisor.pid and a lock.
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const POD_FILE: &str = "pod.json";
pub const OBJECTS_FILE: &str = "objects.json";
pub const STATUS_FILE: &str = "status.json";
/// A restored pod's last durable status (after a reboot), until its supervisor has read
/// it: not status.json, which would show the lost runs as running.
pub const RESTORED_STATUS_FILE: &str = "status.restored.json";
pub const EVENTS_FILE: &str = "events.jsonl";
pub const PID_FILE: &str = "supervisor.pid";
pub const LOCK_FILE: &str = "lock";
/// In the pods directory: rewritten whenever a pod turns Succeeded or Failed, so that
/// Pending pods waiting for room (inotify) try admission again.
pub const ENDED_FILE: &str = ".ended";
/// Written by `delete`: the grace period asked for, and when deletion began.
pub const DELETION_FILE: &str = "deletion.json";

/// Where a running pod's supervisor keeps the status a restore starts from (restart
/// counts, the containers' last runs), under the data dir: `<data-dir>/pods/<uid>/`.
pub fn durable_status_path(data_dir: &Path, uid: &str) -> PathBuf {
    durable_dir(data_dir, uid).join(STATUS_FILE)
}

/// A pod's own directory under the data dir (kubelet's /var/lib/kubelet/pods/<uid>).
pub fn durable_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

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
    /// A state file that could not be read (the pod then shows phase Unknown).
    pub damaged: Option<String>,
}

impl PodRecord {
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// When a live process started: with the pid it names one process for good, whatever
/// later reuses the pid.
pub use crate::runtime::state::process_start_time as start_time;

/// What a supervisor writes to its pid file: its pid and start time.
pub fn pid_record(pid: i32) -> String {
    format!("{pid} {}\n", start_time(pid).unwrap_or(0))
}

/// Reads a pid file; Some(pid) only while that very process (same start time) lives:
/// a pid reused by another process is never reported, so never signalled.
pub fn read_pid(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let started: u64 = f.next()?.parse().ok()?;
    (pid > 0 && start_time(pid) == Some(started)).then_some(pid)
}

/// Sends `sig` to the process a pid file names, if it is still that process: through a
/// pidfd opened before the start time is checked, so the pid cannot be reused between
/// the check and the signal. False when it is gone.
pub fn signal_pid_file(path: &Path, sig: nix::sys::signal::Signal) -> bool {
    let Some(pid) = read_pid(path) else {
        return false;
    };
    // SAFETY: pidfd_open on a pid; the result is checked and owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: a fresh pidfd we own.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    if read_pid(path) != Some(pid) {
        return false;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as i32,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    r == 0
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

    /// Says that a pod ended (see [`ENDED_FILE`]).
    pub fn announce_end(&self) {
        let _ = std::fs::write(self.pods_dir.join(ENDED_FILE), b"");
    }

    /// Holds the store-wide lock (pod creation, admission) while alive.
    pub fn lock(&self) -> Result<crate::util::FileLock> {
        std::fs::create_dir_all(&self.pods_dir).map_err(io_err(&self.pods_dir))?;
        let path = self.pods_dir.join(".lock");
        crate::util::FileLock::exclusive(&path).map_err(io_err(&path))
    }
}

/// A pod whose own record is unreadable, known by its directory's name only: shown
/// with phase Unknown, and still deletable.
fn damaged_pod(dir: &Path) -> Option<Pod> {
    let base = dir.file_name()?.to_str()?;
    let (ns, name) = base.split_once('_')?;
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.to_string());
    pod.metadata.namespace = Some(ns.to_string());
    // A truncated pod.json still starts with its metadata: its uid lets delete find the
    // pod's containers when no supervisor is left to remove them.
    let text = std::fs::read_to_string(dir.join(POD_FILE)).unwrap_or_default();
    pod.metadata.uid = salvage_string(&text, "uid");
    Some(pod)
}

/// The first `"key": "value"` string in a possibly broken JSON text.
fn salvage_string(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let value = rest.strip_prefix('"')?;
    let end = value.find('"')?;
    let v = &value[..end];
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| v.to_string())
}

fn unknown_status() -> PodStatus {
    PodStatus {
        phase: Some("Unknown".into()),
        ..Default::default()
    }
}

/// A pod whose supervisor died (and nothing replaced it) is not known to run: phase
/// Unknown, as kubectl shows a pod whose node stopped reporting, its readiness Unknown,
/// and the message says why. A pod that ended keeps its phase (nothing runs any more);
/// one whose supervisor has not written its pid file yet is still being created.
fn mark_supervisor_lost(dir: &Path, pod: &mut Pod) {
    let pid_file = dir.join(PID_FILE);
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return;
    };
    if read_pid(&pid_file).is_some() {
        return;
    }
    let status = pod.status.get_or_insert_with(Default::default);
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return;
    }
    let pid = text.split_whitespace().next().unwrap_or("?");
    status.phase = Some("Unknown".into());
    status.message = Some(format!(
        "The pod's supervisor (pid {pid}) is not running: nothing restarts or probes its \
         containers (`podrun serve` replaces a supervisor that dies)"
    ));
    for c in status.container_statuses.iter_mut().flatten() {
        c.ready = false;
    }
    for cond in status.conditions.iter_mut().flatten() {
        if cond.type_ == "Ready" || cond.type_ == "ContainersReady" {
            cond.status = "Unknown".into();
            cond.reason = Some("SupervisorLost".into());
        }
    }
}

fn load_dir(dir: &Path) -> Option<PodRecord> {
    let pod_file = dir.join(POD_FILE);
    // No pod.json yet: a pod still being created (it is written atomically).
    if !pod_file.exists() {
        return None;
    }
    let mut damaged = None;
    let mut pod: Pod = match read_json(&pod_file) {
        Ok(p) => p,
        Err(e) => {
            damaged = Some(e.to_string());
            let mut pod = damaged_pod(dir)?;
            pod.status = Some(unknown_status());
            pod
        }
    };
    let status_file = dir.join(STATUS_FILE);
    if damaged.is_none() && status_file.exists() {
        match read_json::<PodStatus>(&status_file) {
            Ok(status) => pod.status = Some(status),
            Err(e) => {
                damaged = Some(e.to_string());
                pod.status = Some(unknown_status());
            }
        }
    }
    if let Ok(del) = read_json::<DeletionRequest>(&dir.join(DELETION_FILE)) {
        if let Ok(ts) = del.timestamp.parse() {
            pod.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts));
        }
        pod.metadata.deletion_grace_period_seconds = del.grace_period_seconds;
    }
    if damaged.is_none() {
        mark_supervisor_lost(dir, &mut pod);
    }
    Some(PodRecord {
        dir: dir.to_path_buf(),
        pod,
        damaged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_salvaged_from_a_truncated_record() {
        let t = "{\n  \"apiVersion\": \"v1\",\n  \"metadata\": {\n    \"name\": \"x\",\n    \"uid\": \"0f3c-42\",\n    \"labels\": {\"a";
        assert_eq!(salvage_string(t, "uid").as_deref(), Some("0f3c-42"));
        assert_eq!(salvage_string("{\"uid\": \"a/../b\"}", "uid"), None);
        assert_eq!(salvage_string("{\"uid\": \"abc", "uid"), None);
    }

    #[test]
    fn a_pid_file_names_one_process_by_pid_and_start_time() {
        let dir = std::env::temp_dir().join(format!("podrun-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("supervisor.pid");
        let me = std::process::id() as i32;
        std::fs::write(&path, pid_record(me)).unwrap();
        assert_eq!(read_pid(&path), Some(me));
        // Same pid, another start time: a reused pid is not ours.
        let st = start_time(me).unwrap();
        std::fs::write(&path, format!("{me} {}\n", st + 1)).unwrap();
        assert_eq!(read_pid(&path), None);
        assert!(!signal_pid_file(&path, nix::sys::signal::Signal::SIGTERM));
        // A bare pid (no start time) proves nothing either.
        std::fs::write(&path, format!("{me}\n")).unwrap();
        assert_eq!(read_pid(&path), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
