//! The API's routes and read verbs (get, list) over the state `podrun get` reads: pods
//! from the pod store, the node from node.json, ConfigMaps and Secrets from the object
//! store, namespaces from what uses them.
use super::server::{Reply, State};
use super::{discovery, selectors, status, table};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// The objects of one resource: pods typed (their printer needs them), others as JSON.
pub enum Objects {
    Pods(Vec<Pod>),
    Values(Vec<Value>),
}

/// What a read asks for, from the path and the query.
struct Read<'a> {
    resource: &'a str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

/// Answers one authenticated request.
pub fn handle(state: &State, req: &hyper::Request<bytes::Bytes>) -> Reply {
    let path = req.uri().path().trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if req.method() == hyper::Method::DELETE {
        return match parts.as_slice() {
            ["api", "v1", "namespaces", ns, "pods", name] => {
                super::writes::delete_pod(state, ns, name, req)
            }
            _ => status::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ),
        };
    }
    if req.method() != hyper::Method::GET {
        return status::method_not_allowed(
            "the server does not allow this method on the requested resource",
        );
    }
    let server = state.opts.address.to_string();
    let read = match parts.as_slice() {
        ["version"] => return status::json_reply(200, &discovery::version()),
        ["healthz" | "livez" | "readyz"] => return plain("ok"),
        ["api"] => return status::json_reply(200, &discovery::core_versions(&server)),
        ["apis"] => return status::json_reply(200, &discovery::groups()),
        ["api", "v1"] => return status::json_reply(200, &discovery::core_v1()),
        ["api", "v1", "namespaces", ns, res] => Read {
            resource: res,
            namespace: Some(ns),
            name: None,
        },
        ["api", "v1", "namespaces", ns, res, name] => Read {
            resource: res,
            namespace: Some(ns),
            name: Some(name),
        },
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => {
            return super::logs::pod_log(state, ns, name, req.uri().query().unwrap_or(""))
        }
        ["api", "v1", res] => Read {
            resource: res,
            namespace: None,
            name: None,
        },
        ["api", "v1", res, name] => Read {
            resource: res,
            namespace: None,
            name: Some(name),
        },
        _ => return status::no_route(),
    };
    let Some(kind) = discovery::core_resource(read.resource) else {
        return status::no_route();
    };
    if kind.namespaced != read.namespace.is_some() && read.name.is_some() {
        return status::no_route();
    }
    if !kind.namespaced && read.namespace.is_some() {
        return status::no_route();
    }
    let query = Query::parse(req.uri().query().unwrap_or(""));
    let want_table = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    answer(state, &read, &query, want_table)
}

fn plain(text: &'static str) -> Reply {
    plain_text(text.to_string())
}

/// A text/plain reply (health checks, logs).
pub fn plain_text(text: String) -> Reply {
    let mut r = hyper::Response::new(http_body_util::BodyExt::boxed(http_body_util::Full::new(
        bytes::Bytes::from(text),
    )));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The query parameters the read verbs take.
#[derive(Debug, Default)]
pub struct Query {
    pub label_selector: String,
    pub field_selector: String,
    pub include_object: Option<String>,
    pub watch: bool,
    pub resource_version: Option<String>,
    /// A watch-list (client-go's default): the objects first, then a bookmark.
    pub send_initial_events: bool,
}

impl Query {
    pub fn parse(q: &str) -> Query {
        let mut out = Query::default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "labelSelector" => out.label_selector = v,
                "fieldSelector" => out.field_selector = v,
                "includeObject" => out.include_object = Some(v),
                "watch" => out.watch = v == "true" || v == "1",
                "resourceVersion" => out.resource_version = Some(v),
                "sendInitialEvents" => out.send_initial_events = v == "true",
                _ => {}
            }
        }
        out
    }
}

/// Decodes %XX escapes and '+' (a space in a query).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The label and field selectors of a read, parsed.
pub struct Selection {
    labels: crate::manifest::label_selector::LabelSelector,
    fields: Vec<selectors::FieldTerm>,
}

impl Selection {
    /// The selectors of a query, or the BadRequest message of a bad one.
    pub fn parse(resource: &str, query: &Query) -> Result<Selection, String> {
        let labels = crate::manifest::label_selector::parse(&query.label_selector)
            .map_err(|e| format!("unable to parse requirement: {e}"))?;
        let fields = selectors::parse_fields(resource, &query.field_selector)?;
        Ok(Selection { labels, fields })
    }

    /// Keeps the objects both selectors match.
    pub fn retain(&self, objects: &mut Objects) {
        let (labels, fields) = (&self.labels, &self.fields);
        match objects {
            Objects::Pods(pods) => pods.retain(|p| {
                labels.matches(p.metadata.labels.as_ref())
                    && (fields.is_empty()
                        || serde_json::to_value(p)
                            .is_ok_and(|v| selectors::fields_match(fields, &v)))
            }),
            Objects::Values(values) => values.retain(|v| {
                let l: Option<std::collections::BTreeMap<String, String>> =
                    serde_json::from_value(v["metadata"]["labels"].clone()).ok();
                labels.matches(l.as_ref()) && selectors::fields_match(fields, v)
            }),
        }
    }
}

