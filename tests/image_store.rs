//! The local image store through the CLI: import of every format, `images`, `rmi`,
//! `image inspect`, and per-container rootfs (overlay and copy) that never changes the
//! image's layers.
mod image_support;
use image_support::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

#[test]
fn import_oci_layout_dir_and_list_like_docker() {
    let busybox = fixture("busybox");
    let nginx = fixture("nginx");
    let t = TempDir::new("img-import");
    let data = t.path().join("data");
    let out = ok(&data, &["import", busybox.to_str().unwrap()]);
    assert!(
        out.starts_with("docker.io/library/busybox:1.30 sha256:"),
        "{out}"
    );
    ok(&data, &["import", nginx.to_str().unwrap()]);
    let list = ok(&data, &["images"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let busy: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&busy[..2], ["busybox", "1.30"]);
    assert_eq!(busy[2].len(), 12, "short image id: {list}");
    assert!(lines[2].starts_with("nginx "), "{list}");
    assert!(list.contains("years ago"), "{list}");

    // The store itself is an OCI layout whose index names each image by full reference.
    let idx = read_json(&data.join("images/index.json"));
    let names: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:1.30",
            "docker.io/library/nginx:1.17.1"
        ]
    );
    assert!(data.join("images/oci-layout").exists());

    // Same layout digest as the source: content addressed, nothing rewritten.
    let insp: serde_json::Value =
        serde_json::from_str(&ok(&data, &["image", "inspect", "nginx:1.17.1"])).unwrap();
    assert_eq!(
        insp[0]["Manifest"]["Digest"],
        layout_manifest_digest(&nginx)
    );
    assert_eq!(
        insp[0]["Config"]["Cmd"],
        serde_json::json!(["nginx", "-g", "daemon off;"])
    );
    assert_eq!(insp[0]["Config"]["StopSignal"], "SIGTERM");
    assert_eq!(insp[0]["Layers"].as_array().unwrap().len(), 2);

    // Importing again is a no-op that keeps one entry per tag.
    ok(&data, &["import", nginx.to_str().unwrap()]);
    assert_eq!(ok(&data, &["images", "-q"]).lines().count(), 2);
}

