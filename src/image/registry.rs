//! `podrun pull`: the OCI distribution API over HTTP(S) — manifests (OCI and Docker v2,
//! indexes and manifest lists resolved to linux/amd64), blobs streamed, verified and
//! unpacked in one pass, Basic and bearer-token auth, plain HTTP for loopback/insecure
//! registries, mirrors, remaps and blocks from podrun's registries.json and
//! containers-registries.conf, and mirror-only registries that are never asked themselves.
pub use super::auth::Credentials;
use super::auth::{self, DockerConfig};
use super::error::{invalid, io_err, json_err, ImageError, Result};
use super::import::{manifest_media_type, pick_platform};
use super::progress::Progress;
use super::reference::{host_of, Reference, DOCKER_HUB};
use super::registries_conf::{self, RegistriesConf};
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

/// Registry settings: mirrors per registry, registries spoken to without TLS checks,
/// registries reached only through their mirrors, blocked registries, credentials; and
/// what containers-registries.conf adds.
///
/// ```json
/// {"mirrors": {"docker.io": ["http://127.0.0.1:5000"]}, "mirrorOnly": ["docker.io"],
///  "insecure": ["myhost:5000"], "blocked": ["quay.io"]}
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Registries reached only through their mirrors: when none has the image the pull
    /// fails, and the registry's own name is never looked up.
    #[serde(default, rename = "mirrorOnly")]
    pub mirror_only: Vec<String>,
    /// Registries pulls from which are refused (registries.conf's `blocked = true`).
    #[serde(default)]
    pub blocked: Vec<String>,
    /// containers-registries.conf(5) settings, read beside this file.
    #[serde(skip)]
    pub conf: RegistriesConf,
    /// The registries.json read, if any (for messages).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Overrides where the registries config is read from.
pub const REGISTRIES_CONFIG_ENV: &str = "PODRUN_REGISTRIES_CONFIG";

impl RegistriesConfig {
    /// `$PODRUN_REGISTRIES_CONFIG`, else `<data-dir>/registries.json`, else
    /// `/etc/podrun/registries.json`, else no mirrors; then containers-registries.conf.
    pub fn load(data_dir: &Path) -> Result<RegistriesConfig> {
        let mut cfg = Self::load_json(data_dir)?;
        cfg.conf = RegistriesConf::load()?;
        Ok(cfg)
    }

