//! Loading and validating a bundle's config.json, with errors that name the field.
use super::error::{Result, RuntimeError};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// A bundle with its parsed config and resolved rootfs.
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// config.json exactly as read (copied into the state dir for `exec`).
    pub raw: Vec<u8>,
    pub spec: Spec,
    /// Absolute, symlink-free rootfs directory.
    pub rootfs: PathBuf,
}

const NAMESPACE_TYPES: &[&str] = &[
    "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
];

/// A config without a mount namespace: the container inherits the runtime's (the
/// spec), so nothing may be mounted for it. runc refuses masked/readonly paths in runc's
/// words; it makes the other mounts (and / propagation) in its caller's namespace and
/// leaves them there, which podrun never does to its caller: those are refused too,
/// naming the field. What remains runs chrooted into the rootfs, as runc does.
fn without_mount_namespace(spec: &Spec, field: &dyn Fn(&str, &str) -> RuntimeError) -> Result<()> {
    let linux = spec.linux().as_ref();
    let masked = linux
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|v| !v.is_empty());
    let readonly = linux
        .and_then(|l| l.readonly_paths().as_ref())
        .is_some_and(|v| !v.is_empty());
    if masked || readonly {
        let f = if masked {
            "linux.maskedPaths"
        } else {
            "linux.readonlyPaths"
        };
        return Err(field(
            f,
            "unable to restrict sys entries without a private MNT namespace",
        ));
    }
    let why = "would be made in the runtime's own mount namespace (the container has no \
               \"mount\" namespace in linux.namespaces); podrun does not alter its caller's \
               mounts";
    if let Some(m) = spec.mounts().as_deref().and_then(|m| m.first()) {
        return Err(field(
            "mounts",
            &format!("mount of {} {why}", m.destination().display()),
        ));
    }
    if linux
        .and_then(|l| l.rootfs_propagation().as_ref())
        .is_some()
    {
        return Err(field(
            "linux.rootfsPropagation",
            &format!("the propagation of / {why}"),
        ));
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return Err(field(
            "root.readonly",
            &format!("a read-only remount of the rootfs {why}"),
        ));
    }
    Ok(())
}

/// Reads `<bundle>/config.json` and checks what the runtime relies on.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(bundle)
        .map_err(|e| RuntimeError::io("bundle", bundle.to_path_buf(), e))?;
    let config_path = dir.join("config.json");
    let raw = std::fs::read(&config_path)
        .map_err(|e| RuntimeError::io("read", config_path.clone(), e))?;
    let spec = parse_spec(&config_path, &raw)?;
    let field = |field: &str, msg: String| RuntimeError::ConfigField {
        path: config_path.clone(),
        field: field.to_string(),
        msg,
    };
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| field("root", "missing".into()))?;
    let rootfs = dir.join(root.path());
    let rootfs = match std::fs::canonicalize(&rootfs) {
        Ok(p) if p.is_dir() => p,
        Ok(p) => {
            return Err(RuntimeError::Rootfs {
                path: p,
                msg: "not a directory".into(),
            })
        }
        Err(e) => {
            return Err(RuntimeError::Rootfs {
                path: rootfs,
                msg: e.to_string(),
            })
        }
    };
    validate(&spec, &config_path)?;
    Ok(Bundle {
        dir,
        config_path,
        raw,
        spec,
        rootfs,
    })
}

/// Parses config.json; on failure points at the offending field where it can.
pub fn parse_spec(path: &Path, raw: &[u8]) -> Result<Spec> {
    match serde_json::from_slice::<Spec>(raw) {
        Ok(s) => Ok(s),
        Err(e) => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
                return Err(RuntimeError::Config {
                    path: path.to_path_buf(),
                    msg: format!("invalid JSON: {e}"),
                });
            };
            if let Some((field, msg)) = diagnose(&v) {
                return Err(RuntimeError::ConfigField {
                    path: path.to_path_buf(),
                    field,
                    msg,
                });
            }
            Err(RuntimeError::Config {
                path: path.to_path_buf(),
                msg: format!("invalid config: {e}"),
            })
        }
    }
}

