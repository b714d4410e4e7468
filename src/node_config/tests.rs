use super::*;

#[test]
fn defaults_hold_without_a_file_or_field() {
    assert_eq!(parse("").unwrap().pod_pids_limit, 4096);
    let c =
        parse("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n").unwrap();
    assert_eq!(c, NodeConfig::default());
    assert_eq!(c.pod_pids_max(), Some(4096));
    assert_eq!(c.static_pod_path, Path::new("/etc/podrun/manifests"));
    assert_eq!(c.container_log_max_size, 10 * 1024 * 1024);
    assert_eq!(c.container_log_max_files, 5);
    assert_eq!(
        (
            c.image_gc_high_threshold_percent,
            c.image_gc_low_threshold_percent
        ),
        (85, 80)
    );
    assert_eq!(c.image_minimum_gc_age, Duration::from_secs(120));
    assert_eq!(c.api_address.to_string(), "127.0.0.1");
    assert_eq!(c.api_port, 6443);
    let missing =
        std::env::temp_dir().join(format!("podrun-nodecfg-{}/none.yaml", std::process::id()));
    assert_eq!(load_file(&missing, false).unwrap(), NodeConfig::default());
}

#[test]
fn an_explicitly_named_file_must_exist() {
    let missing =
        std::env::temp_dir().join(format!("podrun-nodecfg-{}/none.yaml", std::process::id()));
    let e = load_file(&missing, true).unwrap_err().to_string();
    assert!(e.starts_with(&missing.display().to_string()), "{e}");
    assert!(e.contains("No such file"), "{e}");
}

#[test]
fn kubelets_default_eviction_thresholds() {
    let c = NodeConfig::default();
    let got: Vec<(&str, ThresholdValue)> = c
        .eviction_hard
        .iter()
        .map(|t| (t.signal.as_str(), t.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("imagefs.available", ThresholdValue::Percentage(0.15)),
            ("memory.available", ThresholdValue::Quantity(100 << 20)),
            ("nodefs.available", ThresholdValue::Percentage(0.10)),
            ("nodefs.inodesFree", ThresholdValue::Percentage(0.05)),
        ]
    );
    assert!(c.eviction_soft.is_empty());
}

#[test]
fn the_packaged_file_documents_exactly_the_defaults() {
    let text = include_str!("../../packaging/etc/podrun/config.yaml");
    // As shipped, everything is a comment.
    assert_eq!(parse(text).unwrap(), NodeConfig::default());
    // Uncommented ("#key" lines, not "# prose"), every setting is at its default.
    let uncommented: String = text
        .lines()
        .filter_map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.starts_with(' ') => Some(format!("{rest}\n")),
            _ => None,
        })
        .collect();
    assert!(uncommented.contains("maxPods: 110"), "{uncommented}");
    assert!(
        uncommented.contains("kind: PodrunConfiguration"),
        "{uncommented}"
    );
    assert_eq!(parse(&uncommented).unwrap(), NodeConfig::default());
}

#[test]
fn pod_pids_limit_is_read_and_minus_one_is_unlimited() {
    assert_eq!(
        parse("podPidsLimit: 100").unwrap().pod_pids_max(),
        Some(100)
    );
    assert_eq!(parse("podPidsLimit: -1").unwrap().pod_pids_max(), None);
    let e = parse("podPidsLimit: -5").unwrap_err();
    assert!(e.starts_with("podPidsLimit: invalid value -5"), "{e}");
}

#[test]
fn max_pods_defaults_to_kubelets_110() {
    assert_eq!(parse("").unwrap().max_pods, 110);
    assert_eq!(parse("maxPods: 5").unwrap().max_pods, 5);
    assert_eq!(
        parse("maxPods: -1").unwrap_err(),
        "invalid configuration: maxPods (--max-pods) -1 must not be a negative number"
    );
}

