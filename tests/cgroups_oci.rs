//! `podrun run` with linux.resources (root, real kernel): the container reads its own
//! limits from /sys/fs/cgroup (cgroup namespace) in whichever layout the host has, an
//! over-allocating container is OOM-killed with exit 137, and its cgroup is gone after.
//! Runs on the v1/hybrid host and, through tests/vm/run.sh, on pure cgroup v2.
use podrun::runtime::cgroups::{self, CgroupMode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const BUSYBOX: &str = "/bin/busybox";
const MIB: i64 = 1 << 20;

fn podrun() -> &'static str {
    env!("CARGO_BIN_EXE_podrun")
}

/// A busybox bundle with a unique id, state root and cgroupsPath, removed on drop.
struct Bundle {
    dir: PathBuf,
    id: String,
    cgroups_path: String,
}

impl Bundle {
    fn new(name: &str, resources: Value, script: &str) -> Bundle {
        static N: AtomicU32 = AtomicU32::new(0);
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: install busybox-static"
        );
        let n = N.fetch_add(1, Ordering::SeqCst);
        let id = format!("cgoci-{}-{n}-{name}", std::process::id());
        let dir = std::env::temp_dir().join(format!("podrun-{id}"));
        let bin = dir.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
        for d in ["proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(dir.join("rootfs").join(d)).unwrap();
        }
        let out = Command::new(podrun())
            .arg("spec")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "podrun spec: {out:?}");
        let cfg_path = dir.join("config.json");
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        let cgroups_path = format!("/podrun-test/{id}");
        cfg["process"]["terminal"] = json!(false);
        cfg["process"]["args"] = json!(["/bin/sh", "-c", script]);
        cfg["linux"]["cgroupsPath"] = json!(cgroups_path);
        let res = cfg["linux"]["resources"].as_object_mut().unwrap();
        for (k, v) in resources.as_object().unwrap() {
            res.insert(k.clone(), v.clone());
        }
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        Bundle {
            dir,
            id,
            cgroups_path,
        }
    }

    fn run(&self) -> Output {
        Command::new(podrun())
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(&self.id)
            .output()
            .unwrap()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new(podrun())
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(["delete", "--force", &self.id])
            .output();
        if let Ok(cg) = cgroups::open(&self.cgroups_path) {
            let _ = cg.remove();
        }
        if let Ok(cg) = cgroups::open("/podrun-test") {
            for d in cg.paths() {
                let _ = std::fs::remove_dir(d);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn container_reads_its_limits_from_its_own_cgroupfs() {
    let mode = cgroups::mode().unwrap();
    let script = match mode {
        CgroupMode::Unified => {
            "cd /sys/fs/cgroup && cat memory.max cpu.max cpu.weight pids.max && cat /proc/self/cgroup"
        }
        _ => {
            "cd /sys/fs/cgroup && cat memory/memory.limit_in_bytes cpu/cpu.cfs_quota_us \
             cpu/cpu.cfs_period_us cpu/cpu.shares pids/pids.max && cat /proc/self/cgroup"
        }
    };
    let b = Bundle::new(
        "limits",
        json!({
            "memory": {"limit": 64 * MIB},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 32}
        }),
        script,
    );
    let out = b.run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    let want: &[&str] = match mode {
        CgroupMode::Unified => &["67108864", "50000 100000", "20", "32"],
        _ => &["67108864", "50000", "100000", "512", "32"],
    };
    assert_eq!(&lines[..want.len()], want, "{stdout}\n{stderr}");
    // In its cgroup namespace the container sits at the root of every hierarchy.
    for l in &lines[want.len()..] {
        assert!(l.ends_with(":/"), "/proc/self/cgroup line {l:?}");
    }
    // run deletes the container, and with it every cgroup directory.
    let cg = cgroups::open(&b.cgroups_path).unwrap();
    for d in cg.paths() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn container_over_its_memory_limit_is_oom_killed_with_137() {
    let b = Bundle::new(
        "oom",
        json!({"memory": {"limit": 16 * MIB, "swap": 16 * MIB}}),
        "x=0123456789abcdef; while :; do x=$x$x; done",
    );
    let out = b.run();
    assert_eq!(
        out.status.code(),
        Some(137),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let cg = cgroups::open(&b.cgroups_path).unwrap();
    assert!(!cg.exists(), "cgroup left behind");
}
