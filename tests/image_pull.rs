//! `podrun pull` against a real registry on loopback (Debian's docker-registry), with the
//! fixture images pushed by skopeo: plain pulls, pulls by digest, a docker.io mirror, an
//! image index, bearer-token auth, a tampered blob, and a pull killed half way.
mod image_support;
use image_support::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config_digest(data: &Path, image: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(data, &["image", "inspect", image])).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

#[test]
fn pull_from_loopback_registry_by_tag_and_digest() {
    let nginx = fixture("nginx");
    let t = TempDir::new("pull-basic");
    let reg = Registry::start(t.path());
    reg.push(&nginx, "1.17.1", "library/nginx:1.17.1");
    let data = t.path().join("data");
    let r = format!("{}/library/nginx:1.17.1", reg.host());
    let out = ok(&data, &["pull", &r]);
    let want = layout_manifest_digest(&nginx);
    assert!(
        out.contains(&want),
        "pulled manifest is the pushed one: {out}"
    );
    let list = ok(&data, &["images"]);
    assert!(
        list.contains(&format!("{}/library/nginx", reg.host())),
        "{list}"
    );
    assert!(list.contains("1.17.1"));

    // The pulled image is the imported one: same config, same layer contents.
    let imported = t.path().join("imported");
    ok(&imported, &["import", nginx.to_str().unwrap()]);
    assert_eq!(
        config_digest(&data, &r),
        config_digest(&imported, "nginx:1.17.1")
    );
    assert_eq!(
        tree_hash(&data.join("layers")),
        tree_hash(&imported.join("layers"))
    );

    // By digest; and pulling again is cheap and idempotent.
    let by_digest = format!("{}/library/nginx@{want}", reg.host());
    ok(&data, &["pull", &by_digest]);
    let start = Instant::now();
    ok(&data, &["pull", "-q", &r]);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        data.join("tmp").read_dir().unwrap().next().is_none(),
        "no temp files left"
    );
}

#[test]
fn docker_io_through_a_mirror_and_an_index_picks_linux_amd64() {
    let busybox = fixture("busybox");
    let nginx = fixture("nginx");
    let t = TempDir::new("pull-mirror");
    let reg = Registry::start(t.path());
    reg.push(&busybox, "1.30", "library/busybox:1.30");
    reg.push(&nginx, "1.17.1", "library/nginx:1.17.1");
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A dead mirror first: podrun falls through to the next one.
    let dead = free_port();
    std::fs::write(
        data.join("registries.json"),
        format!(
            r#"{{"mirrors": {{"docker.io": ["http://127.0.0.1:{dead}", "http://{}"]}}, "mirrorOnly": ["docker.io"]}}"#,
            reg.host()
        ),
    )
    .unwrap();
    ok(&data, &["pull", "busybox:1.30"]);
    ok(&data, &["pull", "nginx:1.17.1"]);
    let list = ok(&data, &["images"]);
    let repos: Vec<&str> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(repos, ["busybox", "nginx"], "{list}");

    // An OCI image index with arm64 → busybox and amd64 → nginx.
    let manifest = |layout: &Path| {
        let d = layout_manifest_digest(layout);
        let size = std::fs::metadata(
            layout
                .join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
        .len();
        (d, size)
    };
    let (bd, bs) = manifest(&busybox);
    let (nd, ns) = manifest(&nginx);
    reg.push(&busybox, "1.30", "multi/app:busybox");
    reg.push(&nginx, "1.17.1", "multi/app:nginx");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": bd, "size": bs,
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": nd, "size": ns,
             "platform": {"architecture": "amd64", "os": "linux"}},
        ]
    });
    let resp = ureq::put(&format!(
        "http://{}/v2/multi/app/manifests/both",
        reg.host()
    ))
    .header("Content-Type", "application/vnd.oci.image.index.v1+json")
    .send(serde_json::to_vec(&index).unwrap())
    .expect("PUT image index");
    assert_eq!(resp.status().as_u16(), 201);
    // Through the mirror too: docker.io/multi/app.
    ok(&data, &["pull", "multi/app:both"]);
    assert_eq!(
        config_digest(&data, "multi/app:both"),
        config_digest(&data, "nginx:1.17.1"),
        "linux/amd64 entry chosen"
    );
}

