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
