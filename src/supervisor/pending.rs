//! Admission of the pod on this node, and its re-admission while Pending: retried when
//! node.json changes or another pod ends (inotify on the node file's and the pods'
//! directories; under the agent, its SIGHUP), not by polling.
use super::store;
use super::worker::{SupervisorError, Worker};
use crate::admission::{self, Decision};
use crate::node::NodeStore;
use crate::spec;
use k8s_openapi::api::core::v1::Pod;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

impl Worker {
    /// Waits until the pod fits this node, recording FailedScheduling once per distinct
    /// reason. A refused pod tries again when something that could let it in changes
    /// (see [`AdmissionWatch`]). Returns false when deleted meanwhile (or refused for
    /// good).
    pub(super) fn schedule(&mut self, sigfd: &SignalFd) -> Result<bool, SupervisorError> {
        let nodes = NodeStore::new(&self.args.data_dir);
        let pods = store::PodStore::new(&self.args.root);
        // Watching before the first try: a change between a refusal and the wait is seen.
        // Under the agent, the agent watches for all Pending pods and tells (SIGHUP).
        let own = || AdmissionWatch::new(&nodes.path(), pods.pods_dir());
        let mut watch = match self.agent.as_ref() {
            Some(sock) => AdmissionWatch::by_agent(sock.as_raw_fd()),
            None => own(),
        };
        let mut told = false;
        let mut last_message = String::new();
        loop {
            let node = nodes
                .load()
                .map_err(|e| SupervisorError::Sandbox(e.to_string()))?;
            let tried = Instant::now();
            let decision = self.admit_locked(&pods, &node)?;
            self.learn_node(&node);
            if let Some(admitted) = self.on_decision(decision, &mut last_message) {
                if told {
                    self.tell_agent_pending(false);
                }
                return Ok(admitted);
            }
            self.flush();
            self.signal_ready("ok");
            if watch.driven() && !told {
                told = true;
                if !self.tell_agent_pending(true) {
                    watch = own();
                }
                // Room that came before the agent knew of us: one more try at once.
                continue;
            }
            if !watch.wait_for_room(sigfd, tried)? {
                return Ok(false);
            }
            if watch.agent_lost {
                // The agent went: watch on our own, and try again (a change may be lost).
                watch = own();
            }
        }
    }

    /// Tells the agent that the pod waits for room (or no more); false when it could
    /// not be told.
    fn tell_agent_pending(&mut self, waiting: bool) -> bool {
        use crate::handoff::vault as handoff;
        let Some(sock) = self.agent.as_ref() else {
            return false;
        };
        let pod = self
            .args
            .pod_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let req = handoff::Request::Pending { pod, waiting };
        handoff::call(sock.as_fd(), &req, &[]).is_ok()
    }

