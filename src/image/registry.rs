//! `podrun pull`: the OCI distribution API over HTTP(S) — manifests (OCI and Docker v2,
//! indexes and manifest lists resolved to linux/amd64), blobs streamed, verified and
//! unpacked in one pass, bearer-token auth, plain HTTP for loopback/insecure registries,
//! and mirrors from a config file.
use super::error::{invalid, io_err, json_err, ImageError, Result};
use super::import::{manifest_media_type, pick_platform};
use super::progress::Progress;
use super::reference::{host_of, Reference, DOCKER_HUB};
use super::store::{
    check_digest, sha256_digest, BlobSource, Descriptor, Image, ImageStore, Index, MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Registry settings: mirrors per registry and registries spoken to without TLS checks.
///
/// ```json
/// {"mirrors": {"docker.io": ["http://127.0.0.1:5000"]}, "insecure": ["myhost:5000"]}
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistriesConfig {
    /// Registry name (`docker.io`, `quay.io`) → mirror endpoints tried first, in order.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Registries (`host[:port]`) reached over plain HTTP or unverified HTTPS.
    #[serde(default)]
    pub insecure: Vec<String>,
    /// Credentials per registry (`docker.io`, `host:port`), used for Basic challenges
    /// and token requests; anonymous otherwise.
    #[serde(default)]
    pub auths: BTreeMap<String, Credentials>,
}

#[derive(Clone, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// Overrides where the registries config is read from.
pub const REGISTRIES_CONFIG_ENV: &str = "PODRUN_REGISTRIES_CONFIG";

impl RegistriesConfig {
    /// `$PODRUN_REGISTRIES_CONFIG`, else `<data-dir>/registries.json`, else
    /// `/etc/podrun/registries.json`, else no mirrors.
    pub fn load(data_dir: &Path) -> Result<RegistriesConfig> {
        let candidates: Vec<PathBuf> = match std::env::var_os(REGISTRIES_CONFIG_ENV) {
            Some(p) => vec![PathBuf::from(p)],
            None => vec![
                data_dir.join("registries.json"),
                PathBuf::from("/etc/podrun/registries.json"),
            ],
        };
        for p in candidates {
            match std::fs::read(&p) {
                Ok(b) => {
                    return serde_json::from_slice(&b).map_err(json_err(p.display().to_string()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", p)(e)),
            }
        }
        Ok(RegistriesConfig::default())
    }
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Allow plain HTTP and unverified TLS for this pull's registry.
    pub insecure: bool,
    /// Show progress on stderr when it is a terminal.
    pub progress: bool,
    /// Registry settings; `None` loads them with [`RegistriesConfig::load`].
    pub registries: Option<RegistriesConfig>,
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

impl ImageStore {
    /// Pulls `reference` into the store (config, layers, manifest, tag), returning it.
    pub fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let cfg = match &opts.registries {
            Some(c) => c.clone(),
            None => RegistriesConfig::load(&self.data_dir)?,
        };
        self.clean_stale();
        let mut errors = Vec::new();
        for ep in endpoints(&r, &cfg, opts.insecure) {
            let creds = cfg.auths.get(&r.registry).cloned();
            let client = match Client::new(&ep, &r, creds) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let (mt, bytes) = match client.fetch_manifest(&r) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let progress = Progress::new(opts.progress && super::fsutil::stderr_is_tty());
            return self.ingest(&client, &bytes, &mt, &[r.to_string()], &progress);
        }
        Err(ImageError::Registry {
            registry: r.registry.clone(),
            reason: format!("pulling {r}: {}", errors.join("; ")),
        })
    }
}

/// One place to try: base URL, and whether TLS may be unverified / fall back to HTTP.
#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    bases: Vec<String>,
    insecure_tls: bool,
}

fn endpoints(r: &Reference, cfg: &RegistriesConfig, insecure: bool) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for m in cfg.mirrors.get(&r.registry).into_iter().flatten() {
        let m = m.trim_end_matches('/');
        if m.starts_with("http://") || m.starts_with("https://") {
            out.push(Endpoint {
                bases: vec![m.to_string()],
                insecure_tls: insecure || cfg.insecure.iter().any(|i| m.contains(i.as_str())),
            });
        } else {
            out.push(host_endpoint(m, cfg, insecure));
        }
    }
    let host = if r.registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        r.registry.as_str()
    };
    let mut own = host_endpoint(host, cfg, insecure);
    if cfg.insecure.contains(&r.registry) {
        own.insecure_tls = true;
        if own.bases.len() == 1 {
            own.bases.push(format!("http://{host}"));
        }
    }
    out.push(own);
    out
}

fn host_endpoint(host: &str, cfg: &RegistriesConfig, insecure: bool) -> Endpoint {
    let h = host_of(host);
    let loopback = h == "localhost" || h == "[::1]" || h.starts_with("127.");
    let listed = cfg.insecure.iter().any(|i| i == host);
    if loopback {
        Endpoint {
            bases: vec![format!("http://{host}")],
            insecure_tls: true,
        }
    } else if insecure || listed {
        Endpoint {
            bases: vec![format!("https://{host}"), format!("http://{host}")],
            insecure_tls: true,
        }
    } else {
        Endpoint {
            bases: vec![format!("https://{host}")],
            insecure_tls: false,
        }
    }
}

enum GetError {
    Transport(ImageError),
    Other(ImageError),
}

/// A registry client for one repository on one endpoint.
struct Client {
    agent: ureq::Agent,
    candidates: Vec<String>,
    base: Mutex<Option<String>>,
    repo: String,
    registry: String,
    /// The Authorization header value once a challenge was answered.
    auth: Mutex<Option<String>>,
    creds: Option<Credentials>,
}

fn reg_err(registry: &str, reason: impl Into<String>) -> ImageError {
    ImageError::Registry {
        registry: registry.to_string(),
        reason: reason.into(),
    }
}

impl Client {
    fn new(ep: &Endpoint, r: &Reference, creds: Option<Credentials>) -> Result<Client> {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(ep.insecure_tls)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .tls_config(tls)
            .user_agent("podrun/0.1")
            .build()
            .into();
        Ok(Client {
            agent,
            candidates: ep.bases.clone(),
            base: Mutex::new(None),
            repo: r.repository.clone(),
            registry: ep.bases.first().cloned().unwrap_or_default(),
            auth: Mutex::new(None),
            creds,
        })
    }

    /// GET `path` (under /v2/<repo>/), answering one bearer challenge. The first request
    /// also settles which base URL (https or http) works.
    fn get(&self, path: &str, accept: Option<&str>) -> Result<ureq::http::Response<ureq::Body>> {
        let base = self.base.lock().ok().and_then(|b| b.clone());
        let bases = match base {
            Some(b) => vec![b],
            None => self.candidates.clone(),
        };
        let mut last = None;
        for b in bases {
            let url = format!("{b}/v2/{}/{path}", self.repo);
            match self.get_url(&url, accept) {
                Ok(resp) => {
                    if let Ok(mut g) = self.base.lock() {
                        *g = Some(b.clone());
                    }
                    return Ok(resp);
                }
                // Transport failure: try the next scheme (https → http for insecure).
                Err(GetError::Transport(e)) => last = Some(e),
                Err(GetError::Other(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| reg_err(&self.registry, "no endpoint")))
    }

    fn get_url(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, GetError> {
        for attempt in 0..2 {
            let mut req = self.agent.get(url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(a) = self.auth.lock().ok().and_then(|t| t.clone()) {
                req = req.header("Authorization", &a);
            }
            let resp = req.call().map_err(|e| {
                GetError::Transport(reg_err(&self.registry, format!("GET {url}: {e}")))
            })?;
            let status = resp.status().as_u16();
            if status == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                self.authenticate(&challenge).map_err(GetError::Other)?;
                continue;
            }
            if !(200..300).contains(&status) {
                let mut body = resp.into_body();
                let text = body
                    .with_config()
                    .limit(4096)
                    .read_to_string()
                    .unwrap_or_default();
                return Err(GetError::Other(reg_err(
                    &self.registry,
                    format!("GET {url}: HTTP {status} {}", text.trim()),
                )));
            }
            return Ok(resp);
        }
        Err(GetError::Other(reg_err(
            &self.registry,
            format!("GET {url}: still unauthorized after token"),
        )))
    }

    fn basic(&self) -> Option<String> {
        self.creds.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64_encode(format!("{}:{}", c.username, c.password).as_bytes())
            )
        })
    }

    fn set_auth(&self, value: String) {
        if let Ok(mut g) = self.auth.lock() {
            *g = Some(value);
        }
    }

    /// Answers a `WWW-Authenticate` challenge: Bearer (token from the realm, with Basic
    /// credentials when configured) or Basic (configured credentials).
    fn authenticate(&self, challenge: &str) -> Result<()> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            let b = self.basic().ok_or_else(|| {
                reg_err(
                    &self.registry,
                    "authentication required (Basic) and no credentials configured in registries.json \"auths\"",
                )
            })?;
            self.set_auth(b);
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(reg_err(
                &self.registry,
                format!("unsupported authentication challenge {challenge:?}"),
            ));
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| reg_err(&self.registry, "bearer challenge without realm"))?;
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        let default_scope = format!("repository:{}:pull", self.repo);
        let scope = params.get("scope").unwrap_or(&default_scope);
        for (k, v) in [("service", params.get("service")), ("scope", Some(scope))] {
            if let Some(v) = v {
                url.push(sep);
                url.push_str(k);
                url.push('=');
                url.push_str(&url_encode(v));
                sep = '&';
            }
        }
        let mut req = self.agent.get(&url);
        if let Some(b) = self.basic() {
            req = req.header("Authorization", &b);
        }
        let resp = req
            .call()
            .map_err(|e| reg_err(&self.registry, format!("token request {url}: {e}")))?;
        if resp.status().as_u16() != 200 {
            return Err(reg_err(
                &self.registry,
                format!("token request {url}: HTTP {}", resp.status().as_u16()),
            ));
        }
        #[derive(Deserialize)]
        struct Tok {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = resp
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| reg_err(&self.registry, format!("token response: {e}")))?;
        let t: Tok = serde_json::from_slice(&body).map_err(json_err("token response"))?;
        let tok = t
            .token
            .or(t.access_token)
            .ok_or_else(|| reg_err(&self.registry, "token response without token"))?;
        self.set_auth(format!("Bearer {tok}"));
        Ok(())
    }

    /// Fetches the manifest for `r`, resolving an index/list to linux/amd64; verified
    /// against the pinned digest or the registry's Docker-Content-Digest.
    fn fetch_manifest(&self, r: &Reference) -> Result<(String, Vec<u8>)> {
        let (mt, bytes) = self.fetch_manifest_raw(r.manifest_ref(), r.digest.as_deref())?;
        if mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST {
            let idx: Index = serde_json::from_slice(&bytes).map_err(json_err("image index"))?;
            let d = pick_platform(&idx)?;
            let (mt2, b2) = self.fetch_manifest_raw(&d.digest, Some(&d.digest))?;
            if mt2 != MT_OCI_MANIFEST && mt2 != MT_DOCKER_MANIFEST {
                return Err(invalid(
                    format!("manifest {}", d.digest),
                    format!("unexpected media type {mt2}"),
                ));
            }
            return Ok((mt2, b2));
        }
        if mt != MT_OCI_MANIFEST && mt != MT_DOCKER_MANIFEST {
            return Err(invalid(
                format!("manifest of {r}"),
                format!("unsupported media type {mt} (schema 1 manifests are not supported)"),
            ));
        }
        Ok((mt, bytes))
    }

    fn fetch_manifest_raw(
        &self,
        reference: &str,
        pinned: Option<&str>,
    ) -> Result<(String, Vec<u8>)> {
        let resp = self.get(&format!("manifests/{reference}"), Some(MANIFEST_ACCEPT))?;
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        };
        let content_type = header("content-type").unwrap_or_default();
        let advertised = header("docker-content-digest");
        let bytes = resp
            .into_body()
            .with_config()
            .limit(super::store::MAX_JSON_BLOB)
            .read_to_vec()
            .map_err(|e| reg_err(&self.registry, format!("reading manifest {reference}: {e}")))?;
        let actual = sha256_digest(&bytes);
        if let Some(p) = pinned {
            check_digest(&format!("manifest {reference}"), p, &actual)?;
        } else if let Some(a) = advertised.filter(|a| a.starts_with("sha256:")) {
            check_digest(
                &format!("manifest {reference} (Docker-Content-Digest)"),
                &a,
                &actual,
            )?;
        }
        Ok((manifest_media_type(&bytes, &content_type), bytes))
    }
}

