//! The node agent keeps pods supervised: a supervisor killed with SIGKILL is replaced
//! within a second, the new one re-adopts the running containers (same pids, no restart
//! counted) and every log line written meanwhile survives; an exit that happened while
//! no supervisor ran is recorded with its real code. Without an agent, a pod whose
//! supervisor died shows STATUS Unknown, never Running.
mod pod_support;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pod_support::*;
use std::time::{Duration, Instant};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: kept
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx:1.17.1
  - name: count
    image: busybox:1.30
    command: [sh, -c, 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done']
";

/// The init pid of container `name` of pod default/kept, from its OCI state.
fn container_pid(w: &World, name: &str) -> i32 {
    let pod = w.pod("default", "kept");
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let s = statuses
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no status for {name}: {pod}"));
    let id = s["containerID"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("podrun://");
    let state = std::fs::read_to_string(w.root.join("containers").join(id).join("state.json"))
        .unwrap_or_else(|e| panic!("state of {name} ({id}): {e}"));
    let v: serde_json::Value = serde_json::from_str(&state).expect("state json");
    v["pid"].as_i64().expect("pid") as i32
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Kills the pod's supervisor and waits for the agent's replacement; returns its pid and
/// how long the pod went without one.
fn crash_supervisor(w: &World) -> (i32, Duration) {
    let old = w.supervisor_pid("default", "kept");
    let _ = kill(Pid::from_raw(old), Signal::SIGKILL);
    let t0 = Instant::now();
    loop {
        let pid_file = w.root.join("pods/default_kept/supervisor.pid");
        let now = std::fs::read_to_string(&pid_file).ok().and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok())
        });
        if let Some(p) = now.filter(|&p| p != old && alive(p)) {
            return (p, t0.elapsed());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no new supervisor after 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The counter's numbers as `logs` shows them: they must run 0, 1, 2, ... with no gap.
fn assert_counter_unbroken(w: &World) -> usize {
    let out = w.ok(&["logs", "kept", "-c", "count"]);
    let nums: Vec<usize> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(nums.len() > 10, "too few lines: {out}");
    for (i, n) in nums.iter().enumerate() {
        assert_eq!(*n, i, "line {i} is {n}: a line was lost or repeated");
    }
    nums.len()
}

/// Waits until the pod runs again with one restart; returns the counter's status.
fn count_restarted(w: &World) -> serde_json::Value {
    w.wait_for(30, "count restarted", || {
        let c = w.columns("default", "kept");
        (c.2.starts_with('1') && c.1 == "Running").then_some(())
    });
    let pod = w.pod("default", "kept");
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "count").cloned())
        .expect("count status")
}

#[test]
fn a_killed_supervisor_is_replaced_and_re_adopts_its_running_containers() {
    let w = private_world("agent-crash");
    let _agent = Agent::start(&w);
    w.up_ok(POD);
    w.wait_status("default", "kept", "Running", 60);
    let (web, count) = (container_pid(&w, "web"), container_pid(&w, "count"));
    for round in 0..20 {
        let (_, gap) = crash_supervisor(&w);
        assert!(
            gap < Duration::from_secs(2),
            "round {round}: no supervisor for {gap:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            container_pid(&w, "web"),
            web,
            "round {round}: web was restarted"
        );
        assert_eq!(
            container_pid(&w, "count"),
            count,
            "round {round}: count was restarted"
        );
        let (ready, status, restarts) = w.columns("default", "kept");
        assert_eq!(
            (ready.as_str(), status.as_str(), restarts.as_str()),
            ("2/2", "Running", "0")
        );
    }
    let before = assert_counter_unbroken(&w);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        assert_counter_unbroken(&w) > before,
        "the new supervisor stopped reading logs"
    );
    // The adopted container is still supervised: killed, it is restarted per its policy.
    let _ = kill(Pid::from_raw(count), Signal::SIGKILL);
    let st = count_restarted(&w);
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 137, "{st}");
    assert_eq!(st["lastState"]["terminated"]["reason"], "Error", "{st}");
}

#[test]
fn an_exit_while_no_supervisor_runs_is_recorded_with_its_code() {
    let w = private_world("agent-down");
    let agent = Agent::start(&w);
    w.up_ok(POD);
    w.wait_status("default", "kept", "Running", 60);
    let count = container_pid(&w, "count");
    // Hold the agent still so the pod stays without a supervisor while the container dies.
    kill(agent.pid(), Signal::SIGSTOP).expect("stop the agent");
    let sup = w.supervisor_pid("default", "kept");
    let _ = kill(Pid::from_raw(sup), Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(200));
    let _ = kill(Pid::from_raw(count), Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(200));
    kill(agent.pid(), Signal::SIGCONT).expect("continue the agent");
    let st = count_restarted(&w);
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 137, "{st}");
    assert_eq!(st["restartCount"], 1, "{st}");
}

