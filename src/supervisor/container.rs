//! One container of the pod: its image, OCI spec, output streams and runtime create/start
//! under a guard that undoes what was done when a step fails; its exit recorded.
use super::backoff::RestartBackoff;
use super::logs::{self, CriLineWriter, LogFile, LogLimits, SharedLog};
use super::pod_state::WaitingReason;
use super::pod_state::{self, KillReason, Kind, RestartPolicy, Stopping, TerminatedReason};
use super::probes::{ProbeKind, ProbeRunner};
use super::worker::{now_time, parse_signal, Worker};
use crate::image::{Image, ImageStore, PullOptions};
use crate::runtime::CreateOptions;
use crate::spec::{self, ContainerSpecInput, EnvContext};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus,
};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One output stream of a running container, copied into its CRI log file.
pub(super) struct LogPump {
    pub(super) fd: OwnedFd,
    pub(super) writer: CriLineWriter,
    pub(super) file: SharedLog,
}

/// Everything the worker tracks about one container of the pod.
pub struct Ctr {
    pub spec: Container,
    pub kind: Kind,
    pub status: ContainerStatus,
    /// The OCI container id of the current run.
    pub id: Option<String>,
    pub pid: Option<i32>,
    pub(super) started: Option<Instant>,
    pub(super) finished: Option<Instant>,
    pub(super) backoff: RestartBackoff,
    pub(super) attempts: u32,
    /// An init container that completed, or a container that will not run again.
    pub done: bool,
    pub(super) logs: Vec<LogPump>,
    /// A stop the worker observed a cause for (a probe past its failure threshold, a
    /// failed postStart hook, a changed image), for the plan to carry out; with the
    /// grace period when it is not the pod's.
    pub(super) stop_request: Option<(KillReason, Option<std::time::Duration>)>,
    pub probes: ProbeRunner,
    /// The graceful stop under way in the current run (SIGKILL at its deadline).
    pub(super) stopping: Option<Stopping>,
    /// The image's STOPSIGNAL (SIGTERM when it names none).
    pub(super) stop_signal: Signal,
    /// The write end of the container's stdin pipe (stdin: true), held open.
    pub(super) stdin_keep: Option<OwnedFd>,
    /// The host file behind terminationMessagePath for the current run.
    pub(super) termination_file: Option<PathBuf>,
    /// The container's OCI process (user, caps, env): exec probes and hooks start from it.
    pub exec_process: Option<oci_spec::runtime::Process>,
    /// The exec settings of the current run, resolved on the first exec probe or hook
    /// (namespace and cgroup fds held open); dropped when the run ends.
    pub prepared_exec: Option<crate::runtime::PreparedExec>,
    /// Preparing failed for this run (e.g. a user namespace): use the general exec.
    pub prepared_exec_failed: bool,
    /// The Running state of a run whose postStart hook is still going (shown once over).
    pub(super) running_state: Option<ContainerState>,
    /// The init held by pidfd: deposited with the agent, and how an adopted container
    /// (not our child) is seen to end.
    pub(super) process: Option<crate::handoff::pidfd::ProcessHandle>,
    /// Being stopped because `apply` changed its image: it is started again at once.
    pub(super) restart_for_change: bool,
}

impl Ctr {
    pub(super) fn field_path(&self) -> String {
        match self.kind {
            Kind::Regular => format!("spec.containers{{{}}}", self.spec.name),
            _ => format!("spec.initContainers{{{}}}", self.spec.name),
        }
    }
    pub(super) fn running(&self) -> bool {
        self.pid.is_some()
    }
    pub(super) fn waiting(&mut self, reason: WaitingReason, message: Option<String>) {
        self.status.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.as_str().into()),
                message,
            }),
            ..Default::default()
        });
    }
}

