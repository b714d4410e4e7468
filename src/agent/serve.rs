//! `podrun serve`'s loop: one thread, one poll over signals, the agent socket, its
//! clients, the supervisors' pidfds and the pods directory.
use super::supervisors::{Handed, Launch, Supervisors};
use crate::handoff::vault::{self as handoff, FdVault, Reply, Request};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often at most the agent looks for pods it does not know (pods `up` started while
/// no agent ran; it starts every other supervisor itself): when inotify says a pod
/// directory came, and on this clock only without inotify.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// After this long with nothing to do, the agent drops the code pages its last burst of
/// work faulted in (see trim_resident).
const TRIM_QUIET: Duration = Duration::from_secs(2);
/// Looks again at pod directories still being made (no pid file yet), at most this many
/// times in a row: a directory left half-made does not keep the agent awake.
const UNMADE_LOOKS: u32 = 30;

use crate::handoff::connect;
pub use crate::handoff::SOCKET;

/// What `serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// The static pod manifest directory (kubelet's staticPodPath).
    pub manifests: PathBuf,
}

/// What stops the agent from running.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("another agent serves {0}")]
    AlreadyRunning(PathBuf),
    #[error("{0}")]
    Service(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Sys { what, source }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Io { what, source }
}

/// The agent's state between polls.
struct Agent {
    supervisors: Supervisors,
    vault: FdVault,
    listener: OwnedFd,
    clients: Vec<OwnedFd>,
    signals: SignalFd,
    /// When to look for pods started without the agent (by `up` before it ran): None
    /// until inotify tells of a new pod directory.
    next_scan: Option<Instant>,
    last_scan: Instant,
    /// Looks in a row that found pod directories still being made.
    unmade_looks: u32,
    /// Pods whose supervisors wait for room: told (SIGHUP) when some may have come.
    pending: std::collections::BTreeSet<String>,
    /// When to drop the code pages a burst of work faulted in (see trim_resident).
    trim_at: Option<Instant>,
    /// Tells of new pod directories and node.json changes (see PodsWatch).
    pods_watch: super::pods_watch::PodsWatch,
    ctx: crate::pod::PodContext,
    statics: super::static_pods::StaticPods,
    /// What node.json looked like when last checked (inode, mtime, size).
    node_stamp: Option<(u64, i64, i64, u64)>,
}

/// Runs the agent until SIGTERM or SIGINT; pods and their supervisors keep running.
pub fn serve(opts: &ServeOptions) -> Result<(), AgentError> {
    let notify = super::service::Notifier::take_from_env();
    crate::util::raise_nofile_limit();
    // Orphaned container processes of a crashed supervisor come to us, not to init.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut agent = Agent::start(opts)?;
    // After Agent::start blocked the signals: the API thread inherits the mask.
    let _api = crate::api::start_for_agent(&opts.root, &opts.data_dir);
    let _pid_file = match &opts.pid_file {
        Some(p) => Some(
            super::service::PidFile::create(p).map_err(|e| AgentError::Service(e.to_string()))?,
        ),
        None => None,
    };
    let socket = opts.root.join(SOCKET);
    eprintln!("podrun serve: agent running on {}", socket.display());
    let _ = notify.ready(&format!("supervising the pods of {}", opts.root.display()));
    let result = agent.run();
    let _ = notify.stopping();
    let _ = std::fs::remove_file(&socket);
    eprintln!("podrun serve: stopped; the pods run on");
    result
}

