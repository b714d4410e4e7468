//! Shared helpers for pod tests: a private state root per test, one image store per test
//! binary with the fixture images loaded, podrun invocations, polling, and a leak check.
#![allow(dead_code)]
pub mod agent;
#[allow(unused_imports)] // each test binary uses its part of the helpers
pub use agent::{private_world, Agent};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn seed(name: &str) -> String {
    // /work/main sees ../shared; a worktree (/work/wt/NAME) and CI use the committed copy.
    let p = [
        "../shared/seed-examples",
        "tests/seed-examples",
        "tests/fixtures/seed",
    ]
    .iter()
    .map(|d| repo().join(d).join(name))
    .find(|p| p.exists())
    .unwrap_or_else(|| repo().join("tests/seed-examples").join(name));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("seed example {}: {e}", p.display()))
}

/// Builds (cached) and loads the fixture images into one store shared by the tests of
/// this binary.
pub fn images() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        prune_image_stores();
        let dir =
            std::env::temp_dir().join(format!("podrun-podtest-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: registers a plain extern "C" fn, run by exit() after the tests.
        unsafe { libc::atexit(remove_own_image_store) };
        let st = Command::new("bash")
            .arg(repo().join("rootfs-fixtures/build.sh"))
            .args(["busybox", "nginx"])
            .status()
            .expect("run rootfs-fixtures/build.sh");
        assert!(
            st.success(),
            "fixtures could not be built: run `bash rootfs-fixtures/build.sh busybox nginx`"
        );
        let st = Command::new("bash")
            .arg(repo().join("rootfs-fixtures/load.sh"))
            .arg(PODRUN)
            .args(["busybox", "nginx"])
            .env("PODRUN_DATA_DIR", &dir)
            .status()
            .expect("run rootfs-fixtures/load.sh");
        assert!(st.success(), "loading fixtures failed");
        dir
    })
}

const STORE_PREFIX: &str = "podrun-podtest-images-";

