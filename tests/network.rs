//! Pod networking as a library (root): real network namespaces, a test-only bridge and
//! subnet per test, traffic only between the host and those namespaces.
use podrun::network::{self, Backend, NetworkConfig, PodNetwork};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn require(tool: &str) {
    assert!(
        sh(&format!("command -v {tool}")).0,
        "this test needs `{tool}` installed"
    );
}

/// A network namespace held by a sleeping process, killed on drop.
struct Netns {
    child: Child,
}

impl Netns {
    fn new() -> Netns {
        require("unshare");
        // Held in a Netns at once so a panic below still kills and reaps it.
        let ns = Netns {
            child: Command::new("unshare")
                .args(["--net", "sleep", "600"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        };
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let path = ns.path();
        for _ in 0..500 {
            if std::fs::read_link(&path).map(|l| l != own).unwrap_or(false) {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("unshare --net did not make a namespace");
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.child.id()))
    }

    fn run(&self, cmd: &str) -> (bool, String) {
        sh(&format!("nsenter --net={} {cmd}", self.path().display()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pod attachment torn down on drop, so a failed assertion leaves nothing behind.
struct Attached(Option<PodNetwork>);

impl Attached {
    fn teardown(mut self) {
        if let Some(n) = self.0.take() {
            n.teardown();
        }
    }
}

impl std::ops::Deref for Attached {
    type Target = PodNetwork;
    fn deref(&self) -> &PodNetwork {
        self.0.as_ref().unwrap()
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(n) = self.0.take() {
            n.teardown();
        }
    }
}

/// A test node: its own data dir, bridge and subnet; removed (bridge, NAT table) on drop.
struct Node {
    cfg: NetworkConfig,
    dir: PathBuf,
    /// Where pod dirs live (the data dir unless set; podrun keeps them on /run's tmpfs).
    pods: Option<PathBuf>,
}

impl Node {
    fn new(tag: u8) -> Node {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("podrun-net-{pid}-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = NetworkConfig {
            network: Backend::Bridge,
            bridge: format!("prt{tag}x{pid}"),
            subnet: format!("10.{}.{}.0/24", 200 + tag, pid % 250),
            ..Default::default()
        };
        Node {
            cfg,
            dir,
            pods: None,
        }
    }

    fn pod_dir(&self, name: &str) -> PathBuf {
        let d = self
            .pods
            .clone()
            .unwrap_or_else(|| self.dir.join("pods"))
            .join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn attach(&self, name: &str, ns: &Netns, pod: &serde_json::Value) -> Attached {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod.clone()).unwrap();
        Attached(Some(
            network::attach(&self.cfg, &self.dir, &self.pod_dir(name), &pod, &ns.path())
                .unwrap()
                .expect("a pod address"),
        ))
    }

    fn leases(&self) -> Vec<String> {
        let d = self.dir.join("ipam").join(&self.cfg.bridge);
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = network::remove_node_network(&self.cfg);
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(p) = &self.pods {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn plain_pod(name: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}-{}", std::process::id())},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// A TCP listener inside `ns` on `port` (0: any) answering one "ping" with "pong <tag>".
fn serve_once(ns: &Netns, port: u16, tag: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    let mut tries = 0;
    let l = loop {
        match network::in_netns(&ns.path(), || TcpListener::bind(("0.0.0.0", port))) {
            Ok(l) => break l,
            // The previous listener's port may linger for a moment.
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("bind {port} in the pod: {e}; retrying");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("bind {port} in the pod: {e}"),
        }
    };
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        s.write_all(format!("pong {tag}").as_bytes()).unwrap();
    });
    (port, h)
}

fn ping(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn host_links() -> String {
    sh("ip -o link show").1
}

#[test]
fn bridge_pods_get_addresses_reach_each_other_and_leave_nothing_behind() {
    require("nsenter");
    require("ip");
    let node = Node::new(1);
    let (a_ns, b_ns) = (Netns::new(), Netns::new());
    let a = node.attach("a", &a_ns, &plain_pod("a"));
    let b = node.attach("b", &b_ns, &plain_pod("b"));
    let subnet = node.cfg.subnet.trim_end_matches("0/24").to_string();
    assert!(
        a.ip.starts_with(&subnet) && b.ip.starts_with(&subnet),
        "{} {} in {}",
        a.ip,
        b.ip,
        node.cfg.subnet
    );
    assert_ne!(a.ip, b.ip);
    let (_, addr) = a_ns.run("ip -4 -o addr show dev eth0");
    assert!(addr.contains(&format!("inet {}/24", a.ip)), "{addr}");
    let (_, routes) = a_ns.run("ip -4 route show default");
    assert!(
        routes.contains(&format!("default via {subnet}1 dev eth0")),
        "{routes}"
    );
    // Egress: forwarding on, pod traffic leaving the subnet masqueraded.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    let (_, post) = sh(&format!(
        "nft list chain ip {} postrouting",
        node.cfg.nft_table()
    ));
    let sub = &node.cfg.subnet;
    assert!(
        post.contains(&format!("ip saddr {sub} ip daddr != {sub} masquerade")),
        "{post}"
    );
    let (_, br) = sh(&format!("ip -4 -o addr show dev {}", node.cfg.bridge));
    assert!(br.contains(&format!("inet {subnet}1/24")), "{br}");

    // Host → pod a, and pod b → pod a.
    let (port, h) = serve_once(&a_ns, 0, "a");
    let mut s = TcpStream::connect_timeout(
        &format!("{}:{port}", a.ip).parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(ping(&mut s), "pong a");
    h.join().unwrap();
    let (port, h) = serve_once(&a_ns, 0, "a");
    let target = format!("{}:{port}", a.ip).parse().unwrap();
    let mut s = network::in_netns(&b_ns.path(), || {
        TcpStream::connect_timeout(&target, Duration::from_secs(5))
    })
    .unwrap();
    assert_eq!(ping(&mut s), "pong a");
    h.join().unwrap();
    assert_eq!(node.leases().len(), 2);

    let (va, vb) = match (&a.attachment, &b.attachment) {
        (network::Attachment::Bridge(x), network::Attachment::Bridge(y)) => {
            (x.veth.clone(), y.veth.clone())
        }
        _ => panic!("bridge backend expected"),
    };
    assert!(host_links().contains(&va) && host_links().contains(&vb));
    a.teardown();
    b.teardown();
    let links = host_links();
    assert!(
        !links.contains(&va) && !links.contains(&vb),
        "veths left: {links}"
    );
    assert!(
        !a_ns.run("ip link show eth0").0,
        "eth0 left in the pod namespace"
    );
    assert!(node.leases().is_empty(), "leases left: {:?}", node.leases());
    assert!(!node
        .dir
        .join("pods/a")
        .join(network::ATTACHMENT_FILE)
        .exists());

    network::remove_node_network(&node.cfg).unwrap();
    assert!(!host_links().contains(&node.cfg.bridge));
    assert!(
        !sh(&format!("nft list table ip {}", node.cfg.nft_table())).0,
        "NAT table left"
    );
    assert!(
        !sh("ip -4 route").1.contains(&node.cfg.subnet),
        "route left"
    );
}

#[test]
fn host_port_reaches_the_pod_on_loopback_and_is_removed_on_teardown() {
    require("nft");
    let node = Node::new(2);
    let ns = Netns::new();
    // A free host port, picked now (not fixed: other tests run beside this one).
    let host_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let only_lo = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pod = serde_json::json!({"metadata": {"name": "hp", "namespace": "default", "uid": "uid-hp"},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [
            {"containerPort": 8080, "hostPort": host_port},
            {"containerPort": 8081, "hostPort": only_lo, "hostIP": "127.0.0.1"}]}]}});
    let net = node.attach("hp", &ns, &pod);
    // hostIP 127.0.0.1: published there, not on another local address (127.0.0.2).
    let (_, h) = serve_once(&ns, 8081, "hostip");
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{only_lo}").parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(ping(&mut s), "pong hostip");
    h.join().unwrap();
    assert!(TcpStream::connect_timeout(
        &format!("127.0.0.2:{only_lo}").parse().unwrap(),
        Duration::from_millis(500)
    )
    .is_err());
    let (_, h) = serve_once(&ns, 8080, "hostport");
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{host_port}").parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(ping(&mut s), "pong hostport");
    h.join().unwrap();
    let (_, rules) = sh(&format!(
        "nft list map ip {} hostports",
        node.cfg.nft_table()
    ));
    assert!(
        rules.contains(&format!("tcp . {host_port} : {} . 8080", net.ip)),
        "{rules}"
    );

    // A second pod asking for the same hostPort is refused and leaves nothing.
    let ns2 = Netns::new();
    let pod2: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod.clone()).unwrap();
    let err = network::attach(
        &node.cfg,
        &node.dir,
        &node.pod_dir("hp2"),
        &pod2,
        &ns2.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("hostPort"), "{err}");
    assert_eq!(node.leases().len(), 1);
    assert!(!ns2.run("ip link show eth0").0);

    net.teardown();
    let (_, rules) = sh(&format!(
        "nft list map ip {} hostports",
        node.cfg.nft_table()
    ));
    assert!(
        !rules.contains(&host_port.to_string()),
        "hostPort rule left: {rules}"
    );
    let (_, rules) = sh(&format!(
        "nft list map ip {} hostip_hostports",
        node.cfg.nft_table()
    ));
    assert!(
        !rules.contains(&only_lo.to_string()),
        "hostIP rule left: {rules}"
    );
    assert!(TcpStream::connect_timeout(
        &format!("127.0.0.1:{host_port}").parse().unwrap(),
        Duration::from_millis(500)
    )
    .is_err());

    // The NAT table deleted under a live bridge (e.g. a ruleset flush) is made again by
    // the next pod that publishes a port.
    assert!(sh(&format!("nft delete table ip {}", node.cfg.nft_table())).0);
    let ns3 = Netns::new();
    let net3 = node.attach("hp3", &ns3, &pod);
    let (_, h) = serve_once(&ns3, 8080, "again");
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{host_port}").parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(ping(&mut s), "pong again");
    h.join().unwrap();
    net3.teardown();
}

#[test]
fn concurrent_pods_never_share_an_address_and_all_are_released() {
    let node = Node::new(3);
    let namespaces: Vec<Netns> = (0..12).map(|_| Netns::new()).collect();
    let nets: Vec<Attached> = std::thread::scope(|s| {
        let hs: Vec<_> = namespaces
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let node = &node;
                s.spawn(move || node.attach(&format!("p{i}"), ns, &plain_pod(&format!("p{i}"))))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<&str> = nets.iter().map(|n| n.ip.as_str()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 12);
    assert_eq!(node.leases().len(), 12);
    let veths: Vec<String> = nets
        .iter()
        .map(|n| match &n.attachment {
            network::Attachment::Bridge(b) => b.veth.clone(),
            _ => unreachable!(),
        })
        .collect();
    for n in nets {
        n.teardown();
    }
    assert!(node.leases().is_empty());
    let links = host_links();
    assert!(veths.iter().all(|v| !links.contains(v.as_str())), "{links}");
}

#[test]
fn cleanup_pod_dir_undoes_what_a_crashed_supervisor_left() {
    let node = Node::new(4);
    let ns = Netns::new();
    let net = node.attach("crashed", &ns, &plain_pod("crashed"));
    let veth = match &net.attachment {
        network::Attachment::Bridge(b) => b.veth.clone(),
        _ => unreachable!(),
    };
    // The supervisor dies without teardown: only the pod dir's record is left.
    let mut net = net;
    std::mem::forget(net.0.take());
    network::cleanup_pod_dir(&node.dir.join("pods/crashed"));
    assert!(!host_links().contains(&veth));
    assert!(node.leases().is_empty());
    // A new sandbox for a pod dir that still holds an old record undoes the old one first.
    let ns_old = Netns::new();
    let old = node.attach("crashed", &ns_old, &plain_pod("crashed"));
    let old_veth = match &old.attachment {
        network::Attachment::Bridge(b) => b.veth.clone(),
        _ => unreachable!(),
    };
    let mut old = old;
    std::mem::forget(old.0.take());
    let ns_new = Netns::new();
    let new = node.attach("crashed", &ns_new, &plain_pod("crashed"));
    assert_eq!(node.leases().len(), 1, "{:?}", node.leases());
    assert!(!host_links().contains(&old_veth));
    new.teardown();
    assert!(node.leases().is_empty());
    // A second cleanup finds nothing to do.
    network::cleanup_pod_dir(&node.dir.join("pods/crashed"));
}

#[test]
fn a_subnet_overlapping_a_host_address_is_refused() {
    let host = network::host_ip().unwrap();
    if host == "127.0.0.1" {
        panic!("this test needs a host address on a default-route link");
    }
    let mut node = Node::new(5);
    node.cfg.subnet = format!("{host}/24");
    let ns = Netns::new();
    let pod: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(plain_pod("overlap")).unwrap();
    let err = network::attach(
        &node.cfg,
        &node.dir,
        &node.pod_dir("overlap"),
        &pod,
        &ns.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
    assert!(!host_links().contains(&node.cfg.bridge));
}

#[test]
fn host_ip_is_the_default_route_links_address() {
    let (_, dev) = sh(
        "ip -4 route show default | awk '{for(i=1;i<NF;i++) if($i==\"dev\") print $(i+1); exit}'",
    );
    let dev = dev.trim();
    let ip = network::host_ip().unwrap();
    if dev.is_empty() {
        assert_eq!(ip, "127.0.0.1");
    } else {
        let (_, addrs) = sh(&format!("ip -4 -o addr show dev {dev}"));
        assert!(
            addrs.contains(&format!("inet {ip}/")),
            "{ip} not on {dev}: {addrs}"
        );
    }
}

#[test]
fn config_file_and_env_choose_the_network() {
    let dir = std::env::temp_dir().join(format!("podrun-netcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = NetworkConfig::load(&dir).unwrap();
    assert_eq!(
        (
            d.network,
            d.bridge.as_str(),
            d.subnet.as_str(),
            d.nft_table().as_str()
        ),
        (Backend::Bridge, "podrun0", "10.88.0.0/16", "podrun")
    );
    std::fs::write(
        dir.join("network.json"),
        r#"{"network": "cni", "cniConfDir": "/x"}"#,
    )
    .unwrap();
    let c = NetworkConfig::load(&dir).unwrap();
    assert_eq!(
        (c.network, c.cni_conf_dir.as_path()),
        (Backend::Cni, Path::new("/x"))
    );
    std::fs::write(dir.join("network.json"), r#"{"subnet": "10.0.0.0/33"}"#).unwrap();
    let e = NetworkConfig::load(&dir).unwrap_err().to_string();
    assert!(e.contains("subnet") && e.contains("network.json"), "{e}");
    std::fs::write(
        dir.join("network.json"),
        r#"{"bridge": "a-bridge-name-too-long"}"#,
    )
    .unwrap();
    assert!(NetworkConfig::load(&dir)
        .unwrap_err()
        .to_string()
        .contains("bridge"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cni_backend_with_debians_plugins() {
    let bin = ["/opt/cni/bin", "/usr/lib/cni"]
        .into_iter()
        .find(|d| Path::new(d).join("bridge").exists());
    let bin =
        bin.expect("this test needs the CNI plugins (apt-get install containernetworking-plugins)");
    let pid = std::process::id();
    let node = Node::new(6);
    let conf_dir = node.dir.join("cni");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let bridge = format!("prc{pid}");
    let subnet = format!("10.206.{}.0/24", pid % 250);
    let conflist = serde_json::json!({
    "cniVersion": "1.0.0", "name": format!("podrun-test-{pid}"),
    "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}],
                  "dataDir": node.dir.join("cni-ipam")}},
        {"type": "portmap", "capabilities": {"portMappings": true}}
    ]});
    std::fs::write(conf_dir.join("10-test.conflist"), conflist.to_string()).unwrap();
    struct DelBridge(String);
    impl Drop for DelBridge {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let _cleanup = DelBridge(bridge.clone());
    let cfg = NetworkConfig {
        network: Backend::Cni,
        cni_conf_dir: conf_dir,
        cni_bin_dirs: vec![bin.into()],
        ..Default::default()
    };
    let ns = Netns::new();
    let host_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cni", "namespace": "default", "uid": format!("uid-cni-{pid}")},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 8080, "hostPort": host_port}]}]}})).unwrap();
    let net =
        Attached(network::attach(&cfg, &node.dir, &node.pod_dir("cni"), &pod, &ns.path()).unwrap());
    assert!(
        net.ip.starts_with(&format!("10.206.{}.", pid % 250)),
        "{}",
        net.ip
    );
    let (_, addr) = ns.run("ip -4 -o addr show dev eth0");
    assert!(addr.contains(&format!("inet {}/24", net.ip)), "{addr}");
    // CNI CHECK: Debian's portmap 1.1.1 wrongly looks for IPv6 rules on an IPv4-only pod
    // (containernetworking/plugins#819); every other plugin must pass.
    match net.check() {
        Ok(()) => {}
        Err(e) => assert!(
            e.to_string().contains("portmap") && e.to_string().contains("ipv6"),
            "{e}"
        ),
    }

    let (port, h) = serve_once(&ns, 8080, "cni");
    assert_eq!(port, 8080);
    let mut s = TcpStream::connect_timeout(
        &format!("{}:8080", net.ip).parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(ping(&mut s), "pong cni");
    h.join().unwrap();
    let (_, h) = serve_once(&ns, 8080, "cni-hostport");
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{host_port}").parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(ping(&mut s), "pong cni-hostport");
    h.join().unwrap();

    // CHECK notices a broken attachment (the pod's address gone).
    assert!(ns.run("ip addr flush dev eth0").0);
    let e = net.check().unwrap_err().to_string();
    assert!(e.contains("bridge"), "{e}");

    // A crashed supervisor whose pause is gone too: cleanup runs DEL without the namespace
    // (never entering whatever process now has that pid) and frees the lease.
    let ns2 = Netns::new();
    let pod2: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cni2", "namespace": "default", "uid": format!("uid-cni2-{pid}")},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    let mut net2 = Attached(
        network::attach(&cfg, &node.dir, &node.pod_dir("cni2"), &pod2, &ns2.path()).unwrap(),
    );
    let ip2 = net2.ip.clone();
    std::mem::forget(net2.0.take());
    drop(ns2);
    // The recorded /proc/<pid> now belongs to another process with an eth0 of its own.
    let other = Netns::new();
    assert!(other.run("ip link add eth0 type veth peer name x1").0);
    let rec = node.dir.join("pods/cni2").join(network::ATTACHMENT_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    v["netns"] = serde_json::Value::String(other.path().display().to_string());
    std::fs::write(&rec, v.to_string()).unwrap();
    network::cleanup_pod_dir(&node.dir.join("pods/cni2"));
    assert!(
        other.run("ip link show eth0").0,
        "cleanup entered an unrelated namespace"
    );
    let leased = sh(&format!("ls -R {}", node.dir.join("cni-ipam").display())).1;
    assert!(
        !leased.contains(&ip2),
        "lease {ip2} left after crash cleanup: {leased}"
    );

    let ip = net.ip.clone();
    net.teardown();
    assert!(
        !ns.run("ip link show eth0").0,
        "eth0 left in the pod namespace"
    );
    let leases: Vec<_> = std::fs::read_dir(node.dir.join("cni-ipam"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.file_name())
        .collect();
    assert!(
        !leases.iter().any(|l| l.to_string_lossy() == ip),
        "host-local lease left: {leases:?}"
    );
    let (_, rules) = sh("nft list ruleset");
    assert!(
        !rules.contains(&format!("{ip}:8080")) && !rules.contains(&format!("dport {host_port} ")),
        "portmap rule left"
    );
}

#[test]
fn two_data_dirs_on_one_bridge_share_its_lease_store() {
    let first = Node::new(7);
    let mut second = Node::new(8);
    second.cfg = first.cfg.clone();
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let a = first.attach("a", &ns1, &plain_pod("a"));
    let b = second.attach("b", &ns2, &plain_pod("b"));
    assert_ne!(a.ip, b.ip);
    // Both leases live in the store of the data dir that created the bridge.
    let mut leases = first.leases();
    leases.sort();
    let mut want = vec![a.ip.clone(), b.ip.clone()];
    want.sort();
    assert_eq!(leases, want);
    b.teardown();
    a.teardown();
    assert!(first.leases().is_empty());
    // The owning data dir's store is gone: the next data dir takes the bridge over, and
    // then everyone (the first data dir too) leases from the new owner's store.
    std::fs::remove_dir_all(first.dir.join("ipam")).unwrap();
    let c = second.attach("c", &ns1, &plain_pod("c"));
    let d = first.attach("d", &ns2, &plain_pod("d"));
    assert_ne!(c.ip, d.ip);
    assert_eq!(second.leases().len(), 2);
    assert!(first.leases().is_empty());
    c.teardown();
    d.teardown();
    assert!(second.leases().is_empty());
    // `second` shares `first`'s bridge: only `first` removes it.
    second.cfg.bridge = format!("prt8gone{}", std::process::id() % 10000);
}

/// bench/network.sh: N pods (default 100) each given an address, each reachable from the
/// host, all released; prints setup and teardown times. `--ignored` so plain runs stay fast.
#[test]
#[ignore]
fn bench_many_pods_each_with_an_address_all_reachable_all_released() {
    let n: usize = std::env::var("BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut node = Node::new(9);
    node.cfg.subnet = format!("10.209.{}.0/23", (std::process::id() % 125) * 2);
    // As in podrun: leases on the data dir's disk, pod dirs on /run (tmpfs).
    node.pods = Some(PathBuf::from(format!(
        "/run/podrun-netbench-{}",
        std::process::id()
    )));
    let namespaces: Vec<Netns> = (0..n).map(|_| Netns::new()).collect();
    // Warm the bridge (created once per node, not per pod).
    let warm_ns = Netns::new();
    node.attach("warm", &warm_ns, &plain_pod("warm")).teardown();
    let mut setup = Vec::new();
    let mut nets = Vec::new();
    for (i, ns) in namespaces.iter().enumerate() {
        let t = std::time::Instant::now();
        let net = node.attach(&format!("b{i}"), ns, &plain_pod(&format!("b{i}")));
        setup.push(t.elapsed().as_secs_f64() * 1000.0);
        nets.push(net);
    }
    let mut ips: Vec<String> = nets.iter().map(|n| n.ip.clone()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), n, "every pod has its own address");
    let mut reachable = 0;
    for (ns, net) in namespaces.iter().zip(&nets) {
        let (port, h) = serve_once(ns, 0, "b");
        let mut s = TcpStream::connect_timeout(
            &format!("{}:{port}", net.ip).parse().unwrap(),
            Duration::from_secs(5),
        )
        .unwrap();
        if ping(&mut s) == "pong b" {
            reachable += 1;
        }
        h.join().unwrap();
    }
    let t = std::time::Instant::now();
    for net in nets {
        net.teardown();
    }
    let down = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    let left = node.leases().len();
    setup.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = setup[n / 2];
    let p95 = setup[(n * 95 / 100).min(n - 1)];
    println!(
        "BENCH built-in setup per pod: median {med:.2} ms, p95 {p95:.2} ms, max {:.2} ms (target <= 5 ms); teardown {down:.2} ms/pod; {n} pods, {} distinct addresses, {reachable} reachable, {left} leases left",
        setup[n - 1],
        ips.len()
    );
    assert_eq!(reachable, n);
    assert_eq!(left, 0);
}