impl Agent {
    fn start(opts: &ServeOptions) -> Result<Agent, AgentError> {
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        mask.thread_block().map_err(sys("blocking signals"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sys("signalfd"))?;
        let pods_dir = opts.root.join("pods");
        std::fs::create_dir_all(&pods_dir).map_err(io(pods_dir.display().to_string()))?;
        let exe = std::env::current_exe().map_err(io("finding podrun's own executable"))?;
        let launch = Launch {
            exe,
            root: opts.root.clone(),
            data_dir: opts.data_dir.clone(),
        };
        let ctx = crate::pod::PodContext {
            root: opts.root.clone(),
            data_dir: opts.data_dir.clone(),
        };
        Ok(Agent {
            supervisors: Supervisors::new(launch),
            vault: FdVault::default(),
            listener: listen(&opts.root.join(SOCKET))?,
            clients: Vec::new(),
            signals,
            next_scan: None,
            pending: Default::default(),
            trim_at: None,
            last_scan: Instant::now(),
            unmade_looks: 0,
            pods_watch: super::pods_watch::PodsWatch::new(
                &pods_dir,
                &crate::node::NodeStore::new(&opts.data_dir).path(),
            ),
            ctx: ctx.clone(),
            statics: super::static_pods::StaticPods::new(&ctx, opts.manifests.clone()),
            node_stamp: None,
        })
    }

    fn run(&mut self) -> Result<(), AgentError> {
        crate::controllers::start(&self.ctx);
        self.restore();
        self.look_for_pods(Instant::now());
        self.node_changed();
        loop {
            for (key, e) in self.supervisors.restart_due(Instant::now()) {
                eprintln!("podrun serve: starting the supervisor of {key}: {e}");
            }
            let ready = self.wait()?;
            if ready.stop {
                return Ok(());
            }
            let now = Instant::now();
            if self.trim_at.is_some_and(|t| now >= t) {
                crate::supervisor::resident::trim_resident();
                self.trim_at = None;
            } else if ready.any() {
                self.trim_at = Some(now + TRIM_QUIET);
            }
            for key in ready.supervisors_exited {
                eprintln!("podrun serve: the supervisor of {key} exited");
                self.pending.remove(&key);
                self.supervisors.exited(&key, now);
            }
            if ready.pods_watch.pods && self.next_scan.is_none() {
                self.next_scan = Some(self.last_scan + SCAN_EVERY);
                self.unmade_looks = 0;
            }
            if self.next_scan.is_some_and(|t| now >= t) {
                self.look_for_pods(now);
            }
            if ready.pods_watch.node || !self.pods_watch.watching() {
                self.node_changed();
            }
            if ready.pods_watch.room {
                self.room_came();
            }
            self.statics.tick(ready.manifests);
            if ready.accept {
                self.accept();
            }
            for i in ready.clients.into_iter().rev() {
                self.serve_client(i);
            }
        }
    }

    /// Looks for pods it does not know; looks again soon while some are being made (or
    /// always, on a clock, without inotify).
    fn look_for_pods(&mut self, now: Instant) {
        let unmade = self.supervisors.scan(now);
        self.last_scan = now;
        self.unmade_looks = if unmade > 0 { self.unmade_looks + 1 } else { 0 };
        let again = !self.pods_watch.watching() || (unmade > 0 && self.unmade_looks < UNMADE_LOOKS);
        self.next_scan = again.then_some(now + SCAN_EVERY);
    }

    /// node.json (labels, taints) changed: every supervisor is told (SIGHUP), so that
    /// none needs a watch of its own (see NoExecuteWatch::driven).
    fn node_changed(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let path = crate::node::NodeStore::new(&self.ctx.data_dir).path();
        let stamp = std::fs::metadata(&path)
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
            .ok();
        if stamp != self.node_stamp {
            if self.node_stamp.is_some() {
                self.supervisors.signal_all(libc::SIGHUP);
            }
            self.node_stamp = stamp;
        }
    }

    /// A pod ended or went: the Pending pods try admission again (their supervisors hold
    /// no watch of their own under the agent; see AdmissionWatch::driven).
    fn room_came(&mut self) {
        for key in &self.pending {
            self.supervisors.signal(key, libc::SIGHUP);
        }
    }

    /// Brings back every desired pod whose runtime state is gone (the boot case): the
    /// same pod, in a new sandbox, its restart counts carried over by its supervisor.
    fn restore(&mut self) {
        let ctx = &self.ctx;
        for want in crate::pod::desired::desired(ctx) {
            let (pod, objects) = match want {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("podrun serve: not restoring a pod: {e}");
                    continue;
                }
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            match crate::pod::desired::restore_record(ctx, &pod, &objects) {
                Ok(None) => {}
                Ok(Some(key)) => {
                    eprintln!("podrun serve: restoring pod {key}");
                    if let Err(e) = self.supervisors.spawn(&key, None, Instant::now()) {
                        eprintln!("podrun serve: starting the supervisor of {key}: {e}");
                    }
                }
                Err(e) => eprintln!("podrun serve: restoring pod {name}: {e}"),
            }
        }
    }

    /// Polls everything once, up to the next due restart.
    fn wait(&mut self) -> Result<Ready, AgentError> {
        let next = [
            self.supervisors.next_restart(),
            self.next_scan,
            self.trim_at,
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = next
            .map_or(Duration::MAX, |t| {
                t.saturating_duration_since(Instant::now())
            })
            .min(self.statics.timeout());
        let watched = self.supervisors.watched();
        let mut fds = vec![
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(
            self.clients
                .iter()
                .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
        );
        fds.extend(
            watched
                .iter()
                .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN)),
        );
        let statics_at = fds.len();
        if let Some(fd) = self.statics.fd() {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let pods_watch_at = fds.len();
        if let Some(fd) = self.pods_watch.fd() {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let ms = timeout.as_millis().min(u128::from(u16::MAX)) as u16;
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => {
                return Err(AgentError::Sys {
                    what: "poll".into(),
                    source: e,
                })
            }
        }
        let hit = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let n = self.clients.len();
        let mut ready = Ready {
            accept: hit(&fds[1]),
            clients: (0..n).filter(|&i| hit(&fds[2 + i])).collect(),
            supervisors_exited: watched
                .iter()
                .enumerate()
                .filter(|(i, _)| hit(&fds[2 + n + i]))
                .map(|(_, (k, _))| k.clone())
                .collect(),
            manifests: self.statics.fd().is_some() && fds.get(statics_at).is_some_and(hit),
            pods_watch: Default::default(),
            stop: false,
        };
        if self.pods_watch.fd().is_some() && fds.get(pods_watch_at).is_some_and(hit) {
            ready.pods_watch = self.pods_watch.read();
        }
        if hit(&fds[0]) {
            ready.stop = self.read_signals();
        }
        Ok(ready)
    }

    /// Handles pending signals; true on SIGTERM or SIGINT.
    fn read_signals(&mut self) -> bool {
        let mut stop = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGTERM | Signal::SIGINT) => stop = true,
                Ok(Signal::SIGCHLD) => reap_orphans(),
                _ => {}
            }
        }
        stop
    }

    fn accept(&mut self) {
        while let Ok(fd) = socket::accept4(&self.listener, SockFlag::SOCK_CLOEXEC) {
            self.clients.push(fd);
        }
    }

    /// Answers one request from client `i`; drops the client when it hung up.
    fn serve_client(&mut self, i: usize) {
        let got = handoff::recv::<Request>(self.clients[i].as_fd());
        let replies = match got {
            Err(_) => {
                self.clients.swap_remove(i);
                return;
            }
            Ok((Request::Spawn { pod }, fds)) => self.spawn(&pod, fds),
            Ok((Request::Pending { pod, waiting }, _)) => {
                if waiting {
                    self.pending.insert(pod);
                } else {
                    self.pending.remove(&pod);
                }
                vec![(Reply::Ok, Vec::new())]
            }
            Ok((req, fds)) => self.vault.handle(req, fds),
        };
        for (reply, fds) in replies {
            if handoff::send(self.clients[i].as_fd(), &reply, &fds).is_err() {
                self.clients.swap_remove(i);
                return;
            }
        }
    }

    fn spawn(&mut self, pod: &str, fds: Vec<OwnedFd>) -> Vec<(Reply, Vec<i32>)> {
        let mut fds = fds.into_iter();
        let handed = match (valid_key(pod), fds.next(), fds.next()) {
            (true, Some(ready), Some(lock)) => Some(Handed { ready, lock }),
            _ => None,
        };
        let reply = match handed {
            None => Reply::Error {
                message: format!(
                    "spawn {pod:?}: a pod key, the ready pipe and the lock are needed"
                ),
            },
            Some(handed) => match self.supervisors.spawn(pod, Some(handed), Instant::now()) {
                Ok(_) => Reply::Ok,
                Err(e) => Reply::Error {
                    message: format!("starting the supervisor of {pod}: {e}"),
                },
            },
        };
        vec![(reply, Vec::new())]
    }
}

