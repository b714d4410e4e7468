//! This node: name, labels, taints, capacity and allocatable, persisted in <data-dir>/node.json.
//!
//! The node is a `k8s_openapi` `Node`, so `-o yaml/json` print what kubectl prints. Labels,
//! taints, annotations, uid and creation time are persisted; the status (capacity,
//! allocatable, conditions, addresses, system info) is read from the host on every load,
//! as kubelet re-reads it. Allocatable follows kubelet's defaults: no kube-reserved or
//! system-reserved, minus the default hard-eviction thresholds (memory.available<100Mi,
//! nodefs.available<10%); cpu and pods are not reduced.
use crate::manifest::quantity::{format_binary, format_cpu};
use crate::util::{write_atomic, FileLock};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_OS: &str = "kubernetes.io/os";
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// kubelet's default hard eviction threshold `memory.available<100Mi`.
pub const EVICTION_MEMORY_BYTES: i128 = 100 << 20;
/// kubelet's default hard eviction threshold `nodefs.available<10%`, in percent.
pub const EVICTION_NODEFS_PERCENT: i128 = 10;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A node name that is not this node, in the API server's words.
    #[error("nodes {0:?} not found")]
    NotFound(String),
    /// A refused label or taint change, in kubectl's words (printed after `error: `).
    #[error("{0}")]
    Rejected(String),
}

fn io_err<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> NodeError + 'p {
    move |source| NodeError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The node's persisted state under one data directory.
#[derive(Debug, Clone)]
pub struct NodeStore {
    data_dir: PathBuf,
}