impl Worker {
    /// Resolves the container's image per imagePullPolicy, pulling when needed, with
    /// kubelet's events. Err carries the waiting reason and message.
    pub(super) fn ensure_image(&mut self, c: usize) -> Result<Image, (WaitingReason, String)> {
        let image = self.ctrs[c].spec.image.clone().unwrap_or_default();
        let policy = self.ctrs[c]
            .spec
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let Some(store) = self.images.as_ref() else {
            return Err((
                WaitingReason::ErrImagePull,
                format!(
                    "image store {} cannot be opened",
                    self.args.data_dir.display()
                ),
            ));
        };
        let present = store.resolve(&image).ok().flatten();
        match (policy.as_str(), present) {
            ("Never", None) => {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.kubelet_event(c, "Warning", "ErrImageNeverPull", &msg);
                Err((WaitingReason::ErrImageNeverPull, msg))
            }
            ("Never" | "IfNotPresent", Some(img)) => {
                self.kubelet_event(
                    c,
                    "Normal",
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                );
                Ok(img)
            }
            _ => {
                self.kubelet_event(
                    c,
                    "Normal",
                    "Pulling",
                    &format!("Pulling image \"{image}\""),
                );
                let t0 = Instant::now();
                let store = ImageStore::open(&self.args.data_dir)
                    .map_err(|e| (WaitingReason::ErrImagePull, e.to_string()))?;
                // The pod's imagePullSecrets first, as kubelet; a missing one is a warning.
                let (pull_secrets, problems) =
                    crate::image::auth::pod_pull_secrets(&self.pod, &self.objects.secrets);
                for p in &problems {
                    self.event(
                        "Warning",
                        "FailedToRetrieveImagePullSecret",
                        "kubelet",
                        "",
                        p,
                    );
                }
                let opts = PullOptions {
                    pull_secrets,
                    ..PullOptions::default()
                };
                match store.pull(&image, &opts) {
                    Ok(img) => {
                        let secs = t0.elapsed().as_secs_f64();
                        self.kubelet_event(
                            c,
                            "Normal",
                            "Pulled",
                            &format!(
                                "Successfully pulled image \"{image}\" in {secs:.3}s ({secs:.3}s including waiting). Image size: {} bytes.",
                                img.size
                            ),
                        );
                        Ok(img)
                    }
                    Err(e) => {
                        let msg = format!("Failed to pull image \"{image}\": {e}");
                        self.kubelet_event(c, "Warning", "Failed", &msg);
                        self.kubelet_event(c, "Warning", "Failed", "Error: ErrImagePull");
                        Err((WaitingReason::ErrImagePull, msg))
                    }
                }
            }
        }
    }

    /// Creates and starts container `c`. On failure the container waits with a reason
    /// and the back-off decides when to try again.
    pub(super) fn start_container(&mut self, c: usize) {
        let now = Instant::now();
        // kubelet advances the back-off at each restart (not at the first start).
        if self.ctrs[c].finished.is_some() {
            self.ctrs[c].backoff.advance(now);
        }
        let image = match self.ensure_image(c) {
            Ok(i) => i,
            Err((reason, msg)) => {
                let reason = if reason == WaitingReason::ErrImagePull && self.ctrs[c].attempts > 0 {
                    WaitingReason::ImagePullBackOff
                } else {
                    reason
                };
                self.ctrs[c].attempts += 1;
                self.ctrs[c].waiting(reason, Some(msg));
                self.ctrs[c].finished = Some(now);
                self.dirty = true;
                return;
            }
        };
        self.ctrs[c].attempts += 1;
        match self.create_and_start(c, &image) {
            Ok(()) => {}
            Err((reason, msg)) => {
                self.kubelet_event(c, "Warning", "Failed", &format!("Error: {msg}"));
                self.ctrs[c].waiting(reason, Some(msg));
                self.ctrs[c].finished = Some(Instant::now());
                self.dirty = true;
            }
        }
    }

    /// The OCI container id of container `c`'s current attempt.
    fn container_id(&self, c: usize) -> String {
        super::leftovers::container_id(self.uid(), &self.ctrs[c].spec.name, self.ctrs[c].attempts)
    }

