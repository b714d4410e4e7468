//! The CNI backend: runs the plugins of the first network configuration list in the
//! config dir per the CNI specification (ADD in order, DEL in reverse with the cached
//! result, CHECK), with the CNI_* environment and each plugin's config on stdin.
use super::nft::HostPort;
use super::{NetworkConfig, NetworkError};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a CNI ADD made, enough for DEL and CHECK later (also after a crash).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniAttachment {
    pub ip: String,
    pub conflist: Value,
    pub conf_file: PathBuf,
    pub container_id: String,
    pub netns: PathBuf,
    /// The namespace's identity (`net:[inode]`) at ADD: a later DEL enters `netns` only
    /// while it is still that namespace (a crashed pod's pid may belong to another process).
    #[serde(default)]
    pub netns_id: String,
    pub ifname: String,
    pub args: String,
    pub bin_dirs: Vec<PathBuf>,
    pub port_mappings: Vec<Value>,
    pub result: Value,
}

fn cerr(plugin: &str, reason: impl Into<String>) -> NetworkError {
    NetworkError::Cni {
        plugin: plugin.to_string(),
        reason: reason.into(),
    }
}

/// The network list kubelet/libcni would pick: the first `*.conflist` / `*.conf` / `*.json`
/// by file name; a single-plugin `.conf` becomes a one-plugin list.
pub fn load_conflist(dir: &Path) -> Result<(PathBuf, Value), NetworkError> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| cerr("config", format!("{}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    let file = files.into_iter().next().ok_or_else(|| {
        cerr(
            "config",
            format!("no network configuration in {}", dir.display()),
        )
    })?;
    let data =
        std::fs::read(&file).map_err(|e| cerr("config", format!("{}: {e}", file.display())))?;
    let mut v: Value = serde_json::from_slice(&data)
        .map_err(|e| cerr("config", format!("{}: {e}", file.display())))?;
    if v.get("plugins").is_none() {
        let plugin = v.clone();
        v = json!({"cniVersion": plugin["cniVersion"], "name": plugin["name"], "plugins": [plugin]});
    }
    if !v["plugins"].is_array() || v["name"].as_str().is_none() {
        return Err(cerr(
            "config",
            format!("{}: needs a name and a plugins list", file.display()),
        ));
    }
    Ok((file, v))
}

