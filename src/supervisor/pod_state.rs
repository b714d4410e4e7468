//! The pod's decisions as pure functions of its spec, its containers' states and the
//! time, as kubelet makes them (computePodActions, ShouldContainerBeRestarted, getPhase,
//! the status conditions): which container starts next or waits out its back-off,
//! whether an exited container runs again, the order of termination, the phase and the
//! conditions. No I/O: the worker gathers the state, calls these, and carries out what
//! they say.
use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// The states, the reasons and `plan` (a part of this module, in its own file).
#[path = "pod_plan.rs"]
mod plan;
pub use plan::{
    deletion_grace, exit_outcome, plan, CtrState, ExitOutcome, FailReason, Hook, KillReason,
    PodState, PodView, Stopping, TerminatedReason, WaitingReason,
};

/// Where a container sits in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    /// An init container with restartPolicy Always (a native sidecar).
    Sidecar,
    Regular,
}

/// The pod's restartPolicy (Always when unset, as the API server defaults it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(spec: &PodSpec) -> RestartPolicy {
        match spec.restart_policy.as_deref() {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }
}

/// Whether a container that exited with `code` runs again (outside termination):
/// sidecars always; regular init containers until they succeed, unless the pod never
/// restarts; regular containers by the pod's policy.
pub fn restarts_after(kind: Kind, policy: RestartPolicy, code: i32) -> bool {
    match kind {
        Kind::Sidecar => true,
        Kind::Init => code != 0 && policy != RestartPolicy::Never,
        Kind::Regular => match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        },
    }
}

/// The pod phase, printing kubelet's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

fn running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn terminated_code(s: &ContainerStatus) -> Option<i32> {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .map(|t| t.exit_code)
}

fn waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}

/// The exit code of the run before this one, when the container waits to run again.
fn last_terminated_code(s: &ContainerStatus) -> Option<i32> {
    s.last_state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// Whether a container completed successfully (an init container that may let the
/// next one start).
pub fn succeeded(s: &ContainerStatus) -> bool {
    terminated_code(s) == Some(0)
}

/// Counts of kubelet's getPhase.
#[derive(Debug, Default)]
struct PhaseCounts {
    pending_init: usize,
    failed_init: usize,
    unknown: usize,
    running: usize,
    waiting: usize,
    stopped: usize,
    succeeded: usize,
    regular_started: bool,
}

impl PhaseCounts {
    fn init(&mut self, s: &ContainerStatus) {
        if running(s) {
            self.pending_init += 1;
        } else if let Some(code) = terminated_code(s) {
            self.failed_init += usize::from(code != 0);
        } else if waiting(s) {
            match last_terminated_code(s) {
                Some(code) => self.failed_init += usize::from(code != 0),
                None => self.pending_init += 1,
            }
        } else {
            self.pending_init += 1;
        }
    }

    fn sidecar(&mut self, s: &ContainerStatus) {
        if running(s) {
            if s.started != Some(true) {
                self.pending_init += 1;
            }
            self.running += 1;
        } else if terminated_code(s).is_some() || last_terminated_code(s).is_some() {
            // Stopped sidecars do not count towards the phase.
        } else if waiting(s) {
            self.pending_init += 1;
            self.waiting += 1;
        } else {
            self.pending_init += 1;
            self.unknown += 1;
        }
    }

    fn regular(&mut self, s: &ContainerStatus) {
        // kubelet's HasAnyRegularContainerStarted: running or terminated now.
        if running(s) || terminated_code(s).is_some() {
            self.regular_started = true;
        }
        if running(s) {
            self.running += 1;
        } else if let Some(code) = terminated_code(s) {
            self.stopped += 1;
            self.succeeded += usize::from(code == 0);
        } else if waiting(s) {
            if last_terminated_code(s).is_some() {
                self.stopped += 1;
            } else {
                self.waiting += 1;
            }
        } else {
            self.unknown += 1;
        }
    }
}

/// kubelet's getPhase: the phase from the container statuses (in spec order, with their
/// kinds). `terminal`: the pod will run nothing more (its containers will not restart
/// whatever the policy says, e.g. after activeDeadlineSeconds or deletion).
pub fn pod_phase(
    policy: RestartPolicy,
    ctrs: &[(Kind, &ContainerStatus)],
    terminal: bool,
) -> PodPhase {
    let mut n = PhaseCounts::default();
    for (kind, s) in ctrs {
        match kind {
            Kind::Init => n.init(s),
            Kind::Sidecar => n.sidecar(s),
            Kind::Regular => n.regular(s),
        }
    }
    if n.failed_init > 0 && policy == RestartPolicy::Never {
        return PodPhase::Failed;
    }
    if (n.pending_init > 0 && !n.regular_started) || n.waiting > 0 {
        return PodPhase::Pending;
    }
    if n.running > 0 && n.unknown == 0 {
        return PodPhase::Running;
    }
    if n.running > 0 || n.stopped == 0 || n.unknown > 0 {
        return PodPhase::Pending;
    }
    let all_succeeded = n.stopped == n.succeeded;
    match (terminal, policy) {
        (true, _) if all_succeeded => PodPhase::Succeeded,
        (true, _) => PodPhase::Failed,
        (false, RestartPolicy::Always) => PodPhase::Running,
        (false, _) if all_succeeded => PodPhase::Succeeded,
        (false, RestartPolicy::Never) => PodPhase::Failed,
        (false, _) => PodPhase::Running,
    }
}

/// One pod condition's value: True, or False with kubelet's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub status: bool,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
}

