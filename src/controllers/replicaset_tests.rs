use super::*;
use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn rs(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn pod(name: &str, phase: &str, ready: bool) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.status = Some(PodStatus {
        phase: Some(phase.into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

#[test]
fn missing_pods_are_created_and_failed_ones_replaced() {
    let a = pod("a", "Running", true);
    let f = pod("f", "Failed", false);
    let p = plan(&rs(3), &[&a, &f], Timestamp::UNIX_EPOCH);
    assert_eq!(p.create, 2);
    assert_eq!(p.delete, ["f"]);
    assert_eq!(p.status.replicas, 1);
    assert_eq!(p.status.ready_replicas, Some(1));
}

#[test]
fn the_surplus_goes_unready_first() {
    let a = pod("a", "Running", true);
    let b = pod("b", "Running", false);
    let c = pod("c", "Pending", false);
    let p = plan(&rs(1), &[&a, &b, &c], Timestamp::UNIX_EPOCH);
    assert_eq!(p.create, 0);
    assert_eq!(p.delete, ["c", "b"]);
}

#[test]
fn a_template_that_its_selector_misses_is_refused_with_the_api_servers_words() {
    let text = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    let v: serde_json::Value = serde_yaml_ng::from_str(text).expect("yaml");
    let mut r: ReplicaSet = serde_json::from_value(v).expect("rs");
    r.set_defaults();
    let err = r.validate().expect_err("invalid").to_string();
    assert_eq!(err, "The ReplicaSet \"r\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`");
}
