//! NAT for the node bridge in a dedicated nftables table: masquerade for egress and
//! hostPort DNAT through one map, so a pod's ports are added and removed as map elements.
//!
//! Rules go through the `nft` program, not netlink: nf_tables' netlink interface takes
//! compiled expression bytecode, which no maintained synchronous crate builds, while `nft -f -`
//! applies a script as one atomic transaction. It runs only when the bridge is created and
//! for pods with hostPorts, so it stays off the common per-pod path.
use super::ipam::Subnet;
use super::NetworkError;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// One published port: `proto` (tcp, udp, sctp) `host_port` on the node (on `host_ip`
/// only, when the pod names one) → `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostPort {
    pub proto: String,
    pub host_port: u16,
    #[serde(default)]
    pub host_ip: Option<Ipv4Addr>,
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl HostPort {
    /// The map holding this port and its key there.
    fn map_and_key(&self) -> (&'static str, String) {
        match self.host_ip {
            Some(h) => (
                "hostip_hostports",
                format!("{h} . {} . {}", self.proto, self.host_port),
            ),
            None => ("hostports", format!("{} . {}", self.proto, self.host_port)),
        }
    }
}

/// Runs `script` through `nft -f -` as one transaction.
pub fn run(script: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetworkError::Nft {
            reason: format!("running nft (is nftables installed?): {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| NetworkError::Nft {
                reason: format!("writing to nft: {e}"),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| NetworkError::Nft {
        reason: format!("waiting for nft: {e}"),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr);
        Err(NetworkError::Nft {
            reason: msg.lines().next().unwrap_or("failed").to_string(),
        })
    }
}

/// Makes table `table` for bridge `bridge` and `subnet` in one transaction: the maps are
/// kept (with their elements, unless `fresh`: a new bridge has no pods yet), the chains
/// rewritten, so it also repairs a table whose chains were flushed.
pub fn create_table(
    table: &str,
    bridge: &str,
    subnet: &Subnet,
    fresh: bool,
) -> Result<(), NetworkError> {
    let flush = if fresh {
        format!("flush map ip {table} hostports\nflush map ip {table} hostip_hostports\n")
    } else {
        String::new()
    };
    let mut script = format!(
        "add table ip {table}\n\
         add map ip {table} hostports {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}\n\
         add map ip {table} hostip_hostports {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}\n\
         {flush}"
    );
    let chains = [
        (
            "prerouting",
            "type nat hook prerouting priority dstnat;",
            vec![
                "dnat to ip daddr . meta l4proto . th dport map @hostip_hostports".to_string(),
                "fib daddr type local dnat to meta l4proto . th dport map @hostports".to_string(),
            ],
        ),
        (
            "output",
            "type nat hook output priority -100;",
            vec![
                "dnat to ip daddr . meta l4proto . th dport map @hostip_hostports".to_string(),
                "fib daddr type local dnat to meta l4proto . th dport map @hostports".to_string(),
            ],
        ),
        (
            "postrouting",
            "type nat hook postrouting priority srcnat;",
            vec![
                format!("ip saddr {subnet} ip daddr != {subnet} masquerade"),
                format!("ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade"),
                format!("ct status dnat ip saddr {subnet} oifname \"{bridge}\" masquerade"),
            ],
        ),
    ];
    for (name, hook, rules) in chains {
        script.push_str(&format!(
            "add chain ip {table} {name} {{ {hook} }}\nflush chain ip {table} {name}\n"
        ));
        for r in rules {
            script.push_str(&format!("add rule ip {table} {name} {r}\n"));
        }
    }
    run(&script)
}

/// Deletes table `table` if it exists.
pub fn delete_table(table: &str) -> Result<(), NetworkError> {
    run(&format!("add table ip {table}\ndelete table ip {table}\n"))
}

/// Publishes `ports`; fails (adding none) when one is already published.
pub fn add_host_ports(table: &str, ports: &[HostPort]) -> Result<(), NetworkError> {
    if ports.is_empty() {
        return Ok(());
    }
    let script: String = ports
        .iter()
        .map(|p| {
            let (map, key) = p.map_and_key();
            format!(
                "create element ip {table} {map} {{ {key} : {} . {} }}\n",
                p.ip, p.port
            )
        })
        .collect();
    run(&script).map_err(|e| match e {
        NetworkError::Nft { reason } if reason.contains("File exists") => NetworkError::Nft {
            reason: "a hostPort of this pod is already allocated on the node".into(),
        },
        e => e,
    })
}

/// Removes `ports` (each only while it still points at its pod's address).
pub fn del_host_ports(table: &str, ports: &[HostPort]) -> Result<(), NetworkError> {
    let mut first_err = None;
    for p in ports {
        let (map, key) = p.map_and_key();
        // Delete by key only when the element still maps to this pod: a later pod may own it.
        let list = Command::new("nft")
            .args(["get", "element", "ip", table, map, &format!("{{ {key} }}")])
            .output();
        let ours = match list {
            Ok(o) if o.status.success() => {
                String::from_utf8_lossy(&o.stdout).contains(&format!(": {} . {}", p.ip, p.port))
            }
            _ => false,
        };
        if ours {
            if let Err(e) = run(&format!("delete element ip {table} {map} {{ {key} }}\n")) {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}