impl NodeStore {
    pub fn new(data_dir: &Path) -> NodeStore {
        NodeStore {
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.data_dir.join("node.json")
    }

    fn lock_path(&self) -> PathBuf {
        self.data_dir.join("node.lock")
    }

    /// This node with a fresh status; created (and persisted) on first use.
    pub fn load(&self) -> Result<Node, NodeError> {
        let path = self.path();
        let mut node: Node = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| NodeError::Json {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return self.update(|_| Ok(())).map(|(n, ())| n);
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        node.status = Some(host_status(&node, &self.data_dir));
        Ok(node)
    }

    /// Loads `name`, failing with kubectl's NotFound when it is not this node.
    pub fn get(&self, name: &str) -> Result<Node, NodeError> {
        let node = self.load()?;
        if node_name(&node) != name {
            return Err(NodeError::NotFound(name.to_string()));
        }
        Ok(node)
    }

    /// Read-modify-write under the node lock; `f` sees the persisted node (created if
    /// missing) and its change is written atomically only when `f` succeeds.
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut Node) -> Result<R, NodeError>,
    ) -> Result<(Node, R), NodeError> {
        std::fs::create_dir_all(&self.data_dir).map_err(io_err("create", &self.data_dir))?;
        let lock_path = self.lock_path();
        let _lock = FileLock::exclusive(&lock_path).map_err(io_err("lock", &lock_path))?;
        let path = self.path();
        let mut node = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| NodeError::Json {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_node(),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let out = f(&mut node)?;
        // Bumped on every write, so a supervisor can poll for node changes cheaply.
        let version = node
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        node.metadata.resource_version = Some((version + 1).to_string());
        node.status = None;
        let json = serde_json::to_vec_pretty(&node).map_err(|source| NodeError::Json {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &json).map_err(io_err("write", &path))?;
        node.status = Some(host_status(&node, &self.data_dir));
        Ok((node, out))
    }
}

pub fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

pub fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// kubelet's node name: `PODRUN_NODE_NAME` if set, else the host name, lower-cased.
pub fn default_node_name() -> String {
    if let Ok(n) = std::env::var("PODRUN_NODE_NAME") {
        if !n.trim().is_empty() {
            return n.trim().to_lowercase();
        }
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// GOARCH for this build (`amd64`, `arm64`, ...), as kubelet labels it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn new_node() -> Node {
    let name = default_node_name();
    let labels: BTreeMap<String, String> = [
        ("beta.kubernetes.io/arch", go_arch()),
        ("beta.kubernetes.io/os", "linux"),
        (LABEL_ARCH, go_arch()),
        (LABEL_HOSTNAME, name.as_str()),
        (LABEL_OS, "linux"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let uid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .ok();
    Node {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            uid,
            creation_timestamp: Some(crate::util::now_seconds()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// MemTotal from /proc/meminfo, in bytes.
pub fn mem_total_bytes() -> Option<i128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Size of the filesystem holding `dir` (or its nearest existing ancestor), in bytes.
pub fn fs_capacity_bytes(dir: &Path) -> Option<i128> {
    let mut p = Some(dir);
    while let Some(d) = p {
        if d.exists() {
            let st = nix::sys::statvfs::statvfs(d).ok()?;
            return Some(i128::from(st.blocks()) * i128::from(st.fragment_size()));
        }
        p = d.parent();
    }
    None
}

/// Pre-allocated huge pages per size (`hugepages-2Mi` → bytes), as kubelet reports them.
pub fn hugepages() -> Vec<(String, i128)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kb) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<i128>().ok())
        else {
            continue;
        };
        let count: i128 = std::fs::read_to_string(e.path().join("nr_hugepages"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let size = if kb % (1 << 20) == 0 {
            format!("{}Gi", kb >> 20)
        } else if kb % 1024 == 0 {
            format!("{}Mi", kb >> 10)
        } else {
            format!("{kb}Ki")
        };
        out.push((format!("hugepages-{size}"), count * kb * 1024));
    }
    out.sort();
    out
}

fn online_cpus() -> i128 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .map(i128::from)
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// The IPv4 address of the interface carrying the default route (kubelet's InternalIP).
fn internal_ip() -> Option<String> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let iface = routes.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
    })?;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        if a.interface_name != iface {
            continue;
        }
        if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
            return Some(sin.ip().to_string());
        }
    }
    None
}

fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// The kubelet version podrun reports: the Kubernetes API level it implements, tagged.
pub fn kubelet_version() -> String {
    format!("v1.34.0-podrun.{}", env!("CARGO_PKG_VERSION"))
}

/// Capacity, allocatable, conditions, addresses and system info read from the host.
pub fn host_status(node: &Node, data_dir: &Path) -> NodeStatus {
    let q = |s: String| Quantity(s);
    let cpu = online_cpus() * 1000;
    let mem = mem_total_bytes().unwrap_or(0);
    let disk = fs_capacity_bytes(data_dir).unwrap_or(0);
    let huge = hugepages();
    let huge_total: i128 = huge.iter().map(|(_, b)| b).sum();
    // A broken file fails `up` with its name; here it only falls back to the default.
    let max_pods = crate::node_config::load(data_dir)
        .map(|c| c.max_pods)
        .unwrap_or(crate::node_config::DEFAULT_MAX_PODS);
    let mut capacity: BTreeMap<String, Quantity> = [
        ("cpu", format_cpu(cpu)),
        ("ephemeral-storage", format_binary(disk)),
        ("memory", format_binary(mem)),
        ("pods", max_pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), q(v)))
    .collect();
    let alloc_mem = (mem - EVICTION_MEMORY_BYTES - huge_total).max(0);
    let alloc_disk = disk - disk * EVICTION_NODEFS_PERCENT / 100;
    let mut allocatable: BTreeMap<String, Quantity> = [
        ("cpu", format_cpu(cpu)),
        ("ephemeral-storage", format_binary(alloc_disk)),
        ("memory", format_binary(alloc_mem)),
        ("pods", max_pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), q(v)))
    .collect();
    for (name, bytes) in huge {
        capacity.insert(name.clone(), q(format_binary(bytes)));
        allocatable.insert(name, q(format_binary(bytes)));
    }
    let created = node.metadata.creation_timestamp.clone();
    let heartbeat = Some(crate::util::now_seconds());
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: heartbeat.clone(),
        last_transition_time: created.clone(),
    };
    let conditions = vec![
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ];
    let mut addresses = Vec::new();
    if let Some(ip) = internal_ip() {
        addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: ip,
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: node_labels(node)
            .get(LABEL_HOSTNAME)
            .cloned()
            .unwrap_or_else(|| node_name(node).to_string()),
    });
    let uname = nix::sys::utsname::uname().ok();
    let node_info = NodeSystemInfo {
        architecture: go_arch().to_string(),
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        container_runtime_version: format!("podrun://{}", env!("CARGO_PKG_VERSION")),
        kernel_version: uname
            .as_ref()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        kube_proxy_version: String::new(),
        kubelet_version: kubelet_version(),
        machine_id: read_trim("/etc/machine-id"),
        operating_system: "linux".into(),
        os_image: os_image(),
        swap: None,
        system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
    };
    NodeStatus {
        addresses: Some(addresses),
        allocatable: Some(allocatable),
        capacity: Some(capacity),
        conditions: Some(conditions),
        node_info: Some(node_info),
        ..Default::default()
    }
}

