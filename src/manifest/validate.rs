//! Validation as the API server does it, with its field paths and messages
//! (`spec.containers[0].image: Required value`), collected rather than stopping at the first.
use super::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvFromSource, EnvVar, KeyToPath, Pod, Probe, ResourceRequirements,
    Secret, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, HashSet};
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
    fn duplicate(&mut self, field: &str, value: &str) {
        self.push(field, ErrorType::Duplicate, Some(q(value)), "");
    }
    fn not_found(&mut self, field: &str, value: &str) {
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

const ENV_NAME_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

pub use super::labels::{dns1123_label_errors, dns1123_subdomain_errors};
use super::labels::{label_value_errors, qualified_name_errors};

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

fn is_config_key(k: &str) -> bool {
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

/// IANA service name rules for a named port, as the API server's IsValidPortName.
fn port_name_errors(s: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if s.len() > 15 {
        out.push("must be no more than 15 characters");
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)");
    }
    if s.contains("--") {
        out.push("must not contain consecutive hyphens");
    }
    if s.starts_with('-') || s.ends_with('-') {
        out.push("must not begin or end with a hyphen");
    }
    out
}

const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

fn validate_port_ref(e: &mut Errs, field: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(p) if !(1..=65535).contains(p) => {
            e.invalid(field, p.to_string(), PORT_RANGE_MSG);
        }
        IntOrString::String(s) => {
            for m in port_name_errors(s) {
                e.invalid(field, q(s), m);
            }
        }
        IntOrString::Int(_) => {}
    }
}

fn validate_nonneg(e: &mut Errs, field: &str, v: Option<i32>) {
    if let Some(v) = v {
        if v < 0 {
            e.invalid(field, v.to_string(), "must be greater than or equal to 0");
        }
    }
}

/// A probe: exactly one handler, sane numbers; liveness and startup need successThreshold 1.
fn validate_probe(e: &mut Errs, field: &str, p: &Probe, success_must_be_one: bool) {
    let mut handlers = Vec::new();
    if p.exec.is_some() {
        handlers.push("exec");
    }
    if p.http_get.is_some() {
        handlers.push("httpGet");
    }
    if p.tcp_socket.is_some() {
        handlers.push("tcpSocket");
    }
    if p.grpc.is_some() {
        handlers.push("grpc");
    }
    match handlers.as_slice() {
        [] => e.required(field, "must specify a handler type"),
        [_] => {}
        [_, rest @ ..] => {
            for h in rest {
                e.forbidden(
                    &format!("{field}.{h}"),
                    "may not specify more than 1 handler type",
                );
            }
        }
    }
    if let Some(x) = &p.exec {
        if x.command.as_ref().is_none_or(|c| c.is_empty()) {
            e.required(&format!("{field}.exec.command"), "");
        }
    }
    if let Some(h) = &p.http_get {
        validate_port_ref(e, &format!("{field}.httpGet.port"), &h.port);
        if let Some(s) = h.scheme.as_deref() {
            if s != "HTTP" && s != "HTTPS" {
                e.not_supported(&format!("{field}.httpGet.scheme"), s, &["HTTP", "HTTPS"]);
            }
        }
    }
    if let Some(t) = &p.tcp_socket {
        validate_port_ref(e, &format!("{field}.tcpSocket.port"), &t.port);
    }
    validate_nonneg(
        e,
        &format!("{field}.initialDelaySeconds"),
        p.initial_delay_seconds,
    );
    for (name, v) in [
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = v {
            if v < 1 {
                e.invalid(
                    &format!("{field}.{name}"),
                    v.to_string(),
                    "must be greater than or equal to 1",
                );
            }
        }
    }
    if success_must_be_one {
        if let Some(v) = p.success_threshold {
            if v != 1 {
                e.invalid(
                    &format!("{field}.successThreshold"),
                    v.to_string(),
                    "must be 1",
                );
            }
        }
    }
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Is `path` a fieldRef the downward API serves? Volumes also take whole label/annotation maps.
pub fn is_supported_field_path(path: &str, for_volume: bool) -> bool {
    if ENV_FIELD_PATHS.contains(&path) {
        let pod_only = path.starts_with("status.") || path.starts_with("spec.");
        return !(for_volume && pod_only);
    }
    if for_volume && (path == "metadata.labels" || path == "metadata.annotations") {
        return true;
    }
    for prefix in ["metadata.labels['", "metadata.annotations['"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return rest.ends_with("']") && rest.len() > 2;
        }
    }
    false
}

