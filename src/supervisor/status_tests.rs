use super::*;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning};
use k8s_openapi::jiff::Timestamp;

fn t(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

fn types(conds: &[PodCondition]) -> Vec<&str> {
    conds.iter().map(|c| c.type_.as_str()).collect()
}

#[test]
fn conditions_are_listed_in_kubelets_order_whatever_order_they_are_set_in() {
    let mut conds = Vec::new();
    for ty in [
        "PodScheduled",
        "Ready",
        "PodReadyToStartContainers",
        "ContainersReady",
        "Initialized",
    ] {
        assert!(set_condition(&mut conds, ty, true, None, None, t(1)));
    }
    assert_eq!(
        types(&conds),
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
}

#[test]
fn a_condition_set_again_unchanged_keeps_its_transition_time() {
    let mut conds = Vec::new();
    set_condition(
        &mut conds,
        "Ready",
        false,
        Some("ContainersNotReady"),
        Some("m"),
        t(1),
    );
    assert!(!set_condition(
        &mut conds,
        "Ready",
        false,
        Some("ContainersNotReady"),
        Some("m"),
        t(9)
    ));
    assert_eq!(conds[0].last_transition_time, Some(t(1)));
}

#[test]
fn a_condition_that_changes_moves_its_transition_time_and_drops_its_reason() {
    let mut conds = Vec::new();
    set_condition(
        &mut conds,
        "Ready",
        false,
        Some("ContainersNotReady"),
        Some("m"),
        t(1),
    );
    assert!(set_condition(&mut conds, "Ready", true, None, None, t(5)));
    let c = &conds[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
        ("True", None, None)
    );
    assert_eq!(c.last_transition_time, Some(t(5)));
    assert_eq!(conds.len(), 1);
}

fn running(name: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn bound() -> PodStatus {
    let mut st = PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    };
    let conds = st.conditions.get_or_insert_with(Vec::new);
    set_condition(conds, "PodScheduled", true, None, None, t(1));
    st
}

#[test]
fn an_unbound_pod_shows_no_container_statuses() {
    let st = PodStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    };
    let (a, b) = (running("init"), running("app"));
    let out = status_to_write(&st, &[(Kind::Init, &a), (Kind::Regular, &b)]);
    assert!(!is_bound(&out));
    assert_eq!(out.container_statuses, None);
    assert_eq!(out.init_container_statuses, None);
    assert_eq!(out.phase.as_deref(), Some("Pending"));
}

#[test]
fn a_bound_pod_lists_init_and_sidecar_statuses_apart_from_the_regular_ones() {
    let (a, b, c) = (running("init"), running("side"), running("app"));
    let ctrs = [(Kind::Init, &a), (Kind::Sidecar, &b), (Kind::Regular, &c)];
    let out = status_to_write(&bound(), &ctrs);
    let names = |v: &Option<Vec<ContainerStatus>>| -> Vec<String> {
        v.iter().flatten().map(|s| s.name.clone()).collect()
    };
    assert_eq!(names(&out.init_container_statuses), ["init", "side"]);
    assert_eq!(names(&out.container_statuses), ["app"]);
}

#[test]
fn a_bound_pod_without_init_containers_has_no_init_statuses_field() {
    let c = running("app");
    let out = status_to_write(&bound(), &[(Kind::Regular, &c)]);
    assert_eq!(out.init_container_statuses, None);
    assert_eq!(out.container_statuses.map(|v| v.len()), Some(1));
}

#[test]
fn without_a_readiness_probe_a_container_is_ready_once_running_and_started() {
    assert!(readiness(Kind::Regular, false, true, true, false));
    assert!(
        !readiness(Kind::Regular, false, true, false, false),
        "startup probe not passed"
    );
    assert!(
        !readiness(Kind::Regular, false, false, true, true),
        "stopped"
    );
    assert!(readiness(Kind::Sidecar, false, true, true, false));
}

#[test]
fn with_a_readiness_probe_readiness_is_the_probes_and_lost_when_not_running() {
    assert!(
        !readiness(Kind::Regular, true, true, true, false),
        "probe has not said yes"
    );
    assert!(readiness(Kind::Regular, true, true, true, true));
    assert!(
        !readiness(Kind::Regular, true, false, true, true),
        "stopping or exited"
    );
}

#[test]
fn an_init_container_is_never_ready_of_itself() {
    assert!(!readiness(Kind::Init, false, true, true, false));
}
