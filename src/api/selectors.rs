//! The list filters the API server evaluates: labelSelector (podrun's label selector
//! parser) and fieldSelector (`a=b`, `a==b`, `a!=b`, comma-separated) over the fields a
//! resource supports.
use serde_json::Value;

/// One fieldSelector term.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// The field labels a resource's fieldSelector takes, with their JSON paths.
fn supported(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "secrets" => &["metadata.name", "metadata.namespace", "type"],
        "namespaces" => &["metadata.name", "metadata.namespace", "status.phase"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// Parses a fieldSelector for `resource`, with the API server's words for a bad one.
pub fn parse_fields(resource: &str, s: &str) -> Result<Vec<FieldTerm>, String> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, true)
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            ));
        };
        let field = field.trim();
        if !supported(resource).contains(&field) {
            return Err(format!("field label not supported: {field}"));
        }
        out.push(FieldTerm {
            field: field.to_string(),
            value: value.trim().to_string(),
            equal,
        });
    }
    Ok(out)
}

/// The value of a dotted field of an object, "" when absent (as the API server's field
/// sets hold every supported field).
fn field_value(obj: &Value, field: &str) -> String {
    let mut v = obj;
    for part in field.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Whether an object matches every term.
pub fn fields_match(terms: &[FieldTerm], obj: &Value) -> bool {
    terms
        .iter()
        .all(|t| (field_value(obj, &t.field) == t.value) == t.equal)
}

#[cfg(test)]
#[path = "selectors_tests.rs"]
mod tests;
