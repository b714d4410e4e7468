//! kubectl's commands for the stored kinds (ConfigMaps, Secrets, Namespaces, and the rows
//! of `objects::kinds::KINDS`): `apply`/`up` of them, `get` with kubectl's columns,
//! `describe` (a Secret's values never shown, only their sizes), `delete`.
use super::printers::{age, table};
use super::GlobalOpts;
use crate::manifest::Manifest;
use crate::objects::apply::{apply_object, delete_object, ObjectApplyError};
use crate::objects::kinds::{self, meta_str, Kind, CLUSTER_SCOPE};
use crate::objects::{namespaces, storage, ObjectStore};
use crate::pod::PodContext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::BTreeMap;

/// Applies every object of `m` that is not a pod, printing kubectl's line for each;
/// returns 1 if one failed.
pub fn apply_objects(ctx: &PodContext, m: &Manifest) -> i32 {
    let mut rc = 0;
    for obj in &m.objects {
        let what = format!("{}/{}", obj.kind.type_name(), obj.name());
        match apply_object(ctx, obj) {
            Ok(done) => println!("{what} {}", done.word()),
            Err(ObjectApplyError::Invalid(msg)) => {
                eprintln!("{msg}");
                rc = 1;
            }
            Err(e) => {
                eprintln!("error: {e}");
                rc = 1;
            }
        }
    }
    rc
}

/// kubectl's error line for each object of a kind podrun does not run; 1 if any.
pub fn report_not_run(m: &Manifest) -> i32 {
    for line in &m.not_run {
        eprintln!("{line}");
    }
    i32::from(!m.not_run.is_empty())
}

/// `delete -f`: the objects of `m` that are not pods.
pub fn delete_objects(ctx: &PodContext, m: &Manifest) -> i32 {
    let mut rc = 0;
    for obj in &m.objects {
        rc = rc.max(delete_named(ctx, obj.kind, obj.namespace(), obj.name()));
    }
    rc
}

