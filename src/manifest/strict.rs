//! Strict decoding as the API server does it for kubectl: a field the type does not know
//! is an error naming its path (`unknown field "spec.containers[0].imagee"`).
//!
//! The object is decoded, encoded back, and the two JSON trees compared: any key of the
//! input missing from the round trip is one the type dropped, i.e. unknown.
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Decodes `value` into `T`, refusing unknown fields; the error is the message after
/// "cannot be handled as a Kind: ".
pub fn decode<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    walk(value, &back, "", &mut unknown);
    if unknown.is_empty() {
        Ok(typed)
    } else {
        let list: Vec<String> = unknown
            .iter()
            .map(|p| format!("unknown field {p:?}"))
            .collect();
        Err(format!("strict decoding error: {}", list.join(", ")))
    }
}

fn walk(input: &Value, known: &Value, path: &str, unknown: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(kv) => walk(v, kv, &p, unknown),
                    // A null is "not set": the round trip drops it without it being unknown.
                    None if v.is_null() => {}
                    None => unknown.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, kv)) in a.iter().zip(b.iter()).enumerate() {
                walk(v, kv, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn known_fields_and_nulls_pass() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "creationTimestamp": null, "labels": {"any-key": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": ""}]}]}});
        assert!(decode::<Pod>(&v).is_ok());
    }

    #[test]
    fn unknown_nested_field_is_named_with_its_index() {
        let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "i"},
                                    {"name": "c", "image": "i", "ports": [{"containerPort": 80, "prot": "TCP"}]}]}});
        assert_eq!(
            decode::<Pod>(&v).unwrap_err(),
            r#"strict decoding error: unknown field "spec.containers[1].ports[0].prot""#
        );
    }
}
