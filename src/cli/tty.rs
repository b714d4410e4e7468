//! A terminal for `podrun exec -t`: receive the pty master from the runtime, put our own
//! terminal in raw mode, relay both ways and forward signals until the process exits.
use std::os::fd::OwnedFd;

/// Relays between our stdio and `master` until it closes; returns the exit code of `pid`.
pub fn proxy(master: OwnedFd, _stdin: bool, pid: i32) -> anyhow::Result<i32> {
    // SAFETY: isatty on fd 0 only queries.
    let raw = (unsafe { libc::isatty(0) } == 1).then(crate::runtime::terminal::RawMode::enter);
    crate::runtime::terminal::forward_signals(pid);
    crate::runtime::terminal::relay(&master);
    drop(raw);
    Ok(crate::runtime::terminal::wait_exit_code(pid))
}