#[test]
fn without_an_agent_a_pod_whose_supervisor_died_is_unknown_not_running() {
    let w = World::new("agent-none");
    w.up_ok(POD);
    w.wait_status("default", "kept", "Running", 60);
    let sup = w.supervisor_pid("default", "kept");
    let _ = kill(Pid::from_raw(sup), Signal::SIGKILL);
    w.wait_status("default", "kept", "Unknown", 10);
    let d = w.describe("default", "kept");
    assert!(d.contains("supervisor"), "describe does not say why: {d}");
}

/// What a reboot leaves of the pods: no process, mount, cgroup or netns, an empty --root;
/// the data dir (desired state, leases) and hostPath data are still there.
fn simulate_reboot(w: &World, uid: &str) {
    let sup = w.supervisor_pid("default", "boot");
    let _ = kill(Pid::from_raw(sup), Signal::SIGKILL);
    let needle = format!("pod{uid}");
    w.wait_for(20, "every process of the pod killed", || {
        let left = processes_in_cgroup(&needle);
        for p in &left {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        left.is_empty().then_some(())
    });
    let base = w
        .root
        .parent()
        .expect("base")
        .to_string_lossy()
        .into_owned();
    let mut mounts: Vec<String> = mounts_containing(&base)
        .iter()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroupfs")
        .flatten()
    {
        remove_cgroups_named(&hierarchy.path(), &needle);
    }
    for e in std::fs::read_dir(&w.root).expect("root").flatten() {
        let gone = match e.file_type().is_ok_and(|t| t.is_dir()) {
            true => std::fs::remove_dir_all(e.path()),
            false => std::fs::remove_file(e.path()),
        };
        assert!(gone.is_ok(), "{}: {gone:?}", e.path().display());
    }
}

/// Removes every cgroup below `dir` whose name contains `needle`, deepest first.
fn remove_cgroups_named(dir: &std::path::Path, needle: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroups_named(&e.path(), needle);
            if e.file_name().to_string_lossy().contains(needle) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

#[test]
fn after_a_reboot_the_agent_restores_every_pod_with_its_uid_and_data() {
    let w = private_world("agent-boot");
    let host = w.root.parent().expect("base").join("host-data");
    std::fs::create_dir_all(&host).expect("host dir");
    let pod = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: boot
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: keep
    hostPath: {{path: {}}}
  - name: scratch
    emptyDir: {{}}
  containers:
  - name: main
    image: busybox:1.30
    command: [sh, -c, 'date +%s%N | tee -a /scratch/starts >> /keep/starts; sleep 3600']
    volumeMounts: [{{name: keep, mountPath: /keep}}, {{name: scratch, mountPath: /scratch}}]
",
        host.display()
    );
    let agent = Agent::start(&w);
    w.up_ok(&pod);
    w.wait_status("default", "boot", "Running", 60);
    let uid = w.pod("default", "boot")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    drop(agent);
    // The agent stopped: its pod runs on, as a kubelet restart leaves pods running.
    assert_eq!(w.columns("default", "boot").1, "Running");
    simulate_reboot(&w, &uid);
    let left: Vec<_> = std::fs::read_dir(&w.root)
        .expect("root")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "the reboot left {left:?}");
    let _agent = Agent::start(&w);
    w.wait_status("default", "boot", "Running", 60);
    let p = w.pod("default", "boot");
    assert_eq!(
        p["metadata"]["uid"],
        uid.as_str(),
        "the restored pod is the same pod"
    );
    let st = &p["status"]["containerStatuses"][0];
    assert_eq!(st["restartCount"], 1, "{st}");
    assert_eq!(st["lastState"]["terminated"]["reason"], "Unknown", "{st}");
    assert_eq!(st["lastState"]["terminated"]["exitCode"], 255, "{st}");
    let starts = std::fs::read_to_string(host.join("starts")).expect("hostPath data");
    assert_eq!(
        starts.lines().count(),
        2,
        "the hostPath data survived: {starts}"
    );
    // A disk-backed emptyDir lives under the data dir: it survives the reboot too.
    let scratch = w.ok(&["exec", "boot", "--", "cat", "/scratch/starts"]);
    assert_eq!(
        scratch.lines().count(),
        2,
        "the emptyDir data survived: {scratch}"
    );
}

#[test]
fn a_pod_started_before_the_agent_is_kept_as_well() {
    let w = private_world("agent-late");
    w.up_ok(POD);
    w.wait_status("default", "kept", "Running", 60);
    let count = container_pid(&w, "count");
    // The agent comes later: it finds the running supervisor and takes its fds.
    let _agent = Agent::start(&w);
    std::thread::sleep(Duration::from_millis(500));
    let (_, gap) = crash_supervisor(&w);
    assert!(gap < Duration::from_secs(2), "no supervisor for {gap:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(container_pid(&w, "count"), count, "count was restarted");
    let before = assert_counter_unbroken(&w);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        assert_counter_unbroken(&w) > before,
        "nobody reads the counter's output"
    );
}