    /// Creates and starts container `c` from `image`. Every step is recorded in a
    /// [`StartGuard`]: a step that fails returns, and the guard undoes the ones before
    /// it (the runtime container, the mounted rootfs and its bundle, the termination
    /// file); the pipes and terminal close with their owners.
    pub(super) fn create_and_start(
        &mut self,
        c: usize,
        image: &Image,
    ) -> Result<(), (WaitingReason, String)> {
        let Some(store) = self.images.as_ref() else {
            return Err(run_err("no image store".into()));
        };
        let id = self.container_id(c);
        let config = store.config(image).map_err(|e| run_err(e.to_string()))?;
        let stop_signal = config
            .config()
            .as_ref()
            .and_then(|c| c.stop_signal().clone())
            .and_then(|s| parse_signal(&s))
            .unwrap_or(Signal::SIGTERM);
        // A pod with its own user namespace sees the image's layers through it.
        let idmap = self.sandbox.as_ref().and_then(|sb| {
            sb.userns.map(|m| crate::image::RootfsIdmap {
                userns: PathBuf::from(format!("/proc/{}/ns/user", sb.pid)),
                root: m.host_base,
            })
        });
        let mut guard = StartGuard::new(&self.runtime, store, &id);
        let rootfs = store
            .prepare_rootfs_mapped(image, &id, idmap.as_ref())
            .map_err(|e| run_err(e.to_string()))?;
        guard.rootfs = true;
        let mut oci = self.container_oci_spec(c, &id, &config, &rootfs.path)?;
        let term_file = self.mount_termination_file(c, &id, idmap.map(|m| m.root), &mut oci);
        guard.term_file = term_file.clone();
        let exec_process = oci.process().clone();
        let bundle = store.container_dir(&id);
        std::fs::create_dir_all(&bundle)
            .and_then(|_| serde_json::to_vec(&oci).map_err(std::io::Error::other))
            .and_then(|data| crate::util::write_atomic(&bundle.join("config.json"), &data))
            .map_err(|e| run_err(format!("writing {}: {e}", bundle.display())))?;
        let restart = self.ctrs[c].status.restart_count;
        let log_path = logs::container_log_path(&self.log_dir, &self.ctrs[c].spec.name, restart);
        let spec = &self.ctrs[c].spec;
        let limits = LogLimits::load(&self.args.data_dir);
        let mut streams = Streams::open(
            &log_path,
            limits,
            spec.stdin == Some(true),
            spec.tty == Some(true),
        )
        .map_err(run_err)?;
        // A failed create may leave a half-made container behind: deleted all the same.
        guard.created = true;
        let state = self
            .runtime
            .create(&id, &bundle, &streams.create_options())
            .map_err(|e| run_err(e.to_string()))?;
        streams.created().map_err(run_err)?;
        let name = self.ctrs[c].spec.name.clone();
        self.kubelet_event(c, "Normal", "Created", &format!("Created container {name}"));
        self.runtime
            .start(&id)
            .map_err(|e| run_err(e.to_string()))?;
        self.kubelet_event(c, "Normal", "Started", &format!("Started container {name}"));
        guard.commit();
        let run = Started {
            id,
            pid: state.pid,
            streams,
            exec_process,
            term_file,
            stop_signal,
            image_id: format!(
                "{}@{}",
                image.reference.split(['@']).next().unwrap_or(""),
                image.manifest_digest
            ),
        };
        self.record_started(c, run);
        // postStart: the container only counts as started once the hook is over.
        self.begin_post_start(c);
        Ok(())
    }

