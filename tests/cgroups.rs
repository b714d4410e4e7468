//! The cgroup library against the real kernel (root): limits land in the files a user
//! would read, a real process is OOM-killed, fork-limited, frozen and thawed, and every
//! directory is gone after `remove`. Runs on whatever layout the host has: the v1 path
//! on a v1/hybrid host, the v2 path inside the test VM (tests/vm/run.sh).
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNetworkBuilder, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder,
};
use podrun::runtime::cgroups::{self, CgroupError, CgroupManager, CgroupMode};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/bin/busybox";
const MIB: i64 = 1 << 20;

fn busybox() -> &'static str {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install busybox-static"
    );
    BUSYBOX
}

/// A unique cgroupsPath prefix for one test: /podrun-test/<pid>-<n>-<name>.
fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/podrun-test/{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Kills the test's processes and removes its cgroups (leaf first) even when the test
/// fails half-way; the shared /podrun-test parent goes only when nobody else uses it.
struct Cleanup {
    paths: Vec<String>,
    children: Vec<Child>,
}

impl Cleanup {
    fn new(paths: &[&str]) -> Cleanup {
        Cleanup {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            children: Vec::new(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.paths {
            if let Ok(cg) = cgroups::open(p) {
                let _ = cg.freeze(false);
                for pid in cg.pids().unwrap_or_default() {
                    // Only our own children can be in a cgroup this test created.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                let _ = cg.remove();
            }
        }
        if let Ok(cg) = cgroups::open("/podrun-test") {
            for d in cg.paths() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// `busybox sh -c "read go; <script>"`: the shell waits until `go` so it can be moved
/// into the cgroup before it does anything.
fn spawn_waiting(script: &str) -> Child {
    Command::new(busybox())
        .args(["sh", "-c", &format!("read go; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busybox sh")
}

fn go(child: &mut Child) {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("write go");
}

fn wait_timeout(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

fn dir(cg: &dyn CgroupManager, controller: &str) -> PathBuf {
    cg.controller_path(controller)
        .unwrap_or_else(|| panic!("no {controller} controller on this host"))
}

fn resources(mem_limit: Option<i64>, pids: Option<i64>) -> LinuxResources {
    let mut b = LinuxResourcesBuilder::default();
    if let Some(l) = mem_limit {
        // memory+swap = memory: no swap, so the limit really bites.
        b = b.memory(
            LinuxMemoryBuilder::default()
                .limit(l)
                .swap(l)
                .build()
                .unwrap(),
        );
    }
    if let Some(p) = pids {
        b = b.pids(LinuxPidsBuilder::default().limit(p).build().unwrap());
    }
    b.build().unwrap()
}

/// utime+stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn limits_land_in_the_kernel_files_and_the_process_joins() {
    let path = unique("limits");
    let mut guard = Cleanup::new(&[&path]);
    let cg = cgroups::open(&path).unwrap();
    eprintln!("cgroup mode {:?}, dirs {:?}", cg.mode(), cg.paths());
    assert_eq!(cg.mode(), cgroups::mode().unwrap());

    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MIB)
                .reservation(32 * MIB)
                .swap(96 * MIB)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(32).build().unwrap())
        .build()
        .unwrap();
    match cg.set(&res) {
        Ok(()) => {}
        // A host without swap accounting refuses the swap field by name.
        Err(CgroupError::UnsupportedField { field, .. }) if field == "memory.swap" => {
            let mut res = res.clone();
            let mut mem = res.memory().unwrap();
            mem.set_swap(None);
            res.set_memory(Some(mem));
            cg.set(&res).unwrap();
        }
        Err(e) => panic!("set: {e}"),
    }

    let child = Command::new(busybox())
        .args(["sleep", "300"])
        .spawn()
        .unwrap();
    let pid = child.id();
    cg.apply(pid as i32).unwrap();
    guard.children.push(child);

    let mem = dir(&*cg, "memory");
    let cpu = dir(&*cg, "cpu");
    let pids = dir(&*cg, "pids");
    let cpuset = dir(&*cg, "cpuset");
    match cg.mode() {
        CgroupMode::Unified => {
            assert_eq!(read(&mem, "memory.max"), (64 * MIB).to_string());
            assert_eq!(read(&mem, "memory.low"), (32 * MIB).to_string());
            if mem.join("memory.swap.max").exists() {
                assert_eq!(read(&mem, "memory.swap.max"), (32 * MIB).to_string());
            }
            assert_eq!(read(&cpu, "cpu.max"), "50000 100000");
            assert_eq!(read(&cpu, "cpu.weight"), "20");
            let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            let rel = path.trim_start_matches('/');
            assert!(
                own.lines().any(|l| l == format!("0::/{rel}")),
                "/proc/{pid}/cgroup: {own}"
            );
        }
        CgroupMode::Legacy | CgroupMode::Hybrid => {
            assert_eq!(read(&mem, "memory.limit_in_bytes"), (64 * MIB).to_string());
            assert_eq!(
                read(&mem, "memory.soft_limit_in_bytes"),
                (32 * MIB).to_string()
            );
            if mem.join("memory.memsw.limit_in_bytes").exists() {
                assert_eq!(
                    read(&mem, "memory.memsw.limit_in_bytes"),
                    (96 * MIB).to_string()
                );
            }
            assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&cpu, "cpu.shares"), "512");
            // The process is in every hierarchy, the unified one included.
            let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            let rel = path.trim_start_matches('/');
            for key in ["memory", "cpu", "pids", "freezer", "devices"] {
                assert!(
                    own.lines().any(|l| {
                        let mut f = l.splitn(3, ':').skip(1);
                        let ctrls = f.next().unwrap_or("");
                        ctrls.split(',').any(|c| c == key) && f.next() == Some(&format!("/{rel}"))
                    }),
                    "{key} not joined: {own}"
                );
            }
            if cg.mode() == CgroupMode::Hybrid {
                assert!(own.lines().any(|l| l == format!("0::/{rel}")), "{own}");
            }
        }
    }
    assert_eq!(read(&pids, "pids.max"), "32");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    for d in cg.paths() {
        let procs = read(&d, "cgroup.procs");
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{}: {procs}",
            d.display()
        );
    }
    assert_eq!(cg.pids().unwrap(), vec![pid as i32]);

    let st = cg.stats().unwrap();
    assert_eq!(st.memory_limit_bytes, Some(64 * MIB as u64));
    assert_eq!(st.pids_limit, Some(32));
    assert_eq!(st.pids_current, 1);
    assert_eq!(st.oom_kill_count, 0);

    // Lifting the limits: -1 means unlimited.
    cg.set(&resources(Some(-1), Some(-1))).unwrap();
    assert_eq!(cg.stats().unwrap().memory_limit_bytes, None);
    assert_eq!(read(&pids, "pids.max"), "max");

    let mut child = guard.children.pop().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    cg.remove().unwrap();
    for d in cg.paths() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    assert!(!cg.exists());
}

#[test]
fn memory_limit_oom_kills_the_process_and_is_counted() {
    let path = unique("oom");
    let mut guard = Cleanup::new(&[&path]);
    let cg = cgroups::open(&path).unwrap();
    cg.set(&resources(Some(16 * MIB), None)).unwrap();
    let mut child = spawn_waiting("x=0123456789abcdef; while :; do x=$x$x; done");
    cg.apply(child.id() as i32).unwrap();
    go(&mut child);
    let status = wait_timeout(&mut child, 120);
    guard.children.push(child);
    let status = status.expect("the allocating shell was not killed within 120 s");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cg.oom_kill_count().unwrap() >= 1);
    let st = cg.stats().unwrap();
    assert!(st.oom_kill_count >= 1, "{st:?}");
    assert_eq!(st.memory_limit_bytes, Some(16 * MIB as u64));
    cg.remove().unwrap();
    assert!(!cg.exists());
}

#[test]
fn pids_limit_refuses_forks() {
    let path = unique("pids");
    let mut guard = Cleanup::new(&[&path]);
    let cg = cgroups::open(&path).unwrap();
    cg.set(&resources(None, Some(3))).unwrap();
    let bb = busybox();
    // The shell plus two sleeps fill the limit; the third fork fails and busybox sh
    // gives up with "can't fork".
    let mut child = spawn_waiting(&format!(
        "for i in 1 2 3 4 5; do {bb} sleep 300 >/dev/null 2>&1 & done; wait"
    ));
    cg.apply(child.id() as i32).unwrap();
    go(&mut child);
    let status = wait_timeout(&mut child, 60).expect("the shell neither forked nor failed");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    guard.children.push(child);
    assert!(!status.success());
    assert!(err.contains("can't fork"), "stderr: {err}");
    let st = cg.stats().unwrap();
    assert_eq!(st.pids_current, 2, "{st:?}");
    assert_eq!(st.pids_limit, Some(3));
    let left = cg.pids().unwrap();
    assert_eq!(left.len(), 2);
    for pid in left {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    cg.remove().unwrap();
    assert!(!cg.exists());
}

#[test]
fn freeze_stops_the_process_and_thaw_resumes_it() {
    let path = unique("freeze");
    let mut guard = Cleanup::new(&[&path]);
    let cg = cgroups::open(&path).unwrap();
    let mut child = spawn_waiting("while :; do :; done");
    let pid = child.id();
    cg.apply(pid as i32).unwrap();
    go(&mut child);
    guard.children.push(child);

    cg.freeze(true).unwrap();
    let d = dir(&*cg, "freezer");
    match cg.mode() {
        CgroupMode::Unified => {
            assert_eq!(read(&d, "cgroup.freeze"), "1");
            assert!(read(&d, "cgroup.events").contains("frozen 1"));
        }
        _ => assert_eq!(read(&d, "freezer.state"), "FROZEN"),
    }
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), t0, "a frozen process used cpu");

    cg.freeze(false).unwrap();
    match cg.mode() {
        CgroupMode::Unified => assert!(read(&d, "cgroup.events").contains("frozen 0")),
        _ => assert_eq!(read(&d, "freezer.state"), "THAWED"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while cpu_ticks(pid) == t0 {
        assert!(Instant::now() < deadline, "the thawed process never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = guard.children.pop().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    cg.remove().unwrap();
}

#[test]
fn remove_right_after_kill_waits_for_the_kernel() {
    let path = unique("busy");
    let mut guard = Cleanup::new(&[&path]);
    let cg = cgroups::open(&path).unwrap();
    let mut child = spawn_waiting("exec /bin/busybox sleep 300");
    cg.apply(child.id() as i32).unwrap();
    go(&mut child);

    // With the process alive, removal fails after its retries, naming the cgroup.
    let t = Instant::now();
    match cg.remove() {
        Err(CgroupError::Busy { path, reason, .. }) => {
            assert!(cg.paths().contains(&path), "{path:?}");
            assert!(reason.contains("process"), "{reason}");
        }
        other => panic!("remove of a busy cgroup: {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(cg.exists());

    // SIGKILL and remove at once, without reaping first: the retries absorb the exit.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    cg.remove().unwrap();
    assert!(!cg.exists());
    child.wait().unwrap();
    guard.children.push(child);
}

#[test]
fn pod_and_container_cgroups_nest_and_go_separately() {
    let base = unique("pod");
    let pod = format!("{base}/kubepods/burstable/pod0f3c");
    let ctr = format!("{pod}/c1");
    let mut guard = Cleanup::new(&[
        &ctr,
        &pod,
        &format!("{base}/kubepods/burstable"),
        &format!("{base}/kubepods"),
        &base,
    ]);
    let pod_cg = cgroups::open(&pod).unwrap();
    pod_cg.set(&resources(Some(128 * MIB), Some(64))).unwrap();
    let ctr_cg = cgroups::open(&ctr).unwrap();
    ctr_cg.set(&resources(Some(64 * MIB), None)).unwrap();
    let mut child = Command::new(busybox())
        .args(["sleep", "300"])
        .spawn()
        .unwrap();
    ctr_cg.apply(child.id() as i32).unwrap();

    for (p, c) in pod_cg.paths().iter().zip(ctr_cg.paths()) {
        assert_eq!(c.parent(), Some(p.as_path()));
    }
    assert_eq!(
        pod_cg.stats().unwrap().memory_limit_bytes,
        Some(128 * MIB as u64)
    );
    assert_eq!(
        ctr_cg.stats().unwrap().memory_limit_bytes,
        Some(64 * MIB as u64)
    );
    // The pod's pids counter includes its containers' processes.
    assert_eq!(pod_cg.stats().unwrap().pids_current, 1);

    child.kill().unwrap();
    child.wait().unwrap();
    ctr_cg.remove().unwrap();
    assert!(!ctr_cg.exists());
    assert!(
        pod_cg.exists(),
        "removing the container took the pod cgroup"
    );
    pod_cg.remove().unwrap();
    assert!(!pod_cg.exists());
    for p in pod_cg.paths() {
        assert!(p.parent().unwrap().exists(), "the caller's parents stay");
    }
    guard.paths.retain(|p| p != &ctr && p != &pod);
}

#[test]
fn systemd_style_path_becomes_a_slice_tree() {
    let n = unique("x").rsplit('/').next().unwrap().replace('-', "x");
    let slice = format!("podruntest-{n}.slice");
    let cg = cgroups::open(&format!("{slice}:podrun:c1")).unwrap();
    let _guard = Cleanup::new(&[
        &format!("/podruntest.slice/{slice}/podrun-c1.scope"),
        &format!("/podruntest.slice/{slice}"),
        "/podruntest.slice",
    ]);
    cg.create().unwrap();
    let want = format!("podruntest.slice/{slice}/podrun-c1.scope");
    for p in cg.paths() {
        assert!(p.ends_with(&want), "{}", p.display());
        assert!(p.is_dir());
    }
    cg.remove().unwrap();
}

#[test]
fn unsupported_and_invalid_fields_are_named() {
    let path = unique("fields");
    let _guard = Cleanup::new(&[&path]);
    let cg = cgroups::open(&path).unwrap();
    if cg.controller_path("net_cls").is_none() || cg.mode() == CgroupMode::Unified {
        let res = LinuxResourcesBuilder::default()
            .network(
                LinuxNetworkBuilder::default()
                    .class_id(7u32)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let e = cg.set(&res).unwrap_err();
        assert!(e.to_string().starts_with("linux.resources.network"), "{e}");
    }
    let res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MIB)
                .swap(32 * MIB)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = cg.set(&res).unwrap_err();
    assert!(
        matches!(&e, CgroupError::InvalidValue { field, .. } if field == "memory.swap")
            || matches!(&e, CgroupError::UnsupportedField { field, .. } if field == "memory.swap"),
        "{e}"
    );
    let e = cgroups::open("a.slice:b")
        .err()
        .expect("bad systemd path accepted");
    assert!(e.to_string().contains("linux.cgroupsPath"), "{e}");
    cg.remove().unwrap();
}

/// The VM harness says which layout it booted (PODRUN_EXPECT_CGROUP_MODE=Unified), so a
/// run that silently fell back to another layout fails instead of passing.
#[test]
fn layout_is_the_one_the_environment_expects() {
    let mode = cgroups::mode().unwrap();
    eprintln!("cgroup mode: {mode:?}");
    if let Ok(want) = std::env::var("PODRUN_EXPECT_CGROUP_MODE") {
        assert_eq!(format!("{mode:?}"), want);
    }
}
