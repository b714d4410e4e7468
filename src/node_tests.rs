//! This node's record: defaults, capacity, labels and taints as kubectl edits them.
use super::*;

fn node() -> Node {
    let mut n = new_node();
    n.metadata.name = Some("n1".into());
    n
}
fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn new_node_has_kubelet_labels() {
    let n = new_node();
    let l = node_labels(&n);
    assert_eq!(l.get(LABEL_OS).map(String::as_str), Some("linux"));
    assert_eq!(
        l.get("beta.kubernetes.io/os").map(String::as_str),
        Some("linux")
    );
    assert_eq!(l.get(LABEL_ARCH).map(String::as_str), Some(go_arch()));
    assert_eq!(l.get(LABEL_HOSTNAME), n.metadata.name.as_ref());
}

#[test]
fn label_add_overwrite_and_remove() {
    let mut n = node();
    let c = parse_label_specs(&s(&["nodeenv=pro"])).unwrap();
    assert_eq!(
        apply_labels(&mut n, &c, false).unwrap().0,
        LabelOutcome::Labeled
    );
    // Same value again: nothing changes, no error.
    assert_eq!(
        apply_labels(&mut n, &c, false).unwrap().0,
        LabelOutcome::NotLabeled
    );
    let c2 = parse_label_specs(&s(&["nodeenv=test"])).unwrap();
    let err = apply_labels(&mut n, &c2, false).unwrap_err().to_string();
    assert_eq!(
        err,
        "'nodeenv' already has a value (pro), and --overwrite is false"
    );
    assert_eq!(
        apply_labels(&mut n, &c2, true).unwrap().0,
        LabelOutcome::Labeled
    );
    assert_eq!(node_labels(&n)["nodeenv"], "test");
    let rm = parse_label_specs(&s(&["nodeenv-"])).unwrap();
    assert_eq!(
        apply_labels(&mut n, &rm, false).unwrap().0,
        LabelOutcome::Unlabeled
    );
    let (out, warn) = apply_labels(&mut n, &rm, false).unwrap();
    assert_eq!(out, LabelOutcome::NotLabeled);
    assert_eq!(warn, vec!["label \"nodeenv\" not found.".to_string()]);
    // Adding one label and removing another in one command.
    apply_labels(&mut n, &parse_label_specs(&s(&["a=1"])).unwrap(), false).unwrap();
    let both = parse_label_specs(&s(&["b=2", "a-"])).unwrap();
    assert_eq!(
        apply_labels(&mut n, &both, false).unwrap().0,
        LabelOutcome::Changed
    );
    assert_eq!(LabelOutcome::Changed.as_str(), "label(s) changed");
}

#[test]
fn label_spec_errors() {
    assert_eq!(
        parse_label_specs(&s(&["a=b=c"])).unwrap_err().to_string(),
        "invalid label spec: a=b=c"
    );
    assert_eq!(
        parse_label_specs(&s(&["abc"])).unwrap_err().to_string(),
        "unknown label spec: abc"
    );
    assert!(parse_label_specs(&s(&["a=b", "a-"])).is_err());
    assert!(parse_label_specs(&s(&["a=-bad-"])).is_err());
    let mut n = node();
    let c = parse_label_specs(&s(&["bad key!=x"])).unwrap();
    assert!(apply_labels(&mut n, &c, false)
        .unwrap_err()
        .to_string()
        .contains("metadata.labels: Invalid value: \"bad key!\""));
}

#[test]
fn taint_lifecycle_like_kubectl() {
    let mut n = node();
    let add = parse_taint_specs(&s(&["tag=test:PreferNoSchedule"])).unwrap();
    assert_eq!(
        apply_taints(&mut n, &add, false).unwrap(),
        TaintOutcome::Tainted
    );
    let err = apply_taints(&mut n, &add, false).unwrap_err().to_string();
    assert_eq!(
        err,
        "node n1 already has tag taint(s) with same effect(s) and --overwrite is false"
    );
    let ns = parse_taint_specs(&s(&["tag=test:NoSchedule"])).unwrap();
    assert_eq!(
        apply_taints(&mut n, &ns, false).unwrap(),
        TaintOutcome::Tainted
    );
    let ne = parse_taint_specs(&s(&["tag=test:NoExecute"])).unwrap();
    apply_taints(&mut n, &ne, false).unwrap();
    let taints = node_taints(&n);
    assert_eq!(taints.len(), 3);
    assert_eq!(taints[0].effect, "NoExecute", "new taints come first");
    assert!(
        taints[0].time_added.is_some(),
        "NoExecute taints carry timeAdded"
    );
    assert!(taints[1].time_added.is_none());
    let rm = parse_taint_specs(&s(&["tag:NoSchedule-"])).unwrap();
    assert_eq!(
        apply_taints(&mut n, &rm, false).unwrap(),
        TaintOutcome::Untainted
    );
    assert_eq!(node_taints(&n).len(), 2);
    let err = apply_taints(&mut n, &rm, false).unwrap_err().to_string();
    assert_eq!(err, "taint \"tag:NoSchedule\" not found");
    let rm_all = parse_taint_specs(&s(&["tag-"])).unwrap();
    assert_eq!(
        apply_taints(&mut n, &rm_all, false).unwrap(),
        TaintOutcome::Untainted
    );
    assert!(node_taints(&n).is_empty());
}

