//! Security on the OCI CLI path, checked from inside containers: config.json seccomp
//! (mode 2, blocked syscalls, exec inherits it), no leaked host fds, the runtime binary
//! out of reach (CVE-2019-5736), /proc over a symlink refused, mounts confined to the
//! rootfs.
mod oci_support;
use oci_support::*;
use serde_json::json;
use std::process::Command;

fn deny_mkdir() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ]
    })
}

#[test]
fn config_seccomp_blocks_listed_syscalls_with_and_without_no_new_privs() {
    let env = Env::new();
    for nnp in [true, false] {
        env.edit_config(|c| {
            c["linux"]["seccomp"] = deny_mkdir();
            c["process"]["noNewPrivileges"] = nnp.into();
        });
        let out = env.sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; \
             mkdir /dev/x 2>&1 || echo mkdir-failed; ln -s a /dev/l 2>&1 || echo ln-failed; \
             touch /dev/file && echo touch-ok");
        assert!(out.contains("Seccomp:\t2"), "nnp={nnp}: {out}");
        assert!(
            out.contains(&format!("NoNewPrivs:\t{}", nnp as u8)),
            "nnp={nnp}: {out}"
        );
        assert!(out.contains("Operation not permitted"), "nnp={nnp}: {out}");
        assert!(out.contains("mkdir-failed"), "nnp={nnp}: {out}");
        // errnoRet is honoured (ENOSYS for symlink).
        assert!(out.contains("Function not implemented"), "nnp={nnp}: {out}");
        assert!(out.contains("ln-failed"), "nnp={nnp}: {out}");
        assert!(out.contains("touch-ok"), "nnp={nnp}: {out}");
    }
}

#[test]
fn without_seccomp_the_container_is_unconfined() {
    let env = Env::new();
    let out = env.sh("grep '^Seccomp:' /proc/self/status");
    assert!(out.contains("Seccomp:\t0"), "{out}");
}

#[test]
fn invalid_seccomp_fails_create_and_leaves_nothing() {
    let env = Env::new();
    env.edit_config(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]});
    });
    let id = unique("badsec");
    let out = env.create(&id);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("linux.seccomp.syscalls[0].action"), "{err}");
    assert!(!env.container_dir(&id).exists());
}

#[test]
fn exec_gets_the_containers_seccomp_filter() {
    let env = Env::new();
    env.edit_config(|c| {
        c["linux"]["seccomp"] = deny_mkdir();
        c["process"]["noNewPrivileges"] = true.into();
    });
    env.set_args(&["sleep", "60"]);
    let id = unique("secexec");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.podrun(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; mkdir /tmp/y || echo mkdir-failed",
    ]);
    let o = stdout(&out);
    assert!(o.contains("Seccomp:\t2"), "{o} {}", stderr(&out));
    assert!(o.contains("NoNewPrivs:\t1"), "{o}");
    assert!(o.contains("mkdir-failed"), "{o}");
    let init_eff = std::fs::read_to_string(format!(
        "/proc/{}/status",
        env.state(&id)["pid"].as_i64().unwrap()
    ))
    .unwrap()
    .lines()
    .find(|l| l.starts_with("CapEff:"))
    .unwrap()
    .to_string();
    assert!(o.contains(&init_eff), "exec {o} vs init {init_eff}");
}

#[test]
fn host_file_descriptors_do_not_leak_into_the_container() {
    let env = Env::new();
    env.set_args(&["sh", "-c", "ls -l /proc/self/fd/ | grep -- '->' "]);
    let id = unique("fds");
    // fd 7 and 9 are open (not CLOEXEC) in the process that calls podrun.
    let script = format!(
        "exec 7</etc/hostname 9</etc/passwd; exec {} --root {} run --bundle {} {}",
        PODRUN,
        env.root.display(),
        env.bundle.display(),
        id
    );
    let mut c = Command::new("bash");
    c.args(["-c", &script]);
    let out = run_to_files(c, &env.dir);
    let o = stdout(&out);
    assert!(out.status.success(), "{o} {}", stderr(&out));
    // ls itself holds one fd on /proc/self/fd; only stdio and that one remain.
    let fds: Vec<&str> = o.lines().collect();
    assert!(fds.len() <= 4, "{o}");
    assert!(
        !o.contains("/etc/hostname") && !o.contains("/etc/passwd"),
        "{o}"
    );
    assert!(!o.contains(" 7 ->") && !o.contains(" 9 ->"), "{o}");
}

