//! The pod's explicit states and reasons (in kubelet's words) and [`plan`], the one
//! function in the spirit of kubelet's computePodActions: from the spec, what the worker
//! observed and the time, every action the pod takes next.
use super::{
    deadline, next_sidecar_to_stop, seconds, start_actions, Action, ContainerView, Kind,
    RestartPolicy,
};
use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec};
use nix::sys::signal::Signal;
use std::fmt;
use std::time::{Duration, Instant};

/// Prints and parses an enum of kubelet's words.
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// kubelet's word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => stringify!($v)),+ }
            }

            /// The value kubelet's word names.
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(
    /// Why a container waits.
    WaitingReason {
        PodInitializing,
        ContainerCreating,
        CrashLoopBackOff,
        ErrImagePull,
        ImagePullBackOff,
        ErrImageNeverPull,
        CreateContainerConfigError,
        CreateContainerError,
        RunContainerError,
    }
);

words!(
    /// Why a container's run ended.
    TerminatedReason {
        Completed,
        Error,
        OOMKilled,
        ContainerCannotRun,
        DeadlineExceeded,
    }
);

words!(
    /// Why the pod failed for good.
    FailReason { DeadlineExceeded }
);

impl TerminatedReason {
    /// The reason of an exit: OOMKilled when the kernel's OOM killer ended it,
    /// Completed on 0, Error otherwise.
    pub fn of_exit(code: i32, oom: bool) -> TerminatedReason {
        match (oom, code) {
            (true, _) => TerminatedReason::OOMKilled,
            (false, 0) => TerminatedReason::Completed,
            _ => TerminatedReason::Error,
        }
    }
}

impl FailReason {
    /// kubelet's message.
    pub fn message(self) -> &'static str {
        match self {
            FailReason::DeadlineExceeded => {
                "Pod was active on the node longer than the specified deadline"
            }
        }
    }
}

/// One container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrState {
    Waiting {
        reason: WaitingReason,
    },
    Running,
    Terminated {
        code: i32,
        signal: Option<i32>,
        reason: TerminatedReason,
    },
}

impl CtrState {
    /// The state a container status shows (None: no state, or a reason not kubelet's).
    pub fn of(s: &ContainerStatus) -> Option<CtrState> {
        let st = s.state.as_ref()?;
        if st.running.is_some() {
            return Some(CtrState::Running);
        }
        if let Some(t) = &st.terminated {
            let reason = t.reason.as_deref().and_then(TerminatedReason::parse);
            return Some(CtrState::Terminated {
                code: t.exit_code,
                signal: t.signal,
                reason: reason.unwrap_or(TerminatedReason::of_exit(t.exit_code, false)),
            });
        }
        let w = st.waiting.as_ref()?;
        let reason = w.reason.as_deref().and_then(WaitingReason::parse)?;
        Some(CtrState::Waiting { reason })
    }
}

/// The pod's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// Not bound and started yet (admission, no sandbox).
    Scheduling,
    /// Init containers run (sidecars start).
    Initializing,
    Running,
    /// Deleted: every container is stopped by `deadline`.
    Terminating {
        deadline: Instant,
    },
    /// Its regular containers are done for good: nothing runs again, its sidecars are
    /// stopped.
    Terminated,
}

impl PodState {
    /// The state from what the worker knows: whether the sandbox exists, the deadline of
    /// a termination under way, whether its regular containers are done for good, and
    /// the containers.
    pub fn derive(
        sandbox: bool,
        terminating: Option<Instant>,
        ended: bool,
        views: &[ContainerView],
    ) -> PodState {
        match terminating {
            Some(deadline) => PodState::Terminating { deadline },
            None if !sandbox => PodState::Scheduling,
            None if ended => PodState::Terminated,
            None if super::initialized(views) => PodState::Running,
            None => PodState::Initializing,
        }
    }
}

/// Which lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