#[test]
fn tampered_blob_is_rejected_and_leaves_nothing() {
    let busybox = fixture("busybox");
    let t = TempDir::new("pull-tamper");
    let reg = Registry::start(t.path());
    reg.push(&busybox, "1.30", "tamper/busybox:1.30");
    let manifest = read_json(
        &busybox.join("blobs/sha256").join(
            layout_manifest_digest(&busybox)
                .strip_prefix("sha256:")
                .unwrap(),
        ),
    );
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let f = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&f, &bytes).unwrap();

    let data = t.path().join("data");
    let o = podrun(
        &data,
        &["pull", &format!("{}/tamper/busybox:1.30", reg.host())],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert!(ok(&data, &["images", "-q"]).is_empty());
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert!(!data.join("images/blobs/sha256").join(hex).exists());
    let layers: Vec<_> = std::fs::read_dir(data.join("layers")).unwrap().collect();
    assert!(layers.is_empty(), "no layer dir left: {layers:?}");
    assert!(
        data.join("tmp").read_dir().unwrap().next().is_none(),
        "no temp blob left"
    );
}

/// An HTTP proxy in front of the registry that can throttle responses and demand a
/// bearer token (answering its own token endpoint), one request per connection.
struct Proxy {
    port: u16,
}

impl Proxy {
    fn start(upstream: u16, bytes_per_sec: Option<usize>, token: Option<&'static str>) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                std::thread::spawn(move || {
                    let _ = serve(c, upstream, port, bytes_per_sec, token);
                });
            }
        });
        Proxy { port }
    }
}

fn serve(
    mut c: TcpStream,
    upstream: u16,
    me: u16,
    rate: Option<usize>,
    token: Option<&str>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut b)? == 0 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    if let Some(tok) = token {
        if path.starts_with("/token") {
            assert!(
                path.contains("scope=repository%3Aauth%2Fbusybox%3Apull"),
                "{path}"
            );
            let body = format!(r#"{{"token":"{tok}"}}"#);
            write!(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
            return Ok(());
        }
        let authorized = text.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("authorization:")
                && l.contains(&format!("Bearer {tok}"))
        });
        if !authorized {
            write!(c, "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://127.0.0.1:{me}/token\",service=\"test-registry\",scope=\"repository:auth/busybox:pull\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut fwd = String::new();
    for l in text.split("\r\n") {
        if l.to_ascii_lowercase().starts_with("connection:") || l.is_empty() {
            continue;
        }
        fwd.push_str(l);
        fwd.push_str("\r\n");
    }
    fwd.push_str("Connection: close\r\n\r\n");
    up.write_all(fwd.as_bytes())?;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        c.write_all(&buf[..n])?;
        if let Some(r) = rate {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / r as f64));
        }
    }
}

#[test]
fn bearer_token_challenge_is_answered() {
    let busybox = fixture("busybox");
    let t = TempDir::new("pull-auth");
    let reg = Registry::start(t.path());
    reg.push(&busybox, "1.30", "auth/busybox:1.30");
    let proxy = Proxy::start(reg.port, None, Some("s3cret"));
    let data = t.path().join("data");
    ok(
        &data,
        &[
            "pull",
            &format!("127.0.0.1:{}/auth/busybox:1.30", proxy.port),
        ],
    );
    assert!(ok(&data, &["images"]).contains("auth/busybox"));
}

