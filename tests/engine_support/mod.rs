//! Shared helpers for the engine tests: private daemons (dockerd, containerd, podman's
//! storage) under one temp dir, logging wrappers for the runtimes they call, the fixture
//! images imported into each, and a guard that stops every daemon it started (by pid),
//! unmounts what they left under its dir and removes it.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");
static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The runtimes every scenario runs with: runc is the control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Podrun,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Podrun => "podrun",
        }
    }
    fn binary(self) -> PathBuf {
        match self {
            Runtime::Runc => PathBuf::from("/usr/sbin/runc"),
            Runtime::Podrun => PathBuf::from(PODRUN),
        }
    }
}

/// Skips (returns false, printing why) unless `tools` are installed: CI installs them
/// through scripts/setup.sh; a developer box without them still runs the rest.
pub fn have(tools: &[&str]) -> bool {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the engine tests must run as root"
    );
    for t in tools {
        if !Path::new(t).exists() {
            if std::env::var_os("PODRUN_ENGINE_TESTS_REQUIRED").is_some() {
                panic!("{t} is missing: run scripts/setup.sh");
            }
            eprintln!("skipped: {t} is not installed (scripts/setup.sh installs it)");
            return false;
        }
    }
    true
}

/// What one command printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// One test's world: a temp dir, the daemons started in it, the runtime wrappers.
pub struct World {
    pub dir: PathBuf,
    daemons: Vec<(String, Child)>,
    pub calls: PathBuf,
}