    /// Container `c`'s OCI spec for the run `id`, over the mounted `rootfs`.
    fn container_oci_spec(
        &self,
        c: usize,
        id: &str,
        config: &oci_spec::image::ImageConfiguration,
        rootfs: &Path,
    ) -> Result<oci_spec::runtime::Spec, (WaitingReason, String)> {
        let mounts = match self
            .volumes
            .as_ref()
            .map(|v| v.mounts_for(&self.ctrs[c].spec))
        {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(cfg_err(e.to_string())),
            None => Vec::new(),
        };
        let Some(sb) = self.sandbox.as_ref() else {
            return Err(run_err("no sandbox".into()));
        };
        let pod_ips: Vec<String> = self.status.pod_ip.iter().cloned().collect();
        let host_ips: Vec<String> = crate::network::host_ip().into_iter().collect();
        let seccomp_root = self.args.data_dir.join("seccomp");
        let input = ContainerSpecInput {
            ctx: EnvContext {
                pod: &self.pod,
                config_maps: &self.objects.config_maps,
                secrets: &self.objects.secrets,
                pod_ips: &pod_ips,
                host_ips: &host_ips,
                node_name: &self.node_name,
                node_allocatable: self.node_alloc,
            },
            container: &self.ctrs[c].spec,
            image_config: config,
            rootfs,
            namespaces: sb.namespaces(),
            cgroups_path: spec::resources::container_cgroup_path(&self.pod, id),
            mounts: &mounts,
            pod_files: self.pod_files.clone(),
            node_memory_capacity: self.node_mem,
            seccomp_profile_root: Some(&seccomp_root),
        };
        let mut s = spec::container_spec(&input).map_err(|e| cfg_err(e.to_string()))?;
        // The sandbox already named the shared UTS namespace; a container joining it by
        // path does not set it again.
        let joins_uts = s
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| {
                ns.iter().any(|n| {
                    n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts && n.path().is_some()
                })
            });
        if joins_uts {
            s.set_hostname(None);
            s.set_domainname(None);
        }
        if let Some(p) = s.process_mut().as_mut() {
            if let Some(adj) = p.oom_score_adj() {
                p.set_oom_score_adj(Some(crate::spec::attainable_oom_score_adj(adj)));
            }
        }
        Ok(s)
    }

    /// terminationMessagePath: an empty host file (owned by the pod's root, `pod_root`,
    /// in a user namespace) bind-mounted there, read when the container exits.
    fn mount_termination_file(
        &self,
        c: usize,
        id: &str,
        pod_root: Option<u32>,
        oci: &mut oci_spec::runtime::Spec,
    ) -> Option<PathBuf> {
        let dir = self.args.pod_dir.join("termination");
        let term_file = dir.join(id);
        let term_path = self.ctrs[c]
            .spec
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&term_file, b""))
            // The pod's root writes it, as root does in a pod without a user namespace.
            .and_then(|_| match pod_root {
                Some(r) => std::os::unix::fs::chown(&term_file, Some(r), Some(r)),
                None => Ok(()),
            })
            .ok()?;
        let m = oci_spec::runtime::MountBuilder::default()
            .destination(&term_path)
            .typ("bind")
            .source(&term_file)
            .options(vec![
                "rbind".to_string(),
                "rprivate".to_string(),
                "rw".to_string(),
            ])
            .build()
            .ok()?;
        let mut mounts = oci.mounts().clone().unwrap_or_default();
        mounts.push(m);
        oci.set_mounts(Some(mounts));
        Some(term_file)
    }

    /// Records a started run of container `c`: Running, its log pumps, probes reset.
    fn record_started(&mut self, c: usize, run: Started) {
        let ctr = &mut self.ctrs[c];
        ctr.status.container_id = Some(format!("podrun://{}", run.id));
        ctr.id = Some(run.id);
        ctr.prepared_exec = None;
        ctr.prepared_exec_failed = false;
        ctr.pid = Some(run.pid);
        ctr.logs = run.streams.pumps;
        ctr.stdin_keep = run.streams.stdin_keep;
        ctr.exec_process = run.exec_process;
        ctr.termination_file = run.term_file;
        ctr.started = Some(Instant::now());
        ctr.finished = None;
        ctr.stop_request = None;
        ctr.stopping = None;
        ctr.stop_signal = run.stop_signal;
        ctr.running_state = None;
        ctr.status.image_id = run.image_id;
        ctr.status.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now_time()),
            }),
            ..Default::default()
        });
        ctr.probes.reset(Instant::now(), self.started_at);
        // Without a startup probe the container counts as started at once.
        ctr.status.started = Some(!ctr.probes.has(ProbeKind::Startup));
        ctr.status.ready = false;
        ctr.process = None;
        self.dirty = true;
        self.deposit(c);
    }

    /// A container's init exited: record it, clean up its OCI container, decide restart.
    pub(super) fn on_exit(&mut self, c: usize, code: i32, signal: Option<i32>) {
        self.pump_logs(c, true);
        self.release_deposit(c);
        self.ctrs[c].process = None;
        self.end_hooks(Some(c));
        self.ctrs[c].prepared_exec = None;
        self.ctrs[c].prepared_exec_failed = false;
        let id = self.ctrs[c].id.clone().unwrap_or_default();
        let oom = self
            .runtime
            .stats(&id)
            .map(|s| s.oom_kill_count > 0)
            .unwrap_or(false);
        let _ = self.runtime.delete(&id, true);
        if let Some(store) = self.images.as_ref() {
            let _ = store.release_rootfs(&id);
        }
        let ctr = &mut self.ctrs[c];
        ctr.pid = None;
        ctr.finished = Some(Instant::now());
        ctr.stop_request = None;
        ctr.stopping = None;
        let started_at = ctr
            .status
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone());
        let reason = TerminatedReason::of_exit(code, oom).as_str();
        ctr.stdin_keep = None;
        let message = termination_message(ctr, code, &self.log_dir);
        let ctr = &mut self.ctrs[c];
        let term = ContainerStateTerminated {
            exit_code: code,
            signal,
            reason: Some(reason.into()),
            started_at,
            finished_at: Some(now_time()),
            container_id: ctr.status.container_id.clone(),
            message,
        };
        ctr.status.state = Some(ContainerState {
            terminated: Some(term),
            ..Default::default()
        });
        ctr.status.ready = false;
        ctr.status.started = Some(false);
        self.dirty = true;
        // Nothing restarts once the pod is being deleted or its regular containers are
        // all finished for good (its sidecars are then being stopped).
        let ending = self.terminating.is_some() || self.deletion.is_some() || self.regular_done();
        let policy = RestartPolicy::of(self.spec());
        let ctr = &mut self.ctrs[c];
        // Killed because its definition changed: it runs again, whatever its policy.
        let changed = std::mem::take(&mut ctr.restart_for_change);
        let outcome = pod_state::exit_outcome(ctr.kind, policy, code, ending, changed);
        // A pod that failed for good (activeDeadlineSeconds) keeps its containers done.
        ctr.done = ctr.done || outcome.done;
        if outcome.restart {
            // The finished run becomes lastState; the next run waits out the back-off.
            ctr.status.last_state = ctr.status.state.clone();
        }
    }

    /// Sends a signal to a container's init.
    pub(super) fn kill_container(&mut self, c: usize, sig: Signal) {
        if let Some(pid) = self.ctrs[c].pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
        }
    }
}

