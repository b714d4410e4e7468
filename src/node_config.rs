//! The node's settings, as kubelet reads them from a KubeletConfiguration file: kubelet's
//! field names, podrun's defaults. The file is `<data dir>/config.yaml` (kubelet's is
//! /var/lib/kubelet/config.yaml), or the path in PODRUN_NODE_CONFIG; no file means the
//! defaults. Honoured: podPidsLimit, maxPods.
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Pids a pod may hold when the file does not say (kubelet: unlimited; podman: 2048):
/// enough for any real pod, few enough that a fork bomb leaves the host usable.
pub const DEFAULT_POD_PIDS_LIMIT: i64 = 4096;

/// kubelet's default maxPods.
pub const DEFAULT_MAX_PODS: i64 = 110;

const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
const KIND: &str = "KubeletConfiguration";

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

/// The fields podrun honours; any other is an error, as kubelet's strict decoding has it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubeletConfiguration {
    api_version: Option<String>,
    kind: Option<String>,
    pod_pids_limit: Option<i64>,
    max_pods: Option<i64>,
}

/// The node's settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// pids.max of every pod's cgroup; -1 (or 0) is unlimited, as in kubelet.
    pub pod_pids_limit: i64,
    /// The node's pods capacity (and allocatable): pods past it are "Too many pods".
    pub max_pods: i64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            pod_pids_limit: DEFAULT_POD_PIDS_LIMIT,
            max_pods: DEFAULT_MAX_PODS,
        }
    }
}

impl NodeConfig {
    /// The pods' pids.max, None when unlimited.
    pub fn pod_pids_max(&self) -> Option<i64> {
        (self.pod_pids_limit > 0).then_some(self.pod_pids_limit)
    }
}

/// The configuration file for a data dir.
pub fn path(data_dir: &Path) -> PathBuf {
    match std::env::var_os("PODRUN_NODE_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => data_dir.join("config.yaml"),
    }
}

/// Reads the node configuration; a missing file gives the defaults.
pub fn load(data_dir: &Path) -> Result<NodeConfig, NodeConfigError> {
    let path = path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|msg| NodeConfigError::Invalid { path, msg }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeConfig::default()),
        Err(source) => Err(NodeConfigError::Read { path, source }),
    }
}

/// Parses a KubeletConfiguration document (empty: the defaults).
pub fn parse(text: &str) -> Result<NodeConfig, String> {
    let file: KubeletConfiguration = if text.trim().is_empty() {
        KubeletConfiguration::default()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| format!("strict decoding error: {e}"))?
    };
    if let Some(v) = file.api_version.as_deref().filter(|v| *v != API_VERSION) {
        return Err(format!("apiVersion {v:?}: want {API_VERSION}"));
    }
    if let Some(k) = file.kind.as_deref().filter(|k| *k != KIND) {
        return Err(format!("kind {k:?}: want {KIND}"));
    }
    let pod_pids_limit = file.pod_pids_limit.unwrap_or(DEFAULT_POD_PIDS_LIMIT);
    if pod_pids_limit < -1 {
        return Err(format!(
            "podPidsLimit: invalid value {pod_pids_limit}: must be -1 (unlimited) or a number of pids"
        ));
    }
    let max_pods = file.max_pods.unwrap_or(DEFAULT_MAX_PODS);
    if max_pods < 0 {
        return Err(format!(
            "maxPods: invalid value {max_pods}: must be a non-negative number of pods"
        ));
    }
    Ok(NodeConfig {
        pod_pids_limit,
        max_pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_without_a_file_or_field() {
        assert_eq!(parse("").unwrap().pod_pids_limit, 4096);
        let c = parse("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n")
            .unwrap();
        assert_eq!(c.pod_pids_max(), Some(4096));
        let dir = std::env::temp_dir().join(format!("podrun-nodecfg-{}", std::process::id()));
        assert_eq!(load(&dir).unwrap(), NodeConfig::default());
    }

    #[test]
    fn pod_pids_limit_is_read_and_minus_one_is_unlimited() {
        assert_eq!(
            parse("podPidsLimit: 100").unwrap().pod_pids_max(),
            Some(100)
        );
        assert_eq!(parse("podPidsLimit: -1").unwrap().pod_pids_max(), None);
        let e = parse("podPidsLimit: -5").unwrap_err();
        assert!(e.starts_with("podPidsLimit: invalid value -5"), "{e}");
    }

    #[test]
    fn max_pods_defaults_to_kubelets_110() {
        assert_eq!(parse("").unwrap().max_pods, 110);
        assert_eq!(parse("maxPods: 5").unwrap().max_pods, 5);
        assert!(parse("maxPods: -1").is_err());
    }

    #[test]
    fn unknown_fields_and_other_kinds_are_errors() {
        let e = parse("podPidLimit: 5").unwrap_err();
        assert!(e.contains("unknown field `podPidLimit`"), "{e}");
        let e = parse("kind: Pod").unwrap_err();
        assert!(e.contains("KubeletConfiguration"), "{e}");
    }
}
