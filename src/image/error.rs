//! Errors of the image store: each says what failed and on which path, image or registry.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Reference(#[from] super::reference::ReferenceError),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("image {0:?} not found in the local store")]
    NotFound(String),
    #[error(
        "conflict: unable to remove repository reference {reference:?} - container {container} is using its referenced image {image_id}"
    )]
    InUse {
        reference: String,
        container: String,
        image_id: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    #[error("unpacking layer {layer}: entry {entry:?}: {reason}")]
    Unpack {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("rootfs of container {container}: {reason}")]
    Rootfs { container: String, reason: String },
    #[error("parsing {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// Shorthand for an I/O error on a path: `io_err("open", &path)(e)`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { op, path, source }
}

pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

pub(crate) fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Json { what, source }
}