/// kubelet's termination message: the file at terminationMessagePath (at most 4096
/// bytes); with FallbackToLogsOnError and an empty file after a failure, the log's last
/// 80 lines (at most 2048 bytes).
pub(super) fn termination_message(ctr: &mut Ctr, code: i32, log_dir: &Path) -> Option<String> {
    let file = ctr.termination_file.take()?;
    let mut msg = std::fs::read(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    msg.truncate(4096);
    let fallback = ctr.spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if msg.is_empty() && fallback && code != 0 {
        let path = logs::container_log_path(log_dir, &ctr.spec.name, ctr.status.restart_count);
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = logs::parse(&text).into_iter().map(|l| l.text).collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        let start = tail.len().saturating_sub(2048);
        let start = (start..=tail.len())
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(tail.len());
        msg = tail.as_bytes()[start..].to_vec();
    }
    (!msg.is_empty()).then(|| String::from_utf8_lossy(&msg).into_owned())
}

pub(super) fn new_ctr(spec: Container, kind: Kind) -> Ctr {
    let status = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(WaitingReason::PodInitializing.as_str().into()),
                message: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let probes = ProbeRunner::new(&spec);
    Ctr {
        spec,
        kind,
        status,
        id: None,
        pid: None,
        started: None,
        finished: None,
        backoff: RestartBackoff::default(),
        attempts: 0,
        done: false,
        logs: Vec::new(),
        stop_request: None,
        probes,
        stopping: None,
        stop_signal: Signal::SIGTERM,
        stdin_keep: None,
        termination_file: None,
        exec_process: None,
        prepared_exec: None,
        prepared_exec_failed: false,
        running_state: None,
        process: None,
        restart_for_change: false,
    }
}

fn cfg_err(m: String) -> (WaitingReason, String) {
    (WaitingReason::CreateContainerConfigError, m)
}

fn run_err(m: String) -> (WaitingReason, String) {
    (WaitingReason::CreateContainerError, m)
}

/// A run that started: what [`Worker::record_started`] keeps of it.
struct Started {
    id: String,
    pid: i32,
    streams: Streams,
    exec_process: Option<oci_spec::runtime::Process>,
    term_file: Option<PathBuf>,
    stop_signal: Signal,
    image_id: String,
}

/// What a container start has done so far. Dropped before [`StartGuard::commit`] (an
/// early return), it undoes it, last step first: the runtime container is deleted, the
/// rootfs unmounted and its directory (with the bundle) removed, the termination file
/// removed.
struct StartGuard<'a> {
    runtime: &'a crate::runtime::Runtime,
    store: &'a ImageStore,
    id: &'a str,
    rootfs: bool,
    created: bool,
    term_file: Option<PathBuf>,
}