impl World {
    pub fn new(tag: &str) -> World {
        // Short: containerd and docker put unix sockets below it (108-byte limit).
        let dir = PathBuf::from(format!(
            "/tmp/pe-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let calls = dir.join("runtime-calls.log");
        let w = World {
            dir,
            daemons: Vec::new(),
            calls,
        };
        for rt in [Runtime::Runc, Runtime::Podrun] {
            w.write_wrapper(rt);
        }
        w
    }

    /// A wrapper named after the runtime that logs each call's arguments, then execs it.
    /// podman passes no --root: PODRUN_ROOT keeps podrun's state in this world's dir.
    fn write_wrapper(&self, rt: Runtime) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.wrapper(rt);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{} $*\" >> {}\nexport PODRUN_ROOT={}\nexec {} \"$@\"\n",
                rt.name(),
                self.calls.display(),
                self.dir.join("podrun-state").display(),
                rt.binary().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn wrapper(&self, rt: Runtime) -> PathBuf {
        self.dir.join("bin").join(rt.name())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Starts a daemon whose output goes to `<dir>/<name>.log`; stopped on drop.
    pub fn spawn_daemon(&mut self, name: &str, mut cmd: Command) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.daemons.push((name.to_string(), child));
    }

    pub fn daemon_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits until `path` exists (a daemon's socket), or panics with the daemon's log.
    pub fn wait_for(&mut self, name: &str, path: &Path, within: Duration) {
        let deadline = Instant::now() + within;
        while !path.exists() {
            if let Some((_, c)) = self.daemons.iter_mut().find(|(n, _)| n == name) {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("{name} exited ({st}):\n{}", self.daemon_log(name));
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not create {} in {within:?}:\n{}",
                path.display(),
                self.daemon_log(name)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The runtime commands the engines called through the wrappers (one per line).
    pub fn runtime_calls(&self) -> String {
        std::fs::read_to_string(&self.calls).unwrap_or_default()
    }

    /// Prints the distinct subcommands and flags the engines passed to `rt` (the test
    /// log keeps them: the list of what engines call).
    pub fn report_calls(&self, engine: &str, rt: Runtime) {
        let mut seen = std::collections::BTreeSet::new();
        for line in self.runtime_calls().lines() {
            let mut it = line.split_whitespace();
            if it.next() != Some(rt.name()) {
                continue;
            }
            let words: Vec<&str> = it.collect();
            let sub = words
                .iter()
                .enumerate()
                .find(|(i, w)| {
                    !w.starts_with('-')
                        && (*i == 0 || !takes_value(words[i - 1]) || words[i - 1].contains('='))
                })
                .map(|(_, w)| *w)
                .unwrap_or("");
            let flags: Vec<String> = words
                .iter()
                .filter(|w| w.starts_with('-') && **w != "-")
                .map(|w| w.split('=').next().unwrap_or(w).to_string())
                .collect();
            seen.insert(format!("{sub} {}", flags.join(" ")));
        }
        eprintln!("== {engine} called {}:", rt.name());
        for s in &seen {
            eprintln!("   {s}");
        }
    }
}

/// Global and subcommand flags of runc that take a separate value.
fn takes_value(flag: &str) -> bool {
    matches!(
        flag,
        "--root"
            | "--log"
            | "--log-format"
            | "--criu"
            | "--bundle"
            | "-b"
            | "--pid-file"
            | "--console-socket"
            | "--process"
            | "-p"
            | "--format"
            | "-f"
            | "--image-path"
            | "--work-path"
            | "--parent-path"
            | "--manage-cgroups-mode"
            | "--preserve-fds"
            | "--resources"
            | "-r"
            | "--cwd"
            | "--env"
            | "-e"
            | "--user"
            | "-u"
            | "--cap"
            | "-c"
    )
}

impl Drop for World {
    fn drop(&mut self) {
        for (name, c) in self.daemons.iter_mut().rev() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        eprintln!("{name} ignored SIGTERM for 20 s: killed");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        unmount_below(&self.dir);
        if std::env::var_os("PODRUN_KEEP_ENGINE_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Mount points at or below `dir` in this mount namespace, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    v.dedup();
    v
}

/// Detaches every mount the daemons left below `dir` (only ours: all are under it).
pub fn unmount_below(dir: &Path) {
    for m in mounts_below(dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs `cmd` with a deadline, stdout/stderr through files (a container started by
/// it may hold a pipe open), stdin from `input` when given.
pub fn run(mut cmd: Command, input: Option<&str>, within: Duration) -> Out {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("pe-out-{}-{n}", std::process::id()));
    let (o, e) = (base.with_extension("o"), base.with_extension("e"));
    cmd.stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|err| panic!("spawning {cmd:?}: {err}"));
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(text.as_bytes());
    }
    let deadline = Instant::now() + within;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let out = std::fs::read_to_string(&o).unwrap_or_default();
                let err = std::fs::read_to_string(&e).unwrap_or_default();
                panic!("{cmd:?} did not finish in {within:?}\nstdout: {out}\nstderr: {err}");
            }
        }
    };
    let out = Out {
        code,
        stdout: std::fs::read_to_string(&o).unwrap_or_default(),
        stderr: std::fs::read_to_string(&e).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&o);
    let _ = std::fs::remove_file(&e);
    out
}

/// Builds (cached) a fixture image layout from rootfs-fixtures/.
pub fn fixture(name: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = repo().join("rootfs-fixtures/out").join(name);
    let st = Command::new("bash")
        .arg(repo().join("rootfs-fixtures/build.sh"))
        .arg(name)
        .stdout(Stdio::null())
        .status()
        .expect("run rootfs-fixtures/build.sh");
    assert!(
        st.success() && out.join("index.json").exists(),
        "fixture {name} could not be built: run `bash rootfs-fixtures/build.sh {name}`"
    );
    out
}

/// An OCI layout of a pause image (podrun's own pause program as /pause), for the
/// sandboxes of containerd's CRI and podman's pods: no registry is reachable here.
pub fn pause_image(w: &World) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let rootfs = w.path("pause-rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let bin = rootfs.join("pause");
    std::fs::copy(concat!(env!("OUT_DIR"), "/pause"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = w.path("pause-oci");
    let st = Command::new("/usr/bin/python3")
        .arg(repo().join("rootfs-fixtures/mkoci.py"))
        .args(["--out", out.to_str().unwrap()])
        .args(["--name", PAUSE_REF])
        .args(["--layer", rootfs.to_str().unwrap()])
        .args(["--entrypoint", r#"["/pause"]"#])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "mkoci.py for the pause image failed");
    out
}

pub const PAUSE_REF: &str = "docker.io/library/pause:podrun";
pub const BUSYBOX_REF: &str = "docker.io/library/busybox:1.30";

/// Copies an OCI layout's image to a skopeo destination (docker-daemon:, containers-storage:).
pub fn skopeo_copy(layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let mut c = Command::new("skopeo");
    c.args(["--insecure-policy", "copy", "-q"])
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(dest);
    let out = run(c, None, Duration::from_secs(120));
    assert!(out.ok(), "skopeo copy to {dest}: {out}");
}

/// Processes (pid, command line) whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<(i32, String)> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                v.push((pid, cmd));
            }
        }
    }
    v
}

/// Polls `f` until it is true or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
