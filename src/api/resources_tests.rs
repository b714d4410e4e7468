use super::*;

#[test]
fn query_parameters_are_percent_decoded() {
    let q = Query::parse("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true&resourceVersion=7");
    assert_eq!(q.label_selector, "app=web,tier in (a)");
    assert!(q.watch);
    assert_eq!(q.resource_version.as_deref(), Some("7"));
    assert_eq!(percent_decode("100%"), "100%", "a lone % stays");
    assert_eq!(percent_decode("%zz"), "%zz");
}

#[test]
fn a_list_carries_the_newest_resource_version_of_its_items() {
    let items = vec![
        json!({"metadata": {"name": "a", "resourceVersion": "5"}}),
        json!({"metadata": {"name": "b", "resourceVersion": "12"}}),
    ];
    let l = list("Pod", items);
    assert_eq!(l["kind"], "PodList");
    assert_eq!(l["metadata"]["resourceVersion"], "12");
    assert_eq!(list("Pod", vec![])["metadata"]["resourceVersion"], "1");
}
