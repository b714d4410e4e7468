//! Objects of their own through `apply`: a file of several kinds (what podrun does not
//! run gets kubectl's error line, the rest applies, exit 1), ConfigMaps and Secrets in
//! their own files used by pods of other files (a waiting pod starts when its ConfigMap
//! appears; a change reaches configMap volumes of running pods through kubelet's
//! `..data` swap while env vars keep their start values), `immutable`, and `get`,
//! `describe` (no Secret value shown) and `delete` with kubectl's words.
mod pod_support;
use pod_support::*;

fn apply(w: &World, file: &str, manifest: &str) -> std::process::Output {
    let path = w.root.parent().expect("base").join(file);
    std::fs::write(&path, manifest).expect("write");
    w.run(&["apply", "-f", path.to_str().expect("path")])
}

fn config_map(name: &str, value: &str, extra: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n{extra}data:\n  greeting: {value}\n")
}

const USER: &str = "apiVersion: v1
kind: Pod
metadata: {name: user}
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - {name: conf, configMap: {name: settings}}
  containers:
  - name: c
    image: busybox:1.30
    command: [sleep, '3600']
    envFrom: [{configMapRef: {name: settings}}]
    volumeMounts: [{name: conf, mountPath: /conf}]
";

#[test]
fn a_file_of_several_kinds_applies_what_podrun_runs_and_names_the_rest() {
    let w = private_world("obj-kinds");
    let manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\n\
        apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cfg}\n  data: {a: b}\n\
        - apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata: {name: ing, namespace: default}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: mixed}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {name: c, image: busybox:1.30, command: [sleep, '3600']}\n";
    let o = apply(&w, "mixed.yaml", manifest);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "configmap/cfg created\npod/mixed created\n"
    );
    let err = text(&o.stderr);
    let path = w.root.parent().expect("base").join("mixed.yaml");
    let from = path.display();
    assert!(err.contains(&format!("error: resource mapping not found for name: \"web\" namespace: \"\" from \"{from}\": no matches for kind \"Service\" in version \"v1\"")), "{err}");
    assert!(err.contains(&format!("error: resource mapping not found for name: \"ing\" namespace: \"default\" from \"{from}\": no matches for kind \"Ingress\" in version \"networking.k8s.io/v1\"")), "{err}");
    w.wait_status("default", "mixed", "Running", 60);
    // Applied again: unchanged, and the same error lines.
    let o = apply(&w, "mixed.yaml", manifest);
    assert_eq!(
        text(&o.stdout),
        "configmap/cfg unchanged\npod/mixed unchanged\n"
    );
    assert_eq!(o.status.code(), Some(1));
    // delete -f too deletes what it knows and names the rest, as kubectl does.
    let o = w.run(&["delete", "-f", path.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("no matches for kind \"Service\""));
    let out = text(&o.stdout);
    assert!(
        out.contains("pod \"mixed\" deleted") && out.contains("configmap \"cfg\" deleted"),
        "{out}"
    );
}

