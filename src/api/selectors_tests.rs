use super::*;
use serde_json::json;

#[test]
fn field_selector_matches_equal_and_not_equal() {
    let pod = json!({"metadata": {"name": "web", "namespace": "default"},
                     "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
    let t = parse_fields("pods", "status.phase=Running,spec.nodeName==n1").expect("parse");
    assert!(fields_match(&t, &pod));
    let t = parse_fields("pods", "metadata.name!=web").expect("parse");
    assert!(!fields_match(&t, &pod));
    let t = parse_fields("pods", "status.podIP=").expect("parse");
    assert!(fields_match(&t, &pod), "an absent field is the empty value");
}

#[test]
fn unsupported_field_is_refused_in_the_api_servers_words() {
    assert_eq!(
        parse_fields("configmaps", "status.phase=Running").unwrap_err(),
        "field label not supported: status.phase"
    );
    assert!(parse_fields("pods", "nonsense").is_err());
}