/// Why a container is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    LivenessFailure,
    StartupFailure,
    PostStartHookFailure,
    ActiveDeadline,
    /// The pod is deleted.
    PodTermination,
    /// The pod's regular containers are done for good: its sidecars stop.
    PodCompleted,
    /// `apply` changed its image: it starts again with the new one.
    DefinitionChanged,
}

impl KillReason {
    /// kubelet's Killing event for container `name` (None: it records none then, or it
    /// was recorded where the decision was observed).
    pub fn event(self, name: &str) -> Option<String> {
        match self {
            KillReason::LivenessFailure => Some(format!(
                "Container {name} failed liveness probe, will be restarted"
            )),
            KillReason::StartupFailure => Some(format!(
                "Container {name} failed startup probe, will be restarted"
            )),
            KillReason::PodTermination | KillReason::PodCompleted => {
                Some(format!("Stopping container {name}"))
            }
            KillReason::PostStartHookFailure
            | KillReason::ActiveDeadline
            | KillReason::DefinitionChanged => None,
        }
    }
}

/// A graceful stop under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping {
    pub reason: KillReason,
    /// SIGKILL then.
    pub deadline: Instant,
    /// Its preStop hook still runs (the stop signal follows it).
    pub pre_stop: bool,
    /// The stop signal was sent.
    pub signalled: bool,
    /// SIGKILL was sent.
    pub killed: bool,
}

/// What the planner sees of the pod.
#[derive(Debug, Clone)]
pub struct PodView {
    pub state: PodState,
    /// The pod was deleted (SIGTERM) and its termination not begun yet: the grace
    /// period asked for.
    pub deletion: Option<Duration>,
    /// When activeDeadlineSeconds runs out (None: no deadline, or it was acted on).
    pub active_deadline: Option<Instant>,
    /// The phase is Succeeded or Failed already (no deadline applies any more).
    pub phase_terminal: bool,
    pub containers: Vec<ContainerView>,
}

/// The grace period of a deletion: none when forced, the request's, else the pod's
/// terminationGracePeriodSeconds (30 s by default).
pub fn deletion_grace(spec: &PodSpec, force: bool, grace_seconds: Option<i64>) -> Duration {
    match (force, grace_seconds) {
        (true, _) => Duration::ZERO,
        (_, Some(g)) => seconds(g),
        _ => pod_grace(spec),
    }
}

fn pod_grace(spec: &PodSpec) -> Duration {
    seconds(spec.termination_grace_period_seconds.unwrap_or(30))
}

/// What becomes of a container whose run just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitOutcome {
    /// It runs again (after its back-off); the ended run becomes lastState.
    pub restart: bool,
    /// It will not run again (or, an init container, it completed).
    pub done: bool,
}

/// kubelet's decision on an exit: nothing restarts once the pod ends (`pod_ending`:
/// deleted, or its regular containers done for good); a container stopped because its
/// definition changed runs again whatever its policy; otherwise the restart policy
/// ([`super::restarts_after`]) decides, and an init container that succeeded is done.
pub fn exit_outcome(
    kind: Kind,
    policy: RestartPolicy,
    code: i32,
    pod_ending: bool,
    changed: bool,
) -> ExitOutcome {
    if pod_ending {
        return ExitOutcome {
            restart: false,
            done: true,
        };
    }
    let restart = changed || super::restarts_after(kind, policy, code);
    let completed = kind == Kind::Init && code == 0 && !changed;
    let done = completed || (!restart && (kind != Kind::Init || code != 0));
    ExitOutcome { restart, done }
}