    /// Asks admission about the pod, with the pods counted and our binding under one
    /// lock: a concurrent admission either sees us bound or runs after us (read before
    /// it, 200 concurrent `up`s admitted 186 past maxPods 110).
    fn admit_locked(
        &mut self,
        pods: &store::PodStore,
        node: &k8s_openapi::api::core::v1::Node,
    ) -> Result<Decision, SupervisorError> {
        let _lock = pods.lock()?;
        let others: Vec<Pod> = super::admitted::bound_pods(pods, &self.args.pod_dir);
        let d = admission::admit(&self.pod, node, &others);
        if let Decision::Admitted(_) = &d {
            // Bind while holding the lock, so a concurrent admission counts us.
            self.set_condition("PodScheduled", true, None, None);
            self.status.host_ip = crate::network::host_ip();
            self.status.host_ips = self
                .status
                .host_ip
                .clone()
                .map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip }]);
            self.flush();
        }
        Ok(d)
    }

    /// What the containers' environment says of the node (downward API).
    pub(super) fn learn_node(&mut self, node: &k8s_openapi::api::core::v1::Node) {
        self.node_name = crate::node::node_name(node).to_string();
        self.node_mem = node_capacity(node, "memory") as u64;
        self.node_alloc = spec::env::NodeAllocatable {
            cpu_milli: node_allocatable(node, "cpu", true),
            memory_bytes: node_allocatable(node, "memory", false),
            ephemeral_storage_bytes: node_allocatable(node, "ephemeral-storage", false),
        };
    }

    /// Records admission's decision: Some(admitted?) when it is final, None while the
    /// pod stays Pending.
    fn on_decision(&mut self, decision: Decision, last_message: &mut String) -> Option<bool> {
        match decision {
            Decision::Admitted(a) => {
                if let Some(spec) = self.pod.spec.as_mut() {
                    spec.node_name = Some(a.node.clone());
                }
                let _ = store::write_json(&self.args.pod_dir.join(store::POD_FILE), &self.pod);
                if a.scheduled {
                    self.event(
                        "Normal",
                        "Scheduled",
                        "default-scheduler",
                        "",
                        &a.scheduled_message(&self.pod),
                    );
                }
                return Some(true);
            }
            Decision::Unschedulable(u) => {
                if u.message != *last_message {
                    self.event(
                        "Warning",
                        "FailedScheduling",
                        "default-scheduler",
                        "",
                        &u.message,
                    );
                    self.set_condition(
                        "PodScheduled",
                        false,
                        Some("Unschedulable"),
                        Some(&u.message),
                    );
                    *last_message = u.message.clone();
                }
            }
            Decision::BoundElsewhere { message, .. } => {
                if message != *last_message {
                    self.event(
                        "Warning",
                        "FailedScheduling",
                        "default-scheduler",
                        "",
                        &message,
                    );
                    self.set_condition(
                        "PodScheduled",
                        false,
                        Some("Unschedulable"),
                        Some(&message),
                    );
                    *last_message = message;
                }
            }
            Decision::SchedulingGated { .. } => {
                self.set_condition(
                    "PodScheduled",
                    false,
                    Some(admission::SCHEDULING_GATED_REASON),
                    Some(admission::SCHEDULING_GATED_MESSAGE),
                );
            }
            Decision::Rejected(r) => {
                self.event("Warning", &r.reason, "kubelet", "", &r.message);
                self.status.phase = Some("Failed".into());
                self.status.reason = Some(r.reason.clone());
                self.status.message = Some(format!("Pod was rejected: {}", r.message));
                self.dirty = true;
                self.flush();
                self.signal_ready("ok");
                return Some(false);
            }
            Decision::Invalid(errs) => {
                let msg = errs.to_string();
                self.status.phase = Some("Failed".into());
                self.status.message = Some(msg.clone());
                self.dirty = true;
                self.flush();
                self.signal_ready(&format!("error: {msg}"));
                return Some(false);
            }
        }
        None
    }
}

/// A pod bound to this node that still holds resources (not Succeeded/Failed).
pub fn is_bound_and_active(pod: &Pod) -> bool {
    let st = pod.status.as_ref();
    let scheduled = st.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    });
    let phase = st.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    scheduled && phase != "Succeeded" && phase != "Failed"
}

fn quantity(node: &k8s_openapi::api::core::v1::Node, which: &str, key: &str, milli: bool) -> i64 {
    let q = node.status.as_ref().and_then(|s| {
        if which == "capacity" {
            s.capacity.as_ref()
        } else {
            s.allocatable.as_ref()
        }
    });
    let Some(q) = q.and_then(|m| m.get(key)) else {
        return 0;
    };
    let v = if milli {
        crate::manifest::quantity::parse_milli(&q.0)
    } else {
        crate::manifest::quantity::parse_value(&q.0)
    };
    v.map(|v| v as i64).unwrap_or(0)
}

fn node_capacity(node: &k8s_openapi::api::core::v1::Node, key: &str) -> i64 {
    quantity(node, "capacity", key, false)
}

fn node_allocatable(node: &k8s_openapi::api::core::v1::Node, key: &str, milli: bool) -> i64 {
    quantity(node, "allocatable", key, milli)
}

/// What a Pending pod's wait ended with.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// SIGTERM or SIGINT: the pod is being deleted.
    Deleted,
    /// Something changed that may let the pod in: ask admission again.
    Retry,
    /// Nothing of interest (a child reaped, an unrelated file).
    Nothing,
    /// The time given passed.
    Timeout,
    /// The agent that drove the wait hung up.
    AgentLost,
}

/// The changes that may let a refused pod in: node.json rewritten (labels, taints,
/// capacity, maxPods), a pod's directory gone from the pods directory, or a pod's end
/// announced there ([`store::ENDED_FILE`], written when a pod turns Succeeded or
/// Failed). One inotify descriptor over both directories; without inotify, a look
/// every [`FALLBACK_PERIOD`].
pub(super) struct AdmissionWatch {
    inotify: Option<Inotify>,
    node_dir: Option<WatchDescriptor>,
    node_file: std::ffi::OsString,
    /// Without inotify (e.g. fs.inotify.max_user_instances, 128 by default, used up by
    /// other supervisors): what the watched files looked like at the last try.
    paths: [PathBuf; 3],
    seen: Vec<Option<Stamp>>,
    /// Under the agent: its socket (a hang-up means it is gone), and no watch of our
    /// own: its SIGHUP says when to try again.
    agent: Option<std::os::fd::RawFd>,
    /// The agent hung up during the wait.
    pub(super) agent_lost: bool,
}

