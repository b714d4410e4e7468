//! Shared helpers for the image tests: temp data dirs, the podrun binary, fixtures, a
//! loopback registry (Debian's docker-registry), and tree hashing.
#![allow(dead_code)]
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temp dir removed (with any rootfs under it unmounted) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("podrun-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Unmount any container rootfs a failed test left behind.
        let containers = self.0.join("data/containers");
        if let Ok(rd) = std::fs::read_dir(&containers) {
            for e in rd.flatten() {
                let _ =
                    nix::mount::umount2(&e.path().join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs podrun with `--data-dir DIR` and the given args.
pub fn podrun(data: &Path, args: &[&str]) -> Output {
    podrun_env(data, args, &[])
}

pub fn podrun_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(PODRUN);
    c.arg("--data-dir").arg(data).args(args);
    c.env_remove("PODRUN_DATA_DIR");
    c.env_remove("PODRUN_ROOTFS_MODE");
    c.env_remove("PODRUN_REGISTRIES_CONFIG");
    // The host's registries.conf is not read (a test writes DATA/registries.conf to use one).
    c.env("CONTAINERS_REGISTRIES_CONF", data.join("registries.conf"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run podrun")
}

/// Runs podrun and asserts success; returns stdout.
pub fn ok(data: &Path, args: &[&str]) -> String {
    let o = podrun(data, args);
    assert!(
        o.status.success(),
        "podrun {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Builds (cached) the fixture layouts; panics with a clear message when it cannot.
pub fn fixture(name: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap();
    let out = root().join("rootfs-fixtures/out").join(name);
    let st = Command::new("bash")
        .arg(root().join("rootfs-fixtures/build.sh"))
        .arg(name)
        .stdout(Stdio::null())
        .status()
        .expect("run rootfs-fixtures/build.sh");
    assert!(
        st.success() && out.join("index.json").exists(),
        "fixture {name} could not be built: run `bash rootfs-fixtures/build.sh {name}` \
         (needs root and apt's Debian mirror)"
    );
    out
}

pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{tool}` installed (apt-get install the Debian package)"
    );
}

/// A loopback registry: Debian's docker-registry on a free port, storage in a temp dir;
/// killed by pid on drop.
pub struct Registry {
    pub port: u16,
    pub storage: PathBuf,
    child: Child,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        require_tool("docker-registry");
        let storage = dir.join("registry-data");
        let port = free_port();
        let cfg = dir.join("registry.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            port,
            storage,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// skopeo copy of an OCI layout's `tag` to `repo:tag` in this registry.
    pub fn push(&self, layout: &Path, tag: &str, dest: &str) {
        require_tool("skopeo");
        let o = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{dest}", self.host()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo push failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Path of a blob's data in the registry's filesystem storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hash of a whole tree: names, types, modes, owners, xattr-free contents, link targets.
pub fn tree_hash(dir: &Path) -> String {
    let mut h = Sha256::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&full)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = dir.join(&r);
            let m = std::fs::symlink_metadata(&p).unwrap();
            h.update(r.to_string_lossy().as_bytes());
            h.update(format!(" {:o} {} {} {}\n", m.mode(), m.uid(), m.gid(), m.rdev()).as_bytes());
            if m.file_type().is_symlink() {
                h.update(std::fs::read_link(&p).unwrap().to_string_lossy().as_bytes());
            } else if m.is_file() {
                h.update(std::fs::read(&p).unwrap());
            } else if m.is_dir() {
                stack.push(r);
            }
        }
    }
    hex::encode(h.finalize())
}

/// The single manifest digest of a fixture layout.
pub fn layout_manifest_digest(layout: &Path) -> String {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    idx["manifests"][0]["digest"].as_str().unwrap().to_string()
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// How an [`AuthProxy`] wants its clients to authenticate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AuthMode {
    /// `WWW-Authenticate: Basic`; every request carries the user's Basic credentials.
    Basic,
    /// `WWW-Authenticate: Bearer realm=<own /token>`; the token endpoint wants the user's
    /// Basic credentials, every other request the token it handed out.
    Bearer,
}

/// A private registry: an HTTP proxy in front of a loopback registry that lets through
/// only requests authenticated as `user`/`password` (one request per connection).
pub struct AuthProxy {
    pub port: u16,
}

impl AuthProxy {
    pub fn start(upstream: u16, mode: AuthMode, user: &str, password: &str) -> AuthProxy {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let basic = format!(
            "Basic {}",
            podrun::image::auth::base64_encode(format!("{user}:{password}").as_bytes())
        );
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let basic = basic.clone();
                std::thread::spawn(move || {
                    let _ = auth_serve(c, upstream, port, mode, &basic);
                });
            }
        });
        AuthProxy { port }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn auth_serve(
    mut c: std::net::TcpStream,
    upstream: u16,
    me: u16,
    mode: AuthMode,
    basic: &str,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
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
    let authz: Vec<String> = text
        .split("\r\n")
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        })
        .collect();
    let has = |v: &str| authz.iter().any(|a| a == v);
    const TOKEN: &str = "Bearer tok-4c6f67696e";
    let deny = |c: &mut std::net::TcpStream, challenge: String| {
        write!(c, "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: {challenge}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")
    };
    match mode {
        AuthMode::Basic if !has(basic) => {
            return deny(&mut c, "Basic realm=\"podrun-test\"".into());
        }
        AuthMode::Bearer if path.starts_with("/token") => {
            if !has(basic) {
                return deny(&mut c, "Basic realm=\"podrun-test-token\"".into());
            }
            let body = format!(r#"{{"token":"{}"}}"#, &TOKEN[7..]);
            return write!(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
        AuthMode::Bearer if !has(TOKEN) => {
            return deny(
                &mut c,
                format!("Bearer realm=\"http://127.0.0.1:{me}/token\",service=\"podrun-test\""),
            );
        }
        _ => {}
    }
    let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
    let mut fwd = String::new();
    for l in text.split("\r\n") {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("authorization:") || l.is_empty() {
            continue;
        }
        fwd.push_str(l);
        fwd.push_str("\r\n");
    }
    fwd.push_str("Connection: close\r\n\r\n");
    up.write_all(fwd.as_bytes())?;
    std::io::copy(&mut up, &mut c)?;
    Ok(())
}
