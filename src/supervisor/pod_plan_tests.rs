use super::super::BackOffShow;
use super::*;
use crate::supervisor::backoff::RestartBackoff;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
};
use Kind::{Init, Regular, Sidecar};
use RestartPolicy::{Always, Never, OnFailure};

fn view(kind: Kind) -> ContainerView {
    ContainerView {
        kind: Some(kind),
        ..Default::default()
    }
}

fn running(kind: Kind) -> ContainerView {
    let mut v = view(kind);
    v.running = true;
    v.started = true;
    v
}

fn done(kind: Kind, ok: bool) -> ContainerView {
    let mut v = view(kind);
    v.done = true;
    v.succeeded = ok;
    v
}

fn pod(state: PodState, containers: Vec<ContainerView>) -> PodView {
    PodView {
        state,
        deletion: None,
        active_deadline: None,
        phase_terminal: false,
        containers,
    }
}

fn spec() -> PodSpec {
    PodSpec::default()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn kill(c: usize, signal: Signal, reason: KillReason, deadline: Instant) -> Action {
    Action::Kill {
        c,
        signal,
        reason,
        deadline,
    }
}

// --- states and reasons -----------------------------------------------------------------

#[test]
fn reasons_print_kubelets_words() {
    let words: Vec<String> = WaitingReason::ALL.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        words,
        [
            "PodInitializing",
            "ContainerCreating",
            "CrashLoopBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "ErrImageNeverPull",
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError"
        ]
    );
    let words: Vec<String> = TerminatedReason::ALL
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        words,
        [
            "Completed",
            "Error",
            "OOMKilled",
            "ContainerCannotRun",
            "DeadlineExceeded"
        ]
    );
    assert_eq!(FailReason::DeadlineExceeded.to_string(), "DeadlineExceeded");
    for r in WaitingReason::ALL {
        assert_eq!(WaitingReason::parse(r.as_str()), Some(*r));
    }
    assert_eq!(WaitingReason::parse("Running"), None);
}

#[test]
fn an_exit_is_completed_error_or_oom_killed() {
    assert_eq!(
        TerminatedReason::of_exit(0, false),
        TerminatedReason::Completed
    );
    assert_eq!(TerminatedReason::of_exit(1, false), TerminatedReason::Error);
    assert_eq!(
        TerminatedReason::of_exit(137, true),
        TerminatedReason::OOMKilled
    );
    assert_eq!(
        TerminatedReason::of_exit(0, true),
        TerminatedReason::OOMKilled
    );
}

#[test]
fn a_container_status_reads_as_its_state() {
    let mut s = ContainerStatus::default();
    assert_eq!(CtrState::of(&s), None);
    s.state = Some(ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some("ErrImageNeverPull".into()),
            message: None,
        }),
        ..Default::default()
    });
    assert_eq!(
        CtrState::of(&s),
        Some(CtrState::Waiting {
            reason: WaitingReason::ErrImageNeverPull
        })
    );
    s.state = Some(ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..Default::default()
    });
    assert_eq!(CtrState::of(&s), Some(CtrState::Running));
    s.state = Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: 137,
            signal: Some(9),
            reason: Some("OOMKilled".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        CtrState::of(&s),
        Some(CtrState::Terminated {
            code: 137,
            signal: Some(9),
            reason: TerminatedReason::OOMKilled
        })
    );
}

#[test]
fn the_pod_state_follows_sandbox_init_termination_and_the_end() {
    let now = Instant::now();
    let init = [view(Init), view(Regular)];
    let inited = [done(Init, true), running(Regular)];
    assert_eq!(
        PodState::derive(false, None, false, &init),
        PodState::Scheduling
    );
    assert_eq!(
        PodState::derive(true, None, false, &init),
        PodState::Initializing
    );
    assert_eq!(
        PodState::derive(true, None, false, &inited),
        PodState::Running
    );
    assert_eq!(
        PodState::derive(true, None, true, &inited),
        PodState::Terminated
    );
    assert_eq!(
        PodState::derive(true, Some(now), true, &inited),
        PodState::Terminating { deadline: now }
    );
}

