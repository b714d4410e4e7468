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

/// Locks `path` through an fd that [`pass_fd`] hands to one child, as `flock FILE cmd`
/// hands its lock to `cmd` (close-on-exec otherwise: the other tests' children running
/// meanwhile must not inherit it).
fn inheritable_lock(path: &std::path::Path) -> std::os::fd::OwnedFd {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) }, 0);
    fd
}

/// Makes `cmd`'s process inherit `fd`.
fn pass_fd(cmd: &mut Command, fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = fd.as_raw_fd();
    // SAFETY: only fcntl (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::fcntl(raw, libc::F_SETFD, 0);
            Ok(())
        });
    }
}

/// Whether another open of `path` can take the lock now.
fn lock_is_free(path: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

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
    // The caller holds a lock while it runs `create`; once `create` has returned and
    // the caller let go, the waiting init must not keep the lock.
    let held = inheritable_lock(&lock);
    let mut cmd = env.cmd(&["create", "--bundle", env.bundle.to_str().unwrap(), &id]);
    pass_fd(&mut cmd, &held);
    let out = oci_support::run_to_files(cmd, &env.dir);
    drop(held);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.status(&id), "created");
    assert!(
        lock_is_free(&lock),
        "the created container still holds the lock"
    );
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
    // LISTEN_PID names the process that gets the fds: sh execs into podrun, same pid.
    let script = format!(
        "exec 3<{sock}; export LISTEN_FDS=1 LISTEN_PID=$$; exec {PODRUN} --root {root} run --bundle {bundle} {id}",
        sock = sock.display(),
        root = env.root.display(),
        bundle = env.bundle.display(),
    );
    let mut c = Command::new("sh");
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
    // As `flock LOCK podrun up`: the lock's fd is inherited by podrun and by anything
    // podrun leaves behind. It must be free as soon as `up` has returned.
    let held = inheritable_lock(&lock);
    let mut cmd = w.cmd();
    cmd.args(["up", "-f", manifest.to_str().unwrap()]);
    pass_fd(&mut cmd, &held);
    let out = cmd.output().unwrap();
    drop(held);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        lock_is_free(&lock),
        "the lock is still held after up returned"
    );
    w.wait_status("default", "locked", "Running", 60);
}
