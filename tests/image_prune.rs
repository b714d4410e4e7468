//! `podrun image prune [-a]` (root): unreferenced layers go, unused images go with -a,
//! leftover container overlays go, and an image a pod uses always stays.
mod oci_support;
mod pod_support;
use pod_support::*;
use std::path::Path;

fn layers(w: &World) -> Vec<String> {
    std::fs::read_dir(w.data.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

fn images(w: &World) -> String {
    w.ok(&["images"])
}

fn fake_container(w: &World, id: &str, old: bool) -> std::path::PathBuf {
    let dir = w.data.join("containers").join(id);
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    if old {
        let ok = std::process::Command::new("touch")
            .args(["-d", "1 hour ago"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    dir
}

#[test]
fn prune_removes_what_no_pod_uses_and_nothing_a_pod_uses() {
    let mut w = World::with_imported_busybox("prune", oci_support::make_busybox_rootfs);
    w.extra_env.push(("PODRUN_NETWORK".into(), "none".into()));
    let base = w.data.join("busybox-rootfs");
    // A second rootfs (one more file: another layer) tagged devtest/gone:1, then the tag
    // moved to an image of the first rootfs: that layer is no image's any more.
    let other = w.data.join("other-rootfs");
    oci_support::make_busybox_rootfs(&other);
    std::fs::write(other.join("marker"), "x").unwrap();
    w.ok(&["import", other.to_str().unwrap(), "--tag", "devtest/gone:1"]);
    let before = layers(&w).len();
    w.ok(&["import", base.to_str().unwrap(), "--tag", "devtest/gone:1"]);
    assert_eq!(
        layers(&w).len(),
        before,
        "a re-tag leaves the old layer behind"
    );

    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: user\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: devtest/busybox:1\n    imagePullPolicy: Never\n    command: [sleep, '3600']\n";
    w.up_ok(pod);
    w.wait_status("default", "user", "Running", 30);
    let leftover = fake_container(&w, "leftover0123", true);
    let young = fake_container(&w, "young0123", false);

    let out = w.ok(&["image", "prune"]);
    assert_eq!(out, "", "nothing dangling");
    assert_eq!(
        layers(&w).len(),
        before - 1,
        "the unreferenced layer is gone"
    );
    assert!(
        !leftover.exists(),
        "a leftover container overlay is collected"
    );
    assert!(
        young.exists(),
        "a fresh container directory is not taken for a leftover"
    );
    let list = images(&w);
    assert!(
        list.contains("devtest/busybox") && list.contains("devtest/gone"),
        "{list}"
    );

    let gone_id = w.ok(&["images", "-q"]);
    let out = w.ok(&["image", "prune", "-a"]);
    assert_eq!(out.lines().count(), 1, "one image removed: {out}");
    assert!(
        gone_id.lines().any(|id| out.trim().starts_with(id.trim())),
        "{out} among {gone_id}"
    );
    let list = images(&w);
    assert!(
        list.contains("devtest/busybox"),
        "the pod's image stays: {list}"
    );
    assert!(!list.contains("devtest/gone"), "{list}");
    assert_eq!(w.ok(&["logs", "user"]), "");
    w.delete_all();
    let _ = std::fs::remove_dir_all(&young);
    assert!(Path::new(&w.data).exists());
}
