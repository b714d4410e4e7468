//! On-disk container state (`<root>/containers/<id>/state.json`) and the OCI state view.
use super::error::{Result, RuntimeError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// OCI runtime-spec version podrun implements.
pub const OCI_VERSION: &str = "1.0.2";

/// Lifecycle status as the runtime spec names it (plus runc's `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What podrun remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Container init pid, in podrun's pid namespace.
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/pid/stat), so a reused pid is not mistaken
    /// for the container.
    pub pid_start: u64,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    /// cgroupsPath, when podrun put the container in a cgroup.
    pub cgroups_path: Option<String>,
    /// The container has its own pid namespace (its processes die with init).
    pub new_pid_ns: bool,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

/// The OCI state JSON (`podrun state`), with runc's extra fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

pub const STATE_FILE: &str = "state.json";
pub const FIFO_FILE: &str = "exec.fifo";
pub const CONFIG_FILE: &str = "config.json";
pub const LOCK_FILE: &str = "lock";

impl ContainerRecord {
    pub fn load(dir: &Path, id: &str) -> Result<ContainerRecord> {
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(RuntimeError::io("read state", path, e)),
        };
        serde_json::from_slice(&data).map_err(|e| RuntimeError::Config {
            path,
            msg: format!("corrupt state: {e}"),
        })
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let data = serde_json::to_vec(self).map_err(|e| RuntimeError::Config {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        crate::util::write_atomic(&path, &data)
            .map_err(|e| RuntimeError::io("write state", path, e))
    }

    /// Is the init process still the one we started, and not yet exited?
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid).is_some_and(|t| t == self.pid_start)
    }

    /// Status derived from the process and the exec fifo, as runc does.
    pub fn status(&self, dir: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir.join(FIFO_FILE).exists() {
            return Status::Created;
        }
        if self.paused {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> State {
        State {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Start time (clock ticks since boot) of a live, non-zombie process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // rest starts at field 3 (state); starttime is field 22.
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_a_start_time_and_dead_pid_has_none() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }
}
