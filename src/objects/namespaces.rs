//! Namespace objects: the four a cluster starts with (default, kube-system, kube-public,
//! kube-node-lease), those applied from files, and those podrun's objects live in.
//!
//! podrun admits a pod in a namespace nobody created (the seed walk-through relies on
//! it, where the API server would answer `namespaces "dev" not found`); such a namespace
//! is listed as Active.
use super::kinds::{admit_typed, AdmitError, CLUSTER_SCOPE};
use super::ObjectStore;
use crate::manifest::defaults;
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus};
use serde_json::Value;
use std::collections::BTreeMap;

pub const NAMESPACES: &str = "namespaces";

/// The namespaces every cluster has.
pub const BUILT_IN: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];

pub fn admit(v: &mut Value) -> Result<(), AdmitError> {
    admit_typed::<Namespace>(v, |ns| {
        defaults::default_object_meta(&mut ns.metadata);
        ns.metadata.namespace = None;
        let name = ns.metadata.name.clone().unwrap_or_default();
        // The API server adds the name label and the kubernetes finalizer.
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".into(), name);
        ns.spec
            .get_or_insert_with(Default::default)
            .finalizers
            .get_or_insert_with(|| vec!["kubernetes".into()]);
        ns.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        crate::manifest::validate::validate_namespace(ns)
    })
}

/// Every namespace: the built-in ones, the applied ones, and `in_use` (those objects
/// live in), by name.
pub fn list(store: &ObjectStore, in_use: &[String]) -> Vec<Namespace> {
    let mut out: BTreeMap<String, Namespace> = BTreeMap::new();
    for (_, ns) in store.list::<Namespace>(NAMESPACES, Some(CLUSTER_SCOPE)) {
        if let Ok(ns) = ns {
            out.insert(ns.metadata.name.clone().unwrap_or_default(), ns);
        }
    }
    let implicit = BUILT_IN
        .iter()
        .map(|s| s.to_string())
        .chain(in_use.iter().cloned());
    for name in implicit {
        out.entry(name.clone())
            .or_insert_with(|| implicit_namespace(&name));
    }
    out.into_values().collect()
}

fn implicit_namespace(name: &str) -> Namespace {
    let mut v =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let _ = admit(&mut v);
    let mut ns: Namespace = serde_json::from_value(v).unwrap_or_default();
    // Existing since the node's first start: no creation time podrun knows.
    ns.metadata.creation_timestamp = None;
    ns.metadata.uid = None;
    ns
}
