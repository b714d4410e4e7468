//! Device access from inside containers, on both lanes: the v1 devices cgroup on a v1 or
//! hybrid host, the eBPF device filter on cgroup v2 (tests/vm/run.sh) — and on a hybrid
//! host the eBPF filter too, on its cgroup2 hierarchy (PODRUN_DEVICES_BPF=1), so every
//! behaviour test runs once per mechanism the host has.
//!
//! A node made with mknod outside the allowed list cannot be opened (EPERM); the
//! standard devices can; a config rule opens exactly what it names; `update` replaces the
//! rules of a running container; privileged pods open block devices; fifos in
//! linux.devices are made and are no device rule; nothing stays attached after delete.
mod oci_support;
mod pod_support;
use oci_support::{run_to_files, stderr, unique, Env};
use pod_support::{text, World};
use podrun::runtime::cgroups::{self, devices_bpf, CgroupMode};
use serde_json::json;
use std::path::{Path, PathBuf};

/// One way the host can enforce device rules: a name and the environment asking for it.
struct Lane {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const V1: Lane = Lane {
    name: "v1 devices cgroup",
    env: &[],
};
const BPF_V2: Lane = Lane {
    name: "eBPF filter (cgroup v2)",
    env: &[],
};
const BPF_HYBRID: Lane = Lane {
    name: "eBPF filter on the hybrid host's cgroup2 hierarchy",
    env: &[("PODRUN_DEVICES_BPF", "1")],
};

fn mode() -> CgroupMode {
    cgroups::mode().expect("cgroup layout")
}

/// Every mechanism this host has for device rules.
fn lanes() -> Vec<Lane> {
    match mode() {
        CgroupMode::Unified => vec![BPF_V2],
        CgroupMode::Hybrid if Path::new("/sys/fs/cgroup/devices").is_dir() => vec![V1, BPF_HYBRID],
        CgroupMode::Hybrid => vec![BPF_V2],
        CgroupMode::Legacy => vec![V1],
    }
}

/// Where the eBPF lanes attach: the cgroup2 directory of `cgroups_path`.
fn unified_dir(cgroups_path: &str) -> PathBuf {
    let base = match mode() {
        CgroupMode::Unified => "/sys/fs/cgroup",
        _ => "/sys/fs/cgroup/unified",
    };
    Path::new(base).join(cgroups_path.trim_start_matches('/'))
}

/// A block device of this machine: the VM's ramdisk, else a loop device, else any.
fn block_device() -> (String, String) {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|n| (!n.starts_with("ram"), !n.starts_with("loop"), n.clone()));
    let name = names
        .into_iter()
        .next()
        .expect("no block device in /sys/block");
    let dev = std::fs::read_to_string(format!("/sys/block/{name}/dev")).unwrap();
    let (ma, mi) = dev.trim().split_once(':').unwrap();
    (ma.to_string(), mi.to_string())
}

/// `try NAME OP PATH` prints `NAME=ok` or `NAME=<the shell's error>`, OP being the
/// redirection that opens PATH (`<` read, `>` write, `<>` both).
const TRY: &str = "try() { if e=$(sh -c \"exec 3$2\\\"\\$0\\\"\" \"$3\" 2>&1); then echo \"$1=ok\"; else echo \"$1=$e\"; fi; }\n";

/// The standard devices and mknod'd ones outside the list, opened from a script.
fn open_script() -> String {
    let (bma, bmi) = block_device();
    format!(
        "{TRY}mknod /dev/t-mem c 1 1 && mknod /dev/t-blk b {bma} {bmi} && mknod /dev/t-pts c 136 9 && echo mknod=ok
try null '<>' /dev/null
try zero '<' /dev/zero
try urandom '<' /dev/urandom
try full '>' /dev/full
try tty '<>' /dev/tty
try ptmx '<>' /dev/ptmx
try pts '<>' /dev/t-pts
try mem '<' /dev/t-mem
try blk '<' /dev/t-blk
"
    )
}

/// What `try NAME ...` printed.
fn result<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {out}"))
}

const EPERM: &str = "Operation not permitted";

/// The default rules, as a user checks them: standard devices open (/dev/tty and a pts
/// node may fail, but in their drivers, not for permission), others are refused.
fn assert_default_rules(out: &str, lane: &str) {
    assert_eq!(
        result(out, "mknod"),
        "ok",
        "{lane}: mknod is allowed: {out}"
    );
    for d in ["null", "zero", "urandom", "full", "ptmx"] {
        assert_eq!(result(out, d), "ok", "{lane}: /dev/{d}: {out}");
    }
    // No controlling terminal (ENXIO) and an unallocated pty: the driver says so.
    for d in ["tty", "pts"] {
        assert!(!result(out, d).contains(EPERM), "{lane}: {d}: {out}");
    }
    for d in ["mem", "blk"] {
        assert!(
            result(out, d).contains(EPERM),
            "{lane}: {d} must be refused: {out}"
        );
    }
}

