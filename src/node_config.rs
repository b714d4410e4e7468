//! The node's settings, as kubelet reads them from a KubeletConfiguration file: kubelet's
//! field names, defaults and validation words.
//!
//! The file is the one `--config` (or PODRUN_NODE_CONFIG, which `--config` sets for the
//! processes podrun starts) names, else /etc/podrun/config.yaml, else
//! `<data dir>/config.yaml` (where it lived before); no file means the defaults. It holds
//! a KubeletConfiguration document, decoded strictly as kubelet does (an unknown field is
//! an error), and optionally a second YAML document of kind PodrunConfiguration
//! (apiVersion config.podrun.io/v1alpha1) for what kubelet has no field for: the address
//! of the Kubernetes API the agent serves. Two documents in one file, as kubeadm's
//! configuration file has them, keep a kubelet's own file readable here unchanged.
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Pids a pod may hold when the file does not say (kubelet: unlimited; podman: 2048):
/// enough for any real pod, few enough that a fork bomb leaves the host usable.
pub const DEFAULT_POD_PIDS_LIMIT: i64 = 4096;
/// kubelet's default maxPods.
pub const DEFAULT_MAX_PODS: i64 = 110;
/// Where the static pod manifests are (kubelet has none by default; kubeadm's is
/// /etc/kubernetes/manifests).
pub const DEFAULT_STATIC_POD_PATH: &str = "/etc/podrun/manifests";
/// kubelet's default containerLogMaxSize and containerLogMaxFiles.
pub const DEFAULT_CONTAINER_LOG_MAX_SIZE: &str = "10Mi";
pub const DEFAULT_CONTAINER_LOG_MAX_FILES: i32 = 5;
/// kubelet's default image garbage collection thresholds and minimum age.
pub const DEFAULT_IMAGE_GC_HIGH: i32 = 85;
pub const DEFAULT_IMAGE_GC_LOW: i32 = 80;
pub const DEFAULT_IMAGE_MINIMUM_GC_AGE: Duration = Duration::from_secs(120);
/// kubelet's default evictionHard (Linux).
pub const DEFAULT_EVICTION_HARD: [(&str, &str); 4] = [
    ("imagefs.available", "15%"),
    ("memory.available", "100Mi"),
    ("nodefs.available", "10%"),
    ("nodefs.inodesFree", "5%"),
];
/// The agent's Kubernetes API endpoint (the API server's secure port, on loopback).
pub const DEFAULT_API_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
pub const DEFAULT_API_PORT: u16 = 6443;
/// Where the agent of the default data dir writes the admin kubeconfig (as k3s writes
/// k3s.yaml); an agent of another data dir writes `<data-dir>/admin.kubeconfig`.
pub const DEFAULT_ADMIN_KUBECONFIG: &str = "/etc/podrun/admin.kubeconfig";

/// The file read when neither `--config` nor PODRUN_NODE_CONFIG names one.
pub const DEFAULT_PATH: &str = "/etc/podrun/config.yaml";
/// The environment variable naming the file (`--config` sets it).
pub const ENV: &str = "PODRUN_NODE_CONFIG";

const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
const KIND: &str = "KubeletConfiguration";
const PODRUN_API_VERSION: &str = "config.podrun.io/v1alpha1";
const PODRUN_KIND: &str = "PodrunConfiguration";

/// kubelet's eviction signals (pkg/kubelet/eviction/api).
pub const EVICTION_SIGNALS: [&str; 9] = [
    "memory.available",
    "allocatableMemory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
];

/// What went wrong reading the node configuration, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum NodeConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