pub use crate::manifest::labels::{validate_label_key, validate_label_value};

// ---------------------------------------------------------------------------------------
// `label node` and `taint node`, with kubectl's parsing, checks and messages.

/// What `label` did, as kubectl words it after `node/NAME `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOutcome {
    Labeled,
    Unlabeled,
    /// Labels both added (or changed) and removed.
    Changed,
    NotLabeled,
}

impl LabelOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelOutcome::Labeled => "labeled",
            LabelOutcome::Unlabeled => "unlabeled",
            LabelOutcome::Changed => "label(s) changed",
            LabelOutcome::NotLabeled => "not labeled",
        }
    }
}

/// Parsed `k=v` / `k-` arguments (kubectl's parseLabels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChanges {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

pub fn parse_label_specs(specs: &[String]) -> Result<LabelChanges, NodeError> {
    let mut out = LabelChanges::default();
    for spec in specs {
        if spec.contains('=') {
            let parts: Vec<&str> = spec.split('=').collect();
            if parts.len() != 2 {
                return Err(NodeError::Rejected(format!("invalid label spec: {spec}")));
            }
            if let Err(e) = validate_label_value(parts[1]) {
                return Err(NodeError::Rejected(format!(
                    "invalid label value: {spec:?}: {e}"
                )));
            }
            out.set.insert(parts[0].to_string(), parts[1].to_string());
        } else if let Some(key) = spec.strip_suffix('-') {
            out.remove.push(key.to_string());
        } else {
            return Err(NodeError::Rejected(format!("unknown label spec: {spec}")));
        }
    }
    if out.remove.iter().any(|k| out.set.contains_key(k)) {
        return Err(NodeError::Rejected(
            "can not both modify and remove a label in the same command".into(),
        ));
    }
    if out.set.is_empty() && out.remove.is_empty() {
        return Err(NodeError::Rejected(
            "at least one label update is required".into(),
        ));
    }
    Ok(out)
}

