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
