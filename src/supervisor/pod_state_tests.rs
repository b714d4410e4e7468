//! kubelet's rules for restarts, start order, termination order, phase and conditions.
use super::*;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
};
use Kind::{Init, Regular, Sidecar};
use RestartPolicy::{Always, Never, OnFailure};

fn waiting_status(reason: &str) -> ContainerStatus {
    ContainerStatus {
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn running_status(started: bool, ready: bool) -> ContainerStatus {
    ContainerStatus {
        started: Some(started),
        ready,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn terminated(code: i32) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn exited_status(code: i32) -> ContainerStatus {
    ContainerStatus {
        state: Some(terminated(code)),
        ..Default::default()
    }
}

/// Waiting to run again (back-off) after exiting with `code`.
fn restarting_status(code: i32) -> ContainerStatus {
    ContainerStatus {
        last_state: Some(terminated(code)),
        ..waiting_status("CrashLoopBackOff")
    }
}

fn phase(policy: RestartPolicy, ctrs: &[(Kind, ContainerStatus)]) -> PodPhase {
    let v: Vec<(Kind, &ContainerStatus)> = ctrs.iter().map(|(k, s)| (*k, s)).collect();
    pod_phase(policy, &v, false)
}

fn terminal_phase(policy: RestartPolicy, ctrs: &[(Kind, ContainerStatus)]) -> PodPhase {
    let v: Vec<(Kind, &ContainerStatus)> = ctrs.iter().map(|(k, s)| (*k, s)).collect();
    pod_phase(policy, &v, true)
}

// --- restarts ---------------------------------------------------------------------------

#[test]
fn regular_containers_restart_by_the_pods_policy() {
    for (policy, code, want) in [
        (Always, 0, true),
        (Always, 1, true),
        (OnFailure, 0, false),
        (OnFailure, 137, true),
        (Never, 0, false),
        (Never, 1, false),
    ] {
        assert_eq!(
            restarts_after(Regular, policy, code),
            want,
            "{policy:?} {code}"
        );
    }
}

#[test]
fn init_containers_rerun_until_they_succeed_unless_the_pod_never_restarts() {
    assert!(!restarts_after(Init, Always, 0));
    assert!(restarts_after(Init, Always, 1));
    assert!(restarts_after(Init, OnFailure, 2));
    assert!(!restarts_after(Init, OnFailure, 0));
    assert!(!restarts_after(Init, Never, 1));
}

#[test]
fn sidecars_always_restart_whatever_the_pods_policy() {
    for policy in [Always, OnFailure, Never] {
        assert!(restarts_after(Sidecar, policy, 0));
        assert!(restarts_after(Sidecar, policy, 1));
    }
}

#[test]
fn restart_policy_defaults_to_always() {
    assert_eq!(RestartPolicy::of(&PodSpec::default()), Always);
    let spec = |p: &str| PodSpec {
        restart_policy: Some(p.into()),
        ..Default::default()
    };
    assert_eq!(RestartPolicy::of(&spec("OnFailure")), OnFailure);
    assert_eq!(RestartPolicy::of(&spec("Never")), Never);
}

// --- phase (kubelet's getPhase) ---------------------------------------------------------

#[test]
fn a_container_that_never_started_keeps_the_pod_pending() {
    for reason in ["ErrImageNeverPull", "ErrImagePull", "ContainerCreating"] {
        assert_eq!(
            phase(Always, &[(Regular, waiting_status(reason))]),
            PodPhase::Pending,
            "{reason}"
        );
    }
}

#[test]
fn one_running_container_makes_the_pod_running() {
    assert_eq!(
        phase(Always, &[(Regular, running_status(true, true))]),
        PodPhase::Running
    );
    assert_eq!(
        phase(
            Always,
            &[
                (Regular, running_status(true, false)),
                (Regular, restarting_status(1))
            ]
        ),
        PodPhase::Running
    );
}

#[test]
fn a_second_container_still_waiting_keeps_the_pod_pending() {
    assert_eq!(
        phase(
            Always,
            &[
                (Regular, running_status(true, true)),
                (Regular, waiting_status("ErrImagePull"))
            ]
        ),
        PodPhase::Pending
    );
}

#[test]
fn crash_looping_containers_keep_an_always_pod_running() {
    assert_eq!(
        phase(Always, &[(Regular, restarting_status(1))]),
        PodPhase::Running
    );
    assert_eq!(
        phase(OnFailure, &[(Regular, restarting_status(1))]),
        PodPhase::Running
    );
}

#[test]
fn all_exited_zero_is_succeeded_unless_always() {
    let done = [(Regular, exited_status(0)), (Regular, exited_status(0))];
    assert_eq!(phase(OnFailure, &done), PodPhase::Succeeded);
    assert_eq!(phase(Never, &done), PodPhase::Succeeded);
    assert_eq!(phase(Always, &done), PodPhase::Running);
}

#[test]
fn an_exit_failure_with_never_is_failed() {
    let ctrs = [(Regular, exited_status(0)), (Regular, exited_status(3))];
    assert_eq!(phase(Never, &ctrs), PodPhase::Failed);
    assert_eq!(phase(OnFailure, &ctrs), PodPhase::Running);
}

#[test]
fn a_terminal_pod_is_succeeded_or_failed_whatever_its_policy() {
    let ok = [(Regular, exited_status(0))];
    let bad = [(Regular, exited_status(137))];
    assert_eq!(terminal_phase(Always, &ok), PodPhase::Succeeded);
    assert_eq!(terminal_phase(Always, &bad), PodPhase::Failed);
    assert_eq!(terminal_phase(OnFailure, &bad), PodPhase::Failed);
}

#[test]
fn pending_while_init_containers_run_or_wait() {
    assert_eq!(
        phase(
            Always,
            &[
                (Init, running_status(true, false)),
                (Regular, waiting_status("PodInitializing"))
            ]
        ),
        PodPhase::Pending
    );
    assert_eq!(
        phase(
            Always,
            &[
                (Init, exited_status(0)),
                (Init, waiting_status("PodInitializing")),
                (Regular, waiting_status("PodInitializing"))
            ]
        ),
        PodPhase::Pending
    );
}

#[test]
fn a_failed_init_container_fails_a_never_pod_and_retries_otherwise() {
    let ctrs = [
        (Init, exited_status(1)),
        (Regular, waiting_status("PodInitializing")),
    ];
    assert_eq!(phase(Never, &ctrs), PodPhase::Failed);
    assert_eq!(phase(Always, &ctrs), PodPhase::Pending);
    let retrying = [
        (Init, restarting_status(1)),
        (Regular, waiting_status("PodInitializing")),
    ];
    assert_eq!(phase(OnFailure, &retrying), PodPhase::Pending);
}

#[test]
fn a_sidecar_that_has_not_started_keeps_the_pod_pending() {
    assert_eq!(
        phase(
            Always,
            &[
                (Sidecar, running_status(false, false)),
                (Regular, waiting_status("PodInitializing"))
            ]
        ),
        PodPhase::Pending
    );
}

#[test]
fn a_restarting_sidecar_does_not_put_a_started_pod_back_to_pending() {
    assert_eq!(
        phase(
            Always,
            &[
                (Sidecar, running_status(false, false)),
                (Regular, running_status(true, true))
            ]
        ),
        PodPhase::Running
    );
}

#[test]
fn stopped_sidecars_do_not_count_towards_the_phase() {
    let ctrs = [(Sidecar, exited_status(137)), (Regular, exited_status(0))];
    assert_eq!(phase(Never, &ctrs), PodPhase::Succeeded);
    assert_eq!(terminal_phase(Never, &ctrs), PodPhase::Succeeded);
}

#[test]
fn a_container_without_state_is_unknown_and_keeps_the_pod_pending() {
    let ctrs = [
        (Regular, running_status(true, true)),
        (Regular, ContainerStatus::default()),
    ];
    assert_eq!(phase(Always, &ctrs), PodPhase::Pending);
}

// --- conditions -------------------------------------------------------------------------

fn conds(names: &[&str], ctrs: &[(Kind, ContainerStatus)], phase: PodPhase) -> Conditions {
    let v: Vec<(Kind, &ContainerStatus)> = ctrs.iter().map(|(k, s)| (*k, s)).collect();
    conditions(names, &v, phase)
}

#[test]
fn all_ready_gives_ready_and_containers_ready() {
    let c = conds(
        &["a", "b"],
        &[
            (Regular, running_status(true, true)),
            (Regular, running_status(true, true)),
        ],
        PodPhase::Running,
    );
    assert!(c.initialized.status && c.ready.status && c.containers_ready.status);
}

#[test]
fn unready_containers_are_listed_in_kubelets_words() {
    let c = conds(
        &["web", "side"],
        &[
            (Regular, running_status(true, false)),
            (Regular, waiting_status("ContainerCreating")),
        ],
        PodPhase::Pending,
    );
    assert_eq!(c.ready.reason, Some("ContainersNotReady"));
    assert_eq!(
        c.ready.message.as_deref(),
        Some("containers with unready status: [web side]")
    );
    assert_eq!(c.containers_ready, c.ready);
}

#[test]
fn incomplete_init_containers_are_listed() {
    let c = conds(
        &["setup", "proxy", "app"],
        &[
            (Init, running_status(true, false)),
            (Sidecar, waiting_status("PodInitializing")),
            (Regular, waiting_status("PodInitializing")),
        ],
        PodPhase::Pending,
    );
    assert_eq!(c.initialized.reason, Some("ContainersNotInitialized"));
    assert_eq!(
        c.initialized.message.as_deref(),
        Some("containers with incomplete status: [setup proxy]")
    );
}

#[test]
fn an_unready_sidecar_makes_the_pod_unready() {
    let c = conds(
        &["proxy", "app"],
        &[
            (Sidecar, running_status(true, false)),
            (Regular, running_status(true, true)),
        ],
        PodPhase::Running,
    );
    assert!(c.initialized.status);
    assert_eq!(
        c.ready.message.as_deref(),
        Some("containers with unready status: [proxy]")
    );
}

#[test]
fn a_completed_pod_is_not_ready_because_it_completed() {
    for phase in [PodPhase::Succeeded, PodPhase::Failed] {
        let c = conds(&["job"], &[(Regular, exited_status(0))], phase);
        assert_eq!(c.ready.reason, Some("PodCompleted"), "{phase:?}");
        assert_eq!(c.ready.message, None);
    }
}

#[test]
fn no_init_containers_is_initialized() {
    let c = conds(
        &["a"],
        &[(Regular, waiting_status("ContainerCreating"))],
        PodPhase::Pending,
    );
    assert!(c.initialized.status);
}

// --- start order ------------------------------------------------------------------------

fn view(kind: Kind) -> ContainerView {
    ContainerView {
        kind: Some(kind),
        ..Default::default()
    }
}

fn run(mut v: ContainerView, started: bool) -> ContainerView {
    v.running = true;
    v.started = started;
    v
}

fn finished(mut v: ContainerView, ok: bool) -> ContainerView {
    v.done = true;
    v.succeeded = ok;
    v
}

#[test]
fn init_containers_start_one_at_a_time_before_any_regular_container() {
    let v = [view(Init), view(Init), view(Regular)];
    assert_eq!(start_actions(&v), vec![Action::Start(0)]);
    let v = [run(view(Init), true), view(Init), view(Regular)];
    assert!(start_actions(&v).is_empty());
    let v = [finished(view(Init), true), view(Init), view(Regular)];
    assert_eq!(start_actions(&v), vec![Action::Start(1)]);
}

#[test]
fn regular_containers_start_together_once_init_is_done() {
    let v = [
        finished(view(Init), true),
        view(Regular),
        view(Regular),
        view(Regular),
    ];
    assert_eq!(
        start_actions(&v),
        vec![Action::Start(1), Action::Start(2), Action::Start(3)]
    );
}

#[test]
fn a_sidecar_lets_the_next_container_start_once_it_has_started() {
    let v = [view(Sidecar), view(Regular)];
    assert_eq!(start_actions(&v), vec![Action::Start(0)]);
    let v = [run(view(Sidecar), false), view(Regular)];
    assert!(start_actions(&v).is_empty(), "startup probe not passed yet");
    let v = [run(view(Sidecar), true), view(Init), view(Regular)];
    assert_eq!(start_actions(&v), vec![Action::Start(1)]);
    let v = [run(view(Sidecar), true), view(Regular)];
    assert_eq!(start_actions(&v), vec![Action::Start(1)]);
}

#[test]
fn an_init_container_failed_for_good_starts_nothing() {
    let v = [finished(view(Init), false), view(Regular)];
    assert!(init_failed(&v));
    assert!(start_actions(&v).is_empty());
}

#[test]
fn a_container_in_back_off_waits_and_holds_back_those_after_it_in_init() {
    let mut v0 = view(Init);
    v0.backoff_left = Duration::from_secs(10);
    v0.waiting_reason = None;
    let v = [v0, view(Init), view(Regular)];
    assert_eq!(
        start_actions(&v),
        vec![Action::BackOff {
            c: 0,
            show: Some(BackOffShow::CrashLoop)
        }]
    );
}

#[test]
fn regular_containers_back_off_independently() {
    let mut a = view(Regular);
    a.backoff_left = Duration::from_secs(20);
    a.waiting_reason = Some(WaitingReason::CrashLoopBackOff);
    let v = [a, view(Regular)];
    assert_eq!(
        start_actions(&v),
        vec![Action::BackOff { c: 0, show: None }, Action::Start(1)]
    );
}

#[test]
fn running_or_done_containers_are_left_alone() {
    let v = [run(view(Regular), true), finished(view(Regular), true)];
    assert!(start_actions(&v).is_empty());
}

#[test]
fn the_back_off_reason_follows_what_failed() {
    use WaitingReason as W;
    assert_eq!(
        back_off_show(Some(W::ErrImagePull)),
        Some(BackOffShow::ImagePull)
    );
    assert_eq!(back_off_show(Some(W::ImagePullBackOff)), None);
    assert_eq!(back_off_show(Some(W::ErrImageNeverPull)), None);
    assert_eq!(back_off_show(Some(W::CrashLoopBackOff)), None);
    assert_eq!(back_off_show(None), Some(BackOffShow::CrashLoop));
    assert_eq!(
        back_off_show(Some(W::RunContainerError)),
        Some(BackOffShow::CrashLoop)
    );
}

#[test]
fn a_container_never_created_keeps_its_create_error_while_it_retries() {
    use WaitingReason as W;
    assert_eq!(back_off_show(Some(W::CreateContainerConfigError)), None);
    assert_eq!(back_off_show(Some(W::CreateContainerError)), None);
    let mut v = view(Regular);
    v.backoff_left = Duration::from_secs(10);
    v.waiting_reason = Some(W::CreateContainerConfigError);
    assert_eq!(
        start_actions(&[v]),
        vec![Action::BackOff { c: 0, show: None }]
    );
}

// --- termination order ------------------------------------------------------------------

#[test]
fn sidecars_stop_after_the_regular_containers_in_reverse_order() {
    let v = [
        run(view(Sidecar), true),
        run(view(Sidecar), true),
        run(view(Regular), true),
    ];
    assert_eq!(next_sidecar_to_stop(&v), None, "regular still running");
    let v = [
        run(view(Sidecar), true),
        run(view(Sidecar), true),
        finished(view(Regular), true),
    ];
    assert_eq!(next_sidecar_to_stop(&v), Some(1));
    let v = [
        run(view(Sidecar), true),
        finished(view(Sidecar), true),
        finished(view(Regular), true),
    ];
    assert_eq!(next_sidecar_to_stop(&v), Some(0));
    let v = [finished(view(Sidecar), true), finished(view(Regular), true)];
    assert_eq!(next_sidecar_to_stop(&v), None);
}

// --- time -------------------------------------------------------------------------------

#[test]
fn huge_deadlines_saturate_instead_of_overflowing() {
    let now = Instant::now();
    let far = after(now, i64::MAX);
    assert!(far > now + Duration::from_secs(365 * 24 * 3600));
    assert_eq!(after(now, -5), now);
    assert_eq!(after(now, 30), now + Duration::from_secs(30));
}
