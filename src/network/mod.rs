//! Pod networking: loopback, node bridge + veth + IPAM, hostNetwork, hostPort, resolv.conf/hosts, CNI.
//!
//! Until the bridge lands a pod has loopback only: [`setup_pod`] returns no address.
use crate::supervisor::worker::SuperviseArgs;
use k8s_openapi::api::core::v1::Pod;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

/// A pod's network attachment: its address and what to undo on delete.
#[derive(Debug)]
pub struct PodNetwork {
    pub ip: String,
}

impl PodNetwork {
    /// Releases the address and removes links and rules made for the pod.
    pub fn teardown(self) {}
}

/// Attaches the pod's network namespace `netns` to the node network.
pub fn setup_pod(
    _args: &SuperviseArgs,
    _pod: &Pod,
    _netns: &Path,
) -> Result<Option<PodNetwork>, String> {
    Ok(None)
}

/// The node's address as pods see it (status.hostIP).
pub fn host_ip() -> Option<String> {
    Some("127.0.0.1".to_string())
}

/// Runs `f` on this thread inside the network namespace at `ns`, then returns to the
/// thread's own. Sockets created inside stay in that namespace after the return.
pub fn in_netns<T>(ns: &Path, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let own = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(ns)?;
    nix::sched::setns(target.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(std::io::Error::from)?;
    let res = f();
    nix::sched::setns(own.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(std::io::Error::from)?;
    res
}
