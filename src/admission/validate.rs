//! The API server's validation of the scheduling fields of a pod (affinity, tolerations),
//! with its field paths and words, so a pod it would refuse is refused here too. No
//! stricter than the API server: e.g. `Gt` with a non-integer passes here and then
//! simply matches no node, as in Kubernetes.
use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::fmt;

/// One field error, printed as apimachinery prints `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// All field errors of one pod: `Pod "NAME" is invalid: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    pub pod: String,
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pod {:?} is invalid: ", self.pod)?;
        if self.errors.len() == 1 {
            write!(f, "{}", self.errors[0])
        } else {
            let all: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
            write!(f, "[{}]", all.join(", "))
        }
    }
}

impl std::error::Error for ValidationErrors {}

struct Errs(Vec<FieldError>);

impl Errs {
    fn invalid(&mut self, path: &str, value: impl fmt::Debug, detail: &str) {
        self.0.push(FieldError {
            path: path.into(),
            detail: format!("Invalid value: {value:?}: {detail}"),
        });
    }
    fn required(&mut self, path: &str, detail: &str) {
        self.0.push(FieldError {
            path: path.into(),
            detail: format!("Required value: {detail}"),
        });
    }
    fn forbidden(&mut self, path: &str, detail: &str) {
        self.0.push(FieldError {
            path: path.into(),
            detail: format!("Forbidden: {detail}"),
        });
    }
    fn unsupported(&mut self, path: &str, value: &str, supported: &[&str]) {
        let s: Vec<String> = supported.iter().map(|v| format!("{v:?}")).collect();
        self.0.push(FieldError {
            path: path.into(),
            detail: format!(
                "Unsupported value: {value:?}: supported values: {}",
                s.join(", ")
            ),
        });
    }
    fn key(&mut self, path: &str, key: &str) {
        if let Err(e) = crate::node::validate_label_key(key) {
            self.invalid(path, key, &e);
        }
    }
}

