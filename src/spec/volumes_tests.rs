use super::*;
use crate::manifest::{load, LoadOptions, Manifest};
use crate::spec::env::NodeAllocatable;
use crate::spec::user::tests::tempdir::Dir;

fn ctx(m: &Manifest) -> EnvContext<'_> {
    EnvContext {
        pod: &m.pods[0],
        config_maps: &m.config_maps,
        secrets: &m.secrets,
        pod_ips: &[],
        host_ips: &[],
        node_name: "node-a",
        node_allocatable: NodeAllocatable::default(),
    }
}

fn pod_text(volumes: &str, mounts: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p, labels: {{app: web, tier: front}}}}\nspec:\n  volumes:\n{volumes}  containers:\n  - name: c\n    image: i\n    volumeMounts:\n{mounts}")
}

fn is_mounted(p: &Path) -> bool {
    !mounts_below(p).is_empty() && mounts_below(p).iter().any(|m| m == p)
}

/// Prepares, hands over, and always cleans up.
fn with_volumes(text: &str, f: impl FnOnce(&Manifest, &PreparedVolumes, &Path)) {
    let m = load(text, &LoadOptions::default()).unwrap();
    let dir = Dir::new("vol");
    let pod_dir = dir.path().join("pod");
    let prepared = prepare_volumes(&ctx(&m), &pod_dir, None).unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&m, &prepared, &pod_dir)));
    cleanup_volumes(&pod_dir).unwrap();
    assert!(mounts_below(&pod_dir).is_empty(), "cleanup left mounts");
    assert!(!pod_dir.join("volumes").exists(), "cleanup left volumes/");
    if let Err(p) = res {
        std::panic::resume_unwind(p);
    }
}

fn prepare_err(text: &str) -> String {
    let m = load(text, &LoadOptions::default()).unwrap();
    let dir = Dir::new("vol-err");
    let pod_dir = dir.path().join("pod");
    let e = prepare_volumes(&ctx(&m), &pod_dir, None)
        .unwrap_err()
        .to_string();
    assert!(
        mounts_below(&pod_dir).is_empty(),
        "a failed prepare leaves no mount"
    );
    e
}

#[test]
fn empty_dir_on_disk_is_world_writable_under_the_pod_dir() {
    let text = pod_text(
        "  - {name: scratch, emptyDir: {}}\n",
        "    - {name: scratch, mountPath: /scratch}\n",
    );
    with_volumes(&text, |m, v, pod_dir| {
        let vol = v.get("scratch").unwrap();
        assert!(vol.host_path.starts_with(pod_dir));
        let mode = std::fs::metadata(&vol.host_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o777);
        let c = &m.pods[0].spec.as_ref().unwrap().containers[0];
        let mounts = v.mounts_for(c).unwrap();
        assert_eq!(
            mounts,
            [ResolvedMount {
                destination: "/scratch".into(),
                source: vol.host_path.clone(),
                read_only: false
            }]
        );
    });
}

#[test]
fn memory_empty_dir_is_a_tmpfs_of_the_size_limit() {
    let text = pod_text(
        "  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 8Mi}}\n",
        "    - {name: cache, mountPath: /cache}\n",
    );
    with_volumes(&text, |_, v, _| {
        let p = &v.get("cache").unwrap().host_path;
        assert!(is_mounted(p), "tmpfs mounted at {}", p.display());
        let st = nix::sys::statfs::statfs(p).unwrap();
        assert_eq!(st.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
        let bytes = st.blocks() * st.block_size() as u64;
        assert_eq!(bytes, 8 << 20);
    });
}

#[test]
fn memory_volume_size_is_the_smallest_of_node_pod_and_limit() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: i, resources: {limits: {cpu: '1', memory: 64Mi}}}\n";
    let m = load(text, &LoadOptions::default()).unwrap();
    let mut c = ctx(&m);
    c.node_allocatable.memory_bytes = 1 << 30;
    assert_eq!(
        memory_volume_size(&c, None).unwrap(),
        Some(64 << 20),
        "pod limit"
    );
    assert_eq!(
        memory_volume_size(&c, Some("8Mi")).unwrap(),
        Some(8 << 20),
        "sizeLimit"
    );
    assert_eq!(
        memory_volume_size(&c, Some("2Gi")).unwrap(),
        Some(64 << 20),
        "never above the pod"
    );
    let m = load(
        &pod_text(
            "  - {name: x, emptyDir: {}}\n",
            "    - {name: x, mountPath: /x}\n",
        ),
        &LoadOptions::default(),
    )
    .unwrap();
    let mut c = ctx(&m);
    c.node_allocatable.memory_bytes = 1 << 30;
    assert_eq!(
        memory_volume_size(&c, None).unwrap(),
        Some(1 << 30),
        "node allocatable"
    );
}

