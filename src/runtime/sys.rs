//! Thin wrappers over the system calls the runtime needs that nix does not cover
//! conveniently: raw clone, the parent/child sync channel, fd passing, mounts by flag.
use std::ffi::CString;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

/// Messages on the sync channel between podrun and the container's first process.
pub mod msg {
    /// parent → child: cgroup placed (and id maps written): go on.
    pub const GO: u8 = 1;
    /// child → parent: I created a user namespace, write its id maps.
    pub const MAPS_REQ: u8 = 2;
    /// parent → child: id maps written.
    pub const MAPS_DONE: u8 = 3;
    /// child → parent: the container init is this pid (after a second fork).
    pub const PID: u8 = 4;
    /// child → parent: mounts are ready, run prestart/createRuntime hooks.
    pub const HOOKS_REQ: u8 = 5;
    /// parent → child: hooks done.
    pub const HOOKS_DONE: u8 = 6;
    /// child → parent: set up; waiting for `start` (or about to exec).
    pub const READY: u8 = 7;
    /// child → parent: setup failed; the payload says why.
    pub const ERR: u8 = 8;
}

/// A connected SOCK_SEQPACKET pair (close-on-exec): message boundaries are kept.
pub fn sync_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

pub fn send_msg(fd: RawFd, tag: u8, payload: &[u8]) -> nix::Result<()> {
    let mut buf = Vec::with_capacity(1 + payload.len());
    buf.push(tag);
    buf.extend_from_slice(payload);
    // SAFETY: fd is a socket we own for the duration of the call; buf is valid.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// Receives one message; `None` at end of stream (the peer closed or exec'd).
pub fn recv_msg(fd: RawFd) -> nix::Result<Option<(u8, Vec<u8>)>> {
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: buf is a valid writable buffer of the given length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = nix::Error::last();
            if e == nix::Error::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        let n = n as usize;
        return Ok(Some((buf[0], buf[1..n].to_vec())));
    }
}

/// Sends `fd` over a unix socket with SCM_RIGHTS.
pub fn send_fd(sock: RawFd, fd: RawFd) -> nix::Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"\0")];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// fork-like clone(2) with namespace flags: returns 0 in the child, its pid in the parent.
/// The child runs on a copy of the caller's stack, like fork; the caller must be
/// single-threaded (the child allocates before exec).
pub fn clone_fork(flags: libc::c_int) -> nix::Result<i32> {
    // SAFETY: without CLONE_VM the child gets a private copy of the address space and
    // continues on its own copy of the stack, exactly like fork(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(r as i32)
}

pub fn cstr(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// mount(2) with raw flags; `fstype`/`data` may be empty.
pub fn mount(
    src: &Path,
    dst: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> nix::Result<()> {
    let src = cstr(src);
    let dst = cstr(dst);
    let fstype = CString::new(fstype).unwrap_or_default();
    let data = CString::new(data).unwrap_or_default();
    let fs_ptr = if fstype.as_bytes().is_empty() {
        std::ptr::null()
    } else {
        fstype.as_ptr()
    };
    let data_ptr = if data.as_bytes().is_empty() {
        std::ptr::null()
    } else {
        data.as_ptr()
    };
    // SAFETY: every pointer is a valid NUL-terminated string or null.
    let r = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs_ptr, flags, data_ptr.cast()) };
    if r < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// The signals whose disposition in this process is not SIG_DFL (ignored or caught),
/// in a fixed array so a child can walk it without allocating. exec keeps SIG_IGN (Rust
/// ignores SIGPIPE; a caller may ignore anything, glibc's own 32 and 33 included), so a
/// child about to exec a container process puts them back.
#[derive(Debug, Clone, Copy)]
pub struct Signals {
    list: [u8; 64],
    len: usize,
}

/// The kernel's struct sigaction (x86-64 and aarch64 layout): raw rt_sigaction reaches
/// the signals glibc's wrapper refuses.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// rt_sigaction(2) without glibc's filtering. Async-signal-safe.
fn rt_sigaction(
    sig: i32,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> bool {
    let new = new.map_or(std::ptr::null(), |n| n as *const KernelSigaction);
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut KernelSigaction);
    // SAFETY: both pointers are null or point at a live KernelSigaction; 8 is the
    // kernel's sigset size.
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, new, old, 8usize) == 0 }
}