/// A busybox bundle whose process holds CAP_MKNOD (runc's spec gives it none).
fn mknod_env() -> Env {
    let env = Env::new();
    env.edit_config(|c| {
        let caps = json!(["CAP_MKNOD", "CAP_KILL", "CAP_AUDIT_WRITE"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    });
    env
}

/// `podrun ARGS` in `env` with the lane's environment.
fn podrun(env: &Env, lane: &Lane, args: &[&str]) -> std::process::Output {
    let mut cmd = env.cmd(args);
    for (k, v) in lane.env {
        cmd.env(k, v);
    }
    run_to_files(cmd, &env.dir)
}

/// `podrun run` of `sh -c script`; stdout, asserting success.
fn run_sh(env: &Env, lane: &Lane, script: &str) -> String {
    env.set_args(&["sh", "-c", script]);
    let id = unique("dev");
    let out = podrun(
        env,
        lane,
        &["run", "--bundle", env.bundle.to_str().unwrap(), &id],
    );
    assert!(out.status.success(), "{}: run: {}", lane.name, stderr(&out));
    text(&out.stdout)
}

#[test]
fn oci_run_with_mknod_opens_only_the_standard_devices() {
    let env = mknod_env();
    for lane in lanes() {
        let out = run_sh(&env, &lane, &open_script());
        assert_default_rules(&out, lane.name);
    }
}

#[test]
fn a_config_rule_opens_exactly_the_device_and_access_it_names() {
    let env = mknod_env();
    // /dev/kmsg opened for writing needs no capability, so the device cgroup decides.
    env.edit_config(|c| {
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
        ]);
    });
    for lane in lanes() {
        let out = run_sh(
            &env,
            &lane,
            &format!(
                "{TRY}mknod /dev/t-kmsg c 1 11; mknod /dev/t-mem c 1 1
try kmsg-w '>' /dev/t-kmsg
try kmsg-r '<' /dev/t-kmsg
try mem-w '>' /dev/t-mem
try null '<>' /dev/null"
            ),
        );
        let l = lane.name;
        assert_eq!(result(&out, "kmsg-w"), "ok", "{l}: {out}");
        assert!(result(&out, "kmsg-r").contains(EPERM), "{l}: only w: {out}");
        assert!(
            result(&out, "mem-w").contains(EPERM),
            "{l}: only 1:11: {out}"
        );
        assert_eq!(
            result(&out, "null"),
            "ok",
            "{l}: runc's defaults still apply: {out}"
        );
    }
}