/// Finds the first field serde would reject, for a readable error.
fn diagnose(v: &serde_json::Value) -> Option<(String, String)> {
    if !v.is_object() {
        return Some(("(top level)".into(), "must be a JSON object".into()));
    }
    if let Some(ns) = v.pointer("/linux/namespaces").and_then(|n| n.as_array()) {
        for (i, n) in ns.iter().enumerate() {
            let t = n.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if !NAMESPACE_TYPES.contains(&t) {
                return Some((
                    format!("linux.namespaces[{i}].type"),
                    format!("unknown namespace type {t:?}"),
                ));
            }
        }
    }
    if let Some(caps) = v
        .pointer("/process/capabilities")
        .and_then(|c| c.as_object())
    {
        for (set, list) in caps {
            for (i, c) in list.as_array().into_iter().flatten().enumerate() {
                let name = c.as_str().unwrap_or("");
                if name.parse::<caps::Capability>().is_err() {
                    return Some((
                        format!("process.capabilities.{set}[{i}]"),
                        format!("unknown capability {name:?}"),
                    ));
                }
            }
        }
    }
    if let Some(rl) = v.pointer("/process/rlimits").and_then(|r| r.as_array()) {
        for (i, r) in rl.iter().enumerate() {
            let t = r.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if t.parse::<oci_spec::runtime::PosixRlimitType>().is_err() {
                return Some((
                    format!("process.rlimits[{i}].type"),
                    format!("unknown rlimit {t:?}"),
                ));
            }
        }
    }
    if let Some(p) = v.get("process") {
        for key in ["user", "cwd"] {
            if p.get(key).is_none() {
                return Some((format!("process.{key}"), "missing".into()));
            }
        }
    }
    if let Some(ms) = v.get("mounts").and_then(|m| m.as_array()) {
        for (i, m) in ms.iter().enumerate() {
            if m.get("destination").and_then(|d| d.as_str()).is_none() {
                return Some((format!("mounts[{i}].destination"), "missing".into()));
            }
        }
    }
    if v.get("ociVersion").and_then(|o| o.as_str()).is_none() {
        return Some(("ociVersion".into(), "missing".into()));
    }
    None
}

/// No namespace twice; joined ones exist.
fn validate_namespace_list(
    nss: &[oci_spec::runtime::LinuxNamespace],
    field: &dyn Fn(&str, &str) -> RuntimeError,
) -> Result<()> {
    let mut seen = Vec::new();
    for (i, ns) in nss.iter().enumerate() {
        if seen.contains(&ns.typ()) {
            return Err(field(
                &format!("linux.namespaces[{i}]"),
                &format!("duplicate namespace {}", ns.typ()),
            ));
        }
        seen.push(ns.typ());
        if let Some(p) = ns.path() {
            if !p.exists() {
                return Err(field(
                    &format!("linux.namespaces[{i}].path"),
                    &format!("{} does not exist", p.display()),
                ));
            }
        }
    }
    Ok(())
}

