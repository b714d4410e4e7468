//! The seed's scheduling walk-through through real pods (root, real kernel), in the seed's
//! order: nodeName, nodeSelector, node affinity, pod affinity and anti-affinity, the taint
//! sequence with NoExecute eviction, tolerations, and resource fit. Each step checks what
//! a user sees: STATUS, the FailedScheduling / Scheduled / TaintManagerEviction events in
//! `describe`, and that a Pending pod starts by itself once it fits.
//!
//! The steps change the node's labels and taints, which live in the data directory, so
//! this binary has its own data directory (fixture images loaded into it) and walks every
//! step in one test function.
mod pod_support;

use pod_support::*;
use std::process::Command;
use std::time::{Duration, Instant};

const NS: &str = "dev";
const NOT_MATCHING: &str =
    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";

/// A world whose data directory (images, node.json) belongs to this test alone.
fn private_world() -> World {
    let w = World::empty_store("sched");
    let st = Command::new("bash")
        .arg(repo().join("rootfs-fixtures/build.sh"))
        .args(["busybox", "nginx"])
        .status()
        .expect("run rootfs-fixtures/build.sh");
    assert!(
        st.success(),
        "fixtures could not be built: run `bash rootfs-fixtures/build.sh busybox nginx`"
    );
    let st = Command::new("bash")
        .arg(repo().join("rootfs-fixtures/load.sh"))
        .arg(PODRUN)
        .args(["busybox", "nginx"])
        .env("PODRUN_DATA_DIR", &w.data)
        .status()
        .expect("run rootfs-fixtures/load.sh");
    assert!(st.success(), "loading fixtures into {}", w.data.display());
    w
}

/// This node's name as `get nodes` prints it.
fn node_name(w: &World) -> String {
    let out = w.ok(&["get", "nodes"]);
    let line = out.lines().nth(1).unwrap_or_default();
    let name = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(!name.is_empty(), "get nodes: {out}");
    name
}

/// The seed example with `from` replaced by `to` (which must be there).
fn edited(file: &str, from: &str, to: &str) -> String {
    let y = seed(file);
    assert!(y.contains(from), "{file} has no {from:?}");
    y.replace(from, to)
}

/// `describe`'s event lines.
fn events(w: &World, name: &str) -> Vec<String> {
    let d = w.describe(NS, name);
    d.split("Events:")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// Waits for an event `type reason ... from message...` in describe; returns its line.
fn wait_event(w: &World, name: &str, type_reason_from: &str, message: &str, secs: u64) -> String {
    let want: Vec<&str> = type_reason_from.split_whitespace().collect();
    w.wait_for(
        secs,
        &format!("{name}: event {type_reason_from} {message:?}"),
        || {
            events(w, name).into_iter().find(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // Type, Reason, Age, From, Message
                f.len() > 4
                    && f[0] == want[0]
                    && f[1] == want[1]
                    && f[3] == want[2]
                    && l.contains(message)
            })
        },
    )
}

/// PodScheduled's status and reason from `get -o json`.
fn pod_scheduled(w: &World, name: &str) -> (String, String) {
    let p = w.pod(NS, name);
    let c = p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .unwrap_or_else(|| panic!("{name} has no PodScheduled condition: {p}"));
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
    )
}

/// The pod stays Pending with a FailedScheduling event saying `message`; returns the
/// event line.
fn pending_because(w: &World, name: &str, message: &str) -> String {
    let line = wait_event(
        w,
        name,
        "Warning FailedScheduling default-scheduler",
        message,
        20,
    );
    assert_eq!(
        pod_scheduled(w, name),
        ("False".into(), "Unschedulable".into()),
        "{name}"
    );
    // Re-checked every second, it must still be Pending a little later.
    std::thread::sleep(Duration::from_millis(1500));
    let (ready, status, restarts) = w.columns(NS, name);
    assert_eq!(
        (ready.as_str(), status.as_str(), restarts.as_str()),
        ("0/1", "Pending", "0"),
        "{name} stays Pending: {line}"
    );
    line
}

fn running(w: &World, name: &str) {
    let (ready, _, _) = w.wait_status(NS, name, "Running", 60);
    assert_eq!(ready, "1/1", "{name}");
}

fn is_gone(w: &World, name: &str) -> bool {
    let o = w.run(&["get", "pod", name, "-n", NS]);
    !o.status.success() && text(&o.stderr).contains("NotFound")
}

fn delete(w: &World, name: &str) {
    let out = w.ok(&["delete", "pod", name, "-n", NS]);
    assert!(out.contains(&format!("pod \"{name}\" deleted")), "{out}");
    assert!(is_gone(w, name), "{name} still listed after delete");
}

/// A pod like the seed's `kubectl run taintN --image=...`, whose container ignores
/// SIGTERM (sleep as pid 1) so a graceful delete visibly takes its grace period.
fn taint_pod(name: &str, grace: u32) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: dev
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: busybox
    image: busybox:1.30
    command: [\"sleep\", \"3600\"]
"
    )
}