/// Asks the kernel for every signal's disposition (SIGKILL and SIGSTOP have none).
pub fn non_default_signals() -> Signals {
    let mut s = Signals {
        list: [0; 64],
        len: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = KernelSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        if rt_sigaction(sig, None, Some(&mut old)) && old.handler != libc::SIG_DFL {
            s.list[s.len] = sig as u8;
            s.len += 1;
        }
    }
    s
}

/// Sets every signal in `s` back to SIG_DFL. Async-signal-safe (no allocation, no
/// lock): usable in a vfork child.
pub fn reset_signals(s: &Signals) {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for &sig in &s.list[..s.len] {
        rt_sigaction(libc::c_int::from(sig), Some(&dfl), None);
    }
}

/// Closes every fd from `first` up except `keep`: a process that outlives the command
/// that started it (a created container waiting for `start`) must not hold the caller's
/// descriptors (a lock, a pipe end) meanwhile.
pub fn close_from_except(first: u32, keep: Option<RawFd>) {
    let close = |lo: u32, hi: u32| {
        if lo <= hi {
            // SAFETY: closes descriptors of this process only; none is used afterwards.
            unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
        }
    };
    match keep
        .and_then(|k| u32::try_from(k).ok())
        .filter(|k| *k >= first)
    {
        Some(k) => {
            close(first, k - 1);
            close(k + 1, u32::MAX);
        }
        None => close(first, u32::MAX),
    }
}

/// Marks every fd from `first` up close-on-exec (kept usable until exec).
pub fn cloexec_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        // Old kernels: walk /proc/self/fd instead.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect();
            for fd in fds {
                if fd >= first as i32 {
                    let _ = nix::fcntl::fcntl(
                        // SAFETY: fd came from our own fd table; borrowed for one call.
                        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                    );
                }
            }
        }
    }
}

/// Duplicates `fd` to a number at or above `min`, close-on-exec.
pub fn dup_above(fd: &OwnedFd, min: i32) -> nix::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd we then own.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: r is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Opens a pidfd for `pid` (Linux ≥ 5.3).
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: r is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Waits until the process behind `pidfd` exits, up to `timeout_ms`; true if it did.
pub fn pidfd_wait(pidfd: &OwnedFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    r > 0
}

/// struct clone_args of clone3(2) (as of Linux 5.7).
#[repr(C)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub(crate) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3(2) fork-like with CLONE_INTO_CGROUP: the child starts inside the cgroup2
/// directory `cgroup_dir` (no migration, so no wait on the global cgroup lock).
pub fn clone3_into_cgroup(flags: libc::c_int, cgroup_dir: RawFd) -> nix::Result<i32> {
    let args = CloneArgs {
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_dir as u64,
    };
    // SAFETY: without CLONE_VM and with no stack the child continues on a private copy
    // of our address space, like fork(2); args is a valid clone_args of the given size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(r as i32)
}

/// Moves the calling thread into each v1 cgroup by writing "0" to its `tasks` file: a
/// task moving itself skips the global threadgroup lock (and its RCU grace period).
pub fn join_cgroup_tasks(tasks: &[std::path::PathBuf]) -> Result<(), String> {
    for t in tasks {
        std::fs::OpenOptions::new()
            .write(true)
            .open(t)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"0"))
            .map_err(|e| format!("join cgroup {}: {e}", t.display()))?;
    }
    Ok(())
}

/// PR_SET_DUMPABLE 0 on the calling process (inherited by fork, reset by execve).
pub fn set_non_dumpable() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}