// --- restart on exit: restartPolicy × exit code × kind ----------------------------------

#[test]
fn restart_policy_by_exit_code_and_kind() {
    // (kind, policy, code) → (restart, done)
    let table = [
        (Regular, Always, 0, true, false),
        (Regular, Always, 1, true, false),
        (Regular, OnFailure, 0, false, true),
        (Regular, OnFailure, 1, true, false),
        (Regular, Never, 0, false, true),
        (Regular, Never, 1, false, true),
        (Init, Always, 0, false, true),
        (Init, Always, 1, true, false),
        (Init, OnFailure, 0, false, true),
        (Init, OnFailure, 1, true, false),
        (Init, Never, 0, false, true),
        (Init, Never, 1, false, true),
        (Sidecar, Always, 0, true, false),
        (Sidecar, Always, 1, true, false),
        (Sidecar, OnFailure, 0, true, false),
        (Sidecar, OnFailure, 1, true, false),
        (Sidecar, Never, 0, true, false),
        (Sidecar, Never, 1, true, false),
    ];
    for (kind, policy, code, restart, done) in table {
        assert_eq!(
            exit_outcome(kind, policy, code, false, false),
            ExitOutcome { restart, done },
            "{kind:?} {policy:?} exit {code}"
        );
    }
}

#[test]
fn nothing_restarts_once_the_pod_ends() {
    for kind in [Init, Sidecar, Regular] {
        assert_eq!(
            exit_outcome(kind, Always, 1, true, true),
            ExitOutcome {
                restart: false,
                done: true
            }
        );
    }
}

#[test]
fn a_changed_container_runs_again_whatever_its_policy() {
    let o = exit_outcome(Regular, Never, 0, false, true);
    assert!(o.restart && !o.done);
    let o = exit_outcome(Init, Never, 0, false, true);
    assert!(o.restart && !o.done, "a changed init container runs again");
}

// --- starting and back-off --------------------------------------------------------------

#[test]
fn nothing_is_planned_before_the_pod_is_scheduled() {
    let p = pod(PodState::Scheduling, vec![view(Regular)]);
    assert!(plan(&spec(), &p, Instant::now()).is_empty());
}

#[test]
fn the_plan_starts_init_containers_first_then_the_regular_ones() {
    let now = Instant::now();
    let p = pod(PodState::Initializing, vec![view(Init), view(Regular)]);
    assert_eq!(plan(&spec(), &p, now), vec![Action::Start(0)]);
    let p = pod(
        PodState::Running,
        vec![done(Init, true), view(Regular), view(Regular)],
    );
    assert_eq!(
        plan(&spec(), &p, now),
        vec![Action::Start(1), Action::Start(2)]
    );
}

#[test]
fn a_sidecars_startup_probe_gates_the_containers_after_it() {
    let now = Instant::now();
    let mut sidecar = running(Sidecar);
    sidecar.started = false;
    let p = pod(PodState::Initializing, vec![sidecar.clone(), view(Regular)]);
    assert!(plan(&spec(), &p, now).is_empty());
    sidecar.started = true;
    let p = pod(PodState::Running, vec![sidecar, view(Regular)]);
    assert_eq!(plan(&spec(), &p, now), vec![Action::Start(1)]);
}

/// The plan for one crash-looping container at `now`, its back-off as kubelet keeps it.
fn crash_loop_plan(b: &RestartBackoff, finished: Instant, now: Instant) -> Vec<Action> {
    let mut v = view(Regular);
    v.backoff_left = b.remaining(finished, now);
    v.waiting_reason = Some(WaitingReason::CrashLoopBackOff);
    plan(&spec(), &pod(PodState::Running, vec![v]), now)
}

