//! The pause program: tiny, exits 0 on SIGTERM/SIGINT, reaps zombies as PID 1.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The tests here write an executable and run it at once: one at a time, so no other
/// test thread's fork can hold the fresh file open for writing (ETXTBSY).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn installed_pause(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podrun-pause-test-{}-{tag}", std::process::id()));
    podrun::supervisor::pause::install(&dir).expect("install pause")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number")
}

/// Spawns `cmd`, retrying while another test thread's fork still holds a just-written
/// executable open (ETXTBSY lasts until that child execs).
fn spawn_retry(cmd: &mut Command) -> std::process::Child {
    for _ in 0..50 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => sleep(Duration::from_millis(20)),
            other => return other.expect("spawn"),
        }
    }
    panic!("executable stayed busy")
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        assert!(Instant::now() < deadline, "pause did not exit");
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn pause_binary_is_at_most_16_kib() {
    let len = podrun::supervisor::pause::PAUSE_BINARY.len();
    assert!(len <= 16 * 1024, "pause is {len} bytes");
}

#[test]
fn pause_sleeps_small_and_exits_zero_on_sigterm_and_sigint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = installed_pause("signals");
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut child = spawn_retry(&mut Command::new(&bin));
        sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "pause must keep running"
        );
        let rss = rss_kib(child.id());
        assert!(rss < 200, "pause resident memory {rss} KiB");
        // SAFETY: plain kill(2) on the pid of our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let st = wait_exit(&mut child);
        assert_eq!(st.code(), Some(0), "signal {sig}: {st:?}");
    }
    let _ = std::fs::remove_dir_all(bin.parent().expect("dir"));
}

#[test]
fn pause_as_pid1_reaps_orphans() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = installed_pause("reap");
    // unshare forks pause as PID 1 of a new PID namespace.
    let mut unshare = Command::new("unshare")
        .args(["--fork", "--pid", "--kill-child"])
        .arg(&bin)
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) must be installed");
    sleep(Duration::from_millis(200));
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", unshare.id()))
        .expect("children");
    let pause_pid: u32 = children
        .split_whitespace()
        .next()
        .expect("pause pid")
        .parse()
        .expect("pid");
    // An orphan inside the namespace is reparented to pause, which must reap it.
    let st = Command::new("nsenter")
        .args([
            "-t",
            &pause_pid.to_string(),
            "-p",
            "--",
            "/bin/sh",
            "-c",
            "sleep 0.2 & echo $! ; exit 0",
        ])
        .output()
        .expect("nsenter");
    assert!(st.status.success());
    sleep(Duration::from_millis(600));
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", pause_pid))
        .expect("children");
    assert!(
        kids.trim().is_empty(),
        "pause left children/zombies: {kids}"
    );
    // SAFETY: kill(2) on a pid we started.
    unsafe { libc::kill(pause_pid as i32, libc::SIGTERM) };
    let st = wait_exit(&mut unshare);
    assert_eq!(st.code(), Some(0));
    let _ = std::fs::remove_dir_all(bin.parent().expect("dir"));
}
