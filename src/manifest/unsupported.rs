//! Fields podrun does not implement: each one set in a manifest becomes a warning naming
//! its path, checked against an explicit list of what podrun does implement.
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// One ignored field: shown to the user as `Warning: {path} is not supported by podrun and is ignored`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The object the field belongs to (`Pod "name"`).
    pub object: String,
    pub path: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not supported by podrun and is ignored", self.path)
    }
}

/// Whole subtrees podrun implements, relative to a container.
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "ports[*].containerPort",
    "ports[*].name",
    "ports[*].protocol",
    "ports[*].hostPort",
    "ports[*].hostIP",
    "env[*].name",
    "env[*].value",
    "env[*].valueFrom.fieldRef",
    "env[*].valueFrom.resourceFieldRef",
    "env[*].valueFrom.configMapKeyRef",
    "env[*].valueFrom.secretKeyRef",
    "envFrom",
    "resources.limits",
    "resources.requests",
    "volumeMounts[*].name",
    "volumeMounts[*].mountPath",
    "volumeMounts[*].readOnly",
    "volumeMounts[*].subPath",
    "stdin",
    "stdinOnce",
    "tty",
    "restartPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.runAsNonRoot",
    "securityContext.privileged",
    "securityContext.capabilities",
    "securityContext.readOnlyRootFilesystem",
    "securityContext.allowPrivilegeEscalation",
    "securityContext.procMount",
    "securityContext.seccompProfile",
    "lifecycle.postStart.exec",
    "lifecycle.postStart.httpGet",
    "lifecycle.postStart.sleep",
    "lifecycle.preStop.exec",
    "lifecycle.preStop.httpGet",
    "lifecycle.preStop.sleep",
];

const PROBE_FIELDS: &[&str] = &[
    "exec",
    "httpGet",
    "tcpSocket",
    "grpc",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
];

const POD_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    // The API server drops status on create; no warning for what kubectl also ignores.
    "status",
    "metadata.name",
    "metadata.generateName",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.uid",
    "metadata.creationTimestamp",
    "spec.restartPolicy",
    "spec.terminationGracePeriodSeconds",
    "spec.dnsPolicy",
    "spec.nodeName",
    "spec.nodeSelector",
    "spec.affinity.nodeAffinity",
    "spec.affinity.podAffinity",
    "spec.affinity.podAntiAffinity",
    "spec.tolerations",
    "spec.hostname",
    "spec.hostAliases",
    "spec.subdomain",
    "spec.shareProcessNamespace",
    "spec.hostNetwork",
    "spec.hostPID",
    "spec.hostIPC",
    "spec.hostUsers",
    "spec.enableServiceLinks",
    "spec.serviceAccountName",
    "spec.serviceAccount",
    "spec.securityContext.runAsUser",
    "spec.securityContext.runAsGroup",
    "spec.securityContext.runAsNonRoot",
    "spec.securityContext.supplementalGroups",
    "spec.securityContext.fsGroup",
    "spec.securityContext.sysctls",
    "spec.securityContext.seccompProfile",
    "spec.volumes[*].name",
    "spec.volumes[*].hostPath",
    "spec.volumes[*].emptyDir",
    "spec.volumes[*].persistentVolumeClaim",
    "spec.volumes[*].configMap",
    "spec.volumes[*].secret",
    "spec.volumes[*].downwardAPI",
    "spec.volumes[*].projected.defaultMode",
    "spec.volumes[*].projected.sources[*].configMap",
    "spec.volumes[*].projected.sources[*].secret",
    "spec.volumes[*].projected.sources[*].downwardAPI",
];

/// Fields podrun does not act on but whose API-server default changes nothing: a manifest
/// saved from `get -o yaml` carries them, and they deserve no warning at that value.
const HARMLESS_DEFAULTS: &[(&str, &str)] = &[
    ("spec.priority", "0"),
    ("spec.preemptionPolicy", "\"PreemptLowerPriority\""),
    (
        "spec.containers[*].terminationMessagePath",
        "\"/dev/termination-log\"",
    ),
    ("spec.containers[*].terminationMessagePolicy", "\"File\""),
    (
        "spec.initContainers[*].terminationMessagePath",
        "\"/dev/termination-log\"",
    ),
    (
        "spec.initContainers[*].terminationMessagePolicy",
        "\"File\"",
    ),
    ("spec.schedulerName", "\"default-scheduler\""),
    // No service account token is mounted, which is what false asks for.
    ("spec.automountServiceAccountToken", "false"),
    ("metadata.resourceVersion", "*"),
    ("metadata.managedFields", "*"),
];

