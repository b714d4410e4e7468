use super::*;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
};

fn job(completions: i32, parallelism: i32) -> Job {
    let text = format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j, uid: u1}}\nspec:\n  completions: {completions}\n  parallelism: {parallelism}\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox}}]\n");
    let v: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let mut j: Job = serde_json::from_value(v).expect("job");
    j.set_defaults();
    j
}

fn pod(name: &str, phase: &str, code: i32, finished: i64) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.status = Some(PodStatus {
        phase: Some(phase.into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    finished_at: Some(Time(Timestamp::from_second(finished).expect("t"))),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("t")
}

#[test]
fn defaults_are_the_api_servers_and_the_selector_is_generated() {
    let j = job(3, 2);
    let spec = j.spec.clone().expect("spec");
    assert_eq!(spec.backoff_limit, Some(6));
    assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
    let labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("labels");
    assert_eq!(labels.get(JOB_NAME).map(String::as_str), Some("j"));
    assert_eq!(labels.get(CONTROLLER_UID).map(String::as_str), Some("u1"));
}

#[test]
fn parallelism_bounds_the_pods_and_completions_end_the_job() {
    let j = job(3, 2);
    assert_eq!(plan(&j, &[], at(0)).create.len(), 2);
    let ok = pod("a", "Succeeded", 0, 0);
    assert_eq!(plan(&j, &[&ok], at(0)).create.len(), 2);
    let (b, c) = (pod("b", "Succeeded", 0, 0), pod("c", "Succeeded", 0, 0));
    let p = plan(&j, &[&ok, &b, &c], at(0));
    assert!(p.create.is_empty());
    let types: Vec<String> = p
        .status
        .conditions
        .expect("c")
        .iter()
        .map(|c| c.type_.clone())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert!(p.status.completion_time.is_some());
}

#[test]
fn a_failure_backs_off_ten_seconds_doubling_to_six_minutes() {
    assert_eq!(
        (backoff_secs(1), backoff_secs(2), backoff_secs(3)),
        (10, 20, 40)
    );
    assert_eq!(backoff_secs(10), 360);
    let j = job(1, 1);
    let f = pod("f", "Failed", 1, 100);
    let p = plan(&j, &[&f], at(105));
    assert!(p.create.is_empty());
    assert_eq!(p.wait_until, Some(at(110)));
    assert_eq!(plan(&j, &[&f], at(110)).create.len(), 1);
}

#[test]
fn past_the_backoff_limit_the_job_fails() {
    let mut j = job(1, 1);
    if let Some(s) = j.spec.as_mut() {
        s.backoff_limit = Some(1);
    }
    let (a, b) = (pod("a", "Failed", 1, 0), pod("b", "Failed", 1, 0));
    let p = plan(&j, &[&a, &b], at(1000));
    let failed = p
        .status
        .conditions
        .expect("c")
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
}

#[test]
fn pod_failure_policy_fails_the_job_or_ignores_the_failure() {
    let text = "rules:\n- action: FailJob\n  onExitCodes: {operator: In, values: [42]}\n- action: Ignore\n  onExitCodes: {operator: In, values: [7]}\n";
    let pfp: k8s_openapi::api::batch::v1::PodFailurePolicy =
        serde_json::from_value(serde_yaml_ng::from_str(text).expect("yaml")).expect("pfp");
    let mut j = job(1, 1);
    if let Some(s) = j.spec.as_mut() {
        s.pod_failure_policy = Some(pfp);
    }
    let ignored = pod("i", "Failed", 7, 0);
    let p = plan(&j, &[&ignored], at(0));
    assert_eq!(
        (p.status.failed, p.create.len()),
        (None, 1),
        "an ignored failure is not counted and not backed off"
    );
    let fatal = pod("x", "Failed", 42, 0);
    let p = plan(&j, &[&fatal], at(0));
    let failed = p
        .status
        .conditions
        .expect("c")
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed");
    assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(failed.message.as_deref(), Some("Container c for pod default/x failed with exit code 42 matching FailJob rule at index 0"));
}

#[test]
fn the_deadline_and_suspend_stop_the_pods() {
    let mut j = job(1, 1);
    let running = pod("r", "Running", 0, 0);
    if let Some(s) = j.spec.as_mut() {
        s.active_deadline_seconds = Some(5);
    }
    j.status = Some(JobStatus {
        start_time: Some(Time(at(0))),
        ..Default::default()
    });
    let p = plan(&j, &[&running], at(6));
    assert_eq!(p.delete, ["r"]);
    let failed = p
        .status
        .conditions
        .expect("c")
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .expect("Failed");
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    let mut j = job(1, 1);
    if let Some(s) = j.spec.as_mut() {
        s.suspend = Some(true);
    }
    let p = plan(&j, &[&running], at(0));
    assert_eq!(p.delete, ["r"]);
    assert!(p.create.is_empty());
}

#[test]
fn indexed_jobs_run_each_missing_index_once() {
    let mut j = job(3, 3);
    if let Some(s) = j.spec.as_mut() {
        s.completion_mode = Some("Indexed".into());
    }
    let mut done = pod("a", "Succeeded", 0, 0);
    done.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), "1".to_string())].into());
    let p = plan(&j, &[&done], at(0));
    assert_eq!(p.create, [Some(0), Some(2)]);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("1"));
    assert_eq!(index_ranges(&[0, 1, 2, 4].into()), "0-2,4");
}