#[test]
fn taint_spec_errors() {
    let e = |v: &[&str]| parse_taint_specs(&s(v)).unwrap_err().to_string();
    assert_eq!(
        e(&["tag=test:Bogus"]),
        "invalid taint effect: Bogus, unsupported taint effect"
    );
    // No effect: kubectl takes the whole spec as the key, which is not a valid name.
    assert!(e(&["tag=test"]).starts_with("invalid taint spec: tag=test, name part must consist"));
    assert_eq!(e(&["a:b:c"]), "invalid taint spec: a:b:c");
    assert_eq!(
        e(&["tag=a:NoSchedule", "tag=b:NoSchedule"]),
        "duplicated taints with the same key and effect: {tag b NoSchedule <nil>}"
    );
    assert_eq!(
        e(&["tag=a:NoSchedule", "tag-"]),
        "can not both modify and remove the following taint(s) in the same command: tag"
    );
    assert!(e(&["bad key=v:NoSchedule"]).starts_with("invalid taint spec: bad key=v:NoSchedule, "));
}

#[test]
fn overwrite_is_modified() {
    let mut n = node();
    apply_taints(
        &mut n,
        &parse_taint_specs(&s(&["tag=a:NoSchedule"])).unwrap(),
        false,
    )
    .unwrap();
    let out = apply_taints(
        &mut n,
        &parse_taint_specs(&s(&["tag=b:NoSchedule"])).unwrap(),
        true,
    )
    .unwrap();
    assert_eq!(out, TaintOutcome::Modified);
    assert_eq!(node_taints(&n)[0].value.as_deref(), Some("b"));
}

#[test]
fn status_reads_the_host_with_kubelet_reservations() {
    let dir = std::env::temp_dir();
    let n = node();
    let st = host_status(&n, &dir);
    let cap = st.capacity.unwrap();
    let alloc = st.allocatable.unwrap();
    let nproc = std::thread::available_parallelism().unwrap().get();
    assert!(cap["cpu"].0.parse::<usize>().unwrap() >= nproc);
    assert_eq!(cap["cpu"], alloc["cpu"], "no cpu is reserved");
    assert_eq!(cap["pods"].0, "110");
    let mem = crate::manifest::quantity::amount("memory", &cap["memory"].0).unwrap();
    assert_eq!(mem, mem_total_bytes().unwrap());
    let huge: i128 = hugepages().iter().map(|(_, b)| b).sum();
    let amem = crate::manifest::quantity::amount("memory", &alloc["memory"].0).unwrap();
    assert_eq!(
        amem,
        mem - (100 << 20) - huge,
        "memory.available<100Mi eviction threshold"
    );
    let disk = crate::manifest::quantity::amount("ephemeral-storage", &cap["ephemeral-storage"].0)
        .unwrap();
    let adisk =
        crate::manifest::quantity::amount("ephemeral-storage", &alloc["ephemeral-storage"].0)
            .unwrap();
    assert_eq!(
        adisk,
        disk - disk / 10,
        "nodefs.available<10% eviction threshold"
    );
    let ready = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(st.node_info.unwrap().operating_system, "linux");
}

#[test]
fn label_key_and_value_rules() {
    assert!(validate_label_key("nodeenv").is_ok());
    assert!(validate_label_key("kubernetes.io/hostname").is_ok());
    assert!(validate_label_key("/x").is_err());
    assert!(validate_label_key("Bad_Prefix/x").is_err());
    assert!(validate_label_key("a/b/c").is_err());
    assert!(validate_label_key("-x").is_err());
    assert!(validate_label_key(&"x".repeat(64)).is_err());
    assert!(validate_label_value("").is_ok());
    assert!(validate_label_value("pro").is_ok());
    assert!(validate_label_value("a b").is_err());
    assert!(validate_label_value("-a").is_err());
}
