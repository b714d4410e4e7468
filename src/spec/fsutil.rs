//! Path resolution confined to a directory (openat2 RESOLVE_IN_ROOT): reading an image's
//! /etc/passwd or resolving a volume subPath never follows a link out of its root.
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Opens `root` itself as an O_PATH directory handle.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Opens `rel` below `root` as if `root` were `/`: `..` and absolute links stay inside.
pub fn open_in_root<Fd: AsFd>(root: Fd, rel: &str, flags: OFlag) -> io::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    openat2(root, rel, how(flags)).map_err(io::Error::from)
}

/// Reads the file `rel` inside `root`; `Ok(None)` when it does not exist.
pub fn read_in_root(root: &Path, rel: &str) -> io::Result<Option<Vec<u8>>> {
    let dir = open_root(root)?;
    match open_in_root(&dir, rel, OFlag::O_RDONLY) {
        Ok(fd) => {
            let mut f = std::fs::File::from(fd);
            let mut buf = Vec::new();
            io::Read::read_to_end(&mut f, &mut buf)?;
            Ok(Some(buf))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The path through which the kernel reaches exactly the object behind `fd`.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `rel` inside `root` (O_PATH), creating missing components as directories
/// (mode `mode`) one at a time, each resolved inside `root`.
pub fn open_or_mkdir_in_root(root: &OwnedFd, rel: &str, mode: u32) -> io::Result<OwnedFd> {
    match open_in_root(root, rel, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let comps: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut done = String::new();
    for comp in comps {
        let parent = open_in_root(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let next = if done.is_empty() {
            comp.to_string()
        } else {
            format!("{done}/{comp}")
        };
        match open_in_root(root, &next, OFlag::O_PATH) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if comp == ".." {
                    return Err(e);
                }
                match nix::sys::stat::mkdirat(&parent, comp, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e),
        }
        done = next;
    }
    open_in_root(root, rel, OFlag::O_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::user::tests::tempdir::Dir;

    #[test]
    fn links_cannot_leave_the_root() {
        let d = Dir::new("fsutil");
        let root = d.path();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/f"), "inside").unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../../..", root.join("up")).unwrap();
        assert_eq!(
            read_in_root(root, "escape/data/f").unwrap().unwrap(),
            b"inside"
        );
        assert_eq!(read_in_root(root, "up/data/f").unwrap().unwrap(), b"inside");
        assert_eq!(
            read_in_root(root, "/../../data/f").unwrap().unwrap(),
            b"inside"
        );
        assert!(
            read_in_root(root, "escape/etc/hostname").unwrap().is_none(),
            "no host file"
        );
    }

    #[test]
    fn mkdir_creates_inside_through_links() {
        let d = Dir::new("fsutil-mk");
        let root = d.path();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        let fd = open_root(root).unwrap();
        let made = open_or_mkdir_in_root(&fd, "abs/a/b", 0o755).unwrap();
        assert!(root.join("a/b").is_dir(), "created inside the root");
        let target = std::fs::read_link(fd_path(&made)).unwrap();
        assert_eq!(target, root.join("a/b"));
    }
}