#[test]
fn update_with_new_rules_takes_effect_in_the_running_container() {
    let env = mknod_env();
    env.set_args(&["sh", "-c", "mknod /dev/t-kmsg c 1 11 && sleep 600"]);
    for lane in lanes() {
        let l = lane.name;
        let id = unique("devupd");
        let bundle = env.bundle.to_str().unwrap();
        let out = podrun(&env, &lane, &["run", "-d", "--bundle", bundle, &id]);
        assert!(out.status.success(), "{l}: {}", stderr(&out));
        let probe = |what: &str| {
            let script = format!(
                "{TRY}while [ ! -e /dev/t-kmsg ]; do sleep 0.05; done
try kmsg-w '>' /dev/t-kmsg; try kmsg-r '<' /dev/t-kmsg; try null '<>' /dev/null"
            );
            let out = podrun(&env, &lane, &["exec", &id, "sh", "-c", &script]);
            assert!(out.status.success(), "{l}: exec ({what}): {}", stderr(&out));
            let o = text(&out.stdout);
            let r = |n| result(&o, n).to_string();
            (r("kmsg-w"), r("kmsg-r"), r("null"))
        };
        let update = |rules: serde_json::Value| {
            let f = env.dir.join(format!("{id}-res.json"));
            std::fs::write(&f, json!({ "devices": rules }).to_string()).unwrap();
            let out = podrun(&env, &lane, &["update", "-r", f.to_str().unwrap(), &id]);
            assert!(out.status.success(), "{l}: update: {}", stderr(&out));
        };
        let (w, r, null) = probe("before");
        assert!(
            w.contains(EPERM) && r.contains(EPERM),
            "{l}: before: {w} / {r}"
        );
        assert_eq!(null, "ok", "{l}");
        update(json!([{"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]));
        let (w, r, null) = probe("after allow c 1:11 w");
        assert_eq!(
            (w.as_str(), null.as_str()),
            ("ok", "ok"),
            "{l}: after allow"
        );
        assert!(r.contains(EPERM), "{l}: only w was allowed: {r}");
        if lane.env.is_empty() && mode() != CgroupMode::Unified {
            let list =
                std::fs::read_to_string(format!("/sys/fs/cgroup/devices/podrun/{id}/devices.list"))
                    .unwrap();
            assert!(
                list.lines().any(|r| r == "c 1:11 w"),
                "{l}: devices.list: {list}"
            );
        }
        // containerd sends the spec's own list (a lone deny-all) with every resource
        // update: the rules given replace the earlier ones, runc's defaults stay.
        update(json!([{"allow": false, "access": "rwm"}]));
        let (w, _, null) = probe("after deny-all");
        assert!(
            w.contains(EPERM),
            "{l}: the update's rule was replaced: {w}"
        );
        assert_eq!(null, "ok", "{l}: /dev/null survives containerd's update");
        let out = podrun(&env, &lane, &["delete", "--force", &id]);
        assert!(out.status.success(), "{l}: {}", stderr(&out));
    }
}

#[test]
fn after_delete_no_device_program_stays_attached_or_loaded() {
    let lanes: Vec<Lane> = lanes().into_iter().filter(|l| l.name != V1.name).collect();
    if lanes.is_empty() {
        println!("skipped: this host has no cgroup2 hierarchy for the eBPF filter");
        return;
    }
    let env = mknod_env();
    env.set_args(&["sleep", "600"]);
    for lane in lanes {
        let l = lane.name;
        let id = unique("devdel");
        let bundle = env.bundle.to_str().unwrap();
        let out = podrun(&env, &lane, &["run", "-d", "--bundle", bundle, &id]);
        assert!(out.status.success(), "{l}: {}", stderr(&out));
        let dir = unified_dir(&format!("/podrun/{id}"));
        let ids = devices_bpf::attached(&dir).unwrap();
        assert_eq!(
            ids.len(),
            1,
            "{l}: one program on {}: {ids:?}",
            dir.display()
        );
        assert!(devices_bpf::loaded(ids[0]));
        let out = podrun(&env, &lane, &["delete", "--force", &id]);
        assert!(out.status.success(), "{l}: {}", stderr(&out));
        assert!(!dir.exists(), "{l}: cgroup removed");
        let parent = dir.parent().unwrap();
        let left = devices_bpf::attached(parent).unwrap();
        assert!(left.is_empty(), "{l}: {} holds {left:?}", parent.display());
        // Freed once nothing holds it (the kernel releases it after an RCU grace period).
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !devices_bpf::loaded(ids[0])
        });
        assert!(gone, "{l}: program {} still loaded after delete", ids[0]);
    }
}

#[test]
fn a_fifo_in_linux_devices_is_made_and_is_no_device_rule() {
    // runtime-tools' linux_devices: a char, a block and a fifo node from linux.devices.
    let env = mknod_env();
    let (bma, bmi) = block_device();
    env.edit_config(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/test1", "type": "c", "major": 1, "minor": 5, "fileMode": 432, "uid": 0, "gid": 0},
            {"path": "/dev/test2", "type": "b", "major": bma.parse::<i64>().unwrap(), "minor": bmi.parse::<i64>().unwrap(), "fileMode": 432},
            {"path": "/dev/test3", "type": "p", "fileMode": 432}
        ]);
    });
    for lane in lanes() {
        let out = run_sh(
            &env,
            &lane,
            &format!(
                "{TRY}ls -l /dev/test1 /dev/test2 /dev/test3
[ -c /dev/test1 ] && [ -b /dev/test2 ] && [ -p /dev/test3 ] && echo types=ok
(echo through > /dev/test3 &) ; head -n1 /dev/test3
try blk '<' /dev/test2"
            ),
        );
        let l = lane.name;
        assert_eq!(result(&out, "types"), "ok", "{l}: {out}");
        assert!(out.contains("through"), "{l}: the fifo works: {out}");
        // A device listed in linux.devices is allowed, as runc allows it.
        assert_eq!(result(&out, "blk"), "ok", "{l}: {out}");
    }
}

/// A world with its own store holding a busybox image made from /bin/busybox (no
/// fixtures needed, so this runs in the VM too).
fn pod_world(tag: &str, lane: &Lane) -> World {
    let mut w = World::with_imported_busybox(tag, oci_support::make_busybox_rootfs);
    for (k, v) in lane.env {
        w.extra_env.push((k.to_string(), v.to_string()));
    }
    w
}

fn device_pod(name: &str, privileged: bool, script: &str) -> String {
    let sc = if privileged {
        "    securityContext: {privileged: true}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  hostNetwork: true\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: devtest/busybox:1\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {:?}]\n{sc}",
        format!("{script}\necho DONE; sleep 3600")
    )
}

fn pod_log(w: &World, name: &str, manifest: &str) -> String {
    w.up_ok(manifest);
    w.wait_for(60, &format!("{name} DONE"), || {
        let t = text(&w.run(&["logs", name]).stdout);
        t.contains("DONE").then_some(t)
    })
}

#[test]
fn a_default_pod_opens_only_the_standard_devices_and_a_privileged_one_opens_a_disk() {
    for lane in lanes() {
        let w = pod_world("devpods", &lane);
        let out = pod_log(&w, "plain", &device_pod("plain", false, &open_script()));
        assert_default_rules(&out, lane.name);
        let (bma, bmi) = block_device();
        let script = format!("{TRY}mknod /dev/t-blk b {bma} {bmi}; try blk '<' /dev/t-blk");
        let out = pod_log(&w, "priv", &device_pod("priv", true, &script));
        assert_eq!(
            result(&out, "blk"),
            "ok",
            "{}: privileged: {out}",
            lane.name
        );
    }
}