fn delete_named(ctx: &PodContext, kind: &Kind, ns: &str, name: &str) -> i32 {
    let what = kind.kind.to_lowercase();
    if kind.kind == "Namespace" && namespaces::BUILT_IN.contains(&name) {
        eprintln!("Error from server (Forbidden): namespaces {name:?} is forbidden: this namespace may not be deleted");
        return 1;
    }
    let deleted = if kind.kind == "PersistentVolumeClaim" {
        // As kubectl: waits for the pvc-protection finalizer (no pod uses it any more).
        storage::delete_claim(ctx, ns, name, std::time::Duration::from_secs(600))
            .map(|d| d.is_some())
    } else {
        delete_object(ctx, kind, ns, name)
    };
    match deleted {
        Ok(true) => {
            println!("{what} {name:?} deleted");
            0
        }
        Ok(false) => {
            eprintln!(
                "Error from server (NotFound): {} {name:?} not found",
                kind.resource
            );
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The stored kind a `get`/`describe`/`delete` resource names (not pods).
fn stored_kind(resource: &str) -> Option<&'static Kind> {
    kinds::by_resource(resource).filter(|k| k.kind != "Pod")
}

/// `delete KIND NAME...` for a stored kind; None when `args[0]` is not one.
pub fn delete(g: &GlobalOpts, args: &[String], namespace: Option<&str>) -> Option<i32> {
    let (resource, names) = split(args.first()?, &args[1..]);
    let kind = stored_kind(&resource)?;
    if names.is_empty() {
        eprintln!("error: resource(s) were provided, but no name was specified");
        return Some(1);
    }
    let ctx = super::pod::context(g);
    let ns = namespace.unwrap_or("default");
    let rc = names
        .iter()
        .map(|n| delete_named(&ctx, kind, ns, n))
        .max()
        .unwrap_or(0);
    Some(rc)
}

fn split(resource: &str, names: &[String]) -> (String, Vec<String>) {
    match resource.split_once('/') {
        Some((r, n)) => {
            let mut all = vec![n.to_string()];
            all.extend(names.iter().cloned());
            (r.to_string(), all)
        }
        None => (resource.to_string(), names.to_vec()),
    }
}

/// What `get`/`describe` of a stored kind was asked.
pub struct Query<'a> {
    pub resource: &'a str,
    pub names: &'a [String],
    pub namespace: Option<&'a str>,
    pub all_namespaces: bool,
    pub output: Option<&'a str>,
}

/// The objects asked for, and the names not found.
fn select(g: &GlobalOpts, kind: &Kind, q: &Query<'_>) -> (Vec<Value>, Vec<String>) {
    let store = ObjectStore::new(&g.data_dir);
    let mut all: Vec<Value> = if kind.kind == "Namespace" {
        namespaces::list(&store, &namespaces_in_use(g))
            .into_iter()
            .filter_map(|n| serde_json::to_value(n).ok())
            .collect()
    } else if kind.kind == "StorageClass" {
        let mut all: Vec<Value> = store
            .list::<Value>(kind.resource, Some(CLUSTER_SCOPE))
            .into_iter()
            .filter_map(|(_, v)| v.ok())
            .collect();
        if !all
            .iter()
            .any(|v| meta_str(v, "name") == storage::DEFAULT_CLASS)
        {
            all.insert(0, storage::built_in_class());
        }
        all
    } else {
        let ns = if !kind.namespaced {
            Some(CLUSTER_SCOPE)
        } else if q.all_namespaces {
            None
        } else {
            Some(q.namespace.unwrap_or("default"))
        };
        store
            .list::<Value>(kind.resource, ns)
            .into_iter()
            .filter_map(|(_, v)| v.ok())
            .collect()
    };
    if q.names.is_empty() {
        return (all, Vec::new());
    }
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for n in q.names {
        match all.iter().position(|v| meta_str(v, "name") == n) {
            Some(i) => out.push(all.remove(i)),
            None => missing.push(n.clone()),
        }
    }
    (out, missing)
}

/// The namespaces pods and objects live in (podrun admits them without a Namespace).
fn namespaces_in_use(g: &GlobalOpts) -> Vec<String> {
    let mut out: Vec<String> = crate::supervisor::store::PodStore::new(&g.root)
        .list()
        .iter()
        .map(|r| r.namespace().to_string())
        .collect();
    let store = ObjectStore::new(&g.data_dir);
    for k in kinds::KINDS.iter().filter(|k| k.namespaced) {
        out.extend(
            store
                .list::<Value>(k.resource, None)
                .into_iter()
                .map(|(key, _)| key.namespace),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// `get KIND [NAME...]` for a stored kind; None when the resource is not one.
pub fn get(g: &GlobalOpts, q: &Query<'_>) -> Option<i32> {
    let kind = stored_kind(q.resource)?;
    let (objs, missing) = select(g, kind, q);
    for m in &missing {
        eprintln!(
            "Error from server (NotFound): {} {m:?} not found",
            kind.resource
        );
    }
    let rc = i32::from(!missing.is_empty());
    match q.output.unwrap_or("") {
        "json" | "yaml" => {
            let doc = if objs.len() == 1 && !q.names.is_empty() {
                objs[0].clone()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}})
            };
            let text: Result<String, String> = if q.output == Some("json") {
                serde_json::to_string_pretty(&doc)
                    .map(|s| s + "\n")
                    .map_err(|e| e.to_string())
            } else {
                serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())
            };
            match text {
                Ok(t) => print!("{t}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Some(1);
                }
            }
        }
        "name" => {
            for o in &objs {
                println!("{}/{}", kind.type_name(), meta_str(o, "name"));
            }
        }
        "" | "wide" => {
            if objs.is_empty() {
                if missing.is_empty() {
                    no_resources(kind, q);
                }
                return Some(rc);
            }
            print!(
                "{}",
                table(&rows(kind, &objs, q.all_namespaces && kind.namespaced))
            );
        }
        other => {
            eprintln!("error: unable to match a printer suitable for the output format {other:?}, allowed formats are: json,name,wide,yaml");
            return Some(1);
        }
    }
    Some(rc)
}

fn no_resources(kind: &Kind, q: &Query<'_>) {
    if q.all_namespaces || !kind.namespaced {
        eprintln!("No resources found");
    } else {
        let ns = q.namespace.unwrap_or("default");
        eprintln!("No resources found in {ns} namespace.");
    }
}