#[test]
fn back_off_is_immediate_then_10_20_40_to_300_seconds() {
    let mut b = RestartBackoff::default();
    let mut t = Instant::now();
    // The first exit restarts at once.
    assert_eq!(crash_loop_plan(&b, t, t), vec![Action::Start(0)]);
    let mut waits = Vec::new();
    for _ in 0..7 {
        // Restarted (the back-off advances), ran a second, exited again.
        b.advance(t);
        let finished = t + secs(1);
        let wait = b.remaining(finished, finished);
        waits.push(wait.as_secs());
        assert_eq!(
            crash_loop_plan(&b, finished, finished + wait - secs(1)),
            vec![Action::BackOff { c: 0, show: None }],
            "still waiting a second before the end of {wait:?}"
        );
        assert_eq!(
            crash_loop_plan(&b, finished, finished + wait),
            vec![Action::Start(0)]
        );
        t = finished + wait;
    }
    assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
}

#[test]
fn back_off_resets_after_ten_minutes_of_running() {
    let mut b = RestartBackoff::default();
    let t0 = Instant::now();
    for i in 0..6 {
        b.advance(t0 + secs(i));
    }
    // It ran more than ten minutes (twice the cap) since its last restart.
    let finished = t0 + secs(5 + 601);
    assert_eq!(
        crash_loop_plan(&b, finished, finished),
        vec![Action::Start(0)]
    );
    assert_eq!(b.advance(finished), secs(10));
}

#[test]
fn a_crash_loop_shows_crash_loop_back_off_an_image_pull_image_pull_back_off() {
    let now = Instant::now();
    let mut v = view(Regular);
    v.backoff_left = secs(10);
    v.waiting_reason = None;
    let p = pod(PodState::Running, vec![v.clone()]);
    assert_eq!(
        plan(&spec(), &p, now),
        vec![Action::BackOff {
            c: 0,
            show: Some(BackOffShow::CrashLoop)
        }]
    );
    v.waiting_reason = Some(WaitingReason::ErrImagePull);
    let p = pod(PodState::Running, vec![v]);
    assert_eq!(
        plan(&spec(), &p, now),
        vec![Action::BackOff {
            c: 0,
            show: Some(BackOffShow::ImagePull)
        }]
    );
}

// --- stops of one container -------------------------------------------------------------

#[test]
fn a_failed_liveness_probe_stops_the_container_within_the_pods_grace_period() {
    let now = Instant::now();
    let mut v = running(Regular);
    v.stop_request = Some((KillReason::LivenessFailure, None));
    let p = pod(PodState::Running, vec![v]);
    assert_eq!(
        plan(&spec(), &p, now),
        vec![kill(
            0,
            Signal::SIGTERM,
            KillReason::LivenessFailure,
            now + secs(30)
        )]
    );
}

#[test]
fn a_probes_own_grace_period_and_the_images_stop_signal_apply() {
    let now = Instant::now();
    let mut v = running(Regular);
    v.stop_request = Some((KillReason::StartupFailure, Some(secs(5))));
    v.stop_signal = Some(Signal::SIGQUIT);
    let p = pod(PodState::Running, vec![v]);
    assert_eq!(
        plan(&spec(), &p, now),
        vec![kill(
            0,
            Signal::SIGQUIT,
            KillReason::StartupFailure,
            now + secs(5)
        )]
    );
}

#[test]
fn a_failed_post_start_hook_kills_at_once() {
    let now = Instant::now();
    let mut v = running(Regular);
    v.has_pre_stop = true;
    v.stop_request = Some((KillReason::PostStartHookFailure, Some(Duration::ZERO)));
    let p = pod(PodState::Running, vec![v]);
    assert_eq!(
        plan(&spec(), &p, now),
        vec![kill(
            0,
            Signal::SIGKILL,
            KillReason::PostStartHookFailure,
            now
        )]
    );
}

