//! Pod networking: a pod IP on the node bridge (veth + IPAM + NAT) or from CNI plugins,
//! hostPort publishing, the node's address, and entering a pod's network namespace.
//!
//! Configuration: `<data-dir>/network.json` (all keys optional)
//! `{"network": "bridge"|"cni"|"none", "bridge": "podrun0", "subnet": "10.88.0.0/16",
//!   "cniConfDir": "/etc/cni/net.d", "cniBinDirs": ["/opt/cni/bin", "/usr/lib/cni"]}`;
//! the environment variables PODRUN_NETWORK, PODRUN_BRIDGE, PODRUN_POD_CIDR and
//! PODRUN_CNI_CONF_DIR override it.
//! Everything podrun makes carries its names: the bridge, `vp<hash>` veths, nftables table
//! `podrun` (`podrun_<bridge>` for another bridge name).
pub mod cni;
pub mod ipam;
pub mod netlink;
pub mod nft;

use ipam::{Ipam, Subnet};
use k8s_openapi::api::core::v1::Pod;
use netlink::Netlink;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

/// What failed while wiring a pod to the network, and on what.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("netlink: {op}: {source}")]
    Netlink { op: String, source: std::io::Error },
    #[error("ipam {path}: {source}")]
    Ipam {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free address left in {subnet}")]
    IpamExhausted { subnet: String },
    #[error(
        "pod subnet {subnet} overlaps address {addr} on host link {link}; choose another subnet"
    )]
    Overlap {
        subnet: String,
        addr: String,
        link: String,
    },
    #[error("nftables: {reason}")]
    Nft { reason: String },
    #[error("CNI {plugin}: {reason}")]
    Cni { plugin: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Netlink { op, source }
}

/// Which backend gives pods their address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Bridge,
    Cni,
    /// Loopback only (no pod IP).
    None,
}

/// The node's pod network settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkConfig {
    pub network: Backend,
    pub bridge: String,
    pub subnet: String,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dirs: Vec<PathBuf>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            network: Backend::Bridge,
            bridge: "podrun0".into(),
            subnet: "10.88.0.0/16".into(),
            cni_conf_dir: "/etc/cni/net.d".into(),
            cni_bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
        }
    }
}

pub const CONFIG_FILE: &str = "network.json";
/// What a pod's attachment made, kept in its pod dir so a later cleanup can undo it.
pub const ATTACHMENT_FILE: &str = "network-attachment.json";

impl NetworkConfig {
    /// Reads `<data_dir>/network.json` (defaults when absent), then the env overrides.
    pub fn load(data_dir: &Path) -> Result<NetworkConfig, NetworkError> {
        let path = data_dir.join(CONFIG_FILE);
        let cerr = |reason: String| NetworkError::Config {
            path: path.clone(),
            reason,
        };
        let mut cfg = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| cerr(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => NetworkConfig::default(),
            Err(e) => return Err(cerr(e.to_string())),
        };
        if let Ok(v) = std::env::var("PODRUN_NETWORK") {
            cfg.network =
                serde_json::from_value(serde_json::Value::String(v.clone())).map_err(|_| {
                    cerr(format!(
                        "PODRUN_NETWORK={v:?}: expected bridge, cni or none"
                    ))
                })?;
        }
        if let Ok(v) = std::env::var("PODRUN_BRIDGE") {
            cfg.bridge = v;
        }
        if let Ok(v) = std::env::var("PODRUN_POD_CIDR") {
            cfg.subnet = v;
        }
        if let Ok(v) = std::env::var("PODRUN_CNI_CONF_DIR") {
            cfg.cni_conf_dir = v.into();
        }
        let name_ok = !cfg.bridge.is_empty()
            && cfg.bridge.len() <= 15
            && cfg
                .bridge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(cerr(format!(
                "bridge: {:?} is not a link name (1-15 of [A-Za-z0-9_-])",
                cfg.bridge
            )));
        }
        Subnet::parse(&cfg.subnet).map_err(|e| cerr(format!("subnet: {e}")))?;
        Ok(cfg)
    }

    pub fn subnet(&self) -> Subnet {
        // Validated by load(); the default parses.
        Subnet::parse(&self.subnet).unwrap_or(Subnet {
            base: Ipv4Addr::new(10, 88, 0, 0),
            prefix: 16,
        })
    }

    /// The nftables table of this bridge.
    pub fn nft_table(&self) -> String {
        if self.bridge == "podrun0" {
            "podrun".into()
        } else {
            format!("podrun_{}", self.bridge.replace('-', "_"))
        }
    }

    fn ipam(&self, data_dir: &Path) -> Ipam {
        Ipam::new(data_dir.join("ipam").join(&self.bridge), self.subnet())
    }
}

