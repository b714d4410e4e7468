//! What config.json asks for, checked from inside the container: namespaces, hostname,
//! mounts, /dev, user, capabilities, rlimits, masked/readonly paths, sysctl, hooks,
//! console socket, cgroups, exec.
mod oci_support;
use oci_support::*;
use serde_json::json;

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in {status}"))
        .trim()
        .to_string()
}

#[test]
fn default_spec_gives_runc_capabilities_and_security_settings() {
    let env = Env::new();
    let s = env.sh("cat /proc/self/status; echo oom=$(cat /proc/self/oom_score_adj)");
    // CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
    for key in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(status_field(&s, key), "0000000020000420", "{key}");
    }
    assert_eq!(status_field(&s, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&s, "NoNewPrivs"), "1");
    assert_eq!(status_field(&s, "Uid"), "0\t0\t0\t0");
}

#[test]
fn all_five_capability_sets_user_groups_umask_and_rlimits() {
    let env = Env::new();
    env.edit_config(|c| {
        let caps = json!(["CAP_CHOWN", "CAP_NET_RAW"]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
            "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps
        });
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 23});
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
        ]);
        c["process"]["noNewPrivileges"] = false.into();
        c["process"]["oomScoreAdj"] = 423.into();
    });
    let s = env.sh("cat /proc/self/status; umask; cat /proc/self/limits; echo oom=$(cat /proc/self/oom_score_adj)");
    // CAP_CHOWN (0) | CAP_NET_RAW (13); bounding adds CAP_SYS_ADMIN (21).
    assert_eq!(status_field(&s, "CapBnd"), "0000000000202001");
    for key in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(status_field(&s, key), "0000000000002001", "{key}");
    }
    assert_eq!(status_field(&s, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&s, "Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field(&s, "Groups"), "5 7");
    assert_eq!(status_field(&s, "NoNewPrivs"), "0");
    assert!(s.contains("\n0027\n"), "umask: {s}");
    let lim = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        lim("Max open files").contains("512 768"),
        "{}",
        lim("Max open files")
    );
    assert!(lim("Max processes").contains("300 400"));
    assert!(s.contains("oom=423"));
}

#[test]
fn hostname_domainname_env_cwd_and_namespaces() {
    let env = Env::new();
    env.edit_config(|c| {
        c["hostname"] = "box1".into();
        c["domainname"] = "example.test".into();
        c["process"]["env"] = json!(["PATH=/bin", "GREETING=hello world"]);
        c["process"]["cwd"] = "/tmp".into();
    });
    let s = env.sh("hostname; cat /proc/sys/kernel/domainname; echo \"$GREETING\"; pwd; echo pid=$$; ls /sys/class/net; for n in net ipc uts pid mnt; do readlink /proc/self/ns/$n; done");
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        &lines[..4],
        &["box1", "example.test", "hello world", "/tmp"]
    );
    assert!(s.contains("pid=1\n"), "{s}");
    assert!(
        s.contains("\nlo\n") && !s.contains("eth0"),
        "only loopback in a new netns: {s}"
    );
    for ns in ["net", "ipc", "uts", "pid", "mnt"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let host = host.to_str().unwrap();
        assert!(s.contains(&format!("{ns}:[")), "{s}");
        assert!(!s.contains(host), "{ns} namespace is the host's");
    }
    assert_ne!(
        nix::unistd::gethostname().unwrap().to_str().unwrap(),
        "box1",
        "host hostname changed"
    );
}

