//! A container's process starts clean and the runtime keeps only what it means to pass:
//! default signal dispositions and an empty mask (in containers, exec'd processes and
//! exec probes), none of the caller's fds in a supervisor or a created container,
//! socket activation fds passed as runc passes them, and config fields the host cannot
//! honour (host-wide sysctls, LSM labels) refused with runc's words, leaving nothing.
mod oci_support;
mod pod_support;
use oci_support::{stderr, stdout, unique, Env, PODRUN};
use pod_support::{text, World};

/// Pods here use busybox imported from the host and no network, so this file also runs
/// in the cgroup v2 VM.
fn world(tag: &str) -> World {
    let mut w = World::with_imported_busybox(tag, oci_support::make_busybox_rootfs);
    w.extra_env.push(("PODRUN_NETWORK".into(), "none".into()));
    w
}
use std::process::Command;

/// A program that prints its own `SigIgn`/`SigBlk` (run directly, not by a shell: busybox
/// sh ignores SIGQUIT itself and runs grep inside its own process).
const SIGNALS_OF_SELF: &[&str] = &["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"];
/// Ends at once only when SIGPIPE kills `yes` (runc's behaviour); 143 when it hangs.
const YES_HEAD: &str = "timeout 10 sh -c 'yes | head -1 >/dev/null'; echo yes-rc=$?";

fn assert_clean_signals(out: &str) {
    assert!(out.contains("SigIgn:\t0000000000000000"), "{out}");
    assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
}

#[test]
fn oci_container_and_exec_start_with_default_signals_and_an_empty_mask() {
    let env = Env::new();
    env.set_args(SIGNALS_OF_SELF);
    let (code, out, err) = env.run(&unique("sig"));
    assert_eq!(code, 0, "{err}");
    assert_clean_signals(&out);
    assert!(env.sh(YES_HEAD).contains("yes-rc=0"), "yes | head -1 hung");
    env.set_args(&["sleep", "60"]);
    let id = unique("sig");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = vec!["exec", id.as_str()];
    args.extend_from_slice(SIGNALS_OF_SELF);
    let out = env.podrun(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean_signals(&stdout(&out));
}

#[test]
fn a_created_container_does_not_hold_the_callers_fds() {
    let env = Env::new();
    env.set_args(&["true"]);
    let id = unique("fdlock");
    let lock = env.dir.join("lock");
    // The caller holds a lock on fd 7 while it runs `create`; once `create` has
    // returned, the waiting init must not keep the lock.
    let script = format!(
        "exec 7>{lock}; flock 7; {PODRUN} --root {root} create --bundle {bundle} {id} </dev/null >/dev/null 2>&1 || exit 9",
        lock = lock.display(),
        root = env.root.display(),
        bundle = env.bundle.display(),
    );
    let st = Command::new("bash").args(["-c", &script]).status().unwrap();
    assert!(st.success(), "create failed: {st:?}");
    assert_eq!(env.status(&id), "created");
    let free = Command::new("flock")
        .args(["-n", lock.to_str().unwrap(), "true"])
        .status()
        .unwrap();
    assert!(free.success(), "the created container still holds the lock");
    let out = env.podrun(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn socket_activation_fds_are_passed_with_listen_fds_and_listen_pid() {
    let env = Env::new();
    env.set_args(&[
        "sh",
        "-c",
        "echo fds=$LISTEN_FDS pid=$LISTEN_PID; cat <&3; ls /proc/self/fd | tr '\\n' ' '",
    ]);
    let id = unique("listen");
    let sock = env.dir.join("sock-standin");
    std::fs::write(&sock, "from-fd-3\n").unwrap();
    // LISTEN_PID names the process that gets the fds: bash execs into podrun, same pid.
    let script = format!(
        "exec 3<{sock}; export LISTEN_FDS=1 LISTEN_PID=$$; exec {PODRUN} --root {root} run --bundle {bundle} {id}",
        sock = sock.display(),
        root = env.root.display(),
        bundle = env.bundle.display(),
    );
    let mut c = Command::new("bash");
    c.args(["-c", &script]);
    let out = oci_support::run_to_files(c, &env.dir);
    let o = stdout(&out);
    assert!(out.status.success(), "{o} {}", stderr(&out));
    assert!(o.contains("fds=1 pid=1"), "{o}");
    assert!(o.contains("from-fd-3"), "{o}");
}

/// Runs the bundle and expects a refusal naming `field` with `msg`, and nothing left.
fn assert_refused(env: &Env, field: &str, msg: &str) {
    let id = unique("refuse");
    let (code, out, err) = env.run(&id);
    assert_ne!(code, 0, "ran: {out}");
    assert!(err.contains(&format!("{field}: {msg}")), "{err}");
    assert!(!env.container_dir(&id).exists(), "state left behind");
}

#[test]
fn host_wide_sysctls_are_refused_before_the_container_runs() {
    let env = Env::new();
    env.set_args(&["true"]);
    env.edit_config(|c| c["linux"]["sysctl"] = serde_json::json!({"vm.drop_caches": "1"}));
    assert_refused(
        &env,
        "linux.sysctl.vm.drop_caches",
        "sysctl \"vm.drop_caches\" is not in a separate kernel namespace",
    );
    // net.* with the host's network namespace (no network namespace in the config).
    env.edit_config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
    });
    assert_refused(
        &env,
        "linux.sysctl.net.ipv4.ip_forward",
        "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace",
    );
}

#[test]
fn namespaced_sysctls_are_set_inside_the_container() {
    let env = Env::new();
    env.edit_config(|c| {
        c["linux"]["sysctl"] = serde_json::json!({
            "kernel.shm_rmid_forced": "1",
            "net/ipv4/ip_forward": "1",
            "kernel.domainname": "example.test"
        })
    });
    let out = env.sh("cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1", "1", "example.test"]
    );
}

