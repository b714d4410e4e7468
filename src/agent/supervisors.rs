//! The agent's table of pod supervisors: each held by pidfd, adopted when it was already
//! running, and started again (to re-adopt its pod) when it dies while its pod lives.
use crate::handoff::pidfd::{ExitStatus, ProcessHandle};
use crate::supervisor::store;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A supervisor that lived shorter than this crashed "quickly": repeated quick crashes
/// back off, so a supervisor that cannot start does not spin.
const QUICK: Duration = Duration::from_secs(2);
/// Quick crashes restarted at once (at most one start per second) before backing off.
const QUICK_RETRIES: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// When to start a pod's supervisor again after it died, or None when the pod is gone
/// (its supervisor finished a deletion). Pure: the decision only.
pub fn restart_delay(pod_exists: bool, lived: Duration, quick_crashes: u32) -> Option<Duration> {
    if !pod_exists {
        return None;
    }
    let one_per_second = Duration::from_secs(1).saturating_sub(lived);
    if lived >= QUICK || quick_crashes <= QUICK_RETRIES {
        return Some(one_per_second);
    }
    let doublings = (quick_crashes - QUICK_RETRIES).min(16);
    Some(Duration::from_secs(1 << doublings).min(MAX_BACKOFF))
}

/// One pod's supervisor as the agent sees it.
#[derive(Debug)]
struct Entry {
    process: Option<ProcessHandle>,
    /// Started by this agent (so ours to reap), not adopted from an earlier one.
    child: bool,
    started: Instant,
    quick_crashes: u32,
    restart_at: Option<Instant>,
}

/// What `create` hands a new pod's supervisor: the pipe it reports on, the owner lock.
#[derive(Debug)]
pub struct Handed {
    pub ready: OwnedFd,
    pub lock: OwnedFd,
}

/// How to start a supervisor.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: PathBuf,
    pub root: PathBuf,
    pub data_dir: PathBuf,
}

/// Every pod supervisor under one state root, by pod key (the pod dir's name).
#[derive(Debug)]
pub struct Supervisors {
    launch: Launch,
    entries: BTreeMap<String, Entry>,
}

impl Supervisors {
    pub fn new(launch: Launch) -> Supervisors {
        Supervisors {
            launch,
            entries: BTreeMap::new(),
        }
    }

    fn pods_dir(&self) -> PathBuf {
        self.launch.root.join("pods")
    }

    fn pod_dir(&self, key: &str) -> PathBuf {
        self.pods_dir().join(key)
    }

    /// Finds pods not yet in the table: a live supervisor is adopted (held by pidfd, not
    /// touched), a pod without one gets a new supervisor that re-adopts it. Returns how
    /// many unknown pod directories are still being made (worth another look soon).
    pub fn scan(&mut self, now: Instant) -> usize {
        let Ok(dirs) = std::fs::read_dir(self.pods_dir()) else {
            return 0;
        };
        let mut unmade = 0;
        for d in dirs.flatten() {
            let key = d.file_name().to_string_lossy().into_owned();
            if self.entries.contains_key(&key) || key.starts_with('.') {
                continue;
            }
            // No pid file yet: a pod being created, whose creator starts its supervisor.
            let made =
                d.path().join(store::POD_FILE).exists() && d.path().join(store::PID_FILE).exists();
            if !made {
                unmade += usize::from(d.file_type().is_ok_and(|t| t.is_dir()));
                continue;
            }
            let process = live_supervisor(&d.path());
            // A supervisor that ran before this agent: SIGHUP tells it an agent is here,
            // and it hands over its containers' fds (see Worker::agent_came).
            if let Some(p) = process.as_ref() {
                let _ = p.signal(libc::SIGHUP);
            }
            let restart_at = process.is_none().then_some(now);
            self.entries.insert(
                key,
                Entry {
                    process,
                    child: false,
                    started: now,
                    quick_crashes: 0,
                    restart_at,
                },
            );
        }
        unmade
    }

    /// Starts the supervisor of pod `key`: a new pod's with `handed` (the pipe `up` waits
    /// on and the pod's owner lock), or one that takes over from a dead supervisor.
    pub fn spawn(
        &mut self,
        key: &str,
        handed: Option<Handed>,
        now: Instant,
    ) -> std::io::Result<i32> {
        let child = spawn_supervisor(&self.launch, &self.pod_dir(key), handed)?;
        let pid = child.id() as i32;
        // The pidfd, not the Child, watches it; the agent reaps its children itself.
        std::mem::forget(child);
        let process = ProcessHandle::open(pid, None)?;
        let quick_crashes = self.entries.get(key).map_or(0, |e| e.quick_crashes);
        self.entries.insert(
            key.to_string(),
            Entry {
                process: Some(process),
                child: true,
                started: now,
                quick_crashes,
                restart_at: None,
            },
        );
        Ok(pid)
    }

    /// The pidfds to poll, with their pod keys.
    pub fn watched(&self) -> Vec<(String, BorrowedFd<'_>)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.process.as_ref().map(|p| (k.clone(), p.as_fd())))
            .collect()
    }