#[test]
fn import_layout_tar_docker_archive_rootfs_dir_and_tarball() {
    let busybox = fixture("busybox");
    let t = TempDir::new("img-formats");
    let data = t.path().join("data");

    // OCI layout as a tar.
    let layout_tar = t.path().join("layout.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&busybox)
        .arg("-cf")
        .arg(&layout_tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(
        &data,
        &[
            "import",
            layout_tar.to_str().unwrap(),
            "--tag",
            "layout-tar:v1",
        ],
    );
    assert!(out.starts_with("docker.io/library/layout-tar:v1 "), "{out}");

    // docker-archive (docker save format), written by skopeo.
    require_tool("skopeo");
    let archive = t.path().join("docker.tar");
    let o = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:1.30", busybox.display()))
        .arg(format!(
            "docker-archive:{}:saved/busybox:1.30",
            archive.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = ok(&data, &["import", archive.to_str().unwrap()]);
    assert!(out.starts_with("docker.io/saved/busybox:1.30 "), "{out}");

    // A plain rootfs directory (with a hard link, a fifo, a setuid file) needs --tag.
    let rootfs = t.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::fs::hard_link(rootfs.join("bin/busybox"), rootfs.join("bin/ls")).unwrap();
    std::fs::write(rootfs.join("suid"), b"x").unwrap();
    // chown first: it clears setuid.
    std::os::unix::fs::chown(rootfs.join("suid"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(
        rootfs.join("suid"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    nix::unistd::mkfifo(
        &rootfs.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let o = podrun(&data, &["import", rootfs.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tag"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(
        &data,
        &[
            "import",
            rootfs.to_str().unwrap(),
            "--tag",
            "localhost:5000/mine:dev",
            "--cmd",
            "[\"sh\"]",
            "--env",
            "A=1",
            "--expose",
            "8080",
            "--workdir",
            "/srv",
        ],
    );
    let insp: serde_json::Value =
        serde_json::from_str(&ok(&data, &["image", "inspect", "localhost:5000/mine:dev"])).unwrap();
    let cfg = &insp[0]["Config"];
    assert_eq!(cfg["Cmd"], serde_json::json!(["sh"]));
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("A=1")));
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(cfg["WorkingDir"], "/srv");
    let diff = insp[0]["Layers"][0]["diffId"].as_str().unwrap();
    let layer = data
        .join("layers")
        .join(diff.strip_prefix("sha256:").unwrap());
    let m = std::fs::metadata(layer.join("suid")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4755, 1234, 5678));
    assert_eq!(
        std::fs::metadata(layer.join("bin/ls")).unwrap().ino(),
        std::fs::metadata(layer.join("bin/busybox")).unwrap().ino(),
        "hard link kept"
    );
    assert!(std::fs::symlink_metadata(layer.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());

    // A rootfs tarball (gzip).
    let tgz = t.path().join("rootfs.tgz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-czf")
        .arg(&tgz)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    ok(
        &data,
        &["import", tgz.to_str().unwrap(), "--tag", "tarball"],
    );

    let list = ok(&data, &["images"]);
    for repo in [
        "layout-tar",
        "saved/busybox",
        "localhost:5000/mine",
        "tarball",
    ] {
        assert!(
            list.lines()
                .any(|l| l.split_whitespace().next() == Some(repo)),
            "{repo} missing from:\n{list}"
        );
    }
}

#[test]
fn rootfs_writes_never_touch_the_layers_and_rmi_waits_for_release() {
    let nginx = fixture("nginx");
    let t = TempDir::new("img-rootfs");
    let data = t.path().join("data");
    ok(&data, &["import", nginx.to_str().unwrap()]);
    let layers_before = tree_hash(&data.join("layers"));

    let id = format!("t{}", std::process::id());
    let out = ok(&data, &["image", "mount", "nginx:1.17.1", &id]);
    assert!(out.contains(" overlay"), "expected an overlay mount: {out}");
    let rootfs = data.join("containers").join(&id).join("rootfs");
    // The container writes, deletes and chmods in its root.
    std::fs::write(rootfs.join("usr/share/nginx/html/index.html"), b"changed").unwrap();
    std::fs::remove_file(rootfs.join("etc/nginx/mime.types")).unwrap();
    std::fs::remove_dir_all(rootfs.join("etc/nginx/conf.d")).unwrap();
    std::fs::write(rootfs.join("tmp/new"), b"new").unwrap();
    std::fs::set_permissions(
        rootfs.join("bin/busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    assert_eq!(
        tree_hash(&data.join("layers")),
        layers_before,
        "layers changed"
    );

    // rmi is refused while the container uses the image, with a clear message.
    let o = podrun(&data, &["rmi", "nginx:1.17.1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("conflict") && err.contains(&id), "{err}");
    assert!(ok(&data, &["images"]).contains("nginx"));

    ok(&data, &["image", "unmount", &id]);
    assert!(!data.join("containers").join(&id).exists());
    assert_eq!(tree_hash(&data.join("layers")), layers_before);
    let out = ok(&data, &["rmi", "nginx:1.17.1"]);
    assert!(
        out.contains("Untagged: docker.io/library/nginx:1.17.1"),
        "{out}"
    );
    assert!(!ok(&data, &["images"]).contains("nginx"));
    // Nothing of the image is left: no blobs, no layers.
    assert_eq!(
        std::fs::read_dir(data.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(data.join("layers")).unwrap().count(),
        0,
        "unpacked layers removed"
    );
}

#[test]
fn copy_fallback_applies_whiteouts_and_opaque_dirs() {
    let busybox = fixture("busybox");
    let t = TempDir::new("img-copy");
    let data = t.path().join("data");
    ok(&data, &["import", busybox.to_str().unwrap()]);
    // A second layer deleting a file (whiteout) and replacing /etc (opaque dir), as a
    // layout written with OCI whiteout entries.
    let upper = t.path().join("upper-layer");
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::create_dir_all(upper.join("bin")).unwrap();
    std::fs::write(upper.join("etc/.wh..wh..opq"), b"").unwrap();
    std::fs::write(upper.join("etc/only"), b"only\n").unwrap();
    std::fs::write(upper.join("bin/.wh.sh"), b"").unwrap();
    let base = t.path().join("base-layer");
    std::fs::create_dir_all(&base).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&base)
        .arg("-xf")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            let mut child_in = c.stdin.take().unwrap();
            let layer = fixture_layer_tar(&busybox);
            std::io::Write::write_all(&mut child_in, &layer).unwrap();
            drop(child_in);
            c.wait()
        })
        .unwrap();
    assert!(st.success());
    let layout = t.path().join("layout");
    let st = Command::new("python3")
        .arg(root().join("rootfs-fixtures/mkoci.py"))
        .args([
            "--out",
            layout.to_str().unwrap(),
            "--name",
            "docker.io/library/wh:1",
        ])
        .args([
            "--layer",
            base.to_str().unwrap(),
            "--layer",
            upper.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    ok(&data, &["import", layout.to_str().unwrap()]);

    for (mode, env) in [
        ("overlay", None),
        ("copy", Some(("PODRUN_ROOTFS_MODE", "copy"))),
    ] {
        let id = format!("wh-{mode}-{}", std::process::id());
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let o = podrun_env(&data, &["image", "mount", "wh:1", &id], &env);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(&format!(" {mode}")), "{out}");
        let r = data.join("containers").join(&id).join("rootfs");
        assert!(
            !r.join("bin/sh").exists() && std::fs::symlink_metadata(r.join("bin/sh")).is_err(),
            "{mode}: whiteout hides bin/sh"
        );
        assert!(r.join("bin/busybox").exists());
        let etc: Vec<_> = std::fs::read_dir(r.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            etc,
            ["only"],
            "{mode}: opaque /etc shows only the upper layer"
        );
        ok(&data, &["image", "unmount", &id]);
    }
    // In the unpacked layer itself the whiteout is an overlay whiteout (0/0 char device).
    let insp: serde_json::Value =
        serde_json::from_str(&ok(&data, &["image", "inspect", "wh:1"])).unwrap();
    let top = insp[0]["Layers"][1]["diffId"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let wh = std::fs::symlink_metadata(data.join("layers").join(top).join("bin/sh")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
}

/// The uncompressed tar of a one-layer fixture layout's layer.
fn fixture_layer_tar(layout: &std::path::Path) -> Vec<u8> {
    let idx = read_json(&layout.join("index.json"));
    let m = idx["manifests"][0]["digest"].as_str().unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let manifest = read_json(&blob(m));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let gz = std::fs::read(blob(layer)).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
    out
}

#[test]
fn rmi_of_unknown_image_and_inspect_errors() {
    let t = TempDir::new("img-err");
    let data = t.path().join("data");
    let o = podrun(&data, &["rmi", "nope:1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
    let o = podrun(&data, &["image", "inspect", "nope:1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such image: nope:1"));
    let o = podrun(&data, &["pull", "Bad:Ref:"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid image reference"));
}

#[test]
fn many_layers_overflow_mount_options_and_still_mount_overlay() {
    require_tool("python3");
    let t = TempDir::new("img-many-layers");
    // 70 layers: the lowerdir option (70 × ~130 bytes) no longer fits in one page.
    let mut args = vec![
        "--out".to_string(),
        t.path().join("layout").display().to_string(),
        "--name".into(),
        "docker.io/library/many:1".into(),
    ];
    for i in 0..70 {
        let d = t.path().join(format!("l{i}"));
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(d.join("layers").join(format!("{i}")), format!("{i}\n")).unwrap();
        std::fs::write(d.join("top"), format!("{i}\n")).unwrap();
        args.push("--layer".into());
        args.push(d.display().to_string());
    }
    let st = Command::new("python3")
        .arg(root().join("rootfs-fixtures/mkoci.py"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let data = t.path().join("data");
    ok(
        &data,
        &["import", t.path().join("layout").to_str().unwrap()],
    );
    let id = format!("many-{}", std::process::id());
    let out = ok(&data, &["image", "mount", "many:1", &id]);
    assert!(out.trim_end().ends_with(" overlay"), "{out}");
    let r = data.join("containers").join(&id).join("rootfs");
    assert_eq!(std::fs::read_dir(r.join("layers")).unwrap().count(), 70);
    assert_eq!(
        std::fs::read_to_string(r.join("top")).unwrap(),
        "69\n",
        "top layer wins"
    );
    ok(&data, &["image", "unmount", &id]);
}

#[test]
fn concurrent_imports_of_the_same_layers_unpack_each_once() {
    let nginx = fixture("nginx");
    let t = TempDir::new("img-concurrent");
    let data2 = t.path().join("data2");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let data2 = data2.clone();
            let nginx = nginx.clone();
            std::thread::spawn(move || {
                Command::new(PODRUN)
                    .arg("--data-dir")
                    .arg(&data2)
                    .args(["import", "-q", nginx.to_str().unwrap(), "--tag"])
                    .arg(format!("copy{i}:1"))
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let o = h.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let names: Vec<String> = std::fs::read_dir(data2.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "two layers, no leftovers: {names:?}");
    assert_eq!(
        ok(&data2, &["images", "-q"]).lines().count(),
        1,
        "one image id"
    );
    assert_eq!(ok(&data2, &["images"]).lines().count(), 5, "four tags");
}

/// Unmounts the test's own overlay on drop.
struct Mounted(std::path::PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn copy_fallback_is_chosen_automatically_where_overlay_cannot_mount() {
    let busybox = fixture("busybox");
    let t = TempDir::new("img-auto-copy");
    // A data dir on overlayfs: overlay cannot use it as an upper dir.
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
    }
    let m = t.path().join("m");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        t.path().join("l").display(),
        t.path().join("u").display(),
        t.path().join("w").display()
    );
    nix::mount::mount(
        Some("overlay"),
        &m,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    let _guard = Mounted(m.clone());
    let data = m.join("data");
    ok(&data, &["import", busybox.to_str().unwrap()]);
    let id = format!("auto-{}", std::process::id());
    let out = ok(&data, &["image", "mount", "busybox:1.30", &id]);
    assert!(
        out.contains(" copy (overlay mount failed"),
        "fallback reported: {out}"
    );
    let r = data.join("containers").join(&id).join("rootfs");
    assert!(r.join("bin/busybox").is_file());
    let v: serde_json::Value =
        serde_json::from_str(&ok(&data, &["image", "inspect", "busybox:1.30"])).unwrap();
    assert_eq!(v[0]["UsedBy"], serde_json::json!([id.clone()]));
    ok(&data, &["image", "unmount", &id]);
    assert!(!data.join("containers").join(&id).exists());
}

#[test]
fn prepare_is_idempotent_and_remounts_after_a_lost_mount() {
    let busybox = fixture("busybox");
    let t = TempDir::new("img-remount");
    let data = t.path().join("data");
    ok(&data, &["import", busybox.to_str().unwrap()]);
    let id = format!("re-{}", std::process::id());
    let first = ok(&data, &["image", "mount", "busybox:1.30", &id]);
    assert_eq!(
        ok(&data, &["image", "mount", "busybox:1.30", &id]),
        first,
        "idempotent"
    );
    let rootfs = data.join("containers").join(&id).join("rootfs");
    std::fs::write(rootfs.join("etc/changed"), b"kept\n").unwrap();
    // As after a reboot: the mount is gone, the upper dir is not.
    nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(!rootfs.join("etc/changed").exists());
    ok(&data, &["image", "mount", "busybox:1.30", &id]);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/changed")).unwrap(),
        "kept\n"
    );
    // Another image for the same container id is refused.
    let nginx = fixture("nginx");
    ok(&data, &["import", nginx.to_str().unwrap()]);
    let o = podrun(&data, &["image", "mount", "nginx:1.17.1", &id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already prepared"));
    ok(&data, &["image", "unmount", &id]);
    ok(&data, &["image", "unmount", &id]);
}