/// The KubeletConfiguration fields podrun honours; any other is an error, as kubelet's
/// strict decoding has it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubeletConfiguration {
    api_version: Option<String>,
    #[allow(dead_code)] // read before decoding, to pick the document's type
    kind: Option<String>,
    pod_pids_limit: Option<i64>,
    max_pods: Option<i64>,
    static_pod_path: Option<String>,
    container_log_max_size: Option<String>,
    container_log_max_files: Option<i32>,
    eviction_hard: Option<BTreeMap<String, String>>,
    eviction_soft: Option<BTreeMap<String, String>>,
    eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    merge_default_eviction_settings: Option<bool>,
    #[serde(rename = "imageGCHighThresholdPercent")]
    image_gc_high_threshold_percent: Option<i32>,
    #[serde(rename = "imageGCLowThresholdPercent")]
    image_gc_low_threshold_percent: Option<i32>,
    #[serde(rename = "imageMinimumGCAge")]
    image_minimum_gc_age: Option<String>,
}

/// podrun's own document: settings kubelet has no field for.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PodrunConfiguration {
    api_version: Option<String>,
    #[allow(dead_code)] // read before decoding, to pick the document's type
    kind: Option<String>,
    api_server: Option<ApiServerFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiServerFile {
    address: Option<String>,
    port: Option<u16>,
    admin_kubeconfig: Option<PathBuf>,
}

/// An eviction threshold's value: an amount of the signal's resource, or a share of it.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdValue {
    /// Bytes (memory, fs), inodes or pids.
    Quantity(i128),
    /// A fraction in (0, 1), as kubelet keeps "10%" (0.1).
    Percentage(f64),
}

/// One eviction threshold: the signal is below the value (for its grace period, if soft).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub signal: String,
    pub value: ThresholdValue,
    pub grace_period: Option<Duration>,
}

/// The node's settings, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// pids.max of every pod's cgroup; -1 (or 0) is unlimited, as in kubelet.
    pub pod_pids_limit: i64,
    /// The node's pods capacity (and allocatable): pods past it are "Too many pods".
    pub max_pods: i64,
    /// The static pod manifest directory the agent watches.
    pub static_pod_path: PathBuf,
    /// A container log file is rotated past this many bytes.
    pub container_log_max_size: u64,
    /// Log files kept per container, the live one included.
    pub container_log_max_files: i32,
    /// Hard eviction thresholds, by signal.
    pub eviction_hard: Vec<Threshold>,
    /// Soft eviction thresholds, each with its grace period.
    pub eviction_soft: Vec<Threshold>,
    /// Image garbage collection starts above this disk usage and frees down to low.
    pub image_gc_high_threshold_percent: i32,
    pub image_gc_low_threshold_percent: i32,
    /// An unused image younger than this is never collected.
    pub image_minimum_gc_age: Duration,
    /// Where the agent serves the Kubernetes API.
    pub api_address: IpAddr,
    pub api_port: u16,
    /// The admin kubeconfig the agent writes (0600) for its API, when set
    /// (apiServer.adminKubeconfig); see [`DEFAULT_ADMIN_KUBECONFIG`] otherwise.
    pub admin_kubeconfig: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            pod_pids_limit: DEFAULT_POD_PIDS_LIMIT,
            max_pods: DEFAULT_MAX_PODS,
            static_pod_path: PathBuf::from(DEFAULT_STATIC_POD_PATH),
            container_log_max_size: 10 << 20,
            container_log_max_files: DEFAULT_CONTAINER_LOG_MAX_FILES,
            eviction_hard: default_eviction_hard(),
            eviction_soft: Vec::new(),
            image_gc_high_threshold_percent: DEFAULT_IMAGE_GC_HIGH,
            image_gc_low_threshold_percent: DEFAULT_IMAGE_GC_LOW,
            image_minimum_gc_age: DEFAULT_IMAGE_MINIMUM_GC_AGE,
            api_address: DEFAULT_API_ADDRESS,
            api_port: DEFAULT_API_PORT,
            admin_kubeconfig: None,
        }
    }
}

fn default_eviction_hard() -> Vec<Threshold> {
    let map = DEFAULT_EVICTION_HARD
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_thresholds("evictionHard", &map).unwrap_or_default()
}

