//! Admission is serialised with the binding it decides: many concurrent `up`s of
//! distinct pods admit exactly maxPods (from the node's KubeletConfiguration), and the
//! rest wait Pending with the scheduler's "Too many pods".
mod pod_support;
use pod_support::*;
use std::process::Stdio;

const MAX_PODS: usize = 5;
const UPS: usize = 14;

#[test]
fn concurrent_ups_admit_exactly_max_pods() {
    let mut w = World::new("adm-conc");
    let config = w.root.parent().unwrap().join("config.yaml");
    std::fs::write(&config, format!("maxPods: {MAX_PODS}\n")).unwrap();
    w.extra_env
        .push(("PODRUN_NODE_CONFIG".into(), config.display().to_string()));
    let children: Vec<_> = (0..UPS)
        .map(|i| {
            let manifest = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sleep, '3600']\n");
            w.spawn_up(&manifest, Stdio::null)
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let scheduled = |p: &serde_json::Value| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled")
            .cloned()
            .unwrap_or_default()
    };
    let pods: Vec<serde_json::Value> = (0..UPS)
        .map(|i| w.pod("default", &format!("p{i}")))
        .collect();
    let admitted = pods
        .iter()
        .filter(|p| scheduled(p)["status"] == "True")
        .count();
    assert_eq!(admitted, MAX_PODS);
    for p in pods.iter().filter(|p| scheduled(p)["status"] != "True") {
        assert_eq!(p["status"]["phase"], "Pending");
        let msg = scheduled(p)["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(msg.contains("Too many pods"), "{msg}");
    }
}
