//! Validation as the API server does it, with its field paths and messages
//! (`spec.containers[0].image: Required value`), collected rather than stopping at the first.
use super::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::HashSet;
use std::fmt;

/// The kinds of field error the API server reports, with its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    Duplicate,
    NotFound,
    NotSupported,
    Forbidden,
    TooLong,
}

impl ErrorType {
    fn text(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::NotFound => "Not found",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
        }
    }
}

/// One problem at one field: `spec.containers[0].name: Duplicate value: "x"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub kind: ErrorType,
    /// The bad value as Go's %v/%q prints it (strings quoted), for the kinds that show one.
    pub value: Option<String>,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind.text())?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// An object the API server would refuse, in kubectl's words:
/// `The Pod "x" is invalid: spec...`, several errors as `* ...` lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidError {
    pub kind: String,
    pub name: String,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "The {} {:?} is invalid: ", self.kind, self.name)?;
        match self.errors.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                for e in many {
                    write!(f, "\n* {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Collects errors with short constructors named after the API server's helpers.
#[derive(Default)]
pub(super) struct Errs(pub(super) Vec<FieldError>);

/// A string value as Go's %q prints it.
pub(super) fn q(s: &str) -> String {
    format!("{s:?}")
}

impl Errs {
    fn push(&mut self, field: &str, kind: ErrorType, value: Option<String>, detail: &str) {
        self.0.push(FieldError {
            field: field.to_string(),
            kind,
            value,
            detail: detail.to_string(),
        });
    }
    pub(super) fn required(&mut self, field: &str, detail: &str) {
        self.push(field, ErrorType::Required, None, detail);
    }
    pub(super) fn invalid(&mut self, field: &str, value: String, detail: &str) {
        self.push(field, ErrorType::Invalid, Some(value), detail);
    }
    pub(super) fn duplicate(&mut self, field: &str, value: &str) {
        self.push(field, ErrorType::Duplicate, Some(q(value)), "");
    }
    pub(super) fn not_found(&mut self, field: &str, value: &str) {
        self.push(field, ErrorType::NotFound, Some(q(value)), "");
    }
    pub(super) fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| q(s)).collect();
        let detail = format!("supported values: {}", list.join(", "));
        self.push(field, ErrorType::NotSupported, Some(q(value)), &detail);
    }
    pub(super) fn forbidden(&mut self, field: &str, detail: &str) {
        self.push(field, ErrorType::Forbidden, None, detail);
    }
}

pub(super) const ENV_NAME_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";
pub(super) const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

pub use super::labels::{dns1123_label_errors, dns1123_subdomain_errors};
use super::labels::{label_value_errors, qualified_name_errors};
pub use super::validate_container::is_supported_field_path;
use super::validate_container::{
    validate_container, validate_relative_path, validate_resource_field_ref, ContainerKind,
    PodHostFlags,
};

/// A label value's messages as Invalid errors at `field`.
pub(super) fn validate_label_value(e: &mut Errs, field: &str, v: &str) {
    for m in label_value_errors(v) {
        e.invalid(field, q(v), &m);
    }
}

/// A label key (or any qualified name) as the API server's ValidateLabelName checks it.
pub(super) fn validate_qualified_name(e: &mut Errs, field: &str, key: &str) {
    for m in qualified_name_errors(key) {
        e.invalid(field, q(key), &m);
    }
}

fn validate_meta(e: &mut Errs, meta: &ObjectMeta, name_is_label: bool) {
    match meta.name.as_deref() {
        None | Some("") => e.required("metadata.name", "name or generateName is required"),
        Some(n) => {
            let msgs = if name_is_label {
                dns1123_label_errors(n)
            } else {
                dns1123_subdomain_errors(n)
            };
            for m in msgs {
                e.invalid("metadata.name", q(n), &m);
            }
        }
    }
    if let Some(ns) = meta.namespace.as_deref() {
        for m in dns1123_label_errors(ns) {
            e.invalid("metadata.namespace", q(ns), &m);
        }
    }
    for (k, v) in meta.labels.iter().flatten() {
        validate_qualified_name(e, "metadata.labels", k);
        validate_label_value(e, "metadata.labels", v);
    }
    for k in meta.annotations.iter().flat_map(|a| a.keys()) {
        validate_qualified_name(e, "metadata.annotations", k);
    }
    // The API server's TotalAnnotationSizeLimitB: keys and values together.
    let total: usize = meta
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if total > ANNOTATIONS_MAX_BYTES {
        e.push(
            "metadata.annotations",
            ErrorType::TooLong,
            None,
            &format!("must have at most {ANNOTATIONS_MAX_BYTES} bytes"),
        );
    }
}

