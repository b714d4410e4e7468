//! The owner of a pod: whoever holds the flock on `pods/NS_NAME/lock` (`create`, then
//! the supervisor it hands the lock to, or a `delete` cleaning up after a dead one).
use crate::supervisor::store::LOCK_FILE;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why the lock of a pod could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lock fd {0}: {1}")]
    Fd(RawFd, nix::Error),
}

/// The held lock of one pod; released when dropped (or when its last holder exits).
pub struct PodOwner {
    lock: Flock<File>,
}

impl std::fmt::Debug for PodOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PodOwner(fd {})", self.lock.as_raw_fd())
    }
}

fn open(dir: &Path, create: bool) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(create)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE))
}

/// True when `f` is still the file at `dir/lock` (not one a remover unlinked).
fn still_linked(f: &File, dir: &Path) -> bool {
    match (f.metadata(), std::fs::metadata(dir.join(LOCK_FILE))) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Who owns a pod, as far as its lock tells.
#[derive(Debug)]
pub enum Ownership {
    /// Nobody did: now the caller does.
    Taken(PodOwner),
    /// A live owner holds the lock (or the directory is gone).
    Held,
    /// The directory has no lock file: a pod created before pods had locks, or one
    /// whose directory is being removed.
    NoLock,
}

impl PodOwner {
    /// Creates the lock of a new pod's directory and takes it.
    pub fn create(dir: &Path) -> Result<PodOwner, OwnerError> {
        let path = dir.join(LOCK_FILE);
        let f = open(dir, true).map_err(|source| OwnerError::Io {
            path: path.clone(),
            source,
        })?;
        let lock = Flock::lock(f, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| OwnerError::Fd(-1, e))?;
        Ok(PodOwner { lock })
    }

    /// Takes the lock of the pod in `dir` if nobody holds it. Never creates the lock
    /// file: one made in a directory being removed would keep the directory alive.
    pub fn try_take(dir: &Path) -> Result<Ownership, OwnerError> {
        let f = match open(dir, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(if dir.exists() {
                    Ownership::NoLock
                } else {
                    Ownership::Held
                });
            }
            Err(source) => {
                return Err(OwnerError::Io {
                    path: dir.join(LOCK_FILE),
                    source,
                })
            }
        };
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(lock) if still_linked(&lock, dir) => Ok(Ownership::Taken(PodOwner { lock })),
            Ok(_) | Err((_, nix::Error::EWOULDBLOCK)) => Ok(Ownership::Held),
            Err((_, e)) => Err(OwnerError::Fd(-1, e)),
        }
    }

    /// The fd a child inherits to become the owner (its copy shares this lock).
    pub fn raw_fd(&self) -> RawFd {
        self.lock.as_raw_fd()
    }

    /// Adopts the lock handed down as fd `fd` (the supervisor's side): closed on exec,
    /// so the pod's containers never hold it.
    pub fn adopt(fd: RawFd) -> Result<PodOwner, OwnerError> {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        // SAFETY: F_GETFD only reads the flags of a number; it proves the fd is open
        // before we take ownership of it.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(OwnerError::Fd(fd, nix::Error::last()));
        }
        // SAFETY: an open fd handed to this process for it to own; nothing else uses it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| OwnerError::Fd(fd, e))?;
        let lock = Flock::lock(File::from(owned), FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| OwnerError::Fd(fd, e))?;
        Ok(PodOwner { lock })
    }
}