impl Condition {
    fn yes() -> Condition {
        Condition {
            status: true,
            reason: None,
            message: None,
        }
    }

    fn no(reason: &'static str, message: Option<String>) -> Condition {
        Condition {
            status: false,
            reason: Some(reason),
            message,
        }
    }
}

/// The conditions kubelet writes from the containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    pub initialized: Condition,
    pub containers_ready: Condition,
    pub ready: Condition,
}

/// kubelet's Initialized, ContainersReady and Ready conditions (without readiness
/// gates): init containers complete (sidecars started); every regular container and
/// sidecar ready; a terminal pod is not ready because it completed.
pub fn conditions(
    names: &[&str],
    ctrs: &[(Kind, &ContainerStatus)],
    phase: PodPhase,
) -> Conditions {
    let incomplete: Vec<&str> = ctrs
        .iter()
        .zip(names)
        .filter(|((kind, s), _)| match kind {
            Kind::Init => !succeeded(s),
            Kind::Sidecar => s.started != Some(true),
            Kind::Regular => false,
        })
        .map(|(_, n)| *n)
        .collect();
    let initialized = if incomplete.is_empty() || phase == PodPhase::Succeeded {
        Condition::yes()
    } else {
        Condition::no(
            "ContainersNotInitialized",
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    };
    let unready: Vec<&str> = ctrs
        .iter()
        .zip(names)
        .filter(|((kind, s), _)| *kind != Kind::Init && !s.ready)
        .map(|(_, n)| *n)
        .collect();
    let any_regular = ctrs.iter().any(|(k, _)| *k == Kind::Regular);
    let containers_ready = if phase == PodPhase::Succeeded {
        Condition::no("PodCompleted", None)
    } else if unready.is_empty() && any_regular {
        Condition::yes()
    } else if phase.is_terminal() {
        Condition::no("PodCompleted", None)
    } else {
        Condition::no(
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    Conditions {
        initialized,
        ready: containers_ready.clone(),
        containers_ready,
    }
}

/// What the planner sees of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    pub kind: Option<Kind>,
    pub running: bool,
    /// Its startup probe passed (or it has none) in the current run.
    pub started: bool,
    /// It will not run again (completed init container, or no restart by policy).
    pub done: bool,
    /// Its last run (or start attempt) ended with exit code 0.
    pub succeeded: bool,
    /// The back-off still to wait before it may start again.
    pub backoff_left: Duration,
    /// The waiting reason shown now, if any.
    pub waiting_reason: Option<WaitingReason>,
    /// A graceful stop under way in the current run.
    pub stop: Option<Stopping>,
    /// A stop asked for by what the worker observed (a probe past its failure
    /// threshold, a failed postStart hook, a changed image), with the grace period when
    /// it is not the pod's.
    pub stop_request: Option<(KillReason, Option<Duration>)>,
    /// It has a preStop hook.
    pub has_pre_stop: bool,
    /// Its graceful stop signal (the image's STOPSIGNAL; SIGTERM when None).
    pub stop_signal: Option<Signal>,
}

impl ContainerView {
    fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Regular)
    }
}

/// Which back-off a waiting container now shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackOffShow {
    /// CrashLoopBackOff ("back-off Ns restarting failed container=…").
    CrashLoop,
    /// ImagePullBackOff after an ErrImagePull.
    ImagePull,
}

