//! The test images behave like the real ones: nginx serves the welcome page on port 80 and
//! quits on `nginx -s quit`, busybox has its applets and Cmd ["sh"], debian has bash.
//! Each runs chrooted in its podrun-prepared rootfs inside private namespaces.
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
