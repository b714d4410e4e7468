//! `podrun label node` / `podrun taint node`, driven through the real binary against a
//! private data directory: kubectl's syntax, messages and exit codes, and node.json.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A private data directory, removed even when the test fails.
struct DataDir(PathBuf);

impl DataDir {
    fn new(tag: &str) -> DataDir {
        let p = std::env::temp_dir().join(format!(
            "podrun-node-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        DataDir(p)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NODE: &str = "test-node-1";

fn podrun(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podrun"))
        .args(args)
        .env("PODRUN_DATA_DIR", dir)
        .env("PODRUN_NODE_NAME", NODE)
        .output()
        .unwrap()
}

/// Runs and returns (exit code, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = podrun(dir, args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn node_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("node.json")).unwrap()).unwrap()
}

#[test]
fn label_node_like_kubectl() {
    let d = DataDir::new("label");
    assert_eq!(
        run(&d.0, &["label", "node", NODE, "nodeenv=pro"]),
        (0, format!("node/{NODE} labeled\n"), String::new())
    );
    assert_eq!(node_json(&d.0)["metadata"]["labels"]["nodeenv"], "pro");
    // The kubelet's own labels are there from the start.
    let labels = &node_json(&d.0)["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], NODE);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["beta.kubernetes.io/os"], "linux");
    assert!(labels["kubernetes.io/arch"].is_string());

    assert_eq!(
        run(&d.0, &["label", "node", NODE, "nodeenv=test"]),
        (
            1,
            String::new(),
            "error: 'nodeenv' already has a value (pro), and --overwrite is false\n".into()
        )
    );
    assert_eq!(
        node_json(&d.0)["metadata"]["labels"]["nodeenv"],
        "pro",
        "refused change not written"
    );
    assert_eq!(
        run(
            &d.0,
            &["label", "node", NODE, "nodeenv=test", "--overwrite"]
        )
        .1,
        format!("node/{NODE} labeled\n")
    );
    assert_eq!(node_json(&d.0)["metadata"]["labels"]["nodeenv"], "test");
    assert_eq!(
        run(&d.0, &["label", &format!("node/{NODE}"), "nodeenv-"]),
        (0, format!("node/{NODE} unlabeled\n"), String::new())
    );
    assert!(node_json(&d.0)["metadata"]["labels"]
        .get("nodeenv")
        .is_none());
    assert_eq!(
        run(&d.0, &["label", "nodes", NODE, "nodeenv-"]),
        (
            0,
            format!("label \"nodeenv\" not found.\nnode/{NODE} not labeled\n"),
            String::new()
        )
    );
}

#[test]
fn unknown_node_is_not_found() {
    let d = DataDir::new("notfound");
    for args in [
        &["label", "node", "k8s-node3", "a=b"][..],
        &["taint", "node", "k8s-node3", "tag=test:NoSchedule"][..],
    ] {
        assert_eq!(
            run(&d.0, args),
            (
                1,
                String::new(),
                "Error from server (NotFound): nodes \"k8s-node3\" not found\n".into()
            )
        );
    }
}

#[test]
fn taint_sequence_like_kubectl() {
    let d = DataDir::new("taint");
    let ok = |args: &[&str], word: &str| {
        assert_eq!(
            run(&d.0, args),
            (0, format!("node/{NODE} {word}\n"), String::new()),
            "{args:?}"
        );
    };
    ok(
        &["taint", "node", NODE, "tag=test:PreferNoSchedule"],
        "tainted",
    );
    ok(&["taint", "node", NODE, "tag=test:NoSchedule"], "tainted");
    ok(&["taint", "node", NODE, "tag=test:NoExecute"], "tainted");
    let taints = node_json(&d.0)["spec"]["taints"]
        .as_array()
        .unwrap()
        .clone();
    let effects: Vec<&str> = taints
        .iter()
        .map(|t| t["effect"].as_str().unwrap())
        .collect();
    assert_eq!(effects, ["NoExecute", "NoSchedule", "PreferNoSchedule"]);
    assert!(
        taints[0]["timeAdded"].is_string(),
        "NoExecute carries timeAdded"
    );
    assert!(taints[1].get("timeAdded").is_none());

    assert_eq!(
        run(&d.0, &["taint", "node", NODE, "tag=other:NoSchedule"]),
        (
            1,
            String::new(),
            format!("error: node {NODE} already has tag taint(s) with same effect(s) and --overwrite is false\n")
        )
    );
    ok(
        &["taint", "node", NODE, "tag=other:NoSchedule", "--overwrite"],
        "modified",
    );
    assert_eq!(
        run(&d.0, &["taint", "node", NODE, "tag=test:Sometimes"]),
        (
            1,
            String::new(),
            "error: invalid taint effect: Sometimes, unsupported taint effect\n".into()
        )
    );
    assert_eq!(
        run(
            &d.0,
            &["taint", "node", NODE, "a=1:NoSchedule", "a=2:NoSchedule"]
        )
        .2,
        "error: duplicated taints with the same key and effect: {a 2 NoSchedule <nil>}\n"
    );
    ok(&["taint", "node", NODE, "tag:NoSchedule-"], "untainted");
    assert_eq!(
        run(&d.0, &["taint", "node", NODE, "tag:NoSchedule-"]),
        (
            1,
            String::new(),
            "error: taint \"tag:NoSchedule\" not found\n".into()
        )
    );
    ok(&["taint", "node", NODE, "tag-"], "untainted");
    assert!(node_json(&d.0)["spec"].get("taints").is_none());
}

#[test]
fn concurrent_commands_do_not_lose_updates() {
    let d = DataDir::new("concurrent");
    let spawned: Vec<_> = (0..16)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_podrun"))
                .args(["label", "node", NODE, &format!("k{i}=v{i}")])
                .env("PODRUN_DATA_DIR", &d.0)
                .env("PODRUN_NODE_NAME", NODE)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in spawned {
        assert!(c.wait().unwrap().success());
    }
    let labels = node_json(&d.0)["metadata"]["labels"].clone();
    for i in 0..16 {
        assert_eq!(labels[format!("k{i}")], format!("v{i}"), "label k{i} lost");
    }
}

#[test]
fn node_is_named_after_the_host_unless_configured() {
    let d = DataDir::new("hostname");
    let host = nix::unistd::gethostname()
        .unwrap()
        .into_string()
        .unwrap()
        .to_lowercase();
    let out = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .args(["label", "node", &host, "x=y"])
        .env("PODRUN_DATA_DIR", &d.0)
        .env_remove("PODRUN_NODE_NAME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node_json(&d.0)["metadata"]["name"], host.as_str());
}