/// Applies label changes to `node`. Returns the outcome and the lines kubectl prints
/// before it (`label "x" not found.`, on stdout).
pub fn apply_labels(
    node: &mut Node,
    changes: &LabelChanges,
    overwrite: bool,
) -> Result<(LabelOutcome, Vec<String>), NodeError> {
    let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
    if !overwrite {
        let errs: Vec<String> = changes
            .set
            .iter()
            .filter_map(|(k, v)| {
                labels.get(k).filter(|cur| *cur != v).map(|cur| {
                    format!("'{k}' already has a value ({cur}), and --overwrite is false")
                })
            })
            .collect();
        if !errs.is_empty() {
            return Err(NodeError::Rejected(aggregate(errs)));
        }
    }
    // The API server validates the keys it stores.
    for k in changes.set.keys() {
        if let Err(e) = validate_label_key(k) {
            return Err(NodeError::Rejected(format!(
                "The Node {:?} is invalid: metadata.labels: Invalid value: {k:?}: {e}",
                node.metadata.name.as_deref().unwrap_or("")
            )));
        }
    }
    let before = labels.clone();
    let mut warnings = Vec::new();
    for k in &changes.remove {
        if labels.remove(k).is_none() {
            warnings.push(format!("label {k:?} not found."));
        }
    }
    for (k, v) in &changes.set {
        labels.insert(k.clone(), v.clone());
    }
    // kubectl's updateDataChangeMsg.
    let unlabeled = before.keys().any(|k| !labels.contains_key(k));
    let labeled = labels.iter().any(|(k, v)| before.get(k) != Some(v));
    let outcome = match (labeled, unlabeled) {
        (true, true) => LabelOutcome::Changed,
        (true, false) => LabelOutcome::Labeled,
        (false, true) => LabelOutcome::Unlabeled,
        (false, false) => LabelOutcome::NotLabeled,
    };
    Ok((outcome, warnings))
}

/// utilerrors.NewAggregate's text: one error alone, several in brackets.
fn aggregate(errs: Vec<String>) -> String {
    if errs.len() == 1 {
        errs.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

pub const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `key[=value]:Effect` in kubectl's text (Taint.ToString).
pub fn taint_string(t: &Taint) -> String {
    let value = t.value.as_deref().unwrap_or("");
    match (t.effect.is_empty(), value.is_empty()) {
        (true, true) => t.key.clone(),
        (true, false) => format!("{}={}:", t.key, value),
        (false, true) => format!("{}:{}", t.key, t.effect),
        (false, false) => format!("{}={}:{}", t.key, value, t.effect),
    }
}

/// kubectl's parseTaint for one spec (without the trailing '-').
fn parse_taint(spec: &str) -> Result<Taint, NodeError> {
    let invalid = |extra: Option<String>| match extra {
        Some(e) => NodeError::Rejected(format!("invalid taint spec: {spec}, {e}")),
        None => NodeError::Rejected(format!("invalid taint spec: {spec}")),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (key, value, effect) = match parts.as_slice() {
        [key] => (key.to_string(), None, String::new()),
        [kv, effect] => {
            if !EFFECTS.contains(effect) {
                return Err(NodeError::Rejected(format!(
                    "invalid taint effect: {effect}, unsupported taint effect"
                )));
            }
            let kv: Vec<&str> = kv.split('=').collect();
            match kv.as_slice() {
                [k] => (k.to_string(), None, effect.to_string()),
                [k, v] => {
                    if let Err(e) = validate_label_value(v) {
                        return Err(invalid(Some(e)));
                    }
                    (
                        k.to_string(),
                        Some(v.to_string()).filter(|v| !v.is_empty()),
                        effect.to_string(),
                    )
                }
                _ => return Err(invalid(None)),
            }
        }
        _ => return Err(invalid(None)),
    };
    if let Err(e) = validate_label_key(&key) {
        return Err(invalid(Some(e)));
    }
    Ok(Taint {
        key,
        value,
        effect,
        time_added: None,
    })
}

/// Parsed `k=v:Effect` / `k:Effect-` / `k-` arguments (kubectl's ParseTaints).
#[derive(Debug, Clone, Default)]
pub struct TaintChanges {
    pub add: Vec<Taint>,
    pub remove: Vec<Taint>,
}

pub fn parse_taint_specs(specs: &[String]) -> Result<TaintChanges, NodeError> {
    let mut out = TaintChanges::default();
    for spec in specs {
        if let Some(s) = spec.strip_suffix('-') {
            let t = parse_taint(s)?;
            out.remove.push(Taint {
                key: t.key,
                effect: t.effect,
                value: None,
                time_added: None,
            });
        } else {
            let t = parse_taint(spec)?;
            if t.effect.is_empty() {
                return Err(NodeError::Rejected(format!("invalid taint spec: {spec}")));
            }
            if out
                .add
                .iter()
                .any(|o| o.key == t.key && o.effect == t.effect)
            {
                return Err(NodeError::Rejected(format!(
                    "duplicated taints with the same key and effect: {}",
                    go_taint_struct(&t)
                )));
            }
            out.add.push(t);
        }
    }
    if out.add.is_empty() && out.remove.is_empty() {
        return Err(NodeError::Rejected(
            "at least one taint update is required".into(),
        ));
    }
    let conflicts: Vec<String> = out
        .remove
        .iter()
        .filter(|r| {
            out.add
                .iter()
                .any(|a| a.key == r.key && (r.effect.is_empty() || a.effect == r.effect))
        })
        .map(taint_string)
        .collect();
    if !conflicts.is_empty() {
        return Err(NodeError::Rejected(format!(
            "can not both modify and remove the following taint(s) in the same command: {}",
            conflicts.join(", ")
        )));
    }
    Ok(out)
}

/// Go's `%v` of a v1.Taint, as kubectl's duplicate error prints it.
fn go_taint_struct(t: &Taint) -> String {
    format!(
        "{{{} {} {} <nil>}}",
        t.key,
        t.value.as_deref().unwrap_or(""),
        t.effect
    )
}

/// What `taint` did, as kubectl words it after `node/NAME `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintOutcome {
    Tainted,
    Untainted,
    Modified,
}

impl TaintOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintOutcome::Tainted => "tainted",
            TaintOutcome::Untainted => "untainted",
            TaintOutcome::Modified => "modified",
        }
    }
}

