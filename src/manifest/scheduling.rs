//! The API server's validation of a pod's scheduling fields (nodeSelector, affinity,
//! tolerations, schedulingGates), with its field paths and words. No stricter than the
//! API server: `Gt` with a non-integer value passes and then simply matches no node.
use super::validate::{q, validate_label_value, validate_qualified_name, Errs, InvalidError};
use k8s_openapi::api::core::v1::{
    Affinity, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, PodSpec, Toleration,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Validates the pod's scheduling fields alone (admission re-checks them).
pub fn validate_scheduling(pod: &Pod) -> Result<(), InvalidError> {
    let mut e = Errs::default();
    if let Some(spec) = pod.spec.as_ref() {
        check(&mut e, spec);
    }
    super::validate::finish("Pod", &pod.metadata, e)
}

/// Adds the errors of the scheduling fields of `spec` to `e`.
pub(super) fn check(e: &mut Errs, spec: &PodSpec) {
    for (k, v) in spec.node_selector.iter().flatten() {
        validate_qualified_name(e, "spec.nodeSelector", k);
        validate_label_value(e, "spec.nodeSelector", v);
    }
    if let Some(a) = &spec.affinity {
        affinity(e, a);
    }
    tolerations(e, spec.tolerations.as_deref().unwrap_or(&[]));
    let gated = spec
        .scheduling_gates
        .as_ref()
        .is_some_and(|g| !g.is_empty());
    if gated && spec.node_name.as_ref().is_some_and(|n| !n.is_empty()) {
        e.forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        );
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
            q(op),
            "not a valid selector operator",
        ),
    }
    validate_qualified_name(e, &format!("{path}.key"), &r.key);
}

/// A matchFields requirement: only metadata.name, with In/NotIn and one node name.
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
            q(op),
            "not a valid selector operator",
        ),
    }
    if r.key != "metadata.name" {
        e.invalid(
            &format!("{path}.key"),
            q(&r.key),
            "not a valid field selector key",
        );
        return;
    }
    for (i, v) in r.values.iter().flatten().enumerate() {
        for m in super::labels::dns1123_subdomain_errors(v) {
            e.invalid(&format!("{path}.values[{i}]"), q(v), &m);
        }
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
                q(op),
                "not a valid selector operator",
            ),
        }
        validate_qualified_name(e, &format!("{p}.key"), &r.key);
        for (j, v) in r.values.iter().flatten().enumerate() {
            validate_label_value(e, &format!("{p}.values[{j}]"), v);
        }
    }
    for (k, v) in s.match_labels.iter().flatten() {
        validate_qualified_name(e, &format!("{path}.matchLabels"), k);
        validate_label_value(e, &format!("{path}.matchLabels"), v);
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
        validate_qualified_name(e, &format!("{path}.topologyKey"), &t.topology_key);
    }
}

fn weight(e: &mut Errs, w: i32, path: &str) {
    if !(1..=100).contains(&w) {
        e.invalid(
            &format!("{path}.weight"),
            w.to_string(),
            "must be in the range 1-100",
        );
    }
}

