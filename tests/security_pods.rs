//! Pod securityContext end to end, checked from inside the containers: capability masks
//! per setting, seccompProfile (RuntimeDefault, Unconfined, Localhost, precedence),
//! masked and read-only /proc, no host PIDs, mount refused, privileged, runAsNonRoot
//! refusal, `exec` with the container's own limits, secrets not shown, state dirs 0700.
mod pod_support;
use pod_support::*;
use std::os::unix::fs::PermissionsExt;

/// Bits of /proc/<pid>/status Cap* lines for capability numbers.
fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c))
}

/// containerd's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
/// NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
const DEFAULT: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

fn status_field(text: &str, field: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .to_string()
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v, 16).unwrap()
}

/// One container of a probe pod: name, securityContext YAML (indented for the
/// container), script. Each prints its findings, then DONE, then sleeps.
struct Probe<'a> {
    name: &'a str,
    sc: &'a str,
    script: &'a str,
}

fn probe_pod(name: &str, pod_sc: &str, probes: &[Probe]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n"
    );
    if !pod_sc.is_empty() {
        y.push_str(&format!("  securityContext:\n{pod_sc}"));
    }
    y.push_str("  containers:\n");
    for p in probes {
        y.push_str(&format!(
            "  - name: {}\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", {:?}]\n",
            p.name,
            format!("{}\necho DONE; sleep 3600", p.script)
        ));
        if !p.sc.is_empty() {
            y.push_str(&format!("    securityContext:\n{}", p.sc));
        }
    }
    y
}

/// Runs the probe pod and returns each container's log once it printed DONE.
fn run_probes(w: &World, name: &str, pod_sc: &str, probes: &[Probe]) -> Vec<String> {
    w.up_ok(&probe_pod(name, pod_sc, probes));
    probes
        .iter()
        .map(|p| {
            w.wait_for(60, &format!("{name}/{} DONE", p.name), || {
                let o = w.run(&["logs", name, "-c", p.name]);
                let t = text(&o.stdout);
                t.contains("DONE").then_some(t)
            })
        })
        .collect()
}

const STATUS: &str = "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status";

#[test]
fn capability_masks_follow_each_setting() {
    let w = World::new("sec-caps");
    let logs = run_probes(
        &w,
        "caps",
        "",
        &[
            Probe { name: "default", sc: "", script: STATUS },
            Probe {
                name: "adddrop",
                sc: "      capabilities:\n        add: [\"NET_ADMIN\", \"CAP_SYS_TIME\"]\n        drop: [\"chown\", \"CAP_KILL\"]\n",
                script: STATUS,
            },
            Probe {
                name: "dropall",
                sc: "      capabilities:\n        drop: [\"ALL\"]\n        add: [\"NET_BIND_SERVICE\"]\n",
                script: STATUS,
            },
            Probe {
                name: "addall",
                sc: "      capabilities:\n        add: [\"ALL\"]\n",
                script: STATUS,
            },
            Probe {
                name: "priv",
                sc: "      privileged: true\n",
                script: "grep -E '^(Cap|Seccomp)' /proc/self/status; mkdir -p /tmp/m && mount -t tmpfs t /tmp/m && echo mount-ok; wc -c < /proc/timer_list | grep -qv '^0$' && echo timer-list-visible",
            },
            Probe {
                name: "nonroot",
                sc: "      runAsUser: 1000\n      runAsGroup: 3000\n",
                script: "grep -E '^Cap' /proc/self/status; id",
            },
        ],
    );
    let host_bnd = hex(&status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd",
    ));
    let eff = |i: usize| hex(&status_field(&logs[i], "CapEff"));
    let bnd = |i: usize| hex(&status_field(&logs[i], "CapBnd"));
    assert_eq!(eff(0), mask(DEFAULT), "default: {}", logs[0]);
    assert_eq!(bnd(0), mask(DEFAULT), "default: {}", logs[0]);
    assert_eq!(status_field(&logs[0], "CapInh"), "0000000000000000");
    assert_eq!(status_field(&logs[0], "CapAmb"), "0000000000000000");
    // +NET_ADMIN(12) +SYS_TIME(25) -CHOWN(0) -KILL(5)
    let want = (mask(DEFAULT) | mask(&[12, 25])) & !mask(&[0, 5]);
    assert_eq!(eff(1), want, "add/drop: {}", logs[1]);
    assert_eq!(
        eff(2),
        mask(&[10]),
        "drop ALL add NET_BIND_SERVICE: {}",
        logs[2]
    );
    assert_eq!(eff(3), host_bnd, "add ALL: {}", logs[3]);
    assert_eq!(eff(4), host_bnd, "privileged: {}", logs[4]);
    assert!(
        logs[4].contains("mount-ok"),
        "privileged may mount: {}",
        logs[4]
    );
    assert!(
        logs[4].contains("timer-list-visible"),
        "privileged is unmasked: {}",
        logs[4]
    );
    assert!(logs[4].contains("Seccomp:\t0"), "{}", logs[4]);
    // A non-root user keeps no effective capabilities (bounding set unchanged).
    assert_eq!(eff(5), 0, "runAsUser 1000: {}", logs[5]);
    assert_eq!(bnd(5), mask(DEFAULT), "runAsUser 1000: {}", logs[5]);
    assert!(
        logs[5].contains("uid=1000") && logs[5].contains("gid=3000"),
        "{}",
        logs[5]
    );
}

