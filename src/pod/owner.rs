//! The owner of a pod: whoever holds the flock on `pods/NS_NAME/lock` (`create`, then
//! the supervisor it hands the lock to, or a `delete` cleaning up after a dead one).
use crate::supervisor::store::LOCK_FILE;
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

/// The held lock of one pod. Dropping it closes this copy only: the lock belongs to
/// the open file, which a supervisor may share, and goes when its last copy does (never
/// an explicit LOCK_UN, which would free it for the supervisor too).
pub struct PodOwner {
    lock: File,
}

/// flock(LOCK_EX | LOCK_NB) on `f`: Ok(false) while someone else holds it.
fn try_flock(f: &File) -> Result<bool, nix::Error> {
    // SAFETY: flock on an fd we own, with integer flags.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    match nix::errno::Errno::result(r) {
        Ok(_) => Ok(true),
        Err(nix::Error::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
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
    /// A live owner holds the lock.
    Held,
    /// The directory is gone: the pod is removed.
    Gone,
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
        match try_flock(&f) {
            Ok(true) => Ok(PodOwner { lock: f }),
            Ok(false) => Err(OwnerError::Fd(f.as_raw_fd(), nix::Error::EWOULDBLOCK)),
            Err(e) => Err(OwnerError::Fd(f.as_raw_fd(), e)),
        }
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
                    Ownership::Gone
                });
            }
            Err(source) => {
                return Err(OwnerError::Io {
                    path: dir.join(LOCK_FILE),
                    source,
                })
            }
        };
        match try_flock(&f) {
            Ok(true) if still_linked(&f, dir) => Ok(Ownership::Taken(PodOwner { lock: f })),
            Ok(_) => Ok(Ownership::Held),
            Err(e) => Err(OwnerError::Fd(f.as_raw_fd(), e)),
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
        let lock = File::from(owned);
        // The lock is already ours (shared with `create`'s copy): this only proves it.
        match try_flock(&lock) {
            Ok(true) => Ok(PodOwner { lock }),
            Ok(false) => Err(OwnerError::Fd(fd, nix::Error::EWOULDBLOCK)),
            Err(e) => Err(OwnerError::Fd(fd, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("podrun-owner-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_lock_shared_with_a_child_outlives_the_creators_copy() {
        let dir = temp_dir("shared");
        let owner = PodOwner::create(&dir).unwrap();
        // What the supervisor inherits: another fd on the same open file.
        let child = owner.lock.try_clone().unwrap();
        assert!(matches!(PodOwner::try_take(&dir), Ok(Ownership::Held)));
        drop(owner);
        assert!(
            matches!(PodOwner::try_take(&dir), Ok(Ownership::Held)),
            "dropping the creator's copy must not free the supervisor's lock"
        );
        drop(child);
        assert!(matches!(PodOwner::try_take(&dir), Ok(Ownership::Taken(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lock_file_removed_meanwhile_is_not_ownership() {
        let dir = temp_dir("unlinked");
        let stale = open(&dir, true).unwrap();
        std::fs::remove_file(dir.join(LOCK_FILE)).unwrap();
        let _new = PodOwner::create(&dir).unwrap();
        assert!(try_flock(&stale).unwrap(), "the old inode is free");
        assert!(!still_linked(&stale, &dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_lock_file_is_told_apart_from_no_directory() {
        let dir = temp_dir("nolock");
        assert!(matches!(PodOwner::try_take(&dir), Ok(Ownership::NoLock)));
        assert!(
            !dir.join(LOCK_FILE).exists(),
            "try_take never creates the lock"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(PodOwner::try_take(&dir), Ok(Ownership::Gone)));
    }
}
