use super::*;
use std::os::fd::AsFd;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: NAME\nspec:\n  containers:\n  - {name: c, image: busybox:1.30}\n";

fn pod(name: &str) -> String {
    POD.replace("NAME", name)
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("podrun-mdir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn dotfiles_backups_and_editor_temp_files_are_not_manifests() {
    for n in [
        ".web.yaml.swp",
        ".#web.yaml",
        ".hidden",
        "web.yaml~",
        "#web.yaml#",
        "4913",
    ] {
        assert!(ignored_name(n), "{n}");
    }
    for n in ["web.yaml", "web.json", "web", "web.yml", "#notes", "a~b"] {
        assert!(!ignored_name(n), "{n}");
    }
}

#[test]
fn a_scan_reads_regular_files_of_any_extension_and_skips_the_rest() {
    let d = temp("scan");
    std::fs::write(d.join("web.yaml"), pod("web")).unwrap();
    std::fs::write(d.join("db"), pod("db")).unwrap();
    std::fs::write(d.join(".web.yaml.swp"), "garbage").unwrap();
    std::fs::write(d.join("web.yaml~"), pod("web")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/inner.yaml"), pod("inner")).unwrap();
    std::os::unix::fs::symlink(d.join("db"), d.join("db-link.yaml")).unwrap();
    std::os::unix::fs::symlink(d.join("sub"), d.join("sub-link")).unwrap();
    let s = scan(&d).unwrap();
    assert!(!s.missing);
    let names: Vec<&str> = s.files.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["db", "db-link.yaml", "web.yaml"]);
    let web = &s.files["web.yaml"];
    assert_eq!(web.hash.len(), 64);
    let m = web.manifest.as_ref().unwrap();
    assert_eq!(m.pods[0].metadata.name.as_deref(), Some("web"));
    assert_eq!(s.files["db"].hash, s.files["db-link.yaml"].hash);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_bad_file_is_reported_with_its_name_and_the_field_and_the_others_stay() {
    let d = temp("bad");
    std::fs::write(d.join("good.yaml"), pod("good")).unwrap();
    std::fs::write(
        d.join("bad.yaml"),
        pod("bad").replace("image: busybox:1.30", "imagee: busybox:1.30"),
    )
    .unwrap();
    std::fs::write(d.join("empty.yaml"), "").unwrap();
    let s = scan(&d).unwrap();
    assert!(s.files["good.yaml"].manifest.is_ok());
    let errs = s.errors();
    assert_eq!(errs.len(), 2, "{errs:?}");
    let (path, bad) = errs.iter().find(|(p, _)| p.ends_with("bad.yaml")).unwrap();
    assert!(bad.contains(&path.display().to_string()), "{bad}");
    assert!(bad.contains("imagee"), "{bad}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn static_pods_are_named_bound_and_given_a_content_uid_as_kubelet_does() {
    let d = temp("static");
    std::fs::write(d.join("web.yaml"), pod("web")).unwrap();
    let s = scan(&d).unwrap();
    let pods = s.files["web.yaml"].static_pods("Node1").unwrap();
    assert_eq!(pods.len(), 1);
    let p = &pods[0];
    assert_eq!(p.metadata.name.as_deref(), Some("web-node1"));
    let uid = p.metadata.uid.clone().unwrap();
    assert_eq!(uid.len(), 32);
    let ann = p.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[CONFIG_HASH_ANNOTATION], uid);
    assert_eq!(ann[CONFIG_SOURCE_ANNOTATION], "file");
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("Node1"));
    let t = &spec.tolerations.as_ref().unwrap()[0];
    assert_eq!(
        (t.operator.as_deref(), t.effect.as_deref(), t.key.as_deref()),
        (Some("Exists"), Some("NoExecute"), None)
    );
    // The same content gives the same uid (a restart, a reboot); another content another.
    let again = scan(&d).unwrap().files["web.yaml"]
        .static_pods("Node1")
        .unwrap();
    assert_eq!(again[0].metadata.uid.as_deref(), Some(uid.as_str()));
    std::fs::write(d.join("web.yaml"), pod("web").replace("1.30", "1.36")).unwrap();
    let edited = scan(&d).unwrap().files["web.yaml"]
        .static_pods("Node1")
        .unwrap();
    assert_ne!(edited[0].metadata.uid.as_deref(), Some(uid.as_str()));
    // A file that did not parse gives its error.
    std::fs::write(d.join("bad.yaml"), "kind: Pod\n").unwrap();
    let bad = scan(&d).unwrap().files["bad.yaml"]
        .static_pods("n")
        .unwrap_err();
    assert!(bad.contains("bad.yaml"), "{bad}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_missing_directory_is_an_empty_scan() {
    let s = scan(Path::new("/nonexistent/podrun/manifests")).unwrap();
    assert!(s.missing && s.files.is_empty());
}

fn file(hash: &str) -> ManifestFile {
    ManifestFile {
        path: PathBuf::from("x"),
        hash: hash.into(),
        manifest: Err("unparsed".into()),
    }
}

fn scan_of(entries: &[(&str, &str)]) -> Scan {
    Scan {
        files: entries
            .iter()
            .map(|(n, h)| (n.to_string(), file(h)))
            .collect(),
        missing: false,
    }
}

#[test]
fn the_diff_says_added_changed_removed_per_file() {
    let old = scan_of(&[("a", "1"), ("b", "2"), ("c", "3")]);
    let new = scan_of(&[("a", "1"), ("b", "22"), ("d", "4")]);
    assert_eq!(
        diff(&old, &new),
        vec![
            Change::Added("d".into()),
            Change::Changed("b".into()),
            Change::Removed("c".into())
        ]
    );
    assert!(diff(&new, &new).is_empty());
    assert_eq!(
        diff(&Scan::default(), &scan_of(&[("a", "1")])),
        vec![Change::Added("a".into())]
    );
    // A file that could not be read (no hash) is never taken as unchanged.
    assert_eq!(
        diff(&scan_of(&[("a", "")]), &scan_of(&[("a", "")])),
        vec![Change::Changed("a".into())]
    );
}

#[test]
fn a_burst_of_events_is_one_rescan_after_quiet_or_at_most_max() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = Coalesce::new(ms(100), ms(1000));
    assert_eq!(c.timeout(t0), None);
    assert!(!c.take_due(t0));
    c.note(t0);
    c.note(t0 + ms(50));
    assert_eq!(c.timeout(t0 + ms(60)), Some(ms(90)));
    assert!(!c.take_due(t0 + ms(120)));
    assert!(c.take_due(t0 + ms(150)));
    assert!(!c.take_due(t0 + ms(151)), "once per burst");
    // Events every 50 ms forever still give a rescan at `max`.
    let mut c = Coalesce::new(ms(100), ms(1000));
    for i in 0..30 {
        c.note(t0 + ms(50 * i));
    }
    assert!(c.take_due(t0 + ms(1000)));
}

/// Polls the watcher for up to `secs`, returning whether a rescan came due.
fn wait_rescan(w: &mut DirWatcher, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = w
            .timeout()
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        let mut fds = [nix::poll::PollFd::new(
            w.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(t.as_millis()).unwrap_or(200);
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
        w.handle_events().unwrap();
        if w.rescan_due() {
            return true;
        }
    }
    false
}

#[test]
fn the_watcher_follows_a_directory_created_later_edited_and_replaced() {
    let base = temp("watch");
    let dir = base.join("manifests");
    let mut w = DirWatcher::new(&dir, Duration::from_millis(50)).unwrap();
    assert!(wait_rescan(&mut w, 2), "the first scan");
    assert!(!w.watching());
    assert!(
        !wait_rescan(&mut w, 1),
        "nothing happens while nothing changes"
    );
    // Created later.
    std::fs::create_dir(&dir).unwrap();
    assert!(wait_rescan(&mut w, 3), "the directory appeared");
    assert!(w.watching());
    // A burst of writes is one rescan.
    for i in 0..5 {
        std::fs::write(dir.join("web.yaml"), pod(&format!("web{i}"))).unwrap();
    }
    assert!(wait_rescan(&mut w, 3), "a file written");
    assert!(!wait_rescan(&mut w, 1), "coalesced into one");
    // Editors' temp files alone do not wake it.
    std::fs::write(dir.join(".web.yaml.swp"), "x").unwrap();
    assert!(!wait_rescan(&mut w, 1), "a swap file");
    // Replaced: a new directory renamed over the old one.
    let staged = base.join("staged");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("db.yaml"), pod("db")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::rename(&staged, &dir).unwrap();
    assert!(wait_rescan(&mut w, 3), "the directory was replaced");
    assert!(w.watching());
    // And the new directory is the one watched.
    std::fs::write(dir.join("db.yaml"), pod("db2")).unwrap();
    assert!(wait_rescan(&mut w, 3), "a file of the new directory");
    std::fs::remove_dir_all(&base).unwrap();
}