const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

fn validate_resource_field_ref(
    e: &mut Errs,
    field: &str,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) {
    if r.resource.is_empty() {
        e.required(&format!("{field}.resource"), "");
    } else if !RESOURCE_FIELDS.contains(&r.resource.as_str()) && !r.resource.contains(".hugepages-")
    {
        e.not_supported(&format!("{field}.resource"), &r.resource, RESOURCE_FIELDS);
    }
    if let Some(d) = &r.divisor {
        let cpu = r.resource.ends_with(".cpu");
        let ok: &[&str] = if cpu {
            &["1m", "1"]
        } else {
            &[
                "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
            ]
        };
        if !ok.contains(&d.0.as_str()) {
            e.not_supported(&format!("{field}.divisor"), &d.0, ok);
        }
    }
}

fn validate_env(e: &mut Errs, field: &str, env: &[EnvVar]) {
    for (i, v) in env.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if v.name.is_empty() {
            e.required(&format!("{f}.name"), "");
        } else if !is_env_var_name(&v.name) {
            e.invalid(&format!("{f}.name"), q(&v.name), ENV_NAME_MSG);
        }
        let Some(vf) = &v.value_from else { continue };
        let vff = format!("{f}.valueFrom");
        let mut n = 0;
        if let Some(r) = &vf.field_ref {
            n += 1;
            let p = format!("{vff}.fieldRef.fieldPath");
            if r.field_path.is_empty() {
                e.required(&p, "");
            } else if !is_supported_field_path(&r.field_path, false) {
                e.not_supported(&p, &r.field_path, ENV_FIELD_PATHS);
            }
        }
        if let Some(r) = &vf.resource_field_ref {
            n += 1;
            validate_resource_field_ref(e, &format!("{vff}.resourceFieldRef"), r);
        }
        if let Some(r) = &vf.config_map_key_ref {
            n += 1;
            if r.name.is_empty() {
                e.required(&format!("{vff}.configMapKeyRef.name"), "");
            }
            if r.key.is_empty() {
                e.required(&format!("{vff}.configMapKeyRef.key"), "");
            } else if !is_config_key(&r.key) {
                e.invalid(
                    &format!("{vff}.configMapKeyRef.key"),
                    q(&r.key),
                    CONFIG_KEY_MSG,
                );
            }
        }
        if let Some(r) = &vf.secret_key_ref {
            n += 1;
            if r.name.is_empty() {
                e.required(&format!("{vff}.secretKeyRef.name"), "");
            }
            if r.key.is_empty() {
                e.required(&format!("{vff}.secretKeyRef.key"), "");
            } else if !is_config_key(&r.key) {
                e.invalid(
                    &format!("{vff}.secretKeyRef.key"),
                    q(&r.key),
                    CONFIG_KEY_MSG,
                );
            }
        }
        if vf.file_key_ref.is_some() {
            n += 1;
        }
        if n == 0 {
            e.invalid(&vff, q(""), "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`");
        } else if n > 1 {
            e.invalid(
                &vff,
                q(""),
                "may not have more than one field specified at a time",
            );
        } else if v.value.as_deref().is_some_and(|s| !s.is_empty()) {
            e.invalid(
                &vff,
                q(""),
                "may not be specified when `value` is not empty",
            );
        }
    }
}

