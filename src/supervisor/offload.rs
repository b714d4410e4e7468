//! Work that would block the supervisor's loop (an HTTPS or grpc probe, a lifecycle
//! hook) runs in a forked helper process instead: it writes its result to a pipe the
//! loop polls with everything else, so its completion is one more event.
//!
//! The supervisor is single-threaded, so the helper may run any code after fork(2).
//! It leaves with _exit(2): nothing of the supervisor's (destructors, buffers) runs in it.
//! It holds every descriptor the supervisor had, `up`'s ready pipe among them while the
//! pod is starting: `up` (which reads that pipe to its end) returns once the postStart
//! hooks of the pod's first start are over, as it did when they ran in the loop.
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// A helper process at work.
#[derive(Debug)]
pub struct Offloaded {
    pub pid: i32,
    pipe: OwnedFd,
    buf: Vec<u8>,
    /// The pipe reached EOF (the helper wrote its result, or died).
    done: bool,
    /// The loop reaped the helper (its pid is no longer ours to signal).
    reaped: bool,
}

/// Runs `work` in a helper process; its Ok or Err(message) comes back through
/// [`Offloaded::poll`].
pub fn offload(work: impl FnOnce() -> Result<(), String>) -> Result<Offloaded, String> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the supervisor is single-threaded (see the module doc): the child may run
    // any code; it ends with _exit.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let line = encode(&work());
            let _ = nix::unistd::write(&w, line.as_bytes());
            // SAFETY: _exit ends the helper without running the supervisor's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let _ = nix::fcntl::fcntl(
                &r,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            Ok(Offloaded {
                pid: child.as_raw(),
                pipe: r,
                buf: Vec::new(),
                done: false,
                reaped: false,
            })
        }
    }
}

/// The helper's result as it travels: `ok`, or `err:` and the message.
pub fn encode(r: &Result<(), String>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(m) => format!("err:{m}"),
    }
}

/// The result a helper wrote (nothing at all: it died before it could say).
pub fn decode(bytes: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    match text.as_ref() {
        "ok" => Ok(()),
        t => match t.strip_prefix("err:") {
            Some(m) => Err(m.to_string()),
            None => Err("the helper process was lost".into()),
        },
    }
}

impl Offloaded {
    /// The descriptor to wait on (readable) until the result is in.
    pub fn fd(&self) -> Option<RawFd> {
        (!self.done).then(|| self.pipe.as_raw_fd())
    }

    /// Reads what arrived, without blocking: the result once the helper is done.
    pub fn poll(&mut self) -> Option<Result<(), String>> {
        let mut chunk = [0u8; 4096];
        while !self.done {
            match nix::unistd::read(self.pipe.as_fd(), &mut chunk) {
                Ok(0) => self.done = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(nix::Error::EINTR) => {}
                Err(nix::Error::EAGAIN) => return None,
                Err(_) => self.done = true,
            }
        }
        Some(decode(&self.buf))
    }

    /// The loop reaped the helper.
    pub fn exited(&mut self) {
        self.reaped = true;
    }

    /// Ends the helper (a deadline passed, the pod is going).
    pub fn kill(&self) {
        if !self.reaped {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_travel_intact_and_silence_is_a_lost_helper() {
        assert_eq!(decode(encode(&Ok(())).as_bytes()), Ok(()));
        let e = Err("HTTP probe failed with statuscode: 500\nsecond line".to_string());
        assert_eq!(decode(encode(&e).as_bytes()), e);
        assert_eq!(decode(b""), Err("the helper process was lost".into()));
    }
}
