//! A lease directory: one file per leased slot under a directory, named by the slot and
//! holding the owner's pod dir, taken under the directory's lock with O_EXCL so no two
//! owners ever hold one slot, even across processes. The pod IP leases
//! (`network::ipam`) and the user namespace ranges (`userns`) are both
//! lease directories over their own slot kind.
use crate::util::FileLock;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name.
const LOCK: &str = "lock";
/// The file remembering the slot handed out last, so allocation continues after it.
const LAST_RESERVED: &str = "last_reserved";

/// A file of the lease directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct LeaseError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path, source: std::io::Error) -> LeaseError {
    LeaseError {
        path: path.to_path_buf(),
        source,
    }
}

/// One lease directory. `last_width` pads the `last_reserved` record, which is rewritten
/// in place and never truncated: ext4 flushes a file that is truncated and rewritten on
/// close (auto_da_alloc), costing milliseconds on every allocation.
#[derive(Debug, Clone)]
pub struct LeaseDir {
    dir: PathBuf,
    last_width: usize,
}

impl LeaseDir {
    pub fn new(dir: PathBuf, last_width: usize) -> LeaseDir {
        LeaseDir { dir, last_width }
    }

    /// The directory holding the leases.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the directory's lock (creating the directory).
    pub fn lock(&self) -> Result<FileLock, LeaseError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| err(&self.dir, e))?;
        let p = self.dir.join(LOCK);
        FileLock::exclusive(&p).map_err(|e| err(&p, e))
    }

    /// The slot recorded as handed out last, if any.
    pub fn last_reserved(&self) -> Option<String> {
        let s = std::fs::read_to_string(self.dir.join(LAST_RESERVED)).ok()?;
        Some(s.trim().to_string())
    }

    /// Records `slot` as handed out last (best effort: it only steers the next search).
    fn record_last(&self, slot: &str) {
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(LAST_RESERVED))
        {
            use std::os::unix::fs::FileExt;
            let line = format!("{slot:<width$}\n", width = self.last_width);
            let _ = f.write_all_at(line.as_bytes(), 0);
        }
    }

    /// Leases `slot` to `owner` unless someone holds it; the caller holds the lock.
    pub fn try_lease(&self, slot: &str, owner: &Path) -> Result<bool, LeaseError> {
        let p = self.dir.join(slot);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(mut f) => {
                if let Err(e) = f.write_all(owner.as_os_str().as_encoded_bytes()) {
                    let _ = std::fs::remove_file(&p);
                    return Err(err(&p, e));
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(err(&p, e)),
        }
    }

    /// Leases the first free slot of `candidates` (called afresh for each pass) to
    /// `owner` under the lock and records it as the last one handed out. When every
    /// candidate is taken, leases whose owner dir is gone (a crashed supervisor, a
    /// reboot) are reclaimed and the search runs once more; None when still full.
    pub fn allocate<I, F>(&self, owner: &Path, candidates: F) -> Result<Option<String>, LeaseError>
    where
        F: Fn() -> I,
        I: Iterator<Item = String>,
    {
        let _lock = self.lock()?;
        self.allocate_locked(owner, candidates)
    }

    /// As [`LeaseDir::allocate`], but a slot `owner` already holds is returned again
    /// (one slot per owner), checked under the same lock.
    pub fn allocate_once<I, F>(
        &self,
        owner: &Path,
        candidates: F,
    ) -> Result<Option<String>, LeaseError>
    where
        F: Fn() -> I,
        I: Iterator<Item = String>,
    {
        let _lock = self.lock()?;
        if let Some((slot, _)) = self.leases().into_iter().find(|(_, o)| o == owner) {
            return Ok(Some(slot));
        }
        self.allocate_locked(owner, candidates)
    }

    fn allocate_locked<I, F>(
        &self,
        owner: &Path,
        candidates: F,
    ) -> Result<Option<String>, LeaseError>
    where
        F: Fn() -> I,
        I: Iterator<Item = String>,
    {
        for pass in 0..2 {
            for slot in candidates() {
                if self.try_lease(&slot, owner)? {
                    self.record_last(&slot);
                    return Ok(Some(slot));
                }
            }
            if pass == 0 && self.reclaim_stale() == 0 {
                break;
            }
        }
        Ok(None)
    }

    /// The leases as (slot, owner); the lock and the last-reserved record are not leases.
    pub fn leases(&self) -> Vec<(String, PathBuf)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let slot = e.file_name().to_str()?.to_string();
                if slot == LOCK || slot == LAST_RESERVED {
                    return None;
                }
                let owner = std::fs::read(e.path()).ok()?;
                let owner = PathBuf::from(String::from_utf8_lossy(&owner).into_owned());
                Some((slot, owner))
            })
            .collect()
    }

    /// Drops leases whose owner dir no longer exists; returns how many.
    pub fn reclaim_stale(&self) -> usize {
        let mut n = 0;
        for (slot, owner) in self.leases() {
            if !owner.as_os_str().is_empty()
                && !owner.exists()
                && std::fs::remove_file(self.dir.join(&slot)).is_ok()
            {
                n += 1;
            }
        }
        n
    }

    /// Releases `slot` if `owner` still holds it (absent is fine).
    pub fn release(&self, slot: &str, owner: &Path) -> Result<(), LeaseError> {
        let _lock = self.lock()?;
        self.release_locked(slot, owner)
    }

    fn release_locked(&self, slot: &str, owner: &Path) -> Result<(), LeaseError> {
        let p = self.dir.join(slot);
        match std::fs::read(&p) {
            Ok(o) if o == owner.as_os_str().as_encoded_bytes() => match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(&p, e)),
                _ => Ok(()),
            },
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(&p, e)),
        }
    }

    /// Releases every slot `owner` holds.
    pub fn release_owner(&self, owner: &Path) -> Result<(), LeaseError> {
        let _lock = self.lock()?;
        for (slot, o) in self.leases() {
            if o == owner {
                self.release_locked(&slot, owner)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("podrun-lease-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_slot_is_held_by_one_owner_and_released_only_by_it() {
        let dir = temp("owner");
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let l = LeaseDir::new(dir.join("leases"), 4);
        let slots = || ["1", "2"].into_iter().map(String::from);
        assert_eq!(l.allocate(&a, slots).unwrap().as_deref(), Some("1"));
        assert_eq!(l.allocate(&b, slots).unwrap().as_deref(), Some("2"));
        assert_eq!(l.allocate(&b, slots).unwrap(), None);
        assert_eq!(l.allocate_once(&b, slots).unwrap().as_deref(), Some("2"));
        assert_eq!(l.last_reserved().as_deref(), Some("2"));
        l.release("1", &b).unwrap();
        assert_eq!(l.leases().len(), 2);
        l.release("1", &a).unwrap();
        l.release("1", &a).unwrap();
        let mut got = l.leases();
        got.sort();
        assert_eq!(got, vec![("2".to_string(), b.clone())]);
        l.release_owner(&b).unwrap();
        assert!(l.leases().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_directory_reclaims_leases_of_vanished_owners() {
        let dir = temp("stale");
        let l = LeaseDir::new(dir.join("leases"), 4);
        let slots = || std::iter::once("7".to_string());
        assert!(l.allocate(&dir.join("gone"), slots).unwrap().is_some());
        let live = dir.join("live");
        std::fs::create_dir_all(&live).unwrap();
        assert_eq!(l.allocate(&live, slots).unwrap().as_deref(), Some("7"));
        assert_eq!(l.leases(), vec![("7".to_string(), live)]);
        // The last-reserved record is padded, rewritten in place and read back trimmed.
        let raw = std::fs::read_to_string(dir.join("leases/last_reserved")).unwrap();
        assert_eq!(raw, "7   \n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