#[test]
fn a_config_map_of_its_own_file_feeds_pods_of_other_files_and_updates_their_volumes() {
    let w = private_world("obj-cm");
    // The pod comes first: it waits for its ConfigMap with kubelet's message.
    let o = apply(&w, "user.yaml", USER);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let c = w.wait_for(30, "CreateContainerConfigError", || {
        let p = w.pod("default", "user");
        let st = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        (st["reason"] == "CreateContainerConfigError").then_some(st)
    });
    // The volume and the env var wait for it (the volume is looked at first).
    let msg = c["message"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("configmap \"settings\" not found"), "{msg}");
    let o = apply(&w, "cm.yaml", &config_map("settings", "hello", ""));
    assert_eq!(
        text(&o.stdout),
        "configmap/settings created\n",
        "{}",
        text(&o.stderr)
    );
    let t0 = std::time::Instant::now();
    w.wait_status("default", "user", "Running", 15);
    let started = t0.elapsed();
    assert_eq!(
        w.ok(&["exec", "user", "--", "sh", "-c", "echo $greeting"])
            .trim(),
        "hello"
    );
    assert_eq!(
        w.ok(&["exec", "user", "--", "cat", "/conf/greeting"])
            .trim(),
        "hello"
    );
    let _ = w.run(&["delete", "pod", "user", "--grace-period", "0", "--force"]);
    w.wait_for(30, "user gone", || {
        (!w.run(&["get", "pod", "user"]).status.success()).then_some(())
    });

    // With the ConfigMap there, a pod of another file mounts it.
    let o = apply(&w, "user.yaml", USER);
    assert!(o.status.success(), "{}", text(&o.stderr));
    w.wait_status("default", "user", "Running", 60);
    assert_eq!(
        w.ok(&["exec", "user", "--", "cat", "/conf/greeting"])
            .trim(),
        "hello"
    );
    let link = w.ok(&["exec", "user", "--", "readlink", "/conf/..data"]);
    assert!(link.trim().starts_with(".."), "{link}");

    let o = apply(&w, "cm.yaml", &config_map("settings", "bonjour", ""));
    assert_eq!(
        text(&o.stdout),
        "configmap/settings configured\n",
        "{}",
        text(&o.stderr)
    );
    let t0 = std::time::Instant::now();
    w.wait_for(5, "the volume shows the new value", || {
        let t = w.ok(&["exec", "user", "--", "cat", "/conf/greeting"]);
        (t.trim() == "bonjour").then_some(())
    });
    let updated = t0.elapsed();
    let link2 = w.ok(&["exec", "user", "--", "readlink", "/conf/..data"]);
    assert_ne!(link, link2, "..data points at a new timestamped dir");
    // The env var keeps the value the container started with.
    assert_eq!(
        w.ok(&["exec", "user", "--", "sh", "-c", "echo $greeting"])
            .trim(),
        "hello"
    );
    let p = w.pod("default", "user");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    eprintln!(
        "pod started {started:?} after its ConfigMap appeared; volume updated in {updated:?}"
    );
}

#[test]
fn immutable_config_maps_and_secrets_get_describe_and_delete() {
    let w = private_world("obj-cli");
    let o = apply(
        &w,
        "fixed.yaml",
        &config_map("fixed", "one", "immutable: true\n"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = apply(
        &w,
        "fixed.yaml",
        &config_map("fixed", "two", "immutable: true\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim(),
        "The ConfigMap \"fixed\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let value = format!("s3cr3t-{}", std::process::id());
    let secret = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData: {{password: {value}}}\n");
    let o = apply(&w, "secret.yaml", &secret);
    assert_eq!(
        text(&o.stdout),
        "secret/creds created\n",
        "{}",
        text(&o.stderr)
    );

    let cms = w.ok(&["get", "cm"]);
    let lines: Vec<Vec<&str>> = cms
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "DATA", "AGE"], "{cms}");
    assert_eq!(lines[1][..2], ["fixed", "1"], "{cms}");
    let secrets = w.ok(&["get", "secrets"]);
    let lines: Vec<Vec<&str>> = secrets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "TYPE", "DATA", "AGE"], "{secrets}");
    assert_eq!(lines[1][..3], ["creds", "Opaque", "1"], "{secrets}");
    let d = w.ok(&["describe", "secret", "creds"]);
    assert!(
        d.contains(&format!("password:  {} bytes", value.len())),
        "{d}"
    );
    assert!(!d.contains(&value), "describe shows the secret: {d}");
    let d = w.ok(&["describe", "configmap", "fixed"]);
    assert!(d.contains("Data\n====\ngreeting:\n----\none\n"), "{d}");
    assert_eq!(
        w.ok(&["get", "configmap", "fixed", "-o", "name"]).trim(),
        "configmap/fixed"
    );

    let o = w.run(&["get", "cm", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim(),
        "Error from server (NotFound): configmaps \"nope\" not found"
    );
    assert_eq!(
        w.ok(&["delete", "cm", "fixed"]).trim(),
        "configmap \"fixed\" deleted"
    );
    assert_eq!(
        w.ok(&["delete", "secret", "creds"]).trim(),
        "secret \"creds\" deleted"
    );
    let o = w.run(&["get", "cm"]);
    assert_eq!(
        text(&o.stderr).trim(),
        "No resources found in default namespace."
    );

    let ns = w.ok(&["get", "ns"]);
    for n in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(
            ns.lines().any(|l| l.starts_with(n) && l.contains("Active")),
            "{ns}"
        );
    }
    let o = apply(
        &w,
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    );
    assert_eq!(
        text(&o.stdout),
        "namespace/team created\n",
        "{}",
        text(&o.stderr)
    );
    assert!(w
        .ok(&["get", "namespaces"])
        .lines()
        .any(|l| l.starts_with("team ")));
}