/// Checks the cross-field rules runc enforces before touching the host.
pub fn validate(spec: &Spec, path: &Path) -> Result<()> {
    let field = |field: &str, msg: &str| RuntimeError::ConfigField {
        path: path.to_path_buf(),
        field: field.to_string(),
        msg: msg.to_string(),
    };
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| field("process", "missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(field("process.args", "must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(field("process.cwd", "must be an absolute path"));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| field("linux", "missing"))?;
    let nss = linux.namespaces().as_deref().unwrap_or_default();
    validate_namespace_list(nss, &field)?;
    let new_ns = |t: LinuxNamespaceType| nss.iter().any(|n| n.typ() == t && n.path().is_none());
    let has_ns = |t: LinuxNamespaceType| nss.iter().any(|n| n.typ() == t);
    if !has_ns(LinuxNamespaceType::Mount) {
        without_mount_namespace(spec, &field)?;
    }
    // As runc: a joined UTS namespace is the container's too; only the host's is refused.
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has_ns(LinuxNamespaceType::Uts)
    {
        return Err(field(
            "hostname",
            "unable to set hostname without a private UTS namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_ns(LinuxNamespaceType::Uts)
    {
        return Err(field(
            "domainname",
            "unable to set domainname without a private UTS namespace",
        ));
    }
    if new_ns(LinuxNamespaceType::User) {
        if linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(field(
                "linux.uidMappings",
                "required with a new user namespace",
            ));
        }
        if linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(field(
                "linux.gidMappings",
                "required with a new user namespace",
            ));
        }
    } else if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(field(
            "linux.uidMappings",
            "set without a new user namespace",
        ));
    }
    if has_ns(LinuxNamespaceType::Time) {
        return Err(field(
            "linux.namespaces",
            "time namespaces are not supported",
        ));
    }
    validate_mounts(spec, &field)?;
    super::sysctl::validate(spec)
        .and_then(|()| super::lsm::validate(spec))
        .map_err(|(f, msg)| field(&f, &msg))?;
    validate_hooks(spec, &field)
}

/// Mount destinations are absolute; idmapped mounts are binds with both mappings.
fn validate_mounts(spec: &Spec, field: &dyn Fn(&str, &str) -> RuntimeError) -> Result<()> {
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !m.destination().is_absolute() {
            return Err(field(
                &format!("mounts[{i}].destination"),
                "must be an absolute path",
            ));
        }
        if super::idmounts::request_of(m).is_some() {
            // As runc: idmapped mounts are binds, with both mappings or neither.
            let opts = m.options().as_deref().unwrap_or_default();
            let bind = m.typ().as_deref() == Some("bind")
                || opts.iter().any(|o| o == "bind" || o == "rbind");
            if !bind {
                return Err(field(
                    &format!("mounts[{i}]"),
                    "idmapped mounts (idmap, ridmap, uidMappings) must be bind mounts",
                ));
            }
            let has = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
                v.as_ref().is_some_and(|v| !v.is_empty())
            };
            if has(m.uid_mappings()) != has(m.gid_mappings()) {
                return Err(field(
                    &format!("mounts[{i}]"),
                    "uidMappings and gidMappings must be given together",
                ));
            }
        }
    }
    Ok(())
}

/// Hook paths are absolute, timeouts positive.
fn validate_hooks(spec: &Spec, field: &dyn Fn(&str, &str) -> RuntimeError) -> Result<()> {
    if let Some(hooks) = spec.hooks() {
        let all = [
            hooks.prestart(),
            hooks.create_runtime(),
            hooks.create_container(),
            hooks.start_container(),
            hooks.poststart(),
            hooks.poststop(),
        ];
        for h in all.into_iter().flatten().flatten() {
            if !h.path().is_absolute() {
                return Err(field(
                    "hooks",
                    &format!("hook path {} is not absolute", h.path().display()),
                ));
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                return Err(field("hooks", "timeout must be greater than zero"));
            }
        }
    }
    Ok(())
}

/// Checks a container id the way runc does: no path separators, no dot-names.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_namespace_type_names_the_field() {
        let raw = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#;
        let err = parse_spec(Path::new("/b/config.json"), raw)
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_json_is_reported_with_position() {
        let err = parse_spec(Path::new("/b/config.json"), b"{\"ociVersion\":")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/b/config.json: invalid JSON"), "{err}");
    }

    #[test]
    fn ids_with_slashes_or_dots_are_rejected() {
        assert!(validate_id("abc-1.2_x").is_ok());
        for bad in ["", "a/b", "..", ".x", "a b"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