#[test]
fn pre_stop_runs_first_within_the_grace_period() {
    let now = Instant::now();
    let mut v = running(Regular);
    v.has_pre_stop = true;
    v.stop_request = Some((KillReason::LivenessFailure, None));
    let p = pod(PodState::Running, vec![v]);
    assert_eq!(
        plan(&spec(), &p, now),
        vec![Action::RunHook {
            c: 0,
            hook: Hook::PreStop,
            reason: KillReason::LivenessFailure,
            deadline: now + secs(30)
        }]
    );
}

fn stopping(pre_stop: bool, signalled: bool, killed: bool, deadline: Instant) -> ContainerView {
    let mut v = running(Regular);
    v.has_pre_stop = true;
    v.stop = Some(Stopping {
        reason: KillReason::LivenessFailure,
        deadline,
        pre_stop,
        signalled,
        killed,
    });
    v
}

#[test]
fn the_stop_signal_follows_pre_stop_and_sigkill_the_deadline() {
    let now = Instant::now();
    let d = now + secs(20);
    let at = |v: ContainerView, t: Instant| plan(&spec(), &pod(PodState::Running, vec![v]), t);
    assert!(
        at(stopping(true, false, false, d), now).is_empty(),
        "preStop runs"
    );
    assert_eq!(
        at(stopping(false, false, false, d), now),
        vec![kill(0, Signal::SIGTERM, KillReason::LivenessFailure, d)],
        "preStop over"
    );
    assert!(
        at(stopping(false, true, false, d), now).is_empty(),
        "signalled"
    );
    assert_eq!(
        at(stopping(true, false, false, d), d),
        vec![kill(0, Signal::SIGKILL, KillReason::LivenessFailure, d)],
        "a preStop still running at the deadline"
    );
    assert!(at(stopping(false, true, true, d), d + secs(5)).is_empty());
}

#[test]
fn a_second_stop_request_leaves_the_stop_under_way_alone() {
    let now = Instant::now();
    let mut v = stopping(false, true, false, now + secs(20));
    v.stop_request = Some((KillReason::StartupFailure, Some(Duration::ZERO)));
    assert!(plan(&spec(), &pod(PodState::Running, vec![v]), now).is_empty());
}

// --- pod termination --------------------------------------------------------------------

#[test]
fn deletion_stops_init_and_regular_containers_first_sidecars_wait() {
    let now = Instant::now();
    let mut p = pod(
        PodState::Running,
        vec![running(Sidecar), running(Sidecar), running(Regular)],
    );
    p.deletion = Some(secs(30));
    let d = now + secs(30);
    assert_eq!(
        plan(&spec(), &p, now),
        vec![
            Action::Terminate { deadline: d },
            kill(2, Signal::SIGTERM, KillReason::PodTermination, d)
        ]
    );
}

#[test]
fn sidecars_stop_in_reverse_order_once_the_others_are_gone() {
    let now = Instant::now();
    let d = now + secs(30);
    let term = PodState::Terminating { deadline: d };
    let p = pod(
        term,
        vec![running(Sidecar), running(Sidecar), done(Regular, true)],
    );
    assert_eq!(
        plan(&spec(), &p, now),
        vec![kill(1, Signal::SIGTERM, KillReason::PodTermination, d)]
    );
    let p = pod(
        term,
        vec![running(Sidecar), done(Sidecar, true), done(Regular, true)],
    );
    // Little of the grace period left: a sidecar still gets two seconds.
    let late = d - secs(1);
    assert_eq!(
        plan(&spec(), &p, late),
        vec![kill(
            0,
            Signal::SIGTERM,
            KillReason::PodTermination,
            late + secs(2)
        )]
    );
}

#[test]
fn termination_is_done_when_every_container_is_gone() {
    let now = Instant::now();
    let p = pod(
        PodState::Terminating { deadline: now },
        vec![done(Sidecar, true), done(Regular, false)],
    );
    assert_eq!(plan(&spec(), &p, now), vec![Action::Done]);
}

