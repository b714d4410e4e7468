//! Cgroups v1 and v2 behind one interface, chosen from what the host mounts (including
//! the hybrid layout: v1 controllers beside a v2 hierarchy without cpu/memory).
//!
//! The runtime only talks to [`CgroupManager`]; `open` picks the implementation:
//! - pure v2 (cgroup2 at /sys/fs/cgroup): one directory, controllers enabled in each
//!   ancestor's `cgroup.subtree_control` on the way down;
//! - v1, and the hybrid layout: one directory per v1 hierarchy (controllers from there),
//!   and, as runc does, the process is also placed in the cgroup2 hierarchy when one is
//!   mounted beside them (crun refuses such hosts; we do not).
//!
//! `cgroupsPath` follows runc's cgroupfs driver: an absolute path is taken relative to each
//! hierarchy's root; a relative one is placed under the caller's own cgroup (v2: under its
//! parent); `slice:prefix:name` (systemd style) becomes the cgroupfs path systemd would use.
//!
//! File writes go through cgroups-rs's controllers where their semantics match runc's;
//! our own thin code covers the layout detection (one read of /proc/self/mountinfo per
//! process), path handling, directory creation, the hybrid unified hierarchy, cpu.max,
//! the v1 memory/swap ordering, OOM counters and removal.
//!
//! `linux.resources.devices`: on v1 written to devices.allow/deny in order; on v2 (and on
//! a hybrid host whose devices controller is not mounted on v1) emulated as v1 would
//! apply them and enforced by an eBPF program attached to the cgroup ([`devices_bpf`]).
//! `PODRUN_DEVICES_BPF=1` makes a hybrid host use the eBPF filter on its cgroup2
//! hierarchy instead of the v1 devices controller (to test that path on such a host).
use oci_spec::runtime::LinuxResources;
use std::path::PathBuf;

pub mod devices_bpf;
mod fsio;
mod layout;
mod path;
mod v1;
mod v2;

pub use layout::CgroupMode;
pub use path::systemd_to_cgroupfs;

/// What went wrong with a cgroup, and on which path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {msg}")]
    Io { path: PathBuf, msg: String },
    #[error("cgroup resources: {0}")]
    Unsupported(String),
    /// A `linux.resources` field this host (or podrun) cannot apply.
    #[error("linux.resources.{field}: {reason}")]
    UnsupportedField { field: String, reason: String },
    /// A `linux.resources` value that cannot be turned into a cgroup setting.
    #[error("linux.resources.{field}: invalid value {value}: {reason}")]
    InvalidValue {
        field: String,
        value: String,
        reason: String,
    },
    /// A `linux.cgroupsPath` podrun cannot place.
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// The cgroup still holds processes (or child cgroups) after the removal retries.
    #[error("cgroup {path}: still busy after {attempts} attempts to remove it: {reason}")]
    Busy {
        path: PathBuf,
        attempts: u32,
        reason: String,
    },
    /// The cgroup v2 device filter could not be built, loaded or attached.
    #[error(transparent)]
    DeviceFilter(#[from] devices_bpf::DeviceFilterError),
    /// The host mounts no usable cgroup hierarchy.
    #[error("no usable cgroup hierarchy: {0}")]
    NotMounted(String),
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
    /// `pids.max` (None: unlimited).
    pub pids_limit: Option<u64>,
}

/// One container's (or pod's) cgroup across every hierarchy the host has.
pub trait CgroupManager: Send + Sync {
    /// Creates the cgroup directories (idempotent) and moves `pid` into them.
    fn apply(&self, pid: i32) -> Result<()>;
    /// Writes the resource limits (memory, cpu, cpuset, pids, ...).
    /// Creates the directories first if `apply`/`create` has not.
    fn set(&self, resources: &LinuxResources) -> Result<()>;
    /// Pids currently in the cgroup.
    fn pids(&self) -> Result<Vec<i32>>;
    /// Freezes or thaws every process in the cgroup; returns once the kernel reports the
    /// new state.
    fn freeze(&self, frozen: bool) -> Result<()>;
    /// Reads usage and OOM figures.
    fn stats(&self) -> Result<CgroupStats>;
    /// Removes the cgroup directories (only the leaf: parents created on the way stay,
    /// open them and `remove` them when they are done with); the cgroup must be empty.
    /// Retries briefly while the kernel still reports it busy; a missing cgroup is fine.
    fn remove(&self) -> Result<()>;
    /// Every directory that makes up this cgroup (one per hierarchy).
    fn paths(&self) -> Vec<PathBuf>;

    /// Creates the cgroup directories (idempotent) without moving any process, e.g. to
    /// set limits before the container process exists, or to clone into the cgroup.
    fn create(&self) -> Result<()>;
    /// Which layout this manager drives.
    fn mode(&self) -> CgroupMode;
    /// The directory holding `controller`'s files for this cgroup ("memory", "cpu",
    /// "pids", "freezer", ...), or None when the host has no such controller. On v2
    /// every controller answers the one unified directory.
    fn controller_path(&self, controller: &str) -> Option<PathBuf>;
    /// The cgroup2 directory of this cgroup (pure v2, or hybrid's unified hierarchy).
    fn unified_path(&self) -> Option<PathBuf>;
    /// OOM kills in this cgroup so far (v2 `memory.events` oom_kill, v1
    /// `memory.oom_control` oom_kill): cheap, for telling an OOM kill from another SIGKILL.
    fn oom_kill_count(&self) -> Result<u64>;
    /// Whether the cgroup directory exists (in its first hierarchy).
    fn exists(&self) -> bool;
}

/// Opens the cgroup at `cgroups_path` (the OCI `linux.cgroupsPath`, relative to each
/// hierarchy's root) with the implementation the host calls for.
///
/// Cheap: nothing is created or written until `create`/`apply`/`set`. The host layout is
/// read once per process.
pub fn open(cgroups_path: &str) -> Result<Box<dyn CgroupManager>> {
    let layout = layout::host()?;
    let inner = path::clean(cgroups_path)?;
    match layout {
        layout::Layout::Unified(mount) => {
            let dir = path::resolve_v2(mount, &inner)?;
            Ok(Box::new(v2::V2Manager::new(mount.mountpoint.clone(), dir)))
        }
        layout::Layout::Legacy {
            hierarchies,
            unified,
        } => {
            let mut dirs = Vec::with_capacity(hierarchies.len());
            for h in hierarchies {
                dirs.push((h, path::resolve_v1(&h.mount, &h.proc_key(), &inner)?));
            }
            let unified = match unified {
                Some(m) => Some((m.mountpoint.clone(), path::resolve_v1(m, "", &inner)?)),
                None => None,
            };
            Ok(Box::new(v1::V1Manager::new(dirs, unified)))
        }
    }
}

/// The cgroup layout of this host (read once per process).
pub fn mode() -> Result<CgroupMode> {
    Ok(layout::host()?.mode())
}

/// runc's conversion of cgroup v1 `cpu.shares` (2..262144, default 1024) to cgroup v2
/// `cpu.weight` (1..10000, default 100): 1 + (shares - 2) * 9999 / 262142.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        s if s >= 262_144 => 10_000,
        s => 1 + ((s - 2) * 9999) / 262_142,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(512), 20);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
    }
}
