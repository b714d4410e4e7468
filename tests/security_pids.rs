//! The node's podPidsLimit caps every pod's cgroup (pids.max), so a fork bomb in a
//! default pod stops there and the host keeps forking; deleting the pod leaves nothing.
//! Runs on this host and in the cgroup v2 VM (tests/vm): the image is imported from the
//! host's busybox and the pods need no network.
mod oci_support;
mod pod_support;
use pod_support::*;
use std::path::PathBuf;

fn world(tag: &str) -> World {
    let mut w = World::with_imported_busybox(tag, oci_support::make_busybox_rootfs);
    w.extra_env.push(("PODRUN_NETWORK".into(), "none".into()));
    w
}

fn pod_pids_dir(w: &World, name: &str) -> PathBuf {
    let uid = w.pod("default", name)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    cgroup_dir("pids", &format!("kubepods/besteffort/pod{uid}"))
}

fn read(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

fn pod(name: &str, command: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: devtest/busybox:1\n    imagePullPolicy: Never\n    command: [sh, -c, '{command}']\n")
}

#[test]
fn a_default_pod_gets_the_default_pod_pids_limit() {
    let w = world("pids-default");
    w.up_ok(&pod("plain", "sleep 3600"));
    w.wait_status("default", "plain", "Running", 60);
    assert_eq!(read(&pod_pids_dir(&w, "plain"), "pids.max"), "4096");
}

#[test]
fn a_fork_bomb_stops_at_pod_pids_limit_and_the_host_keeps_forking() {
    let mut w = world("pids-bomb");
    let config = w.root.parent().unwrap().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\npodPidsLimit: 300\n",
    )
    .unwrap();
    w.extra_env
        .push(("PODRUN_NODE_CONFIG".into(), config.display().to_string()));
    w.up_ok(&pod("bomb", "f() { f | f & }; f; sleep 3600"));
    let dir = w.wait_for(60, "the pod cgroup", || {
        let o = w.run(&["get", "pod", "bomb", "-o", "json"]);
        o.status.success().then(|| pod_pids_dir(&w, "bomb"))
    });
    assert_eq!(read(&dir, "pids.max"), "300");
    // The bomb reaches the limit and stays there.
    w.wait_for(60, "pids.current at the limit", || {
        (read(&dir, "pids.current").parse::<u64>().ok()? >= 290).then_some(())
    });
    for _ in 0..10 {
        let cur: u64 = read(&dir, "pids.current").parse().unwrap();
        assert!(cur <= 300, "pids.current {cur} above the limit");
        // The host still forks.
        let st = std::process::Command::new("true").status().unwrap();
        assert!(st.success());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    w.ok(&["delete", "pod", "bomb", "--grace-period", "0", "--force"]);
    w.wait_for(60, "the bomb's processes gone", || {
        (!dir.exists() || read(&dir, "pids.current") == "0").then_some(())
    });
    w.wait_for(30, "the pod cgroup removed", || {
        (!dir.exists()).then_some(())
    });
}

#[test]
fn a_bad_node_configuration_fails_up_naming_the_file() {
    let mut w = world("pids-badcfg");
    let config = w.root.parent().unwrap().join("config.yaml");
    std::fs::write(&config, "podPidLimit: 10\n").unwrap();
    w.extra_env
        .push(("PODRUN_NODE_CONFIG".into(), config.display().to_string()));
    let o = w.up(&pod("nope", "true"));
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains(&config.display().to_string()), "{err}");
    assert!(err.contains("unknown field `podPidLimit`"), "{err}");
    assert!(!w.root.join("pods/default_nope").exists());
}
