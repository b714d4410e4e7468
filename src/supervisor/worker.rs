//! The pod worker: one per pod, in the supervisor process. Admits the pod, builds its
//! sandbox, runs init containers in order, then the regular containers and sidecars,
//! restarts them per restartPolicy with kubelet's back-off, pumps their output into CRI
//! logs, keeps status.json and the events current, and tears everything down on delete.
//!
//! Single-threaded by design: the runtime clones this process to start containers, so
//! the only concurrency is a poll loop over a signalfd (SIGCHLD, SIGTERM) and log pipes.
use super::events;
use super::eviction::NoExecuteWatch;
use super::logs::{self};
use super::probes::{self};
use super::sandbox::Sandbox;
use super::store::{self, PodObjects};
use crate::image::ImageStore;
use crate::runtime::Runtime;
use crate::spec::{self, EnvContext, PodFiles};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why the supervisor could not run a pod at all.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Sandbox(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let what = what.into();
    move |source| SupervisorError::Io { what, source }
}

/// Where the supervisor finds things.
#[derive(Debug, Clone)]
pub struct SuperviseArgs {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub pod_dir: PathBuf,
    /// Write end of a pipe `up` waits on: one line, "ok" or an error, once started.
    pub ready_fd: Option<RawFd>,
    /// Take over a pod whose supervisor died (started so by the agent).
    pub adopt: bool,
}

use super::container::new_ctr;
pub use super::container::Ctr;
pub use super::pending::is_bound_and_active;
use super::pod_state;
pub use super::pod_state::Kind;
use super::resident::trim_resident;
use super::termination::remove_pod_dir;

/// The pod worker's state.
pub struct Worker {
    pub(super) args: SuperviseArgs,
    pub pod: Pod,
    pub(super) objects: PodObjects,
    pub(super) runtime: Runtime,
    pub(super) images: Option<ImageStore>,
    pub(super) status: PodStatus,
    pub ctrs: Vec<Ctr>,
    pub(super) sandbox: Option<Sandbox>,
    pub(super) volumes: Option<spec::volumes::PreparedVolumes>,
    pub(super) node_name: String,
    pub(super) node_alloc: spec::env::NodeAllocatable,
    pub(super) node_mem: u64,
    pub(super) pod_files: PodFiles,
    pub(super) dirty: bool,
    pub(super) ready_fd: Option<RawFd>,
    pub(super) terminating: Option<Instant>,
    /// Deleted (SIGTERM), termination not begun yet: the grace period asked for.
    pub(super) deletion: Option<Duration>,
    pub(super) active_deadline: Option<Instant>,
    pub(super) started_at: Instant,
    pub(super) log_dir: PathBuf,
    /// Open handles of the pod's and our network namespaces, for probes.
    pub(super) netns_files: Option<(File, File)>,
    /// NoExecute taints that would evict this pod once it runs.
    pub(super) noexecute: NoExecuteWatch,
    /// Probe runs still going (exec processes, httpGet requests).
    pub(super) probe_runs: Vec<probes::ProbeRun>,
    /// Until then the loop sleeps: the probe runs started together are collected in one
    /// wake-up (see [`PROBE_BATCH`]).
    pub(super) probe_batch: Option<Instant>,
    /// /dev/null, opened once: the stdin of exec probes and hooks.
    pub(super) devnull: Option<File>,
    /// Lifecycle hooks under way (in helper processes).
    pub(super) hook_runs: Vec<super::hooks::HookRun>,
    /// The pod's end (a terminal phase) was announced to Pending pods.
    pub(super) end_announced: bool,
    /// The node agent's socket, when one runs: it keeps the containers' fds for a
    /// successor should this supervisor die.
    pub(super) agent: Option<OwnedFd>,
    /// What the durable status copy last held (see `persist_status`).
    pub(super) persisted: String,
}

/// How long after a pod's probes fire the supervisor looks again. The exec probes'
/// processes and the httpGet answers of one tick mostly arrive within a few
/// milliseconds of each other; each would wake the supervisor on its own (a context
/// switch costs ~35 µs on a small VM). Gathered, one wake-up takes them all; a probe
/// result, a container's exit or a signal is seen at most this much later. Runs still
/// going after it wake the loop as they finish.
pub(super) const PROBE_BATCH: Duration = Duration::from_millis(10);

