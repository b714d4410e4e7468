//! What every controller shares: the pod-template hash, owner references, label
//! selectors, int-or-percent fields, and whether a pod counts as ready or available.
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// The label a Deployment's ReplicaSets and their pods carry (kube's DefaultDeploymentUniqueLabelKey).
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// apimachinery's rand.SafeEncodeString alphabet: no vowels, no confusable characters.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// kube's rand.SafeEncodeString: each byte mapped into the safe alphabet.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE[usize::from(b) % SAFE.len()]))
        .collect()
}

/// FNV-32a, the hash kube's ComputeHash writes the template into.
fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The pod-template-hash of `template` as kube's controller.ComputeHash makes it:
/// FNV-32a of the template (here its canonical JSON, keys sorted: Go's deep printer has no
/// Rust twin), then the collision count as 8 little-endian bytes, printed in decimal and
/// safe-encoded.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let canonical = serde_json::to_value(template)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_default();
    let mut h = fnv32a(&canonical, 0x811c_9dc5);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(&bytes, h);
    }
    safe_encode(&h.to_string())
}

/// Five characters for a generated name (`<owner>-<5 chars>`), as generateName gives.
pub fn name_suffix() -> String {
    let uid = crate::manifest::defaults::new_uid().replace('-', "");
    safe_encode(&uid).chars().take(5).collect()
}

/// A controller's reference to the object that owns it.
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The reference to the controller of an object, if it has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether the object's controller is the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    !uid.is_empty() && controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// Whether `labels` satisfy a metav1 LabelSelector (matchLabels and matchExpressions).
pub fn selector_matches(sel: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or(&[]);
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// An int-or-percent field against `total` (kube's GetScaledValueFromIntOrPercent);
/// percentages round up or down as asked. None when the string is no percentage.
pub fn scaled(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let p: i64 = s.strip_suffix('%')?.parse().ok()?;
            let x = p * i64::from(total);
            let r = if round_up { (x + 99) / 100 } else { x / 100 };
            Some(r as i32)
        }
    }
}

/// The pod's phase ("" when not reported yet).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Since when the pod has been Ready, None when it is not.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// Ready for at least `min_ready_seconds` (kube's IsPodAvailable).
pub fn available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    ready_since(pod).is_some_and(|t| {
        min_ready_seconds <= 0 || t.as_second() + i64::from(min_ready_seconds) <= now.as_second()
    })
}

/// A pod that counts toward its owner's replicas: not finished, not being deleted.
pub fn active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// The namespace of an object's metadata ("default" when unset).
pub fn ns(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// The name of an object's metadata.
pub fn name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// Seconds since `t` (0 for a time in the future).
pub fn age_secs(
    t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    now: Timestamp,
) -> i64 {
    t.map(|t| (now.as_second() - t.0.as_second()).max(0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_encoding_uses_kubes_alphabet() {
        // '0' is byte 48: 48 % 27 = 21 → '4'; '9' is 57 → 3 → 'f'.
        assert_eq!(safe_encode("09"), "4f");
    }

    #[test]
    fn the_hash_changes_with_the_template_and_the_collision_count() {
        let mut t = PodTemplateSpec::default();
        let a = compute_hash(&t, None);
        assert_eq!(a, compute_hash(&t, None), "stable");
        assert!(a.len() >= 6 && a.len() <= 10, "{a}");
        assert_ne!(a, compute_hash(&t, Some(1)));
        t.metadata = Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        });
        assert_ne!(a, compute_hash(&t, None));
    }

    #[test]
    fn percentages_round_as_the_deployment_controller_rounds_them() {
        let p = IntOrString::String("25%".into());
        assert_eq!(scaled(&p, 3, true), Some(1));
        assert_eq!(scaled(&p, 3, false), Some(0));
        assert_eq!(scaled(&p, 10, true), Some(3));
        assert_eq!(scaled(&IntOrString::Int(2), 10, true), Some(2));
        assert_eq!(scaled(&IntOrString::String("x".into()), 10, true), None);
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let labels: BTreeMap<String, String> =
            [("app".into(), "web".into()), ("tier".into(), "fe".into())].into();
        let mut sel = LabelSelector {
            match_labels: Some([("app".into(), "web".into())].into()),
            ..Default::default()
        };
        assert!(selector_matches(&sel, Some(&labels)));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: Some(vec!["fe".into()]),
        }]);
        assert!(!selector_matches(&sel, Some(&labels)));
        assert!(!selector_matches(&sel, None));
    }
}
