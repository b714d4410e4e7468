//! Pods end to end (root, real kernel): the seed walk-through's configuration examples,
//! invalid manifests, and that `delete` leaves nothing behind.
#[path = "image_support/mod.rs"]
mod image_support;
mod pod_support;

use pod_support::*;
use std::time::Duration;

fn container_id(pod: &serde_json::Value, name: &str) -> String {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let s = statuses
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no status for {name}: {pod}"));
    s["containerID"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("podrun://")
        .to_string()
}

#[test]
fn pod_command_runs_both_containers_and_exec_sees_the_file_grow() {
    let w = World::new("pod-command");
    let out = w.up_ok(&seed("pod-command.yaml"));
    assert!(out.contains("pod/pod-command created"), "{out}");
    let (ready, _, restarts) = w.wait_status("dev", "pod-command", "Running", 30);
    assert_eq!((ready.as_str(), restarts.as_str()), ("2/2", "0"));
    let first = w.ok(&[
        "exec",
        "pod-command",
        "-n",
        "dev",
        "-c",
        "busybox",
        "--",
        "tail",
        "-n",
        "1",
        "/tmp/hello.txt",
    ]);
    std::thread::sleep(Duration::from_millis(3500));
    let second = w.ok(&[
        "exec",
        "pod-command",
        "-n",
        "dev",
        "-c",
        "busybox",
        "--",
        "tail",
        "-n",
        "1",
        "/tmp/hello.txt",
    ]);
    assert!(
        first.trim().len() == 8 && first.contains(':'),
        "a time like 12:34:56: {first:?}"
    );
    assert_ne!(first, second, "a new line every 3 s");
    // exec exits with the command's code.
    let o = w.run(&[
        "exec",
        "pod-command",
        "-n",
        "dev",
        "-c",
        "busybox",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
}

#[test]
fn pod_env_values_reach_the_container() {
    let w = World::new("pod-env");
    w.up_ok(&seed("pod-env.yaml"));
    w.wait_status("dev", "pod-env", "Running", 30);
    let out = w.ok(&[
        "exec",
        "pod-env",
        "-n",
        "dev",
        "-c",
        "busybox",
        "--",
        "sh",
        "-c",
        "echo $username $password",
    ]);
    assert_eq!(out.trim(), "admin 123456");
}

#[test]
fn pod_resources_land_in_the_container_cgroup() {
    let w = World::new("pod-resources");
    w.up_ok(&seed("pod-resources.yaml"));
    w.wait_status("dev", "pod-resources", "Running", 30);
    let pod = w.pod("dev", "pod-resources");
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let id = container_id(&pod, "nginx");
    let rel = format!("kubepods/burstable/pod{uid}/{id}");
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let dir = cgroup_dir("", &rel);
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap().trim(),
            "200000 100000"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max"))
                .unwrap()
                .trim(),
            (10u64 << 30).to_string()
        );
    } else {
        let cpu = cgroup_dir("cpu", &rel);
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
                .unwrap()
                .trim(),
            "200000",
            "2 cores"
        );
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.cfs_period_us"))
                .unwrap()
                .trim(),
            "100000"
        );
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.shares"))
                .unwrap()
                .trim(),
            "1024",
            "request 1 core"
        );
        let mem = cgroup_dir("memory", &rel);
        assert_eq!(
            std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            (10u64 << 30).to_string()
        );
    }
}

#[test]
fn image_pull_policy_never_without_the_image_waits_with_err_image_never_pull() {
    let w = World::empty_store("pull-never");
    w.up_ok(&seed("pod-imagepullpolicy-never.yaml"));
    // The seed file names its pod pod-imagepullpolicy.
    let (_, status, _) = w.wait_status("dev", "pod-imagepullpolicy", "ErrImageNeverPull", 20);
    assert_eq!(status, "ErrImageNeverPull");
    let d = w.describe("dev", "pod-imagepullpolicy");
    assert!(
        d.contains("Container image \"nginx:1.17.1\" is not present with pull policy of Never"),
        "{d}"
    );
}

