//! Discovery: /version, /api, /apis and the core group version's resource list, as the
//! API server lists them (only the verbs podrun serves are listed).
use serde_json::{json, Value};

/// The Kubernetes version podrun follows (k8s-openapi's v1_34 types).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "34";

/// The /version document.
pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": crate::node::kubelet_version(),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", crate::node::go_arch()),
    })
}

/// /api: the core group's versions.
pub fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

/// /apis: the named groups (none served yet).
pub fn groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

/// One resource the core group serves.
pub struct Resource {
    pub name: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// The verbs served (only those podrun serves).
    pub verbs: &'static [&'static str],
}

const READ: &[&str] = &["get", "list"];

/// The core resources podrun serves.
pub const CORE: &[Resource] = &[
    Resource {
        name: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: READ,
    },
    Resource {
        name: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: READ,
    },
    Resource {
        name: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        verbs: READ,
    },
    Resource {
        name: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: &["delete", "get", "list", "watch"],
    },
    Resource {
        name: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: READ,
    },
];

/// The resource named by its plural.
pub fn core_resource(name: &str) -> Option<&'static Resource> {
    CORE.iter().find(|r| r.name == name)
}

/// The subresources served: (name, kind, verbs).
const SUBRESOURCES: &[(&str, &str, &[&str])] = &[("pods/log", "Pod", &["get"])];

/// /api/v1: the APIResourceList.
pub fn core_v1() -> Value {
    let resources: Vec<Value> = CORE
        .iter()
        .map(|r| {
            let mut v = json!({
                "name": r.name,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                v["categories"] = json!(r.categories);
            }
            v
        })
        .chain(SUBRESOURCES.iter().map(|(name, kind, verbs)| {
            json!({"name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": verbs})
        }))
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": resources,
    })
}
