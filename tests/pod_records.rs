//! A pod's record on disk can be wrong without a pod going astray: a pid in
//! supervisor.pid that now names another process is never signalled, and a corrupt
//! pod.json or status.json shows the pod as Unknown with a warning naming the file,
//! and `delete` still removes it.
mod pod_support;
use pod_support::*;
use std::process::Command;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: rec\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sleep, '3600']\n";

#[test]
fn a_reused_supervisor_pid_is_never_signalled() {
    let w = World::new("rec-pid");
    w.up_ok(POD);
    w.wait_status("default", "rec", "Running", 60);
    let uid = w.pod("default", "rec")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    // The supervisor dies without cleaning up; its pid now "belongs" to a stranger.
    let sup = w.supervisor_pid("default", "rec");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    );
    let mut stranger = Command::new("sleep").arg("60").spawn().unwrap();
    let pid_file = w.root.join("pods/default_rec/supervisor.pid");
    std::fs::write(&pid_file, format!("{} 1\n", stranger.id())).unwrap();
    w.ok(&["delete", "pod", "rec"]);
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "delete signalled a process that is not the supervisor"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(!w.root.join("pods/default_rec").exists());
    w.wait_for(10, "the pod's processes gone after delete", || {
        processes_in_cgroup(&format!("pod{uid}"))
            .is_empty()
            .then_some(())
    });
}

fn assert_unknown_then_deleted(w: &World, file: &str) {
    let o = w.run(&["get", "pods"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let line = text(&o.stdout)
        .lines()
        .find(|l| l.starts_with("rec "))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("Unknown"), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains(file), "{}", text(&o.stderr));
    w.ok(&["delete", "pod", "rec", "--grace-period", "0", "--force"]);
    w.wait_for(30, "the pod gone", || {
        (!w.root.join("pods/default_rec").exists()).then_some(())
    });
    let o = w.run(&["get", "pod", "rec"]);
    assert!(!o.status.success());
    // The name is free again.
    w.up_ok(POD);
    w.wait_status("default", "rec", "Running", 60);
}

#[test]
fn a_truncated_pod_json_shows_unknown_and_can_be_deleted() {
    let w = World::new("rec-podjson");
    w.up_ok(POD);
    w.wait_status("default", "rec", "Running", 60);
    let path = w.root.join("pods/default_rec/pod.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert_unknown_then_deleted(&w, "pod.json");
}

#[test]
fn a_truncated_status_json_shows_unknown_not_pending() {
    let w = World::new("rec-status");
    w.up_ok(POD);
    w.wait_status("default", "rec", "Running", 60);
    // Stop the supervisor from rewriting it (SIGSTOP), then break it.
    let sup = w.supervisor_pid("default", "rec");
    let stop = |s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(sup), s);
    let _ = stop(nix::sys::signal::Signal::SIGSTOP);
    let path = w.root.join("pods/default_rec/status.json");
    std::fs::write(&path, "{\"phase\": \"Runn").unwrap();
    let o = w.run(&["get", "pods"]);
    let _ = stop(nix::sys::signal::Signal::SIGCONT);
    assert!(text(&o.stdout).contains("Unknown"), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("status.json"),
        "{}",
        text(&o.stderr)
    );
}