#[test]
fn a_container_cannot_open_the_runtime_binary_of_a_waiting_init() {
    // Container A runs; container B joins A's pid namespace and waits in `created`:
    // B's init is still the podrun binary, visible to A as a process. A must not be able
    // to open its /proc/<pid>/exe (the CVE-2019-5736 overwrite handle).
    let env = Env::new();
    env.set_args(&["sleep", "60"]);
    let a = unique("victim-a");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a_pid = env.state(&a)["pid"].as_i64().unwrap();
    env.edit_config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        for n in ns.iter_mut() {
            if n["type"] == "pid" {
                n["path"] = format!("/proc/{a_pid}/ns/pid").into();
            }
        }
    });
    let b = unique("waiting-b");
    let out = env.create(&b);
    assert!(out.status.success(), "{}", stderr(&out));
    let b_pid = env.state(&b)["pid"].as_i64().unwrap();
    let host_exe = std::fs::read_link(format!("/proc/{b_pid}/exe")).unwrap();
    assert!(
        host_exe.to_string_lossy().contains("podrun"),
        "B's init should still be podrun: {host_exe:?}"
    );
    // From A: every process's exe that is not busybox, try to open it.
    let out = env.podrun(&[
        "exec",
        &a,
        "sh",
        "-c",
        "bb=$(wc -c < /bin/busybox); n=0; for p in /proc/[0-9]*; do \
           s=$(wc -c < $p/exe 2>/dev/null) || { echo denied $p; continue; }; \
           [ \"$s\" != \"$bb\" ] && echo OPENED $p $s; n=$((n+1)); done; echo seen $n",
    ]);
    let o = stdout(&out);
    assert!(
        !o.contains("OPENED"),
        "runtime binary readable from the container: {o}"
    );
    assert!(o.contains("denied"), "B's init not seen from A: {o}");
}

#[test]
fn proc_mounted_over_a_symlink_is_refused() {
    let env = Env::new();
    let rootfs = env.bundle.join("rootfs");
    let _ = std::fs::remove_dir_all(rootfs.join("proc"));
    let _ = std::fs::remove_file(rootfs.join("proc"));
    std::fs::create_dir_all(rootfs.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("/elsewhere", rootfs.join("proc")).unwrap();
    let id = unique("procsym");
    let out = env.create(&id);
    assert!(
        !out.status.success(),
        "create over /proc -> /elsewhere succeeded"
    );
    let err = stderr(&out);
    assert!(err.contains("symlink"), "{err}");
    assert!(!env.container_dir(&id).exists());
}

#[test]
fn a_mount_target_symlink_pointing_out_of_the_rootfs_stays_inside() {
    let env = Env::new();
    let rootfs = env.bundle.join("rootfs");
    // The host directory the image's symlink names.
    let outside = env.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, rootfs.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", rootfs.join("up")).unwrap();
    let src = env.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "m").unwrap();
    env.edit_config(|c| {
        let ms = c["mounts"].as_array_mut().unwrap();
        for dest in ["/escape/m", "/up/tmp/m2"] {
            ms.push(json!({"destination": dest, "type": "bind",
                "source": src.to_str().unwrap(), "options": ["rbind", "ro"]}));
        }
    });
    env.set_args(&["sh", "-c", "sleep 30"]);
    let id = unique("mntsym");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing appeared on the host side of the symlinks...
    assert!(
        !outside.join("m").exists(),
        "mount escaped to {}",
        outside.display()
    );
    assert!(host_mounts_with(outside.to_str().unwrap()).is_empty());
    // ...the mounts are inside the container's rootfs.
    let o = stdout(&env.podrun(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /escape/m/marker; echo; cat /tmp/m2/marker",
    ]));
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["m", "m"], "{o}");
}