    fn load_json(data_dir: &Path) -> Result<RegistriesConfig> {
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
                    let mut c: RegistriesConfig =
                        serde_json::from_slice(&b).map_err(json_err(p.display().to_string()))?;
                    c.file = Some(p);
                    return Ok(c);
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
    /// A pod's imagePullSecrets, asked before any other credential (as kubelet does).
    pub pull_secrets: Vec<DockerConfig>,
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

impl ImageStore {
    /// Pulls `reference` into the store (config, layers, manifest, tag), returning it.
    /// A short name goes to registries.conf's unqualified-search-registries in order when
    /// that list is set, else to docker.io (as docker and kubelet do).
    pub fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image> {
        let first = Reference::parse(reference)?;
        let cfg = match &opts.registries {
            Some(c) => c.clone(),
            None => RegistriesConfig::load(&self.data_dir)?,
        };
        let candidates = match (
            &cfg.conf.unqualified_search_registries,
            is_short_name(reference),
        ) {
            (Some(list), true) => {
                if list.is_empty() {
                    return Err(invalid(
                        format!("image name {reference:?}"),
                        "a short name, and unqualified-search-registries in registries.conf is empty: give the registry (e.g. docker.io/library/nginx)",
                    ));
                }
                list.iter()
                    .map(|reg| Reference::parse(&format!("{reg}/{reference}")))
                    .collect::<std::result::Result<Vec<_>, _>>()?
            }
            _ => vec![first],
        };
        self.clean_stale();
        let mut errors = Vec::new();
        let mut last = None;
        for r in &candidates {
            match self.pull_one(r, &cfg, opts) {
                Ok(img) => return Ok(img),
                Err(e @ ImageError::Registry { .. }) if candidates.len() > 1 => {
                    errors.push(e.to_string())
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            reg_err(
                "unqualified-search-registries",
                format!("pulling {reference}: {}", errors.join("; ")),
            )
        }))
    }

    fn pull_one(&self, r: &Reference, cfg: &RegistriesConfig, opts: &PullOptions) -> Result<Image> {
        let mut errors = Vec::new();
        let mut tried = Vec::new();
        let srcs = sources(r, cfg, opts.insecure)?;
        for src in &srcs {
            tried.push(src.label.clone());
            // The host spoken to first; a mirror falls back to the image's own registry's
            // credentials (as containerd uses kubelet's for its mirrors).
            let creds = match credentials(opts, cfg, &src.host, &src.repository)? {
                Some(c) => Some(c),
                None if src.host != r.registry => {
                    credentials(opts, cfg, &r.registry, &r.repository)?
                }
                None => None,
            };
            let client = Client::new(&src.endpoint, &src.repository, creds);
            let (mt, bytes) = match client.fetch_manifest(r) {
                Ok(m) => m,
                // The registry is named once, in the error built below.
                Err(ImageError::Registry { reason, .. }) => {
                    errors.push(reason);
                    continue;
                }
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let progress = Progress::new(opts.progress && super::fsutil::stderr_is_tty());
            return self.ingest(&client, &bytes, &mt, &[r.to_string()], &progress);
        }
        let mut reason = format!("pulling {r}: {}", errors.join("; "));
        if let Some(why) = mirror_only_reason(r, cfg) {
            reason.push_str(&format!("; {why}, so it is not asked itself"));
        }
        Err(ImageError::Registry {
            registry: tried.join(", "),
            reason,
        })
    }

    /// Checks `creds` against `registry`'s /v2/ endpoint (Basic or a bearer token), as
    /// `podman login` does before storing them.
    pub fn check_login(
        registry: &str,
        creds: &Credentials,
        insecure: bool,
        cfg: &RegistriesConfig,
    ) -> Result<()> {
        let ep = host_endpoint(
            registry_host(registry),
            cfg,
            insecure || cfg.insecure.iter().any(|i| i == registry),
        );
        let client = Client::new(&ep, "", Some(creds.clone()));
        client.get_path("/v2/", None).map(|_| ())
    }
}

/// True when `input` names no registry (`nginx`, `library/nginx:1`), as docker decides.
pub fn is_short_name(input: &str) -> bool {
    match input.split_once('/') {
        None => true,
        Some((first, _)) => !(first.contains('.') || first.contains(':') || first == "localhost"),
    }
}

/// Credentials for one source: the pod's pull secrets, registries.json "auths", then the
/// docker/podman auth files (and their credential helpers).
fn credentials(
    opts: &PullOptions,
    cfg: &RegistriesConfig,
    host: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    for s in &opts.pull_secrets {
        if let Some(f) = s.lookup(host, repository, "imagePullSecrets")? {
            return Ok(Some(f.credentials));
        }
    }
    if let Some(c) = cfg.auths.get(host) {
        return Ok(Some(c.clone()));
    }
    Ok(auth::from_auth_files(host, repository)?.map(|f| f.credentials))
}

fn mirror_only_reason(r: &Reference, cfg: &RegistriesConfig) -> Option<String> {
    if cfg.mirror_only.contains(&r.registry) {
        let file = cfg
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "registries.json".into());
        return Some(format!(
            "{} is reached only through its mirrors (\"mirrorOnly\" in {file})",
            r.registry
        ));
    }
    None
}

/// Where to pull `r` from, in order: registries.conf mirrors, registries.json mirrors,
/// then the registry itself (or its registries.conf location) unless it is mirror-only.
#[derive(Debug, Clone, PartialEq)]
struct Source {
    endpoint: Endpoint,
    /// host[:port] spoken to, for credentials.
    host: String,
    repository: String,
    label: String,
}

fn split_location(loc: &str) -> (&str, &str) {
    loc.split_once('/').unwrap_or((loc, ""))
}

fn registry_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn sources(r: &Reference, cfg: &RegistriesConfig, insecure: bool) -> Result<Vec<Source>> {
    let name = r.name();
    let table = cfg.conf.find(&name);
    if let Some(t) = table.filter(|t| t.blocked) {
        return Err(reg_err(
            &r.registry,
            format!(
                "pulling {r}: blocked by [[registry]] prefix {:?} in {}",
                t.prefix,
                t.file.display()
            ),
        ));
    }
    if cfg.blocked.contains(&r.registry) {
        return Err(reg_err(
            &r.registry,
            format!(
                "pulling {r}: blocked (\"blocked\" in {})",
                cfg.file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "registries.json".into())
            ),
        ));
    }
    let mut out = Vec::new();
    let conf_source = |loc: &str, insecure_here: bool| -> Source {
        let (host, repo) = split_location(loc);
        let mut ep = host_endpoint(registry_host(host), cfg, insecure || insecure_here);
        if insecure_here {
            ep = insecure_endpoint(registry_host(host), ep);
        }
        let repository = if host == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        Source {
            label: ep.bases.first().cloned().unwrap_or_default(),
            endpoint: ep,
            host: host.to_string(),
            repository,
        }
    };
    if let Some(t) = table {
        if !t.mirror_by_digest_only || r.digest.is_some() {
            for m in &t.mirror {
                let loc = registries_conf::rewrite(&name, &t.prefix, &m.location);
                out.push(conf_source(&loc, m.insecure || t.insecure));
            }
        }
    }
    for m in cfg.mirrors.get(&r.registry).into_iter().flatten() {
        let m = m.trim_end_matches('/');
        let ep = if m.starts_with("http://") || m.starts_with("https://") {
            Endpoint {
                bases: vec![m.to_string()],
                insecure_tls: insecure || cfg.insecure.iter().any(|i| m.contains(i.as_str())),
            }
        } else {
            host_endpoint(m, cfg, insecure)
        };
        let host = m
            .strip_prefix("http://")
            .or_else(|| m.strip_prefix("https://"))
            .unwrap_or(m);
        out.push(Source {
            label: ep.bases.first().cloned().unwrap_or_default(),
            endpoint: ep,
            host: split_location(host).0.to_string(),
            repository: r.repository.clone(),
        });
    }
    if cfg.mirror_only.contains(&r.registry) {
        if out.is_empty() {
            return Err(reg_err(
                &r.registry,
                format!(
                    "pulling {r}: {} and none is configured (add one under \"mirrors\")",
                    mirror_only_reason(r, cfg).unwrap_or_default()
                ),
            ));
        }
        return Ok(out);
    }
    match table {
        Some(t) => {
            let loc = registries_conf::rewrite(&name, &t.prefix, &t.location);
            out.push(conf_source(&loc, t.insecure));
        }
        None => {
            let host = registry_host(&r.registry);
            let mut own = host_endpoint(host, cfg, insecure);
            if cfg.insecure.contains(&r.registry) {
                own = insecure_endpoint(host, own);
            }
            out.push(Source {
                label: own.bases.first().cloned().unwrap_or_default(),
                endpoint: own,
                host: r.registry.clone(),
                repository: r.repository.clone(),
            });
        }
    }
    Ok(out)
}

fn insecure_endpoint(host: &str, mut ep: Endpoint) -> Endpoint {
    ep.insecure_tls = true;
    if ep.bases.len() == 1 && ep.bases[0].starts_with("https://") {
        ep.bases.push(format!("http://{host}"));
    }
    ep
}

/// One place to try: base URL, and whether TLS may be unverified / fall back to HTTP.
#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    bases: Vec<String>,
    insecure_tls: bool,
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
    fn new(ep: &Endpoint, repository: &str, creds: Option<Credentials>) -> Client {
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
        Client {
            agent,
            candidates: ep.bases.clone(),
            base: Mutex::new(None),
            repo: repository.to_string(),
            registry: ep.bases.first().cloned().unwrap_or_default(),
            auth: Mutex::new(None),
            creds,
        }
    }