fn validate_env_from(e: &mut Errs, field: &str, env_from: &[EnvFromSource]) {
    for (i, s) in env_from.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if let Some(p) = s.prefix.as_deref() {
            if !p.is_empty() && !is_env_var_name(p) {
                e.invalid(&format!("{f}.prefix"), q(p), ENV_NAME_MSG);
            }
        }
        match (&s.config_map_ref, &s.secret_ref) {
            (Some(c), None) if c.name.is_empty() => {
                e.required(&format!("{f}.configMapRef.name"), "")
            }
            (None, Some(c)) if c.name.is_empty() => e.required(&format!("{f}.secretRef.name"), ""),
            (Some(_), Some(_)) => e.invalid(
                &f,
                q(""),
                "may not have more than one field specified at a time",
            ),
            (None, None) => e.invalid(
                &f,
                q(""),
                "must specify one of: `configMapRef` or `secretRef`",
            ),
            _ => {}
        }
    }
}

fn is_standard_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || name.contains('/')
}

fn validate_resources(e: &mut Errs, field: &str, r: &ResourceRequirements) {
    let mut parsed: BTreeMap<(&str, String), ParsedQuantity> = BTreeMap::new();
    for (part, map) in [("limits", &r.limits), ("requests", &r.requests)] {
        for (name, qty) in map.iter().flatten() {
            let f = format!("{field}.{part}[{name}]");
            if !is_standard_resource(name) {
                e.invalid(
                    &f,
                    q(name),
                    "must be a standard resource type or fully qualified",
                );
                continue;
            }
            match ParsedQuantity::parse(&qty.0) {
                Err(err) => e.invalid(&f, q(&qty.0), &err.to_string()),
                Ok(p) => {
                    if p.milli().map(|m| m < 0).unwrap_or(false) {
                        e.invalid(&f, q(&qty.0), "must be greater than or equal to 0");
                    }
                    parsed.insert((part, name.clone()), p);
                }
            }
        }
    }
    for (name, qty) in r.requests.iter().flatten() {
        let (Some(req), Some(lim)) = (
            parsed.get(&("requests", name.clone())),
            parsed.get(&("limits", name.clone())),
        ) else {
            continue;
        };
        let (Ok(rm), Ok(lm)) = (req.milli(), lim.milli()) else {
            continue;
        };
        let limit_text = r
            .limits
            .as_ref()
            .and_then(|l| l.get(name))
            .map(|l| l.0.as_str())
            .unwrap_or("");
        if rm > lm {
            e.invalid(
                &format!("{field}.requests"),
                q(&qty.0),
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            );
        }
    }
}

fn validate_volume_mounts(
    e: &mut Errs,
    field: &str,
    mounts: &[VolumeMount],
    volumes: &HashSet<&str>,
) {
    let mut paths = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if m.name.is_empty() {
            e.required(&format!("{f}.name"), "");
        } else if !volumes.contains(m.name.as_str()) {
            e.not_found(&format!("{f}.name"), &m.name);
        }
        if m.mount_path.is_empty() {
            e.required(&format!("{f}.mountPath"), "");
        } else if !paths.insert(m.mount_path.as_str()) {
            e.invalid(
                &format!("{f}.mountPath"),
                q(&m.mount_path),
                "must be unique",
            );
        }
        if let Some(sp) = m.sub_path.as_deref() {
            validate_relative_path(e, &format!("{f}.subPath"), sp);
            if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) && !sp.is_empty() {
                e.invalid(
                    &format!("{f}.subPathExpr"),
                    q(m.sub_path_expr.as_deref().unwrap_or("")),
                    "subPathExpr and subPath are mutually exclusive",
                );
            }
        }
        if let Some(rro) = m.recursive_read_only.as_deref() {
            if !matches!(rro, "Disabled" | "IfPossible" | "Enabled") {
                e.not_supported(
                    &format!("{f}.recursiveReadOnly"),
                    rro,
                    &["Disabled", "IfPossible", "Enabled"],
                );
            }
        }
    }
}

