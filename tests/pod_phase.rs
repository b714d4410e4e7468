//! The pod phase as kubelet reports it, end to end: Pending while a container never
//! started, a job pod's sidecar stopped once its work is done (then Succeeded), and
//! int64 extremes in deadlines and grace periods that must not crash anything.
mod pod_support;
use pod_support::*;

fn phase(w: &World, name: &str) -> String {
    w.pod("default", name)["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_pod_whose_only_container_never_started_is_pending() {
    let w = World::new("phase-never");
    w.up_ok("apiVersion: v1\nkind: Pod\nmetadata:\n  name: noimage\nspec:\n  containers:\n  - name: c\n    image: not-in-the-store:9.9\n    imagePullPolicy: Never\n");
    w.wait_status("default", "noimage", "ErrImageNeverPull", 60);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(phase(&w, "noimage"), "Pending");
    let ready = &w.pod("default", "noimage")["status"]["conditions"];
    let cond = |t: &str| {
        ready
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(cond("Ready")["reason"], "ContainersNotReady");
    assert_eq!(
        cond("Ready")["message"],
        "containers with unready status: [c]"
    );
}

#[test]
fn a_job_pods_sidecar_is_stopped_when_the_work_is_done_and_the_pod_succeeds() {
    let w = World::new("phase-sidecar");
    w.up_ok("apiVersion: v1\nkind: Pod\nmetadata:\n  name: job\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 5\n  initContainers:\n  - name: logger\n    image: busybox:1.30\n    restartPolicy: Always\n    command: [sleep, '3600']\n  containers:\n  - name: work\n    image: busybox:1.30\n    command: [sh, -c, 'echo done']\n");
    w.wait_for(60, "phase Succeeded", || {
        (phase(&w, "job") == "Succeeded").then_some(())
    });
    let pod = w.pod("default", "job");
    let sidecar = &pod["status"]["initContainerStatuses"][0];
    assert!(
        sidecar["state"]["terminated"].is_object(),
        "sidecar not stopped: {sidecar}"
    );
    assert_eq!(sidecar["restartCount"], 0, "sidecar restarted: {sidecar}");
    let events = w.ok(&["get", "events", "--for", "pod/job"]);
    assert!(events.contains("Stopping container logger"), "{events}");
}

#[test]
fn int64_extremes_in_deadlines_and_grace_do_not_crash_up_or_delete() {
    let w = World::new("phase-int64");
    w.up_ok("apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\nspec:\n  activeDeadlineSeconds: 9223372036854775807\n  terminationGracePeriodSeconds: 9223372036854775807\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sleep, '3600']\n    livenessProbe:\n      exec:\n        command: ['true']\n      terminationGracePeriodSeconds: 9223372036854775807\n");
    w.wait_status("default", "huge", "Running", 60);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(w.columns("default", "huge").1, "Running", "supervisor died");
    let o = w.run(&["delete", "pod", "huge", "--grace-period", "0", "--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!w.root.join("pods/default_huge").exists());
}