impl CniAttachment {
    fn plugins(&self) -> Vec<Value> {
        self.conflist["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// One plugin's stdin: its own config plus name, cniVersion, prevResult and the
    /// runtimeConfig of the capabilities it declares.
    fn plugin_config(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut c = plugin.clone();
        c["name"] = self.conflist["name"].clone();
        c["cniVersion"] = self.conflist["cniVersion"].clone();
        if let Some(p) = prev {
            c["prevResult"] = p.clone();
        }
        if plugin["capabilities"]["portMappings"].as_bool() == Some(true) {
            c["runtimeConfig"] = json!({"portMappings": self.port_mappings});
        }
        c
    }

    fn exec(
        &self,
        command: &str,
        plugin: &Value,
        prev: Option<&Value>,
    ) -> Result<Value, NetworkError> {
        let ty = plugin["type"].as_str().unwrap_or("");
        if ty.is_empty() || ty.contains('/') {
            return Err(cerr(
                "config",
                format!("plugin type {ty:?} is not a plugin name"),
            ));
        }
        let bin = self
            .bin_dirs
            .iter()
            .map(|d| d.join(ty))
            .find(|p| p.is_file())
            .ok_or_else(|| cerr(ty, format!("not found in {}", join_paths(&self.bin_dirs))))?;
        let stdin = serde_json::to_vec(&self.plugin_config(plugin, prev))
            .map_err(|e| cerr(ty, e.to_string()))?;
        // DEL may run after the namespace is gone; the spec allows an empty CNI_NETNS then.
        let netns = if command == "ADD" || self.netns_is_ours() {
            self.netns.clone()
        } else {
            PathBuf::new()
        };
        if netns.as_os_str().is_empty() && command == "CHECK" {
            return Err(cerr(
                ty,
                format!(
                    "CHECK: the pod's network namespace {} is gone",
                    self.netns.display()
                ),
            ));
        }
        let mut child = Command::new(&bin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", join_paths(&self.bin_dirs))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| cerr(ty, format!("{}: {e}", bin.display())))?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(&stdin)
                .map_err(|e| cerr(ty, format!("writing config: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| cerr(ty, e.to_string()))?;
        if !out.status.success() {
            // Errors come as {"code", "msg", "details"} on stdout.
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let msg = match v["msg"].as_str() {
                Some(m) => format!(
                    "{command} failed: {m}{}",
                    v["details"]
                        .as_str()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                None => format!(
                    "{command} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            };
            return Err(cerr(ty, msg));
        }
        if out.stdout.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| cerr(ty, format!("{command} result: {e}")))
    }

    /// Whether `netns` still names the namespace ADD attached (and not this process's own).
    fn netns_is_ours(&self) -> bool {
        let now = std::fs::read_link(&self.netns)
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let own = std::fs::read_link("/proc/self/ns/net")
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        !now.is_empty() && now == self.netns_id && now != own
    }

    /// CNI DEL through every plugin in reverse order; goes on after a failure.
    pub fn del(&self) -> Result<(), NetworkError> {
        let mut first = None;
        for p in self.plugins().iter().rev() {
            if let Err(e) = self.exec("DEL", p, Some(&self.result)) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// CNI CHECK through every plugin in order.
    pub fn check(&self) -> Result<(), NetworkError> {
        for p in self.plugins() {
            self.exec("CHECK", &p, Some(&self.result))?;
        }
        Ok(())
    }
}

fn join_paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// CNI ADD for the pod: runs the list's plugins in order, each given the previous result;
/// on a failure runs DEL for what was added. The pod IP is the result's first IPv4 address.
pub fn add(
    cfg: &NetworkConfig,
    pod_dir: &Path,
    pod: &Pod,
    netns: &Path,
    ports: &[HostPort],
) -> Result<CniAttachment, NetworkError> {
    let (conf_file, conflist) = load_conflist(&cfg.cni_conf_dir)?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let netns_id = std::fs::read_link(netns)
        .map(|l| l.to_string_lossy().into_owned())
        .map_err(|e| cerr("netns", format!("{}: {e}", netns.display())))?;
    let own = std::fs::read_link("/proc/self/ns/net")
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    if netns_id == own {
        return Err(cerr(
            "netns",
            format!("{} is the host's network namespace", netns.display()),
        ));
    }
    let container_id: String = if uid.is_empty() {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(pod_dir.as_os_str().as_encoded_bytes()))
    } else {
        uid.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
    };
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut att = CniAttachment {
        ip: String::new(),
        conflist,
        conf_file,
        container_id: container_id.clone(),
        netns: netns.to_path_buf(),
        netns_id,
        ifname: "eth0".into(),
        args: format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={uid}"),
        bin_dirs: cfg.cni_bin_dirs.clone(),
        port_mappings: ports
            .iter()
            .map(|p| {
                let mut m = json!({"hostPort": p.host_port, "containerPort": p.port, "protocol": p.proto});
                if let Some(h) = p.host_ip {
                    m["hostIP"] = json!(h.to_string());
                }
                m
            })
            .collect(),
        result: Value::Null,
    };
    let mut prev: Option<Value> = None;
    for p in att.plugins() {
        match att.exec("ADD", &p, prev.as_ref()) {
            Ok(r) => prev = Some(r),
            Err(e) => {
                att.result = prev.unwrap_or(Value::Null);
                let _ = att.del();
                return Err(e);
            }
        }
    }
    att.result = prev.unwrap_or(Value::Null);
    let ip = att.result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|i| {
            let a = i["address"].as_str()?;
            let ip = a.split('/').next()?;
            ip.parse::<std::net::Ipv4Addr>()
                .ok()
                .map(|_| ip.to_string())
        });
    match ip {
        Some(ip) => {
            att.ip = ip;
            Ok(att)
        }
        None => {
            let _ = att.del();
            Err(cerr(
                "result",
                format!("no IPv4 address in the result: {}", att.result),
            ))
        }
    }
}
