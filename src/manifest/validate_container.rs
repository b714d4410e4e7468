//! Validation of one container as the API server does it: name, image, policies,
//! probes, lifecycle hooks, ports, env, resources, volume mounts, security context.
use super::quantity::ParsedQuantity;
use super::validate::{
    dns1123_label_errors, is_config_key, is_env_var_name, q, Errs, CONFIG_KEY_MSG, ENV_NAME_MSG,
};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, Probe, ResourceRequirements, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, HashSet};

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

pub(super) fn validate_resource_field_ref(
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
pub(super) fn validate_relative_path(e: &mut Errs, field: &str, p: &str) {
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
pub(super) enum ContainerKind {
    Regular,
    Init,
}

/// The pod-level settings a container's validation depends on.
#[derive(Clone, Copy)]
pub(super) struct PodHostFlags {
    pub(super) host_network: bool,
    /// hostUsers, true unless set to false.
    pub(super) host_users: bool,
}

pub(super) fn validate_container(
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
