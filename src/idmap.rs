//! Idmapped mounts (Linux ≥ 5.12): a detached clone of a tree (`open_tree`) whose
//! ownership is translated through a user namespace (`mount_setattr` with
//! MOUNT_ATTR_IDMAP), and a user namespace made only to carry a mapping.
//!
//! With the mapping `0 → base` (size n) an inode owned by k on disk is seen as base+k
//! through the mount (so as k inside a user namespace with the same mapping), and a file
//! that base+k creates there is owned by k on disk: nothing is chowned.
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// One line of a uid_map/gid_map: `count` ids from `inside` map to `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The text of a uid_map/gid_map file for `maps`.
pub fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

/// Parses a /proc/PID/uid_map (or gid_map) text.
pub fn parse_map(text: &str) -> Vec<IdMap> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|v| v.parse::<u32>());
            match (f.next(), f.next(), f.next()) {
                (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count))) => Some(IdMap {
                    inside,
                    outside,
                    count,
                }),
                _ => None,
            }
        })
        .collect()
}

fn cstr(p: &Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
/// Follow a symlink at the target: the runtime passes /proc/self/fd/N of a pinned dir.
const MOVE_MOUNT_T_SYMLINKS: libc::c_uint = 0x10;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached, idmapped clone of the tree at `source` (all of it with `recursive`).
/// EINVAL from the kernel means the filesystem cannot be idmapped (see
/// [`idmap_error`]); ENOSYS a kernel older than 5.12.
pub fn idmapped_tree(
    source: &Path,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> std::io::Result<OwnedFd> {
    let tree = cloned_tree(source, recursive)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let at = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: tree is a live mount fd, "" with AT_EMPTY_PATH names it; attr is a valid
    // mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tree)
}

/// Does the kernel have mount_setattr (idmapped mounts, Linux 5.12)? Asked with a
/// descriptor that cannot exist: EBADF means the call is there, ENOSYS that it is not.
pub fn kernel_has_idmap() -> bool {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid mount_attr; fd -1 makes the call fail before it touches anything.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}

/// A detached clone of the tree at `source` (a bind mount not yet attached), made
/// where the source can be reached, for a process that cannot walk to it.
pub fn cloned_tree(source: &Path, recursive: bool) -> std::io::Result<OwnedFd> {
    let src = cstr(source)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: a NUL-terminated path and integer flags; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, src.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a fresh descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a detached mount (from [`idmapped_tree`]) at `target`.
pub fn attach(tree: BorrowedFd<'_>, target: &Path) -> std::io::Result<()> {
    let t = cstr(target)?;
    // SAFETY: tree is a detached mount fd; both paths are NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// runc's words for a tree that could not be idmapped (what kubelet then shows as the
/// container's CreateContainerError): EINVAL is a filesystem without idmap support.
pub fn idmap_error(source: &Path, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => format!(
            "failed to set MOUNT_ATTR_IDMAP on {}: {e} (idmapped mounts need Linux 5.12 or later)",
            source.display()
        ),
        _ => format!(
            "failed to set MOUNT_ATTR_IDMAP on {}: {e} (maybe the filesystem used doesn't support idmap mounts on this kernel?)",
            source.display()
        ),
    }
}

/// A user namespace with the given maps, held by nobody: a child unshares it and waits
/// while we write its maps and open it; the fd keeps it alive after the child is gone.
/// Costs one fork; used where no process with that mapping exists yet.
pub fn userns_with(uid: &[IdMap], gid: &[IdMap]) -> std::io::Result<OwnedFd> {
    let (mut parent, child) = std::os::unix::net::UnixStream::pair()?;
    // SAFETY: fork-like clone without CLONE_VM; the child only calls async-signal-safe
    // functions (unshare, write, read, _exit) before exiting.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let fd = child.as_raw_fd();
        // SAFETY: plain system calls on our own fds in the forked child.
        unsafe {
            let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
            let b = [if ok { b'1' } else { b'0' }];
            libc::write(fd, b.as_ptr().cast(), 1);
            let mut r = [0u8; 1];
            libc::read(fd, r.as_mut_ptr().cast(), 1);
            libc::_exit(0)
        }
    }
    drop(child);
    let reap = |pid: i32| {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    let res = (|| {
        use std::io::{Read, Write};
        let mut b = [0u8; 1];
        parent.read_exact(&mut b)?;
        if b[0] != b'1' {
            return Err(std::io::Error::other("unshare(CLONE_NEWUSER) failed"));
        }
        std::fs::write(format!("/proc/{pid}/uid_map"), map_text(uid))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), map_text(gid))?;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
        parent.write_all(b"x")?;
        Ok(OwnedFd::from(ns))
    })();
    drop(parent);
    reap(pid);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_through_their_text() {
        let m = [IdMap {
            inside: 0,
            outside: 131072,
            count: 65536,
        }];
        assert_eq!(map_text(&m), "0 131072 65536\n");
        assert_eq!(parse_map("         0     131072      65536\n"), m);
        assert!(parse_map("garbage\n").is_empty());
    }
}
