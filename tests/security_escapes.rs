//! Escapes that must fail: crafted image layers (`../`, absolute symlinks, hard links
//! out of the layer) through `podrun import`, and a volume subPath that is a symlink
//! pointing out of the volume.
mod pod_support;
use pod_support::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A tar whose entries are written raw (the tar crate's safe API refuses `..`).
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn import(w: &World, tar: &[u8], tag: &str) -> std::process::Output {
    let base = w.root.parent().unwrap();
    let p = base.join(format!("{tag}.tar"));
    std::fs::write(&p, tar).unwrap();
    w.run(&[
        "import",
        p.to_str().unwrap(),
        "--tag",
        &format!("evil/{tag}:1"),
    ])
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn layer_with_parent_dir_entry_is_refused_and_writes_nothing_outside() {
    let w = World::empty_store("esc-dotdot");
    let before = files_under(&w.data);
    let tar = raw_tar(&[
        ("bin/", tar::EntryType::Directory, "", b""),
        ("../../../escaped-file", tar::EntryType::Regular, "", b"x"),
    ]);
    let o = import(&w, &tar, "dotdot");
    assert!(!o.status.success(), "import of ../ succeeded");
    assert!(text(&o.stderr).contains(".."), "{}", text(&o.stderr));
    for d in [
        w.data.clone(),
        w.data.join("layers"),
        w.data.parent().unwrap().to_path_buf(),
    ] {
        assert!(
            !files_under(&d).iter().any(|f| f == "escaped-file"),
            "escaped into {}",
            d.display()
        );
    }
    let _ = before;
}

#[test]
fn layer_writing_through_an_absolute_symlink_is_refused() {
    let w = World::empty_store("esc-symlink");
    let outside = w.root.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let link = outside.to_str().unwrap().to_string();
    let tar = raw_tar(&[
        ("evil", tar::EntryType::Symlink, &link, b""),
        ("evil/pwned", tar::EntryType::Regular, "", b"x"),
    ]);
    let o = import(&w, &tar, "abssym");
    assert!(!o.status.success(), "import through a symlink succeeded");
    assert!(text(&o.stderr).contains("symlink"), "{}", text(&o.stderr));
    assert!(!outside.join("pwned").exists(), "wrote through the symlink");
}

#[test]
fn hard_links_out_of_the_layer_are_refused_or_confined() {
    let w = World::empty_store("esc-hardlink");
    let victim = w.root.parent().unwrap().join("victim");
    std::fs::write(&victim, "host secret").unwrap();
    let nlink = std::fs::metadata(&victim).unwrap().nlink();
    // Relative with ../: refused.
    let rel = format!("../../../../../../../../..{}", victim.display());
    let o = import(
        &w,
        &raw_tar(&[("hl", tar::EntryType::Link, &rel, b"")]),
        "hlrel",
    );
    assert!(!o.status.success(), "hard link with ../ imported");
    // Absolute: taken inside the layer, where it does not exist.
    let abs = victim.to_str().unwrap().to_string();
    let o = import(
        &w,
        &raw_tar(&[("hl", tar::EntryType::Link, &abs, b"")]),
        "hlabs",
    );
    assert!(!o.status.success(), "hard link to a host path imported");
    assert_eq!(
        std::fs::metadata(&victim).unwrap().nlink(),
        nlink,
        "the host file gained a link"
    );
    // An absolute symlink on its own is fine: it is resolved inside the container.
    let o = import(
        &w,
        &raw_tar(&[
            ("etc/", tar::EntryType::Directory, "", b""),
            ("etc/hostlink", tar::EntryType::Symlink, "/etc/shadow", b""),
        ]),
        "oksym",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn a_sub_path_symlink_pointing_out_of_the_volume_stays_inside() {
    let w = World::new("esc-subpath");
    // The init container plants symlinks in the shared volume; the main container
    // mounts them as subPaths.
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: subpath\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  volumes:\n  - name: data\n    emptyDir: {}\n  initContainers:\n  - name: plant\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", \"mkdir /data/etc && touch /data/etc/in-volume && ln -s /etc /data/abs && ln -s ../../../../../../../etc /data/rel\"]\n    volumeMounts:\n    - {name: data, mountPath: /data}\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", \"echo abs=$(ls /abs | wc -l) rel=$(ls /rel | wc -l); ls /abs /rel; echo DONE; sleep 3600\"]\n    volumeMounts:\n    - {name: data, mountPath: /abs, subPath: abs}\n    - {name: data, mountPath: /rel, subPath: rel}\n";
    w.up_ok(manifest);
    let log = w.wait_for(60, "DONE", || {
        let t = text(&w.run(&["logs", "subpath", "-c", "c"]).stdout);
        t.contains("DONE").then_some(t)
    });
    // Both resolve to <volume>/etc: not the host's (or the image's) /etc.
    assert!(log.contains("abs=1 rel=1"), "{log}");
    assert!(log.contains("in-volume"), "{log}");
    assert!(!log.contains("passwd"), "{log}");
}
