//! A process held by pidfd: opened race-free against pid reuse, polled for exit, and asked
//! for its exit status even after someone else reaped it (PIDFD_INFO_EXIT, Linux ≥ 6.15).
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// How a process ended, as waitpid(2) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// Decodes a wait status word.
    pub fn from_wait_status(status: i32) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// The exit code kubelet shows: the code, or 128 + the signal.
    pub fn exit_code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// struct pidfd_info of <linux/pidfd.h> (PIDFD_INFO_SIZE_VER0: 64 bytes).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
    coredump_mask: u32,
    spare: u32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;
nix::ioctl_readwrite!(pidfd_get_info, 0xFF, 11, PidfdInfo);

/// A process we hold a pidfd for.
#[derive(Debug)]
pub struct ProcessHandle {
    fd: OwnedFd,
    pid: i32,
}

impl ProcessHandle {
    /// Opens `pid`; with `start_time` (field 22 of /proc/pid/stat) the process must be
    /// that one, not a later process that reused the pid. Checking after the open makes
    /// it race-free: the pidfd cannot change what it refers to.
    pub fn open(pid: i32, start_time: Option<u64>) -> std::io::Result<ProcessHandle> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this fd; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let handle = ProcessHandle { fd, pid };
        if let Some(want) = start_time {
            let now = crate::runtime::state::process_start_time(pid);
            if now != Some(want) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(handle)
    }

    /// Wraps a pidfd received from elsewhere (e.g. over the agent's socket) that should
    /// name process `pid`: refused when it names another live process. A pidfd of a
    /// process already reaped no longer tells its pid, but still its exit status.
    pub fn from_fd(fd: OwnedFd, pid: i32) -> std::io::Result<ProcessHandle> {
        match pid_of_pidfd(&fd)? {
            Some(p) if p != pid => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the pidfd names process {p}, not {pid}"),
            )),
            _ => Ok(ProcessHandle { fd, pid }),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Has the process exited (zombie or reaped)? Never blocks.
    pub fn exited(&self) -> bool {
        let mut pfd = [nix::poll::PollFd::new(
            self.fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        matches!(nix::poll::poll(&mut pfd, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// The exit status once the process has exited, whoever reaped it; None while it runs
    /// or on a kernel without PIDFD_INFO_EXIT.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut info = PidfdInfo {
            mask: PIDFD_INFO_EXIT,
            ..Default::default()
        };
        // SAFETY: the ioctl fills a struct of the size encoded in its number.
        let r = unsafe { pidfd_get_info(self.fd.as_raw_fd(), &mut info) };
        if r.is_err() || info.mask & PIDFD_INFO_EXIT == 0 {
            return None;
        }
        Some(ExitStatus::from_wait_status(info.exit_code))
    }

    /// Sends `sig` to exactly this process (pidfd_send_signal).
    pub fn signal(&self, sig: i32) -> std::io::Result<()> {
        // SAFETY: pidfd_send_signal with a null siginfo and no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// The pid a pidfd refers to, from the "Pid:" line of its fdinfo; None once the process
/// is gone (the kernel shows -1).
fn pid_of_pidfd(fd: &OwnedFd) -> std::io::Result<Option<i32>> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not a pidfd"))?;
    Ok((pid > 0).then_some(pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn exit_code_is_the_code_or_128_plus_the_signal() {
        assert_eq!(ExitStatus::Exited(3).exit_code(), 3);
        assert_eq!(ExitStatus::Signaled(9).exit_code(), 137);
        assert_eq!(
            ExitStatus::from_wait_status(42 << 8),
            ExitStatus::Exited(42)
        );
        assert_eq!(ExitStatus::from_wait_status(9), ExitStatus::Signaled(9));
    }

    #[test]
    fn a_reaped_child_still_tells_its_exit_status() {
        let mut child = Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("sh");
        let h = ProcessHandle::open(child.id() as i32, None).expect("pidfd");
        let _ = child.wait();
        assert!(h.exited());
        // Kernels before 6.15 have no PIDFD_INFO_EXIT: then there is nothing to check.
        if let Some(st) = h.exit_status() {
            assert_eq!(st, ExitStatus::Exited(7));
        }
    }

    #[test]
    fn a_running_process_has_no_exit_status_and_a_wrong_start_time_is_refused() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id() as i32;
        let h = ProcessHandle::open(pid, None).expect("pidfd");
        assert!(!h.exited());
        assert_eq!(h.exit_status(), None);
        let start = crate::runtime::state::process_start_time(pid).expect("start time");
        assert!(ProcessHandle::open(pid, Some(start)).is_ok());
        assert!(ProcessHandle::open(pid, Some(start + 1)).is_err());
        let same = ProcessHandle::from_fd(h.into_fd(), pid).expect("from fd");
        assert_eq!(same.pid(), pid);
        let other = ProcessHandle::open(pid, None).expect("pidfd").into_fd();
        assert!(
            ProcessHandle::from_fd(other, pid + 1).is_err(),
            "a pidfd of another process"
        );
        same.signal(libc::SIGKILL).expect("kill");
        let _ = child.wait();
        if let Some(st) = same.exit_status() {
            assert_eq!(st, ExitStatus::Signaled(libc::SIGKILL));
        }
    }
}