/// The bridge backend's record of one pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeAttachment {
    pub ip: Ipv4Addr,
    pub veth: String,
    pub bridge: String,
    pub subnet: String,
    pub ipam_dir: PathBuf,
    pub owner: PathBuf,
    pub nft_table: String,
    pub host_ports: Vec<nft::HostPort>,
}

/// What a pod's network attachment made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Attachment {
    Bridge(BridgeAttachment),
    Cni(cni::CniAttachment),
}

/// A pod's network attachment: its address and what to undo on delete.
#[derive(Debug)]
pub struct PodNetwork {
    pub ip: String,
    pub attachment: Attachment,
    pub pod_dir: PathBuf,
}

impl PodNetwork {
    /// Releases the address and removes links and rules made for the pod.
    pub fn teardown(self) {
        if let Err(e) = self.attachment.undo() {
            eprintln!("pod network teardown in {}: {e}", self.pod_dir.display());
        }
        let _ = std::fs::remove_file(self.pod_dir.join(ATTACHMENT_FILE));
    }

    /// Checks the attachment is intact (CNI CHECK for the CNI backend).
    pub fn check(&self) -> Result<(), NetworkError> {
        match &self.attachment {
            Attachment::Bridge(b) => {
                let mut nl = Netlink::open().map_err(nl_err("opening socket"))?;
                match nl
                    .link_index(&b.veth)
                    .map_err(nl_err(format!("looking up {}", b.veth)))?
                {
                    Some(_) => Ok(()),
                    None => Err(NetworkError::Netlink {
                        op: format!("veth {}", b.veth),
                        source: std::io::Error::from_raw_os_error(libc::ENODEV),
                    }),
                }
            }
            Attachment::Cni(c) => c.check(),
        }
    }
}

impl Attachment {
    fn undo(&self) -> Result<(), NetworkError> {
        match self {
            Attachment::Bridge(b) => b.undo(),
            Attachment::Cni(c) => c.del(),
        }
    }
}