#[test]
fn unknown_fields_and_other_kinds_are_errors() {
    let e = parse("podPidLimit: 5").unwrap_err();
    assert!(e.contains("unknown field `podPidLimit`"), "{e}");
    let e = parse("kind: Pod").unwrap_err();
    assert!(e.contains("KubeletConfiguration"), "{e}");
    let e = parse("apiVersion: kubelet.config.k8s.io/v1\n").unwrap_err();
    assert!(e.contains("want kubelet.config.k8s.io/v1beta1"), "{e}");
    // An unknown field inside podrun's document is named too.
    let e = parse("---\nkind: PodrunConfiguration\napiServer: {adress: 1.2.3.4}\n").unwrap_err();
    assert!(e.contains("unknown field `adress`"), "{e}");
}

#[test]
fn the_file_is_named_in_errors() {
    let dir = std::env::temp_dir().join(format!("podrun-nodecfg-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("config.yaml");
    std::fs::write(&f, "staticPodPth: /x\n").unwrap();
    let e = load_file(&f, true).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", f.display())), "{e}");
    assert!(e.contains("unknown field `staticPodPth`"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn static_pod_path_and_log_settings() {
    let c = parse("staticPodPath: /srv/pods\ncontainerLogMaxSize: 1Gi\ncontainerLogMaxFiles: 2\n")
        .unwrap();
    assert_eq!(c.static_pod_path, Path::new("/srv/pods"));
    assert_eq!(c.container_log_max_size, 1 << 30);
    assert_eq!(c.container_log_max_files, 2);
    assert_eq!(
        parse("containerLogMaxFiles: 1").unwrap_err(),
        "invalid configuration: containerLogMaxFiles must be greater than 1"
    );
    let e = parse("containerLogMaxSize: ten").unwrap_err();
    assert!(e.starts_with("containerLogMaxSize: failed to parse container log max size \"ten\": quantities must match"), "{e}");
    assert!(parse("containerLogMaxSize: \"0\"")
        .unwrap_err()
        .contains("must be positive"));
    let e = parse("staticPodPath: manifests").unwrap_err();
    assert!(
        e.contains("staticPodPath \"manifests\" must be an absolute path"),
        "{e}"
    );
}

#[test]
fn image_gc_thresholds_are_checked_with_kubelets_words() {
    let c = parse("imageGCHighThresholdPercent: 90\nimageGCLowThresholdPercent: 50\nimageMinimumGCAge: 1h30m\n").unwrap();
    assert_eq!(
        (
            c.image_gc_high_threshold_percent,
            c.image_gc_low_threshold_percent
        ),
        (90, 50)
    );
    assert_eq!(c.image_minimum_gc_age, Duration::from_secs(5400));
    assert_eq!(
        parse("imageGCLowThresholdPercent: 90").unwrap_err(),
        "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 90 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 85"
    );
    assert_eq!(
        parse("imageGCHighThresholdPercent: 101").unwrap_err(),
        "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive"
    );
    assert_eq!(
        parse("imageMinimumGCAge: -1m").unwrap_err(),
        "invalid configuration: imageMinimumGCAge -1m must not be negative"
    );
    assert_eq!(
        parse("imageMinimumGCAge: \"2\"").unwrap_err(),
        "imageMinimumGCAge: time: missing unit in duration \"2\""
    );
}

#[test]
fn eviction_thresholds_replace_or_merge_the_defaults() {
    let c = parse("evictionHard:\n  memory.available: 1Gi\n").unwrap();
    assert_eq!(c.eviction_hard.len(), 1);
    assert_eq!(c.eviction_hard[0].value, ThresholdValue::Quantity(1 << 30));
    let c = parse("evictionHard:\n  memory.available: 1Gi\nmergeDefaultEvictionSettings: true\n")
        .unwrap();
    assert_eq!(c.eviction_hard.len(), 4);
    // "0%" and "100%" turn a signal off.
    let c = parse("evictionHard:\n  nodefs.available: 0%\n").unwrap();
    assert!(c.eviction_hard.is_empty());
    let c = parse(
        "evictionSoft:\n  memory.available: 500Mi\nevictionSoftGracePeriod:\n  memory.available: 1m30s\n",
    )
    .unwrap();
    assert_eq!(
        c.eviction_soft[0].grace_period,
        Some(Duration::from_secs(90))
    );
}

#[test]
fn bad_eviction_settings_get_kubelets_words_and_the_field() {
    let e = |s: &str| parse(s).unwrap_err();
    assert_eq!(
        e("evictionHard:\n  memory.free: 1Gi\n"),
        "evictionHard: unsupported eviction signal memory.free"
    );
    assert_eq!(
        e("evictionHard:\n  nodefs.available: 120%\n"),
        "evictionHard: eviction percentage threshold nodefs.available must be <= 100%: 120%"
    );
    assert_eq!(
        e("evictionHard:\n  memory.available: \"-1Mi\"\n"),
        "evictionHard: eviction threshold memory.available must be positive: -1Mi"
    );
    assert!(e("evictionHard:\n  memory.available: lots\n")
        .starts_with("evictionHard: memory.available: quantities must match"));
    assert_eq!(
        e("evictionSoft:\n  memory.available: 1Gi\n"),
        "evictionSoft: grace period must be specified for the soft eviction threshold memory.available"
    );
    assert_eq!(
        e("evictionSoft:\n  memory.available: 1Gi\nevictionSoftGracePeriod:\n  memory.available: -1s\n"),
        "evictionSoftGracePeriod: invalid eviction grace period specified: -1s, must be a positive value"
    );
    assert_eq!(
        e("evictionSoftGracePeriod:\n  mem: 1s\n"),
        "evictionSoftGracePeriod: unsupported eviction signal mem"
    );
}

#[test]
fn the_api_endpoint_lives_in_podruns_own_document() {
    let c = parse("maxPods: 7\n---\napiVersion: config.podrun.io/v1alpha1\nkind: PodrunConfiguration\napiServer:\n  address: 0.0.0.0\n  port: 16443\n").unwrap();
    assert_eq!(c.max_pods, 7);
    assert_eq!(c.api_address.to_string(), "0.0.0.0");
    assert_eq!(c.api_port, 16443);
    // Either document alone is fine; the podrun one keeps kubelet's defaults.
    let c = parse("kind: PodrunConfiguration\napiServer: {port: 7443}\n").unwrap();
    assert_eq!((c.max_pods, c.api_port), (110, 7443));
    assert!(
        parse("kind: PodrunConfiguration\napiServer: {address: localhost}\n")
            .unwrap_err()
            .contains("apiServer.address: invalid value \"localhost\"")
    );
    assert!(parse("maxPods: 1\n---\nmaxPods: 2\n")
        .unwrap_err()
        .contains("given twice"));
    // The API server's port is a field kubelet's own document does not have.
    assert!(parse("apiServer: {port: 1}\n")
        .unwrap_err()
        .contains("unknown field `apiServer`"));
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("2m"), Ok(120_000_000_000));
    assert_eq!(parse_go_duration("1h2m3.5s"), Ok(3_723_500_000_000));
    assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
    assert_eq!(parse_go_duration("0"), Ok(0));
    assert_eq!(parse_go_duration("-1s"), Ok(-1_000_000_000));
    assert_eq!(
        parse_go_duration("5x").unwrap_err(),
        "time: unknown unit \"x\" in duration \"5x\""
    );
    assert_eq!(
        parse_go_duration("").unwrap_err(),
        "time: invalid duration \"\""
    );
}

#[test]
fn the_named_file_wins_then_etc_then_the_data_dir() {
    use std::ffi::OsStr;
    let data = Path::new("/var/lib/podrun");
    assert_eq!(
        choose(Some(OsStr::new("/srv/node.yaml")), true, data),
        (PathBuf::from("/srv/node.yaml"), true)
    );
    assert_eq!(
        choose(Some(OsStr::new("")), true, data),
        (PathBuf::from("/etc/podrun/config.yaml"), false)
    );
    assert_eq!(
        choose(None, false, data),
        (PathBuf::from("/var/lib/podrun/config.yaml"), false)
    );
}
