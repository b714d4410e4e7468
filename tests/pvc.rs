//! PersistentVolumeClaims through `apply`: the built-in default class provisions a
//! directory under the data dir and the claim is Bound; a pod's persistentVolumeClaim
//! volume mounts it and its data outlives the pod; deleting a claim in use waits for its
//! pod (pvc-protection), then reclaimPolicy Delete removes the data; a user's hostPath
//! PV and a claim of its class bind statically; `get pvc|pv|sc` with kubectl's columns.
mod pod_support;
use pod_support::*;

fn apply(w: &World, file: &str, manifest: &str) -> std::process::Output {
    let path = w.root.parent().expect("base").join(file);
    std::fs::write(&path, manifest).expect("write");
    w.run(&["apply", "-f", path.to_str().expect("path")])
}

const CLAIM: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
";

fn writer(name: &str, script: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{{name: d, persistentVolumeClaim: {{claimName: data}}}}]
  containers:
  - name: c
    image: busybox:1.30
    command: [sh, -c, '{script}; sleep 3600']
    volumeMounts: [{{name: d, mountPath: /data}}]
"
    )
}

fn row(w: &World, args: &[&str], name: &str) -> Vec<String> {
    let out = w.ok(args);
    out.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not in {out}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn gone(w: &World, pod: &str) {
    let _ = w.run(&["delete", "pod", pod, "--grace-period", "0", "--force"]);
    w.wait_for(30, "pod gone", || {
        (!w.run(&["get", "pod", pod]).status.success()).then_some(())
    });
}

#[test]
fn a_claim_is_provisioned_bound_mounted_kept_and_deleted_when_unused() {
    let w = private_world("pvc");
    let o = apply(&w, "claim.yaml", CLAIM);
    assert_eq!(
        text(&o.stdout),
        "persistentvolumeclaim/data created\n",
        "{}",
        text(&o.stderr)
    );
    let head = w.ok(&["get", "pvc"]);
    assert!(head.starts_with("NAME   STATUS   VOLUME"), "{head}");
    let r = row(&w, &["get", "pvc"], "data");
    assert_eq!(r[1], "Bound", "{r:?}");
    assert!(r[2].starts_with("pvc-"), "{r:?}");
    assert_eq!(r[3..6], ["1Gi", "RWO", "local-path"], "{r:?}");
    let pv = row(&w, &["get", "pv"], &r[2]);
    assert_eq!(
        pv[1..6],
        ["1Gi", "RWO", "Delete", "Bound", "default/data"],
        "{pv:?}"
    );
    let sc = w.ok(&["get", "sc"]);
    assert!(sc.contains("local-path (default)"), "{sc}");
    // Applied again: unchanged (what the binder set is kept).
    let o = apply(&w, "claim.yaml", CLAIM);
    assert_eq!(text(&o.stdout), "persistentvolumeclaim/data unchanged\n");

    apply(&w, "w1.yaml", &writer("w1", "echo kept > /data/f"));
    w.wait_status("default", "w1", "Running", 60);
    gone(&w, "w1");
    apply(&w, "w2.yaml", &writer("w2", "true"));
    w.wait_status("default", "w2", "Running", 60);
    assert_eq!(w.ok(&["exec", "w2", "--", "cat", "/data/f"]).trim(), "kept");
    let dirs: Vec<_> = std::fs::read_dir(w.data.join("storage/local-path"))
        .expect("provisioned dir")
        .flatten()
        .collect();
    assert_eq!(dirs.len(), 1);
    let dir = dirs[0].path();
    assert!(dir.join("f").exists());

    // In use: the delete waits for the pod (pvc-protection).
    let mut del = w
        .cmd()
        .args(["delete", "pvc", "data"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("delete pvc");
    w.wait_for(10, "Terminating", || {
        (row(&w, &["get", "pvc"], "data")[1] == "Terminating").then_some(())
    });
    assert!(
        del.try_wait().expect("wait").is_none(),
        "delete did not wait"
    );
    assert!(dir.join("f").exists());
    gone(&w, "w2");
    let out = del.wait_with_output().expect("delete output");
    assert_eq!(
        text(&out.stdout),
        "persistentvolumeclaim \"data\" deleted\n"
    );
    assert!(!dir.exists(), "reclaimPolicy Delete removes the data");
    assert!(w.ok(&["get", "pv"]).trim().is_empty());
}

#[test]
fn a_users_host_path_volume_binds_statically() {
    let w = private_world("pvc-static");
    let host = w.root.parent().expect("base").join("manual");
    let manifest = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: manual-pv}}\nspec:\n  storageClassName: manual\n  capacity: {{storage: 2Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: {}}}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: c2}}\nspec:\n  storageClassName: manual\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n",
        host.display()
    );
    let o = apply(&w, "static.yaml", &manifest);
    assert_eq!(
        text(&o.stdout),
        "persistentvolume/manual-pv created\npersistentvolumeclaim/c2 created\n",
        "{}",
        text(&o.stderr)
    );
    let r = row(&w, &["get", "pvc"], "c2");
    assert_eq!(
        r[1..6],
        ["Bound", "manual-pv", "2Gi", "RWO", "manual"],
        "{r:?}"
    );
    let pv = row(&w, &["get", "pv"], "manual-pv");
    assert_eq!(pv[3..6], ["Retain", "Bound", "default/c2"], "{pv:?}");
    assert_eq!(
        w.ok(&["delete", "pvc", "c2"]).trim(),
        "persistentvolumeclaim \"c2\" deleted"
    );
    assert_eq!(row(&w, &["get", "pv"], "manual-pv")[4], "Released");
}
