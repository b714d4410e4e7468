use super::*;
use serde_json::json;

fn admitted(text: &str) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(text).expect("yaml");
    let kind = v["kind"].as_str().unwrap_or("").to_string();
    let r = if kind == "Secret" {
        admit_secret(&mut v)
    } else {
        admit_config_map(&mut v)
    };
    r.expect("admit");
    v
}

#[test]
fn an_immutable_config_map_refuses_a_change_in_the_api_servers_words() {
    let old = admitted("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\nimmutable: true\ndata: {a: '1'}\n");
    let new = admitted("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\nimmutable: true\ndata: {a: '2'}\n");
    assert_eq!(
        check_config_map_update(&old, &new).unwrap_err(),
        "The ConfigMap \"c\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let mutable = admitted("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\ndata: {a: '1'}\n");
    let e = check_config_map_update(&old, &mutable).unwrap_err();
    assert!(
        e.contains("immutable: Forbidden: field is immutable when `immutable` is set"),
        "{e}"
    );
    assert!(check_config_map_update(&mutable, &new).is_ok());
    assert!(check_config_map_update(&old, &old).is_ok());
}

#[test]
fn a_secrets_type_cannot_change() {
    let old = admitted("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\nstringData: {p: x}\n");
    let mut new = old.clone();
    new["type"] = json!("kubernetes.io/tls");
    assert_eq!(
        check_secret_update(&old, &new).unwrap_err(),
        "The Secret \"s\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable"
    );
    assert_eq!(old["data"]["p"], "eA==");
}

#[test]
fn a_pods_references_are_all_found() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  imagePullSecrets: [{name: reg}]\n  volumes:\n  - {name: a, configMap: {name: cm-vol}}\n  - {name: b, secret: {secretName: s-vol}}\n  - name: c\n    projected:\n      sources: [{configMap: {name: cm-proj}}, {secret: {name: s-proj}}]\n  containers:\n  - name: c\n    image: i\n    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: cm-env, key: k}}}\n    - {name: B, valueFrom: {secretKeyRef: {name: s-env, key: k}}}\n    envFrom: [{configMapRef: {name: cm-from}}, {secretRef: {name: s-from}}]\n";
    let pod = crate::manifest::load(text, &Default::default())
        .expect("load")
        .pods
        .remove(0);
    let (cms, secrets) = referenced(&pod);
    assert_eq!(
        cms.into_iter().collect::<Vec<_>>(),
        ["cm-env", "cm-from", "cm-proj", "cm-vol"]
    );
    assert_eq!(
        secrets.into_iter().collect::<Vec<_>>(),
        ["reg", "s-env", "s-from", "s-proj", "s-vol"]
    );
}
