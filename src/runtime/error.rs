//! What went wrong in the runtime, naming the operation and the file or config field.
use std::path::PathBuf;

/// Every failure the runtime library reports; the CLI prints it as one line.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{path}: {field}: {msg}")]
    ConfigField {
        path: PathBuf,
        field: String,
        msg: String,
    },
    #[error("rootfs {path}: {msg}")]
    Rootfs { path: PathBuf, msg: String },
    #[error(
        "container id {0:?} is invalid (use letters, digits, '_', '-', '.', not starting with '.')"
    )]
    InvalidId(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {id:?}: {msg}")]
    BadState { id: String, msg: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("container init: {0}")]
    Init(String),
    #[error("{kind} hook {path}: {msg}")]
    Hook {
        kind: &'static str,
        path: PathBuf,
        msg: String,
    },
    #[error(transparent)]
    Cgroup(#[from] super::cgroups::CgroupError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

impl RuntimeError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            what: what.into(),
            source,
        }
    }
}