#[test]
fn lsm_labels_the_host_cannot_honour_are_refused() {
    let env = Env::new();
    env.set_args(&["true"]);
    if !std::path::Path::new("/sys/kernel/security/apparmor").exists() {
        env.edit_config(|c| c["process"]["apparmorProfile"] = "docker-default".into());
        assert_refused(
            &env,
            "process.apparmorProfile",
            "apparmor profile \"docker-default\" is specified in config, but apparmor is disabled or not supported",
        );
        env.edit_config(|c| c["process"]["apparmorProfile"] = "".into());
    }
    if !std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        let msg = "selinux label is specified in config, but selinux is disabled or not supported";
        env.edit_config(|c| {
            c["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into()
        });
        assert_refused(&env, "process.selinuxLabel", msg);
        env.edit_config(|c| {
            c["process"]["selinuxLabel"] = "".into();
            c["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0".into();
        });
        assert_refused(&env, "linux.mountLabel", msg);
    }
}

const SIGNAL_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sigs\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: check\n    image: devtest/busybox:1\n    imagePullPolicy: Never\n    command: [grep, -E, '^Sig(Ign|Blk):', /proc/self/status]\n  - name: main\n    image: devtest/busybox:1\n    imagePullPolicy: Never\n    command: [sh, -c, \"YES; echo DONE; sleep 3600\"]\n    livenessProbe:\n      exec:\n        command: [cp, /proc/self/status, /tmp/probe]\n      periodSeconds: 1\n";

#[test]
fn pod_containers_exec_and_probes_start_with_default_signals() {
    let w = world("sec-sigs");
    w.up_ok(&SIGNAL_POD.replace("YES", YES_HEAD));
    let logs = w.wait_for(60, "DONE", || {
        let t = text(&w.run(&["logs", "sigs", "-c", "main"]).stdout);
        t.contains("DONE").then_some(t)
    });
    assert!(logs.contains("yes-rc=0"), "yes | head -1 hung: {logs}");
    assert_clean_signals(&text(&w.run(&["logs", "sigs", "-c", "check"]).stdout));
    let mut args = vec!["exec", "sigs", "-c", "main", "--"];
    args.extend_from_slice(SIGNALS_OF_SELF);
    assert_clean_signals(&w.ok(&args));
    let probe = w.wait_for(60, "the probe's output", || {
        let o = w.run(&["exec", "sigs", "-c", "main", "--", "cat", "/tmp/probe"]);
        let t = text(&o.stdout);
        (o.status.success() && t.contains("SigBlk")).then_some(t)
    });
    assert_clean_signals(&probe);
}

#[test]
fn a_lock_held_by_the_caller_of_up_is_released_when_up_returns() {
    let w = world("sec-flock");
    let dir = w.root.parent().unwrap().to_path_buf();
    let lock = dir.join("lock");
    let manifest = dir.join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: locked\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: devtest/busybox:1\n    imagePullPolicy: Never\n    command: [\"sleep\", \"3600\"]\n",
    )
    .unwrap();
    // `flock LOCK podrun up`: flock's fd is podrun's fd 3, inherited by anything podrun
    // leaves behind. The lock must be free as soon as `up` has returned.
    let mut c = Command::new("flock");
    c.arg(&lock)
        .arg(PODRUN)
        .args(["up", "-f", manifest.to_str().unwrap()]);
    for (k, v) in w.cmd().get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let free = Command::new("flock")
        .args(["-n", lock.to_str().unwrap(), "true"])
        .status()
        .unwrap();
    assert!(free.success(), "the lock is still held after up returned");
    w.wait_status("default", "locked", "Running", 60);
}