#[test]
fn host_path_types_are_checked_as_kubelet_does() {
    let d = Dir::new("hostpath");
    let base = d.path().display().to_string();
    let file = format!("{base}/a-file");
    std::fs::write(&file, "x").unwrap();
    let sock = format!("{base}/sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ok = |path: &str, typ: &str| {
        let text = pod_text(
            &format!("  - {{name: h, hostPath: {{path: '{path}', type: '{typ}'}}}}\n"),
            "    - {name: h, mountPath: /h}\n",
        );
        with_volumes(&text, |_, v, _| {
            assert_eq!(v.get("h").unwrap().host_path, PathBuf::from(path))
        });
    };
    let err = |path: &str, typ: &str| {
        prepare_err(&pod_text(
            &format!("  - {{name: h, hostPath: {{path: '{path}', type: '{typ}'}}}}\n"),
            "    - {name: h, mountPath: /h}\n",
        ))
    };
    ok(&format!("{base}/made/deep"), "DirectoryOrCreate");
    assert!(Path::new(&format!("{base}/made/deep")).is_dir());
    ok(&format!("{base}/untyped"), "");
    assert!(
        Path::new(&format!("{base}/untyped")).is_dir(),
        "untyped missing path made a directory"
    );
    ok(&base, "Directory");
    ok(&format!("{base}/new-file"), "FileOrCreate");
    assert!(Path::new(&format!("{base}/new-file")).is_file());
    ok(&file, "File");
    ok(&sock, "Socket");
    ok("/dev/null", "CharDevice");
    assert_eq!(err(&file, "Directory"), format!("MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {file} is not a directory"));
    assert_eq!(err(&format!("{base}/missing"), "Directory"), format!("MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {base}/missing is not a directory"));
    assert!(err(&base, "File").ends_with("is not a file"));
    assert!(err(&file, "Socket").ends_with("is not a socket file"));
    assert!(err(&file, "CharDevice").ends_with("is not a character device"));
    assert!(err("/dev/null", "BlockDevice").ends_with("/dev/null is not a block device"));
}