#[test]
fn image_pull_policy_if_not_present_pulls_once_then_uses_the_local_image() {
    let tmp = image_support::TempDir::new("pull-ifnotpresent");
    let reg = image_support::Registry::start(tmp.path());
    let busybox = image_support::fixture("busybox");
    let nginx = image_support::fixture("nginx");
    reg.push(&busybox, "1.30", "library/busybox:1.30");
    reg.push(&nginx, "1.17.1", "library/nginx:1.17.1");
    let mut w = World::empty_store("pull-ifnotpresent");
    let cfg = tmp.path().join("registries.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"mirrors": {{"docker.io": ["http://{}"]}}, "mirrorOnly": ["docker.io"], "insecure": ["{}"]}}"#,
            reg.host(),
            reg.host()
        ),
    )
    .unwrap();
    w.extra_env
        .push(("PODRUN_REGISTRIES_CONFIG".into(), cfg.display().to_string()));
    w.up_ok(&seed("pod-imagepullpolicy.yaml"));
    w.wait_status("dev", "pod-imagepullpolicy", "Running", 60);
    let d = w.describe("dev", "pod-imagepullpolicy");
    assert!(d.contains("Pulling image \"nginx:1.17.1\""), "{d}");
    assert!(
        d.contains("Successfully pulled image \"nginx:1.17.1\""),
        "{d}"
    );
    w.ok(&[
        "delete",
        "pod",
        "pod-imagepullpolicy",
        "-n",
        "dev",
        "--grace-period",
        "1",
    ]);
    w.up_ok(&seed("pod-imagepullpolicy.yaml"));
    w.wait_status("dev", "pod-imagepullpolicy", "Running", 30);
    let d = w.describe("dev", "pod-imagepullpolicy");
    assert!(
        d.contains("Container image \"nginx:1.17.1\" already present on machine"),
        "{d}"
    );
    assert!(
        !d.contains("Pulling image"),
        "second run must not pull: {d}"
    );
}

/// rootfs-fixtures/registry.sh for one test: started on DATA, stopped (by its pid) on drop.
struct FixtureRegistry(std::path::PathBuf);

impl FixtureRegistry {
    fn start(data: &std::path::Path) -> FixtureRegistry {
        let script = image_support::root().join("rootfs-fixtures/registry.sh");
        let o = std::process::Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(data)
            .output()
            .unwrap();
        assert!(o.status.success(), "registry.sh start: {}", text(&o.stderr));
        FixtureRegistry(data.to_path_buf())
    }
}