#[test]
fn namespaces_joined_by_path_are_shared() {
    let env = Env::new();
    env.set_args(&["sleep", "1000"]);
    let a = unique("nsa");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    let apid = env.state(&a)["pid"].as_i64().unwrap();
    env.edit_config(|c| {
        c["hostname"] = serde_json::Value::Null;
        c["linux"]["namespaces"] = json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
            {"type": "network", "path": format!("/proc/{apid}/ns/net")},
            {"type": "uts", "path": format!("/proc/{apid}/ns/uts")}
        ]);
    });
    let s =
        env.sh("hostname; for n in net uts ipc; do readlink /proc/self/ns/$n; done; echo pid=$$");
    let want = |ns: &str| {
        std::fs::read_link(format!("/proc/{apid}/ns/{ns}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    assert!(s.starts_with("podrun\n"), "{s}");
    assert!(s.contains(&want("net")) && s.contains(&want("uts")), "{s}");
    assert!(!s.contains(&want("ipc")), "ipc should be new: {s}");
    assert!(s.contains("pid=1\n"));

    // Joining the pid namespace too: the second fork path.
    env.edit_config(|c| {
        c["linux"]["namespaces"][0] =
            json!({"type": "pid", "path": format!("/proc/{apid}/ns/pid")});
    });
    let s = env.sh("ps -o pid,args; readlink /proc/self/ns/pid");
    assert!(
        s.contains("sleep 1000"),
        "sees the other container's init: {s}"
    );
    assert!(s.contains(&want("pid")));
}

#[test]
fn user_namespace_maps_ids() {
    let env = Env::new();
    env.edit_config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        // A cgroup v1 filesystem cannot be mounted from a user namespace (as in runc's
        // rootless spec).
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["type"] != "cgroup");
    });
    let s = env.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; echo x > /dev/null && echo devnull-ok");
    let norm: Vec<String> = s
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(norm[0], "0 200000 65536");
    assert_eq!(norm[1], "0 200000 65536");
    assert_eq!(norm[2], "0");
    assert_eq!(norm[3], "0");
    assert!(s.contains("devnull-ok"));
}

#[test]
fn mounts_dev_masked_and_readonly_paths() {
    let env = Env::new();
    let shared = env.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("hello"), "from host").unwrap();
    env.edit_config(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data", "type": "bind", "source": shared, "options": ["rbind", "ro", "nosuid"]}));
        m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700", "noexec"]}));
        c["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 384}]);
        c["linux"]["sysctl"] = json!({"kernel.shmmax": "12345678", "net.ipv4.ip_forward": "1"});
    });
    let s = env.sh(concat!(
        "cat /proc/self/mountinfo; ",
        "cat /data/hello; echo; ",
        "touch /data/x 2>/dev/null && echo data-writable; ",
        "touch /newfile 2>/dev/null && echo root-writable; ",
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys-writable; ",
        "stat -c 'null %t,%T %F %a' /dev/null; stat -c 'mydev %t,%T %a' /dev/mydev; ",
        "for l in fd stdin ptmx; do readlink /dev/$l; done; ",
        "echo kcore=$(cat /proc/kcore | wc -c); ls /sys/firmware | wc -l; ",
        "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward"
    ));
    let mount = |dest: &str| {
        s.lines()
            .find(|l| l.split(' ').nth(4) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} not mounted: {s}"))
            .to_string()
    };
    assert!(
        mount("/").split(' ').nth(5).unwrap().starts_with("ro"),
        "readonly root"
    );
    let data = mount("/data");
    assert!(data.contains(" ro,nosuid"), "{data}");
    let scratch = mount("/scratch");
    assert!(
        scratch.contains("noexec") && scratch.contains("tmpfs") && scratch.contains("size=1024k"),
        "{scratch}"
    );
    assert!(scratch.contains("mode=700"), "{scratch}");
    assert!(mount("/dev/shm").contains("nosuid,nodev,noexec"));
    assert!(mount("/dev/pts").contains("devpts"));
    assert!(mount("/proc").contains("proc"));
    assert!(mount("/sys").split(' ').nth(5).unwrap().starts_with("ro"));
    assert!(mount("/proc/sys")
        .split(' ')
        .nth(5)
        .unwrap()
        .starts_with("ro"));
    assert!(
        mount("/sys/fs/cgroup").contains("tmpfs") || mount("/sys/fs/cgroup").contains("cgroup2")
    );
    assert!(s.contains("from host"));
    assert!(!s.contains("data-writable"));
    assert!(!s.contains("root-writable"));
    assert!(!s.contains("procsys-writable"));
    assert!(s.contains("null 1,3 character special file 666"), "{s}");
    assert!(s.contains("mydev 1,3 600"), "{s}");
    assert!(
        s.contains("/proc/self/fd\n/proc/self/fd/0\npts/ptmx\n"),
        "{s}"
    );
    assert!(s.contains("kcore=0\n0\n"), "masked paths: {s}");
    assert!(s.contains("12345678\n1\n"), "sysctl: {s}");
    // The host's sysctl is untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax")
            .unwrap()
            .trim(),
        "12345678"
    );
}

