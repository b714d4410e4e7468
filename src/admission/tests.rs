//! Admission on one node, driven by the seed walk-through's manifests.
use super::*;
use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

macro_rules! seed {
    ($f:literal) => {
        serde_yaml_ng::from_str::<Pod>(include_str!(concat!("../../tests/seed-examples/", $f)))
            .unwrap()
    };
}

const NODE: &str = "node1";

fn node(labels: &[(&str, &str)], taints: &[(&str, &str, &str)]) -> Node {
    let mut l: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", NODE),
        ("kubernetes.io/os", "linux"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in labels {
        l.insert(k.to_string(), v.to_string());
    }
    let alloc: BTreeMap<String, Quantity> = [
        ("cpu", "2"),
        ("memory", "8Gi"),
        ("pods", "110"),
        ("ephemeral-storage", "50Gi"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(NODE.into()),
            labels: Some(l),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(
                taints
                    .iter()
                    .map(|(k, v, e)| Taint {
                        key: k.to_string(),
                        value: (!v.is_empty()).then(|| v.to_string()),
                        effect: e.to_string(),
                        time_added: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(alloc.clone()),
            capacity: Some(alloc),
            ..Default::default()
        }),
    }
}

fn message(d: &Decision) -> &str {
    match d {
        Decision::Unschedulable(u) => &u.message,
        other => panic!("expected Unschedulable, got {other:?}"),
    }
}

fn admitted(d: &Decision) -> &Admitted {
    match d {
        Decision::Admitted(a) => a,
        other => panic!("expected Admitted, got {other:?}"),
    }
}

const NOT_HELPFUL: &str =
    " preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
const NO_VICTIMS: &str =
    " preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";

#[test]
fn nodename_this_node_runs_other_node_stays_pending() {
    let mut pod = seed!("pod-nodename.yaml");
    pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
    let a = admit(&pod, &node(&[], &[]), &[]);
    assert!(
        !admitted(&a).scheduled,
        "nodeName bypasses the scheduler: no Scheduled event"
    );

    let pod = seed!("pod-nodename.yaml"); // k8s-node1
    match admit(&pod, &node(&[], &[]), &[]) {
        Decision::BoundElsewhere { node, message } => {
            assert_eq!(node, "k8s-node1");
            assert!(message.contains("\"k8s-node1\""), "{message}");
            assert!(message.contains("not this node"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nodename_pods_meet_kubelet_admission_not_the_scheduler() {
    let mut pod = seed!("pod-nodename.yaml");
    pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
    // NoSchedule does not stop a pod bound by name; NoExecute does.
    assert!(matches!(
        admit(&pod, &node(&[], &[("tag", "test", "NoSchedule")]), &[]),
        Decision::Admitted(_)
    ));
    match admit(&pod, &node(&[], &[("tag", "test", "NoExecute")]), &[]) {
        Decision::Rejected(r) => {
            assert_eq!(r.reason, "TaintToleration");
            assert_eq!(
                r.message,
                "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut big = seed!("pod-resources-too-big.yaml");
    big.spec.as_mut().unwrap().node_name = Some(NODE.into());
    match admit(&big, &node(&[], &[]), &[]) {
        Decision::Rejected(r) => {
            assert_eq!(r.reason, "OutOfmemory");
            assert_eq!(
                r.message,
                format!(
                    "Node didn't have enough resource: memory, requested: {}, used: 0, capacity: {}",
                    1000i128 << 30,
                    8i128 << 30
                )
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nodeselector() {
    let pod = seed!("pod-nodeselector.yaml");
    assert_eq!(
        message(&admit(&pod, &node(&[], &[]), &[])),
        format!("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.{NOT_HELPFUL}")
    );
    assert!(matches!(
        admit(&pod, &node(&[("nodeenv", "pro")], &[]), &[]),
        Decision::Admitted(_)
    ));
    assert!(matches!(
        admit(&pod, &node(&[("nodeenv", "xxx")], &[]), &[]),
        Decision::Unschedulable(_)
    ));
}

#[test]
fn nodeaffinity_required_and_preferred() {
    let n = node(&[("nodeenv", "pro")], &[]);
    let mut pod = seed!("pod-nodeaffinity-required.yaml");
    let d = admit(&pod, &n, &[]);
    assert!(message(&d).starts_with(
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    ));
    let term = &mut pod
        .spec
        .as_mut()
        .unwrap()
        .affinity
        .as_mut()
        .unwrap()
        .node_affinity
        .as_mut()
        .unwrap();
    term.required_during_scheduling_ignored_during_execution
        .as_mut()
        .unwrap()
        .node_selector_terms[0]
        .match_expressions
        .as_mut()
        .unwrap()[0]
        .values = Some(vec!["pro".into(), "yyy".into()]);
    let a = admit(&pod, &n, &[]);
    assert!(admitted(&a).scheduled);
    assert_eq!(
        admitted(&a).scheduled_message(&pod),
        "Successfully assigned dev/pod-nodeaffinity-required to node1"
    );

    let pref = seed!("pod-nodeaffinity-preferred.yaml");
    let a = admit(&pref, &n, &[]);
    assert_eq!(
        admitted(&a).notes,
        vec!["preferred node affinity: weight 0 of 1 matches this node (the only node, so it runs here regardless)"]
    );
}

#[test]
fn preferred_weight_out_of_range_is_invalid() {
    let mut pref = seed!("pod-nodeaffinity-preferred.yaml");
    pref.spec
        .as_mut()
        .unwrap()
        .affinity
        .as_mut()
        .unwrap()
        .node_affinity
        .as_mut()
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .as_mut()
        .unwrap()[0]
        .weight = 0;
    match admit(&pref, &node(&[], &[]), &[]) {
        Decision::Invalid(e) => assert_eq!(
            e.to_string(),
            "The Pod \"pod-nodeaffinity-preferred\" is invalid: spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn match_fields_prefilter() {
    let yaml = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: dev}}\nspec:\n  containers: [{{name: c, image: x}}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchFields: [{{key: metadata.name, operator: In, values: [{name}]}}]\n"
        )
    };
    let pod: Pod = serde_yaml_ng::from_str(&yaml(NODE)).unwrap();
    assert!(matches!(
        admit(&pod, &node(&[], &[]), &[]),
        Decision::Admitted(_)
    ));
    let pod: Pod = serde_yaml_ng::from_str(&yaml("other")).unwrap();
    assert_eq!(
        message(&admit(&pod, &node(&[], &[]), &[])),
        format!("0/1 nodes are available: 1 node(s) didn't satisfy plugin(s) [NodeAffinity].{NOT_HELPFUL}")
    );
}

#[test]
fn pod_affinity_seed_walkthrough() {
    let n = node(&[], &[]);
    let target = seed!("pod-podaffinity-target.yaml");
    let mut pod = seed!("pod-podaffinity-required.yaml");
    // No pod with podenv in [xxx, yyy] here (and the pod does not match itself).
    assert_eq!(
        message(&admit(&pod, &n, std::slice::from_ref(&target))),
        format!("0/1 nodes are available: 1 node(s) didn't match pod affinity rules.{NOT_HELPFUL}")
    );
    let sel = pod
        .spec
        .as_mut()
        .unwrap()
        .affinity
        .as_mut()
        .unwrap()
        .pod_affinity
        .as_mut()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_mut()
        .unwrap();
    sel[0]
        .label_selector
        .as_mut()
        .unwrap()
        .match_expressions
        .as_mut()
        .unwrap()[0]
        .values = Some(vec!["pro".into(), "yyy".into()]);
    assert!(matches!(
        admit(&pod, &n, std::slice::from_ref(&target)),
        Decision::Admitted(_)
    ));
    // Without the target it cannot start.
    assert!(matches!(admit(&pod, &n, &[]), Decision::Unschedulable(_)));
    // A topologyKey the node lacks fails even beside the target.
    sel_topology(&mut pod, "topology.kubernetes.io/zone");
    assert!(matches!(
        admit(&pod, &n, std::slice::from_ref(&target)),
        Decision::Unschedulable(_)
    ));
}

fn sel_topology(pod: &mut Pod, key: &str) {
    pod.spec
        .as_mut()
        .unwrap()
        .affinity
        .as_mut()
        .unwrap()
        .pod_affinity
        .as_mut()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_mut()
        .unwrap()[0]
        .topology_key = key.into();
}

#[test]
fn pod_affinity_to_itself_lets_the_first_pod_start() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: dev, labels: {app: web}}\nspec:\n  containers: [{name: c, image: x}]\n  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n        topologyKey: kubernetes.io/hostname\n";
    let first: Pod = serde_yaml_ng::from_str(yaml).unwrap();
    assert!(matches!(
        admit(&first, &node(&[], &[]), &[]),
        Decision::Admitted(_)
    ));
    // But not when the node lacks the topology key.
    let mut n = node(&[], &[]);
    n.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("kubernetes.io/hostname");
    assert!(matches!(admit(&first, &n, &[]), Decision::Unschedulable(_)));
}

#[test]
fn pod_anti_affinity_and_existing_anti_affinity() {
    let n = node(&[], &[]);
    let target = seed!("pod-podaffinity-target.yaml");
    let anti = seed!("pod-podantiaffinity-required.yaml");
    assert_eq!(
        message(&admit(&anti, &n, std::slice::from_ref(&target))),
        format!(
            "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.{NO_VICTIMS}"
        )
    );
    assert!(matches!(admit(&anti, &n, &[]), Decision::Admitted(_)));
    // The other way round: the running pod's anti-affinity keeps the target out.
    let mut anti_running = anti.clone();
    anti_running.metadata.name = Some("runs".into());
    assert_eq!(
        message(&admit(&target, &n, &[anti_running.clone()])),
        format!("0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.{NO_VICTIMS}")
    );
    // A terminated pod no longer counts.
    anti_running.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    assert!(matches!(
        admit(&target, &n, &[anti_running]),
        Decision::Admitted(_)
    ));
}

#[test]
fn affinity_namespaces_and_namespace_selector() {
    let n = node(&[], &[]);
    let mut target = seed!("pod-podaffinity-target.yaml");
    target.metadata.namespace = Some("prod".into());
    let anti = seed!("pod-podantiaffinity-required.yaml"); // namespace dev
    assert!(
        matches!(
            admit(&anti, &n, std::slice::from_ref(&target)),
            Decision::Admitted(_)
        ),
        "terms default to the pod's own namespace"
    );
    let with = |f: &dyn Fn(&mut k8s_openapi::api::core::v1::PodAffinityTerm)| {
        let mut p = anti.clone();
        f(&mut p
            .spec
            .as_mut()
            .unwrap()
            .affinity
            .as_mut()
            .unwrap()
            .pod_anti_affinity
            .as_mut()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_mut()
            .unwrap()[0]);
        admit(&p, &n, std::slice::from_ref(&target))
    };
    assert!(matches!(
        with(&|t| t.namespaces = Some(vec!["prod".into()])),
        Decision::Unschedulable(_)
    ));
    assert!(
        matches!(
            with(&|t| t.namespace_selector = Some(Default::default())),
            Decision::Unschedulable(_)
        ),
        "an empty namespaceSelector selects every namespace"
    );
    let by_name = |ns: &str| {
        let ns = ns.to_string();
        move |t: &mut k8s_openapi::api::core::v1::PodAffinityTerm| {
            t.namespace_selector = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(
                        [("kubernetes.io/metadata.name".to_string(), ns.clone())].into(),
                    ),
                    match_expressions: None,
                },
            )
        }
    };
    assert!(matches!(with(&by_name("prod")), Decision::Unschedulable(_)));
    assert!(matches!(with(&by_name("other")), Decision::Admitted(_)));
    // A nil labelSelector selects no pod.
    assert!(matches!(
        with(&|t| t.label_selector = None),
        Decision::Admitted(_)
    ));
}

#[test]
fn taint_sequence_and_toleration() {
    let pod = seed!("pod-base.yaml");
    let tol = seed!("pod-toleration.yaml");
    let prefer = node(&[], &[("tag", "test", "PreferNoSchedule")]);
    let a = admit(&pod, &prefer, &[]);
    assert_eq!(
        admitted(&a).notes,
        vec!["node has PreferNoSchedule taint tag=test:PreferNoSchedule that the pod does not tolerate (it only lowers the node's score)"]
    );
    for effect in ["NoSchedule", "NoExecute"] {
        assert_eq!(
            message(&admit(&pod, &node(&[], &[("tag", "test", effect)]), &[])),
            format!("0/1 nodes are available: 1 node(s) had untolerated taint {{tag: test}}.{NOT_HELPFUL}")
        );
    }
    assert!(matches!(
        admit(&tol, &node(&[], &[("tag", "test", "NoExecute")]), &[]),
        Decision::Admitted(_)
    ));
    // The NoExecute toleration does not cover NoSchedule.
    assert!(matches!(
        admit(&tol, &node(&[], &[("tag", "test", "NoSchedule")]), &[]),
        Decision::Unschedulable(_)
    ));
    // A taint without value prints an empty value, as kube-scheduler does.
    assert!(message(&admit(
        &pod,
        &node(&[], &[("dedicated", "", "NoSchedule")]),
        &[]
    ))
    .contains("1 node(s) had untolerated taint {dedicated: }."));
}

#[test]
fn toleration_validation() {
    let mut pod = seed!("pod-toleration.yaml");
    let set = |pod: &mut Pod, t: Toleration| pod.spec.as_mut().unwrap().tolerations = Some(vec![t]);
    set(
        &mut pod,
        Toleration {
            key: Some("tag".into()),
            operator: Some("Exists".into()),
            value: Some("test".into()),
            effect: None,
            toleration_seconds: None,
        },
    );
    let err = match admit(&pod, &node(&[], &[]), &[]) {
        Decision::Invalid(e) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(err.contains("spec.tolerations[0].operator: Invalid value: \"test\": value must be empty when `operator` is 'Exists'"), "{err}");
    set(
        &mut pod,
        Toleration {
            key: None,
            operator: Some("Equal".into()),
            value: None,
            effect: None,
            toleration_seconds: None,
        },
    );
    assert!(
        matches!(admit(&pod, &node(&[], &[]), &[]), Decision::Invalid(_)),
        "empty key needs Exists"
    );
    set(
        &mut pod,
        Toleration {
            key: Some("tag".into()),
            operator: Some("Exists".into()),
            value: None,
            effect: Some("NoSchedule".into()),
            toleration_seconds: Some(10),
        },
    );
    assert!(
        matches!(admit(&pod, &node(&[], &[]), &[]), Decision::Invalid(_)),
        "tolerationSeconds needs NoExecute"
    );
    // Empty key with Exists tolerates every taint.
    set(
        &mut pod,
        Toleration {
            key: None,
            operator: Some("Exists".into()),
            value: None,
            effect: None,
            toleration_seconds: None,
        },
    );
    assert!(matches!(
        admit(
            &pod,
            &node(&[], &[("a", "1", "NoSchedule"), ("b", "", "NoExecute")]),
            &[]
        ),
        Decision::Admitted(_)
    ));
}

#[test]
fn resources_too_big_and_sum_of_running_pods() {
    let n = node(&[], &[]);
    let big = seed!("pod-resources-too-big.yaml");
    assert_eq!(
        message(&admit(&big, &n, &[])),
        format!("0/1 nodes are available: 1 Insufficient memory.{NO_VICTIMS}")
    );
    // pod-resources asks 1 cpu: two fit on 2 cores, the third does not.
    let p = seed!("pod-resources.yaml");
    let mut a = p.clone();
    a.metadata.name = Some("a".into());
    let mut b = p.clone();
    b.metadata.name = Some("b".into());
    assert!(matches!(
        admit(&p, &n, std::slice::from_ref(&a)),
        Decision::Admitted(_)
    ));
    assert_eq!(
        message(&admit(&p, &n, &[a.clone(), b.clone()])),
        format!("0/1 nodes are available: 1 Insufficient cpu.{NO_VICTIMS}")
    );
    // The pod itself in the list is not counted twice.
    let mut me = p.clone();
    me.metadata.name = Some("me".into());
    assert!(matches!(
        admit(&me, &n, &[a, me.clone()]),
        Decision::Admitted(_)
    ));
    // Several resources short: both reasons, sorted.
    let mut both = big.clone();
    both.spec.as_mut().unwrap().containers[0]
        .resources
        .as_mut()
        .unwrap()
        .requests
        .as_mut()
        .unwrap()
        .insert("cpu".into(), Quantity("3".into()));
    assert!(message(&admit(&both, &n, &[])).starts_with(
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption"
    ));
}

#[test]
fn too_many_pods() {
    let mut n = node(&[], &[]);
    n.status
        .as_mut()
        .unwrap()
        .allocatable
        .as_mut()
        .unwrap()
        .insert("pods".into(), Quantity("1".into()));
    let p = seed!("pod-base.yaml");
    let mut other = p.clone();
    other.metadata.name = Some("other".into());
    assert_eq!(
        message(&admit(&p, &n, &[other])),
        format!("0/1 nodes are available: 1 Too many pods.{NO_VICTIMS}")
    );
}

#[test]
fn host_port_conflict_message() {
    let yaml = |name: &str| {
        format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: dev}}\nspec:\n  containers:\n  - name: c\n    image: x\n    ports: [{{containerPort: 80, hostPort: 8080}}]\n"
    )
    };
    let a: Pod = serde_yaml_ng::from_str(&yaml("a")).unwrap();
    let b: Pod = serde_yaml_ng::from_str(&yaml("b")).unwrap();
    assert_eq!(
        message(&admit(&b, &node(&[], &[]), &[a])),
        format!("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.{NO_VICTIMS}")
    );
}

#[test]
fn first_failing_plugin_wins() {
    // Taints are checked before node affinity and resources, as in the default profile.
    let big = seed!("pod-resources-too-big.yaml");
    let d = admit(&big, &node(&[], &[("tag", "test", "NoSchedule")]), &[]);
    match d {
        Decision::Unschedulable(u) => assert_eq!(u.plugin, "TaintToleration"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn preemption_policy_never() {
    let mut big = seed!("pod-resources-too-big.yaml");
    big.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
    assert_eq!(
        message(&admit(&big, &node(&[], &[]), &[])),
        "0/1 nodes are available: 1 Insufficient memory. preemption: not eligible due to preemptionPolicy=Never."
    );
}

#[test]
fn cordoned_node() {
    let mut n = node(&[], &[]);
    n.spec.as_mut().unwrap().unschedulable = Some(true);
    let p = seed!("pod-base.yaml");
    assert_eq!(
        message(&admit(&p, &n, &[])),
        format!("0/1 nodes are available: 1 node(s) were unschedulable.{NOT_HELPFUL}")
    );
}

#[test]
fn gt_with_non_integer_is_valid_but_matches_nothing() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: dev}\nspec:\n  containers: [{name: c, image: x}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: cores, operator: Gt, values: [\"two\"]}]\n";
    let pod: Pod = serde_yaml_ng::from_str(yaml).unwrap();
    assert!(message(&admit(&pod, &node(&[("cores", "8")], &[]), &[]))
        .contains("didn't match Pod's node affinity/selector"));
    let ok = pod_with_gt("4");
    assert!(matches!(
        admit(&ok, &node(&[("cores", "8")], &[]), &[]),
        Decision::Admitted(_)
    ));
    assert!(matches!(
        admit(&ok, &node(&[("cores", "eight")], &[]), &[]),
        Decision::Unschedulable(_)
    ));
}

fn pod_with_gt(v: &str) -> Pod {
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: dev}}\nspec:\n  containers: [{{name: c, image: x}}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{{key: cores, operator: Gt, values: [\"{v}\"]}}]\n");
    serde_yaml_ng::from_str(&yaml).unwrap()
}

#[test]
fn required_with_no_terms_is_invalid() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: dev}\nspec:\n  containers: [{name: c, image: x}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: []\n";
    let pod: Pod = serde_yaml_ng::from_str(yaml).unwrap();
    match admit(&pod, &node(&[], &[]), &[]) {
        Decision::Invalid(e) => assert!(e
            .to_string()
            .contains("must have at least one node selector term")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pod_affinity_validation_like_the_api_server() {
    let base = |term: &str| -> Pod {
        serde_yaml_ng::from_str(&format!(
            "metadata: {{name: p, namespace: dev}}\nspec:\n  containers: [{{name: c, image: x}}]\n  affinity:\n    podAntiAffinity:\n{term}"
        ))
        .unwrap()
    };
    let errors = |p: &Pod| match admit(p, &node(&[], &[]), &[]) {
        Decision::Invalid(e) => e.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let p = base("      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchExpressions: [{key: podenv, operator: Exists, values: [pro]}]}\n        topologyKey: kubernetes.io/hostname\n");
    assert_eq!(
        errors(&p),
        ["spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"]
    );
    let p = base("      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {podenv: pro}}\n        topologyKey: \"\"\n");
    assert_eq!(
        errors(&p),
        ["spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty"]
    );
    let p = base("      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 101\n        podAffinityTerm: {labelSelector: {matchLabels: {podenv: pro}}, topologyKey: kubernetes.io/hostname}\n");
    assert_eq!(
        errors(&p),
        ["spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 101: must be in the range 1-100"]
    );
    // Valid preferred anti-affinity is reported, and never blocks.
    let p = base("      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 100\n        podAffinityTerm: {labelSelector: {matchLabels: {podenv: pro}}, topologyKey: kubernetes.io/hostname}\n");
    let target = seed!("pod-podaffinity-target.yaml");
    let a = admit(&p, &node(&[], &[]), &[target]);
    assert_eq!(
        admitted(&a).notes,
        ["preferred pod anti-affinity: weight 100 of 100 matched by pods on this node (the only node, so it runs here regardless)"]
    );
}

#[test]
fn match_label_keys_merge_into_the_selector() {
    // Anti-affinity against pods of the same app but another version.
    let mk = |name: &str, version: &str| -> Pod {
        serde_yaml_ng::from_str(&format!(
            "metadata: {{name: {name}, namespace: dev, labels: {{app: web, version: '{version}'}}}}\nspec:\n  containers: [{{name: c, image: x}}]\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {{matchLabels: {{app: web}}}}\n        mismatchLabelKeys: [version]\n        topologyKey: kubernetes.io/hostname\n"
        ))
        .unwrap()
    };
    let v1 = mk("a", "1");
    assert!(matches!(
        admit(&mk("b", "1"), &node(&[], &[]), std::slice::from_ref(&v1)),
        Decision::Admitted(_)
    ));
    assert!(matches!(
        admit(&mk("c", "2"), &node(&[], &[]), &[v1]),
        Decision::Unschedulable(_)
    ));
}

#[test]
fn scheduling_gates_hold_the_pod() {
    let yaml = "metadata: {name: p, namespace: dev}\nspec:\n  containers: [{name: c, image: x}]\n  schedulingGates: [{name: example.com/wait}]\n";
    let mut pod: Pod = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(
        admit(&pod, &node(&[], &[]), &[]),
        Decision::SchedulingGated {
            gates: vec!["example.com/wait".into()]
        }
    );
    pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
    match admit(&pod, &node(&[], &[]), &[]) {
        Decision::Invalid(e) => assert!(e.to_string().contains(
            "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"
        )),
        other => panic!("{other:?}"),
    }
}