#[test]
fn a_forced_deletion_kills_at_once() {
    let now = Instant::now();
    let mut with_hook = running(Regular);
    with_hook.has_pre_stop = true;
    let mut p = pod(PodState::Running, vec![with_hook]);
    p.deletion = Some(deletion_grace(&spec(), true, Some(30)));
    assert_eq!(
        plan(&spec(), &p, now),
        vec![
            Action::Terminate { deadline: now },
            kill(0, Signal::SIGKILL, KillReason::PodTermination, now)
        ]
    );
}

#[test]
fn the_deletion_grace_period_is_the_requests_else_the_pods() {
    let mut s = spec();
    assert_eq!(deletion_grace(&s, false, None), secs(30));
    assert_eq!(deletion_grace(&s, false, Some(3)), secs(3));
    assert_eq!(deletion_grace(&s, true, None), Duration::ZERO);
    s.termination_grace_period_seconds = Some(7);
    assert_eq!(deletion_grace(&s, false, None), secs(7));
    s.termination_grace_period_seconds = Some(i64::MAX);
    let huge = deletion_grace(&s, false, None);
    let mut p = pod(PodState::Running, vec![running(Regular)]);
    p.deletion = Some(huge);
    assert_eq!(plan(&s, &p, Instant::now()).len(), 2, "no overflow");
}

#[test]
fn stops_under_way_go_on_during_termination() {
    let now = Instant::now();
    let d = now + secs(5);
    let p = pod(
        PodState::Terminating {
            deadline: now + secs(30),
        },
        vec![stopping(false, true, false, d)],
    );
    assert!(plan(&spec(), &p, now).is_empty(), "its own deadline holds");
    assert_eq!(
        plan(&spec(), &p, d),
        vec![kill(0, Signal::SIGKILL, KillReason::LivenessFailure, d)]
    );
}

// --- activeDeadlineSeconds and the pod's end --------------------------------------------

#[test]
fn past_active_deadline_the_pod_fails_and_everything_stops() {
    let now = Instant::now();
    let mut p = pod(
        PodState::Running,
        vec![running(Sidecar), running(Regular), done(Regular, true)],
    );
    p.active_deadline = Some(now + secs(1));
    assert_eq!(plan(&spec(), &p, now), vec![], "not yet");
    let t = now + secs(1);
    let d = t + secs(30);
    assert_eq!(
        plan(&spec(), &p, t),
        vec![
            Action::FailPod {
                reason: FailReason::DeadlineExceeded
            },
            kill(0, Signal::SIGTERM, KillReason::ActiveDeadline, d),
            kill(1, Signal::SIGTERM, KillReason::ActiveDeadline, d),
        ]
    );
    p.phase_terminal = true;
    assert!(plan(&spec(), &p, t).is_empty(), "a pod that ended stays so");
}

#[test]
fn once_the_regular_containers_are_done_the_sidecars_stop_last_first() {
    let now = Instant::now();
    let p = pod(
        PodState::Terminated,
        vec![running(Sidecar), running(Sidecar), done(Regular, true)],
    );
    assert_eq!(
        plan(&spec(), &p, now),
        vec![kill(
            1,
            Signal::SIGTERM,
            KillReason::PodCompleted,
            now + secs(30)
        )]
    );
}

#[test]
fn killing_events_say_why_in_kubelets_words() {
    assert_eq!(
        KillReason::LivenessFailure.event("web").as_deref(),
        Some("Container web failed liveness probe, will be restarted")
    );
    assert_eq!(
        KillReason::StartupFailure.event("web").as_deref(),
        Some("Container web failed startup probe, will be restarted")
    );
    assert_eq!(
        KillReason::PodTermination.event("web").as_deref(),
        Some("Stopping container web")
    );
    assert_eq!(KillReason::ActiveDeadline.event("web"), None);
}