#[test]
fn pull_killed_half_way_leaves_store_consistent_and_retry_completes() {
    require_tool("python3");
    let t = TempDir::new("pull-kill");
    // A 24 MB incompressible layer, served at 8 MB/s: the pull takes ~3 s.
    let rootfs = t.path().join("big-rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let mut rnd = std::fs::File::open("/dev/urandom").unwrap();
    let mut big = vec![0u8; 24 << 20];
    rnd.read_exact(&mut big).unwrap();
    std::fs::write(rootfs.join("big.bin"), &big).unwrap();
    let layout = t.path().join("layout");
    let st = Command::new("python3")
        .arg(root().join("rootfs-fixtures/mkoci.py"))
        .args([
            "--out",
            layout.to_str().unwrap(),
            "--name",
            "docker.io/library/big:1",
        ])
        .args(["--layer", rootfs.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let reg = Registry::start(t.path());
    reg.push(&layout, "1", "big/blob:1");
    let proxy = Proxy::start(reg.port, Some(8 << 20), None);
    let data = t.path().join("data");
    let r = format!("127.0.0.1:{}/big/blob:1", proxy.port);

    let mut child = Command::new(PODRUN)
        .arg("--data-dir")
        .arg(&data)
        .args(["pull", "-q", &r])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a partial blob is being written, then SIGKILL the pull.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let partial = std::fs::read_dir(data.join("tmp"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > (4 << 20)).unwrap_or(false))
            })
            .unwrap_or(false);
        if partial {
            break;
        }
        assert!(Instant::now() < deadline, "pull never started writing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "pull finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Consistent: no tag, no visible half blob or half layer.
    assert!(ok(&data, &["images", "-q"]).is_empty());
    let manifest = read_json(
        &layout.join("blobs/sha256").join(
            layout_manifest_digest(&layout)
                .strip_prefix("sha256:")
                .unwrap(),
        ),
    );
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert!(!data
        .join("images/blobs/sha256")
        .join(layer.strip_prefix("sha256:").unwrap())
        .exists());
    let visible_layers: Vec<_> = std::fs::read_dir(data.join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(visible_layers.is_empty());

    // The retry completes and cleans up what the killed pull left.
    ok(&data, &["pull", "-q", &r]);
    assert!(ok(&data, &["images"]).contains("big/blob"));
    assert!(
        data.join("tmp").read_dir().unwrap().next().is_none(),
        "stale temp blob removed"
    );
    let hidden: Vec<_> = std::fs::read_dir(data.join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "stale unpack dir removed: {hidden:?}");
    let v: serde_json::Value = serde_json::from_str(&ok(&data, &["image", "inspect", &r])).unwrap();
    let diff = v[0]["Layers"][0]["diffId"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read(data.join("layers").join(diff).join("big.bin")).unwrap(),
        big
    );
}

#[test]
fn docker_schema2_manifests_pull_like_oci_ones() {
    require_tool("skopeo");
    let busybox = fixture("busybox");
    let t = TempDir::new("pull-v2s2");
    let reg = Registry::start(t.path());
    let o = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
        ])
        .arg(format!("oci:{}:1.30", busybox.display()))
        .arg(format!("docker://{}/v2s2/busybox:1.30", reg.host()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let data = t.path().join("data");
    let r = format!("{}/v2s2/busybox:1.30", reg.host());
    ok(&data, &["pull", &r]);
    let v: serde_json::Value = serde_json::from_str(&ok(&data, &["image", "inspect", &r])).unwrap();
    assert_eq!(
        v[0]["Manifest"]["MediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    let id = format!("v2s2-{}", std::process::id());
    let out = ok(&data, &["image", "mount", &r, &id]);
    assert!(out.contains("overlay"));
    assert!(data
        .join("containers")
        .join(&id)
        .join("rootfs/bin/busybox")
        .exists());
    ok(&data, &["image", "unmount", &id]);
}

/// A network namespace with only loopback, made by the test (`ip netns add`), with a
/// resolv.conf naming a fake DNS server inside it that records every query it gets and
/// answers NXDOMAIN. Everything it started is killed by pid, the namespace deleted, on drop.
struct LoopbackOnlyNetns {
    name: String,
    etc: std::path::PathBuf,
    queries: std::path::PathBuf,
    children: Vec<std::process::Child>,
    /// /etc/netns did not exist before: remove it again when empty.
    made_etc_netns: bool,
}

const FAKE_DNS: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(sys.argv[1], "a").close()
while True:
    q, peer = s.recvfrom(4096)
    labels, i = [], 12
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace")); i += 1 + q[i]
    with open(sys.argv[1], "a") as f:
        f.write(".".join(labels) + "\n")
    # NXDOMAIN at once, so a resolver that asks does not wait for a timeout.
    s.sendto(q[:2] + b"\x81\x83" + q[4:6] + b"\x00\x00\x00\x00\x00\x00" + q[12:i + 5], peer)
"#;

impl LoopbackOnlyNetns {
    fn new(dir: &Path) -> LoopbackOnlyNetns {
        require_tool("ip");
        let name = format!("podrun-mo-{}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        let etc = Path::new("/etc/netns").join(&name);
        let made_etc_netns = !Path::new("/etc/netns").exists();
        let mut ns = LoopbackOnlyNetns {
            name,
            etc: etc.clone(),
            queries: dir.join("dns-queries"),
            children: Vec::new(),
            made_etc_netns,
        };
        assert!(ns
            .exec(&["ip", "link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success());
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n",
        )
        .unwrap();
        let dns = ns
            .exec(&["python3", "-c", FAKE_DNS, ns.queries.to_str().unwrap()])
            .spawn()
            .unwrap();
        ns.children.push(dns);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ns.queries.exists() {
            assert!(Instant::now() < deadline, "fake DNS server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        ns
    }

    fn exec(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Names the fake DNS server was asked for so far.
    fn queries(&self) -> String {
        std::fs::read_to_string(&self.queries).unwrap_or_default()
    }

    /// docker-registry inside the namespace on 127.0.0.1:5000, with nothing pushed.
    fn start_empty_registry(&mut self, dir: &Path) {
        let cfg = dir.join("ns-registry.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\n",
                dir.join("ns-registry").display()
            ),
        )
        .unwrap();
        let child = self
            .exec(&["docker-registry", "serve", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = self
                .exec(&["bash", "-c", "echo > /dev/tcp/127.0.0.1/5000"])
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if up.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "registry in the netns did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LoopbackOnlyNetns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.etc);
        if self.made_etc_netns {
            let _ = std::fs::remove_dir("/etc/netns");
        }
    }
}

#[test]
fn mirror_only_pull_of_an_image_no_mirror_has_names_the_mirror_and_never_looks_up_docker_io() {
    require_tool("docker-registry");
    let t = TempDir::new("pull-mirror-only");
    let mut ns = LoopbackOnlyNetns::new(t.path());
    ns.start_empty_registry(t.path());
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let pull = |cfg: &str| {
        std::fs::write(data.join("registries.json"), cfg).unwrap();
        ns.exec(&[
            PODRUN,
            "--data-dir",
            data.to_str().unwrap(),
            "pull",
            "-q",
            "nope:1",
        ])
        .env_remove("PODRUN_REGISTRIES_CONFIG")
        .env("CONTAINERS_REGISTRIES_CONF", data.join("registries.conf"))
        .output()
        .unwrap()
    };
    let o = pull(
        r#"{"mirrors": {"docker.io": ["http://127.0.0.1:5000"]}, "mirrorOnly": ["docker.io"]}"#,
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("http://127.0.0.1:5000"),
        "names the mirror: {err}"
    );
    assert!(
        err.contains("mirrorOnly"),
        "says why docker.io was not asked: {err}"
    );
    assert!(!err.contains("registry-1.docker.io"), "{err}");
    assert_eq!(ns.queries(), "", "no name was looked up");
    // Without mirrorOnly the same pull falls back to docker.io and asks DNS for it: the
    // fake server sees that, so the assertion above can fail.
    let o = pull(r#"{"mirrors": {"docker.io": ["http://127.0.0.1:5000"]}}"#);
    assert!(!o.status.success());
    assert!(
        ns.queries().contains("registry-1.docker.io"),
        "{}",
        ns.queries()
    );
    // Mirror-only with no mirror at all: refused before any connection, saying what to add.
    let o = pull(r#"{"mirrorOnly": ["docker.io"]}"#);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success());
    assert!(
        err.contains("none is configured") && err.contains("\"mirrors\""),
        "{err}"
    );
    assert!(!ns.queries().lines().any(|q| q != "registry-1.docker.io"));
}

#[test]
fn registries_conf_remaps_mirrors_searches_and_blocks() {
    let busybox = fixture("busybox");
    let t = TempDir::new("pull-registries-conf");
    let reg = Registry::start(t.path());
    reg.push(&busybox, "1.30", "hub/library/busybox:1.30");
    reg.push(&busybox, "1.30", "team/tools:1");
    let data = t.path().join("data");
    std::fs::create_dir_all(data.join("registries.conf.d")).unwrap();
    let dead = free_port();
    // docker.io is remapped to the loopback registry (so never asked itself), with a dead
    // mirror tried first; quay.io is blocked; example.internal/tools is remapped too.
    std::fs::write(
        data.join("registries.conf"),
        format!(
            "unqualified-search-registries = [\"docker.io\"]\n\
             [[registry]]\nprefix = \"docker.io\"\nlocation = \"{host}/hub\"\n\
             [[registry.mirror]]\nlocation = \"127.0.0.1:{dead}\"\n",
            host = reg.host()
        ),
    )
    .unwrap();
    std::fs::write(
        data.join("registries.conf.d/50-block.conf"),
        format!(
            "[[registry]]\nlocation = \"quay.io\"\nblocked = true\n\
             [[registry]]\nprefix = \"example.internal/tools\"\nlocation = \"{}/team/tools\"\n",
            reg.host()
        ),
    )
    .unwrap();
    let out = ok(&data, &["pull", "-q", "busybox:1.30"]);
    assert_eq!(out.trim(), "docker.io/library/busybox:1.30");
    ok(&data, &["pull", "-q", "example.internal/tools:1"]);
    let o = podrun(&data, &["pull", "-q", "quay.io/x/y:1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("blocked") && err.contains("50-block.conf"),
        "{err}"
    );
    // An empty search list refuses short names, saying what to write instead.
    std::fs::write(
        data.join("registries.conf.d/60-search.conf"),
        "unqualified-search-registries = []\n",
    )
    .unwrap();
    let o = podrun(&data, &["pull", "-q", "busybox:1.30"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("unqualified-search-registries"), "{err}");
    // A bad file is named.
    std::fs::write(data.join("registries.conf.d/70-bad.conf"), "[[registry]\n").unwrap();
    let o = podrun(&data, &["pull", "-q", "127.0.0.1:1/a:1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("70-bad.conf"), "{err}");
}