/// A running pod evicted by a NoExecute taint: event TaintManagerEviction from the
/// taint-eviction-controller, Terminating for its grace period, then gone.
fn evicted_gracefully(w: &World, name: &str, grace: u64, within: u64) {
    let t0 = Instant::now();
    wait_event(
        w,
        name,
        "Normal TaintManagerEviction taint-eviction-controller",
        &format!("Marking for deletion Pod {NS}/{name}"),
        within,
    );
    let (_, status, _) = w.columns(NS, name);
    assert_eq!(status, "Terminating", "{name} while its grace period runs");
    let killing = wait_event(w, name, "Normal Killing kubelet", "Stopping container", 5);
    assert!(killing.contains("Stopping container busybox"), "{killing}");
    w.wait_for(grace + 20, &format!("{name} deleted"), || {
        is_gone(w, name).then_some(())
    });
    assert!(
        t0.elapsed() >= Duration::from_secs(grace.saturating_sub(1)),
        "{name} went in {:?}: not graceful (grace {grace}s)",
        t0.elapsed()
    );
}

#[test]
fn seed_scheduling_walkthrough() {
    let w = private_world();
    let node = node_name(&w);

    // pod-nodename: bound to this node it runs; bound to k8s-node3 it waits, and says why.
    w.up_ok(&edited("pod-nodename.yaml", "k8s-node1", &node));
    running(&w, "pod-nodename");
    let d = w.describe(NS, "pod-nodename");
    let bound = d
        .lines()
        .find(|l| l.starts_with("Node:"))
        .unwrap_or_default();
    assert!(
        bound
            .split_whitespace()
            .nth(1)
            .is_some_and(|v| v.starts_with(&format!("{node}/"))),
        "{d}"
    );
    delete(&w, "pod-nodename");
    w.up_ok(&edited("pod-nodename.yaml", "k8s-node1", "k8s-node3"));
    let line = wait_event(
        &w,
        "pod-nodename",
        "Warning FailedScheduling default-scheduler",
        "k8s-node3",
        20,
    );
    assert!(line.contains("not this node"), "{line}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(w.columns(NS, "pod-nodename").1, "Pending");
    let d = w.describe(NS, "pod-nodename");
    assert!(d.contains("Status:           Pending"), "{d}");
    assert!(
        !d.contains("State:"),
        "no kubelet has reported on its containers: {d}"
    );
    delete(&w, "pod-nodename");

    // pod-nodeselector: runs once this node is labelled nodeenv=pro.
    assert_eq!(
        w.ok(&["label", "node", &node, "nodeenv=pro"]),
        format!("node/{node} labeled\n")
    );
    w.up_ok(&seed("pod-nodeselector.yaml"));
    running(&w, "pod-nodeselector");
    wait_event(
        &w,
        "pod-nodeselector",
        "Normal Scheduled default-scheduler",
        &format!("Successfully assigned {NS}/pod-nodeselector to {node}"),
        5,
    );
    delete(&w, "pod-nodeselector");
    // With nodeenv: xxx it is Pending; labelling the node xxx lets it start by itself.
    w.up_ok(&edited(
        "pod-nodeselector.yaml",
        "nodeenv: pro",
        "nodeenv: xxx",
    ));
    pending_because(&w, "pod-nodeselector", NOT_MATCHING);
    w.ok(&["label", "node", &node, "nodeenv=xxx", "--overwrite"]);
    running(&w, "pod-nodeselector");
    wait_event(
        &w,
        "pod-nodeselector",
        "Normal Scheduled default-scheduler",
        &format!("Successfully assigned {NS}/pod-nodeselector to {node}"),
        5,
    );
    // IgnoredDuringExecution: relabelling does not stop a running pod.
    w.ok(&["label", "node", &node, "nodeenv=pro", "--overwrite"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(w.columns(NS, "pod-nodeselector").1, "Running");
    delete(&w, "pod-nodeselector");

    // pod-nodeaffinity-required: [xxx, yyy] Pending; [pro, yyy] Running.
    w.up_ok(&seed("pod-nodeaffinity-required.yaml"));
    pending_because(&w, "pod-nodeaffinity-required", NOT_MATCHING);
    delete(&w, "pod-nodeaffinity-required");
    w.up_ok(&edited(
        "pod-nodeaffinity-required.yaml",
        r#"values: ["xxx", "yyy"]"#,
        r#"values: ["pro", "yyy"]"#,
    ));
    running(&w, "pod-nodeaffinity-required");
    delete(&w, "pod-nodeaffinity-required");

    // pod-nodeaffinity-preferred: the preference matches nothing, yet it runs.
    w.up_ok(&seed("pod-nodeaffinity-preferred.yaml"));
    running(&w, "pod-nodeaffinity-preferred");
    delete(&w, "pod-nodeaffinity-preferred");

    // pod-podaffinity-target + pod-podaffinity-required: [xxx, yyy] matches no pod here
    // (Pending); [pro, yyy] runs beside the target.
    w.up_ok(&seed("pod-podaffinity-target.yaml"));
    running(&w, "pod-podaffinity-target");
    w.up_ok(&seed("pod-podaffinity-required.yaml"));
    pending_because(
        &w,
        "pod-podaffinity-required",
        "0/1 nodes are available: 1 node(s) didn't match pod affinity rules.",
    );
    delete(&w, "pod-podaffinity-required");
    w.up_ok(&edited(
        "pod-podaffinity-required.yaml",
        r#"values: ["xxx", "yyy"]"#,
        r#"values: ["pro", "yyy"]"#,
    ));
    running(&w, "pod-podaffinity-required");
    delete(&w, "pod-podaffinity-required");

    // pod-podantiaffinity-required: the target (podenv=pro) runs on the only node, so it
    // waits; once the target is deleted it starts by itself.
    w.up_ok(&seed("pod-podantiaffinity-required.yaml"));
    pending_because(
        &w,
        "pod-podantiaffinity-required",
        "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.",
    );
    delete(&w, "pod-podaffinity-target");
    running(&w, "pod-podantiaffinity-required");
    wait_event(
        &w,
        "pod-podantiaffinity-required",
        "Normal Scheduled default-scheduler",
        &format!("Successfully assigned {NS}/pod-podantiaffinity-required to {node}"),
        5,
    );
    delete(&w, "pod-podantiaffinity-required");

    // Taints. PreferNoSchedule only prefers: a new pod runs.
    assert_eq!(
        w.ok(&["taint", "node", &node, "tag=test:PreferNoSchedule"]),
        format!("node/{node} tainted\n")
    );
    w.up_ok(&taint_pod("taint1", 3));
    running(&w, "taint1");
    // NoSchedule: the running pod stays, a new one is Pending.
    assert_eq!(
        w.ok(&["taint", "node", &node, "tag:PreferNoSchedule-"]),
        format!("node/{node} untainted\n")
    );
    w.ok(&["taint", "node", &node, "tag=test:NoSchedule"]);
    w.up_ok(&taint_pod("taint2", 3));
    pending_because(
        &w,
        "taint2",
        "0/1 nodes are available: 1 node(s) had untolerated taint {tag: test}.",
    );
    assert_eq!(w.columns(NS, "taint1").1, "Running");
    // NoExecute: the running pod without a toleration is evicted (gracefully), new ones
    // are Pending, and the pod that was Pending stays so.
    w.ok(&["taint", "node", &node, "tag:NoSchedule-"]);
    w.ok(&["taint", "node", &node, "tag=test:NoExecute"]);
    evicted_gracefully(&w, "taint1", 3, 10);
    w.up_ok(&taint_pod("taint3", 3));
    pending_because(
        &w,
        "taint3",
        "0/1 nodes are available: 1 node(s) had untolerated taint {tag: test}.",
    );
    assert_eq!(w.columns(NS, "taint2").1, "Pending");

    // pod-toleration tolerates tag=test:NoExecute: it runs, and is not evicted.
    w.up_ok(&seed("pod-toleration.yaml"));
    running(&w, "pod-toleration");
    // tolerationSeconds: tolerated for a while, then evicted.
    let limited = edited(
        "pod-toleration.yaml",
        "effect: \"NoExecute\"",
        "effect: \"NoExecute\"\n    tolerationSeconds: 4",
    )
    .replace("name: pod-toleration", "name: pod-toleration-seconds")
    .replace(
        "  containers:\n  - name: nginx\n    image: nginx:1.17.1",
        "  terminationGracePeriodSeconds: 2\n  containers:\n  - name: busybox\n    image: busybox:1.30\n    command: [\"sleep\", \"3600\"]",
    );
    assert!(limited.contains("command:"), "{limited}");
    w.up_ok(&limited);
    running(&w, "pod-toleration-seconds");
    let started = Instant::now();
    evicted_gracefully(&w, "pod-toleration-seconds", 2, 15);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "evicted after {:?}, before its tolerationSeconds",
        started.elapsed()
    );
    assert_eq!(w.columns(NS, "pod-toleration").1, "Running");
    assert_eq!(w.columns(NS, "taint2").1, "Pending");
    assert_eq!(w.columns(NS, "taint3").1, "Pending");

    // Removing the taint lets the Pending pods start by themselves.
    assert_eq!(
        w.ok(&["taint", "node", &node, "tag:NoExecute-"]),
        format!("node/{node} untainted\n")
    );
    for name in ["taint2", "taint3"] {
        running(&w, name);
        wait_event(
            &w,
            name,
            "Normal Scheduled default-scheduler",
            &format!("Successfully assigned {NS}/{name} to {node}"),
            5,
        );
        assert_eq!(pod_scheduled(&w, name), ("True".into(), String::new()));
    }
    for name in ["taint2", "taint3", "pod-toleration"] {
        w.ok(&[
            "delete",
            "pod",
            name,
            "-n",
            NS,
            "--grace-period",
            "0",
            "--force",
        ]);
    }

    // pod-resources-too-big: more memory than the node has.
    w.up_ok(&seed("pod-resources-too-big.yaml"));
    let line = pending_because(
        &w,
        "pod-resources",
        "0/1 nodes are available: 1 Insufficient memory.",
    );
    assert!(line.contains("Insufficient memory"), "{line}");
    delete(&w, "pod-resources");
    w.ok(&["label", "node", &node, "nodeenv-"]);
}
