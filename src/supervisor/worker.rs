//! The pod worker: one per pod, in the supervisor process. Admits the pod, builds its
//! sandbox, runs init containers in order, then the regular containers and sidecars,
//! restarts them per restartPolicy with kubelet's back-off, pumps their output into CRI
//! logs, keeps status.json and the events current, and tears everything down on delete.
//!
//! Single-threaded by design: the runtime clones this process to start containers, so
//! the only concurrency is a poll loop over a signalfd (SIGCHLD, SIGTERM) and log pipes.
use super::backoff::RestartBackoff;
use super::events;
use super::eviction::NoExecuteWatch;
use super::logs::{self, CriLineWriter};
use super::probes::{self, ProbeKind, ProbeOutcome, ProbeRunner};
use super::sandbox::Sandbox;
use super::store::{self, DeletionRequest, PodObjects};
use crate::admission::{self, Decision};
use crate::image::{Image, ImageStore, PullOptions};
use crate::node::NodeStore;
use crate::runtime::{CreateOptions, Runtime};
use crate::spec::{self, ContainerSpecInput, EnvContext, PodFiles};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodStatus,
};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
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
}

pub use super::pod_state::Kind;
use super::pod_state::{self, Action, BackOffShow, ContainerView, RestartPolicy};

/// One output stream of a running container, copied into its CRI log file.
struct LogPump {
    fd: OwnedFd,
    writer: CriLineWriter,
    file: File,
}

/// Everything the worker tracks about one container of the pod.
pub struct Ctr {
    pub spec: Container,
    pub kind: Kind,
    pub status: ContainerStatus,
    /// The OCI container id of the current run.
    pub id: Option<String>,
    pub pid: Option<i32>,
    started: Option<Instant>,
    finished: Option<Instant>,
    backoff: RestartBackoff,
    attempts: u32,
    /// An init container that completed, or a container that will not run again.
    pub done: bool,
    logs: Vec<LogPump>,
    /// Set when the container was killed on purpose (liveness failure, postStart).
    kill_note: Option<String>,
    pub probes: ProbeRunner,
    /// When a graceful stop began, and when SIGKILL follows.
    stop_deadline: Option<Instant>,
    /// The image's STOPSIGNAL (SIGTERM when it names none).
    stop_signal: Signal,
    /// The write end of the container's stdin pipe (stdin: true), held open.
    stdin_keep: Option<OwnedFd>,
    /// The host file behind terminationMessagePath for the current run.
    termination_file: Option<PathBuf>,
    /// The container's OCI process (user, caps, env): exec probes and hooks start from it.
    pub exec_process: Option<oci_spec::runtime::Process>,
    /// The exec settings of the current run, resolved on the first exec probe or hook
    /// (namespace and cgroup fds held open); dropped when the run ends.
    pub prepared_exec: Option<crate::runtime::PreparedExec>,
    /// Preparing failed for this run (e.g. a user namespace): use the general exec.
    pub prepared_exec_failed: bool,
}

impl Ctr {
    fn field_path(&self) -> String {
        match self.kind {
            Kind::Regular => format!("spec.containers{{{}}}", self.spec.name),
            _ => format!("spec.initContainers{{{}}}", self.spec.name),
        }
    }
    fn running(&self) -> bool {
        self.pid.is_some()
    }
    fn waiting(&mut self, reason: &str, message: Option<String>) {
        self.status.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message,
            }),
            ..Default::default()
        });
    }
}

/// The pod worker's state.
pub struct Worker {
    args: SuperviseArgs,
    pub pod: Pod,
    objects: PodObjects,
    runtime: Runtime,
    images: Option<ImageStore>,
    status: PodStatus,
    pub ctrs: Vec<Ctr>,
    sandbox: Option<Sandbox>,
    volumes: Option<spec::volumes::PreparedVolumes>,
    node_name: String,
    node_alloc: spec::env::NodeAllocatable,
    node_mem: u64,
    pod_files: PodFiles,
    dirty: bool,
    ready_fd: Option<RawFd>,
    terminating: Option<Instant>,
    active_deadline: Option<Instant>,
    started_at: Instant,
    log_dir: PathBuf,
    /// Open handles of the pod's and our network namespaces, for probes.
    netns_files: Option<(File, File)>,
    /// NoExecute taints that would evict this pod once it runs.
    noexecute: NoExecuteWatch,
    /// Probe runs still going (exec processes, httpGet requests).
    probe_runs: Vec<probes::ProbeRun>,
    /// Until then the loop sleeps: the probe runs started together are collected in one
    /// wake-up (see [`PROBE_BATCH`]).
    probe_batch: Option<Instant>,
    /// /dev/null, opened once: the stdin of exec probes and hooks.
    devnull: Option<File>,
}

/// How long after a pod's probes fire the supervisor looks again. The exec probes'
/// processes and the httpGet answers of one tick mostly arrive within a few
/// milliseconds of each other; each would wake the supervisor on its own (a context
/// switch costs ~35 µs on a small VM). Gathered, one wake-up takes them all; a probe
/// result, a container's exit or a signal is seen at most this much later. Runs still
/// going after it wake the loop as they finish.
const PROBE_BATCH: Duration = Duration::from_millis(10);

fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    crate::util::now_time()
}

