//! What outlives a pod's supervisor, and how it is handed on: processes held by pidfd,
//! and the node agent's fd vault with the wire protocol supervisors and `up` speak to it.
pub mod pidfd;
pub mod vault;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The agent socket's name under --root.
pub const SOCKET: &str = "agent.sock";

/// Connects to the agent of the state root whose socket is `path`.
pub fn connect(path: &Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// The agent of state root `root`, if one listens there.
pub fn connect_agent(root: &Path) -> Option<OwnedFd> {
    connect(&root.join(SOCKET)).ok()
}