impl BridgeAttachment {
    /// Removes the veth (its pod end goes with it), the hostPorts and the lease; goes on
    /// after a failed step and reports the first failure.
    fn undo(&self) -> Result<(), NetworkError> {
        let mut first: Option<NetworkError> = None;
        match Netlink::open() {
            Ok(mut nl) => match nl.link_index(&self.veth) {
                Ok(Some(i)) => {
                    if let Err(e) = nl.del_link(i) {
                        if e.raw_os_error() != Some(libc::ENODEV) {
                            first.get_or_insert(nl_err(format!("deleting {}", self.veth))(e));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    first.get_or_insert(nl_err(format!("looking up {}", self.veth))(e));
                }
            },
            Err(e) => {
                first.get_or_insert(nl_err("opening socket")(e));
            }
        }
        if let Err(e) = nft::del_host_ports(&self.nft_table, &self.host_ports) {
            first.get_or_insert(e);
        }
        if let Ok(subnet) = Subnet::parse(&self.subnet) {
            if let Err(e) = Ipam::new(self.ipam_dir.clone(), subnet).release(self.ip, &self.owner) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Checks, before any pod is admitted, that what the node network needs for `pods` is
/// installed: the bridge backend drives NAT through `nft`, which a minimal CI image (a
/// container running podrun) often lacks; without this check `up` failed only inside
/// the pod's supervisor.
pub fn preflight(data_dir: &Path, pods: &[Pod]) -> Result<(), NetworkError> {
    let cfg = NetworkConfig::load(data_dir)?;
    let needs_bridge = pods.iter().any(|p| {
        !p.spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    });
    if cfg.network != Backend::Bridge || !needs_bridge {
        return Ok(());
    }
    if crate::util::find_in_path("nft").is_none() {
        return Err(NetworkError::Nft {
            reason: format!(
                "the pod network (bridge backend) needs the nft program from nftables, \
                 which is not on PATH: install nftables (apt-get install nftables), or set \
                 \"network\": \"none\" in {} for loopback-only pods",
                data_dir.join(CONFIG_FILE).display()
            ),
        });
    }
    Ok(())
}

/// Attaches the pod's network namespace `netns` to the node network, per the node's
/// network config in `data_dir`; the pod's leases live in `pod_dir`.
pub fn setup_pod(
    data_dir: &Path,
    pod_dir: &Path,
    pod: &Pod,
    netns: &Path,
) -> Result<Option<PodNetwork>, String> {
    let cfg = NetworkConfig::load(data_dir).map_err(|e| e.to_string())?;
    attach(&cfg, data_dir, pod_dir, pod, netns).map_err(|e| e.to_string())
}

/// Attaches `netns` for the pod whose state lives in `pod_dir`, per `cfg`.
pub fn attach(
    cfg: &NetworkConfig,
    data_dir: &Path,
    pod_dir: &Path,
    pod: &Pod,
    netns: &Path,
) -> Result<Option<PodNetwork>, NetworkError> {
    // A record left by an earlier sandbox of this pod (a supervisor that died before its
    // teardown) is undone first, so its address and links are not leaked.
    cleanup_pod_dir(pod_dir);
    let attachment = match cfg.network {
        Backend::None => return Ok(None),
        Backend::Bridge => Attachment::Bridge(attach_bridge(cfg, data_dir, pod_dir, pod, netns)?),
        Backend::Cni => Attachment::Cni(cni::add(
            cfg,
            pod_dir,
            pod,
            netns,
            &host_ports(pod, Ipv4Addr::UNSPECIFIED),
        )?),
    };
    let ip = match &attachment {
        Attachment::Bridge(b) => b.ip.to_string(),
        Attachment::Cni(c) => c.ip.clone(),
    };
    let net = PodNetwork {
        ip,
        attachment,
        pod_dir: pod_dir.to_path_buf(),
    };
    let path = pod_dir.join(ATTACHMENT_FILE);
    let saved = serde_json::to_vec_pretty(&net.attachment)
        .map_err(|e| NetworkError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })
        .and_then(|b| {
            crate::util::write_atomic(&path, &b).map_err(|e| NetworkError::Io {
                path: path.clone(),
                source: e,
            })
        });
    if let Err(e) = saved {
        net.teardown();
        return Err(e);
    }
    Ok(Some(net))
}

/// Undoes what a pod's attachment recorded in `pod_dir` (after its supervisor crashed).
pub fn cleanup_pod_dir(pod_dir: &Path) {
    let path = pod_dir.join(ATTACHMENT_FILE);
    let Ok(data) = std::fs::read(&path) else {
        return;
    };
    if let Ok(att) = serde_json::from_slice::<Attachment>(&data) {
        if let Err(e) = att.undo() {
            eprintln!("pod network cleanup in {}: {e}", pod_dir.display());
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// The hostPorts the pod's containers publish, pointing at `ip`.
fn host_ports(pod: &Pod, ip: Ipv4Addr) -> Vec<nft::HostPort> {
    let mut out: Vec<nft::HostPort> = Vec::new();
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
    for p in containers.flat_map(|c| c.ports.iter().flatten()) {
        let Some(hp) = p.host_port.filter(|h| *h > 0 && *h <= 65535) else {
            continue;
        };
        let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
        // hostIP narrows the port to one node address; 0.0.0.0 (or none) means all of them.
        let host_ip = p
            .host_ip
            .as_deref()
            .and_then(|h| h.parse::<Ipv4Addr>().ok())
            .filter(|h| !h.is_unspecified());
        let hp = nft::HostPort {
            proto,
            host_port: hp as u16,
            host_ip,
            ip,
            port: p.container_port.clamp(0, 65535) as u16,
        };
        if !out
            .iter()
            .any(|o| o.proto == hp.proto && o.host_port == hp.host_port && o.host_ip == hp.host_ip)
        {
            out.push(hp);
        }
    }
    out
}

/// A veth name from the bridge and the pod's (leased, so unique) address.
fn veth_name(bridge: &str, ip: Ipv4Addr) -> String {
    let h = sha2::Sha256::digest(format!("{bridge}/{ip}").as_bytes());
    format!("vp{}", &hex::encode(h)[..10])
}

fn bridge_mac(bridge: &str) -> [u8; 6] {
    let h = sha2::Sha256::digest(bridge.as_bytes());
    // Locally administered, unicast.
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetworkError> {
    if std::fs::read_to_string(path)
        .map(|v| v.trim() == value)
        .unwrap_or(false)
    {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|e| NetworkError::Io {
        path: path.into(),
        source: e,
    })
}

/// The node bridge's index and the lease store that owns its addresses, creating the
/// bridge (address, sysctls, NAT table) on first use. The bridge's alias names the IPAM
/// dir of the data dir that created it, so podrun instances with different data dirs on
/// one bridge still share one lease store and never hand out an address twice.
fn ensure_bridge(
    nl: &mut Netlink,
    cfg: &NetworkConfig,
    ipam: Ipam,
) -> Result<(u32, Ipam), NetworkError> {
    let name = &cfg.bridge;
    let subnet = cfg.subnet();
    let existing = |nl: &mut Netlink| -> Result<Option<(u32, Ipam)>, NetworkError> {
        let Some((i, alias)) = nl
            .link_with_alias(name)
            .map_err(nl_err(format!("looking up {name}")))?
        else {
            return Ok(None);
        };
        let store = match alias.map(PathBuf::from) {
            Some(dir) if dir.is_absolute() && dir.is_dir() => Ipam::new(dir, subnet),
            _ => {
                // The owning data dir is gone (or the bridge predates aliases): this data
                // dir's store takes the bridge over, so later instances agree on one store.
                let own = ipam.dir().to_path_buf();
                std::fs::create_dir_all(&own).map_err(|e| NetworkError::Ipam {
                    path: own.clone(),
                    source: e,
                })?;
                nl.set_alias(i, &own.to_string_lossy())
                    .map_err(nl_err(format!("setting the alias of {name}")))?;
                Ipam::new(own, subnet)
            }
        };
        Ok(Some((i, store)))
    };
    if let Some(found) = existing(nl)? {
        return Ok(found);
    }
    let _lock = ipam.lock()?;
    if let Some(found) = existing(nl)? {
        return Ok(found);
    }
    // Never shadow a network the host already has.
    let links = nl.links().map_err(nl_err("listing links"))?;
    for (idx, addr, prefix) in nl.addresses().map_err(nl_err("listing addresses"))? {
        let theirs = Subnet {
            base: addr,
            prefix: prefix.max(1),
        };
        if !addr.is_loopback() && subnet.overlaps(&theirs) {
            let link = links
                .iter()
                .find(|l| l.index == idx)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| idx.to_string());
            return Err(NetworkError::Overlap {
                subnet: subnet.to_string(),
                addr: format!("{addr}/{prefix}"),
                link,
            });
        }
    }
    let alias = ipam.dir().to_string_lossy().into_owned();
    nl.add_bridge(name, bridge_mac(name))
        .map_err(nl_err(format!("creating bridge {name}")))?;
    let made = (|| {
        let idx = nl
            .link_index(name)
            .map_err(nl_err(format!("looking up {name}")))?
            .ok_or_else(|| {
                nl_err(format!("looking up {name}"))(std::io::Error::from_raw_os_error(
                    libc::ENODEV,
                ))
            })?;
        nl.set_alias(idx, &alias)
            .map_err(nl_err(format!("setting the alias of {name}")))?;
        nl.add_address(idx, subnet.gateway(), subnet.prefix)
            .map_err(nl_err(format!(
                "adding {}/{} to {name}",
                subnet.gateway(),
                subnet.prefix
            )))?;
        // hostPort on 127.0.0.1: DNAT'ed loopback traffic may leave through the bridge.
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"),
            "1",
        )?;
        // Egress: pods' packets are forwarded to the host's uplink (as every runtime does).
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        nft::create_table(&cfg.nft_table(), name, &subnet, true)?;
        Ok(idx)
    })();
    match made {
        Ok(idx) => Ok((idx, Ipam::new(ipam.dir().to_path_buf(), subnet))),
        Err(e) => {
            if let Ok(Some(i)) = nl.link_index(name) {
                let _ = nl.del_link(i);
            }
            Err(e)
        }
    }
}

/// Removes the node bridge and its NAT table (the per-pod parts must be gone already).
pub fn remove_node_network(cfg: &NetworkConfig) -> Result<(), NetworkError> {
    let mut nl = Netlink::open().map_err(nl_err("opening socket"))?;
    if let Some(i) = nl
        .link_index(&cfg.bridge)
        .map_err(nl_err(format!("looking up {}", cfg.bridge)))?
    {
        nl.del_link(i)
            .map_err(nl_err(format!("deleting {}", cfg.bridge)))?;
    }
    nft::delete_table(&cfg.nft_table())
}

fn attach_bridge(
    cfg: &NetworkConfig,
    data_dir: &Path,
    pod_dir: &Path,
    pod: &Pod,
    netns: &Path,
) -> Result<BridgeAttachment, NetworkError> {
    let subnet = cfg.subnet();
    let mut nl = Netlink::open().map_err(nl_err("opening socket"))?;
    let (br, ipam) = ensure_bridge(&mut nl, cfg, cfg.ipam(data_dir))?;
    let ip = ipam.allocate(pod_dir)?;
    let mut att = BridgeAttachment {
        ip,
        veth: veth_name(&cfg.bridge, ip),
        bridge: cfg.bridge.clone(),
        subnet: subnet.to_string(),
        ipam_dir: ipam.dir().to_path_buf(),
        owner: pod_dir.to_path_buf(),
        nft_table: cfg.nft_table(),
        host_ports: Vec::new(),
    };
    let res = (|| {
        let ns = File::open(netns).map_err(|e| NetworkError::Io {
            path: netns.to_path_buf(),
            source: e,
        })?;
        let fd = ns.as_fd().as_raw_fd();
        match nl.add_veth(&att.veth, br, "eth0", fd) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // A leftover of ours: the name is derived from a lease we now hold.
                if let Ok(Some(i)) = nl.link_index(&att.veth) {
                    let _ = nl.del_link(i);
                }
                nl.add_veth(&att.veth, br, "eth0", fd)
            }
            r => r,
        }
        .map_err(nl_err(format!(
            "creating veth {} with eth0 in {}",
            att.veth,
            netns.display()
        )))?;
        let mut pnl = in_netns(netns, Netlink::open)
            .map_err(nl_err(format!("opening socket in {}", netns.display())))?;
        let eth0 = pnl
            .link_index("eth0")
            .map_err(nl_err("looking up eth0 in the pod"))?
            .ok_or_else(|| {
                nl_err("looking up eth0 in the pod")(std::io::Error::from_raw_os_error(
                    libc::ENODEV,
                ))
            })?;
        pnl.set_up(eth0)
            .map_err(nl_err("setting the pod's eth0 up"))?;
        pnl.add_address(eth0, ip, subnet.prefix)
            .map_err(nl_err(format!(
                "adding {ip}/{} to the pod's eth0",
                subnet.prefix
            )))?;
        pnl.add_default_route(subnet.gateway())
            .map_err(nl_err(format!(
                "adding default route via {}",
                subnet.gateway()
            )))?;
        let ports = host_ports(pod, ip);
        match nft::add_host_ports(&att.nft_table, &ports) {
            // The table went away under a live bridge (e.g. a ruleset flush): make it again.
            Err(NetworkError::Nft { reason }) if reason.contains("No such file or directory") => {
                nft::create_table(&att.nft_table, &cfg.bridge, &subnet, false)?;
                nft::add_host_ports(&att.nft_table, &ports)?;
            }
            r => r?,
        }
        att.host_ports = ports;
        Ok(())
    })();
    match res {
        Ok(()) => Ok(att),
        Err(e) => {
            let _ = att.undo();
            Err(e)
        }
    }
}

/// The node's address as pods see it (status.hostIP): kubelet reports the node's
/// InternalIP; on one node that is the address of the default route's link, else 127.0.0.1.
pub fn host_ip() -> Option<String> {
    let found = (|| {
        let mut nl = Netlink::open().ok()?;
        let link = nl.default_route_link().ok()??;
        nl.addresses()
            .ok()?
            .into_iter()
            .find(|(i, _, _)| *i == link)
            .map(|(_, a, _)| a.to_string())
    })();
    Some(found.unwrap_or_else(|| "127.0.0.1".to_string()))
}

/// Runs `f` on this thread inside the network namespace at `ns`, then returns to the
/// thread's own. Sockets created inside stay in that namespace after the return.
/// Like [`in_netns`] with both namespaces already open (a probe loop enters the same
/// namespace many times a second).
pub fn in_netns_fd<T>(
    target: &File,
    own: &File,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    nix::sched::setns(target.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(std::io::Error::from)?;
    let res = f();
    nix::sched::setns(own.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(std::io::Error::from)?;
    res
}

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