/// kubelet's pod description in messages: `name_namespace(uid)`.
use crate::spec::user::pod_desc;

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

    fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> =
            std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }

    /// Tells `up` how the start went (once).
    fn signal_ready(&mut self, msg: &str) {
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
        let noexecute = NoExecuteWatch::new(&args.data_dir);
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
            active_deadline: None,
            started_at: Instant::now(),
            log_dir,
            netns_files: None,
            noexecute,
            probe_runs: Vec::new(),
            probe_batch: None,
            devnull: None,
        })
    }

    fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: Option<&str>,
        message: Option<&str>,
    ) {
        let conds = self.status.conditions.get_or_insert_with(Vec::new);
        let s = if status { "True" } else { "False" };
        if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
            if c.status != s || c.reason.as_deref() != reason || c.message.as_deref() != message {
                c.status = s.into();
                c.reason = reason.map(Into::into);
                c.message = message.map(Into::into);
                c.last_transition_time = Some(now_time());
                self.dirty = true;
            }
            return;
        }
        conds.push(PodCondition {
            type_: type_.into(),
            status: s.into(),
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            last_transition_time: Some(now_time()),
            ..Default::default()
        });
        // kubectl lists them in kubelet's order.
        let order = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ];
        conds.sort_by_key(|c| {
            order
                .iter()
                .position(|o| *o == c.type_)
                .unwrap_or(order.len())
        });
        self.dirty = true;
    }

    /// Writes status.json when something changed.
    fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        let mut st = self.status.clone();
        let (init, regular): (Vec<_>, Vec<_>) =
            self.ctrs.iter().partition(|c| c.kind != Kind::Regular);
        // Until the pod is bound no kubelet has seen it: no container statuses, so
        // kubectl's STATUS column reads the phase (Pending), not PodInitializing.
        let bound = self
            .status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True");
        st.init_container_statuses =
            (bound && !init.is_empty()).then(|| init.iter().map(|c| c.status.clone()).collect());
        st.container_statuses = bound.then(|| regular.iter().map(|c| c.status.clone()).collect());
        if store::write_json(&self.args.pod_dir.join(store::STATUS_FILE), &st).is_ok() {
            self.dirty = false;
        }
    }

    /// Waits until the pod fits this node (re-checking every second), recording
    /// FailedScheduling once per distinct reason. Returns false when deleted meanwhile.
    fn schedule(&mut self, sigfd: &SignalFd) -> Result<bool, SupervisorError> {
        let nodes = NodeStore::new(&self.args.data_dir);
        let pods = store::PodStore::new(&self.args.root);
        let mut last_message = String::new();
        loop {
            let node = nodes
                .load()
                .map_err(|e| SupervisorError::Sandbox(e.to_string()))?;
            let decision = {
                // The pods counted and our binding under one lock: a concurrent admission
                // either sees us bound or runs after us (read before it, 200 concurrent
                // `up`s admitted 186 past maxPods 110).
                let _lock = pods.lock()?;
                let others: Vec<Pod> = pods
                    .list()
                    .into_iter()
                    .filter(|r| r.dir != self.args.pod_dir)
                    .filter(|r| is_bound_and_active(&r.pod))
                    .map(|r| r.pod)
                    .collect();
                let d = admission::admit(&self.pod, &node, &others);
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
                d
            };
            self.node_name = crate::node::node_name(&node).to_string();
            self.node_mem = node_capacity(&node, "memory") as u64;
            self.node_alloc = spec::env::NodeAllocatable {
                cpu_milli: node_allocatable(&node, "cpu", true),
                memory_bytes: node_allocatable(&node, "memory", false),
                ephemeral_storage_bytes: node_allocatable(&node, "ephemeral-storage", false),
            };
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
                    return Ok(true);
                }
                Decision::Unschedulable(u) => {
                    if u.message != last_message {
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
                        last_message = u.message.clone();
                    }
                }
                Decision::BoundElsewhere { message, .. } => {
                    if message != last_message {
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
                        last_message = message.clone();
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
                    return Ok(false);
                }
                Decision::Invalid(errs) => {
                    let msg = errs.to_string();
                    self.status.phase = Some("Failed".into());
                    self.status.message = Some(msg.clone());
                    self.dirty = true;
                    self.flush();
                    self.signal_ready(&format!("error: {msg}"));
                    return Ok(false);
                }
            }
            self.flush();
            self.signal_ready("ok");
            // Sleep a second, but wake for a deletion.
            if wait_signal(sigfd, Duration::from_secs(1))?.is_some_and(|s| s != Signal::SIGCHLD) {
                return Ok(false);
            }
        }
    }

    /// Creates the sandbox: pod cgroup, pause with the pod's namespaces, pod files, volumes.
    fn start_sandbox(&mut self) -> Result<(), String> {
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
        match spec::volumes::prepare_volumes(&ctx, &self.args.pod_dir) {
            Ok(v) => self.volumes = Some(v),
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                self.event("Warning", "FailedMount", "kubelet", "", &msg);
                return Err(msg);
            }
        }
        Ok(())
    }

    /// Resolves the container's image per imagePullPolicy, pulling when needed, with
    /// kubelet's events. Err carries the waiting reason and message.
    fn ensure_image(&mut self, c: usize) -> Result<Image, (String, String)> {
        let image = self.ctrs[c].spec.image.clone().unwrap_or_default();
        let policy = self.ctrs[c]
            .spec
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        let Some(store) = self.images.as_ref() else {
            return Err((
                "ErrImagePull".into(),
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
                Err(("ErrImageNeverPull".into(), msg))
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
                    .map_err(|e| ("ErrImagePull".to_string(), e.to_string()))?;
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
                        Err(("ErrImagePull".into(), msg))
                    }
                }
            }
        }
    }

    /// Creates and starts container `c`. On failure the container waits with a reason
    /// and the back-off decides when to try again.
    fn start_container(&mut self, c: usize) {
        let now = Instant::now();
        // kubelet advances the back-off at each restart (not at the first start).
        if self.ctrs[c].finished.is_some() {
            self.ctrs[c].backoff.advance(now);
        }
        let image = match self.ensure_image(c) {
            Ok(i) => i,
            Err((reason, msg)) => {
                let reason = if reason == "ErrImagePull" && self.ctrs[c].attempts > 0 {
                    "ImagePullBackOff".to_string()
                } else {
                    reason
                };
                self.ctrs[c].attempts += 1;
                self.ctrs[c].waiting(&reason, Some(msg));
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
                self.ctrs[c].waiting(&reason, Some(msg));
                self.ctrs[c].finished = Some(Instant::now());
                self.dirty = true;
            }
        }
    }

    fn create_and_start(&mut self, c: usize, image: &Image) -> Result<(), (String, String)> {
        let cfg_err = |m: String| ("CreateContainerConfigError".to_string(), m);
        let run_err = |m: String| ("CreateContainerError".to_string(), m);
        let Some(store) = self.images.as_ref() else {
            return Err(run_err("no image store".into()));
        };
        let id = super::leftovers::container_id(
            self.uid(),
            &self.ctrs[c].spec.name,
            self.ctrs[c].attempts,
        );
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
        let rootfs = store
            .prepare_rootfs_mapped(image, &id, idmap.as_ref())
            .map_err(|e| run_err(e.to_string()))?;
        let cleanup_rootfs = |store: &ImageStore| {
            let _ = store.release_rootfs(&id);
        };
        let mounts = match self
            .volumes
            .as_ref()
            .map(|v| v.mounts_for(&self.ctrs[c].spec))
        {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                cleanup_rootfs(store);
                return Err(cfg_err(e.to_string()));
            }
            None => Vec::new(),
        };
        let Some(sb) = self.sandbox.as_ref() else {
            cleanup_rootfs(store);
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
            image_config: &config,
            rootfs: &rootfs.path,
            namespaces: sb.namespaces(),
            cgroups_path: spec::resources::container_cgroup_path(&self.pod, &id),
            mounts: &mounts,
            pod_files: self.pod_files.clone(),
            node_memory_capacity: self.node_mem,
            seccomp_profile_root: Some(&seccomp_root),
        };
        let oci = match spec::container_spec(&input) {
            Ok(mut s) => {
                // The sandbox already named the shared UTS namespace; a container joining
                // it by path does not set it again.
                let joins_uts = s
                    .linux()
                    .as_ref()
                    .and_then(|l| l.namespaces().as_ref())
                    .is_some_and(|ns| {
                        ns.iter().any(|n| {
                            n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts
                                && n.path().is_some()
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
                s
            }
            Err(e) => {
                cleanup_rootfs(store);
                return Err(cfg_err(e.to_string()));
            }
        };
        let mut oci = oci;
        // terminationMessagePath: a host file bind-mounted there, read when it exits.
        let term_file = self.args.pod_dir.join("termination").join(&id);
        let term_path = self.ctrs[c]
            .spec
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let pod_root = idmap.as_ref().map(|m| m.root);
        if std::fs::create_dir_all(self.args.pod_dir.join("termination"))
            .and_then(|_| std::fs::write(&term_file, b""))
            // The pod's root writes it, as root does in a pod without a user namespace.
            .and_then(|_| match pod_root {
                Some(r) => std::os::unix::fs::chown(&term_file, Some(r), Some(r)),
                None => Ok(()),
            })
            .is_ok()
        {
            if let Ok(m) = oci_spec::runtime::MountBuilder::default()
                .destination(&term_path)
                .typ("bind")
                .source(&term_file)
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    "rw".to_string(),
                ])
                .build()
            {
                let mut mounts = oci.mounts().clone().unwrap_or_default();
                mounts.push(m);
                oci.set_mounts(Some(mounts));
            }
        }
        let exec_process = oci.process().clone();
        let bundle = store.container_dir(&id);
        let write = std::fs::create_dir_all(&bundle)
            .and_then(|_| serde_json::to_vec(&oci).map_err(std::io::Error::other))
            .and_then(|data| crate::util::write_atomic(&bundle.join("config.json"), &data));
        if let Err(e) = write {
            cleanup_rootfs(store);
            return Err(run_err(format!("writing {}: {e}", bundle.display())));
        }
        // Output pipes: the container writes, we copy into the CRI log.
        let restart = self.ctrs[c].status.restart_count;
        let log_path = logs::container_log_path(&self.log_dir, &self.ctrs[c].spec.name, restart);
        let mut pumps = Vec::new();
        let mut child_ends = Vec::new();
        for stream in ["stdout", "stderr"] {
            let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok(p) => p,
                Err(e) => {
                    cleanup_rootfs(store);
                    return Err(run_err(format!("pipe: {e}")));
                }
            };
            let _ = nix::fcntl::fcntl(
                &r,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            let file = log_path
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log_path)
                });
            let file = match file {
                Ok(f) => f,
                Err(e) => {
                    cleanup_rootfs(store);
                    return Err(run_err(format!("log file {}: {e}", log_path.display())));
                }
            };
            pumps.push(LogPump {
                fd: r,
                writer: CriLineWriter::new(stream),
                file,
            });
            child_ends.push(w);
        }
        let devnull = File::open("/dev/null").map_err(|e| run_err(format!("/dev/null: {e}")))?;
        // stdin: true keeps a pipe open (its write end stays with us) so the container
        // never reads EOF; tty: true gives it a pty whose master we read as stdout.
        let stdin_pipe = if self.ctrs[c].spec.stdin == Some(true) {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()
        } else {
            None
        };
        let tty = self.ctrs[c].spec.tty == Some(true);
        let console = if tty {
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .ok()
        } else {
            None
        };
        let opts = CreateOptions {
            stdin: Some(
                stdin_pipe
                    .as_ref()
                    .map(|(r, _)| r.as_raw_fd())
                    .unwrap_or(devnull.as_raw_fd()),
            ),
            stdout: Some(child_ends[0].as_raw_fd()),
            stderr: Some(child_ends[1].as_raw_fd()),
            console_fd: console.as_ref().map(|(_, theirs)| theirs.as_raw_fd()),
            ..Default::default()
        };
        let state = match self.runtime.create(&id, &bundle, &opts) {
            Ok(s) => s,
            Err(e) => {
                let _ = self.runtime.delete(&id, true);
                cleanup_rootfs(store);
                let _ = std::fs::remove_dir_all(&bundle);
                return Err(run_err(e.to_string()));
            }
        };
        drop(child_ends);
        drop(devnull);
        let stdin_keep = stdin_pipe.map(|(_, w)| w);
        if let Some((ours, theirs)) = console {
            drop(theirs);
            match crate::runtime::terminal::recv_master(&ours) {
                Ok(master) => {
                    let _ = nix::fcntl::fcntl(
                        &master,
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    // With a terminal everything the container writes arrives on the master.
                    if let Some(first) = pumps.first_mut() {
                        first.fd = master;
                    }
                    pumps.truncate(1);
                }
                Err(e) => {
                    let _ = self.runtime.delete(&id, true);
                    let _ = ImageStore::open(&self.args.data_dir).map(|s| s.release_rootfs(&id));
                    return Err(run_err(format!("receiving the container's terminal: {e}")));
                }
            }
        }
        let name = self.ctrs[c].spec.name.clone();
        self.kubelet_event(c, "Normal", "Created", &format!("Created container {name}"));
        if let Err(e) = self.runtime.start(&id) {
            let _ = self.runtime.delete(&id, true);
            let _ = ImageStore::open(&self.args.data_dir).map(|s| s.release_rootfs(&id));
            return Err(run_err(e.to_string()));
        }
        self.kubelet_event(c, "Normal", "Started", &format!("Started container {name}"));
        let ctr = &mut self.ctrs[c];
        ctr.id = Some(id.clone());
        ctr.prepared_exec = None;
        ctr.prepared_exec_failed = false;
        ctr.pid = Some(state.pid);
        ctr.logs = pumps;
        ctr.stdin_keep = stdin_keep;
        ctr.exec_process = exec_process;
        ctr.termination_file = Some(term_file);
        ctr.started = Some(Instant::now());
        ctr.finished = None;
        ctr.kill_note = None;
        ctr.stop_deadline = None;
        ctr.stop_signal = stop_signal;
        ctr.status.container_id = Some(format!("podrun://{id}"));
        ctr.status.image_id = format!(
            "{}@{}",
            image.reference.split(['@']).next().unwrap_or(""),
            image.manifest_digest
        );
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
        self.dirty = true;
        // postStart: the container only counts as started once the hook returns.
        if let Some(handler) = self.ctrs[c]
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
        {
            if let Err(msg) = probes::run_hook(self, c, &handler) {
                let name = self.ctrs[c].spec.name.clone();
                self.kubelet_event(c, "Warning", "FailedPostStartHook", &msg);
                self.ctrs[c].kill_note = Some("PostStartHookError".into());
                let _ = name;
                self.kill_container(c, Signal::SIGKILL);
            }
        }
        Ok(())
    }

    /// Sends a signal to a container's init.
    fn kill_container(&mut self, c: usize, sig: Signal) {
        if let Some(pid) = self.ctrs[c].pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
        }
    }

    /// The signal that stops a container gracefully: the image's STOPSIGNAL or SIGTERM.
    fn stop_signal(&self, c: usize) -> Signal {
        self.ctrs[c].stop_signal
    }

    /// Begins a graceful stop of container `c`: preStop, then its stop signal, SIGKILL
    /// after `grace`.
    pub fn stop_container(&mut self, c: usize, grace: Duration, note: Option<&str>) {
        if !self.ctrs[c].running() || self.ctrs[c].stop_deadline.is_some() {
            return;
        }
        if let Some(n) = note {
            self.ctrs[c].kill_note = Some(n.to_string());
        }
        let deadline = pod_state::deadline(Instant::now(), grace);
        self.ctrs[c].stop_deadline = Some(deadline);
        if !grace.is_zero() {
            if let Some(handler) = self.ctrs[c]
                .spec
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.clone())
            {
                if let Err(msg) = probes::run_hook_until(self, c, &handler, deadline) {
                    self.kubelet_event(c, "Warning", "FailedPreStopHook", &msg);
                }
            }
        }
        let sig = if grace.is_zero() {
            Signal::SIGKILL
        } else {
            self.stop_signal(c)
        };
        self.kill_container(c, sig);
    }

    /// Drains a container's pipes into its log file.
    fn pump_logs(&mut self, c: usize, final_drain: bool) {
        for p in self.ctrs[c].logs.iter_mut() {
            let mut buf = [0u8; 16384];
            loop {
                match nix::unistd::read(p.fd.as_fd(), &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let _ = p.writer.feed(&buf[..n], &mut p.file);
                    }
                    Err(_) => break,
                }
            }
            if final_drain {
                let _ = p.writer.finish(&mut p.file);
            }
        }
        if final_drain {
            self.ctrs[c].logs.clear();
        }
    }

    /// A container's init exited: record it, clean up its OCI container, decide restart.
    fn on_exit(&mut self, c: usize, code: i32, signal: Option<i32>) {
        self.pump_logs(c, true);
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
        ctr.stop_deadline = None;
        let started_at = ctr
            .status
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone());
        let reason = if oom {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
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
        if self.terminating.is_some() || self.regular_done() {
            self.ctrs[c].done = true;
            return;
        }
        let policy = RestartPolicy::of(self.spec());
        let ctr = &mut self.ctrs[c];
        let restart = pod_state::restarts_after(ctr.kind, policy, code);
        if ctr.kind == Kind::Init && code == 0 {
            ctr.done = true;
        }
        if !restart {
            ctr.done = ctr.done || ctr.kind != Kind::Init || code != 0;
        }
        if restart {
            // The finished run becomes lastState; the next run waits out the back-off.
            ctr.status.last_state = ctr.status.state.clone();
        }
    }

    /// What the planner sees of each container now.
    fn views(&self, now: Instant) -> Vec<ContainerView> {
        self.ctrs
            .iter()
            .map(|c| ContainerView {
                kind: Some(c.kind),
                running: c.running(),
                started: c.status.started == Some(true),
                done: c.done,
                succeeded: terminated_ok(&c.status),
                backoff_left: c
                    .finished
                    .map(|f| c.backoff.remaining(f, now))
                    .unwrap_or_default(),
                waiting_reason: c
                    .status
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone()),
            })
            .collect()
    }

    /// Every regular container finished and will not run again.
    fn regular_done(&self) -> bool {
        let mut regular = self
            .ctrs
            .iter()
            .filter(|c| c.kind == Kind::Regular)
            .peekable();
        regular.peek().is_some() && regular.all(|c| c.done && !c.running())
    }

    /// Starts what should run now (the next init container, sidecars, the regular
    /// containers, restarts whose back-off has passed) as pod_state plans it; once the
    /// regular containers are done for good, stops the sidecars, last first.
    fn reconcile(&mut self) {
        if self.terminating.is_some() || self.sandbox.is_none() {
            return;
        }
        let views = self.views(Instant::now());
        if self.regular_done() {
            if let Some(c) = pod_state::next_sidecar_to_stop(&views) {
                self.stop_with_event(c, self.pod_grace());
            }
        } else {
            for action in pod_state::start_actions(&views) {
                match action {
                    Action::Start(c) => {
                        if self.ctrs[c].finished.is_some()
                            && self.ctrs[c].status.last_state.is_some()
                        {
                            self.ctrs[c].status.restart_count += 1;
                        }
                        self.start_container(c);
                    }
                    Action::BackOff { c, show } => self.show_back_off(c, show),
                }
            }
        }
        self.update_phase();
    }

    /// A container waiting out its back-off shows why (and an event says so once).
    fn show_back_off(&mut self, c: usize, show: Option<BackOffShow>) {
        let name = self.ctrs[c].spec.name.clone();
        match show {
            Some(BackOffShow::CrashLoop) => {
                let delay = self.ctrs[c].backoff.current().unwrap_or_default().as_secs();
                let msg = format!(
                    "back-off {delay}s restarting failed container={name} pod={}",
                    pod_desc(&self.pod)
                );
                self.ctrs[c].waiting("CrashLoopBackOff", Some(msg));
                let text = format!(
                    "Back-off restarting failed container {name} in pod {}",
                    pod_desc(&self.pod)
                );
                self.kubelet_event(c, "Warning", "BackOff", &text);
                self.dirty = true;
            }
            Some(BackOffShow::ImagePull) => {
                let image = self.ctrs[c].spec.image.clone().unwrap_or_default();
                let msg = format!("Back-off pulling image \"{image}\"");
                self.ctrs[c].waiting("ImagePullBackOff", Some(msg.clone()));
                self.kubelet_event(c, "Normal", "BackOff", &msg);
                self.dirty = true;
            }
            None => {}
        }
    }

    /// Stops a container with the event kubelet records (once, when it is running and
    /// not already stopping).
    fn stop_with_event(&mut self, c: usize, grace: Duration) {
        if self.ctrs[c].running() && self.ctrs[c].stop_deadline.is_none() {
            let name = self.ctrs[c].spec.name.clone();
            self.kubelet_event(
                c,
                "Normal",
                "Killing",
                &format!("Stopping container {name}"),
            );
        }
        self.stop_container(c, grace, None);
    }

    /// Phase and conditions from the containers, as kubelet computes them (getPhase); a
    /// phase the pod was given for a reason (DeadlineExceeded) stays.
    fn update_phase(&mut self) {
        if self.status.reason.is_some() && self.is_terminal() {
            return;
        }
        let kinds: Vec<(Kind, &ContainerStatus)> =
            self.ctrs.iter().map(|c| (c.kind, &c.status)).collect();
        let names: Vec<&str> = self.ctrs.iter().map(|c| c.spec.name.as_str()).collect();
        let terminal = self.terminating.is_some() || self.regular_done();
        let policy = RestartPolicy::of(self.spec());
        let phase = pod_state::pod_phase(policy, &kinds, terminal);
        let conds = pod_state::conditions(&names, &kinds, phase);
        drop(kinds);
        drop(names);
        if self.status.phase.as_deref() != Some(phase.as_str()) {
            self.status.phase = Some(phase.as_str().into());
            self.dirty = true;
        }
        for (type_, c) in [
            ("Initialized", &conds.initialized),
            ("ContainersReady", &conds.containers_ready),
            ("Ready", &conds.ready),
        ] {
            self.set_condition(type_, c.status, c.reason, c.message.as_deref());
        }
        if phase.is_terminal() && self.sandbox.is_some() {
            self.set_condition("PodReadyToStartContainers", false, None, None);
        }
    }

    /// Handles the probe results and timers of running containers.
    fn run_probes(&mut self) {
        let mut started = Vec::new();
        for c in 0..self.ctrs.len() {
            if !self.ctrs[c].running() || self.ctrs[c].stop_deadline.is_some() {
                continue;
            }
            let results = probes::due(self, c, Instant::now(), &mut started);
            for (kind, outcome) in results {
                self.apply_probe(c, kind, outcome);
            }
        }
        if !started.is_empty() {
            self.probe_batch = Some(Instant::now() + PROBE_BATCH);
        }
        self.probe_runs.extend(started);
        self.collect_probe_runs();
    }

    /// Whether probe results are looked at now (false within a batch's window).
    fn probe_results_due(&mut self, now: Instant) -> bool {
        match self.probe_batch {
            Some(t) if t > now => false,
            _ => {
                self.probe_batch = None;
                true
            }
        }
    }

    /// Moves the probe runs on and concludes those that finished (or timed out).
    fn collect_probe_runs(&mut self) {
        if self.probe_runs.is_empty() {
            return;
        }
        let now = Instant::now();
        if !self.probe_results_due(now) {
            return;
        }
        let mut runs = std::mem::take(&mut self.probe_runs);
        let mut i = 0;
        while i < runs.len() {
            if !runs[i].advance(now, &mut |h, port, t| probes::dial(self, h, port, t)) {
                i += 1;
                continue;
            }
            let run = runs.swap_remove(i);
            if self.terminating.is_some() {
                continue;
            }
            if let Some((c, kind, outcome)) = probes::finish_run(self, run) {
                if self.ctrs[c].running() && self.ctrs[c].stop_deadline.is_none() {
                    self.apply_probe(c, kind, outcome);
                }
            }
        }
        runs.append(&mut self.probe_runs);
        self.probe_runs = runs;
    }

    /// /dev/null for exec stdin, opened on first use.
    pub fn devnull(&mut self) -> std::io::Result<RawFd> {
        if self.devnull.is_none() {
            self.devnull = Some(File::open("/dev/null")?);
        }
        Ok(self.devnull.as_ref().map_or(-1, |f| f.as_raw_fd()))
    }

    fn apply_probe(&mut self, c: usize, kind: ProbeKind, outcome: ProbeOutcome) {
        let name = self.ctrs[c].spec.name.clone();
        match outcome {
            ProbeOutcome::Failed {
                message,
                threshold_reached,
            } => {
                let what = kind.title();
                self.kubelet_event(
                    c,
                    "Warning",
                    "Unhealthy",
                    &format!("{what} probe failed: {message}"),
                );
                if !threshold_reached {
                    return;
                }
                match kind {
                    ProbeKind::Readiness => {
                        if self.ctrs[c].status.ready {
                            self.ctrs[c].status.ready = false;
                            self.dirty = true;
                        }
                    }
                    ProbeKind::Liveness | ProbeKind::Startup => {
                        let verb = if kind == ProbeKind::Liveness {
                            "liveness"
                        } else {
                            "startup"
                        };
                        self.kubelet_event(
                            c,
                            "Normal",
                            "Killing",
                            &format!("Container {name} failed {verb} probe, will be restarted"),
                        );
                        let grace = self.ctrs[c]
                            .probes
                            .grace(kind)
                            .unwrap_or_else(|| self.pod_grace());
                        self.stop_container(c, grace, Some(verb));
                    }
                }
            }
            ProbeOutcome::Succeeded { threshold_reached } => {
                if !threshold_reached {
                    return;
                }
                match kind {
                    ProbeKind::Readiness => {
                        if !self.ctrs[c].status.ready {
                            self.ctrs[c].status.ready = true;
                            self.dirty = true;
                        }
                    }
                    ProbeKind::Startup => {
                        if self.ctrs[c].status.started != Some(true) {
                            self.ctrs[c].status.started = Some(true);
                            self.dirty = true;
                        }
                    }
                    ProbeKind::Liveness => {}
                }
            }
            ProbeOutcome::Pending => {}
        }
    }

    /// Readiness without a readiness probe: ready as soon as started.
    fn update_readiness(&mut self) {
        for c in self.ctrs.iter_mut() {
            let running = c.running() && c.stop_deadline.is_none();
            if !c.probes.has(ProbeKind::Readiness) && c.kind != Kind::Init {
                let ready = running && c.status.started == Some(true);
                if c.status.ready != ready {
                    c.status.ready = ready;
                    self.dirty = true;
                }
            } else if !running && c.status.ready {
                c.status.ready = false;
                self.dirty = true;
            }
        }
    }

    fn pod_grace(&self) -> Duration {
        pod_state::seconds(self.spec().termination_grace_period_seconds.unwrap_or(30))
    }

    /// Starts pod termination: regular containers first, sidecars after them.
    fn begin_termination(&mut self) {
        if self.terminating.is_some() {
            return;
        }
        let req: DeletionRequest =
            store::read_json(&self.args.pod_dir.join(store::DELETION_FILE)).unwrap_or_default();
        let grace = match (req.force, req.grace_period_seconds) {
            (true, _) => Duration::ZERO,
            (_, Some(g)) => pod_state::seconds(g),
            _ => self.pod_grace(),
        };
        let deadline = pod_state::deadline(Instant::now(), grace);
        self.terminating = Some(deadline);
        for c in 0..self.ctrs.len() {
            if self.ctrs[c].kind == Kind::Regular || self.ctrs[c].kind == Kind::Init {
                self.stop_with_event(c, grace);
            }
        }
        self.dirty = true;
    }

    /// The taint eviction controller's part: a NoExecute taint the pod does not tolerate
    /// (or no longer, after tolerationSeconds) deletes it gracefully, as `podrun delete
    /// pod` does: the deletion request, then termination; the loop removes the pod.
    /// True when termination began.
    fn evicted_by_noexecute(&mut self) -> bool {
        let start = self.status.start_time.as_ref();
        let now = (Instant::now(), crate::util::now());
        let Some(message) = self.noexecute.poll(&self.pod, start, now.0, now.1) else {
            return false;
        };
        self.event(
            "Normal",
            admission::EVENT_TAINT_EVICTION,
            admission::TAINT_EVICTION_SOURCE,
            "",
            &message,
        );
        let path = self.args.pod_dir.join(store::DELETION_FILE);
        if !path.exists() {
            let req = DeletionRequest {
                grace_period_seconds: None,
                force: false,
                timestamp: crate::util::now().to_string(),
            };
            let _ = store::write_json(&path, &req);
        }
        self.begin_termination();
        true
    }

    /// During termination: sidecars stop once the regular containers are gone (in reverse
    /// order); anything past the deadline gets SIGKILL.
    fn drive_termination(&mut self) {
        let Some(deadline) = self.terminating else {
            return;
        };
        let now = Instant::now();
        if let Some(c) = pod_state::next_sidecar_to_stop(&self.views(now)) {
            let left = deadline.saturating_duration_since(now);
            self.stop_with_event(c, left.max(Duration::from_secs(2)));
        }
        for c in 0..self.ctrs.len() {
            if let Some(d) = self.ctrs[c].stop_deadline {
                if now >= d && self.ctrs[c].running() {
                    self.kill_container(c, Signal::SIGKILL);
                }
            }
        }
    }

    /// Container stop deadlines of probes-killed containers (outside pod termination).
    fn enforce_stop_deadlines(&mut self) {
        let now = Instant::now();
        for c in 0..self.ctrs.len() {
            if let Some(d) = self.ctrs[c].stop_deadline {
                if now >= d && self.ctrs[c].running() {
                    self.kill_container(c, Signal::SIGKILL);
                }
            }
        }
    }

    /// The soonest instant something must happen.
    fn next_wakeup(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        for c in &self.ctrs {
            // A passed deadline has had its SIGKILL: the exit comes as SIGCHLD.
            if let Some(d) = c.stop_deadline.filter(|d| *d > now) {
                consider(d);
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
    fn reap(&mut self) {
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

    fn child_exited(&mut self, pid: i32, code: i32, signal: Option<i32>) {
        if let Some(e) = self.probe_runs.iter_mut().find(|e| e.pid() == Some(pid)) {
            e.exited(code);
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
    fn teardown(&mut self) {
        for e in self.probe_runs.drain(..) {
            e.kill();
        }
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
    }

    /// The main loop: runs until the pod is deleted.
    pub fn run(mut self) -> Result<(), SupervisorError> {
        let mut mask = SigSet::empty();
        for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
            mask.add(s);
        }
        mask.thread_block()
            .map_err(|e| io("blocking signals")(e.into()))?;
        let sigfd = SignalFd::with_flags(
            &mask,
            nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
        )
        .map_err(|e| io("signalfd")(e.into()))?;
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
        self.reconcile();
        self.update_readiness();
        self.update_phase();
        self.flush();
        self.signal_ready("ok");
        trim_resident();
        let mut trimmed_at = Instant::now();
        loop {
            // Start-up and restarts run code the steady loop never needs again.
            if trimmed_at.elapsed() > Duration::from_secs(60) {
                trim_resident();
                trimmed_at = Instant::now();
            }
            let timeout = self
                .next_wakeup()
                .map(|t| t.saturating_duration_since(Instant::now()));
            let mut fds: Vec<libc::pollfd> = vec![libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let mut owners = Vec::new();
            for (i, c) in self.ctrs.iter().enumerate() {
                for p in &c.logs {
                    fds.push(libc::pollfd {
                        fd: p.fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    owners.push(i);
                }
            }
            let logs_end = fds.len();
            let node_watch = self.noexecute.fd().map(|fd| {
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
                fds.len() - 1
            });
            for (fd, events) in self.probe_runs.iter().filter_map(|e| e.wait()) {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
            }
            let mut ms = timeout
                .map(|t| t.as_millis().min(60_000) as i32 + 1)
                .unwrap_or(60_000);
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
            if n > 0 {
                for (k, pfd) in fds.iter().enumerate().take(logs_end).skip(1) {
                    if pfd.revents != 0 {
                        self.pump_logs(owners[k - 1], false);
                    }
                }
                if node_watch.is_some_and(|i| fds[i].revents != 0) {
                    self.noexecute.notified();
                }
                if fds[0].revents != 0 {
                    while let Ok(Some(info)) = sigfd.read_signal() {
                        match Signal::try_from(info.ssi_signo as i32) {
                            Ok(Signal::SIGCHLD) => self.reap(),
                            Ok(Signal::SIGTERM | Signal::SIGINT) => self.begin_termination(),
                            _ => {}
                        }
                    }
                    self.reap();
                }
            }
            if let Some(d) = self.active_deadline {
                if Instant::now() >= d && self.terminating.is_none() && !self.is_terminal() {
                    self.deadline_exceeded();
                }
            }
            if self.terminating.is_some() {
                self.drive_termination();
                if self.ctrs.iter().all(|c| !c.running()) {
                    break;
                }
            } else if !self.evicted_by_noexecute() {
                self.enforce_stop_deadlines();
                self.run_probes();
                self.reconcile();
            } else {
                self.collect_probe_runs();
            }
            self.update_readiness();
            self.update_phase();
            self.flush();
            probes::flush_trace();
        }
        self.flush();
        self.teardown();
        remove_pod_dir(&self.args.pod_dir);
        Ok(())
    }

    fn is_terminal(&self) -> bool {
        matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    /// activeDeadlineSeconds passed: kill everything, phase Failed, reason DeadlineExceeded.
    fn deadline_exceeded(&mut self) {
        let msg = "Pod was active on the node longer than the specified deadline".to_string();
        self.event("Normal", "DeadlineExceeded", "kubelet", "", &msg);
        for c in 0..self.ctrs.len() {
            self.ctrs[c].done = true;
            self.stop_container(c, self.pod_grace(), None);
        }
        self.status.phase = Some("Failed".into());
        self.status.reason = Some("DeadlineExceeded".into());
        self.status.message = Some(msg);
        self.active_deadline = None;
        self.dirty = true;
    }

    /// For pods that never started: keep the record until deleted.
    fn wait_for_delete(&mut self, sigfd: &SignalFd) -> Result<(), SupervisorError> {
        // Deleted before it ran: `up` created it all the same (a failed start said so).
        self.signal_ready("ok");
        // `delete` writes its request before the SIGTERM, which `schedule` may have
        // consumed already: then there is nothing left to wait for.
        while !self.args.pod_dir.join(store::DELETION_FILE).exists() {
            if let Some(s) = wait_signal(sigfd, Duration::from_secs(3600))? {
                if s != Signal::SIGCHLD {
                    break;
                }
                self.reap();
            }
        }
        remove_pod_dir(&self.args.pod_dir);
        Ok(())
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
    /// The pod's network namespace and this thread's own, both open (None with
    /// hostNetwork), for probes to create their sockets inside the pod.
    pub fn probe_netns(&mut self) -> Option<&(File, File)> {
        if self.netns_files.is_none() {
            let path = self.sandbox.as_ref().and_then(|s| s.namespaces().net)?;
            let target = File::open(path).ok()?;
            let own = File::open("/proc/thread-self/ns/net").ok()?;
            self.netns_files = Some((target, own));
        }
        self.netns_files.as_ref()
    }
}

fn terminated_ok(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

fn new_ctr(spec: Container, kind: Kind) -> Ctr {
    let status = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("PodInitializing".into()),
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
        kill_note: None,
        probes,
        stop_deadline: None,
        stop_signal: Signal::SIGTERM,
        stdin_keep: None,
        termination_file: None,
        exec_process: None,
        prepared_exec: None,
        prepared_exec_failed: false,
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

use super::leftovers::remove_pod_dir;

/// Waits up to `timeout` for a signal on the signalfd.
fn wait_signal(sigfd: &SignalFd, timeout: Duration) -> Result<Option<Signal>, SupervisorError> {
    let mut pfd = libc::pollfd {
        fd: sigfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe {
        libc::poll(
            &mut pfd,
            1,
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
    };
    if n <= 0 {
        return Ok(None);
    }
    match sigfd.read_signal() {
        Ok(Some(info)) => Ok(Signal::try_from(info.ssi_signo as i32).ok()),
        _ => Ok(None),
    }
}

/// Reads everything from a file descriptor (used for hook output).
pub fn read_all(fd: OwnedFd) -> String {
    let mut f = File::from(fd);
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
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

/// kubelet's termination message: the file at terminationMessagePath (at most 4096
/// bytes); with FallbackToLogsOnError and an empty file after a failure, the log's last
/// 80 lines (at most 2048 bytes).
fn termination_message(ctr: &mut Ctr, code: i32, log_dir: &Path) -> Option<String> {
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

/// Drops the supervisor's resident copies of code and read-only data, and returns freed
/// heap to the kernel. The supervisor runs a small loop out of a large binary: start-up
/// maps in (and fault-around keeps) most of its text and of libc, though the loop touches
/// little of it. A private file mapping with no copied-on-write page holds nothing but
/// the file's own bytes, so dropping its pages is safe: they are read again from the page
/// cache on use. Mappings with any anonymous page (relocated data, .data) are left alone.
pub fn trim_resident() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let file_backed = path.starts_with('/');
            current = match (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                (Ok(start), Ok(end)) if file_backed && (perms == "r-xp" || perms == "r--p") => {
                    Some((start, end))
                }
                _ => None,
            };
            continue;
        }
        if first == "Anonymous:" {
            if let Some((start, end)) = current.take() {
                if f.next() == Some("0") {
                    // SAFETY: a private, read-only file mapping without a single anonymous
                    // (copied) page: dropping its pages loses nothing.
                    unsafe {
                        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
                    };
                }
            }
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}