/// The number of keys of a ConfigMap (data and binaryData) or Secret (data).
fn data_count(v: &Value) -> usize {
    ["data", "binaryData"]
        .iter()
        .filter_map(|f| v.get(*f).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

fn created(v: &Value) -> String {
    let meta: ObjectMeta = v
        .get("metadata")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    age(meta.creation_timestamp.as_ref().map(|t| &t.0))
}

/// kubectl's columns per kind.
fn rows(kind: &Kind, objs: &[Value], with_ns: bool) -> Vec<Vec<String>> {
    let head: Vec<&str> = match kind.kind {
        "ConfigMap" => vec!["NAME", "DATA", "AGE"],
        "Secret" => vec!["NAME", "TYPE", "DATA", "AGE"],
        "Namespace" => vec!["NAME", "STATUS", "AGE"],
        "PersistentVolumeClaim" => vec![
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE",
        ],
        "PersistentVolume" => vec![
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE",
        ],
        "StorageClass" => vec![
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ],
        _ => vec!["NAME", "AGE"],
    };
    let mut out = Vec::new();
    let mut h: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    if with_ns {
        h.insert(0, "NAMESPACE".into());
    }
    out.push(h);
    for v in objs {
        let name = meta_str(v, "name").to_string();
        let mut row = match kind.kind {
            "ConfigMap" => vec![name, data_count(v).to_string(), created(v)],
            "Secret" => vec![
                name,
                v["type"].as_str().unwrap_or("Opaque").to_string(),
                data_count(v).to_string(),
                created(v),
            ],
            "Namespace" => vec![
                name,
                v["status"]["phase"]
                    .as_str()
                    .unwrap_or("Active")
                    .to_string(),
                created(v),
            ],
            "PersistentVolumeClaim" | "PersistentVolume" | "StorageClass" => {
                storage_row(kind, v, name)
            }
            _ => vec![name, created(v)],
        };
        if with_ns {
            row.insert(0, meta_str(v, "namespace").to_string());
        }
        out.push(row);
    }
    out
}

fn text_or(v: &Value, dflt: &str) -> String {
    v.as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(dflt)
        .to_string()
}

/// A claim's, volume's or class's row.
fn storage_row(kind: &Kind, v: &Value, name: String) -> Vec<String> {
    let (spec, status) = (&v["spec"], &v["status"]);
    let terminating = v["metadata"].get("deletionTimestamp").is_some();
    let phase = if terminating {
        "Terminating".to_string()
    } else {
        text_or(&status["phase"], "Pending")
    };
    match kind.kind {
        "PersistentVolumeClaim" => vec![
            name,
            phase,
            text_or(&spec["volumeName"], ""),
            text_or(&status["capacity"]["storage"], ""),
            storage::short_modes(&status["accessModes"]),
            text_or(&spec["storageClassName"], "<unset>"),
            "<unset>".into(),
            created(v),
        ],
        "PersistentVolume" => {
            let claim = &spec["claimRef"];
            let claim = if claim.is_object() {
                format!(
                    "{}/{}",
                    text_or(&claim["namespace"], ""),
                    text_or(&claim["name"], "")
                )
            } else {
                String::new()
            };
            vec![
                name,
                text_or(&spec["capacity"]["storage"], ""),
                storage::short_modes(&spec["accessModes"]),
                text_or(&spec["persistentVolumeReclaimPolicy"], "Retain"),
                phase,
                claim,
                text_or(&spec["storageClassName"], ""),
                "<unset>".into(),
                String::new(),
                created(v),
            ]
        }
        _ => {
            let default = v["metadata"]["annotations"]
                ["storageclass.kubernetes.io/is-default-class"]
                == "true";
            vec![
                if default {
                    format!("{name} (default)")
                } else {
                    name
                },
                text_or(&v["provisioner"], ""),
                text_or(&v["reclaimPolicy"], "Delete"),
                text_or(&v["volumeBindingMode"], "Immediate"),
                v["allowVolumeExpansion"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string(),
                created(v),
            ]
        }
    }
}

/// `describe KIND [NAME...]` for a stored kind; None when the resource is not one.
pub fn describe(g: &GlobalOpts, q: &Query<'_>) -> Option<i32> {
    let kind = stored_kind(q.resource)?;
    let (objs, missing) = select(g, kind, q);
    for m in &missing {
        eprintln!(
            "Error from server (NotFound): {} {m:?} not found",
            kind.resource
        );
    }
    for (i, v) in objs.iter().enumerate() {
        if i > 0 {
            println!("\n");
        }
        print!("{}", describe_one(kind, v));
    }
    Some(i32::from(!missing.is_empty()))
}

/// `Labels:       a=b` with further entries aligned under the first, `<none>` if none.
fn map_field(title: &str, v: Option<&Value>) -> String {
    let pad = " ".repeat(14);
    let entries: BTreeMap<String, String> = v
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let head = format!("{:<14}", format!("{title}:"));
    if entries.is_empty() {
        return format!("{head}<none>\n");
    }
    let mut out = String::new();
    for (i, (k, val)) in entries.iter().enumerate() {
        let lead = if i == 0 { head.as_str() } else { pad.as_str() };
        out.push_str(&format!("{lead}{k}={val}\n"));
    }
    out
}

fn describe_one(kind: &Kind, v: &Value) -> String {
    let meta = &v["metadata"];
    let mut out = format!("{:<14}{}\n", "Name:", meta_str(v, "name"));
    if kind.namespaced {
        out.push_str(&format!(
            "{:<14}{}\n",
            "Namespace:",
            meta_str(v, "namespace")
        ));
    }
    out.push_str(&map_field("Labels", meta.get("labels")));
    out.push_str(&map_field("Annotations", meta.get("annotations")));
    match kind.kind {
        "ConfigMap" => out.push_str(&config_map_body(v)),
        "Secret" => out.push_str(&secret_body(v)),
        "Namespace" => {
            let phase = v["status"]["phase"].as_str().unwrap_or("Active");
            out.push_str(&format!(
                "{:<14}{phase}\n\nNo resource quota.\n\nNo LimitRange resource.\n",
                "Status:"
            ));
        }
        _ => {}
    }
    out
}

fn config_map_body(v: &Value) -> String {
    let mut out = String::from("\nData\n====\n");
    for (k, val) in v["data"].as_object().into_iter().flatten() {
        out.push_str(&format!("{k}:\n----\n{}\n\n", val.as_str().unwrap_or("")));
    }
    out.push_str("\nBinaryData\n====\n");
    for (k, val) in v["binaryData"].as_object().into_iter().flatten() {
        let n = decoded_len(val.as_str().unwrap_or(""));
        out.push_str(&format!("{k}: {n} bytes\n"));
    }
    out.push_str("\nEvents:  <none>\n");
    out
}

/// A Secret's body: its type and each key's size, never a value.
fn secret_body(v: &Value) -> String {
    let ty = v["type"].as_str().unwrap_or("Opaque");
    let mut out = format!("\nType:  {ty}\n\nData\n====\n");
    let data = v["data"].as_object().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = data
        .iter()
        .map(|(k, val)| {
            let n = decoded_len(val.as_str().unwrap_or(""));
            vec![format!("{k}:"), format!("{n} bytes")]
        })
        .collect();
    out.push_str(&super::printers::table_pad(&rows, 2));
    out
}

/// The length of base64 `s` once decoded.
fn decoded_len(s: &str) -> usize {
    let s = s.trim_end_matches('=');
    s.len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_is_described_by_its_sizes_only() {
        let v = json!({"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque",
                       "data": {"password": "MTIzNDU2", "user": "YWRtaW4="}});
        let kind = kinds::lookup("v1", "Secret").expect("kind");
        let text = describe_one(kind, &v);
        assert_eq!(
            text,
            "Name:         s\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nType:  Opaque\n\nData\n====\npassword:  6 bytes\nuser:      5 bytes\n"
        );
    }

    #[test]
    fn get_columns_are_kubectls() {
        let cm = kinds::lookup("v1", "ConfigMap").expect("kind");
        let v = json!({"metadata": {"name": "cfg", "namespace": "dev"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        let r = rows(cm, &[v], true);
        assert_eq!(r[0], ["NAMESPACE", "NAME", "DATA", "AGE"]);
        assert_eq!(r[1][..3], ["dev", "cfg", "3"]);
    }
}