impl NodeConfig {
    /// The pods' pids.max, None when unlimited.
    pub fn pod_pids_max(&self) -> Option<i64> {
        (self.pod_pids_limit > 0).then_some(self.pod_pids_limit)
    }
}

/// The configuration file for a data dir, and whether it was named explicitly
/// (`--config` or PODRUN_NODE_CONFIG): an explicit file must exist, as kubelet's
/// `--config` must.
pub fn locate(data_dir: &Path) -> (PathBuf, bool) {
    let named = std::env::var_os(ENV);
    choose(named.as_deref(), Path::new(DEFAULT_PATH).exists(), data_dir)
}

/// The lookup order: the named file, else the default path when it exists, else the
/// data dir's file (where it was read before /etc/podrun/config.yaml).
fn choose(
    named: Option<&std::ffi::OsStr>,
    default_exists: bool,
    data_dir: &Path,
) -> (PathBuf, bool) {
    match named {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ if default_exists => (PathBuf::from(DEFAULT_PATH), false),
        _ => (data_dir.join("config.yaml"), false),
    }
}

/// The configuration file for a data dir (see [`locate`]).
pub fn path(data_dir: &Path) -> PathBuf {
    locate(data_dir).0
}

/// Reads the node configuration; a missing default file gives the defaults.
pub fn load(data_dir: &Path) -> Result<NodeConfig, NodeConfigError> {
    let (path, explicit) = locate(data_dir);
    load_file(&path, explicit)
}

/// Reads one configuration file; when it is missing, `required` makes that an error.
pub fn load_file(path: &Path, required: bool) -> Result<NodeConfig, NodeConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|msg| NodeConfigError::Invalid {
            path: path.to_path_buf(),
            msg,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(NodeConfig::default())
        }
        Err(source) => Err(NodeConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses the file's documents (none, or only comments: the defaults).
pub fn parse(text: &str) -> Result<NodeConfig, String> {
    let mut kubelet: Option<KubeletConfiguration> = None;
    let mut podrun: Option<PodrunConfiguration> = None;
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc)
            .map_err(|e| format!("strict decoding error: {e}"))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or(KIND);
        let decode_err = |e: serde_yaml_ng::Error| format!("strict decoding error: {e}");
        match kind {
            KIND if kubelet.is_none() => {
                kubelet = Some(serde_yaml_ng::from_value(value).map_err(decode_err)?);
            }
            PODRUN_KIND if podrun.is_none() => {
                podrun = Some(serde_yaml_ng::from_value(value).map_err(decode_err)?);
            }
            KIND | PODRUN_KIND => return Err(format!("kind {kind:?} is given twice")),
            k => return Err(format!("kind {k:?}: want {KIND} (or {PODRUN_KIND})")),
        }
    }
    let kubelet = kubelet.unwrap_or_default();
    if let Some(v) = kubelet.api_version.as_deref().filter(|v| *v != API_VERSION) {
        return Err(format!("apiVersion {v:?}: want {API_VERSION}"));
    }
    let mut config = from_kubelet(kubelet)?;
    if let Some(p) = podrun {
        apply_podrun(&mut config, p)?;
    }
    Ok(config)
}