    /// GET `path` (under /v2/<repo>/), answering one bearer challenge. The first request
    /// also settles which base URL (https or http) works.
    fn get(&self, path: &str, accept: Option<&str>) -> Result<ureq::http::Response<ureq::Body>> {
        self.get_path(&format!("/v2/{}/{path}", self.repo), accept)
    }

    /// GET an absolute `path` on this endpoint (see [`Client::get`]).
    fn get_path(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let base = self.base.lock().ok().and_then(|b| b.clone());
        let bases = match base {
            Some(b) => vec![b],
            None => self.candidates.clone(),
        };
        let mut last = None;
        for b in bases {
            let url = format!("{b}{path}");
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
                auth::base64_encode(format!("{}:{}", c.username, c.password).as_bytes())
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
                    format!(
                        "authentication required (Basic) and no credentials for {} in the pod's imagePullSecrets, registries.json \"auths\" or the auth files (podrun login)",
                        self.registry
                    ),
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
        let scope = params
            .get("scope")
            .or((!self.repo.is_empty()).then_some(&default_scope));
        for (k, v) in [("service", params.get("service")), ("scope", scope)] {
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
        let bases = |r: &str, cfg: &RegistriesConfig, insecure: bool| -> Vec<Vec<String>> {
            sources(&Reference::parse(r).unwrap(), cfg, insecure)
                .unwrap()
                .into_iter()
                .map(|s| s.endpoint.bases)
                .collect()
        };
        assert_eq!(
            bases("nginx", &cfg, false),
            vec![vec!["https://registry-1.docker.io".to_string()]]
        );
        assert_eq!(
            bases("127.0.0.1:5000/x", &cfg, false)[0],
            vec!["http://127.0.0.1:5000"]
        );
        assert_eq!(
            bases("myreg:5000/x", &cfg, true)[0],
            vec!["https://myreg:5000", "http://myreg:5000"]
        );
        let mut cfg = RegistriesConfig::default();
        cfg.mirrors
            .insert("docker.io".into(), vec!["http://127.0.0.1:5999/".into()]);
        let eps = bases("busybox:1.30", &cfg, false);
        assert_eq!(eps[0], vec!["http://127.0.0.1:5999"]);
        assert_eq!(eps[1], vec!["https://registry-1.docker.io"]);
    }

    #[test]
    fn mirror_only_registries_never_list_themselves() {
        let mut cfg: RegistriesConfig = serde_json::from_str(
            r#"{"mirrors": {"docker.io": ["http://127.0.0.1:5999"]}, "mirrorOnly": ["docker.io"]}"#,
        )
        .unwrap();
        let r = Reference::parse("busybox:1.30").unwrap();
        let s = sources(&r, &cfg, false).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].endpoint.bases, vec!["http://127.0.0.1:5999"]);
        cfg.mirrors.clear();
        let e = sources(&r, &cfg, false).unwrap_err().to_string();
        assert!(
            e.contains("only through its mirrors") && e.contains("none is configured"),
            "{e}"
        );
        assert!(!e.contains("registry-1"), "{e}");
        let e = serde_json::from_str::<RegistriesConfig>(r#"{"mirror_only": []}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mirror_only"), "{e}");
    }

    #[test]
    fn registries_conf_mirrors_remaps_and_blocks() {
        let cfg = RegistriesConfig {
            conf: registries_conf::parse(
                r#"
[[registry]]
prefix = "docker.io"
location = "127.0.0.1:6000"
[[registry.mirror]]
location = "127.0.0.1:6001/hub"
[[registry]]
prefix = "quay.io/evil"
blocked = true
[[registry]]
location = "reg.example:5000"
insecure = true
"#,
                Path::new("t.conf"),
            )
            .unwrap(),
            ..Default::default()
        };
        let s = sources(&Reference::parse("nginx:1").unwrap(), &cfg, false).unwrap();
        let got: Vec<(String, String)> = s
            .iter()
            .map(|s| (s.endpoint.bases[0].clone(), s.repository.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "http://127.0.0.1:6001".to_string(),
                    "hub/library/nginx".to_string()
                ),
                (
                    "http://127.0.0.1:6000".to_string(),
                    "library/nginx".to_string()
                )
            ]
        );
        let e = sources(&Reference::parse("quay.io/evil/x").unwrap(), &cfg, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("blocked") && e.contains("t.conf"), "{e}");
        let s = sources(
            &Reference::parse("reg.example:5000/a").unwrap(),
            &cfg,
            false,
        )
        .unwrap();
        assert_eq!(
            s[0].endpoint.bases,
            vec!["https://reg.example:5000", "http://reg.example:5000"]
        );
        assert!(is_short_name("nginx") && is_short_name("library/nginx:1"));
        assert!(!is_short_name("localhost/x") && !is_short_name("a.io/x"));
    }
}