impl BlobSource for Client {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        super::reference::validate_digest(&desc.digest)
            .map_err(|r| invalid(format!("digest {:?}", desc.digest), r))?;
        let resp = self.get(&format!("blobs/{}", desc.digest), None)?;
        let registry = self.registry.clone();
        let digest = desc.digest.clone();
        Ok(Box::new(ErrContext {
            inner: resp.into_body().into_reader(),
            context: format!("{registry}: blob {digest}"),
        }))
    }
}

/// Adds the registry and blob to read errors.
struct ErrContext<R> {
    inner: R,
    context: String,
}

impl<R: Read> Read for ErrContext<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.context)))
    }
}

/// Splits `Bearer realm="x",service="y"` into ("Bearer", {realm: x, service: y}).
fn parse_challenge(h: &str) -> (String, BTreeMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val);
    }
    (scheme.to_string(), params)
}

fn base64_encode(data: &[u8]) -> String {
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

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
        assert_eq!(
            url_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }

    #[test]
    fn endpoints_follow_docker_rules() {
        let cfg = RegistriesConfig::default();
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(
            endpoints(&r, &cfg, false),
            vec![Endpoint {
                bases: vec!["https://registry-1.docker.io".into()],
                insecure_tls: false
            }]
        );
        let r = Reference::parse("127.0.0.1:5000/x").unwrap();
        assert_eq!(
            endpoints(&r, &cfg, false)[0].bases,
            vec!["http://127.0.0.1:5000"]
        );
        let r = Reference::parse("myreg:5000/x").unwrap();
        assert_eq!(
            endpoints(&r, &cfg, true)[0].bases,
            vec!["https://myreg:5000", "http://myreg:5000"]
        );
        let mut cfg = RegistriesConfig::default();
        cfg.mirrors
            .insert("docker.io".into(), vec!["http://127.0.0.1:5999/".into()]);
        let r = Reference::parse("busybox:1.30").unwrap();
        let eps = endpoints(&r, &cfg, false);
        assert_eq!(eps[0].bases, vec!["http://127.0.0.1:5999"]);
        assert_eq!(eps[1].bases, vec!["https://registry-1.docker.io"]);
    }
}
