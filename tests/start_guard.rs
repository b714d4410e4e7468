//! A container start that fails after its rootfs was mounted leaves nothing behind: the
//! start guard unmounts the rootfs, removes its directory and deletes the runtime
//! container (its cgroup) before the container waits with kubelet's reason.
mod pod_support;
use pod_support::*;
use std::path::Path;

/// The pod's runtime containers' directories and mounts left on the host: rootfs mounts
/// and `<data-dir>/containers/<id>` dirs of ids with the pod's prefix, and container
/// cgroups under the pod cgroup.
fn leftovers(w: &World, uid: &str, pod_cgroup: &str) -> Vec<String> {
    let prefix: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let mut out = mounts_containing(&format!("/containers/{prefix}-"));
    let mut dirs = |dir: &Path| {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{prefix}-")) {
                out.push(e.path().display().to_string());
            }
        }
    };
    dirs(&w.data.join("containers"));
    for controller in ["pids", "memory", "cpu"] {
        dirs(&cgroup_dir(controller, pod_cgroup));
    }
    out
}

/// Waits until container `c` of the pod waits with `reason`; returns its message.
fn waiting_with(w: &World, pod: &str, c: usize, reason: &str) -> String {
    w.wait_for(60, reason, || {
        let p = w.pod("default", pod);
        let st = &p["status"]["containerStatuses"][c]["state"]["waiting"];
        (st["reason"].as_str() == Some(reason)).then(|| st["message"].to_string())
    })
}

fn uid_and_cgroup(w: &World, pod: &str) -> (String, String) {
    let p = w.pod("default", pod);
    let uid = p["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let class = match p["status"]["qosClass"].as_str() {
        Some("Guaranteed") => String::new(),
        Some(c) => format!("/{}", c.to_lowercase()),
        None => "/besteffort".into(),
    };
    let cgroup = format!("/kubepods{class}/pod{uid}");
    (uid, cgroup)
}

#[test]
fn a_start_failing_after_the_rootfs_mount_leaves_no_mount_dir_or_cgroup() {
    let w = World::new("start-guard");
    // `cfg` fails building its spec (over the mounted rootfs): kubelet's
    // CreateContainerConfigError; `exe` fails in the runtime (created, then its command
    // cannot run).
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: guard\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: cfg\n    image: busybox:1.30\n    command: [sleep, '3600']\n    env:\n    - {name: X, valueFrom: {configMapKeyRef: {name: nope, key: k}}}\n  - name: exe\n    image: busybox:1.30\n    command: [sleep, '3600']\n    workingDir: /bin/sh\n";
    w.up_ok(manifest);
    let msg = waiting_with(&w, "guard", 0, "CreateContainerConfigError");
    assert!(msg.contains("configmap \\\"nope\\\" not found"), "{msg}");
    let msg = waiting_with(&w, "guard", 1, "CreateContainerError");
    assert!(
        msg.contains("process.cwd /bin/sh: Not a directory"),
        "{msg}"
    );
    // Past the immediate retry, well inside the 10 s back-off that follows it.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (uid, cgroup) = uid_and_cgroup(&w, "guard");
    let left = leftovers(&w, &uid, &cgroup);
    assert!(left.is_empty(), "failed starts left behind: {left:#?}");
    // Still kubelet's reasons (a container never created does not crash-loop), the
    // first container's in kubectl's STATUS column.
    waiting_with(&w, "guard", 0, "CreateContainerConfigError");
    waiting_with(&w, "guard", 1, "CreateContainerError");
    let (_, status, _) = w.columns("default", "guard");
    assert_eq!(status, "CreateContainerConfigError");
    w.ok(&["delete", "pod", "guard"]);
}
