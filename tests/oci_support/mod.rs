//! Shared helpers for the OCI runtime integration tests: a busybox bundle in a temp dir,
//! a private --root, and the podrun binary. Everything is removed on drop.
#![allow(dead_code)]
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");

/// A unique name for this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's world: a temp dir with a state root and a busybox bundle.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        assert!(
            Path::new("/bin/busybox").exists(),
            "these tests need /bin/busybox (apt-get install busybox-static)"
        );
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests must run as root"
        );
        let dir = std::env::temp_dir().join(unique("podrun-oci"));
        let root = dir.join("root");
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&root).unwrap();
        make_busybox_rootfs(&bundle.join("rootfs"));
        let env = Env { dir, root, bundle };
        let out = env.podrun(&["spec", "--bundle", env.bundle.to_str().unwrap()]);
        assert!(out.status.success(), "podrun spec: {}", stderr(&out));
        env.edit_config(|c| {
            c["process"]["terminal"] = false.into();
        });
        env
    }

    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.bundle.join("config.json")).unwrap()).unwrap()
    }

    pub fn edit_config(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    pub fn set_args(&self, args: &[&str]) {
        self.edit_config(|c| c["process"]["args"] = serde_json::json!(args));
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(PODRUN);
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs podrun to completion. Output goes through files, not pipes: a created
    /// container inherits podrun's stdio and would keep a pipe open forever.
    pub fn podrun(&self, args: &[&str]) -> Output {
        run_to_files(self.cmd(args), &self.dir)
    }

    /// `podrun run --bundle B ID` attached; returns (exit code, stdout, stderr).
    pub fn run(&self, id: &str) -> (i32, String, String) {
        let out = self.podrun(&["run", "--bundle", self.bundle.to_str().unwrap(), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `sh -c script` in a fresh container and returns its stdout; panics on failure.
    pub fn sh(&self, script: &str) -> String {
        self.set_args(&["sh", "-c", script]);
        let id = unique("sh");
        let (code, out, err) = self.run(&id);
        assert_eq!(
            code, 0,
            "script {script:?} failed: stdout {out} stderr {err}"
        );
        out
    }

    pub fn create(&self, id: &str) -> Output {
        self.podrun(&["create", "--bundle", self.bundle.to_str().unwrap(), id])
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.podrun(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.root.join("containers")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.podrun(&["delete", "--force", &id]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` with stdout/stderr in temp files under `dir` and collects them.
pub fn run_to_files(mut cmd: Command, dir: &Path) -> Output {
    let name = unique("out");
    let (o, e) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    cmd.stdout(std::fs::File::create(&o).unwrap());
    cmd.stderr(std::fs::File::create(&e).unwrap());
    let status = cmd.status().unwrap();
    let out = Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    };
    let _ = std::fs::remove_file(o);
    let _ = std::fs::remove_file(e);
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// rootfs with /bin/busybox and a symlink per applet, plus a minimal /etc.
pub fn make_busybox_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    if std::fs::hard_link("/bin/busybox", bin.join("busybox")).is_err() {
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    }
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
}

/// Is `pid` alive (and not a zombie)?
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// Waits up to 5 s for `pid` to be gone.
pub fn wait_dead(pid: i64) -> bool {
    for _ in 0..500 {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Host mounts whose mount point or root mentions `needle`.
pub fn host_mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// cgroup directories named like `/podrun/<id>` on any hierarchy.
pub fn cgroup_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join(cgroup_path.trim_start_matches('/'));
            if p.exists() {
                out.push(p);
            }
        }
    }
    let p = Path::new("/sys/fs/cgroup").join(cgroup_path.trim_start_matches('/'));
    if p.exists() {
        out.push(p);
    }
    out
}
