use super::*;
use k8s_openapi::api::core::v1::Pod;

/// A pod from YAML, defaulted as the API server defaults it.
fn pod(yaml: &str) -> Pod {
    let mut p: Pod = serde_yaml_ng::from_str(yaml).unwrap();
    crate::manifest::defaults::default_pod(&mut p);
    p
}

const BASE: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  initContainers:
  - {name: init, image: busybox:1.30, command: [true]}
  containers:
  - {name: nginx, image: nginx:1.25}
  - {name: log, image: busybox:1.30, command: [sleep, '3600']}
";

fn base() -> Pod {
    let mut p = pod(BASE);
    // What the node recorded when it admitted the pod.
    p.spec.as_mut().unwrap().node_name = Some("node1".into());
    p
}

fn with(edit: impl FnOnce(&mut Pod)) -> Pod {
    let mut p = pod(BASE);
    edit(&mut p);
    p
}

fn spec(p: &mut Pod) -> &mut PodSpec {
    p.spec.as_mut().unwrap()
}

fn forbidden(u: PodUpdate) -> String {
    match u {
        PodUpdate::Forbidden(m) => m,
        other => panic!("not forbidden: {other:?}"),
    }
}

fn configured(u: PodUpdate) -> (PodChanges, Pod) {
    match u {
        PodUpdate::Configured { changes, pod } => (changes, *pod),
        other => panic!("not configured: {other:?}"),
    }
}

#[test]
fn the_same_manifest_again_is_unchanged() {
    let old = base();
    // A fresh defaulting gives another uid and no nodeName: neither is a change.
    assert_eq!(pod_update(&old, &pod(BASE), None), PodUpdate::Unchanged);
}

#[test]
fn an_image_change_names_that_container_alone_and_keeps_the_uid() {
    let old = base();
    let new = with(|p| spec(p).containers[1].image = Some("busybox:1.36".into()));
    let (changes, stored) = configured(pod_update(&old, &new, None));
    assert_eq!(
        changes.images,
        vec![ImageChange {
            list: ContainerList::Containers,
            name: "log".into(),
            old: "busybox:1.30".into(),
            new: "busybox:1.36".into(),
        }]
    );
    assert!(!changes.labels);
    assert_eq!(stored.metadata.uid, old.metadata.uid);
    assert_eq!(
        stored.metadata.creation_timestamp,
        old.metadata.creation_timestamp
    );
    assert_eq!(
        stored.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node1")
    );
    assert_eq!(
        stored.spec.as_ref().unwrap().containers[1].image.as_deref(),
        Some("busybox:1.36")
    );
}

#[test]
fn an_init_container_image_may_change_too() {
    let new =
        with(|p| spec(p).init_containers.as_mut().unwrap()[0].image = Some("busybox:1.36".into()));
    let (changes, _) = configured(pod_update(&base(), &new, None));
    assert_eq!(changes.images.len(), 1);
    assert_eq!(changes.images[0].list, ContainerList::InitContainers);
    assert_eq!(changes.images[0].name, "init");
}

#[test]
fn labels_and_annotations_are_configured() {
    let new = with(|p| {
        p.metadata.labels = Some([("app".to_string(), "web2".to_string())].into());
        p.metadata.annotations = Some([("note".to_string(), "x".to_string())].into());
    });
    let (changes, stored) = configured(pod_update(&base(), &new, None));
    assert!(changes.labels && changes.annotations);
    assert!(changes.images.is_empty());
    assert_eq!(stored.metadata.labels.unwrap()["app"], "web2");
}

#[test]
fn active_deadline_may_be_set_or_lowered_only() {
    let old = base();
    let set = with(|p| spec(p).active_deadline_seconds = Some(600));
    let (c, _) = configured(pod_update(&old, &set, None));
    assert_eq!(c.active_deadline_seconds, Some(600));
    let mut old600 = base();
    spec(&mut old600).active_deadline_seconds = Some(600);
    let lower = with(|p| spec(p).active_deadline_seconds = Some(300));
    let (c, _) = configured(pod_update(&old600, &lower, None));
    assert_eq!(c.active_deadline_seconds, Some(300));
    let raise = with(|p| spec(p).active_deadline_seconds = Some(900));
    assert_eq!(
        forbidden(pod_update(&old600, &raise, None)),
        "The Pod \"web\" is invalid: spec.activeDeadlineSeconds: Invalid value: 900: must be less than or equal to previous value"
    );
    assert_eq!(
        forbidden(pod_update(&old600, &pod(BASE), None)),
        "The Pod \"web\" is invalid: spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
    );
    let negative = with(|p| spec(p).active_deadline_seconds = Some(-1));
    assert_eq!(
        forbidden(pod_update(&old, &negative, None)),
        "The Pod \"web\" is invalid: spec.activeDeadlineSeconds: Invalid value: -1: must be between 0 and 2147483647, inclusive"
    );
}

fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: seconds,
        ..Default::default()
    }
}

#[test]
fn tolerations_may_be_added_and_their_seconds_changed_but_not_removed() {
    let mut old = base();
    spec(&mut old).tolerations = Some(vec![toleration("a", Some(300))]);
    let added = with(|p| {
        spec(p).tolerations = Some(vec![toleration("a", Some(300)), toleration("b", None)])
    });
    let (c, _) = configured(pod_update(&old, &added, None));
    assert_eq!(c.added_tolerations, vec![toleration("b", None)]);
    assert!(!c.toleration_seconds);
    let seconds = with(|p| spec(p).tolerations = Some(vec![toleration("a", Some(60))]));
    let (c, _) = configured(pod_update(&old, &seconds, None));
    assert!(c.toleration_seconds && c.added_tolerations.is_empty());
    assert_eq!(
        forbidden(pod_update(&old, &pod(BASE), None)),
        "The Pod \"web\" is invalid: spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
    );
}

#[test]
fn termination_grace_period_may_go_from_negative_to_one_only() {
    let mut old = base();
    spec(&mut old).termination_grace_period_seconds = Some(-1);
    let one = with(|p| spec(p).termination_grace_period_seconds = Some(1));
    let (c, _) = configured(pod_update(&old, &one, None));
    assert!(c.termination_grace_period_seconds);
    let two = with(|p| spec(p).termination_grace_period_seconds = Some(2));
    let m = forbidden(pod_update(&old, &two, None));
    assert!(
        m.contains("spec: Forbidden: pod updates may not change fields other than"),
        "{m}"
    );
    // From the default 30 even 1 is forbidden.
    let m = forbidden(pod_update(&base(), &one, None));
    assert!(m.contains("terminationGracePeriodSeconds: 30"), "{m}");
}

#[test]
fn other_spec_changes_get_the_api_servers_message_and_a_diff() {
    let new = with(|p| spec(p).containers[0].command = Some(vec!["nginx".into(), "-g".into()]));
    let m = forbidden(pod_update(&base(), &new, None));
    let (head, diff) = m.split_once('\n').unwrap();
    assert_eq!(
        head,
        "The Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
    );
    assert!(diff.starts_with("  core.PodSpec{\n"), "{diff}");
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains("command:")),
        "{diff}"
    );
    assert!(diff.contains("+ \t  - nginx\n"), "{diff}");
    assert!(diff.contains("... // identical lines"), "{diff}");
}

#[test]
fn an_image_change_with_another_change_is_forbidden_and_the_diff_omits_the_image() {
    let new = with(|p| {
        spec(p).containers[0].image = Some("nginx:1.27".into());
        spec(p).restart_policy = Some("Never".into());
    });
    let m = forbidden(pod_update(&base(), &new, None));
    assert!(m.contains("- \trestartPolicy: Always\n"), "{m}");
    assert!(m.contains("+ \trestartPolicy: Never\n"), "{m}");
    assert!(!m.contains("nginx:1.27"), "the image is munged back: {m}");
}

#[test]
fn containers_may_not_be_added_or_removed() {
    let new = with(|p| {
        spec(p).containers.pop();
    });
    assert_eq!(
        forbidden(pod_update(&base(), &new, None)),
        "The Pod \"web\" is invalid: spec.containers: Forbidden: pod updates may not add or remove containers"
    );
    let new = with(|p| spec(p).init_containers = None);
    assert_eq!(
        forbidden(pod_update(&base(), &new, None)),
        "The Pod \"web\" is invalid: spec.initContainers: Forbidden: pod updates may not add or remove containers"
    );
}

#[test]
fn a_renamed_container_is_a_forbidden_spec_change_not_an_image_change() {
    let new = with(|p| spec(p).containers[1].name = "logger".into());
    let m = forbidden(pod_update(&base(), &new, None));
    assert!(
        m.contains("+ \t- name: logger") || m.contains("name: logger"),
        "{m}"
    );
}

#[test]
fn an_empty_or_padded_image_is_refused_with_the_field() {
    let new = with(|p| spec(p).containers[0].image = Some(String::new()));
    assert_eq!(
        forbidden(pod_update(&base(), &new, None)),
        "The Pod \"web\" is invalid: spec.containers[0].image: Required value"
    );
    let new = with(|p| spec(p).containers[1].image = Some(" busybox ".into()));
    assert_eq!(
        forbidden(pod_update(&base(), &new, None)),
        "The Pod \"web\" is invalid: spec.containers[1].image: Invalid value: \" busybox \": must not have leading or trailing whitespace"
    );
}