/// The KubeletConfiguration's settings, checked with kubelet's words.
fn from_kubelet(file: KubeletConfiguration) -> Result<NodeConfig, String> {
    let d = NodeConfig::default();
    let (eviction_hard, eviction_soft) = eviction(&file)?;
    let pod_pids_limit = file.pod_pids_limit.unwrap_or(d.pod_pids_limit);
    if pod_pids_limit < -1 {
        return Err(format!(
            "podPidsLimit: invalid value {pod_pids_limit}: must be -1 (unlimited) or a number of pids"
        ));
    }
    let max_pods = file.max_pods.unwrap_or(d.max_pods);
    if max_pods < 0 {
        return Err(format!(
            "invalid configuration: maxPods (--max-pods) {max_pods} must not be a negative number"
        ));
    }
    let static_pod_path = file
        .static_pod_path
        .map(PathBuf::from)
        .unwrap_or(d.static_pod_path);
    if !static_pod_path.is_absolute() {
        return Err(format!(
            "invalid configuration: staticPodPath {:?} must be an absolute path",
            static_pod_path.display().to_string()
        ));
    }
    let log_size = file
        .container_log_max_size
        .unwrap_or_else(|| DEFAULT_CONTAINER_LOG_MAX_SIZE.to_string());
    let container_log_max_size = log_max_size(&log_size)?;
    let container_log_max_files = file
        .container_log_max_files
        .unwrap_or(d.container_log_max_files);
    if container_log_max_files <= 1 {
        return Err("invalid configuration: containerLogMaxFiles must be greater than 1".into());
    }
    let high = file
        .image_gc_high_threshold_percent
        .unwrap_or(d.image_gc_high_threshold_percent);
    let low = file
        .image_gc_low_threshold_percent
        .unwrap_or(d.image_gc_low_threshold_percent);
    check_gc_thresholds(high, low)?;
    let image_minimum_gc_age = match file.image_minimum_gc_age.as_deref() {
        None => d.image_minimum_gc_age,
        Some(s) => match parse_go_duration(s) {
            Ok(n) if n < 0 => {
                return Err(format!(
                    "invalid configuration: imageMinimumGCAge {s} must not be negative"
                ))
            }
            Ok(n) => Duration::from_nanos(n as u64),
            Err(e) => return Err(format!("imageMinimumGCAge: {e}")),
        },
    };
    Ok(NodeConfig {
        pod_pids_limit,
        max_pods,
        static_pod_path,
        container_log_max_size,
        container_log_max_files,
        eviction_hard,
        eviction_soft,
        image_gc_high_threshold_percent: high,
        image_gc_low_threshold_percent: low,
        image_minimum_gc_age,
        ..d
    })
}

/// containerLogMaxSize in bytes, with the words of kubelet's container log manager.
fn log_max_size(s: &str) -> Result<u64, String> {
    let bad = |why: String| {
        format!("containerLogMaxSize: failed to parse container log max size {s:?}: {why}")
    };
    let q = crate::manifest::quantity::ParsedQuantity::parse(s).map_err(|e| bad(e.to_string()))?;
    let v = q.value().map_err(|e| bad(e.to_string()))?;
    if v <= 0 {
        return Err(bad("must be positive".into()));
    }
    u64::try_from(v).map_err(|_| bad("quantity is too large".into()))
}

/// kubelet's checks of the image garbage collection thresholds, in its words.
fn check_gc_thresholds(high: i32, low: i32) -> Result<(), String> {
    if !(0..=100).contains(&high) {
        return Err(format!("invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) {high} must be between 0 and 100, inclusive"));
    }
    if !(0..=100).contains(&low) {
        return Err(format!("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be between 0 and 100, inclusive"));
    }
    if low >= high {
        return Err(format!("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {high}"));
    }
    Ok(())
}