#[test]
fn default_hardening_masks_proc_hides_host_pids_and_refuses_mount() {
    let w = World::new("sec-hard");
    let logs = run_probes(
        &w,
        "hard",
        "",
        &[Probe {
            name: "c",
            sc: "",
            script: "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
                       [ -e $f ] && echo \"$f $(wc -c < $f)\"; done; \
                     echo acpi=$(ls /proc/acpi 2>/dev/null | wc -l); \
                     echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo sys-writable; \
                     echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable; \
                     touch /sys/x 2>/dev/null && echo sys-rw; \
                     echo pids=$(ls -d /proc/[0-9]* | wc -l); \
                     mkdir -p /tmp/m; mount -t tmpfs t /tmp/m 2>/dev/null && echo mount-ok; \
                     ls /dev | tr '\\n' ' '; echo; grep '^Seccomp' /proc/self/status",
        }],
    );
    let l = &logs[0];
    // Masked files read as empty (those this kernel has: no /proc/kcore here).
    assert!(l.contains("/proc/timer_list 0"), "{l}");
    for masked in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        assert!(
            !l.contains(masked) || l.contains(&format!("{masked} 0")),
            "{masked} readable: {l}"
        );
    }
    assert!(l.contains("acpi=0"), "{l}");
    assert!(!l.contains("sys-writable"), "/proc/sys writable: {l}");
    assert!(!l.contains("sysrq-writable"), "{l}");
    assert!(!l.contains("sys-rw"), "/sys writable: {l}");
    assert!(!l.contains("mount-ok"), "mount allowed: {l}");
    let pids: usize = l
        .lines()
        .find_map(|x| x.strip_prefix("pids="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pids <= 4, "host pids visible ({pids}): {l}");
    // Only the default devices.
    let devs = l.lines().find(|x| x.contains("null")).unwrap();
    for d in devs.split_whitespace() {
        assert!(
            [
                "null",
                "zero",
                "full",
                "random",
                "urandom",
                "tty",
                "console",
                "pts",
                "ptmx",
                "shm",
                "mqueue",
                "fd",
                "stdin",
                "stdout",
                "stderr",
                "core",
                "termination-log"
            ]
            .contains(&d),
            "unexpected device {d}: {devs}"
        );
    }
    // Kubelet's default without a profile is Unconfined.
    assert!(l.contains("Seccomp:\t0"), "{l}");
}

