//! Pod networking end to end (root): `podrun up` of the seed's pod-ports and friends on a
//! test-only bridge and subnet (built-in backend) or a test-only CNI network list, curl
//! from the host to the pod's IP and a hostPort on 127.0.0.1, pod-to-pod traffic, and
//! nothing left after delete. Traffic goes only to the namespaces these tests create.
mod pod_support;
use pod_support::{text, World};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The seed's pod-ports manifest as the repository keeps it.
fn pod_ports() -> String {
    std::fs::read_to_string(pod_support::repo().join("tests/seed-examples/pod-ports.yaml")).unwrap()
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    text(&out.stdout) + &text(&out.stderr)
}

fn curl(url: &str) -> String {
    assert!(Path::new("/usr/bin/curl").exists(), "this test needs curl");
    sh(&format!("curl -s --max-time 5 {url}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes the test's bridge (and its NAT table) after the world's pods are gone.
struct BridgeGuard(podrun::network::NetworkConfig);
impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = podrun::network::remove_node_network(&self.0);
    }
}

fn web_pod(host_port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  containers:\n  - name: nginx\n    image: nginx:1.17.1\n    ports:\n    - name: http\n      containerPort: 80\n      hostPort: {host_port}\n"
    )
}

const CLIENT: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\n  namespace: default\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: busybox\n    image: busybox:1.30\n    command: [\"sleep\", \"3600\"]\n";

fn pod_ip(w: &World, ns: &str, name: &str) -> String {
    w.wait_for(30, &format!("{ns}/{name} podIP"), || {
        let p = w.pod(ns, name);
        p["status"]["podIP"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
    })
}

/// The whole walk-through on whatever backend `w` is configured for; returns the IPs seen.
fn walk_through(w: &World) -> Vec<String> {
    w.up_ok(&pod_ports());
    w.wait_status("dev", "pod-ports", "Running", 60);
    let ip = pod_ip(w, "dev", "pod-ports");
    let pod = w.pod("dev", "pod-ports");
    assert_eq!(pod["status"]["podIPs"][0]["ip"].as_str(), Some(ip.as_str()));
    assert_eq!(
        pod["status"]["hostIP"].as_str(),
        podrun::network::host_ip().as_deref()
    );
    let wide = w.ok(&["get", "pods", "-n", "dev", "-o", "wide"]);
    assert!(wide.contains(&ip), "{wide}");
    // The seed's promise: the pod has its own IP, nginx answers on it from the host.
    let page = w.wait_for(20, "nginx on the pod IP", || {
        Some(curl(&format!("http://{ip}:80"))).filter(|p| p.contains("Welcome to nginx!"))
    });
    assert!(page.contains("Welcome to nginx!"));

    // hostPort on 127.0.0.1, and a second pod reaching the first on its IP.
    let hp = free_port();
    w.up_ok(&web_pod(hp));
    w.up_ok(CLIENT);
    w.wait_status("default", "web", "Running", 60);
    w.wait_status("default", "client", "Running", 60);
    let web_ip = pod_ip(w, "default", "web");
    let client_ip = pod_ip(w, "default", "client");
    let page = w.wait_for(20, "nginx on 127.0.0.1:hostPort", || {
        Some(curl(&format!("http://127.0.0.1:{hp}/"))).filter(|p| p.contains("Welcome to nginx!"))
    });
    assert!(page.contains("Welcome to nginx!"));
    let url = format!("http://{ip}:80/");
    let from_pod = w.ok(&[
        "exec", "client", "-c", "busybox", "--", "wget", "-q", "-O", "-", &url,
    ]);
    assert!(from_pod.contains("Welcome to nginx!"), "{from_pod}");
    let hosts = w.ok(&["exec", "client", "-c", "busybox", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{client_ip}\tclient")), "{hosts}");
    let mut ips = vec![ip, web_ip, client_ip];
    let n = ips.len();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), n, "pods share an address: {ips:?}");

    w.delete_all();
    assert!(
        !curl(&format!("http://127.0.0.1:{hp}/")).contains("nginx"),
        "hostPort still answers after delete"
    );
    ips
}

fn unique_net(tag: u8) -> (String, String) {
    let pid = std::process::id();
    (
        format!("prp{tag}x{pid}"),
        format!("10.{}.{}.0/24", 210 + tag, pid % 250),
    )
}

#[test]
fn built_in_bridge_serves_pod_ports_and_delete_leaves_nothing() {
    let (bridge, cidr) = unique_net(1);
    let mut w = World::new("net-bridge");
    w.extra_env.push(("PODRUN_BRIDGE".into(), bridge.clone()));
    w.extra_env.push(("PODRUN_POD_CIDR".into(), cidr.clone()));
    w.extra_env.push(("PODRUN_NETWORK".into(), "bridge".into()));
    let cfg = podrun::network::NetworkConfig {
        bridge: bridge.clone(),
        subnet: cidr.clone(),
        ..Default::default()
    };
    let _bridge = BridgeGuard(cfg.clone());
    let w = w;

    let ips = walk_through(&w);
    let prefix = cidr.trim_end_matches("0/24");
    assert!(
        ips.iter().all(|i| i.starts_with(prefix)),
        "{ips:?} not in {cidr}"
    );
    // After delete: no veth on the bridge, no lease, no hostPort element, no pod route.
    assert_eq!(
        sh(&format!("ip -o link show master {bridge}")).trim(),
        "",
        "veths left on {bridge}"
    );
    let leases: Vec<PathBuf> = std::fs::read_dir(w.data.join("ipam").join(&bridge))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    let map = sh(&format!("nft list map ip {} hostports", cfg.nft_table()));
    assert!(
        map.contains("hostports") && !map.contains("elements"),
        "hostPort elements left: {map}"
    );
    let routes = sh("ip -4 route");
    assert!(ips.iter().all(|i| !routes.contains(i.as_str())), "{routes}");
}

#[test]
fn cni_backend_with_debians_plugins_serves_pod_ports_and_cleans_up() {
    let bin = ["/opt/cni/bin", "/usr/lib/cni"]
        .into_iter()
        .find(|d| Path::new(d).join("bridge").exists());
    let bin =
        bin.expect("this test needs the CNI plugins (apt-get install containernetworking-plugins)");
    let (bridge, cidr) = unique_net(2);
    let mut w = World::new("net-cni");
    let conf = w.root.parent().unwrap().join("cni");
    std::fs::create_dir_all(&conf).unwrap();
    let ipam_dir = w.root.parent().unwrap().join("cni-ipam");
    let list = serde_json::json!({"cniVersion": "1.0.0", "name": format!("podrun-e2e-{}", std::process::id()),
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": cidr}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir}},
            {"type": "portmap", "capabilities": {"portMappings": true}}]});
    std::fs::write(conf.join("10-podrun-e2e.conflist"), list.to_string()).unwrap();
    w.extra_env.push(("PODRUN_NETWORK".into(), "cni".into()));
    w.extra_env
        .push(("PODRUN_CNI_CONF_DIR".into(), conf.display().to_string()));
    struct DelLink(String);
    impl Drop for DelLink {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let _bridge = DelLink(bridge.clone());
    let _ = bin;
    let w = w;

    let ips = walk_through(&w);
    let prefix = cidr.trim_end_matches("0/24");
    assert!(
        ips.iter().all(|i| i.starts_with(prefix)),
        "{ips:?} not in {cidr}"
    );
    assert_eq!(
        sh(&format!("ip -o link show master {bridge}")).trim(),
        "",
        "veths left on {bridge}"
    );
    let leased = sh(&format!("ls -R {}", ipam_dir.display()));
    assert!(
        ips.iter().all(|i| !leased.contains(i.as_str())),
        "host-local leases left: {leased}"
    );
    let rules = sh("nft list ruleset");
    assert!(
        ips.iter().all(|i| !rules.contains(&format!("{i}:80"))),
        "portmap rules left"
    );
}

#[test]
fn host_network_pod_sees_the_hosts_links_and_has_the_host_ip() {
    let w = World::new("net-host");
    w.up_ok("apiVersion: v1\nkind: Pod\nmetadata:\n  name: hostnet\n  namespace: default\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: busybox\n    image: busybox:1.30\n    command: [\"sleep\", \"3600\"]\n");
    w.wait_status("default", "hostnet", "Running", 60);
    let ip = pod_ip(&w, "default", "hostnet");
    assert_eq!(Some(ip), podrun::network::host_ip());
    // The pod sees the host's links: every link present on the host before and after.
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_string())
            .collect()
    };
    let before = names(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let dev = names(&w.ok(&[
        "exec",
        "hostnet",
        "-c",
        "busybox",
        "--",
        "cat",
        "/proc/net/dev",
    ]));
    let after = names(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let stable: Vec<&String> = before.iter().filter(|n| after.contains(n)).collect();
    assert!(
        stable.iter().all(|n| dev.contains(n)),
        "pod links {dev:?}, host links {stable:?}"
    );
    let hostname = w.ok(&["exec", "hostnet", "-c", "busybox", "--", "hostname"]);
    assert_eq!(
        hostname.trim(),
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );
}

#[test]
fn post_start_page_and_a_named_port_probe_are_reached_on_the_pod_ip() {
    let (bridge, cidr) = unique_net(3);
    let mut w = World::new("net-hook");
    w.extra_env.push(("PODRUN_BRIDGE".into(), bridge.clone()));
    w.extra_env.push(("PODRUN_POD_CIDR".into(), cidr.clone()));
    w.extra_env.push(("PODRUN_NETWORK".into(), "bridge".into()));
    let _bridge = BridgeGuard(podrun::network::NetworkConfig {
        bridge,
        subnet: cidr,
        ..Default::default()
    });
    let w = w;
    let hook =
        std::fs::read_to_string(pod_support::repo().join("tests/seed-examples/pod-hook-exec.yaml"))
            .unwrap();
    w.up_ok(&hook);
    w.wait_status("dev", "pod-hook-exec", "Running", 60);
    let ip = pod_ip(&w, "dev", "pod-hook-exec");
    let page = w.wait_for(20, "the postStart page", || {
        Some(curl(&format!("http://{ip}/"))).filter(|p| p.contains("postStart..."))
    });
    assert_eq!(page.trim(), "postStart...");

    // A readiness probe on a named port makes the pod Ready through its IP.
    w.up_ok("apiVersion: v1\nkind: Pod\nmetadata:\n  name: ready\n  namespace: default\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: nginx\n    image: nginx:1.17.1\n    ports:\n    - name: web\n      containerPort: 80\n    readinessProbe:\n      httpGet:\n        path: /\n        port: web\n      periodSeconds: 1\n");
    w.wait_for(30, "ready 1/1", || {
        let c = w.columns("default", "ready");
        (c.0 == "1/1" && c.1 == "Running").then_some(())
    });
}

fn exec_cat(w: &World, pod: &str, file: &str) -> String {
    w.ok(&["exec", pod, "-c", "busybox", "--", "cat", file])
}

#[test]
fn resolv_conf_and_hosts_follow_dns_policy_and_host_aliases() {
    let (bridge, cidr) = unique_net(4);
    let mut w = World::new("net-dns");
    w.extra_env.push(("PODRUN_BRIDGE".into(), bridge.clone()));
    w.extra_env.push(("PODRUN_POD_CIDR".into(), cidr.clone()));
    w.extra_env.push(("PODRUN_NETWORK".into(), "bridge".into()));
    let _bridge = BridgeGuard(podrun::network::NetworkConfig {
        bridge,
        subnet: cidr,
        ..Default::default()
    });
    let w = w;
    let pod = |name: &str, extra: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  terminationGracePeriodSeconds: 0\n{extra}  containers:\n  - name: busybox\n    image: busybox:1.30\n    command: [\"sleep\", \"3600\"]\n")
    };
    w.up_ok(&pod(
        "dnsnone",
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [\"192.0.2.53\"]\n    searches: [\"example.test\"]\n    options:\n    - name: ndots\n      value: \"2\"\n  hostAliases:\n  - ip: \"192.0.2.10\"\n    hostnames: [\"foo.local\", \"bar.local\"]\n",
    ));
    w.up_ok(&pod("dnsdefault", "  dnsPolicy: Default\n"));
    w.wait_status("default", "dnsnone", "Running", 60);
    w.wait_status("default", "dnsdefault", "Running", 60);
    // None: exactly what dnsConfig says.
    let resolv = exec_cat(&w, "dnsnone", "/etc/resolv.conf");
    assert_eq!(
        resolv,
        "nameserver 192.0.2.53\nsearch example.test\noptions ndots:2\n"
    );
    // hosts: the pod's own IP and name, then the aliases as kubelet writes them.
    let ip = pod_ip(&w, "default", "dnsnone");
    let hosts = exec_cat(&w, "dnsnone", "/etc/hosts");
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"),
        "{hosts}"
    );
    assert!(hosts.contains(&format!("{ip}\tdnsnone\n")), "{hosts}");
    assert!(
        hosts.contains("# Entries added by HostAliases.\n192.0.2.10\tfoo.local\tbar.local\n"),
        "{hosts}"
    );
    // Default: the node's resolver configuration.
    let host_ns: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .map(|l| format!("{}\n", l.split_whitespace().collect::<Vec<_>>().join(" ")))
        .take(3)
        .collect();
    let resolv = exec_cat(&w, "dnsdefault", "/etc/resolv.conf");
    assert!(
        host_ns.iter().all(|n| resolv.contains(n.as_str())),
        "{resolv} vs host {host_ns:?}"
    );

    // The downward API gives the container its pod IP and the node's IP.
    w.up_ok("apiVersion: v1\nkind: Pod\nmetadata:\n  name: downward\n  namespace: default\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: busybox\n    image: busybox:1.30\n    command: [\"sleep\", \"3600\"]\n    env:\n    - name: POD_IP\n      valueFrom:\n        fieldRef:\n          fieldPath: status.podIP\n    - name: HOST_IP\n      valueFrom:\n        fieldRef:\n          fieldPath: status.hostIP\n");
    w.wait_status("default", "downward", "Running", 60);
    let ip = pod_ip(&w, "default", "downward");
    let env = w.ok(&[
        "exec",
        "downward",
        "-c",
        "busybox",
        "--",
        "sh",
        "-c",
        "echo $POD_IP $HOST_IP",
    ]);
    assert_eq!(
        env.trim(),
        format!("{ip} {}", podrun::network::host_ip().unwrap())
    );
}

#[test]
fn delete_after_a_killed_supervisor_releases_the_pod_network() {
    let (bridge, cidr) = unique_net(5);
    let mut w = World::new("net-crash");
    w.extra_env.push(("PODRUN_BRIDGE".into(), bridge.clone()));
    w.extra_env.push(("PODRUN_POD_CIDR".into(), cidr.clone()));
    w.extra_env.push(("PODRUN_NETWORK".into(), "bridge".into()));
    let cfg = podrun::network::NetworkConfig {
        bridge: bridge.clone(),
        subnet: cidr,
        ..Default::default()
    };
    let _bridge = BridgeGuard(cfg.clone());
    let w = w;
    let hp = free_port();
    w.up_ok(&web_pod(hp));
    w.wait_status("default", "web", "Running", 60);
    let ip = pod_ip(&w, "default", "web");
    assert_eq!(
        sh(&format!("ip -o link show master {bridge}"))
            .lines()
            .count(),
        1
    );
    let pid = w.supervisor_pid("default", "web");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    w.ok(&["delete", "pod", "web", "--grace-period", "0", "--force"]);
    assert_eq!(
        sh(&format!("ip -o link show master {bridge}")).trim(),
        "",
        "veth left after orphan cleanup"
    );
    let leases = sh(&format!(
        "ls {}",
        w.data.join("ipam").join(&bridge).display()
    ));
    assert!(!leases.contains(&ip), "lease {ip} left: {leases}");
    let map = sh(&format!("nft list map ip {} hostports", cfg.nft_table()));
    assert!(!map.contains(&hp.to_string()), "hostPort left: {map}");
}

#[test]
fn a_failed_network_setup_fails_up_with_kubelets_event_and_leaves_no_bridge() {
    let host = podrun::network::host_ip().unwrap();
    assert_ne!(
        host, "127.0.0.1",
        "this test needs a host address on a default-route link"
    );
    let (bridge, _) = unique_net(6);
    let mut w = World::new("net-fail");
    w.extra_env.push(("PODRUN_BRIDGE".into(), bridge.clone()));
    // The host's own network: refused rather than shadowed.
    w.extra_env
        .push(("PODRUN_POD_CIDR".into(), format!("{host}/24")));
    w.extra_env.push(("PODRUN_NETWORK".into(), "bridge".into()));
    let w = w;
    let out = w.up(CLIENT);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("pod network:") && err.contains("overlaps"),
        "{err}"
    );
    let events = w.describe("default", "client");
    assert!(
        events.contains("FailedCreatePodSandBox")
            && events.contains("Failed to create pod sandbox: pod network:"),
        "{events}"
    );
    assert!(
        !sh("ip -o link").contains(&bridge),
        "bridge {bridge} was created"
    );
}