/// The hard and soft thresholds as kubelet's ParseThresholdConfig reads them. A given
/// evictionHard replaces the defaults unless mergeDefaultEvictionSettings is true.
fn eviction(file: &KubeletConfiguration) -> Result<(Vec<Threshold>, Vec<Threshold>), String> {
    let mut hard_map: BTreeMap<String, String> = DEFAULT_EVICTION_HARD
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(given) = &file.eviction_hard {
        if !file.merge_default_eviction_settings.unwrap_or(false) {
            hard_map.clear();
        }
        hard_map.extend(given.clone());
    }
    let hard = parse_thresholds("evictionHard", &hard_map)?;
    let empty = BTreeMap::new();
    let mut soft = parse_thresholds(
        "evictionSoft",
        file.eviction_soft.as_ref().unwrap_or(&empty),
    )?;
    let mut grace = BTreeMap::new();
    for (signal, val) in file.eviction_soft_grace_period.as_ref().unwrap_or(&empty) {
        let field = "evictionSoftGracePeriod";
        if !EVICTION_SIGNALS.contains(&signal.as_str()) {
            return Err(format!("{field}: unsupported eviction signal {signal}"));
        }
        let n = parse_go_duration(val).map_err(|e| format!("{field}: {e}"))?;
        if n < 0 {
            return Err(format!(
                "{field}: invalid eviction grace period specified: {val}, must be a positive value"
            ));
        }
        grace.insert(signal.clone(), Duration::from_nanos(n as u64));
    }
    for t in &mut soft {
        match grace.get(&t.signal) {
            Some(g) => t.grace_period = Some(*g),
            None => {
                return Err(format!(
                "evictionSoft: grace period must be specified for the soft eviction threshold {}",
                t.signal
            ))
            }
        }
    }
    Ok((hard, soft))
}

/// kubelet's parseThresholdStatements: "0%" and "100%" disable a signal.
fn parse_thresholds(field: &str, map: &BTreeMap<String, String>) -> Result<Vec<Threshold>, String> {
    let mut out = Vec::new();
    for (signal, val) in map {
        if !EVICTION_SIGNALS.contains(&signal.as_str()) {
            return Err(format!("{field}: unsupported eviction signal {signal}"));
        }
        let value = if let Some(num) = val.strip_suffix('%') {
            if val == "0%" || val == "100%" {
                continue;
            }
            let p: f64 = num.parse().map_err(|_| {
                format!("{field}: strconv.ParseFloat: parsing {num:?}: invalid syntax")
            })?;
            if p < 0.0 {
                return Err(format!(
                    "{field}: eviction percentage threshold {signal} must be >= 0%: {val}"
                ));
            }
            if p > 100.0 {
                return Err(format!(
                    "{field}: eviction percentage threshold {signal} must be <= 100%: {val}"
                ));
            }
            ThresholdValue::Percentage(p / 100.0)
        } else {
            let q = crate::manifest::quantity::ParsedQuantity::parse(val)
                .and_then(|q| q.value())
                .map_err(|e| format!("{field}: {signal}: {e}"))?;
            if q <= 0 {
                return Err(format!(
                    "{field}: eviction threshold {signal} must be positive: {val}"
                ));
            }
            ThresholdValue::Quantity(q)
        };
        out.push(Threshold {
            signal: signal.clone(),
            value,
            grace_period: None,
        });
    }
    Ok(out)
}

/// The PodrunConfiguration document's settings.
fn apply_podrun(config: &mut NodeConfig, doc: PodrunConfiguration) -> Result<(), String> {
    if let Some(v) = doc
        .api_version
        .as_deref()
        .filter(|v| *v != PODRUN_API_VERSION)
    {
        return Err(format!(
            "apiVersion {v:?} of {PODRUN_KIND}: want {PODRUN_API_VERSION}"
        ));
    }
    if let Some(api) = doc.api_server {
        if let Some(a) = api.address {
            config.api_address = a.parse().map_err(|_| {
                format!("apiServer.address: invalid value {a:?}: must be an IP address")
            })?;
        }
        if let Some(p) = api.port {
            if p == 0 {
                return Err(
                    "apiServer.port: invalid value 0: must be between 1 and 65535, inclusive"
                        .into(),
                );
            }
            config.api_port = p;
        }
        if let Some(k) = api.admin_kubeconfig {
            config.admin_kubeconfig = Some(k);
        }
    }
    Ok(())
}

/// A duration in Go's time.ParseDuration syntax ("2m", "1h30m", "1.5s", "300ms"), in
/// nanoseconds; the errors are Go's.
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(n);
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(u);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        total += value * scale;
        rest = next;
    }
    let n = total.round() as i128;
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests;