    /// A watched supervisor exited: reap it if it is ours and decide its pod's future.
    pub fn exited(&mut self, key: &str, now: Instant) {
        let exists = self.pod_dir(key).join(store::POD_FILE).exists();
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let Some(p) = e.process.take() else {
            return; // seen already (its pidfd and SIGCHLD both tell)
        };
        let mut status = p.exit_status();
        if e.child {
            let reaped = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(p.pid()),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            if let Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) = reaped {
                status = Some(ExitStatus::Signaled(sig as i32));
            }
        }
        // Killed (kill -9, the OOM killer) is not a supervisor that cannot start: no
        // back-off for it, however soon it came.
        let killed = matches!(status, Some(ExitStatus::Signaled(_)));
        let lived = now.saturating_duration_since(e.started);
        e.quick_crashes = if lived < QUICK && !killed {
            e.quick_crashes + 1
        } else {
            0
        };
        match restart_delay(exists, lived, e.quick_crashes) {
            Some(d) => e.restart_at = Some(now + d),
            None => {
                self.entries.remove(key);
            }
        }
    }

    /// Starts every supervisor whose restart is due; returns what failed to start.
    pub fn restart_due(&mut self, now: Instant) -> Vec<(String, std::io::Error)> {
        let due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.restart_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut failed = Vec::new();
        for key in due {
            if !self.pod_dir(&key).join(store::POD_FILE).exists() {
                self.entries.remove(&key);
                continue;
            }
            if let Err(e) = self.spawn(&key, None, now) {
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.restart_at = Some(now + Duration::from_secs(1));
                }
                failed.push((key, e));
            }
        }
        failed
    }

    /// The earliest pending restart.
    pub fn next_restart(&self) -> Option<Instant> {
        self.entries.values().filter_map(|e| e.restart_at).min()
    }

    /// Sends `sig` to every supervisor running (SIGHUP: the node changed, look again).
    pub fn signal_all(&self, sig: i32) {
        for p in self.entries.values().filter_map(|e| e.process.as_ref()) {
            let _ = p.signal(sig);
        }
    }

    /// Sends `sig` to the supervisor of pod `key`, if one runs.
    pub fn signal(&self, key: &str, sig: i32) {
        if let Some(p) = self.entries.get(key).and_then(|e| e.process.as_ref()) {
            let _ = p.signal(sig);
        }
    }

    /// Is a supervisor of pod `key` running right now?
    pub fn running(&self, key: &str) -> bool {
        self.entries
            .get(key)
            .and_then(|e| e.process.as_ref())
            .is_some_and(|p| !p.exited())
    }
}

/// The supervisor a pod dir's pid file names, if it is still that process.
fn live_supervisor(pod_dir: &Path) -> Option<ProcessHandle> {
    let text = std::fs::read_to_string(pod_dir.join(store::PID_FILE)).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let started: u64 = f.next()?.parse().ok()?;
    ProcessHandle::open(pid, Some(started))
        .ok()
        .filter(|p| !p.exited())
}

/// Starts `podrun supervise` for `pod_dir`, in its own session, stderr to supervisor.log.
fn spawn_supervisor(
    l: &Launch,
    pod_dir: &Path,
    handed: Option<Handed>,
) -> std::io::Result<std::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pod_dir.join("supervisor.log"))?;
    let fds = handed
        .as_ref()
        .map(|h| (h.ready.as_raw_fd(), h.lock.as_raw_fd()));
    let ctx = crate::pod::PodContext {
        root: l.root.clone(),
        data_dir: l.data_dir.clone(),
    };
    let mut cmd = crate::pod::create::supervisor_command(&l.exe, &ctx, pod_dir, fds, log);
    let child = cmd.spawn();
    drop(handed);
    child
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_deleted_pod_gets_no_new_supervisor() {
        assert_eq!(restart_delay(false, S(100), 0), None);
    }

    #[test]
    fn a_crash_after_a_while_is_restarted_at_once() {
        assert_eq!(restart_delay(true, S(30), 0), Some(Duration::ZERO));
        assert_eq!(restart_delay(true, S(3), 40), Some(Duration::ZERO));
    }

    #[test]
    fn quick_crashes_are_restarted_at_most_once_a_second_then_back_off() {
        assert_eq!(restart_delay(true, MS(300), 1), Some(MS(700)));
        assert_eq!(restart_delay(true, MS(1500), 5), Some(Duration::ZERO));
        assert_eq!(restart_delay(true, MS(100), 6), Some(S(2)));
        assert_eq!(restart_delay(true, MS(100), 7), Some(S(4)));
        assert_eq!(restart_delay(true, MS(100), 30), Some(MAX_BACKOFF));
        assert_eq!(restart_delay(true, MS(100), u32::MAX), Some(MAX_BACKOFF));
    }

    #[test]
    fn scan_adopts_a_live_supervisor_and_restarts_a_dead_ones_pod() {
        let root = std::env::temp_dir().join(format!("podrun-sup-scan-{}", std::process::id()));
        let live = root.join("pods/default_live");
        let dead = root.join("pods/default_dead");
        for d in [&live, &dead] {
            std::fs::create_dir_all(d).expect("dir");
            std::fs::write(d.join(store::POD_FILE), "{}").expect("pod");
        }
        // A stand-in supervisor that survives the SIGHUP scan sends to the ones it adopts.
        let mut stand_in = std::process::Command::new("sh")
            .args(["-c", "trap '' HUP; sleep 30"])
            .spawn()
            .expect("sh");
        let pid = stand_in.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::write(live.join(store::PID_FILE), store::pid_record(pid)).expect("pid");
        let me = std::process::id() as i32;
        // A pid record whose start time does not match: a reused pid, not our supervisor.
        std::fs::write(dead.join(store::PID_FILE), format!("{me} 1\n")).expect("pid");
        let mut s = Supervisors::new(Launch {
            exe: PathBuf::from("/bin/false"),
            root: root.clone(),
            data_dir: root.clone(),
        });
        let now = Instant::now();
        s.scan(now);
        assert!(s.running("default_live"));
        assert!(!s.running("default_dead"));
        assert_eq!(s.next_restart(), Some(now));
        let _ = stand_in.kill();
        let _ = stand_in.wait();
        let _ = std::fs::remove_dir_all(&root);
    }
}