#[test]
fn seccomp_profiles_runtime_default_unconfined_localhost_and_precedence() {
    let w = World::new("sec-seccomp");
    let prof = format!("deny-mkdir-{}.json", std::process::id());
    let dir = w.data.join("seccomp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(&prof),
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let try_it = "grep -E '^(Seccomp|NoNewPrivs)' /proc/self/status; \
                  unshare -U true 2>&1 && echo unshare-ok; \
                  mkdir /tmp/d 2>&1 && echo mkdir-ok; \
                  ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 && echo ping-ok";
    let localhost = format!(
        "      seccompProfile:\n        type: Localhost\n        localhostProfile: {prof}\n"
    );
    let logs = run_probes(
        &w,
        "seccomp",
        "    seccompProfile:\n      type: RuntimeDefault\n",
        &[
            Probe {
                name: "inherits",
                sc: "",
                script: try_it,
            },
            Probe {
                name: "unconfined",
                sc: "      seccompProfile:\n        type: Unconfined\n",
                script: try_it,
            },
            Probe {
                name: "local",
                sc: &localhost,
                script: try_it,
            },
            Probe {
                name: "nnp",
                sc: "      allowPrivilegeEscalation: false\n",
                script: try_it,
            },
            Probe {
                name: "user",
                sc: "      runAsUser: 1000\n",
                script: "echo uid=$(id -u); grep '^Seccomp:' /proc/self/status",
            },
        ],
    );
    // The filter is loaded before the switch to a non-root user, which still works.
    assert!(
        logs[4].contains("uid=1000") && logs[4].contains("Seccomp:\t2"),
        "{}",
        logs[4]
    );
    // RuntimeDefault from the pod: mode 2, unshare blocked even for root, mkdir allowed.
    let l = &logs[0];
    assert!(l.contains("Seccomp:\t2"), "{l}");
    assert!(
        l.contains("Operation not permitted") && !l.contains("unshare-ok"),
        "{l}"
    );
    assert!(l.contains("mkdir-ok"), "{l}");
    assert!(
        l.contains("ping-ok"),
        "RuntimeDefault must allow ordinary work: {l}"
    );
    // Container Unconfined wins over the pod's RuntimeDefault.
    let l = &logs[1];
    assert!(l.contains("Seccomp:\t0"), "{l}");
    assert!(l.contains("unshare-ok"), "{l}");
    // Localhost profile from <data-dir>/seccomp.
    let l = &logs[2];
    assert!(l.contains("Seccomp:\t2"), "{l}");
    assert!(l.contains("unshare-ok"), "{l}");
    assert!(!l.contains("mkdir-ok"), "{l}");
    // no_new_privs and seccomp together.
    let l = &logs[3];
    assert!(
        l.contains("Seccomp:\t2") && l.contains("NoNewPrivs:\t1"),
        "{l}"
    );
    assert!(!l.contains("unshare-ok"), "{l}");

    // exec gets exactly the container's limits.
    for (c, seccomp, nnp) in [("inherits", 2, 0), ("nnp", 2, 1), ("unconfined", 0, 0)] {
        let init = logs
            .iter()
            .zip(["inherits", "unconfined", "local", "nnp"])
            .find(|(_, n)| *n == c)
            .unwrap()
            .0;
        let out = w.ok(&["exec", "seccomp", "-c", c, "--", "sh", "-c", try_it]);
        assert!(
            out.contains(&format!("Seccomp:\t{seccomp}")),
            "exec {c}: {out}"
        );
        assert!(
            out.contains(&format!("NoNewPrivs:\t{nnp}")),
            "exec {c}: {out}"
        );
        assert_eq!(
            out.contains("unshare-ok"),
            init.contains("unshare-ok"),
            "exec {c}: {out} vs init {init}"
        );
        let caps = w.ok(&[
            "exec",
            "seccomp",
            "-c",
            c,
            "--",
            "grep",
            "^Cap",
            "/proc/self/status",
        ]);
        for f in ["CapEff", "CapBnd", "CapPrm"] {
            assert_eq!(
                status_field(&caps, f),
                status_field(
                    &text(
                        &w.run(&["exec", "seccomp", "-c", c, "--", "sh", "-c", STATUS])
                            .stdout
                    ),
                    f
                ),
                "{c}"
            );
        }
    }
}

#[test]
fn a_missing_localhost_profile_is_a_create_container_error() {
    let w = World::new("sec-missing");
    w.up_ok(&probe_pod(
        "missing",
        "",
        &[Probe {
            name: "c",
            sc: "      seccompProfile:\n        type: Localhost\n        localhostProfile: nope-does-not-exist.json\n",
            script: "true",
        }],
    ));
    let msg = w.wait_for(30, "waiting reason", || {
        let p = w.pod("default", "missing");
        let st = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        st["message"]
            .as_str()
            .filter(|m| m.contains("nope-does-not-exist.json"))
            .map(|m| {
                (
                    st["reason"].as_str().unwrap_or("").to_string(),
                    m.to_string(),
                )
            })
    });
    assert!(msg.0.starts_with("CreateContainer"), "{msg:?}");
}

#[test]
fn run_as_non_root_with_a_root_image_is_refused_with_kubelets_message() {
    let w = World::new("sec-nonroot");
    w.up_ok(&probe_pod(
        "nonroot",
        "    runAsNonRoot: true\n",
        &[Probe {
            name: "c",
            sc: "",
            script: "true",
        }],
    ));
    let (reason, msg) = w.wait_for(30, "CreateContainerConfigError", || {
        let p = w.pod("default", "nonroot");
        let st = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        let r = st["reason"].as_str()?.to_string();
        (r == "CreateContainerConfigError")
            .then(|| (r, st["message"].as_str().unwrap_or("").to_string()))
    });
    assert_eq!(reason, "CreateContainerConfigError");
    assert!(
        msg.contains("container has runAsNonRoot and image will run as root"),
        "{msg}"
    );
    let (_, status, _) = w.columns("default", "nonroot");
    assert_eq!(status, "CreateContainerConfigError");
}

#[test]
fn secret_values_are_not_shown_by_get_describe_or_events() {
    let w = World::new("sec-secret");
    let value = format!("s3cr3t-{}", std::process::id());
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: {value}\n---\n{}",
        probe_pod(
            "withsecret",
            "",
            &[Probe { name: "c", sc: "", script: "test -n \"$PASSWORD\" && echo has-password" }],
        )
        .replace(
            "    command:",
            "    env:\n    - name: PASSWORD\n      valueFrom:\n        secretKeyRef:\n          name: creds\n          key: password\n    command:",
        )
    );
    w.up_ok(&manifest);
    w.wait_for(60, "DONE", || {
        let t = text(&w.run(&["logs", "withsecret"]).stdout);
        t.contains("DONE").then_some(t)
    });
    for args in [
        vec!["get", "pod", "withsecret", "-o", "yaml"],
        vec!["get", "pod", "withsecret", "-o", "json"],
        vec!["describe", "pod", "withsecret"],
        vec!["get", "pods"],
    ] {
        let o = w.run(&args);
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(
            !all.contains(&value),
            "{args:?} shows the secret value: {all}"
        );
    }
    let yaml = w.ok(&["get", "pod", "withsecret", "-o", "yaml"]);
    assert!(yaml.contains("secretKeyRef"), "{yaml}");
    // The pod's log files hold only what the container printed.
    for e in walk(&w.logs) {
        let t = std::fs::read_to_string(&e).unwrap_or_default();
        assert!(!t.contains(&value), "{} holds the secret", e.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn state_and_data_dirs_are_private_to_root() {
    let w = World::empty_store("sec-dirs");
    let base = w.root.parent().unwrap().to_path_buf();
    let root = base.join("fresh-root");
    let data = base.join("fresh-data");
    let o = w
        .cmd()
        .env("PODRUN_ROOT", &root)
        .env("PODRUN_DATA_DIR", &data)
        .args(["get", "pods"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = w
        .cmd()
        .env("PODRUN_ROOT", &root)
        .env("PODRUN_DATA_DIR", &data)
        .args(["images"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    for d in [&root, &data] {
        let m = std::fs::metadata(d).unwrap_or_else(|e| panic!("{} not created: {e}", d.display()));
        assert_eq!(m.permissions().mode() & 0o777, 0o700, "{}", d.display());
    }
}

#[test]
fn identity_groups_read_only_root_sysctls_proc_mount_and_host_pid() {
    let w = World::new("sec-ident");
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ident\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  hostPID: true\n  securityContext:\n    runAsUser: 1000\n    runAsGroup: 3000\n    fsGroup: 2000\n    supplementalGroups: [4000]\n    sysctls:\n    - {name: kernel.shm_rmid_forced, value: \"1\"}\n  volumes:\n  - name: data\n    emptyDir: {}\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", \"id; stat -c 'vol %g %A' /data; touch /data/f && stat -c 'file %u %g' /data/f; touch /rootfile 2>&1 || echo root-ro; echo shm=$(cat /proc/sys/kernel/shm_rmid_forced); echo pids=$(ls -d /proc/[0-9]* | wc -l); echo tl=$(wc -c < /proc/timer_list); echo DONE; sleep 3600\"]\n    securityContext:\n      readOnlyRootFilesystem: true\n      allowPrivilegeEscalation: false\n    volumeMounts:\n    - {name: data, mountPath: /data}\n";
    w.up_ok(manifest);
    let l = w.wait_for(60, "DONE", || {
        let t = text(&w.run(&["logs", "ident"]).stdout);
        t.contains("DONE").then_some(t)
    });
    assert!(l.contains("uid=1000"), "{l}");
    assert!(l.contains("gid=3000"), "{l}");
    assert!(
        l.contains("2000") && l.contains("4000"),
        "fsGroup and supplementalGroups: {l}"
    );
    // fsGroup owns the volume with the setgid bit; new files inherit the group.
    assert!(
        l.contains("vol 2000 drwxrwsrwx") || l.contains("vol 2000 drwxrws"),
        "{l}"
    );
    assert!(l.contains("file 1000 2000"), "{l}");
    assert!(
        l.contains("root-ro") && l.contains("Read-only file system"),
        "{l}"
    );
    assert!(l.contains("shm=1"), "{l}");
    let pids: usize = l
        .lines()
        .find_map(|x| x.strip_prefix("pids="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pids > 10, "hostPID shows the host's processes: {l}");
    // procMount: Unmasked needs hostUsers: false (and so no hostPID): see userns_pods.rs.
}

#[test]
fn unsafe_sysctls_are_refused_with_a_clear_error() {
    let w = World::new("sec-sysctl");
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: unsafe\nspec:\n  restartPolicy: Never\n  securityContext:\n    sysctls:\n    - {name: kernel.msgmax, value: \"1\"}\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [\"true\"]\n";
    let o = w.up(manifest);
    let all = if o.status.success() {
        // Admitted: the refusal shows on the pod.
        w.wait_for(30, "sysctl refusal", || {
            let d = w.describe("default", "unsafe");
            d.contains("kernel.msgmax").then_some(d)
        })
    } else {
        text(&o.stderr)
    };
    assert!(all.contains("kernel.msgmax"), "{all}");
    assert!(all.to_lowercase().contains("sysctl"), "{all}");
}