/// The API server's limit on one object's annotations, keys and values together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

pub(super) fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k != "."
        && k != ".."
        && !k.starts_with("..")
        && k.len() <= 253
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn validate_config_keys<'a>(e: &mut Errs, field: &str, keys: impl Iterator<Item = &'a String>) {
    for k in keys {
        if !is_config_key(k) {
            e.invalid(&format!("{field}[{k}]"), q(k), CONFIG_KEY_MSG);
        }
    }
}

pub(super) fn finish(kind: &str, meta: &ObjectMeta, e: Errs) -> Result<(), InvalidError> {
    if e.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidError {
            kind: kind.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            errors: e.0,
        })
    }
}

/// ConfigMap: name and keys.
pub fn validate_config_map(cm: &ConfigMap) -> Result<(), InvalidError> {
    let mut e = Errs::default();
    validate_meta(&mut e, &cm.metadata, false);
    validate_config_keys(&mut e, "data", cm.data.iter().flat_map(|d| d.keys()));
    validate_config_keys(
        &mut e,
        "binaryData",
        cm.binary_data.iter().flat_map(|d| d.keys()),
    );
    finish("ConfigMap", &cm.metadata, e)
}

/// Namespace: its name is a DNS label.
pub fn validate_namespace(ns: &k8s_openapi::api::core::v1::Namespace) -> Result<(), InvalidError> {
    let mut e = Errs::default();
    validate_meta(&mut e, &ns.metadata, true);
    finish("Namespace", &ns.metadata, e)
}

/// Secret: name and keys.
pub fn validate_secret(s: &Secret) -> Result<(), InvalidError> {
    let mut e = Errs::default();
    validate_meta(&mut e, &s.metadata, false);
    validate_config_keys(&mut e, "data", s.data.iter().flat_map(|d| d.keys()));
    finish("Secret", &s.metadata, e)
}

/// Valid environment variable name (Kubernetes 1.34: any printable ASCII but '=').
pub fn is_env_var_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| (32..=126).contains(&c) && c != b'=')
}

const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

fn validate_mode(e: &mut Errs, field: &str, mode: Option<i32>) {
    if let Some(m) = mode {
        if !(0..=0o777).contains(&m) {
            e.invalid(
                field,
                m.to_string(),
                "must be a number between 0 and 0777 (octal), both inclusive",
            );
        }
    }
}

fn validate_items(e: &mut Errs, field: &str, items: Option<&Vec<KeyToPath>>) {
    for (i, it) in items.into_iter().flatten().enumerate() {
        let f = format!("{field}[{i}]");
        if it.key.is_empty() {
            e.required(&format!("{f}.key"), "");
        }
        if it.path.is_empty() {
            e.required(&format!("{f}.path"), "");
        } else {
            validate_relative_path(e, &format!("{f}.path"), &it.path);
        }
        validate_mode(e, &format!("{f}.mode"), it.mode);
    }
}