/// What identifies one version of a file or directory without reading it: atomic writes
/// replace a file (a new inode), and a directory's mtime moves when an entry comes or
/// goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

/// The stamp of `path` now (None: it does not exist).
pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        len: m.len(),
    })
}

/// How often a refused pod tries again where inotify is not available.
pub(super) const FALLBACK_PERIOD: Duration = Duration::from_secs(1);

/// A change is acted on once none followed for this long: a burst of edits (a taint
/// removed, another added) is judged as its outcome, not by the state between them.
pub(super) const SETTLE: Duration = Duration::from_millis(500);

/// A refused pod tries again at most this often (kube-scheduler's initial back-off of
/// an unschedulable pod, podInitialBackoffSeconds).
pub(super) const RETRY_BACKOFF: Duration = Duration::from_secs(1);

impl AdmissionWatch {
    pub(super) fn new(node_file: &Path, pods_dir: &Path) -> AdmissionWatch {
        let paths = [
            node_file.to_path_buf(),
            pods_dir.to_path_buf(),
            pods_dir.join(store::ENDED_FILE),
        ];
        let mut w = AdmissionWatch {
            inotify: None,
            node_dir: None,
            node_file: node_file.file_name().unwrap_or_default().to_os_string(),
            seen: paths.iter().map(|p| stamp(p)).collect(),
            paths,
            agent: None,
            agent_lost: false,
        };
        let Ok(i) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) else {
            return w;
        };
        let moved = AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE;
        let node_dir = node_file
            .parent()
            .and_then(|d| i.add_watch(d, moved | AddWatchFlags::IN_DELETE).ok());
        let gone = AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM;
        if node_dir.is_none() || i.add_watch(pods_dir, moved | gone).is_err() {
            return w;
        }
        w.node_dir = node_dir;
        w.inotify = Some(i);
        w
    }

    /// No watch of our own: the agent (connected on `agent`) sends SIGHUP when a pod
    /// ended or went, or the node changed.
    pub(super) fn by_agent(agent: std::os::fd::RawFd) -> AdmissionWatch {
        AdmissionWatch {
            inotify: None,
            node_dir: None,
            node_file: Default::default(),
            paths: Default::default(),
            seen: Vec::new(),
            agent: Some(agent),
            agent_lost: false,
        }
    }

    /// Whether the agent drives this watch.
    pub(super) fn driven(&self) -> bool {
        self.agent.is_some()
    }

    /// Waits until admission is worth asking again (true), or the pod is deleted
    /// (false): a change, then [`SETTLE`] of quiet, and [`RETRY_BACKOFF`] after the last
    /// try at `tried`. Without inotify: every [`FALLBACK_PERIOD`].
    pub(super) fn wait_for_room(
        &mut self,
        sigfd: &SignalFd,
        tried: Instant,
    ) -> Result<bool, SupervisorError> {
        if self.inotify.is_none() && self.agent.is_none() {
            return self.poll_for_room(sigfd);
        }
        loop {
            match self.wait(sigfd, None)? {
                Wake::Deleted => return Ok(false),
                Wake::Retry => break,
                Wake::AgentLost => {
                    self.agent = None;
                    self.agent_lost = true;
                    return Ok(true);
                }
                Wake::Nothing | Wake::Timeout => {}
            }
        }
        let mut changed = Instant::now();
        loop {
            let until = (changed + SETTLE).max(tried + RETRY_BACKOFF);
            let now = Instant::now();
            if now >= until {
                return Ok(true);
            }
            match self.wait(sigfd, Some(until - now))? {
                Wake::Deleted => return Ok(false),
                Wake::Retry => changed = Instant::now(),
                Wake::AgentLost => {
                    self.agent = None;
                    self.agent_lost = true;
                    return Ok(true);
                }
                Wake::Nothing | Wake::Timeout => {}
            }
        }
    }

    /// Without inotify: a look every [`FALLBACK_PERIOD`] at the stamps of node.json, the
    /// pods directory and the end file (three stats); admission is asked again only
    /// when one changed.
    fn poll_for_room(&mut self, sigfd: &SignalFd) -> Result<bool, SupervisorError> {
        loop {
            if self.wait(sigfd, Some(FALLBACK_PERIOD))? == Wake::Deleted {
                return Ok(false);
            }
            let now: Vec<Option<Stamp>> = self.paths.iter().map(|p| stamp(p)).collect();
            if now != self.seen {
                self.seen = now;
                return Ok(true);
            }
        }
    }

    /// Waits for a signal or a change (see [`Wake`]), at most `timeout`.
    fn wait(&self, sigfd: &SignalFd, timeout: Option<Duration>) -> Result<Wake, SupervisorError> {
        let mut fds = vec![libc::pollfd {
            fd: sigfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(i) = &self.inotify {
            fds.push(libc::pollfd {
                fd: i.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(fd) = self.agent {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128 - 1) as i32 + 1);
        // SAFETY: fds is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n == 0 {
            return Ok(Wake::Timeout);
        }
        let mut retry = false;
        if fds[0].revents != 0 {
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT) => return Ok(Wake::Deleted),
                    // The agent's word: room may have come.
                    Ok(Signal::SIGHUP) if self.agent.is_some() => retry = true,
                    _ => {}
                }
            }
        }
        // The agent never speaks first: anything readable is its hang-up.
        if self.agent.is_some() && fds.last().is_some_and(|f| f.revents != 0) {
            return Ok(Wake::AgentLost);
        }
        if let Some(i) = self.inotify.as_ref().filter(|_| fds[1].revents != 0) {
            while let Ok(events) = i.read_events() {
                if events.is_empty() {
                    break;
                }
                retry |= events.iter().any(|e| {
                    let in_node_dir = Some(e.wd) == self.node_dir;
                    may_admit(in_node_dir, e.mask, e.name.as_deref(), &self.node_file)
                });
            }
        }
        Ok(if retry { Wake::Retry } else { Wake::Nothing })
    }
}