/// Every action the pod takes now, in order: kubelet's computePodActions over the pod's
/// state. A deleted pod terminates (regular and init containers first, preStop within
/// the grace period, then the stop signal, SIGKILL at the deadline; sidecars after
/// them, last first); past activeDeadlineSeconds the pod fails and everything stops;
/// containers whose stop was asked for (liveness or startup failure, postStart failure,
/// a changed image) stop; once the regular containers are done the sidecars stop;
/// otherwise what should run starts or waits out its back-off.
pub fn plan(spec: &PodSpec, pod: &PodView, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    let views = &pod.containers;
    let grace = pod_grace(spec);
    let terminating = match (pod.state, pod.deletion) {
        (PodState::Scheduling, _) => return out,
        (PodState::Terminating { deadline }, _) => Some(deadline),
        (_, Some(g)) => {
            let d = deadline(now, g);
            out.push(Action::Terminate { deadline: d });
            Some(d)
        }
        _ => None,
    };
    if let Some(d) = terminating {
        terminate(views, d, now, &mut out);
        if views.iter().all(|v| !v.running) {
            out.push(Action::Done);
        }
        return out;
    }
    if pod.active_deadline.is_some_and(|d| now >= d) && !pod.phase_terminal {
        out.push(Action::FailPod {
            reason: FailReason::DeadlineExceeded,
        });
        for (c, v) in views.iter().enumerate() {
            begin_stop(c, v, KillReason::ActiveDeadline, grace, now, &mut out);
        }
        return out;
    }
    for (c, v) in views.iter().enumerate() {
        if let Some((reason, g)) = v.stop_request {
            begin_stop(c, v, reason, g.unwrap_or(grace), now, &mut out);
        }
        continue_stop(c, v, now, &mut out);
    }
    if pod.state == PodState::Terminated {
        if let Some(c) = next_sidecar_to_stop(views) {
            begin_stop(c, &views[c], KillReason::PodCompleted, grace, now, &mut out);
        }
    } else {
        out.extend(start_actions(views));
    }
    out
}

/// The least a sidecar gets to stop in, however little of the pod's grace period is left.
const SIDECAR_MIN_GRACE: Duration = Duration::from_secs(2);

/// Termination by `deadline`: init and regular containers stop now; the sidecars once
/// the others are gone, last first; stops under way go on.
fn terminate(views: &[ContainerView], deadline: Instant, now: Instant, out: &mut Vec<Action>) {
    let left = deadline.saturating_duration_since(now);
    for (c, v) in views.iter().enumerate() {
        if v.kind() != Kind::Sidecar {
            begin_stop(c, v, KillReason::PodTermination, left, now, out);
        }
    }
    if let Some(c) = next_sidecar_to_stop(views) {
        let g = left.max(SIDECAR_MIN_GRACE);
        begin_stop(c, &views[c], KillReason::PodTermination, g, now, out);
    }
    for (c, v) in views.iter().enumerate() {
        continue_stop(c, v, now, out);
    }
}

/// A running container not stopping yet begins its stop: its preStop hook when it has
/// one and there is time, else its stop signal (SIGKILL with no grace period at all).
fn begin_stop(
    c: usize,
    v: &ContainerView,
    reason: KillReason,
    grace: Duration,
    now: Instant,
    out: &mut Vec<Action>,
) {
    if !v.running || v.stop.is_some() {
        return;
    }
    let deadline = deadline(now, grace);
    if !grace.is_zero() && v.has_pre_stop {
        out.push(Action::RunHook {
            c,
            hook: Hook::PreStop,
            reason,
            deadline,
        });
        return;
    }
    let signal = if grace.is_zero() {
        Signal::SIGKILL
    } else {
        v.stop_signal.unwrap_or(Signal::SIGTERM)
    };
    out.push(Action::Kill {
        c,
        signal,
        reason,
        deadline,
    });
}

/// A stop under way: the stop signal once preStop is over, SIGKILL at the deadline.
fn continue_stop(c: usize, v: &ContainerView, now: Instant, out: &mut Vec<Action>) {
    let Some(s) = v.stop.filter(|_| v.running) else {
        return;
    };
    let signal = if now >= s.deadline && !s.killed {
        Signal::SIGKILL
    } else if !s.pre_stop && !s.signalled {
        v.stop_signal.unwrap_or(Signal::SIGTERM)
    } else {
        return;
    };
    out.push(Action::Kill {
        c,
        signal,
        reason: s.reason,
        deadline: s.deadline,
    });
}

#[cfg(test)]
#[path = "pod_plan_tests.rs"]
mod tests;