fn volume_sources(v: &Volume) -> Vec<&'static str> {
    let mut s = Vec::new();
    let pairs: [(&'static str, bool); 12] = [
        ("hostPath", v.host_path.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("configMap", v.config_map.is_some()),
        ("secret", v.secret.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("projected", v.projected.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("nfs", v.nfs.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
    ];
    for (n, set) in pairs {
        if set {
            s.push(n);
        }
    }
    s
}

fn validate_volumes<'a>(e: &mut Errs, volumes: &'a [Volume]) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let f = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            e.required(&format!("{f}.name"), "");
        } else {
            for m in dns1123_label_errors(&v.name) {
                e.invalid(&format!("{f}.name"), q(&v.name), &m);
            }
            if !names.insert(v.name.as_str()) {
                e.duplicate(&format!("{f}.name"), &v.name);
            }
        }
        let sources = volume_sources(v);
        match sources.as_slice() {
            [] => e.required(&f, "must specify a volume type"),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    e.forbidden(
                        &format!("{f}.{s}"),
                        "may not specify more than 1 volume type",
                    );
                }
            }
        }
        if let Some(h) = &v.host_path {
            if h.path.is_empty() {
                e.required(&format!("{f}.hostPath.path"), "");
            } else if h.path.split('/').any(|c| c == "..") {
                e.invalid(
                    &format!("{f}.hostPath.path"),
                    q(&h.path),
                    "must not contain '..'",
                );
            }
            let t = h.type_.as_deref().unwrap_or("");
            if !HOST_PATH_TYPES.contains(&t) {
                e.not_supported(&format!("{f}.hostPath.type"), t, &HOST_PATH_TYPES[1..]);
            }
        }
        if let Some(ed) = &v.empty_dir {
            if let Some(m) = ed.medium.as_deref() {
                if !matches!(m, "" | "Memory" | "HugePages") && !m.starts_with("HugePages-") {
                    e.not_supported(
                        &format!("{f}.emptyDir.medium"),
                        m,
                        &["", "Memory", "HugePages"],
                    );
                }
            }
            if let Some(sl) = &ed.size_limit {
                if let Err(err) = ParsedQuantity::parse(&sl.0) {
                    e.invalid(
                        &format!("{f}.emptyDir.sizeLimit"),
                        q(&sl.0),
                        &err.to_string(),
                    );
                }
            }
        }
        if let Some(c) = &v.config_map {
            if c.name.is_empty() {
                e.required(&format!("{f}.configMap.name"), "");
            }
            validate_mode(e, &format!("{f}.configMap.defaultMode"), c.default_mode);
            validate_items(e, &format!("{f}.configMap.items"), c.items.as_ref());
        }
        if let Some(s) = &v.secret {
            if s.secret_name.as_deref().unwrap_or("").is_empty() {
                e.required(&format!("{f}.secret.secretName"), "");
            }
            validate_mode(e, &format!("{f}.secret.defaultMode"), s.default_mode);
            validate_items(e, &format!("{f}.secret.items"), s.items.as_ref());
        }
        if let Some(d) = &v.downward_api {
            validate_mode(e, &format!("{f}.downwardAPI.defaultMode"), d.default_mode);
            for (j, it) in d.items.iter().flatten().enumerate() {
                let fi = format!("{f}.downwardAPI.items[{j}]");
                validate_relative_path(e, &format!("{fi}.path"), &it.path);
                match (&it.field_ref, &it.resource_field_ref) {
                    (Some(r), None) => {
                        if !is_supported_field_path(&r.field_path, true) {
                            e.not_supported(
                                &format!("{fi}.fieldRef.fieldPath"),
                                &r.field_path,
                                &[
                                    "metadata.annotations",
                                    "metadata.labels",
                                    "metadata.name",
                                    "metadata.namespace",
                                    "metadata.uid",
                                ],
                            );
                        }
                    }
                    (None, Some(r)) => {
                        let rf = format!("{fi}.resourceFieldRef");
                        if r.container_name.as_deref().unwrap_or("").is_empty() {
                            e.required(&format!("{rf}.containerName"), "");
                        }
                        validate_resource_field_ref(e, &rf, r)
                    }
                    _ => e.invalid(
                        &fi,
                        q(""),
                        "fieldRef and resourceFieldRef can not be specified simultaneously",
                    ),
                }
            }
        }
        if let Some(p) = &v.projected {
            validate_mode(e, &format!("{f}.projected.defaultMode"), p.default_mode);
        }
    }
    names
}