/// The shared store goes when the test binary exits.
extern "C" fn remove_own_image_store() {
    let dir = std::env::temp_dir().join(format!("{STORE_PREFIX}{}", std::process::id()));
    if !mounted_under(&dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn mounted_under(dir: &Path) -> bool {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| m.contains(&needle))
}

/// Removes the stores of earlier test runs that were killed before their exit.
fn prune_image_stores() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(STORE_PREFIX) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        if !alive && !mounted_under(&e.path()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// One test's world: its own state root and log dir, a data dir (shared images unless
/// the test asks for an empty store). Deletes its pods and dirs on drop.
pub struct World {
    pub root: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
    pub extra_env: Vec<(String, String)>,
    own_data: bool,
}

fn unique(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("podrun-{tag}-{}-{n}", std::process::id()))
}

impl World {
    pub fn new(tag: &str) -> World {
        let base = unique(tag);
        let w = World {
            root: base.join("root"),
            data: images().to_path_buf(),
            logs: base.join("logs"),
            extra_env: Vec::new(),
            own_data: false,
        };
        std::fs::create_dir_all(&w.root).unwrap();
        w
    }

    /// A world with an empty image store of its own.
    pub fn empty_store(tag: &str) -> World {
        let base = unique(tag);
        let w = World {
            root: base.join("root"),
            data: base.join("data"),
            logs: base.join("logs"),
            extra_env: Vec::new(),
            own_data: true,
        };
        std::fs::create_dir_all(&w.root).unwrap();
        std::fs::create_dir_all(&w.data).unwrap();
        w
    }

    /// A world with its own store holding `devtest/busybox:1`, imported from the rootfs
    /// `make_rootfs` builds (the host's busybox): no fixtures needed, so it also works in
    /// the cgroup v2 VM. Pair it with hostNetwork or PODRUN_NETWORK=none there.
    pub fn with_imported_busybox(tag: &str, make_rootfs: impl FnOnce(&Path)) -> World {
        let w = World::empty_store(tag);
        let rootfs = w.data.join("busybox-rootfs");
        make_rootfs(&rootfs);
        w.ok(&[
            "import",
            rootfs.to_str().unwrap(),
            "--tag",
            "devtest/busybox:1",
        ]);
        w
    }

    /// The pid of pod `ns/name`'s supervisor, from its pid file ("PID STARTTIME").
    pub fn supervisor_pid(&self, ns: &str, name: &str) -> i32 {
        let path = self.root.join(format!("pods/{ns}_{name}/supervisor.pid"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{}: no pid in {text:?}", path.display()))
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(PODRUN);
        c.env("PODRUN_ROOT", &self.root)
            .env("PODRUN_DATA_DIR", &self.data)
            .env("PODRUN_POD_LOG_DIR", &self.logs);
        // Pulls never leave the machine: docker.io only through mirrors, none unless the
        // test sets its own config (extra_env wins); the host's registries.conf is not read.
        let mirror_only = self.root.join("registries.json");
        if !mirror_only.exists() {
            let _ = std::fs::write(&mirror_only, r#"{"mirrorOnly": ["docker.io"]}"#);
        }
        c.env("PODRUN_REGISTRIES_CONFIG", &mirror_only).env(
            "CONTAINERS_REGISTRIES_CONF",
            self.root.join("registries.conf"),
        );
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run podrun")
    }

    /// Runs podrun, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "podrun {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            o.status,
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// `podrun up -f -` with the manifest on stdin.
    pub fn up(&self, manifest: &str) -> Output {
        self.spawn_up(manifest, std::process::Stdio::piped)
            .wait_with_output()
            .unwrap()
    }

    /// Starts `podrun up -f -` with the manifest written to its stdin; its output goes
    /// where `out` says.
    pub fn spawn_up(
        &self,
        manifest: &str,
        out: impl Fn() -> std::process::Stdio,
    ) -> std::process::Child {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(["up", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(out())
            .stderr(out())
            .spawn()
            .expect("spawn podrun up");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        child
    }

    pub fn up_ok(&self, manifest: &str) -> String {
        let o = self.up(manifest);
        assert!(
            o.status.success(),
            "up failed: {}\n{}",
            text(&o.stderr),
            text(&o.stdout)
        );
        text(&o.stdout)
    }

    /// The pod as `get -o json` prints it.
    pub fn pod(&self, ns: &str, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", "pod", name, "-n", ns, "-o", "json"]))
            .expect("pod json")
    }

    /// READY, STATUS, RESTARTS of `get pods` for one pod.
    pub fn columns(&self, ns: &str, name: &str) -> (String, String, String) {
        let out = self.ok(&["get", "pods", name, "-n", ns]);
        let line = out.lines().nth(1).unwrap_or_default().to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        (
            f.get(1).unwrap_or(&"").to_string(),
            f.get(2).unwrap_or(&"").to_string(),
            f.get(3).unwrap_or(&"").to_string(),
        )
    }

    pub fn describe(&self, ns: &str, name: &str) -> String {
        self.ok(&["describe", "pod", name, "-n", ns])
    }

    /// Polls `f` until it returns Some, or panics after `secs` with `what`.
    pub fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs}s waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_status(
        &self,
        ns: &str,
        name: &str,
        status: &str,
        secs: u64,
    ) -> (String, String, String) {
        self.wait_for(secs, &format!("{ns}/{name} STATUS {status}"), || {
            let c = self.columns(ns, name);
            (c.1 == status).then_some(c)
        })
    }

    /// Deletes every pod of this world (grace 0).
    pub fn delete_all(&self) {
        let pods = self.root.join("pods");
        if let Ok(rd) = std::fs::read_dir(&pods) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some((ns, name)) = n.split_once('_') {
                    let _ = self.run(&[
                        "delete",
                        "pod",
                        name,
                        "-n",
                        ns,
                        "--grace-period",
                        "0",
                        "--force",
                    ]);
                }
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.delete_all();
        if let Some(base) = self.root.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Where a container's cgroup lives for `controller` (v1) or unified (v2).
pub fn cgroup_dir(controller: &str, rel: &str) -> PathBuf {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        PathBuf::from("/sys/fs/cgroup").join(rel.trim_start_matches('/'))
    } else {
        PathBuf::from("/sys/fs/cgroup")
            .join(controller)
            .join(rel.trim_start_matches('/'))
    }
}

/// Host mounts whose path contains `needle`.
pub fn mounts_containing(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Pids of processes whose cgroup path mentions `needle`.
pub fn processes_in_cgroup(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() {
                if std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .is_ok_and(|c| c.contains(needle))
                {
                    out.push(pid);
                }
            }
        }
    }
    out
}