#[test]
fn name_namespace_and_a_given_uid_are_immutable() {
    let new = with(|p| p.metadata.namespace = Some("prod".into()));
    assert_eq!(
        forbidden(pod_update(&base(), &new, None)),
        "The Pod \"web\" is invalid: metadata.namespace: Invalid value: \"prod\": field is immutable"
    );
    let old = base();
    let m = forbidden(pod_update(&old, &pod(BASE), Some("1234")));
    assert_eq!(
        m,
        "The Pod \"web\" is invalid: metadata.uid: Invalid value: \"1234\": field is immutable"
    );
    // The pod's own uid (a saved `get -o yaml`) is fine.
    assert_eq!(
        pod_update(&old, &pod(BASE), old.metadata.uid.as_deref()),
        PodUpdate::Unchanged
    );
}

#[test]
fn several_errors_are_listed_in_brackets() {
    let mut old = base();
    spec(&mut old).active_deadline_seconds = Some(10);
    let new = with(|p| {
        p.metadata.namespace = Some("prod".into());
        spec(p).active_deadline_seconds = Some(20);
    });
    let m = forbidden(pod_update(&old, &new, None));
    assert!(m.starts_with("The Pod \"web\" is invalid: [metadata.namespace: Invalid value: \"prod\": field is immutable, spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value]"), "{m}");
}

#[test]
fn a_different_node_name_is_forbidden_an_absent_one_is_kept() {
    let new = with(|p| spec(p).node_name = Some("node2".into()));
    let m = forbidden(pod_update(&base(), &new, None));
    assert!(
        m.contains("- \tnodeName: node1\n+ \tnodeName: node2\n"),
        "{m}"
    );
}

#[test]
fn ephemeral_containers_stay_and_their_images_may_not_change() {
    let ec = |image: &str| k8s_openapi::api::core::v1::EphemeralContainer {
        name: "debug".into(),
        image: Some(image.into()),
        ..Default::default()
    };
    let mut old = base();
    spec(&mut old).ephemeral_containers = Some(vec![ec("busybox:1.30")]);
    // The file does not list them: they stay, nothing changed.
    assert_eq!(pod_update(&old, &pod(BASE), None), PodUpdate::Unchanged);
    let new = with(|p| spec(p).ephemeral_containers = Some(vec![ec("busybox:1.36")]));
    let m = forbidden(pod_update(&old, &new, None));
    assert!(m.contains("busybox:1.36"), "{m}");
}

#[test]
fn line_diff_marks_removed_before_added() {
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let d = line_diff(&l(&["a", "b", "c"]), &l(&["a", "x", "c"]));
    assert_eq!(
        d,
        vec![
            (' ', "a".to_string()),
            ('-', "b".to_string()),
            ('+', "x".to_string()),
            (' ', "c".to_string())
        ]
    );
}

#[test]
fn a_bad_image_is_listed_with_the_other_errors_as_the_api_server_does() {
    let new = with(|p| {
        spec(p).containers[0].image = Some(String::new());
        spec(p).restart_policy = Some("Never".into());
    });
    let m = forbidden(pod_update(&base(), &new, None));
    assert!(
        m.starts_with("The Pod \"web\" is invalid: [spec.containers[0].image: Required value, spec: Forbidden: pod updates may not change fields other than"),
        "{m}"
    );
    // An added container ends the checks: nothing else is listed.
    let new = with(|p| {
        let c = spec(p).containers[0].clone();
        spec(p).containers.push(c);
        spec(p).active_deadline_seconds = Some(-5);
    });
    assert_eq!(
        forbidden(pod_update(&base(), &new, None)),
        "The Pod \"web\" is invalid: spec.containers: Forbidden: pod updates may not add or remove containers"
    );
}

#[test]
fn an_image_changed_to_latest_is_an_image_change_not_a_pull_policy_change() {
    let old = base();
    let new = pod(&BASE.replace("nginx:1.25", "nginx:latest"));
    assert_eq!(
        spec(&mut new.clone()).containers[0]
            .image_pull_policy
            .as_deref(),
        Some("Always"),
        "defaulting follows the new image"
    );
    let (changes, stored) = configured(pod_update(&old, &new, None));
    assert_eq!(changes.images.len(), 1);
    assert_eq!(changes.images[0].new, "nginx:latest");
    // As kubectl apply's patch: the live pod keeps the policy the file never set.
    assert_eq!(
        stored.spec.as_ref().unwrap().containers[0]
            .image_pull_policy
            .as_deref(),
        Some("IfNotPresent")
    );
    // A policy the manifest does set is still a refused change.
    let explicit = with(|p| spec(p).containers[0].image_pull_policy = Some("Never".into()));
    assert!(
        forbidden(pod_update(&old, &explicit, None)).contains("pod updates may not change fields")
    );
}
