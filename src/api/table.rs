//! Table responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the API
//! server's columns per kind, the cells from podrun's own printers so that `podrun get`
//! and `kubectl get` agree.
use super::resources::Objects;
use crate::cli::printers::{age, pod_columns};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

/// One column: its name, type and priority (1: only with -o wide).
struct Column(&'static str, &'static str, u8);

fn columns(resource: &str) -> &'static [Column] {
    match resource {
        "pods" => &[
            Column("Name", "string", 0),
            Column("Ready", "string", 0),
            Column("Status", "string", 0),
            Column("Restarts", "string", 0),
            Column("Age", "string", 0),
            Column("IP", "string", 1),
            Column("Node", "string", 1),
            Column("Nominated Node", "string", 1),
            Column("Readiness Gates", "string", 1),
        ],
        "nodes" => &[
            Column("Name", "string", 0),
            Column("Status", "string", 0),
            Column("Roles", "string", 0),
            Column("Age", "string", 0),
            Column("Version", "string", 0),
            Column("Internal-IP", "string", 1),
            Column("External-IP", "string", 1),
            Column("OS-Image", "string", 1),
            Column("Kernel-Version", "string", 1),
            Column("Container-Runtime", "string", 1),
        ],
        "namespaces" => &[
            Column("Name", "string", 0),
            Column("Status", "string", 0),
            Column("Age", "string", 0),
        ],
        "configmaps" => &[
            Column("Name", "string", 0),
            Column("Data", "integer", 0),
            Column("Age", "string", 0),
        ],
        "secrets" => &[
            Column("Name", "string", 0),
            Column("Type", "string", 0),
            Column("Data", "integer", 0),
            Column("Age", "string", 0),
        ],
        _ => &[Column("Name", "string", 0), Column("Age", "string", 0)],
    }
}

/// The Table of a resource's objects; `include` is the includeObject parameter
/// (None, Metadata — the default — or Object).
pub fn table(resource: &str, objects: &Objects, include: Option<&str>) -> Value {
    let defs: Vec<Value> = columns(resource)
        .iter()
        .map(|c| {
            json!({
                "name": c.0,
                "type": c.1,
                "format": if c.0 == "Name" { "name" } else { "" },
                "description": "",
                "priority": c.2,
            })
        })
        .collect();
    let rows: Vec<Value> = match objects {
        Objects::Pods(pods) => pods
            .iter()
            .map(|p| {
                let obj = serde_json::to_value(p).unwrap_or_default();
                row(pod_cells(p), &obj, include)
            })
            .collect(),
        Objects::Values(values) => values
            .iter()
            .map(|v| row(value_cells(resource, v), v, include))
            .collect(),
    };
    let rv = match objects {
        Objects::Pods(p) => p
            .iter()
            .filter_map(|p| p.metadata.resource_version.as_deref()?.parse::<u64>().ok())
            .max(),
        Objects::Values(v) => v
            .iter()
            .filter_map(|v| {
                v["metadata"]["resourceVersion"]
                    .as_str()?
                    .parse::<u64>()
                    .ok()
            })
            .max(),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.unwrap_or(1).to_string()},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn row(cells: Vec<Value>, obj: &Value, include: Option<&str>) -> Value {
    let object = match include {
        Some("None") => Value::Null,
        Some("Object") => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }),
    };
    let mut r = json!({"cells": cells});
    if !object.is_null() {
        r["object"] = object;
    }
    r
}

/// kubectl's pod columns: the same printer `podrun get pods` uses.
fn pod_cells(p: &Pod) -> Vec<Value> {
    let c = pod_columns(p);
    let st = p.status.as_ref();
    let none = || "<none>".to_string();
    vec![
        json!(p.metadata.name.as_deref().unwrap_or("")),
        json!(c.ready),
        json!(c.status),
        json!(c.restarts),
        json!(age(p.metadata.creation_timestamp.as_ref().map(|t| &t.0))),
        json!(st.and_then(|s| s.pod_ip.clone()).unwrap_or_else(none)),
        json!(p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(none)),
        json!(st
            .and_then(|s| s.nominated_node_name.clone())
            .unwrap_or_else(none)),
        json!(none()),
    ]
}

fn value_age(v: &Value) -> String {
    let t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> =
        serde_json::from_value(v["metadata"]["creationTimestamp"].clone()).ok();
    age(t.as_ref().map(|t| &t.0))
}

fn count(v: &Value, fields: &[&str]) -> usize {
    fields
        .iter()
        .filter_map(|f| v[*f].as_object())
        .map(|m| m.len())
        .sum()
}

fn value_cells(resource: &str, v: &Value) -> Vec<Value> {
    let name = json!(v["metadata"]["name"].as_str().unwrap_or(""));
    match resource {
        "nodes" => match serde_json::from_value::<Node>(v.clone()) {
            Ok(n) => node_cells(&n),
            Err(_) => vec![name],
        },
        "namespaces" => vec![name, v["status"]["phase"].clone(), json!(value_age(v))],
        "configmaps" => vec![
            name,
            json!(count(v, &["data", "binaryData"])),
            json!(value_age(v)),
        ],
        "secrets" => vec![
            name,
            json!(v["type"].as_str().unwrap_or("Opaque")),
            json!(count(v, &["data", "stringData"])),
            json!(value_age(v)),
        ],
        _ => vec![name, json!(value_age(v))],
    }
}

/// kubectl's node columns, in `podrun get nodes`' words: Ready/NotReady (Unknown without a condition), then SchedulingDisabled.
fn node_cells(n: &Node) -> Vec<Value> {
    let st = n.status.clone().unwrap_or_default();
    let ready = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            if c.status == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let address = |kind: &str| {
        st.addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == kind)
            .map_or_else(|| "<none>".to_string(), |a| a.address.clone())
    };
    let info = st.node_info.clone().unwrap_or_default();
    vec![
        json!(crate::node::node_name(n)),
        json!(status),
        json!(crate::cli::node::node_roles(n)),
        json!(age(n.metadata.creation_timestamp.as_ref().map(|t| &t.0))),
        json!(info.kubelet_version),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info.os_image),
        json!(info.kernel_version),
        json!(info.container_runtime_version),
    ]
}
