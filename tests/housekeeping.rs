//! Node housekeeping (root, real kernel): the QoS tier cgroups' cpu shares follow the
//! pods in them as kubelet's QoS manager sets them.
mod pod_support;
use pod_support::*;
use podrun::housekeeping::qos_tiers::{burstable_shares, weight_to_shares};
use podrun::spec::resources::milli_cpu_to_shares;

fn v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A tier's cpu shares (v2: its cpu.weight, as the shares it stands for).
fn tier_shares(tier: &str) -> u64 {
    let dir = cgroup_dir("cpu", tier);
    let file = if v2() { "cpu.weight" } else { "cpu.shares" };
    let v: u64 = std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .parse()
        .unwrap();
    if v2() {
        weight_to_shares(v)
    } else {
        v
    }
}

/// The shares of the pod cgroups in a tier (other tests' pods among them).
fn pods_in(tier: &str) -> Vec<(String, u64)> {
    let dir = cgroup_dir("cpu", tier);
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("pod"))
                .filter_map(|e| {
                    let p = e.path();
                    let s = std::fs::read_to_string(p.join("cpu.shares"))
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .or_else(|| {
                            std::fs::read_to_string(p.join("cpu.weight"))
                                .ok()
                                .and_then(|s| s.trim().parse().ok())
                                .map(weight_to_shares)
                        })?;
                    Some((e.file_name().to_string_lossy().into_owned(), s))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pod(name: &str, resources: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sleep, '3600']\n    resources: {resources}\n")
}

/// Waits until burstable holds the shares of the pods in it (they come and go with other
/// tests too), with `uid`'s pod among them or not.
fn burstable_settles(w: &World, uid: &str, present: bool) -> u64 {
    w.wait_for(20, "burstable's cpu shares to follow its pods", || {
        let pods = pods_in("kubepods/burstable");
        let has = pods.iter().any(|(n, _)| n == &format!("pod{uid}"));
        let shares: Vec<u64> = pods.iter().map(|(_, s)| *s).collect();
        let want = burstable_shares(&shares);
        let got = tier_shares("kubepods/burstable");
        let close = if v2() {
            podrun::runtime::cgroups::cpu_shares_to_weight(got)
                == podrun::runtime::cgroups::cpu_shares_to_weight(want)
        } else {
            got == want
        };
        (has == present && close).then_some(got)
    })
}

#[test]
fn qos_tiers_get_kubelets_cpu_shares_as_pods_come_and_go() {
    let w = World::new("qos-tiers");
    w.up_ok(&pod("be", "{}"));
    w.up_ok(&pod("b1", "{requests: {cpu: 100m}}"));
    w.up_ok(&pod("b2", "{requests: {cpu: 250m, memory: 16Mi}}"));
    for p in ["be", "b1", "b2"] {
        w.wait_status("default", p, "Running", 30);
    }
    assert_eq!(
        tier_shares("kubepods/besteffort"),
        2,
        "besteffort at the minimum"
    );
    let uid = |n: &str| {
        w.pod("default", n)["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (u1, u2) = (uid("b1"), uid("b2"));
    let with_both = burstable_settles(&w, &u2, true);
    assert!(
        with_both >= milli_cpu_to_shares(350),
        "100m + 250m: at least {} shares, got {with_both}",
        milli_cpu_to_shares(350)
    );
    w.ok(&["delete", "pod", "b2", "--grace-period", "0", "--force"]);
    w.wait_for(30, "b2's cgroup gone", || {
        (!cgroup_dir("cpu", &format!("kubepods/burstable/pod{u2}")).exists()).then_some(())
    });
    burstable_settles(&w, &u2, false);
    assert!(cgroup_dir("cpu", &format!("kubepods/burstable/pod{u1}")).exists());
    w.delete_all();
}

fn cpu_nanos(rel: &str) -> u64 {
    let v1 = cgroup_dir("cpuacct", rel).join("cpuacct.usage");
    if let Ok(s) = std::fs::read_to_string(&v1) {
        return s.trim().parse().unwrap();
    }
    let stat = std::fs::read_to_string(cgroup_dir("", rel).join("cpu.stat")).unwrap();
    let usec: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    usec * 1000
}

fn working_set(rel: &str) -> u64 {
    let dir = cgroup_dir("memory", rel);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let stat = read("memory.stat").unwrap();
    let field = |k: &str| -> u64 {
        stat.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    match read("memory.usage_in_bytes") {
        Some(u) => u.trim().parse::<u64>().unwrap() - field("total_inactive_file"),
        None => {
            let u: u64 = read("memory.current").unwrap().trim().parse().unwrap();
            u - field("inactive_file")
        }
    }
}

fn within(a: f64, b: f64, share: f64, what: &str) {
    assert!(
        (a - b).abs() <= b.abs() * share,
        "{what}: top says {a}, the cgroup files {b}"
    );
}

#[test]
fn top_pod_agrees_with_the_cgroup_files() {
    let w = World::new("top");
    // A busy loop (about one core) holding ~40 MiB in a shell variable's worth of memory.
    let m = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: busy\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sh, -c, 'x=$(head -c 40000000 /dev/zero | tr \"\\\\0\" a); while :; do :; done']\n    resources: {limits: {cpu: 500m, memory: 200Mi}}\n";
    w.up_ok(m);
    w.wait_status("default", "busy", "Running", 30);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let pod = w.pod("default", "busy");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let rel = format!("kubepods/pod{uid}");
    let before = (cpu_nanos(&rel), std::time::Instant::now());
    let out = w.ok(&["top", "pod", "busy", "-o", "json", "--window-ms", "2000"]);
    let rate = (cpu_nanos(&rel) - before.0) as f64 / before.1.elapsed().as_secs_f64();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &v["pods"][0];
    assert_eq!(p["podRef"]["name"], "busy");
    let cores = p["cpu"]["usageNanoCores"].as_f64().unwrap();
    within(cores, rate, 0.10, "CPU nanocores");
    assert!(cores > 0.3e9, "the 500m busy loop: {cores}");
    let ws = p["memory"]["workingSetBytes"].as_f64().unwrap();
    within(ws, working_set(&rel) as f64, 0.10, "working set");
    assert!(ws > 30e6, "the 40 MB it holds: {ws}");
    assert_eq!(p["containers"][0]["name"], "c");

    let table = w.ok(&["top", "pod", "--window-ms", "500"]);
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["NAME", "CPU(cores)", "MEMORY(bytes)"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "busy");
    assert!(row[1].ends_with('m') && row[2].ends_with("Mi"), "{table}");
    let table = w.ok(&["top", "pod", "busy", "--containers", "--window-ms", "200"]);
    assert!(table.starts_with("POD"), "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("busy"), "{table}");
    let node = w.ok(&["top", "node", "--window-ms", "200"]);
    let head: Vec<&str> = node.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    );
    w.delete_all();
}
