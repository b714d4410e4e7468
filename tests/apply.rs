//! `podrun apply` as kubectl apply does it for a pod: created, unchanged, configured in
//! place (a changed image restarts that container alone; the pod keeps its UID and IP;
//! labels change at once), refused with the API server's words for other changes, and
//! with --force deleted and created again.
mod pod_support;
use pod_support::*;

fn pod(image_b: &str, label: &str, sleep: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: ap
  labels: {{app: {label}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox:1.30
    command: [sleep, '3600']
  - name: b
    image: {image_b}
    command: [sleep, '{sleep}']
"
    )
}

fn apply(w: &World, manifest: &str, extra: &[&str]) -> std::process::Output {
    let path = w.root.parent().expect("base").join("ap.yaml");
    std::fs::write(&path, manifest).expect("write");
    let mut args = vec!["apply", "-f", path.to_str().expect("path")];
    args.extend_from_slice(extra);
    w.run(&args)
}

fn status_of(p: &serde_json::Value, name: &str) -> serde_json::Value {
    p["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_default()
}

#[test]
fn apply_creates_keeps_configures_refuses_and_forces() {
    let w = World::new("apply");
    let o = apply(&w, &pod("busybox:1.30", "one", "3600"), &[]);
    assert_eq!(
        text(&o.stdout).trim(),
        "pod/ap created",
        "{}",
        text(&o.stderr)
    );
    w.wait_status("default", "ap", "Running", 60);
    let first = w.pod("default", "ap");
    let uid = first["metadata"]["uid"].clone();
    let ip = first["status"]["podIP"].clone();
    let a_id = status_of(&first, "a")["containerID"].clone();

    let o = apply(&w, &pod("busybox:1.30", "one", "3600"), &[]);
    assert_eq!(
        text(&o.stdout).trim(),
        "pod/ap unchanged",
        "{}",
        text(&o.stderr)
    );

    // A new image for b: b alone is restarted with it; the pod stays the same pod.
    let o = apply(&w, &pod("nginx:1.17.1", "two", "3600"), &[]);
    assert_eq!(
        text(&o.stdout).trim(),
        "pod/ap configured",
        "{}",
        text(&o.stderr)
    );
    let p = w.wait_for(60, "b restarted with its new image", || {
        let p = w.pod("default", "ap");
        let b = status_of(&p, "b");
        (b["restartCount"] == 1
            && b["image"] == "nginx:1.17.1"
            && b["state"]["running"].is_object())
        .then_some(p)
    });
    assert_eq!(p["metadata"]["uid"], uid);
    assert_eq!(p["status"]["podIP"], ip);
    assert_eq!(p["metadata"]["labels"]["app"], "two");
    assert_eq!(
        status_of(&p, "a")["containerID"],
        a_id,
        "a was restarted too"
    );
    assert_eq!(status_of(&p, "a")["restartCount"], 0);
    let events = w.ok(&["get", "events"]);
    assert!(
        events.contains("Container b definition changed, will be restarted"),
        "{events}"
    );

    // Another change is refused as the API server refuses it.
    let o = apply(&w, &pod("nginx:1.17.1", "two", "3000"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("The Pod \"ap\" is invalid: spec: Forbidden: pod updates may not change fields other than"),
        "{err}"
    );
    // --force deletes and creates it again: a new pod.
    let o = apply(&w, &pod("nginx:1.17.1", "two", "3000"), &["--force"]);
    assert_eq!(
        text(&o.stdout).trim(),
        "pod/ap configured",
        "{}",
        text(&o.stderr)
    );
    w.wait_status("default", "ap", "Running", 60);
    assert_ne!(w.pod("default", "ap")["metadata"]["uid"], uid);
    // kubectl's `delete -f FILE` (runc's -f is --force: a manifest argument tells them apart).
    let path = w.root.parent().expect("base").join("ap.yaml");
    let out = w.ok(&["delete", "-f", path.to_str().expect("path")]);
    assert_eq!(out.trim(), "pod \"ap\" deleted");
    assert!(
        !w.run(&["get", "pod", "ap"]).status.success(),
        "the pod is still listed"
    );
}

fn labelled(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sleep, '3600']\n"
    )
}

#[test]
fn get_and_delete_take_kubectls_label_selectors_and_all() {
    let w = World::new("selectors");
    for (n, app) in [("s1", "web"), ("s2", "web"), ("s3", "db")] {
        w.up_ok(&labelled(n, app));
    }
    let listed = w.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    assert_eq!(listed.trim(), "pod/s1\npod/s2", "{listed}");
    let listed = w.ok(&["get", "pods", "-l", "app notin (web)", "-o", "name"]);
    assert_eq!(listed.trim(), "pod/s3", "{listed}");
    let bad = w.run(&["get", "pods", "-l", "app in web"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    let out = w.ok(&["delete", "pod", "-l", "app=web", "--grace-period", "0"]);
    assert_eq!(
        out.trim(),
        "pod \"s1\" deleted\npod \"s2\" deleted",
        "{out}"
    );
    assert_eq!(
        w.ok(&["delete", "pod", "-l", "app=none"]).trim(),
        "No resources found"
    );
    let out = w.ok(&["delete", "pod", "--all", "--grace-period", "0"]);
    assert_eq!(out.trim(), "pod \"s3\" deleted", "{out}");
    assert_eq!(w.ok(&["get", "pods", "-o", "name"]).trim(), "");
}

fn with_config(value: &str, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: ap-conf}}
data: {{mode: {value}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: ap-cm}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{{name: conf, configMap: {{name: ap-conf}}}}]
  containers:
  - name: web
    image: {image}
    volumeMounts: [{{name: conf, mountPath: /conf}}]
"
    )
}

#[test]
fn a_changed_config_map_is_configured_and_an_image_may_change_to_latest() {
    let w = World::new("apply-cm");
    let o = apply(&w, &with_config("one", "nginx:1.17.1"), &[]);
    assert_eq!(
        text(&o.stdout),
        "configmap/ap-conf created\npod/ap-cm created\n",
        "{}",
        text(&o.stderr)
    );
    w.wait_status("default", "ap-cm", "Running", 60);
    // The ConfigMap of the file changed: it is configured, the pod is not touched and
    // its volume shows the new data.
    let o = apply(&w, &with_config("two", "nginx:1.17.1"), &[]);
    assert_eq!(
        text(&o.stdout),
        "configmap/ap-conf configured\npod/ap-cm unchanged\n",
        "{}",
        text(&o.stderr)
    );
    w.wait_for(5, "the volume shows the new data", || {
        let t = w.ok(&["exec", "ap-cm", "--", "cat", "/conf/mode"]);
        (t.trim() == "two").then_some(())
    });
    // An image changed to :latest: imagePullPolicy, never written in the file, is no
    // change of its own (the API server would not refuse it).
    let o = apply(&w, &with_config("two", "nginx:latest"), &[]);
    assert_eq!(
        text(&o.stdout),
        "configmap/ap-conf unchanged\npod/ap-cm configured\n",
        "{}",
        text(&o.stderr)
    );
    w.wait_for(60, "web restarted with nginx:latest", || {
        let p = w.pod("default", "ap-cm");
        let s = status_of(&p, "web");
        (s["image"] == "nginx:latest" && s["state"]["running"].is_object()).then_some(())
    });
}