#[test]
fn config_map_and_secret_files_with_items_modes_and_optional() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{nginx.conf: 'server {{}}', other: x}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{password: MTIzNDU2}}\n---\n{}",
        pod_text(
            "  - {name: all, configMap: {name: cfg}}\n  - {name: some, configMap: {name: cfg, defaultMode: 0400, items: [{key: nginx.conf, path: conf/nginx.conf}]}}\n  - {name: sec, secret: {secretName: s}}\n  - {name: opt, configMap: {name: nope, optional: true}}\n",
            "    - {name: all, mountPath: /all}\n    - {name: some, mountPath: /etc/nginx/nginx.conf, subPath: conf/nginx.conf}\n    - {name: sec, mountPath: /sec}\n",
        )
    );
    with_volumes(&text, |m, v, _| {
        let all = &v.get("all").unwrap().host_path;
        assert_eq!(
            std::fs::read_to_string(all.join("nginx.conf")).unwrap(),
            "server {}"
        );
        assert_eq!(std::fs::read_to_string(all.join("other")).unwrap(), "x");
        assert_eq!(
            std::fs::metadata(all.join("other"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );
        let some = &v.get("some").unwrap().host_path;
        assert!(!some.join("other").exists(), "items select keys");
        assert_eq!(
            std::fs::metadata(some.join("conf/nginx.conf"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o400
        );
        let sec = &v.get("sec").unwrap().host_path;
        assert_eq!(
            std::fs::read_to_string(sec.join("password")).unwrap(),
            "123456"
        );
        assert!(
            v.get("opt").unwrap().host_path.is_dir(),
            "optional missing: empty volume"
        );
        let c = &m.pods[0].spec.as_ref().unwrap().containers[0];
        let mounts = v.mounts_for(c).unwrap();
        assert!(
            mounts.iter().all(|m| m.read_only),
            "API data volumes are read-only"
        );
        let conf = mounts
            .iter()
            .find(|m| m.destination == "/etc/nginx/nginx.conf")
            .unwrap();
        assert!(
            is_mounted(&conf.source),
            "subPath is bound at a private path"
        );
        assert_eq!(std::fs::read_to_string(&conf.source).unwrap(), "server {}");
    });
    let missing = pod_text(
        "  - {name: c, configMap: {name: nope}}\n",
        "    - {name: c, mountPath: /c}\n",
    );
    // The volume waits for its ConfigMap: the containers that mount it cannot start,
    // and say why, until it is there.
    with_volumes(&missing, |m, v, _| {
        let c = &m.pods[0].spec.as_ref().unwrap().containers[0];
        assert_eq!(
            v.mounts_for(c).unwrap_err().to_string(),
            "MountVolume.SetUp failed for volume \"c\" : configmap \"nope\" not found"
        );
    });
}

#[test]
fn downward_api_and_projected_volumes() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{a: one}}\n---\n{}",
        pod_text(
            "  - name: info\n    downwardAPI:\n      items:\n      - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n      - {path: name, fieldRef: {fieldPath: metadata.name}}\n  - name: proj\n    projected:\n      sources:\n      - configMap: {name: cfg}\n      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}\n",
            "    - {name: info, mountPath: /info}\n    - {name: proj, mountPath: /proj}\n",
        )
    );
    with_volumes(&text, |_, v, _| {
        let info = &v.get("info").unwrap().host_path;
        assert_eq!(
            std::fs::read_to_string(info.join("labels")).unwrap(),
            "app=\"web\"\ntier=\"front\""
        );
        assert_eq!(std::fs::read_to_string(info.join("name")).unwrap(), "p");
        let proj = &v.get("proj").unwrap().host_path;
        assert_eq!(std::fs::read_to_string(proj.join("a")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(proj.join("ns")).unwrap(), "default");
    });
}

#[test]
fn sub_path_links_cannot_escape_the_volume() {
    let text = pod_text(
        "  - {name: data, emptyDir: {}}\n",
        "    - {name: data, mountPath: /a, subPath: escape/etc}\n    - {name: data, mountPath: /b, subPath: made/here, readOnly: true}\n",
    );
    with_volumes(&text, |m, v, _| {
        let root = v.get("data").unwrap().host_path.clone();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        let c = &m.pods[0].spec.as_ref().unwrap().containers[0];
        let mounts = v.mounts_for(c).unwrap();
        // "escape" → "/" resolves to the volume's root: escape/etc is the volume's etc.
        assert!(root.join("etc").is_dir(), "created inside the volume");
        std::fs::write(root.join("etc/marker"), "mine").unwrap();
        assert_eq!(
            std::fs::read_to_string(mounts[0].source.join("marker")).unwrap(),
            "mine"
        );
        assert!(
            !mounts[0].source.join("passwd").exists(),
            "not the host's /etc"
        );
        assert!(
            root.join("made/here").is_dir(),
            "missing subPath created as a directory"
        );
        assert!(mounts[1].read_only);
        // A second start of the container rebinds rather than stacking mounts.
        let again = v.mounts_for(c).unwrap();
        assert_eq!(again, mounts);
    });
}

#[test]
fn preparing_again_keeps_the_data() {
    let text = pod_text(
        "  - {name: mem, emptyDir: {medium: Memory}}\n  - {name: disk, emptyDir: {}}\n",
        "    - {name: mem, mountPath: /m}\n",
    );
    with_volumes(&text, |m, v, pod_dir| {
        let mem = v.get("mem").unwrap().host_path.clone();
        std::fs::write(mem.join("state"), "kept").unwrap();
        let again = prepare_volumes(&ctx(m), pod_dir, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.get("mem").unwrap().host_path.join("state")).unwrap(),
            "kept"
        );
        let stacked = mounts_below(&std::fs::canonicalize(&mem).unwrap())
            .iter()
            .filter(|p| **p == std::fs::canonicalize(&mem).unwrap())
            .count();
        assert_eq!(stacked, 1, "no second tmpfs over the first");
        // A failing re-prepare leaves the first one's volumes alone.
        let bad = pod_text(
            "  - {name: mem, emptyDir: {medium: Memory}}\n  - {name: disk, emptyDir: {}}\n  - {name: bad, hostPath: {path: /dev/null, type: Directory}}\n",
            "    - {name: mem, mountPath: /m}\n",
        );
        let bm = load(&bad, &LoadOptions::default()).unwrap();
        let mut bc = ctx(&bm);
        bc.pod = &bm.pods[0];
        assert!(prepare_volumes(&bc, pod_dir, None).is_err());
        assert_eq!(std::fs::read_to_string(mem.join("state")).unwrap(), "kept");
    });
}

#[test]
fn a_failing_volume_undoes_the_ones_before_it() {
    let text = pod_text(
        "  - {name: mem, emptyDir: {medium: Memory}}\n  - {name: bad, hostPath: {path: /dev/null, type: Directory}}\n",
        "    - {name: mem, mountPath: /m}\n",
    );
    let e = prepare_err(&text);
    assert!(e.contains("/dev/null is not a directory"), "{e}");
}
