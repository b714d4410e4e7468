//! The OCI lifecycle through the CLI: create → start → state → kill → delete, `run` exit
//! codes, list/ps, errors, and that nothing is left behind.
mod oci_support;
use oci_support::*;

#[test]
fn create_start_kill_delete_walks_the_statuses_and_leaves_nothing() {
    let env = Env::new();
    env.set_args(&["sleep", "1000"]);
    let id = unique("walk");
    let pidfile = env.dir.join("init.pid");
    let out = env.podrun(&[
        "create",
        "--bundle",
        env.bundle.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "create: {}", stderr(&out));

    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.0.2");
    assert_eq!(st["bundle"], env.bundle.to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0 && alive(pid));
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    // Created: the user program has not run yet; init still waits.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("sleep"));

    let out = env.podrun(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    assert_eq!(env.status(&id), "running");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).starts_with("sleep\0"));

    // A second start is refused.
    assert!(!env.podrun(&["start", &id]).status.success());
    // delete refuses a running container.
    let out = env.podrun(&["delete", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("running"), "{}", stderr(&out));

    let out = env.podrun(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    assert!(wait_dead(pid));
    assert_eq!(env.status(&id), "stopped");
    assert_eq!(env.state(&id)["pid"], 0);

    let out = env.podrun(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!env.container_dir(&id).exists());
    assert!(!env.podrun(&["state", &id]).status.success());
    assert!(host_mounts_with(env.bundle.to_str().unwrap()).is_empty());
    assert!(cgroup_dirs(&format!("/podrun/{id}")).is_empty());
}

#[test]
fn delete_force_kills_a_running_container() {
    let env = Env::new();
    env.set_args(&["sleep", "1000"]);
    let id = unique("force");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(env.status(&id), "running");
    let out = env.podrun(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(wait_dead(pid));
    assert!(!env.container_dir(&id).exists());
    assert!(cgroup_dirs(&format!("/podrun/{id}")).is_empty());
}

#[test]
fn deleting_a_created_container_kills_its_init() {
    let env = Env::new();
    let id = unique("created");
    assert!(env.create(&id).status.success());
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let out = env.podrun(&["delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(wait_dead(pid));
    assert!(!env.container_dir(&id).exists());
}

#[test]
fn kill_accepts_names_numbers_and_defaults_to_sigterm() {
    let env = Env::new();
    // A shell that reports which signal it got (pid 1 only sees handled signals).
    env.set_args(&[
        "sh",
        "-c",
        "trap 'echo TERM >> /tmp/sig; exit 0' TERM; trap 'echo USR1 >> /tmp/sig' USR1; while true; do sleep 0.05; done",
    ]);
    env.edit_config(|c| c["root"]["readonly"] = false.into());
    let id = unique("kill");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    for s in ["USR1", "SIGUSR1", "10"] {
        let out = env.podrun(&["kill", &id, s]);
        assert!(out.status.success(), "kill {s}: {}", stderr(&out));
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    let out = env.podrun(&["kill", &id]);
    assert!(out.status.success());
    assert!(wait_dead(pid), "SIGTERM did not end the container");
    let sig = std::fs::read_to_string(env.bundle.join("rootfs/tmp/sig")).unwrap();
    assert_eq!(sig.lines().filter(|l| *l == "USR1").count(), 3, "{sig}");
    assert!(sig.contains("TERM"));
    let out = env.podrun(&["kill", &id, "NOSUCHSIG"]);
    assert!(!out.status.success());
    // Stopped containers cannot be signalled.
    let out = env.podrun(&["kill", &id, "KILL"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[test]
fn run_exits_with_the_container_status() {
    let env = Env::new();
    env.set_args(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let id = unique("exit");
    let (code, out, err) = env.run(&id);
    assert_eq!(code, 3, "stderr: {err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"));
    // Attached run deletes the container afterwards.
    assert!(!env.container_dir(&id).exists());

    // Killed from outside: 128 + signal.
    env.set_args(&["sleep", "1000"]);
    let id = unique("sig");
    let mut cmd = env.cmd(&["run", "--bundle", env.bundle.to_str().unwrap(), &id]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut running = false;
    for _ in 0..200 {
        let out = env.podrun(&["state", &id]);
        if out.status.success() && stdout(&out).contains("\"running\"") {
            running = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(running, "container never ran");
    assert!(env.podrun(&["kill", &id, "9"]).status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 9));
    assert!(!env.container_dir(&id).exists());

    env.set_args(&["true"]);
    assert_eq!(env.run(&unique("true")).0, 0);
}

#[test]
fn list_and_ps_show_the_containers() {
    let env = Env::new();
    env.set_args(&["sleep", "1000"]);
    let a = unique("la");
    let b = unique("lb");
    assert!(env.create(&a).status.success());
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &b]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = env.podrun(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let by_id = |id: &str| arr.iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(by_id(&a)["status"], "created");
    assert_eq!(by_id(&b)["status"], "running");

    let table = stdout(&env.podrun(&["list"]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID"));
    assert!(table.contains(&a) && table.contains("created") && table.contains("running"));
    let q = stdout(&env.podrun(&["list", "-q"]));
    assert_eq!(q.lines().count(), 2);

    let pid = env.state(&b)["pid"].as_i64().unwrap();
    let out = env.podrun(&["ps", "--format", "json", &b]);
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    let out = stdout(&env.podrun(&["ps", &b]));
    assert!(out.lines().next().unwrap().contains("PID"));
    assert!(out.contains("sleep 1000"), "{out}");
}

#[test]
fn errors_are_one_line_and_leave_nothing_behind() {
    let env = Env::new();
    let bundle = env.bundle.to_str().unwrap().to_string();
    let check = |id: &str, want: &[&str]| {
        let out = env.podrun(&["create", "--bundle", &bundle, id]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{id} should fail");
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("podrun: warning:"))
            .collect();
        assert_eq!(errors.len(), 1, "one line: {err}");
        for w in want {
            assert!(err.contains(w), "{err:?} should mention {w:?}");
        }
        assert!(!env.container_dir(id).exists(), "state dir left for {id}");
        assert!(cgroup_dirs(&format!("/podrun/{id}")).is_empty());
    };
    let good = std::fs::read(env.bundle.join("config.json")).unwrap();

    std::fs::write(env.bundle.join("config.json"), b"{\"ociVersion\": ").unwrap();
    check(&unique("badjson"), &["config.json", "invalid JSON"]);

    std::fs::write(env.bundle.join("config.json"), &good).unwrap();
    env.edit_config(|c| c["linux"]["namespaces"][1]["type"] = "bogus".into());
    check(
        &unique("badns"),
        &["config.json", "linux.namespaces[1].type", "bogus"],
    );

    std::fs::write(env.bundle.join("config.json"), &good).unwrap();
    env.edit_config(|c| c["root"]["path"] = "nonexistent".into());
    check(&unique("noroot"), &["rootfs", "nonexistent"]);

    std::fs::write(env.bundle.join("config.json"), &good).unwrap();
    env.set_args(&["/no/such/program"]);
    check(&unique("noprog"), &["/no/such/program"]);

    env.edit_config(|c| {
        c["process"]["args"] = serde_json::json!(["true"]);
        c["mounts"] = serde_json::json!([{"destination": "/x", "type": "bind", "source": "/no/such/dir", "options": ["bind"]}]);
    });
    check(&unique("badmount"), &["/no/such/dir"]);

    std::fs::write(env.bundle.join("config.json"), &good).unwrap();
    check("bad/id", &["bad/id"]);

    // Duplicate id: the first container stays intact.
    let id = unique("dup");
    assert!(env.create(&id).status.success());
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let out = env.podrun(&["create", "--bundle", &bundle, &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(alive(pid) && env.status(&id) == "created");

    // Unknown ids.
    for verb in ["state", "start", "kill", "delete"] {
        let out = env.podrun(&[verb, "no-such-container"]);
        assert!(!out.status.success(), "{verb}");
        assert!(
            stderr(&out).contains("does not exist"),
            "{verb}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn log_file_gets_json_errors_for_engines() {
    let env = Env::new();
    let log = env.dir.join("log.json");
    let out = env.podrun(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn spec_and_features_describe_the_runtime() {
    let env = Env::new();
    // spec refuses to overwrite.
    let out = env.podrun(&["spec", "--bundle", env.bundle.to_str().unwrap()]);
    assert!(!out.status.success());
    let out = env.podrun(&["features"]);
    assert!(out.status.success());
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["hooks"].as_array().unwrap().len(), 6);
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"user".into()));
    let c = env.config();
    assert_eq!(c["root"]["path"], "rootfs");
    assert_eq!(c["process"]["args"][0], "sh");
}

#[test]
fn pause_resume_and_update_go_through_the_cgroup() {
    let env = Env::new();
    env.set_args(&["sleep", "1000"]);
    let id = unique("pause");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert!(env.podrun(&["pause", &id]).status.success());
    assert_eq!(env.status(&id), "paused");
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // cgroup v2 freezes tasks in a job-control stop (they show S): ask the cgroup.
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let rel = cg
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .to_string();
        let events = std::fs::read_to_string(format!("/sys/fs/cgroup{rel}/cgroup.events")).unwrap();
        assert!(events.contains("frozen 1"), "frozen cgroup: {events}");
    } else {
        assert!(st.contains("State:\tD"), "frozen task: {st}");
    }
    // Paused containers cannot be exec'd into.
    assert!(!env.podrun(&["exec", &id, "true"]).status.success());
    assert!(env.podrun(&["resume", &id]).status.success());
    assert_eq!(env.status(&id), "running");
    let out = env.podrun(&["update", "--pids-limit", "7", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.podrun(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(stdout(&out).trim(), "7", "{}", stderr(&out));
    // A paused container is deleted with --force too.
    assert!(env.podrun(&["pause", &id]).status.success());
    assert!(env.podrun(&["delete", "--force", &id]).status.success());
    assert!(wait_dead(pid));
    assert!(cgroup_dirs(&format!("/podrun/{id}")).is_empty());
}

#[test]
fn a_stale_state_dir_from_a_killed_create_does_not_block_the_id() {
    let env = Env::new();
    let id = unique("stale");
    let dir = env.container_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lock"), "").unwrap();
    let out = env.podrun(&["state", &id]);
    assert!(stderr(&out).contains("does not exist"));
    let out = env.create(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.status(&id), "created");
}