/// What one poll found.
struct Ready {
    accept: bool,
    clients: Vec<usize>,
    supervisors_exited: Vec<String>,
    /// The static pod manifest directory changed.
    manifests: bool,
    /// A pod directory came, or node.json changed.
    pods_watch: super::pods_watch::Seen,
    stop: bool,
}

impl Ready {
    /// Whether anything came (not only a timer).
    fn any(&self) -> bool {
        self.accept
            || self.stop
            || self.manifests
            || !self.clients.is_empty()
            || !self.supervisors_exited.is_empty()
            || self.pods_watch != Default::default()
    }
}

/// A pod key names one directory under pods/: no separators, no dot names.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('/') && key != "." && key != ".."
}

/// Reaps every exited child: supervisors (their pidfds tell the table) and container
/// processes orphaned by a crashed supervisor (their pidfds, kept in the vault, still
/// tell the new supervisor how they ended).
fn reap_orphans() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Binds the agent socket, refusing to take it over from a live agent.
fn listen(path: &Path) -> Result<OwnedFd, AgentError> {
    if let Ok(existing) = connect(path) {
        drop(existing);
        return Err(AgentError::AlreadyRunning(path.to_path_buf()));
    }
    let _ = std::fs::remove_file(path);
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(sys("socket"))?;
    let addr = UnixAddr::new(path).map_err(sys(path.display().to_string()))?;
    socket::bind(fd.as_raw_fd(), &addr).map_err(sys(format!("binding {}", path.display())))?;
    socket::listen(&fd, socket::Backlog::new(128).map_err(sys("listen"))?)
        .map_err(sys("listen"))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_keys_are_single_directory_names() {
        assert!(valid_key("default_web"));
        assert!(!valid_key(""));
        assert!(!valid_key(".."));
        assert!(!valid_key("a/b"));
    }
}