#[test]
fn no_pivot_and_preserved_fds() {
    let env = Env::new();
    env.set_args(&["sh", "-c", "echo via-fd3 >&3; hostname"]);
    let out_file = env.dir.join("fd3.txt");
    let f = std::fs::File::create(&out_file).unwrap();
    let id = unique("fds");
    let mut cmd = env.cmd(&[
        "run",
        "--no-pivot",
        "--preserve-fds",
        "1",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = f.as_raw_fd();
    // SAFETY: dup2 in the child before exec, onto fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_to_files(cmd, &env.dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "podrun\n");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "via-fd3\n");
}

#[test]
fn only_stdio_reaches_the_container_process() {
    let env = Env::new();
    let s = env.sh("ls /proc/self/fd");
    // 0, 1, 2 and the fd ls opened on /proc/self/fd itself.
    assert_eq!(s.lines().count(), 4, "{s}");
}

#[test]
fn all_six_hooks_run_with_the_state_on_stdin() {
    let env = Env::new();
    let out = env.dir.join("hooks");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.to_str().unwrap().to_string();
    let hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {o}/{name}; echo \"$HOOKVAR\" >> {o}/{name}")],
               "env": [format!("HOOKVAR=env-{name}")], "timeout": 5})
    };
    env.edit_config(|c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "startContainer": [hook("startContainer")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
        // The same path inside the container, for startContainer (which runs there).
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": o, "type": "bind", "source": o, "options": ["bind"]}));
        c["process"]["args"] = json!(["true"]);
    });
    let id = unique("hooks");
    let (code, _, err) = env.run(&id);
    assert_eq!(code, 0, "{err}");
    for name in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let text = std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|_| panic!("hook {name} did not run"));
        let (json_part, env_part) = text.split_at(text.rfind('}').unwrap() + 1);
        let st: serde_json::Value = serde_json::from_str(json_part).unwrap();
        assert_eq!(st["id"], id.as_str(), "{name}");
        assert_eq!(st["bundle"], env.bundle.to_str().unwrap(), "{name}");
        assert_eq!(env_part.trim(), format!("env-{name}"));
        if name != "poststop" {
            assert!(st["pid"].as_i64().unwrap() > 0, "{name}: {st}");
        }
    }
}

#[test]
fn a_failing_or_slow_hook_fails_create_and_leaves_nothing() {
    let env = Env::new();
    env.edit_config(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]});
    });
    let id = unique("slowhook");
    let t = std::time::Instant::now();
    let out = env.create(&id);
    assert!(!out.status.success());
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert!(stderr(&out).contains("createRuntime"), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(!env.container_dir(&id).exists());
    assert!(cgroup_dirs(&format!("/podrun/{id}")).is_empty());

    env.edit_config(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    });
    let id = unique("badhook");
    let out = env.create(&id);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("prestart hook /bin/false"),
        "{}",
        stderr(&out)
    );
    assert!(!env.container_dir(&id).exists());
}

#[test]
fn console_socket_receives_a_pty_master() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let env = Env::new();
    env.edit_config(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["args"] = json!(["sh", "-c", "tty; stty size"]);
        c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    });
    let sock_path = env.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let id = unique("tty");
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: freshly received fd, owned by us.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("no fd received");
    });
    let out = env.podrun(&[
        "create",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let master = receiver.join().unwrap();
    assert!(env.podrun(&["start", &id]).status.success());
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 256];
    // Read until the slave side closes (EIO).
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("33 101"), "{text:?}");
}

