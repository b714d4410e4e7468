use super::*;
use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::PodTemplateSpec;

fn deploy(replicas: i32, image: &str) -> Deployment {
    let text = format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, uid: u1, generation: 1}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: {image}}}]\n");
    let v: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let mut d: Deployment = serde_json::from_value(v).expect("deployment");
    d.set_defaults();
    d
}

/// A ReplicaSet of `d`'s template as it is now, with `available` of `replicas` pods.
fn current_rs(d: &Deployment, replicas: i32, available: i32, revision: i64) -> ReplicaSet {
    let p = plan(d, &[], Timestamp::UNIX_EPOCH);
    let mut rs = new_replica_set(d, &p, replicas);
    rs.metadata.annotations = Some([(REVISION.to_string(), revision.to_string())].into());
    rs.status = Some(ReplicaSetStatus {
        replicas,
        ready_replicas: Some(available),
        available_replicas: Some(available),
        ..Default::default()
    });
    rs
}

#[test]
fn defaults_are_the_api_servers() {
    let d = deploy(3, "busybox");
    let spec: DeploymentSpec = d.spec.clone().expect("spec");
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let ru = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .expect("rolling");
    assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
    let t: PodTemplateSpec = spec.template;
    assert_eq!(
        t.spec.and_then(|s| s.restart_policy).as_deref(),
        Some("Always")
    );
    assert_eq!(surge_and_unavailable(&d, 3), (1, 0));
}

#[test]
fn a_new_deployment_gets_its_first_replica_set_at_full_size() {
    let d = deploy(3, "busybox");
    let p = plan(&d, &[], Timestamp::UNIX_EPOCH);
    assert!(p.new_name.starts_with("web-"));
    assert_eq!(
        p.steps,
        [Step::Create {
            replicas: 3,
            revision: 1
        }]
    );
}

#[test]
fn a_rolling_update_surges_one_then_waits_for_availability() {
    let old_d = deploy(3, "busybox");
    let old = current_rs(&old_d, 3, 3, 1);
    let d = deploy(3, "nginx");
    let p = plan(&d, std::slice::from_ref(&old), Timestamp::UNIX_EPOCH);
    assert_eq!(
        p.steps,
        [Step::Create {
            replicas: 1,
            revision: 2
        }]
    );
    // The new pod is not available: no old pod may go (maxUnavailable 0 of 3).
    let new = current_rs(&d, 1, 0, 2);
    let p = plan(&d, &[old.clone(), new], Timestamp::UNIX_EPOCH);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    // Once it is: one old pod goes.
    let new = current_rs(&d, 1, 1, 2);
    let p = plan(&d, &[old.clone(), new], Timestamp::UNIX_EPOCH);
    assert_eq!(
        p.steps,
        [Step::Scale {
            name: meta::name(&old.metadata),
            replicas: 2
        }]
    );
}

#[test]
fn conditions_say_complete_with_kubes_reasons() {
    let d = deploy(2, "busybox");
    let rs = current_rs(&d, 2, 2, 1);
    let p = plan(&d, &[rs], Timestamp::UNIX_EPOCH);
    let conds = p.status.conditions.expect("conditions");
    let reason = |t: &str| {
        conds
            .iter()
            .find(|c| c.type_ == t)
            .and_then(|c| c.reason.clone())
    };
    assert_eq!(
        reason("Available").as_deref(),
        Some("MinimumReplicasAvailable")
    );
    assert_eq!(
        reason("Progressing").as_deref(),
        Some("NewReplicaSetAvailable")
    );
}

#[test]
fn a_stalled_rollout_exceeds_its_progress_deadline() {
    let mut d = deploy(1, "busybox");
    let rs = current_rs(&d, 1, 0, 1);
    let start = Timestamp::from_second(1_000).expect("time");
    let p = plan(&d, std::slice::from_ref(&rs), start);
    d.status = Some(p.status);
    let later = Timestamp::from_second(1_000 + 601).expect("time");
    let p = plan(&d, &[rs], later);
    let prog = p
        .status
        .conditions
        .expect("c")
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .expect("p");
    assert_eq!(prog.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    assert_eq!(prog.status, "False");
}

#[test]
fn recreate_scales_the_old_set_to_zero_before_the_new_one_starts() {
    let old_d = deploy(2, "busybox");
    let old = current_rs(&old_d, 2, 2, 1);
    let mut d = deploy(2, "nginx");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    let p = plan(&d, std::slice::from_ref(&old), Timestamp::UNIX_EPOCH);
    assert_eq!(
        p.steps[0],
        Step::Create {
            replicas: 0,
            revision: 2
        }
    );
    assert!(p.steps.contains(&Step::Scale {
        name: meta::name(&old.metadata),
        replicas: 0
    }));
}

#[test]
fn old_sets_past_the_history_limit_are_removed() {
    let d = deploy(1, "busybox");
    let idle: Vec<ReplicaSet> = (1..=3)
        .map(|i| {
            let mut rs = current_rs(&deploy(1, &format!("img{i}")), 0, 0, i);
            rs.metadata.name = Some(format!("web-old{i}"));
            rs
        })
        .collect();
    let refs: Vec<&ReplicaSet> = idle.iter().collect();
    assert_eq!(
        cleanup(&refs, 1),
        [
            Step::Delete {
                name: "web-old1".into()
            },
            Step::Delete {
                name: "web-old2".into()
            }
        ]
    );
    let _ = d;
}