fn pod_terms(
    e: &mut Errs,
    base: &str,
    required: Option<&[PodAffinityTerm]>,
    preferred: Option<&[WeightedPodAffinityTerm]>,
) {
    for (i, t) in required.unwrap_or(&[]).iter().enumerate() {
        pod_term(
            e,
            t,
            &format!("{base}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"),
        );
    }
    for (i, w) in preferred.unwrap_or(&[]).iter().enumerate() {
        let p = format!("{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
        weight(e, w.weight, &p);
        pod_term(e, &w.pod_affinity_term, &format!("{p}.podAffinityTerm"));
    }
}

fn affinity(e: &mut Errs, a: &Affinity) {
    if let Some(na) = &a.node_affinity {
        let base = "spec.affinity.nodeAffinity";
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let p =
                format!("{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
            if req.node_selector_terms.is_empty() {
                e.required(&p, "must have at least one node selector term");
            }
            for (i, t) in req.node_selector_terms.iter().enumerate() {
                node_term(e, t, &format!("{p}[{i}]"));
            }
        }
        let preferred = na
            .preferred_during_scheduling_ignored_during_execution
            .iter();
        for (i, w) in preferred.flatten().enumerate() {
            let p = format!("{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            weight(e, w.weight, &p);
            node_term(e, &w.preference, &format!("{p}.preference"));
        }
    }
    if let Some(pa) = &a.pod_affinity {
        pod_terms(
            e,
            "spec.affinity.podAffinity",
            pa.required_during_scheduling_ignored_during_execution
                .as_deref(),
            pa.preferred_during_scheduling_ignored_during_execution
                .as_deref(),
        );
    }
    if let Some(pa) = &a.pod_anti_affinity {
        pod_terms(
            e,
            "spec.affinity.podAntiAffinity",
            pa.required_during_scheduling_ignored_during_execution
                .as_deref(),
            pa.preferred_during_scheduling_ignored_during_execution
                .as_deref(),
        );
    }
}

fn toleration(e: &mut Errs, t: &Toleration, path: &str) {
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("");
    let value = t.value.as_deref().unwrap_or("");
    let effect = t.effect.as_deref().unwrap_or("");
    if !key.is_empty() {
        validate_qualified_name(e, &format!("{path}.key"), key);
    }
    if key.is_empty() && op != "Exists" {
        e.invalid(
            &format!("{path}.operator"),
            q(op),
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        );
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        e.invalid(
            &format!("{path}.effect"),
            q(effect),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
    match op {
        "" | "Equal" => {
            let msgs = super::labels::label_value_errors(value);
            if !msgs.is_empty() {
                e.invalid(&format!("{path}.operator"), q(value), &msgs.join(";"));
            }
        }
        "Exists" if !value.is_empty() => e.invalid(
            &format!("{path}.operator"),
            q(value),
            "value must be empty when `operator` is 'Exists'",
        ),
        "Exists" => {}
        other => e.not_supported(&format!("{path}.operator"), other, &["Equal", "Exists"]),
    }
    if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        e.not_supported(
            &format!("{path}.effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        );
    }
}

fn tolerations(e: &mut Errs, tols: &[Toleration]) {
    for (i, t) in tols.iter().enumerate() {
        toleration(e, t, &format!("spec.tolerations[{i}]"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(spec_json: serde_json::Value) -> Vec<String> {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": spec_json
        }))
        .unwrap();
        match validate_scheduling(&pod) {
            Ok(()) => Vec::new(),
            Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn required_terms(term: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}})
    }

    #[test]
    fn gt_takes_any_single_value_as_the_api_server_does() {
        let spec = required_terms(serde_json::json!({"matchExpressions": [
            {"key": "cores", "operator": "Gt", "values": ["many"]}]}));
        assert_eq!(errors(spec), Vec::<String>::new());
        let spec = required_terms(serde_json::json!({"matchExpressions": [
            {"key": "cores", "operator": "Lt", "values": ["1", "2"]}]}));
        assert_eq!(errors(spec), ["spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"]);
    }

    #[test]
    fn match_fields_take_metadata_name_only() {
        let spec = required_terms(serde_json::json!({"matchFields": [
            {"key": "metadata.uid", "operator": "Exists"}]}));
        let p = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0]";
        assert_eq!(
            errors(spec),
            [
                format!("{p}.operator: Invalid value: \"Exists\": not a valid selector operator"),
                format!("{p}.key: Invalid value: \"metadata.uid\": not a valid field selector key"),
            ]
        );
        let spec = required_terms(serde_json::json!({"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["Node_1"]}]}));
        assert_eq!(errors(spec).len(), 1, "a node name is a DNS subdomain");
    }
}