#[test]
fn exec_joins_the_container() {
    let env = Env::new();
    env.edit_config(|c| {
        c["hostname"] = "exechost".into();
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["process"]["env"] = json!(["PATH=/bin", "BASE=1"]);
    });
    let id = unique("exec");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();

    let out = env.podrun(&[
        "exec", "--env", "EXTRA=2", "--cwd", "/tmp", &id, "sh", "-c",
        "hostname; echo $BASE$EXTRA; pwd; echo pid=$$; for n in mnt net pid; do readlink /proc/self/ns/$n; done; grep -E 'CapEff|NoNewPrivs' /proc/self/status; cat /proc/self/cgroup",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(s.starts_with("exechost\n12\n/tmp\n"), "{s}");
    assert!(!s.contains("pid=1\n") && s.contains("pid="));
    for ns in ["mnt", "net", "pid"] {
        let want = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert!(s.contains(want.to_str().unwrap()), "{ns}: {s}");
    }
    assert!(
        s.contains("0000000020000420") && s.contains("NoNewPrivs:\t1"),
        "{s}"
    );
    let out = env.podrun(&["exec", "--user", "1000:1000", &id, "id"]);
    assert!(
        stdout(&out).starts_with("uid=1000 gid=1000"),
        "{}",
        stderr(&out)
    );
    let out = env.podrun(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));

    let process = env.dir.join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({"args": ["sh", "-c", "echo from-json $V"], "env": ["V=v1", "PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}})).unwrap(),
    )
    .unwrap();
    let out = env.podrun(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(stdout(&out), "from-json v1\n", "{}", stderr(&out));

    let pidfile = env.dir.join("exec.pid");
    let out = env.podrun(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let epid: i64 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(alive(epid));
    // The exec'd process sits in the container's cgroup (as seen from the host).
    let init_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(init_cg.contains(&format!("/podrun/{id}")), "{init_cg}");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{epid}/cgroup")).unwrap(),
        init_cg
    );
    let pids: Vec<i64> =
        serde_json::from_slice(&env.podrun(&["ps", "--format", "json", &id]).stdout).unwrap();
    assert!(pids.contains(&epid) && pids.contains(&pid), "{pids:?}");

    let out = env.podrun(&["exec", &id, "/no/such"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such"));

    // delete --force ends every process, removes state and cgroup.
    assert!(env.podrun(&["delete", "--force", &id]).status.success());
    assert!(wait_dead(pid) && wait_dead(epid));
    assert!(!env.container_dir(&id).exists());
    assert!(cgroup_dirs(&format!("/podrun/{id}")).is_empty());
    assert!(host_mounts_with(env.bundle.to_str().unwrap()).is_empty());
}

#[test]
fn cgroup_resources_apply_and_go_away_on_delete() {
    let env = Env::new();
    let cg = format!("/podrun-test/{}", unique("cg"));
    env.edit_config(|c| {
        c["linux"]["cgroupsPath"] = cg.clone().into();
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = json!({"limit": 42});
        c["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
        c["process"]["args"] = json!(["sleep", "1000"]);
    });
    let id = unique("cgc");
    let out = env.podrun(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dirs = cgroup_dirs(&cg);
    assert!(!dirs.is_empty(), "no cgroup dir for {cg}");
    let out = env.podrun(&["exec", &id, "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"]);
    let s = stdout(&out);
    assert!(s.starts_with("67108864\n42\n"), "{s} {}", stderr(&out));
    assert!(env.podrun(&["delete", "--force", &id]).status.success());
    assert!(
        cgroup_dirs(&cg).is_empty(),
        "cgroup left: {:?}",
        cgroup_dirs(&cg)
    );
    // Tidy the parent the test created.
    for d in cgroup_dirs("/podrun-test") {
        let _ = std::fs::remove_dir(d);
    }
}