/// What the pod does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (or restart) container `c` (its postStart hook runs once it started).
    Start(usize),
    /// Container `c` waits out its back-off; `show` when its waiting reason changes.
    BackOff { c: usize, show: Option<BackOffShow> },
    /// Run hook `hook` of container `c` (preStop: its stop begins, SIGKILL at
    /// `deadline`).
    RunHook {
        c: usize,
        hook: Hook,
        reason: KillReason,
        deadline: Instant,
    },
    /// Send `signal` to container `c` (a stop not under way yet begins: SIGKILL at
    /// `deadline`).
    Kill {
        c: usize,
        signal: Signal,
        reason: KillReason,
        deadline: Instant,
    },
    /// The pod's termination begins (it was deleted): everything is stopped by
    /// `deadline`.
    Terminate { deadline: Instant },
    /// The pod fails for good: nothing runs again.
    FailPod { reason: FailReason },
    /// The pod is terminated and every container gone.
    Done,
}

/// Which reason a container entering back-off shows (None: it keeps the one it shows).
/// A container that was never created (its config or the runtime's create failed) has
/// no exited run to back off from: kubelet goes on showing CreateContainerConfigError or
/// CreateContainerError while it retries.
pub fn back_off_show(waiting_reason: Option<WaitingReason>) -> Option<BackOffShow> {
    use WaitingReason as W;
    match waiting_reason {
        Some(W::ErrImagePull) => Some(BackOffShow::ImagePull),
        Some(
            W::ImagePullBackOff
            | W::ErrImageNeverPull
            | W::CrashLoopBackOff
            | W::CreateContainerConfigError
            | W::CreateContainerError,
        ) => None,
        _ => Some(BackOffShow::CrashLoop),
    }
}

/// Whether every init container completed and every sidecar started.
pub fn initialized(views: &[ContainerView]) -> bool {
    views.iter().all(|v| match v.kind() {
        Kind::Init => v.done && v.succeeded,
        Kind::Sidecar => v.started,
        Kind::Regular => true,
    })
}

/// An init container failed for good: the pod fails, nothing more starts.
pub fn init_failed(views: &[ContainerView]) -> bool {
    views
        .iter()
        .any(|v| v.kind() == Kind::Init && v.done && !v.succeeded)
}

/// kubelet's start order: init containers one at a time in order (a sidecar lets the
/// next one start once it has started), then every regular container; a container that
/// is neither running nor done starts once its back-off has passed.
pub fn start_actions(views: &[ContainerView]) -> Vec<Action> {
    let mut out = Vec::new();
    if init_failed(views) {
        return out;
    }
    let init_done = initialized(views);
    for (i, v) in views.iter().enumerate() {
        let kind = v.kind();
        if kind == Kind::Regular && !init_done {
            break;
        }
        if v.running {
            let blocks = match kind {
                Kind::Init => true,
                Kind::Sidecar => !v.started,
                Kind::Regular => false,
            };
            if blocks {
                break;
            }
            continue;
        }
        if v.done {
            continue;
        }
        if !v.backoff_left.is_zero() {
            out.push(Action::BackOff {
                c: i,
                show: back_off_show(v.waiting_reason),
            });
        } else {
            out.push(Action::Start(i));
        }
        if kind != Kind::Regular {
            break;
        }
    }
    out
}

/// During termination: once every other container has stopped, the running sidecar
/// declared last is stopped next (sidecars stop in reverse order).
pub fn next_sidecar_to_stop(views: &[ContainerView]) -> Option<usize> {
    let others_gone = views
        .iter()
        .filter(|v| v.kind() != Kind::Sidecar)
        .all(|v| !v.running);
    if !others_gone {
        return None;
    }
    (0..views.len())
        .rev()
        .find(|&i| views[i].kind() == Kind::Sidecar && views[i].running)
}

/// The furthest a deadline is set (a century): any int64 a manifest may hold saturates
/// there instead of overflowing an Instant.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `secs` of a manifest (activeDeadlineSeconds, a grace period) as a Duration: negative
/// is zero, huge saturates.
pub fn seconds(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(FAR)
}

/// `now + d` without overflow.
pub fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(3600)))
        .unwrap_or(now)
}

/// `now + secs` without overflow.
pub fn after(now: Instant, secs: i64) -> Instant {
    deadline(now, seconds(secs))
}

#[cfg(test)]
#[path = "pod_state_tests.rs"]
mod tests;