fn node_requirement(e: &mut Errs, r: &NodeSelectorRequirement, path: &str) {
    let n = r.values.as_ref().map_or(0, Vec::len);
    match r.operator.as_str() {
        "In" | "NotIn" if n == 0 => e.required(
            &format!("{path}.values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        "Exists" | "DoesNotExist" if n > 0 => e.forbidden(
            &format!("{path}.values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        "Gt" | "Lt" if n != 1 => e.required(
            &format!("{path}.values"),
            "must be specified single value when `operator` is 'Lt' or 'Gt'",
        ),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        op => e.invalid(
            &format!("{path}.operator"),
            op,
            "not a valid selector operator",
        ),
    }
    e.key(&format!("{path}.key"), &r.key);
}

fn field_requirement(e: &mut Errs, r: &NodeSelectorRequirement, path: &str) {
    match r.operator.as_str() {
        "In" | "NotIn" => {
            if r.values.as_ref().map_or(0, Vec::len) != 1 {
                e.required(
                    &format!("{path}.values"),
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                );
            }
        }
        op => e.invalid(
            &format!("{path}.operator"),
            op,
            "not a valid selector operator",
        ),
    }
    if r.key != "metadata.name" {
        e.invalid(
            &format!("{path}.key"),
            &r.key,
            "not a valid field selector key",
        );
    }
}

fn node_term(e: &mut Errs, t: &NodeSelectorTerm, path: &str) {
    for (i, r) in t.match_expressions.iter().flatten().enumerate() {
        node_requirement(e, r, &format!("{path}.matchExpressions[{i}]"));
    }
    for (i, r) in t.match_fields.iter().flatten().enumerate() {
        field_requirement(e, r, &format!("{path}.matchFields[{i}]"));
    }
}

fn label_selector(e: &mut Errs, s: &LabelSelector, path: &str) {
    for (i, r) in s.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let n = r.values.as_ref().map_or(0, Vec::len);
        match r.operator.as_str() {
            "In" | "NotIn" if n == 0 => e.required(
                &format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if n > 0 => e.forbidden(
                &format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => e.invalid(
                &format!("{p}.operator"),
                op,
                "not a valid selector operator",
            ),
        }
        e.key(&format!("{p}.key"), &r.key);
        for (j, v) in r.values.iter().flatten().enumerate() {
            if let Err(msg) = crate::node::validate_label_value(v) {
                e.invalid(&format!("{p}.values[{j}]"), v, &msg);
            }
        }
    }
    for (k, v) in s.match_labels.iter().flatten() {
        e.key(&format!("{path}.matchLabels"), k);
        if let Err(msg) = crate::node::validate_label_value(v) {
            e.invalid(&format!("{path}.matchLabels"), v, &msg);
        }
    }
}

fn pod_term(e: &mut Errs, t: &PodAffinityTerm, path: &str) {
    if let Some(s) = &t.label_selector {
        label_selector(e, s, &format!("{path}.labelSelector"));
    }
    if let Some(s) = &t.namespace_selector {
        label_selector(e, s, &format!("{path}.namespaceSelector"));
    }
    if t.topology_key.is_empty() {
        e.required(&format!("{path}.topologyKey"), "can not be empty");
    } else {
        e.key(&format!("{path}.topologyKey"), &t.topology_key);
    }
}

fn weight(e: &mut Errs, w: i32, path: &str) {
    if !(1..=100).contains(&w) {
        e.invalid(&format!("{path}.weight"), w, "must be in the range 1-100");
    }
}

fn tolerations(e: &mut Errs, tols: &[Toleration]) {
    for (i, t) in tols.iter().enumerate() {
        let path = format!("spec.tolerations[{i}]");
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            e.key(&format!("{path}.key"), key);
        }
        if key.is_empty() && op != "Exists" {
            e.invalid(
                &format!("{path}.operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            e.invalid(
                &format!("{path}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
        match op {
            "" | "Equal" => {
                if let Err(msg) = crate::node::validate_label_value(value) {
                    e.invalid(&format!("{path}.operator"), value, &msg);
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    e.invalid(
                        &format!("{path}.operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    );
                }
            }
            other => e.unsupported(&format!("{path}.operator"), other, &["Equal", "Exists"]),
        }
        if !effect.is_empty() && !crate::node::EFFECTS.contains(&effect) {
            e.unsupported(
                &format!("{path}.effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            );
        }
    }
}

/// Validates the pod's nodeSelector, affinity and tolerations.
pub fn validate_scheduling(pod: &Pod) -> Result<(), ValidationErrors> {
    let mut e = Errs(Vec::new());
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    for (k, v) in spec.node_selector.iter().flatten() {
        e.key("spec.nodeSelector", k);
        if let Err(msg) = crate::node::validate_label_value(v) {
            e.invalid("spec.nodeSelector", v, &msg);
        }
    }
    if let Some(a) = &spec.affinity {
        if let Some(na) = &a.node_affinity {
            let base = "spec.affinity.nodeAffinity";
            if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
                let p = format!(
                    "{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
                );
                if req.node_selector_terms.is_empty() {
                    e.required(&p, "must have at least one node selector term");
                }
                for (i, t) in req.node_selector_terms.iter().enumerate() {
                    node_term(&mut e, t, &format!("{p}[{i}]"));
                }
            }
            for (i, w) in na
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .enumerate()
            {
                let p = format!("{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
                weight(&mut e, w.weight, &p);
                node_term(&mut e, &w.preference, &format!("{p}.preference"));
            }
        }
        for (base, required, preferred) in [
            (
                "spec.affinity.podAffinity",
                a.pod_affinity.as_ref().and_then(|x| {
                    x.required_during_scheduling_ignored_during_execution
                        .as_deref()
                }),
                a.pod_affinity.as_ref().and_then(|x| {
                    x.preferred_during_scheduling_ignored_during_execution
                        .as_deref()
                }),
            ),
            (
                "spec.affinity.podAntiAffinity",
                a.pod_anti_affinity.as_ref().and_then(|x| {
                    x.required_during_scheduling_ignored_during_execution
                        .as_deref()
                }),
                a.pod_anti_affinity.as_ref().and_then(|x| {
                    x.preferred_during_scheduling_ignored_during_execution
                        .as_deref()
                }),
            ),
        ] {
            for (i, t) in required.unwrap_or(&[]).iter().enumerate() {
                pod_term(
                    &mut e,
                    t,
                    &format!("{base}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"),
                );
            }
            for (i, w) in preferred.unwrap_or(&[]).iter().enumerate() {
                let p = format!("{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
                weight(&mut e, w.weight, &p);
                pod_term(
                    &mut e,
                    &w.pod_affinity_term,
                    &format!("{p}.podAffinityTerm"),
                );
            }
        }
    }
    tolerations(&mut e, spec.tolerations.as_deref().unwrap_or(&[]));
    if spec
        .scheduling_gates
        .as_ref()
        .is_some_and(|g| !g.is_empty())
        && spec.node_name.as_ref().is_some_and(|n| !n.is_empty())
    {
        e.forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        );
    }
    if e.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            errors: e.0,
        })
    }
}
