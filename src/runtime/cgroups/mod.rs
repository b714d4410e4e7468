//! Cgroups v1 and v2 behind one interface, chosen from what the host mounts (including
//! the hybrid layout: v1 controllers beside a v2 hierarchy without cpu/memory).
//!
//! The runtime only talks to [`CgroupManager`]; `open` picks the implementation.
use oci_spec::runtime::LinuxResources;
use std::path::PathBuf;

/// What went wrong with a cgroup, and on which path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {msg}")]
    Io { path: PathBuf, msg: String },
    #[error("cgroup resources: {0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, CgroupError>;

/// Usage figures read back from a cgroup.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CgroupStats {
    pub memory_usage_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub oom_kill_count: u64,
    pub cpu_usage_nanos: u64,
    pub pids_current: u64,
}

/// One container's (or pod's) cgroup across every hierarchy the host has.
pub trait CgroupManager: Send + Sync {
    /// Creates the cgroup directories (idempotent) and moves `pid` into them.
    fn apply(&self, pid: i32) -> Result<()>;
    /// Writes the resource limits (memory, cpu, cpuset, pids, ...).
    fn set(&self, resources: &LinuxResources) -> Result<()>;
    /// Pids currently in the cgroup.
    fn pids(&self) -> Result<Vec<i32>>;
    /// Freezes or thaws every process in the cgroup.
    fn freeze(&self, frozen: bool) -> Result<()>;
    /// Reads usage and OOM figures.
    fn stats(&self) -> Result<CgroupStats>;
    /// Removes the cgroup directories; the cgroup must be empty.
    fn remove(&self) -> Result<()>;
    /// Every directory that makes up this cgroup (one per hierarchy).
    fn paths(&self) -> Vec<PathBuf>;
}

/// Opens the cgroup at `cgroups_path` (the OCI `linux.cgroupsPath`, relative to each
/// hierarchy's root) with the implementation the host calls for.
pub fn open(cgroups_path: &str) -> Result<Box<dyn CgroupManager>> {
    Err(CgroupError::Unsupported(format!(
        "cgroups not implemented yet (path {cgroups_path})"
    )))
}