/// A path that must stay inside a volume: relative, no `..` component.
fn validate_relative_path(e: &mut Errs, field: &str, p: &str) {
    if p.starts_with('/') {
        e.invalid(field, q(p), "must be a relative path");
    }
    if p.split('/').any(|c| c == "..") {
        e.invalid(field, q(p), "must not contain '..'");
    }
}

fn validate_ports(e: &mut Errs, field: &str, c: &Container, host_network: bool) {
    let mut names = HashSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let f = format!("{field}[{i}]");
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            for m in port_name_errors(n) {
                e.invalid(&format!("{f}.name"), q(n), m);
            }
            if !names.insert(n) {
                e.duplicate(&format!("{f}.name"), n);
            }
        }
        if p.container_port == 0 {
            e.required(&format!("{f}.containerPort"), "");
        } else if !(1..=65535).contains(&p.container_port) {
            e.invalid(
                &format!("{f}.containerPort"),
                p.container_port.to_string(),
                PORT_RANGE_MSG,
            );
        }
        if let Some(hp) = p.host_port.filter(|h| *h != 0) {
            if !(1..=65535).contains(&hp) {
                e.invalid(&format!("{f}.hostPort"), hp.to_string(), PORT_RANGE_MSG);
            } else if host_network && hp != p.container_port {
                e.invalid(
                    &format!("{f}.hostPort"),
                    hp.to_string(),
                    "must match `containerPort` when `hostNetwork` is true",
                );
            }
        }
        match p.protocol.as_deref() {
            None | Some("") => e.required(&format!("{f}.protocol"), ""),
            Some("TCP" | "UDP" | "SCTP") => {}
            Some(other) => {
                e.not_supported(&format!("{f}.protocol"), other, &["SCTP", "TCP", "UDP"])
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    Regular,
    Init,
}

/// The pod-level settings a container's validation depends on.
#[derive(Clone, Copy)]
struct PodHostFlags {
    host_network: bool,
    /// hostUsers, true unless set to false.
    host_users: bool,
}

fn validate_container(
    e: &mut Errs,
    field: &str,
    c: &Container,
    kind: ContainerKind,
    names: &mut HashSet<String>,
    volumes: &HashSet<&str>,
    pod: PodHostFlags,
) {
    let PodHostFlags {
        host_network,
        host_users,
    } = pod;
    if c.name.is_empty() {
        e.required(&format!("{field}.name"), "");
    } else {
        for m in dns1123_label_errors(&c.name) {
            e.invalid(&format!("{field}.name"), q(&c.name), &m);
        }
        if !names.insert(c.name.clone()) {
            e.duplicate(&format!("{field}.name"), &c.name);
        }
    }
    let image = c.image.as_deref().unwrap_or("");
    if image.trim().is_empty() {
        e.required(&format!("{field}.image"), "");
    } else if image.trim() != image {
        e.invalid(
            &format!("{field}.image"),
            q(image),
            "must not have leading or trailing whitespace",
        );
    }
    match c.image_pull_policy.as_deref() {
        None | Some("") => e.required(&format!("{field}.imagePullPolicy"), ""),
        Some("Always" | "IfNotPresent" | "Never") => {}
        Some(p) => e.not_supported(
            &format!("{field}.imagePullPolicy"),
            p,
            &["Always", "IfNotPresent", "Never"],
        ),
    }
    validate_restart_and_probes(e, field, c, kind);
    if let Some(l) = &c.lifecycle {
        validate_lifecycle(e, field, l);
    }
    validate_ports(e, &format!("{field}.ports"), c, host_network);
    validate_env(
        e,
        &format!("{field}.env"),
        c.env.as_deref().unwrap_or_default(),
    );
    validate_env_from(
        e,
        &format!("{field}.envFrom"),
        c.env_from.as_deref().unwrap_or_default(),
    );
    validate_volume_mounts(
        e,
        &format!("{field}.volumeMounts"),
        c.volume_mounts.as_deref().unwrap_or_default(),
        volumes,
    );
    if let Some(r) = &c.resources {
        validate_resources(e, &format!("{field}.resources"), r);
    }
    if let Some(sc) = &c.security_context {
        validate_security_context(e, &format!("{field}.securityContext"), sc, host_users);
    }
    if c.stdin_once == Some(true) && c.stdin != Some(true) {
        e.invalid(
            &format!("{field}.stdinOnce"),
            "true".into(),
            "requires stdin to be true",
        );
    }
}

/// restartPolicy (sidecars only), and the probes a container may have.
fn validate_restart_and_probes(e: &mut Errs, field: &str, c: &Container, kind: ContainerKind) {
    let sidecar = kind == ContainerKind::Init && c.restart_policy.is_some();
    match (kind, c.restart_policy.as_deref()) {
        (_, None) => {}
        (ContainerKind::Regular, Some(_)) => {
            e.forbidden(
                &format!("{field}.restartPolicy"),
                "may not be set for non-init containers",
            );
        }
        (ContainerKind::Init, Some("Always")) => {}
        (ContainerKind::Init, Some(p)) => {
            e.not_supported(&format!("{field}.restartPolicy"), p, &["Always"])
        }
    }
    if kind == ContainerKind::Init && !sidecar {
        for (name, set) in [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ] {
            if set {
                e.forbidden(
                    &format!("{field}.{name}"),
                    "may not be set for init containers without restartPolicy=Always",
                );
            }
        }
    } else {
        if let Some(p) = &c.liveness_probe {
            validate_probe(e, &format!("{field}.livenessProbe"), p, true);
        }
        if let Some(p) = &c.readiness_probe {
            validate_probe(e, &format!("{field}.readinessProbe"), p, false);
        }
        if let Some(p) = &c.startup_probe {
            validate_probe(e, &format!("{field}.startupProbe"), p, true);
        }
    }
}

/// postStart and preStop: exactly one handler each.
fn validate_lifecycle(e: &mut Errs, field: &str, l: &k8s_openapi::api::core::v1::Lifecycle) {
    for (name, h) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        let Some(h) = h else { continue };
        let f = format!("{field}.lifecycle.{name}");
        let n = [
            h.exec.is_some(),
            h.http_get.is_some(),
            h.tcp_socket.is_some(),
            h.sleep.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n == 0 {
            e.required(&f, "must specify a handler type");
        } else if n > 1 {
            e.forbidden(&f, "may not specify more than 1 handler type");
        }
        if let Some(g) = &h.http_get {
            validate_port_ref(e, &format!("{f}.httpGet.port"), &g.port);
        }
    }
}

/// A container's securityContext against itself and the pod's hostUsers.
fn validate_security_context(
    e: &mut Errs,
    f: &str,
    sc: &k8s_openapi::api::core::v1::SecurityContext,
    host_users: bool,
) {
    if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
        e.invalid(
            f,
            q(""),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        );
    }
    let adds_sys_admin = sc
        .capabilities
        .as_ref()
        .and_then(|c| c.add.as_ref())
        .is_some_and(|a| a.iter().any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN"));
    if adds_sys_admin && sc.allow_privilege_escalation == Some(false) {
        e.invalid(
            f,
            q(""),
            "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
        );
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        if !matches!(pm, "Default" | "Unmasked") {
            e.not_supported(&format!("{f}.procMount"), pm, &["Default", "Unmasked"]);
        }
        if host_users && pm == "Unmasked" {
            e.invalid(
                &format!("{f}.procMount"),
                q(pm),
                "`hostUsers` must be false to use `Unmasked`",
            );
        }
    }
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
mod tests {
    use crate::manifest::{load, LoadOptions, ManifestError};

    fn err_of(spec_yaml: &str) -> String {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec_yaml}");
        match load(&text, &LoadOptions::default()) {
            Err(ManifestError::Invalid(e)) => e.to_string(),
            Err(other) => panic!("not a validation error: {other}"),
            Ok(_) => panic!("accepted:\n{text}"),
        }
    }

    fn ok(spec_yaml: &str) {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec_yaml}");
        if let Err(e) = load(&text, &LoadOptions::default()) {
            panic!("refused: {e}\n{text}");
        }
    }

    #[test]
    fn missing_image_is_required() {
        assert_eq!(
            err_of("  containers:\n  - name: c\n"),
            "The Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn several_errors_are_listed_as_kubectl_does() {
        let e = err_of("  containers:\n  - name: c\n  - name: c\n    image: i\n");
        assert_eq!(
            e,
            "The Pod \"p\" is invalid: \n* spec.containers[0].image: Required value\n* spec.containers[1].name: Duplicate value: \"c\""
        );
    }

    #[test]
    fn pod_name_must_be_a_dns_subdomain() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: My_Pod}\nspec:\n  containers: [{name: c, image: i}]\n";
        let e = load(text, &LoadOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with("The Pod \"My_Pod\" is invalid: metadata.name: Invalid value: \"My_Pod\": a lowercase RFC 1123 subdomain must consist of"), "{e}");
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec:\n  containers: [{name: c, image: i}]\n";
        let e = load(text, &LoadOptions::default()).unwrap_err().to_string();
        assert!(
            e.contains("metadata.name: Required value: name or generateName is required"),
            "{e}"
        );
    }

    #[test]
    fn container_name_must_be_a_dns_label() {
        let e = err_of("  containers: [{name: Web.1, image: i}]\n");
        assert!(e.contains("spec.containers[0].name: Invalid value: \"Web.1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"), "{e}");
    }

    #[test]
    fn init_and_regular_container_names_share_one_namespace() {
        let e = err_of(
            "  initContainers: [{name: c, image: i}]\n  containers: [{name: c, image: i}]\n",
        );
        assert!(
            e.ends_with("spec.containers[0].name: Duplicate value: \"c\""),
            "{e}"
        );
    }

    #[test]
    fn bad_quantity_names_the_resource() {
        let e = err_of(
            "  containers:\n  - name: c\n    image: i\n    resources: {limits: {memory: 10Gx}}\n",
        );
        assert!(e.contains("spec.containers[0].resources.limits[memory]: Invalid value: \"10Gx\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"), "{e}");
    }

    #[test]
    fn requests_above_limits_are_refused() {
        let e = err_of("  containers:\n  - name: c\n    image: i\n    resources: {limits: {cpu: '1'}, requests: {cpu: '2'}}\n");
        assert_eq!(e, "The Pod \"p\" is invalid: spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1");
        ok("  containers:\n  - name: c\n    image: i\n    resources: {limits: {cpu: '2', memory: 10Gi}, requests: {cpu: '1', memory: 10Mi}}\n");
    }

    #[test]
    fn ports_in_range_with_unique_names() {
        let e = err_of(
            "  containers:\n  - name: c\n    image: i\n    ports: [{containerPort: 70000}]\n",
        );
        assert!(e.contains("spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"), "{e}");
        let e = err_of("  containers:\n  - name: c\n    image: i\n    ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]\n");
        assert!(
            e.contains("spec.containers[0].ports[1].name: Duplicate value: \"http\""),
            "{e}"
        );
        let e = err_of("  containers:\n  - name: c\n    image: i\n    ports: [{containerPort: 80, protocol: HTTP}]\n");
        assert!(e.contains("spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""), "{e}");
        let e = err_of("  containers:\n  - name: c\n    image: i\n    ports: [{name: nginx_port, containerPort: 80}]\n");
        assert!(e.contains("spec.containers[0].ports[0].name: Invalid value: \"nginx_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"), "{e}");
    }

    #[test]
    fn volume_mounts_must_name_a_volume_and_a_path() {
        let e = err_of("  containers:\n  - name: c\n    image: i\n    volumeMounts: [{name: x, mountPath: /x}]\n");
        assert_eq!(
            e,
            "The Pod \"p\" is invalid: spec.containers[0].volumeMounts[0].name: Not found: \"x\""
        );
        let e = err_of("  volumes: [{name: x, emptyDir: {}}]\n  containers:\n  - name: c\n    image: i\n    volumeMounts: [{name: x, mountPath: ''}]\n");
        assert!(
            e.contains("spec.containers[0].volumeMounts[0].mountPath: Required value"),
            "{e}"
        );
        let e = err_of("  volumes: [{name: x, emptyDir: {}}]\n  containers:\n  - name: c\n    image: i\n    volumeMounts: [{name: x, mountPath: /a, subPath: ../etc}]\n");
        assert!(e.contains("spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\": must not contain '..'"), "{e}");
    }

    #[test]
    fn volumes_have_unique_names_and_one_source() {
        let e = err_of("  volumes: [{name: x, emptyDir: {}}, {name: x, emptyDir: {}}]\n  containers: [{name: c, image: i}]\n");
        assert!(
            e.contains("spec.volumes[1].name: Duplicate value: \"x\""),
            "{e}"
        );
        let e = err_of("  volumes: [{name: x, emptyDir: {}, hostPath: {path: /tmp}}]\n  containers: [{name: c, image: i}]\n");
        assert!(
            e.contains(
                "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"
            ),
            "{e}"
        );
        let e = err_of("  volumes: [{name: x, hostPath: {path: /tmp, type: Dir}}]\n  containers: [{name: c, image: i}]\n");
        assert!(e.contains("spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"DirectoryOrCreate\""), "{e}");
    }

    #[test]
    fn restart_policy_values() {
        let e = err_of("  restartPolicy: Sometimes\n  containers: [{name: c, image: i}]\n");
        assert_eq!(e, "The Pod \"p\" is invalid: spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
    }

    #[test]
    fn probes_need_exactly_one_handler() {
        let e = err_of(
            "  containers:\n  - name: c\n    image: i\n    livenessProbe: {periodSeconds: 5}\n",
        );
        assert!(
            e.contains(
                "spec.containers[0].livenessProbe: Required value: must specify a handler type"
            ),
            "{e}"
        );
        let e = err_of("  containers:\n  - name: c\n    image: i\n    readinessProbe: {exec: {command: [ls]}, tcpSocket: {port: 80}}\n");
        assert!(e.contains("spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"), "{e}");
        let e = err_of("  containers:\n  - name: c\n    image: i\n    livenessProbe: {exec: {command: [ls]}, successThreshold: 2}\n");
        assert!(
            e.contains(
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
            ),
            "{e}"
        );
    }

    #[test]
    fn env_names_and_sources() {
        let e = err_of(
            "  containers:\n  - name: c\n    image: i\n    env: [{name: 'A=B', value: x}]\n",
        );
        assert!(e.contains("spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name"), "{e}");
        let e = err_of("  containers:\n  - name: c\n    image: i\n    env: [{name: A, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n");
        assert!(e.contains("spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"), "{e}");
        let e = err_of("  containers:\n  - name: c\n    image: i\n    env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.foo}}}]\n");
        assert!(e.contains("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.foo\""), "{e}");
        ok("  containers:\n  - name: c\n    image: i\n    env: [{name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}]\n");
    }

    #[test]
    fn sidecar_restart_policy_only_on_init_containers() {
        ok("  initContainers: [{name: s, image: i, restartPolicy: Always, readinessProbe: {tcpSocket: {port: 80}}}]\n  containers: [{name: c, image: i}]\n");
        let e = err_of("  containers: [{name: c, image: i, restartPolicy: Always}]\n");
        assert!(e.contains("spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"), "{e}");
        let e = err_of("  initContainers: [{name: s, image: i, restartPolicy: Never}]\n  containers: [{name: c, image: i}]\n");
        assert!(e.contains("spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""), "{e}");
        let e = err_of("  initContainers: [{name: s, image: i, livenessProbe: {tcpSocket: {port: 80}}}]\n  containers: [{name: c, image: i}]\n");
        assert!(e.contains("spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"), "{e}");
    }

    #[test]
    fn containers_are_required() {
        let e = err_of("  restartPolicy: Never\n");
        assert!(e.contains("spec.containers: Required value"), "{e}");
    }

    #[test]
    fn host_users_false_forbids_the_host_namespaces() {
        let e = err_of("  hostUsers: false\n  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n  containers: [{name: c, image: i}]\n");
        for f in ["spec.hostNetwork", "spec.HostPID", "spec.HostIPC"] {
            assert!(
                e.contains(&format!(
                    "{f}: Forbidden: when `pod.Spec.HostUsers` is false"
                )),
                "{f}: {e}"
            );
        }
        ok("  hostUsers: false\n  containers: [{name: c, image: i}]\n");
        ok("  hostUsers: true\n  hostNetwork: true\n  containers: [{name: c, image: i}]\n");
    }

    #[test]
    fn unmasked_proc_needs_a_user_namespace() {
        let c = "  containers: [{name: c, image: i, securityContext: {procMount: Unmasked}}]\n";
        let e = err_of(c);
        assert!(e.contains("spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"), "{e}");
        ok(&format!("  hostUsers: false\n{c}"));
    }

    #[test]
    fn privileged_with_no_escalation_is_contradictory() {
        let e = err_of("  containers:\n  - name: c\n    image: i\n    securityContext: {privileged: true, allowPrivilegeEscalation: false}\n");
        assert!(e.contains("spec.containers[0].securityContext: Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false and `privileged` to true"), "{e}");
    }

    #[test]
    fn a_host_port_is_used_once_per_pod() {
        let e = err_of("  containers:\n  - {name: a, image: i, ports: [{containerPort: 80, hostPort: 8080}]}\n  - {name: b, image: i, ports: [{containerPort: 81, hostPort: 8080}]}\n");
        assert!(
            e.ends_with("spec.containers[1].ports[0].hostPort: Duplicate value: \"/TCP/8080\""),
            "{e}"
        );
        ok("  containers:\n  - {name: a, image: i, ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 80, hostPort: 8080, protocol: UDP}]}\n");
    }

    #[test]
    fn affinity_rules_are_checked() {
        let e = err_of("  containers: [{name: c, image: i}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: nodeenv, operator: Equals, values: [pro]}]\n");
        assert!(e.contains("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator"), "{e}");
        let e = err_of("  containers: [{name: c, image: i}]\n  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 0\n        preference: {matchExpressions: [{key: a, operator: In, values: []}]}\n");
        assert!(e.contains("preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100"), "{e}");
        assert!(e.contains("preference.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"), "{e}");
        let e = err_of("  containers: [{name: c, image: i}]\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchExpressions: [{key: podenv, operator: Exists, values: [pro]}]}\n        topologyKey: ''\n");
        assert!(e.contains("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty"), "{e}");
        assert!(e.contains("labelSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"), "{e}");
        for seed in [
            "pod-nodeaffinity-required.yaml",
            "pod-nodeaffinity-preferred.yaml",
            "pod-podaffinity-required.yaml",
            "pod-podantiaffinity-required.yaml",
            "pod-toleration.yaml",
        ] {
            load(&crate::manifest::tests::seed(seed), &LoadOptions::default()).unwrap();
        }
    }

    #[test]
    fn configmap_keys_are_checked() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {'a b': x}\n";
        let e = load(text, &LoadOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with("The ConfigMap \"c\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key"), "{e}");
    }
}