/// The uid of pod `name`, once it is listed.
fn uid_of(w: &World, name: &str) -> Option<String> {
    let o = w.run(&["get", "pod", name, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["metadata"]["uid"].as_str().map(String::from)
}

fn static_pod(command: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sh, -c, '{command}']\n"
    )
}

#[test]
fn the_manifest_directory_runs_its_pods_replaces_edited_ones_and_deletes_removed_ones() {
    let w = private_world("agent-static");
    let base = w.root.parent().expect("base").to_path_buf();
    let dir = base.join("manifests");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("web.yaml"), static_pod("sleep 3600")).expect("write");
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c}]}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join(".hidden.yaml"),
        static_pod("sleep 1").replace("name: web", "name: hidden"),
    )
    .expect("write");
    let _agent = Agent::start(&w);
    // kubelet names a static pod <name>-<node>.
    let node = w
        .ok(&["get", "nodes", "-o", "name"])
        .trim()
        .trim_start_matches("node/")
        .to_string();
    let pod = format!("web-{node}");
    w.wait_status("default", &pod, "Running", 60);
    let first = uid_of(&w, &pod).expect("uid");
    let log = std::fs::read_to_string(base.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains("broken.yaml"),
        "the broken file is not named: {log}"
    );
    // ...and an event of the node says so too, naming the file and the field.
    let events = w.ok(&["get", "events"]);
    let line = events
        .lines()
        .find(|l| l.contains("FailedToProcessManifest"))
        .unwrap_or_else(|| panic!("no event for the broken file: {events}"));
    assert!(line.contains("Warning"), "{line}");
    assert!(line.contains(&format!("node/{node}")), "{line}");
    assert!(
        line.contains("Could not process manifest file")
            && line.contains(&dir.join("broken.yaml").display().to_string())
            && line.contains("image"),
        "{line}"
    );
    assert!(
        w.run(&["get", "pod", &format!("hidden-{node}")])
            .status
            .code()
            != Some(0),
        "a dotfile ran"
    );
    // An edit replaces the pod (a new uid, from the new content).
    std::fs::write(dir.join("web.yaml"), static_pod("sleep 3000")).expect("edit");
    let second = w.wait_for(60, "the edited pod replaced", || {
        uid_of(&w, &pod).filter(|u| *u != first)
    });
    w.wait_status("default", &pod, "Running", 60);
    // Removing the file deletes its pod.
    std::fs::remove_file(dir.join("web.yaml")).expect("remove");
    w.wait_for(60, "the pod deleted", || {
        uid_of(&w, &pod).is_none().then_some(())
    });
    assert_ne!(first, second);
}

#[test]
fn under_the_agent_a_noexecute_taint_still_evicts_without_a_watch_per_pod() {
    let w = private_world("agent-taint");
    let _agent = Agent::start(&w);
    w.up_ok(POD);
    w.wait_status("default", "kept", "Running", 60);
    let sup = w.supervisor_pid("default", "kept");
    let inotify = std::fs::read_dir(format!("/proc/{sup}/fd"))
        .expect("fds")
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("inotify"))
        })
        .count();
    assert_eq!(
        inotify, 0,
        "a supervisor under the agent holds no inotify instance"
    );
    let node = w
        .ok(&["get", "nodes", "-o", "name"])
        .trim()
        .trim_start_matches("node/")
        .to_string();
    w.ok(&["taint", "node", &node, "evict=now:NoExecute"]);
    w.wait_for(30, "the pod evicted by the NoExecute taint", || {
        (!w.run(&["get", "pod", "kept"]).status.success()).then_some(())
    });
}

/// The inotify instances process `pid` holds.
fn inotify_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().contains("inotify"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn sleeper(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sleep, '3600']\n")
}

#[test]
fn under_the_agent_a_pending_pod_is_admitted_when_room_comes_without_a_watch_of_its_own() {
    let mut w = private_world("agent-pending");
    let config = w.root.parent().expect("base").join("config.yaml");
    std::fs::write(&config, "maxPods: 1\n").expect("config");
    w.extra_env
        .push(("PODRUN_NODE_CONFIG".into(), config.display().to_string()));
    let _agent = Agent::start(&w);
    w.up_ok(&sleeper("first"));
    w.wait_status("default", "first", "Running", 60);
    w.up_ok(&sleeper("second"));
    w.wait_status("default", "second", "Pending", 30);
    let sup = w.supervisor_pid("default", "second");
    // Its FailedScheduling is recorded before it waits; the wait holds no watch.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        inotify_fds(sup),
        0,
        "a Pending pod's supervisor under the agent holds no inotify instance"
    );
    w.ok(&["delete", "pod", "first", "--grace-period", "0", "--force"]);
    w.wait_status("default", "second", "Running", 30);
}
