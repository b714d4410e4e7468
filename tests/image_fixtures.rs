//! The test images behave like the real ones: nginx serves the welcome page on port 80 and
//! quits on `nginx -s quit`, busybox has its applets and Cmd ["sh"], debian has bash.
//! Each runs chrooted in its podrun-prepared rootfs inside private namespaces. Every tag
//! an example or test names is loaded by load.sh and served by registry.sh.
mod image_support;
use image_support::*;
use std::process::Command;

fn in_namespaces(rootfs: &std::path::Path, script: &str) -> (bool, String) {
    require_tool("unshare");
    let r = rootfs.display();
    let full = format!(
        "set -e; mount --make-rprivate /; mount --rbind /dev {r}/dev; mount -t proc proc {r}/proc; ip link set lo up; {script}"
    );
    let o = Command::new("timeout")
        .args([
            "30",
            "unshare",
            "-m",
            "-n",
            "-p",
            "-f",
            "--kill-child",
            "sh",
            "-c",
            &full,
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn nginx_serves_the_welcome_page_and_quits() {
    let nginx = fixture("nginx");
    let t = TempDir::new("fx-nginx");
    let data = t.path().join("data");
    ok(&data, &["import", nginx.to_str().unwrap()]);
    let id = format!("fx-nginx-{}", std::process::id());
    ok(&data, &["image", "mount", "nginx:1.17.1", &id]);
    let r = data.join("containers").join(&id).join("rootfs");
    let c = format!("chroot {}", r.display());
    let (ok_, out) = in_namespaces(
        &r,
        &format!(
            "{c} /usr/sbin/nginx -g 'daemon off;' & \
             for i in $(seq 50); do {c} wget -qO- http://127.0.0.1:80/ > /tmp/page-$$ 2>/dev/null && break; sleep 0.1; done; \
             cat /tmp/page-$$; rm -f /tmp/page-$$; \
             {c} sh -c 'echo postStart > /usr/share/nginx/html/index.html'; {c} wget -qO- http://127.0.0.1/; \
             {c} nginx -s quit; wait $!; echo nginx-exit=$?"
        ),
    );
    assert!(ok_, "{out}");
    assert!(out.contains("<title>Welcome to nginx!</title>"), "{out}");
    assert!(
        out.contains("postStart"),
        "exec hook rewrote the page: {out}"
    );
    assert!(out.contains("nginx-exit=0"), "{out}");
    // Access log went to stdout, as in the official image.
    assert!(out.contains("\"GET / HTTP/1.1\" 200"), "{out}");
    ok(&data, &["image", "unmount", &id]);
}

#[test]
fn busybox_has_its_applets_and_runs_sh() {
    let busybox = fixture("busybox");
    let t = TempDir::new("fx-busybox");
    let data = t.path().join("data");
    ok(&data, &["import", busybox.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&data, &["image", "inspect", "busybox:1.30"])).unwrap();
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    let id = format!("fx-bb-{}", std::process::id());
    ok(&data, &["image", "mount", "busybox:1.30", &id]);
    let r = data.join("containers").join(&id).join("rootfs");
    let (ok_, out) = in_namespaces(
        &r,
        &format!(
            "chroot {} sh -c 'date > /tmp/hello.txt; tail /tmp/hello.txt >/dev/null; /bin/cat /etc/passwd | head -1; echo $((1+2)); which wget nslookup sleep'",
            r.display()
        ),
    );
    assert!(ok_, "{out}");
    assert!(out.contains("root:x:0:0"), "{out}");
    assert!(out.contains("\n3\n"), "{out}");
    assert!(
        out.contains("/usr/bin/wget") && out.contains("/bin/sleep"),
        "{out}"
    );
    ok(&data, &["image", "unmount", &id]);
}

#[test]
fn debian_is_a_real_debian_with_bash() {
    let debian = fixture("debian");
    let t = TempDir::new("fx-debian");
    let data = t.path().join("data");
    ok(&data, &["import", debian.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&data, &["image", "inspect", "debian"])).unwrap();
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["bash"]));
    let id = format!("fx-deb-{}", std::process::id());
    ok(&data, &["image", "mount", "debian", &id]);
    let r = data.join("containers").join(&id).join("rootfs");
    let (ok_, out) = in_namespaces(
        &r,
        &format!(
            "chroot {} bash -c 'echo Hello from the debian container > /tmp/x; cat /tmp/x; cat /etc/debian_version; dpkg -s bash | grep Status'",
            r.display()
        ),
    );
    assert!(ok_, "{out}");
    assert!(out.contains("Hello from the debian container"), "{out}");
    assert!(out.contains("Status: install ok installed"), "{out}");
    ok(&data, &["image", "unmount", &id]);
}

/// Every `image:` the seed examples and the tests name, as full docker.io references
/// (`nginx` → docker.io/library/nginx:latest); only the fixture families, and no
/// registry-qualified or made-up names.
fn images_named_by_examples_and_tests() -> std::collections::BTreeSet<String> {
    let mut dirs = vec![root().join("tests/seed-examples"), root().join("tests")];
    let shared = root().join("../shared/seed-examples");
    if shared.is_dir() {
        dirs.push(shared);
    }
    let mut out = std::collections::BTreeSet::new();
    for d in dirs {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            for line in text.lines() {
                let Some(rest) = line.trim_start().strip_prefix("image: ") else {
                    continue;
                };
                let name = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                let family = name.split(':').next().unwrap_or("");
                if ["busybox", "nginx", "debian"].contains(&family) {
                    out.insert(podrun::image::Reference::parse(name).unwrap().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn every_tag_the_examples_and_tests_name_is_loaded_and_served() {
    for f in ["busybox", "nginx", "debian"] {
        fixture(f);
    }
    let wanted = images_named_by_examples_and_tests();
    assert!(
        wanted.contains("docker.io/library/nginx:latest"),
        "two-containers.yaml names nginx: {wanted:?}"
    );
    let t = TempDir::new("fixture-tags");
    let data = t.path().join("data");
    let o = std::process::Command::new("bash")
        .arg(root().join("rootfs-fixtures/load.sh"))
        .arg(PODRUN)
        .env("PODRUN_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "load.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for name in &wanted {
        let o = podrun(&data, &["image", "inspect", name]);
        assert!(o.status.success(), "{name} is not loaded by load.sh");
    }
    // registry.sh serves each of them (and says docker.io goes only through it).
    let regdata = t.path().join("reg");
    let st = std::process::Command::new("bash")
        .arg(root().join("rootfs-fixtures/registry.sh"))
        .args(["start", regdata.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let addr = std::fs::read_to_string(regdata.join("fixture-registry/addr")).unwrap();
    let cfg = std::fs::read_to_string(regdata.join("registries.json")).unwrap();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|name| {
            let r = podrun::image::Reference::parse(name).unwrap();
            let url = format!(
                "http://{}/v2/{}/manifests/{}",
                addr.trim(),
                r.repository,
                r.tag.as_deref().unwrap_or("latest")
            );
            let ok = ureq::head(&url)
                .header("Accept", "application/vnd.oci.image.manifest.v1+json")
                .call()
                .is_ok_and(|resp| resp.status().as_u16() == 200);
            !ok
        })
        .collect();
    let _ = std::process::Command::new("bash")
        .arg(root().join("rootfs-fixtures/registry.sh"))
        .args(["stop", regdata.to_str().unwrap()])
        .status();
    assert!(missing.is_empty(), "registry.sh does not serve {missing:?}");
    assert!(cfg.contains("mirrorOnly"), "{cfg}");
}
