//! Registry credentials where the ecosystem keeps them: a pod's imagePullSecrets
//! (kubernetes.io/dockerconfigjson and dockercfg), podman's and docker's auth files in
//! their lookup order, credential helpers (`docker-credential-NAME get`), and the
//! `podrun login`/`logout` writes to the containers auth.json.
//!
//! Auth files, in podman's order (containers-auth.json(5)), then docker's:
//! `$REGISTRY_AUTH_FILE`, else `${XDG_RUNTIME_DIR}/containers/auth.json` (for root without
//! XDG_RUNTIME_DIR, `/run/containers/0/auth.json`); `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`;
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; `~/.dockercfg`.
//! The first file that knows the registry answers, as podman reads them.
use super::error::{io_err, ImageError, Result};
use super::reference::DOCKER_HUB;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// Where a credential came from, for messages (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub credentials: Credentials,
    pub source: String,
}

/// One docker config's entry: `auth` (base64 `user:password`) or the two fields.
#[derive(Clone, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthEntry(<redacted>)")
    }
}

/// The parts of a docker config.json / containers auth.json that name credentials.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

impl DockerConfig {
    /// Parses a config.json/auth.json (`{"auths": ...}`); `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<DockerConfig> {
        serde_json::from_slice(bytes).map_err(|e| ImageError::Invalid {
            what: what.to_string(),
            reason: format!("not a docker config / auth.json: {e}"),
        })
    }

    /// Parses a legacy `.dockercfg` (the `auths` map alone).
    pub fn parse_legacy(bytes: &[u8], what: &str) -> Result<DockerConfig> {
        let auths = serde_json::from_slice(bytes).map_err(|e| ImageError::Invalid {
            what: what.to_string(),
            reason: format!("not a .dockercfg: {e}"),
        })?;
        Ok(DockerConfig {
            auths,
            ..Default::default()
        })
    }

    /// Credentials for `registry` (`host[:port]`) and `repository`, looked up as podman
    /// does: credHelpers for the host, then `auths` from the most specific namespace to
    /// the bare host, then credsStore. `Ok(None)` when this config does not know it.
    pub fn lookup(&self, registry: &str, repository: &str, what: &str) -> Result<Option<Found>> {
        if let Some(helper) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_key(k) == registry)
            .map(|(_, v)| v)
        {
            return helper_get(helper, registry, what);
        }
        let mut keys: Vec<(usize, &String, &AuthEntry)> = Vec::new();
        for (k, e) in &self.auths {
            let key = normalize_key(k);
            let (host, path) = key.split_once('/').unwrap_or((key.as_str(), ""));
            if !host_matches(host, registry) {
                continue;
            }
            let path_ok = path.is_empty()
                || repository == path
                || repository.starts_with(&format!("{path}/"));
            if path_ok {
                keys.push((path.len(), k, e));
            }
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        for (_, k, e) in keys {
            if let Some(c) = decode_entry(e, &format!("{what} auths[{k:?}]"))? {
                return Ok(Some(Found {
                    credentials: c,
                    source: what.to_string(),
                }));
            }
        }
        match &self.creds_store {
            Some(h) if !h.is_empty() => helper_get(h, registry, what),
            _ => Ok(None),
        }
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/v2/` → `host:5000`;
/// `quay.io/ns/repo` stays (a namespaced key).
fn normalize_key(k: &str) -> String {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, rest) = match k.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (k, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_string(),
    }
}

/// Exact host, or kubelet's `*.example.com` glob (one label per `*`).
fn host_matches(pattern: &str, host: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == host;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len() && p.iter().zip(&h).all(|(p, h)| *p == "*" || p == h)
}

fn decode_entry(e: &AuthEntry, what: &str) -> Result<Option<Credentials>> {
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        if !u.is_empty() {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
    }
    let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = |reason: &str| ImageError::Invalid {
        what: what.to_string(),
        reason: reason.to_string(),
    };
    let raw = base64_decode(auth).ok_or_else(|| bad("\"auth\" is not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8"))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| bad("\"auth\" does not decode to user:password"))?;
    Ok(Some(Credentials {
        username: u.to_string(),
        password: p.to_string(),
    }))
}

/// Runs `docker-credential-NAME get` with the server on stdin, as docker does; a helper
/// that does not know the server ("credentials not found") answers None.
fn helper_get(helper: &str, registry: &str, what: &str) -> Result<Option<Found>> {
    let program = format!("docker-credential-{helper}");
    let server = if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    };
    let err = |reason: String| ImageError::Registry {
        registry: registry.to_string(),
        reason: format!("credential helper {program} (from {what}): {reason}"),
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| err(format!("writing the server to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        // The helper's words, not its output's secrets: helpers print only errors here.
        return Err(err(format!("{}: {msg}", out.status)));
    }
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let a: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|e| {
        err(format!(
            "answer is not {{\"Username\", \"Secret\"}} JSON: {e}"
        ))
    })?;
    // "<token>" marks an identity (OAuth refresh) token, which podrun cannot exchange.
    if a.username == "<token>" {
        return Ok(None);
    }
    Ok(Some(Found {
        credentials: Credentials {
            username: a.username,
            password: a.secret,
        },
        source: format!("{what} (credential helper {program})"),
    }))
}

/// The auth files in lookup order, with whether each is a legacy `.dockercfg`.
pub fn auth_files() -> Vec<(PathBuf, bool)> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut out = vec![(primary_auth_file(), false)];
    match env("XDG_CONFIG_HOME") {
        Some(x) => out.push((x.join("containers/auth.json"), false)),
        None => {
            if let Some(h) = &home {
                out.push((h.join(".config/containers/auth.json"), false));
            }
        }
    }
    match env("DOCKER_CONFIG") {
        Some(d) => out.push((d.join("config.json"), false)),
        None => {
            if let Some(h) = &home {
                out.push((h.join(".docker/config.json"), false));
            }
        }
    }
    if let Some(h) = &home {
        out.push((h.join(".dockercfg"), true));
    }
    out
}

/// The file `login` writes and the first one read: `$REGISTRY_AUTH_FILE`, else
/// `${XDG_RUNTIME_DIR}/containers/auth.json`, else `/run/containers/<uid>/auth.json`.
pub fn primary_auth_file() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        return p;
    }
    match env("XDG_RUNTIME_DIR") {
        Some(x) => x.join("containers/auth.json"),
        None => PathBuf::from(format!(
            "/run/containers/{}/auth.json",
            nix::unistd::getuid().as_raw()
        )),
    }
}

/// Credentials for `registry`/`repository` from the auth files, first file that knows
/// the registry wins. A file that exists but cannot be parsed is an error naming it.
pub fn from_auth_files(registry: &str, repository: &str) -> Result<Option<Found>> {
    for (path, legacy) in auth_files() {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::NotADirectory =>
            {
                continue
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let what = path.display().to_string();
        let cfg = if legacy {
            DockerConfig::parse_legacy(&bytes, &what)?
        } else {
            DockerConfig::parse(&bytes, &what)?
        };
        if let Some(f) = cfg.lookup(registry, repository, &what)? {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// Decodes a pod's pull Secret: type kubernetes.io/dockerconfigjson (key
/// `.dockerconfigjson`) or kubernetes.io/dockercfg (key `.dockercfg`).
pub fn from_pull_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Result<DockerConfig> {
    let name = secret.metadata.name.as_deref().unwrap_or("");
    let what = format!("imagePullSecret {name:?}");
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => match get(".dockerconfigjson") {
            Some(b) => DockerConfig::parse(b, &format!("{what} key .dockerconfigjson")),
            None => Err(ImageError::Invalid {
                what,
                reason: "type kubernetes.io/dockerconfigjson but no .dockerconfigjson key".into(),
            }),
        },
        Some("kubernetes.io/dockercfg") => match get(".dockercfg") {
            Some(b) => DockerConfig::parse_legacy(b, &format!("{what} key .dockercfg")),
            None => Err(ImageError::Invalid {
                what,
                reason: "type kubernetes.io/dockercfg but no .dockercfg key".into(),
            }),
        },
        other => Err(ImageError::Invalid {
            what,
            reason: format!(
                "type {:?} is not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
                other.unwrap_or("Opaque")
            ),
        }),
    }
}

/// The docker configs of `pod`'s imagePullSecrets among `secrets` (its namespace's), in
/// the pod's order, and a kubelet-worded problem for each one missing or unusable.
pub fn pod_pull_secrets(
    pod: &k8s_openapi::api::core::v1::Pod,
    secrets: &[k8s_openapi::api::core::v1::Secret],
) -> (Vec<DockerConfig>, Vec<String>) {
    let mut configs = Vec::new();
    let mut problems = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref());
    for r in refs.into_iter().flatten() {
        let name = r.name.as_str();
        match secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
        {
            None => problems.push(format!(
                "Unable to retrieve some image pull secrets ({name}); attempting to pull the image may not succeed."
            )),
            Some(s) => match from_pull_secret(s) {
                Ok(c) => configs.push(c),
                Err(e) => problems.push(format!(
                    "Unable to use image pull secret {name}: {e}; attempting to pull the image may not succeed."
                )),
            },
        }
    }
    (configs, problems)
}

/// Stores `creds` for `registry` in the auth file `path` (created 0600, other entries
/// kept), as `podman login` does.
pub fn store_login(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut doc = read_doc(path)?;
    let auth = base64_encode(format!("{}:{}", creds.username, creds.password).as_bytes());
    let auths = doc
        .as_object_mut()
        .ok_or_else(|| not_object(path))?
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    let auths = auths.as_object_mut().ok_or_else(|| not_object(path))?;
    auths.insert(registry.to_string(), serde_json::json!({ "auth": auth }));
    write_doc(path, &doc)
}

/// Removes `registry`'s entry (all entries with `None`); false when there was none.
pub fn remove_login(path: &Path, registry: Option<&str>) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let mut doc = read_doc(path)?;
    let obj = doc.as_object_mut().ok_or_else(|| not_object(path))?;
    let removed = match (
        obj.get_mut("auths").and_then(|a| a.as_object_mut()),
        registry,
    ) {
        (Some(a), Some(r)) => {
            let keys: Vec<String> = a
                .keys()
                .filter(|k| normalize_key(k) == r || k.as_str() == r)
                .cloned()
                .collect();
            for k in &keys {
                a.remove(k);
            }
            !keys.is_empty()
        }
        (Some(a), None) => {
            let any = !a.is_empty();
            a.clear();
            any
        }
        (None, _) => false,
    };
    if removed {
        write_doc(path, &doc)?;
    }
    Ok(removed)
}

fn not_object(path: &Path) -> ImageError {
    ImageError::Invalid {
        what: path.display().to_string(),
        reason: "not a JSON object with \"auths\"".into(),
    }
}

fn read_doc(path: &Path) -> Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Ok(serde_json::json!({})),
        Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Invalid {
            what: path.display().to_string(),
            reason: format!("not JSON: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

fn write_doc(path: &Path, doc: &serde_json::Value) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut bytes = serde_json::to_vec_pretty(doc).unwrap_or_default();
    bytes.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.write_all(&bytes).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", path))
}

pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with or without padding; None on any other byte.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> DockerConfig {
        DockerConfig::parse(json.as_bytes(), "test").unwrap()
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pa:ss", "ünï"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert!(base64_decode("a$b").is_none());
    }

    #[test]
    fn docker_hub_keys_and_namespaces_match_most_specific_first() {
        let c = cfg(&format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                "quay.io": {{"auth": "{}"}}, "quay.io/team": {{"auth": "{}"}}}}}}"#,
            base64_encode(b"hub:1"),
            base64_encode(b"quay:2"),
            base64_encode(b"team:3")
        ));
        let who = |reg: &str, repo: &str| {
            c.lookup(reg, repo, "t")
                .unwrap()
                .map(|f| f.credentials.username)
        };
        assert_eq!(who("docker.io", "library/nginx").as_deref(), Some("hub"));
        assert_eq!(who("quay.io", "team/app").as_deref(), Some("team"));
        assert_eq!(who("quay.io", "teamx/app").as_deref(), Some("quay"));
        assert_eq!(who("ghcr.io", "x"), None);
    }

    #[test]
    fn kubelet_globs_and_username_password_entries() {
        let c = cfg(r#"{"auths": {"*.example.com": {"username": "u", "password": "p"}}}"#);
        assert!(c.lookup("reg.example.com", "a", "t").unwrap().is_some());
        assert!(c.lookup("a.reg.example.com", "a", "t").unwrap().is_none());
        let bad = cfg(r#"{"auths": {"x.io": {"auth": "!!"}}}"#);
        let e = bad.lookup("x.io", "a", "f.json").unwrap_err().to_string();
        assert!(
            e.contains("f.json auths[\"x.io\"]") && e.contains("base64"),
            "{e}"
        );
    }

    #[test]
    fn credentials_never_print_their_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