/// Validates a defaulted Pod; every problem is reported, in the API server's order.
pub fn validate_pod(pod: &Pod) -> Result<(), InvalidError> {
    let mut e = Errs::default();
    validate_meta(&mut e, &pod.metadata, false);
    let Some(spec) = pod.spec.as_ref() else {
        e.required("spec", "");
        return finish("Pod", &pod.metadata, e);
    };
    let volumes = validate_volumes(&mut e, spec.volumes.as_deref().unwrap_or_default());
    let host_network = spec.host_network == Some(true);
    // hostUsers defaults to true: unset means the host's user namespace.
    let host_users = spec.host_users != Some(false);
    let flags = PodHostFlags {
        host_network,
        host_users,
    };
    let mut names = HashSet::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        validate_container(
            &mut e,
            &format!("spec.initContainers[{i}]"),
            c,
            ContainerKind::Init,
            &mut names,
            &volumes,
            flags,
        );
    }
    if spec.containers.is_empty() {
        e.required("spec.containers", "");
    }
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(
            &mut e,
            &format!("spec.containers[{i}]"),
            c,
            ContainerKind::Regular,
            &mut names,
            &volumes,
            flags,
        );
    }
    validate_unique_host_ports(&mut e, spec);
    validate_pod_fields(&mut e, spec);
    super::scheduling::check(&mut e, spec);
    if let Some(sc) = &spec.security_context {
        for (i, s) in sc.sysctls.iter().flatten().enumerate() {
            if s.name.is_empty() {
                e.required(&format!("spec.securityContext.sysctls[{i}].name"), "");
            }
        }
    }
    finish("Pod", &pod.metadata, e)
}

/// One host port per hostIP/protocol across the whole pod (AccumulateUniqueHostPorts).
fn validate_unique_host_ports(e: &mut Errs, spec: &k8s_openapi::api::core::v1::PodSpec) {
    let mut host_ports = HashSet::new();
    let listed = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c))
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, c)| (format!("spec.initContainers[{i}]"), c)),
        );
    for (cf, c) in listed {
        for (pi, p) in c.ports.iter().flatten().enumerate() {
            let Some(hp) = p.host_port.filter(|h| *h != 0) else {
                continue;
            };
            let key = format!(
                "{}/{}/{hp}",
                p.host_ip.as_deref().unwrap_or(""),
                p.protocol.as_deref().unwrap_or("TCP")
            );
            if !host_ports.insert(key.clone()) {
                e.duplicate(&format!("{cf}.ports[{pi}].hostPort"), &key);
            }
        }
    }
}

/// The pod-level fields: policies, deadlines, names and host namespaces.
fn validate_pod_fields(e: &mut Errs, spec: &k8s_openapi::api::core::v1::PodSpec) {
    match spec.restart_policy.as_deref() {
        Some("Always" | "OnFailure" | "Never") => {}
        None | Some("") => e.required("spec.restartPolicy", ""),
        Some(p) => e.not_supported("spec.restartPolicy", p, &["Always", "OnFailure", "Never"]),
    }
    match spec.dns_policy.as_deref() {
        Some("ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None") | None => {}
        Some(p) => e.not_supported(
            "spec.dnsPolicy",
            p,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ),
    }
    if let Some(g) = spec.termination_grace_period_seconds {
        if g < 0 {
            e.invalid(
                "spec.terminationGracePeriodSeconds",
                g.to_string(),
                "must be greater than or equal to 0",
            );
        }
    }
    if let Some(d) = spec.active_deadline_seconds {
        if d < 1 {
            e.invalid(
                "spec.activeDeadlineSeconds",
                d.to_string(),
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    if let Some(h) = spec.hostname.as_deref() {
        for m in dns1123_label_errors(h) {
            e.invalid("spec.hostname", q(h), &m);
        }
    }
    if let Some(s) = spec.subdomain.as_deref() {
        for m in dns1123_label_errors(s) {
            e.invalid("spec.subdomain", q(s), &m);
        }
    }
    // validateHostUsers: its field paths are the API server's, capitals included.
    if spec.host_users == Some(false) {
        for (field, set) in [
            ("spec.hostNetwork", spec.host_network),
            ("spec.HostPID", spec.host_pid),
            ("spec.HostIPC", spec.host_ipc),
        ] {
            if set == Some(true) {
                e.forbidden(field, "when `pod.Spec.HostUsers` is false");
            }
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        e.invalid(
            "spec.shareProcessNamespace",
            "true".into(),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        );
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