impl<'a> StartGuard<'a> {
    fn new(runtime: &'a crate::runtime::Runtime, store: &'a ImageStore, id: &'a str) -> Self {
        StartGuard {
            runtime,
            store,
            id,
            rootfs: false,
            created: false,
            term_file: None,
        }
    }

    /// The start succeeded: keep everything.
    fn commit(mut self) {
        self.created = false;
        self.rootfs = false;
        self.term_file = None;
    }
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        if self.created {
            let _ = self.runtime.delete(self.id, true);
        }
        if self.rootfs {
            let _ = self.store.release_rootfs(self.id);
            let _ = std::fs::remove_dir_all(self.store.container_dir(self.id));
        }
        if let Some(f) = self.term_file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A container's standard streams: the pipes (or terminal) it writes to and we copy
/// into its CRI log, its stdin, and the ends it gets; all close when dropped.
struct Streams {
    pumps: Vec<LogPump>,
    /// The container's ends of the output pipes (closed once it is created).
    child_ends: Vec<OwnedFd>,
    devnull: Option<File>,
    /// stdin: true: a pipe whose write end we keep, so the container never reads EOF.
    stdin: Option<(OwnedFd, OwnedFd)>,
    stdin_keep: Option<OwnedFd>,
    /// tty: true: the console socket the runtime sends the pty master over.
    console: Option<(OwnedFd, OwnedFd)>,
}

impl Streams {
    /// Output pipes into `log_path`, stdin (a held pipe or /dev/null), a console socket.
    fn open(log_path: &Path, limits: LogLimits, stdin: bool, tty: bool) -> Result<Streams, String> {
        let mut s = Streams {
            pumps: Vec::new(),
            child_ends: Vec::new(),
            devnull: Some(File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?),
            stdin: None,
            stdin_keep: None,
            console: None,
        };
        let file = LogFile::open(log_path, limits)
            .map(SharedLog::new)
            .map_err(|e| format!("log file {}: {e}", log_path.display()))?;
        for stream in ["stdout", "stderr"] {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| format!("pipe: {e}"))?;
            set_nonblock(&r);
            // 1 MiB: while no supervisor reads (one crashed, the next not yet there) a
            // writer blocks only once that much is waiting, and loses nothing.
            let _ = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
            s.pumps.push(LogPump {
                fd: r,
                writer: CriLineWriter::new(stream),
                file: file.clone(),
            });
            s.child_ends.push(w);
        }
        if stdin {
            s.stdin = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok();
        }
        if tty {
            use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
            s.console = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .ok();
        }
        Ok(s)
    }

    /// The descriptors the runtime hands the container.
    fn create_options(&self) -> CreateOptions {
        let devnull = self.devnull.as_ref().map_or(-1, |f| f.as_raw_fd());
        CreateOptions {
            stdin: Some(
                self.stdin
                    .as_ref()
                    .map(|(r, _)| r.as_raw_fd())
                    .unwrap_or(devnull),
            ),
            stdout: self.child_ends.first().map(|f| f.as_raw_fd()),
            stderr: self.child_ends.get(1).map(|f| f.as_raw_fd()),
            console_fd: self.console.as_ref().map(|(_, theirs)| theirs.as_raw_fd()),
            ..Default::default()
        }
    }

    /// The container exists: its ends close here; with a terminal, the pty master it
    /// sent becomes the one stream copied into the log.
    fn created(&mut self) -> Result<(), String> {
        self.child_ends.clear();
        self.devnull = None;
        self.stdin_keep = self.stdin.take().map(|(_, w)| w);
        let Some((ours, theirs)) = self.console.take() else {
            return Ok(());
        };
        drop(theirs);
        let master = crate::runtime::terminal::recv_master(&ours)
            .map_err(|e| format!("receiving the container's terminal: {e}"))?;
        set_nonblock(&master);
        // With a terminal everything the container writes arrives on the master.
        if let Some(first) = self.pumps.first_mut() {
            first.fd = master;
        }
        self.pumps.truncate(1);
        Ok(())
    }
}

fn set_nonblock(fd: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
}