/// Whether one inotify event may let a refused pod in: in the node file's directory,
/// node.json replaced or written; in the pods directory, a pod's directory removed or
/// a pod's end announced. Admissions themselves (the pods lock, new pod directories)
/// are not: a pod admitted takes room, it frees none.
pub(super) fn may_admit(
    in_node_dir: bool,
    mask: AddWatchFlags,
    name: Option<&std::ffi::OsStr>,
    node_file: &std::ffi::OsStr,
) -> bool {
    if in_node_dir {
        return name == Some(node_file);
    }
    let dir_gone = mask.contains(AddWatchFlags::IN_ISDIR)
        && mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
    dir_gone || name == Some(std::ffi::OsStr::new(store::ENDED_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    const NODE: &str = "node.json";

    fn node_dir(mask: AddWatchFlags, name: &str) -> bool {
        may_admit(true, mask, Some(OsStr::new(name)), OsStr::new(NODE))
    }

    fn pods_dir(mask: AddWatchFlags, name: &str) -> bool {
        may_admit(false, mask, Some(OsStr::new(name)), OsStr::new(NODE))
    }

    #[test]
    fn node_json_replaced_or_written_retries_admission() {
        assert!(node_dir(AddWatchFlags::IN_MOVED_TO, NODE));
        assert!(node_dir(AddWatchFlags::IN_CLOSE_WRITE, NODE));
        assert!(!node_dir(AddWatchFlags::IN_CLOSE_WRITE, "node.lock"));
        assert!(!node_dir(AddWatchFlags::IN_MOVED_TO, "images.json"));
    }

    #[test]
    fn a_pod_gone_or_ended_retries_admission() {
        let gone = AddWatchFlags::IN_DELETE | AddWatchFlags::IN_ISDIR;
        assert!(pods_dir(gone, "default_web"));
        assert!(pods_dir(
            AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_ISDIR,
            "default_web"
        ));
        assert!(pods_dir(AddWatchFlags::IN_CLOSE_WRITE, store::ENDED_FILE));
    }

    #[test]
    fn stamps_tell_a_replaced_file_and_a_directory_whose_entries_changed() {
        let dir = std::env::temp_dir().join(format!("podrun-stamp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(NODE);
        assert_eq!(stamp(&file), None);
        std::fs::write(&file, b"{}").unwrap();
        let (f0, d0) = (stamp(&file), stamp(&dir));
        assert!(f0.is_some());
        // An atomic rewrite: a new file renamed over the old one.
        std::fs::write(dir.join("tmp"), b"{}").unwrap();
        std::fs::rename(dir.join("tmp"), &file).unwrap();
        assert_ne!(stamp(&file), f0);
        let d1 = stamp(&dir);
        std::thread::sleep(Duration::from_millis(5));
        std::fs::create_dir(dir.join("default_p")).unwrap();
        std::fs::remove_dir(dir.join("default_p")).unwrap();
        assert_ne!(stamp(&dir), d1);
        assert!(d0.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn admissions_and_new_pods_do_not_wake_pending_pods() {
        // Every admission closes the pods lock: Pending pods retrying would wake each
        // other for ever.
        assert!(!pods_dir(AddWatchFlags::IN_CLOSE_WRITE, ".lock"));
        let created = AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ISDIR;
        assert!(!pods_dir(created, "default_new"));
        assert!(!pods_dir(AddWatchFlags::IN_DELETE, "stray-file"));
    }
}
