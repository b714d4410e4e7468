//! The OCI runtime: container create/start/kill/delete/state/exec over raw namespaces,
//! rootfs, cgroups, process setup and OCI hooks, with on-disk state. Knows nothing of
//! Kubernetes.
//!
//! Library use (the pod supervisor calls this directly):
//!
//! ```no_run
//! use podrun::runtime::{Runtime, CreateOptions};
//! let rt = Runtime::new("/run/podrun");
//! let st = rt.create("web", std::path::Path::new("/bundles/web"), &CreateOptions::default())?;
//! rt.start("web")?;
//! # Ok::<(), podrun::runtime::RuntimeError>(())
//! ```
//!
//! Constraints: `create` and `exec` clone the calling process, and the child runs Rust
//! code (it allocates) before exec, so call them from a single-threaded process. The
//! container init (and exec'd processes) become children of the caller: reap them
//! (`waitpid`) or make sure a subreaper does. When a config joins namespaces by path
//! and also asks for a new pid namespace, init is a grandchild: set
//! PR_SET_CHILD_SUBREAPER to be able to wait for it. A pid namespace given by path is
//! entered for the clone only and left again before `create`/`exec` return.
pub mod cgroups;
pub mod checkpoint;
pub mod config;
mod create;
pub mod dbus;
mod error;
pub mod events;
mod exec;
mod fastexec;
pub mod features;
pub mod hooks;
mod idmounts;
mod init;
mod lifecycle;
pub mod log;
pub mod lsm;
mod process;
pub mod rootfs;
mod seccomp;
pub mod state;
mod sys;
pub mod sysctl;
pub mod systemd;
pub mod terminal;

pub use error::{Result, RuntimeError};
pub use exec::{ExecOptions, ExecOutcome};
pub use fastexec::{PreparedExec, Spawned};
pub use state::{ContainerRecord, State, Status};

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// Options for [`Runtime::create`], mirroring runc's `create` flags.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    /// Write the container init's pid here (atomically).
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to when process.terminal is true.
    pub console_socket: Option<PathBuf>,
    /// An already-connected socket to send the pty master to (instead of a path).
    pub console_fd: Option<RawFd>,
    /// MS_MOVE + chroot instead of pivot_root (rootfs on a ramfs).
    pub no_pivot: bool,
    /// Pass fds 3..3+N to the container process.
    pub preserve_fds: u32,
    /// systemd socket activation (runc): fds 3..3+N are passed before the preserved
    /// ones, and the process gets LISTEN_FDS=N and LISTEN_PID=1.
    pub listen_fds: u32,
    /// The container's stdin/stdout/stderr; `None` inherits the caller's.
    pub stdin: Option<RawFd>,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
    /// Skip the `created` state: the process runs as soon as it is set up (what `run`
    /// does), poststart hooks run before `create` returns, and no `start` is needed.
    pub start_immediately: bool,
    /// runc's --systemd-cgroup: cgroupsPath is "slice:prefix:name" (see [`systemd`]).
    pub systemd_cgroup: bool,
}

/// A state root holding containers (`<root>/containers/<id>/`).
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// Does a container with this id exist under the root?
    pub fn exists(&self, id: &str) -> bool {
        config::validate_id(id).is_ok() && self.container_dir(id).join(state::STATE_FILE).exists()
    }
}