fn answer(state: &State, read: &Read, query: &Query, want_table: bool) -> Reply {
    let selection = match Selection::parse(read.resource, query) {
        Ok(s) => s,
        Err(message) => return status::bad_request(&message),
    };
    if query.watch {
        if read.resource != "pods" || read.name.is_some() {
            return status::method_not_allowed(&format!(
                "watch is not served for {} yet",
                read.resource
            ));
        }
        let ns = read.namespace.map(String::from);
        return super::watch::start(state, ns, selection, query, want_table);
    }
    let mut objects = fetch(state, read.resource, read.namespace, read.name);
    selection.retain(&mut objects);
    let count = match &objects {
        Objects::Pods(p) => p.len(),
        Objects::Values(v) => v.len(),
    };
    if let Some(name) = read.name {
        if count == 0 {
            return status::not_found(read.resource, name);
        }
    }
    if want_table {
        return status::json_reply(
            200,
            &table::table(read.resource, &objects, query.include_object.as_deref()),
        );
    }
    let mut items: Vec<Value> = match objects {
        Objects::Pods(p) => p
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect(),
        Objects::Values(v) => v,
    };
    if read.name.is_some() {
        return status::json_reply(200, &items.swap_remove(0));
    }
    let kind = discovery::core_resource(read.resource).map_or("", |r| r.kind);
    status::json_reply(200, &list(kind, items))
}

/// A list document, its resourceVersion the newest of its items'.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    let rv = items
        .iter()
        .filter_map(|i| {
            i["metadata"]["resourceVersion"]
                .as_str()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(1);
    json!({
        "kind": format!("{kind}List"),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

/// A resourceVersion from a file's change time (microseconds): it grows with every
/// write podrun makes to the object.
fn rv_of(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let micros = m.mtime().checked_mul(1_000_000)? + m.mtime_nsec() / 1000;
    Some(micros.to_string())
}

/// The objects of a resource (in a namespace, or one by name), with resourceVersions.
pub fn fetch(state: &State, resource: &str, ns: Option<&str>, name: Option<&str>) -> Objects {
    let (root, data) = (&state.opts.root, &state.opts.data_dir);
    match resource {
        "pods" => {
            let store = crate::supervisor::store::PodStore::new(root);
            let records = match (ns, name) {
                (Some(ns), Some(n)) => store.load(ns, n).into_iter().collect(),
                _ => store.list(),
            };
            let pods = records
                .into_iter()
                .filter(|r| ns.is_none_or(|ns| r.namespace() == ns))
                .map(|mut r| {
                    if r.pod.metadata.resource_version.is_none() {
                        r.pod.metadata.resource_version = rv_of(&r.dir);
                    }
                    r.pod
                })
                .collect();
            Objects::Pods(pods)
        }
        "nodes" => {
            let store = crate::node::NodeStore::new(data);
            let nodes = store
                .load()
                .ok()
                .filter(|n| name.is_none_or(|want| crate::node::node_name(n) == want))
                .and_then(|mut n| {
                    n.metadata.resource_version = rv_of(&store.path());
                    serde_json::to_value(n).ok()
                });
            Objects::Values(nodes.into_iter().collect())
        }
        "namespaces" => Objects::Values(
            namespaces(state)
                .into_iter()
                .filter(|n| name.is_none_or(|want| n == want))
                .map(|n| namespace_object(&n))
                .collect(),
        ),
        _ => Objects::Values(stored(data, resource, ns, name)),
    }
}

/// ConfigMaps and Secrets from the object store (`objects/<res>/<ns>/<name>.json`).
fn stored(data: &Path, resource: &str, ns: Option<&str>, name: Option<&str>) -> Vec<Value> {
    let store = crate::objects::ObjectStore::new(data);
    let kind = discovery::core_resource(resource).map_or("", |r| r.kind);
    store
        .list::<Value>(resource, ns)
        .into_iter()
        .filter(|(k, _)| name.is_none_or(|n| k.name == n))
        .filter_map(|(k, v)| {
            let mut v = v.ok()?;
            v["apiVersion"] = json!("v1");
            v["kind"] = json!(kind);
            if v["metadata"]["resourceVersion"].is_null() {
                let file = data
                    .join("objects")
                    .join(&k.resource)
                    .join(&k.namespace)
                    .join(format!("{}.json", k.name));
                v["metadata"]["resourceVersion"] = json!(rv_of(&file));
            }
            Some(v)
        })
        .collect()
}

/// The namespaces in use: the API server's four, and every one a pod or object is in.
fn namespaces(state: &State) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = ["default", "kube-node-lease", "kube-public", "kube-system"]
        .map(String::from)
        .into();
    for r in crate::supervisor::store::PodStore::new(&state.opts.root).list() {
        out.insert(r.namespace().to_string());
    }
    for res in ["configmaps", "secrets"] {
        let dir = state.opts.data_dir.join("objects").join(res);
        if let Ok(entries) = std::fs::read_dir(dir) {
            out.extend(
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok()),
            );
        }
    }
    out
}

fn namespace_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/metadata.name": name},
            "resourceVersion": "1",
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