/// After this long with nothing to do, the supervisor drops the code pages it ran (see
/// [`trim_resident`]), at most every [`TRIM_EVERY`]; never while idle.
const TRIM_QUIET: Duration = Duration::from_secs(2);
const TRIM_EVERY: Duration = Duration::from_secs(60);

pub(super) fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    crate::util::now_time()
}

/// kubelet's pod description in messages: `name_namespace(uid)`.
pub(super) use crate::spec::user::pod_desc;

impl Worker {
    pub(super) fn event(
        &self,
        type_: &str,
        reason: &str,
        source: &str,
        field_path: &str,
        message: &str,
    ) {
        let _ = events::record(
            &self.args.pod_dir.join(store::EVENTS_FILE),
            type_,
            reason,
            source,
            field_path,
            message,
        );
    }

    pub(super) fn kubelet_event(&self, c: usize, type_: &str, reason: &str, message: &str) {
        let fp = self.ctrs[c].field_path();
        self.event(type_, reason, "kubelet", &fp, message);
    }

    pub(super) fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> =
            std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    pub(super) fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }

    /// Tells `up` how the start went (once).
    pub(super) fn signal_ready(&mut self, msg: &str) {
        if let Some(fd) = self.ready_fd.take() {
            let line = format!("{msg}\n");
            // SAFETY: fd is the pipe's write end handed to us by `up`; we close it here.
            unsafe {
                libc::write(fd, line.as_ptr().cast(), line.len());
                libc::close(fd);
            }
        }
    }

    /// Loads the pod and sets up the worker (no host changes yet).
    pub fn load(args: SuperviseArgs) -> Result<Worker, SupervisorError> {
        let pod: Pod = store::read_json(&args.pod_dir.join(store::POD_FILE))?;
        let objects: PodObjects =
            store::read_json(&args.pod_dir.join(store::OBJECTS_FILE)).unwrap_or_default();
        let runtime = Runtime::new(&args.root);
        let images = ImageStore::open(&args.data_dir).ok();
        let mut ctrs = Vec::new();
        let spec = pod.spec.clone().unwrap_or_default();
        for c in spec.init_containers.unwrap_or_default() {
            let kind = if c.restart_policy.as_deref() == Some("Always") {
                Kind::Sidecar
            } else {
                Kind::Init
            };
            ctrs.push(new_ctr(c, kind));
        }
        for c in spec.containers {
            ctrs.push(new_ctr(c, Kind::Regular));
        }
        let log_dir = logs::pod_log_dir(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.uid.as_deref().unwrap_or(""),
        );
        let mut status = PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(crate::manifest::qos_class(&pod).as_str().to_string()),
            ..Default::default()
        };
        status.conditions = Some(Vec::new());
        let ready_fd = args.ready_fd;
        let agent = super::adopt::connect_agent(&args.root);
        // Under an agent, it tells of node.json changes (SIGHUP): no watch of our own.
        let noexecute = match agent {
            Some(_) => NoExecuteWatch::driven(&args.data_dir),
            None => NoExecuteWatch::new(&args.data_dir),
        };
        Ok(Worker {
            args,
            pod,
            objects,
            runtime,
            images,
            status,
            ctrs,
            sandbox: None,
            volumes: None,
            node_name: String::new(),
            node_alloc: Default::default(),
            node_mem: 0,
            pod_files: PodFiles::default(),
            dirty: true,
            ready_fd,
            terminating: None,
            deletion: None,
            active_deadline: None,
            started_at: Instant::now(),
            log_dir,
            netns_files: None,
            noexecute,
            probe_runs: Vec::new(),
            probe_batch: None,
            devnull: None,
            end_announced: false,
            hook_runs: Vec::new(),
            agent,
            persisted: String::new(),
        })
    }

    /// Creates the sandbox: pod cgroup, pause with the pod's namespaces, pod files, volumes.
    pub(super) fn start_sandbox(&mut self) -> Result<(), String> {
        let sb =
            Sandbox::create(&self.runtime, &self.args, &self.pod).map_err(|e| e.to_string())?;
        self.status.pod_ip = sb.pod_ip.clone();
        self.status.pod_ips = sb
            .pod_ip
            .as_ref()
            .map(|ip| vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }]);
        self.status.start_time = Some(now_time());
        self.pod_files = sb.files.clone();
        self.sandbox = Some(sb);
        self.set_condition("PodReadyToStartContainers", true, None, None);
        self.prepare_volumes()
    }

    /// Sets up the pod's volumes (again, for an adopted pod: it is idempotent).
    pub(super) fn prepare_volumes(&mut self) -> Result<(), String> {
        let pod_ips: Vec<String> = self.status.pod_ip.iter().cloned().collect();
        let host_ips: Vec<String> = crate::network::host_ip().into_iter().collect();
        let ctx = EnvContext {
            pod: &self.pod,
            config_maps: &self.objects.config_maps,
            secrets: &self.objects.secrets,
            pod_ips: &pod_ips,
            host_ips: &host_ips,
            node_name: &self.node_name,
            node_allocatable: self.node_alloc,
        };
        let uid = self.pod.metadata.uid.as_deref().unwrap_or("");
        let disk = store::durable_dir(&self.args.data_dir, uid).join("volumes");
        let disk = (!uid.is_empty() && !uid.contains('/')).then_some(disk.as_path());
        match spec::volumes::prepare_volumes(&ctx, &self.args.pod_dir, disk) {
            Ok(v) => self.volumes = Some(v),
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                self.event("Warning", "FailedMount", "kubelet", "", &msg);
                return Err(msg);
            }
        }
        Ok(())
    }

    /// Drains a container's pipes into its log file.
    pub(super) fn pump_logs(&mut self, c: usize, final_drain: bool) {
        for p in self.ctrs[c].logs.iter_mut() {
            super::logs::pump(p.fd.as_fd(), &mut p.writer, &mut p.file, final_drain);
        }
        if final_drain {
            self.ctrs[c].logs.clear();
        }
    }

    /// The soonest instant something must happen.
    pub(super) fn next_wakeup(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if self.deletion.is_some() {
            consider(now);
        }
        for c in &self.ctrs {
            // A stop to carry out now, or SIGKILL at its deadline (once sent, the exit
            // comes as SIGCHLD).
            if c.running() && c.stop_request.is_some() {
                consider(now);
            }
            if let Some(s) = c.stopping.filter(|s| c.running() && !s.killed) {
                let signal_due = !s.pre_stop && !s.signalled;
                consider(if signal_due { now } else { s.deadline });
            }
            if c.running() {
                if let Some(t) = c.probes.next_due() {
                    consider(t);
                }
            } else if !c.done {
                if let Some(f) = c.finished {
                    consider(now + c.backoff.remaining(f, now));
                }
            }
        }
        if let Some(d) = self.active_deadline {
            consider(d);
        }
        for e in &self.probe_runs {
            consider(e.deadline);
        }
        if let Some(t) = self.next_hook_deadline() {
            consider(t);
        }
        if let Some(t) = self.probe_batch.filter(|t| *t > now) {
            consider(t);
        }
        if self.terminating.is_some() {
            consider(now + Duration::from_millis(200));
        } else if let Some(t) = self.noexecute.next_due() {
            consider(t);
        }
        next
    }

    /// Reaps exited children; maps them to containers.
    pub(super) fn reap(&mut self) {
        loop {
            // __WALL: exec probes' children are not SIGCHLD children; they are reaped here
            // too (child_exited hands a probe's status to its ProbeRun).
            match waitpid(
                Pid::from_raw(-1),
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::Exited(pid, code)) => self.child_exited(pid.as_raw(), code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.child_exited(pid.as_raw(), 128 + sig as i32, Some(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }

    pub(super) fn child_exited(&mut self, pid: i32, code: i32, signal: Option<i32>) {
        if let Some(e) = self.probe_runs.iter_mut().find(|e| e.pid() == Some(pid)) {
            e.exited(code);
            return;
        }
        if self.hook_exited(pid) {
            return;
        }
        if let Some(c) = self.ctrs.iter().position(|c| c.pid == Some(pid)) {
            self.on_exit(c, code, signal);
        } else if let Some(sb) = self.sandbox.as_mut() {
            if sb.pid == pid {
                sb.exited = true;
            }
        }
    }

    /// Removes everything the pod made on the host.
    pub(super) fn teardown(&mut self) {
        self.forget_deposits();
        for e in self.probe_runs.drain(..) {
            e.kill();
        }
        self.end_hooks(None);
        for c in 0..self.ctrs.len() {
            self.ctrs[c].prepared_exec = None;
            if let Some(id) = self.ctrs[c].id.clone() {
                let _ = self.runtime.delete(&id, true);
                if let Some(store) = self.images.as_ref() {
                    let _ = store.release_rootfs(&id);
                }
            }
        }
        if let Some(v) = self.volumes.take() {
            let _ = v.cleanup();
        }
        let _ = spec::volumes::cleanup_volumes(&self.args.pod_dir);
        if let Some(sb) = self.sandbox.take() {
            sb.destroy(&self.runtime);
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
        // The same sweep `delete` runs for a pod without a supervisor: whatever the
        // steps above missed (a pod cgroup of a sandbox that failed half-way).
        super::leftovers::remove_host_state(
            &self.args.root,
            &self.args.data_dir,
            &self.args.pod_dir,
            &self.pod,
        );
        super::leftovers::remove_durable(&self.args.data_dir, &self.pod);
    }

    /// The main loop: runs until the pod is deleted.
    pub fn run(mut self) -> Result<(), SupervisorError> {
        let sigfd = signal_fd()?;
        if self.args.adopt {
            if self.adopt_pod() {
                self.flush();
                return self.run_loop(&sigfd);
            }
            self.restart_lost_pod();
        }
        self.flush();
        if !self.schedule(&sigfd)? {
            // Deleted before it ever ran (or refused): nothing on the host to undo.
            self.wait_for_delete(&sigfd)?;
            return Ok(());
        }
        if let Some(secs) = self.spec().active_deadline_seconds {
            self.active_deadline = Some(pod_state::after(self.started_at, secs));
        }
        if let Err(msg) = self.start_sandbox() {
            self.event(
                "Warning",
                "FailedCreatePodSandBox",
                "kubelet",
                "",
                &format!("Failed to create pod sandbox: {msg}"),
            );
            self.status.message = Some(msg.clone());
            self.dirty = true;
            self.flush();
            self.signal_ready(&format!("error: {msg}"));
            self.teardown();
            self.wait_for_delete(&sigfd)?;
            return Ok(());
        }
        self.act();
        self.update_readiness();
        self.update_phase();
        self.flush();
        self.signal_ready("ok");
        self.run_loop(&sigfd)
    }

    /// The steady loop, until the pod is deleted and gone.
    fn run_loop(&mut self, sigfd: &SignalFd) -> Result<(), SupervisorError> {
        trim_resident();
        // Start-up and restarts run code the steady loop never needs again: dropped once
        // things are quiet again (at most once a minute, but the first: the start-up's
        // tail), not on a clock (an idle pod is never woken).
        let mut trim_at: Option<Instant> = None;
        let mut last_trim: Option<Instant> = None;
        loop {
            if trim_at.is_some_and(|t| Instant::now() >= t) {
                trim_resident();
                trim_at = None;
                last_trim = Some(Instant::now());
            }
            if self.wait(sigfd, trim_at) {
                let quiet = Instant::now() + TRIM_QUIET;
                trim_at = Some(last_trim.map_or(quiet, |t| quiet.max(t + TRIM_EVERY)));
            }
            if !self.dispatch() {
                break;
            }
        }
        self.flush();
        self.teardown();
        remove_pod_dir(&self.args.pod_dir);
        Ok(())
    }

    /// Sleeps until something happens (a signal, container output, a node change, a
    /// probe or hook run's progress, a timer, `also`) and takes it in; true when
    /// something came (not a timer). Log pumping only reads what is there: it never
    /// waits. With nothing due it sleeps until something comes.
    fn wait(&mut self, sigfd: &SignalFd, also: Option<Instant>) -> bool {
        let next = match (self.next_wakeup(), also) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
        let pollfd = |fd: RawFd, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let mut fds: Vec<libc::pollfd> = vec![pollfd(sigfd.as_raw_fd(), libc::POLLIN)];
        let mut owners = Vec::new();
        for (i, c) in self.ctrs.iter().enumerate() {
            for p in &c.logs {
                fds.push(pollfd(p.fd.as_raw_fd(), libc::POLLIN));
                owners.push(i);
            }
        }
        let logs_end = fds.len();
        let node_watch = self.noexecute.fd().map(|fd| {
            fds.push(pollfd(fd, libc::POLLIN));
            fds.len() - 1
        });
        for (fd, events) in self.probe_runs.iter().filter_map(|e| e.wait()) {
            fds.push(pollfd(fd, events));
        }
        for fd in self.hook_runs.iter().filter_map(|r| r.fd()) {
            fds.push(pollfd(fd, libc::POLLIN));
        }
        let adopted_from = fds.len();
        for fd in self.adopted_fds() {
            fds.push(pollfd(fd, libc::POLLIN));
        }
        let mut ms = timeout
            .map(|t| t.as_millis().min(60_000) as i32 + 1)
            .unwrap_or(-1);
        // A batch of probe runs is out: sleep through its window whatever comes in
        // (the probe processes' exits arrive as SIGCHLD too: exec resets their exit
        // signal), then take everything that did at once.
        if let Some(t) = self.probe_batch {
            let left = t.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                std::thread::sleep(left);
            }
            ms = 0;
        }
        // SAFETY: fds is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            return false;
        }
        for (k, pfd) in fds.iter().enumerate().take(logs_end).skip(1) {
            if pfd.revents != 0 {
                self.pump_logs(owners[k - 1], false);
            }
        }
        if node_watch.is_some_and(|i| fds[i].revents != 0) {
            self.noexecute.notified();
        }
        if fds[adopted_from..].iter().any(|f| f.revents != 0) {
            self.reap_adopted();
        }
        if fds[0].revents != 0 {
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => self.reap(),
                    Ok(Signal::SIGTERM | Signal::SIGINT) => self.begin_termination(),
                    Ok(Signal::SIGHUP) => {
                        // An agent started, or `apply` changed the pod: look at both.
                        self.agent_came();
                        self.reload_pod();
                    }
                    _ => {}
                }
            }
            self.reap();
        }
        true
    }

    /// Acts on what the wait brought: hooks and probes observed, the plan carried out,
    /// status written. False once the pod is terminated and every container gone.
    fn dispatch(&mut self) -> bool {
        self.collect_hooks();
        if self.terminating.is_none() {
            if self.deletion.is_none() && !self.evicted_by_noexecute() {
                self.run_probes();
            } else {
                self.collect_probe_runs();
            }
        }
        if !self.act() {
            return false;
        }
        self.update_readiness();
        self.update_phase();
        self.flush();
        probes::flush_trace();
        true
    }

    pub(super) fn is_terminal(&self) -> bool {
        matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    pub fn args(&self) -> &SuperviseArgs {
        &self.args
    }
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
    pub fn pod_ip(&self) -> Option<&str> {
        self.status.pod_ip.as_deref()
    }
}

/// SIGCHLD, SIGTERM, SIGINT and SIGHUP (an agent started) blocked and read from a
/// signalfd instead.
fn signal_fd() -> Result<SignalFd, SupervisorError> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| io("blocking signals")(e.into()))?;
    SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
    .map_err(|e| io("signalfd")(e.into()))
}

/// The supervisor's process entry: become subreaper, then run the worker.
pub fn supervise(args: SuperviseArgs) -> Result<(), SupervisorError> {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let pid_path = args.pod_dir.join(store::PID_FILE);
    let me = std::process::id() as i32;
    crate::util::write_atomic(&pid_path, store::pid_record(me).as_bytes())
        .map_err(io(pid_path.display().to_string()))?;
    let worker = Worker::load(args)?;
    worker.run()
}

pub fn pod_dir_of(root: &Path, namespace: &str, name: &str) -> PathBuf {
    store::PodStore::new(root).dir(namespace, name)
}

pub use crate::util::parse_signal;