/// Applies taint changes as kubectl's reorganizeTaints does: new taints first, then the
/// old ones they do not replace, then removals; NoExecute taints get timeAdded.
pub fn apply_taints(
    node: &mut Node,
    changes: &TaintChanges,
    overwrite: bool,
) -> Result<TaintOutcome, NodeError> {
    let name = node_name(node).to_string();
    let spec = node.spec.get_or_insert_with(NodeSpec::default);
    let old: Vec<Taint> = spec.taints.clone().unwrap_or_default();
    if !overwrite {
        let exists: Vec<&str> = changes
            .add
            .iter()
            .flat_map(|t| {
                old.iter()
                    .filter(|o| o.key == t.key && o.effect == t.effect)
                    .map(|_| t.key.as_str())
            })
            .collect();
        if !exists.is_empty() {
            return Err(NodeError::Rejected(format!(
                "node {name} already has {} taint(s) with same effect(s) and --overwrite is false",
                exists.join(",")
            )));
        }
    }
    let stamp = crate::util::now_seconds();
    let mut new: Vec<Taint> = changes
        .add
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.effect == "NoExecute" {
                // Keep the original time when an identical taint is re-applied.
                t.time_added = old
                    .iter()
                    .find(|o| o.key == t.key && o.effect == t.effect && o.value == t.value)
                    .and_then(|o| o.time_added.clone())
                    .or_else(|| Some(stamp.clone()));
            }
            t
        })
        .collect();
    for o in &old {
        if !new.iter().any(|t| t.key == o.key && t.effect == o.effect) {
            new.push(o.clone());
        }
    }
    let added = old.len() != new.len();
    let mut errs = Vec::new();
    let mut deleted = false;
    for r in &changes.remove {
        let before = new.len();
        new.retain(|t| !(t.key == r.key && (r.effect.is_empty() || t.effect == r.effect)));
        deleted = new.len() != before;
        if !deleted {
            errs.push(format!("taint {:?} not found", taint_string(r)));
        }
    }
    if !errs.is_empty() {
        return Err(NodeError::Rejected(aggregate(errs)));
    }
    spec.taints = if new.is_empty() { None } else { Some(new) };
    Ok(if (added && deleted) || overwrite {
        TaintOutcome::Modified
    } else if added {
        TaintOutcome::Tainted
    } else {
        TaintOutcome::Untainted
    })
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