impl Drop for FixtureRegistry {
    fn drop(&mut self) {
        let script = image_support::root().join("rootfs-fixtures/registry.sh");
        let _ = std::process::Command::new("bash")
            .arg(&script)
            .arg("stop")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn two_containers_share_a_host_path_and_the_writer_completes() {
    let tmp = image_support::TempDir::new("two-containers");
    // The seed's `image: nginx` and `image: debian` are nginx:latest and debian:latest,
    // pulled from the fixture registry exactly as the README's users serve them.
    image_support::fixture("nginx");
    image_support::fixture("debian");
    let regdata = tmp.path().join("registry");
    std::fs::create_dir_all(&regdata).unwrap();
    let _reg = FixtureRegistry::start(&regdata);
    let cfg = regdata.join("registries.json");
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    assert!(cfg_text.contains("mirrorOnly"), "{cfg_text}");
    let mut w = World::empty_store("two-containers");
    w.extra_env
        .push(("PODRUN_REGISTRIES_CONFIG".into(), cfg.display().to_string()));
    // The seed mounts the host's /data; a test keeps to its own directory.
    let data = tmp.path().join("data");
    let manifest =
        seed("two-containers.yaml").replace("path: /data", &format!("path: {}", data.display()));
    w.up_ok(&manifest);
    let pod = w.wait_for(120, "debian-container Completed", || {
        let p = w.pod("default", "two-containers");
        let done = p["status"]["containerStatuses"]
            .as_array()?
            .iter()
            .any(|s| {
                s["name"] == "debian-container" && s["state"]["terminated"]["reason"] == "Completed"
            });
        done.then_some(p)
    });
    let nginx = pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nginx-container")
        .cloned()
        .unwrap();
    assert!(
        nginx["state"]["running"].is_object(),
        "nginx stays Running: {nginx}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("index.html"))
            .unwrap()
            .trim(),
        "Hello from the debian container"
    );
    let served = w.ok(&[
        "exec",
        "two-containers",
        "-c",
        "nginx-container",
        "--",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1/",
    ]);
    assert_eq!(served.trim(), "Hello from the debian container");
    let d = w.describe("default", "two-containers");
    assert!(d.contains("Successfully pulled image \"nginx\""), "{d}");
    let (ready, _, _) = w.columns("default", "two-containers");
    assert_eq!(ready, "1/2");
}

#[test]
fn invalid_manifests_are_refused_with_field_paths_and_leave_nothing() {
    let w = World::new("invalid");
    let cases = [
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n", "spec.containers[0].image: Required value"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n  - name: c\n    image: busybox:1.30\n",
            "spec.containers[1].name: Duplicate value: \"c\"",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n    volumeMounts:\n    - name: nope\n      mountPath: /x\n",
            "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n    resources:\n      limits:\n        memory: 10Gb\n",
            "quantities must match the regular expression",
        ),
    ];
    for (yaml, msg) in cases {
        let o = w.up(yaml);
        assert!(!o.status.success(), "must fail: {yaml}");
        let err = text(&o.stderr);
        assert!(err.contains(msg), "expected {msg:?} in {err:?}");
    }
    let pods = std::fs::read_dir(w.root.join("pods"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(pods <= 1, "no pod recorded (only the lock file may exist)");
    assert!(w.ok(&["get", "pods", "-A"]).trim().is_empty());
}

#[test]
fn a_second_up_of_the_same_pod_is_already_exists() {
    let w = World::new("exists");
    w.up_ok(&seed("pod-env.yaml"));
    let o = w.up(&seed("pod-env.yaml"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("Error from server (AlreadyExists)"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("pods \"pod-env\" already exists"));
}

#[test]
fn delete_leaves_no_process_mount_cgroup_or_state() {
    let w = World::new("leaks");
    w.up_ok(&seed("pod-command.yaml"));
    w.wait_status("dev", "pod-command", "Running", 30);
    let pod = w.pod("dev", "pod-command");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let ids = [container_id(&pod, "nginx"), container_id(&pod, "busybox")];
    assert!(
        !processes_in_cgroup(&uid).is_empty(),
        "pod processes live in the pod cgroup"
    );
    let out = w.ok(&[
        "delete",
        "pod",
        "pod-command",
        "-n",
        "dev",
        "--grace-period",
        "2",
    ]);
    assert!(out.contains("pod \"pod-command\" deleted"));
    assert!(processes_in_cgroup(&uid).is_empty(), "no process left");
    for id in &ids {
        assert!(mounts_containing(id).is_empty(), "no mount of {id} left");
        assert!(
            !w.data.join("containers").join(id).exists(),
            "overlay dirs of {id} removed"
        );
    }
    assert!(
        mounts_containing(&w.root.display().to_string()).is_empty(),
        "no mount under the state root"
    );
    for ctrl in ["memory", "cpu", "pids"] {
        let d = cgroup_dir(ctrl, &format!("kubepods/besteffort/pod{uid}"));
        assert!(!d.exists(), "cgroup {} removed", d.display());
    }
    assert!(
        !w.root.join("pods/dev_pod-command").exists(),
        "state removed"
    );
    assert!(
        std::fs::read_dir(w.root.join("containers"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "no OCI state left"
    );
    let o = w.run(&["get", "pod", "pod-command", "-n", "dev"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("Error from server (NotFound): pods \"pod-command\" not found")
    );
}

#[test]
fn get_and_describe_print_kubectl_layouts() {
    let w = World::new("print");
    w.up_ok(&seed("pod-env.yaml"));
    w.wait_status("dev", "pod-env", "Running", 30);
    let table = w.ok(&["get", "pods", "-n", "dev"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let wide = w.ok(&["get", "pods", "-n", "dev", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("NOMINATED NODE"));
    assert_eq!(
        w.ok(&["get", "pods", "-n", "dev", "-o", "name"]).trim(),
        "pod/pod-env"
    );
    let yaml = w.ok(&["get", "pod", "pod-env", "-n", "dev", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Pod")
            && yaml.contains("phase: Running")
            && yaml.contains("qosClass: BestEffort"),
        "{yaml}"
    );
    let d = w.describe("dev", "pod-env");
    for needle in [
        "Name:",
        "Namespace:",
        "dev",
        "Status:",
        "Running",
        "Containers:",
        "busybox:",
        "State:",
        "Conditions:",
        "Events:",
        "Started container busybox",
        "Created container busybox",
        "username:",
        "admin",
    ] {
        assert!(d.contains(needle), "describe lacks {needle:?}:\n{d}");
    }
    let logs = w.ok(&["logs", "pod-env", "-n", "dev"]);
    assert!(
        logs.lines().next().is_some_and(|l| l.len() == 8),
        "the date line: {logs:?}"
    );
}

#[test]
fn container_logs_are_in_cri_format() {
    let w = World::new("crilog");
    w.up_ok(&seed("pod-env.yaml"));
    w.wait_status("dev", "pod-env", "Running", 30);
    let pod = w.pod("dev", "pod-env");
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let file = w.logs.join(format!("dev_pod-env_{uid}/busybox/0.log"));
    let content = w.wait_for(10, "a log line", || {
        std::fs::read_to_string(&file)
            .ok()
            .filter(|c| !c.is_empty())
    });
    let line = content.lines().next().unwrap();
    let parts: Vec<&str> = line.splitn(4, ' ').collect();
    assert!(
        parts[0].contains('T') && parts[0].ends_with('Z'),
        "RFC 3339 time: {line}"
    );
    assert_eq!(parts[1], "stdout");
    assert_eq!(parts[2], "F");
}