fn harmless(norm: &str, v: &Value) -> bool {
    HARMLESS_DEFAULTS.iter().any(|(p, val)| {
        *p == norm && (*val == "*" || serde_json::from_str::<Value>(val).ok().as_ref() == Some(v))
    })
}

fn supported() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut s: HashSet<String> = POD_FIELDS.iter().map(|p| p.to_string()).collect();
        for c in ["spec.containers[*]", "spec.initContainers[*]"] {
            for f in CONTAINER_FIELDS {
                s.insert(format!("{c}.{f}"));
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                for f in PROBE_FIELDS {
                    s.insert(format!("{c}.{probe}.{f}"));
                }
            }
        }
        s
    })
}

/// Replaces list indices with `[*]`: `spec.containers[1].name` → `spec.containers[*].name`.
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for ch in path.chars() {
        match ch {
            '[' => {
                in_index = true;
                out.push_str("[*]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(ch),
        }
    }
    out
}

fn is_prefix_of_supported(norm: &str) -> bool {
    let dot = format!("{norm}.");
    let idx = format!("{norm}[");
    supported()
        .iter()
        .any(|s| s.starts_with(&dot) || s.starts_with(&idx))
}

fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    if !path.is_empty() {
        let norm = normalize(path);
        if supported().contains(&norm) {
            return;
        }
        if harmless(&norm, v) {
            return;
        }
        if !is_prefix_of_supported(&norm) {
            out.push(path.to_string());
            return;
        }
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(child, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The set fields of a Pod (as written, before defaulting) that podrun ignores.
pub fn pod_warnings(raw: &Value, name: &str) -> Vec<Warning> {
    let mut paths = Vec::new();
    walk(raw, "", &mut paths);
    paths
        .into_iter()
        .map(|path| Warning {
            object: format!("Pod {name:?}"),
            path,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(v: Value) -> Vec<String> {
        pod_warnings(&v, "p").into_iter().map(|w| w.path).collect()
    }

    #[test]
    fn implemented_fields_give_no_warning() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a.b/c": "d"}},
            "spec": {"containers": [{"name": "c", "image": "i",
                "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 3},
                "readinessProbe": {"grpc": {"port": 9000, "service": "s"}},
                "resources": {"limits": {"cpu": "1"}}}]}});
        assert!(warnings(v).is_empty());
    }

    #[test]
    fn each_unimplemented_field_is_named_once_at_its_top() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "finalizers": ["x"]},
            "spec": {"priorityClassName": "high",
                "containers": [{"name": "c", "image": "i"},
                               {"name": "d", "image": "i",
                                "resources": {"claims": [{"name": "gpu"}]},
                                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
                                "volumeMounts": [{"name": "v", "mountPath": "/v", "mountPropagation": "Bidirectional"}]}],
                "volumes": [{"name": "v", "gitRepo": {"repository": "r"}}]}});
        let w = warnings(v);
        for p in [
            "metadata.finalizers",
            "spec.priorityClassName",
            "spec.containers[1].resources.claims",
            "spec.containers[1].resizePolicy",
            "spec.containers[1].volumeMounts[0].mountPropagation",
            "spec.volumes[0].gitRepo",
        ] {
            assert!(w.contains(&p.to_string()), "{p} missing from {w:?}");
        }
        assert_eq!(w.len(), 6, "{w:?}");
    }

    #[test]
    fn api_defaults_saved_from_get_yaml_give_no_warning() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "12"},
            "spec": {"priority": 0, "preemptionPolicy": "PreemptLowerPriority",
                "containers": [{"name": "c", "image": "i", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}]}});
        assert!(warnings(v).is_empty());
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"priority": 5, "containers": [{"name": "c", "image": "i", "terminationMessagePath": "/tmp/x"}]}});
        // terminationMessagePath is implemented; a non-default priority is not.
        assert_eq!(warnings(v), ["spec.priority"]);
    }

    #[test]
    fn settings_podrun_cannot_honour_are_named() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"schedulerName": "my-scheduler", "automountServiceAccountToken": true,
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "image": "i",
                    "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}});
        assert_eq!(
            warnings(v),
            ["spec.automountServiceAccountToken", "spec.schedulerName"]
        );
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"schedulerName": "default-scheduler", "automountServiceAccountToken": false,
                "containers": [{"name": "c", "image": "i"}]}});
        assert!(warnings(v).is_empty());
    }

    #[test]
    fn warning_text() {
        let w = Warning {
            object: "Pod \"p\"".into(),
            path: "spec.containers[0].resources.claims".into(),
        };
        assert_eq!(
            w.to_string(),
            "spec.containers[0].resources.claims is not supported by podrun and is ignored"
        );
    }
}
