//! Pod manifests: multi-document YAML into Kubernetes API types, API-server defaulting and validation with field paths.
//!
//! [`load`] is the whole path a static pod file needs: parse every document (Pod,
//! ConfigMap, Secret, and the kinds of `objects::kinds::KINDS`), reject unknown fields as kubectl's strict decoding does, apply the namespace
//! (`-n`) and the API server's defaults, validate with the API server's field paths and
//! messages, and list the fields podrun does not implement as warnings. [`load_objects`]
//! is `apply`'s and `up`'s: a document of a kind podrun does not run is set aside with
//! kubectl's error line instead of refusing the file.
pub mod defaults;
pub mod label_selector;
pub mod labels;
pub mod qos;
pub mod quantity;
pub mod scheduling;
mod strict;
pub mod unsupported;
pub mod update;
pub mod validate;
mod validate_container;
pub mod yaml;

use crate::objects::kinds::{self, AdmitError, Object};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

pub use strict::decode as strict_decode;

pub use qos::{oom_score_adj, qos_class, QosClass};
pub use unsupported::Warning;
pub use validate::{FieldError, InvalidError};

/// Everything a manifest file holds, defaulted and validated, in document order per kind.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub pods: Vec<Pod>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    /// Every object that is not a pod (ConfigMaps and Secrets too), in document order.
    pub objects: Vec<Object>,
    /// kubectl's error line for each document of a kind podrun does not run
    /// ([`load_objects`] only; [`load`] refuses the file).
    pub not_run: Vec<String>,
    /// Fields podrun does not implement, by path (print each as `Warning: {w}`).
    pub warnings: Vec<Warning>,
}

/// How to read a manifest: where it came from (for messages) and the `-n` namespace.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The file name as the user gave it (`-` for stdin); used in messages as kubectl does.
    pub source: String,
    /// `-n/--namespace`: the namespace for objects that name none; must match those that do.
    pub namespace: Option<String>,
}

/// Why a manifest cannot be used. Each variant's message follows kubectl's wording.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("error parsing {source_name}: document {doc}: {message}")]
    Yaml {
        source_name: String,
        doc: usize,
        message: String,
    },
    #[error(
        "error validating {source_name:?}: document {doc}: error validating data: {what} not set"
    )]
    MissingTypeField {
        source_name: String,
        doc: usize,
        what: &'static str,
    },
    #[error("resource mapping not found for name: {name:?} namespace: {namespace:?} from {source_name:?}: no matches for kind {kind:?} in version {api_version:?} (a kind podrun does not run)")]
    UnknownKind {
        source_name: String,
        name: String,
        namespace: String,
        kind: String,
        api_version: String,
    },
    #[error("error when creating {source_name:?}: {kind} in version \"v1\" cannot be handled as a {kind}: {message}")]
    Decode {
        source_name: String,
        kind: String,
        message: String,
    },
    #[error("the namespace from the provided object {object:?} does not match the namespace {given:?}. You must pass '--namespace={object}' to perform this operation.")]
    NamespaceMismatch { object: String, given: String },
    #[error("{0}")]
    Invalid(#[from] InvalidError),
    #[error("error when creating {source_name:?}: {resource} {name:?} already exists (twice in the manifest)")]
    Duplicate {
        source_name: String,
        resource: &'static str,
        name: String,
    },
    #[error("{source_name:?}: no objects passed to create")]
    Empty { source_name: String },
    #[error("Error from server (RequestEntityTooLarge): error when creating {source_name:?}: Request entity too large: limit is {limit}")]
    TooLarge { source_name: String, limit: usize },
}

/// One document before typing: its kind, the raw JSON value.
struct RawDoc {
    kind: &'static kinds::Kind,
    value: serde_json::Value,
}

/// The 1-based document of a manifest that `line` falls in.
fn document_at(text: &str, line: usize) -> usize {
    let seps = text
        .lines()
        .take(line.saturating_sub(1))
        .enumerate()
        .filter(|(i, l)| *i > 0 && l.starts_with("---"))
        .count();
    seps + 1
}

/// The documents of the kinds podrun runs, and the errors of the others (the first one
/// ends the reading unless `keep_going`).
fn split_documents(
    text: &str,
    source: &str,
    keep_going: bool,
) -> Result<(Vec<RawDoc>, Vec<ManifestError>), ManifestError> {
    if let Some((line, col)) = yaml::too_deep(text) {
        return Err(ManifestError::Yaml {
            source_name: source.to_string(),
            doc: document_at(text, line),
            message: format!("recursion limit exceeded at line {line} column {col}"),
        });
    }
    let mut docs = Vec::new();
    let mut not_run = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let mut value = yaml::value(de).map_err(|e| ManifestError::Yaml {
            source_name: source.to_string(),
            doc: index,
            message: e.to_string(),
        })?;
        if serde_json::to_vec(&value).map_or(0, |b| b.len()) > yaml::MAX_DOCUMENT_BYTES {
            return Err(ManifestError::TooLarge {
                source_name: source.to_string(),
                limit: yaml::MAX_DOCUMENT_BYTES,
            });
        }
        octal_modes(&mut value);
        if value.is_null() {
            continue; // an empty document (`---` at the end) is no object
        }
        let is_list = value.get("kind").and_then(|k| k.as_str()) == Some("List")
            && value.get("apiVersion").and_then(|k| k.as_str()) == Some("v1");
        let values = match value {
            // kubectl's v1 List: its items are the objects.
            serde_json::Value::Object(mut o) if is_list => match o.remove("items") {
                Some(serde_json::Value::Array(items)) => items,
                _ => Vec::new(),
            },
            v => vec![v],
        };
        for value in values {
            match classify(value, index, source)? {
                Ok(doc) => docs.push(doc),
                Err(e) if keep_going => not_run.push(e),
                Err(e) => return Err(e),
            }
        }
    }
    Ok((docs, not_run))
}

/// One object's kind: Ok(Ok) for a kind podrun runs, Ok(Err) with kubectl's mapping
/// error for another, Err when the document is no object.
fn classify(
    value: serde_json::Value,
    index: usize,
    source: &str,
) -> Result<Result<RawDoc, ManifestError>, ManifestError> {
    let Some(obj) = value.as_object() else {
        return Err(ManifestError::Yaml {
            source_name: source.to_string(),
            doc: index,
            message: "not a mapping (a Kubernetes object is a YAML mapping)".into(),
        });
    };
    let text_of = |k: &str| {
        obj.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let api_version = text_of("apiVersion");
    let kind = text_of("kind");
    for (what, v) in [("apiVersion", &api_version), ("kind", &kind)] {
        if v.is_empty() {
            return Err(ManifestError::MissingTypeField {
                source_name: source.to_string(),
                doc: index,
                what,
            });
        }
    }
    let Some(known) = kinds::lookup(&api_version, &kind) else {
        let meta = obj.get("metadata");
        let meta_text = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        return Ok(Err(ManifestError::UnknownKind {
            source_name: source.to_string(),
            name: meta_text("name"),
            namespace: meta_text("namespace"),
            kind,
            api_version,
        }));
    };
    Ok(Ok(RawDoc { kind: known, value }))
}

/// kubectl reads YAML 1.1, where `defaultMode: 0644` is octal; serde_yaml_ng (YAML 1.2)
/// gives the string "0644". File modes are the one place manifests rely on it.
fn octal_modes(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "defaultMode" || k == "mode" {
                    if let Some(s) = child.as_str() {
                        let digits = s.strip_prefix("0o").or_else(|| s.strip_prefix('0'));
                        if let Some(n) = digits.and_then(|d| u32::from_str_radix(d, 8).ok()) {
                            *child = serde_json::Value::from(n);
                        }
                    }
                }
                octal_modes(child);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

/// Parses, namespaces, defaults and validates every object of a manifest.
///
/// Nothing is returned unless every object is valid: a manifest is accepted or refused
/// as a whole, so a failed `podrun up` creates nothing. A kind podrun does not run
/// refuses the file too.
pub fn load(text: &str, opts: &LoadOptions) -> Result<Manifest, ManifestError> {
    load_with(text, opts, false)
}

/// As [`load`], but a document of a kind podrun does not run (Service, Ingress, ...) is
/// left out with kubectl's error in [`Manifest::not_run`], as `kubectl apply` goes on.
pub fn load_objects(text: &str, opts: &LoadOptions) -> Result<Manifest, ManifestError> {
    load_with(text, opts, true)
}

fn load_with(text: &str, opts: &LoadOptions, keep_going: bool) -> Result<Manifest, ManifestError> {
    let source = if opts.source.is_empty() {
        "-"
    } else {
        &opts.source
    };
    let (docs, not_run) = split_documents(text, source, keep_going)?;
    if docs.is_empty() && not_run.is_empty() {
        return Err(ManifestError::Empty {
            source_name: source.to_string(),
        });
    }
    let mut out = Manifest {
        not_run: not_run.iter().map(|e| format!("error: {e}")).collect(),
        ..Manifest::default()
    };
    for doc in docs {
        let decode_err = |message: String| ManifestError::Decode {
            source_name: source.to_string(),
            kind: doc.kind.kind.to_string(),
            message,
        };
        if doc.kind.kind == "Pod" {
            let mut pod: Pod = strict::decode(&doc.value).map_err(decode_err)?;
            out.warnings
                .extend(unsupported::pod_warnings(&doc.value, pod_name(&pod)));
            apply_namespace(&mut pod.metadata, opts)?;
            defaults::default_pod(&mut pod);
            validate::validate_pod(&pod)?;
            out.pods.push(pod);
            continue;
        }
        let mut value = doc.value;
        value_namespace(&mut value, doc.kind.namespaced, opts)?;
        (doc.kind.admit)(&mut value).map_err(|e| match e {
            AdmitError::Decode(m) => decode_err(m),
            AdmitError::Invalid(e) => ManifestError::Invalid(e),
        })?;
        match doc.kind.kind {
            "ConfigMap" => out.config_maps.push(
                serde_json::from_value(value.clone()).map_err(|e| decode_err(e.to_string()))?,
            ),
            "Secret" => out.secrets.push(
                serde_json::from_value(value.clone()).map_err(|e| decode_err(e.to_string()))?,
            ),
            _ => {}
        }
        out.objects.push(Object {
            kind: doc.kind,
            value,
        });
    }
    check_duplicates(&out, source)?;
    Ok(out)
}

/// kubectl's namespace rule on an untyped object; a cluster-scoped one has none.
fn value_namespace(
    v: &mut serde_json::Value,
    namespaced: bool,
    opts: &LoadOptions,
) -> Result<(), ManifestError> {
    let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) else {
        return Ok(());
    };
    if !namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let mut typed = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        namespace: meta
            .get("namespace")
            .and_then(|n| n.as_str())
            .map(String::from),
        ..Default::default()
    };
    apply_namespace(&mut typed, opts)?;
    meta.insert(
        "namespace".into(),
        serde_json::Value::from(typed.namespace.unwrap_or_default()),
    );
    Ok(())
}

/// Two objects of one kind with one namespace/name: the second `create` would fail.
fn check_duplicates(m: &Manifest, source: &str) -> Result<(), ManifestError> {
    use std::collections::HashSet;
    type Meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let kinds: [(&'static str, Vec<&Meta>); 1] =
        [("pods", m.pods.iter().map(|p| &p.metadata).collect())];
    for (resource, metas) in kinds {
        let mut seen = HashSet::new();
        for meta in metas {
            let key = (meta.namespace.clone(), meta.name.clone());
            if !seen.insert(key) {
                return Err(ManifestError::Duplicate {
                    source_name: source.to_string(),
                    resource,
                    name: meta.name.clone().unwrap_or_default(),
                });
            }
        }
    }
    let mut seen = HashSet::new();
    for o in &m.objects {
        if !seen.insert(o.key()) {
            return Err(ManifestError::Duplicate {
                source_name: source.to_string(),
                resource: o.kind.resource,
                name: o.name().to_string(),
            });
        }
    }
    Ok(())
}

/// What a container is to its pod: init containers run to completion in order before
/// the rest; sidecars (init containers with restartPolicy Always) start in order and keep
/// running beside the regular containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerRole {
    Init,
    Sidecar,
    Regular,
}

/// Every container of the pod in kubelet's start order (initContainers as listed, then
/// containers), each with its role.
pub fn pod_containers(pod: &Pod) -> Vec<(ContainerRole, &k8s_openapi::api::core::v1::Container)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let init = spec.init_containers.iter().flatten().map(|c| {
        let role = if c.restart_policy.as_deref() == Some("Always") {
            ContainerRole::Sidecar
        } else {
            ContainerRole::Init
        };
        (role, c)
    });
    init.chain(spec.containers.iter().map(|c| (ContainerRole::Regular, c)))
        .collect()
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// kubectl's namespace rule: `-n` fills in a missing namespace and must match a given one.
fn apply_namespace(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    opts: &LoadOptions,
) -> Result<(), ManifestError> {
    match (&meta.namespace, &opts.namespace) {
        (Some(object), Some(given)) if !object.is_empty() && object != given => {
            Err(ManifestError::NamespaceMismatch {
                object: object.clone(),
                given: given.clone(),
            })
        }
        (Some(object), _) if !object.is_empty() => Ok(()),
        (_, Some(given)) => {
            meta.namespace = Some(given.clone());
            Ok(())
        }
        _ => {
            meta.namespace = Some("default".to_string());
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A seed example (the user's acceptance walk-through), kept in tests/seed-examples.
    pub(crate) fn seed(name: &str) -> String {
        let path = format!("{}/tests/seed-examples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("seed example {path}: {e}"))
    }

    #[test]
    fn a_key_given_twice_refuses_the_manifest() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: busybox\n    image: nginx\n";
        let e = load_str(text).unwrap_err().to_string();
        assert!(e.contains("mapping key \"image\" already defined"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_at_once() {
        let d = 100_000;
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  x: {}{}\n",
            "[".repeat(d),
            "]".repeat(d)
        );
        let t0 = std::time::Instant::now();
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("recursion limit exceeded at line 6"), "{e}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn documents_and_annotations_are_bounded_as_the_api_server_bounds_them() {
        let pod = |ann: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations:\n    big: \"{ann}\"\nspec:\n  containers:\n  - name: c\n    image: busybox\n")
        };
        let e = load_str(&pod(&"x".repeat(300 * 1024)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("metadata.annotations: Too long: must have at most 262144 bytes"),
            "{e}"
        );
        let e = load_str(&pod(&"x".repeat(3 * 1024 * 1024)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Request entity too large: limit is 3145728"),
            "{e}"
        );
        assert!(load_str(&pod(&"x".repeat(1024))).is_ok());
    }

    fn load_str(text: &str) -> Result<Manifest, ManifestError> {
        load(
            text,
            &LoadOptions {
                source: "pod.yaml".into(),
                namespace: None,
            },
        )
    }

    #[test]
    fn every_seed_example_loads_without_error() {
        let dir = format!("{}/tests/seed-examples", env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let m = load_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(m.pods.len(), 1, "{}", path.display());
            n += 1;
        }
        assert!(n >= 20, "seed examples found: {n}");
    }

    #[test]
    fn multi_document_yaml_gives_pods_configmaps_and_secrets() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n---\n\
                    apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: MTIzNDU2}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: busybox}\n---\n";
        let m = load_str(text).unwrap();
        assert_eq!(m.pods.len(), 1);
        assert_eq!(m.config_maps.len(), 1);
        assert_eq!(m.secrets.len(), 1);
        let s = &m.secrets[0];
        assert_eq!(s.data.as_ref().unwrap()["password"].0, b"123456");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn unknown_field_is_a_strict_decoding_error_with_its_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    imagee: busybox\n";
        let err = load_str(text).unwrap_err().to_string();
        assert!(
            err.contains(r#"strict decoding error: unknown field "spec.containers[0].imagee""#),
            "{err}"
        );
        assert!(
            err.contains("Pod in version \"v1\" cannot be handled as a Pod"),
            "{err}"
        );
    }

    #[test]
    fn several_unknown_fields_are_all_named() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, lables: {a: b}}\nspec:\n  restartpolicy: Never\n  containers:\n  - {name: c, image: busybox}\n";
        let err = load_str(text).unwrap_err().to_string();
        assert!(err.contains(r#"unknown field "metadata.lables""#), "{err}");
        assert!(
            err.contains(r#"unknown field "spec.restartpolicy""#),
            "{err}"
        );
    }

    #[test]
    fn unknown_kind_names_the_document() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
        let err = load_str(text).unwrap_err().to_string();
        assert!(
            err.contains(r#"resource mapping not found for name: "web" namespace: "" from "pod.yaml": no matches for kind "Deployment" in version "apps/v1""#),
            "{err}"
        );
        let text = "apiVersion: v2\nkind: Pod\nmetadata: {name: p}\n";
        let err = load_str(text).unwrap_err().to_string();
        assert!(
            err.contains(r#"no matches for kind "Pod" in version "v2""#),
            "{err}"
        );
    }

    #[test]
    fn load_objects_sets_aside_kinds_podrun_does_not_run() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\n\
                    apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: busybox}\n";
        let opts = LoadOptions {
            source: "all.yaml".into(),
            namespace: None,
        };
        let m = load_objects(text, &opts).unwrap();
        assert_eq!(m.pods.len(), 1);
        assert_eq!(m.config_maps.len(), 1);
        assert_eq!(m.objects.len(), 1);
        assert_eq!(m.objects[0].kind.type_name(), "configmap");
        assert_eq!(m.objects[0].namespace(), "default");
        assert_eq!(m.not_run.len(), 1);
        assert!(
            m.not_run[0].starts_with(r#"error: resource mapping not found for name: "web" namespace: "" from "all.yaml": no matches for kind "Service" in version "v1""#),
            "{}",
            m.not_run[0]
        );
        // The static-pod reader still refuses the whole file.
        assert!(load(text, &opts).is_err());
    }

    #[test]
    fn a_v1_list_is_its_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: team, namespace: ignored}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p, namespace: team}\n  spec:\n    containers: [{name: c, image: i}]\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata: {name: ing}\n";
        let m = load_objects(text, &LoadOptions::default()).unwrap();
        assert_eq!(m.pods[0].metadata.namespace.as_deref(), Some("team"));
        assert_eq!(m.objects[0].kind.kind, "Namespace");
        assert_eq!(m.objects[0].namespace(), "");
        assert_eq!(m.objects[0].value["status"]["phase"], "Active");
        assert!(m.not_run[0]
            .contains(r#"no matches for kind "Ingress" in version "networking.k8s.io/v1""#));
    }

    #[test]
    fn missing_kind_is_reported() {
        let err = load_str("apiVersion: v1\nmetadata: {name: p}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kind not set"), "{err}");
    }

    #[test]
    fn wrong_type_is_a_decode_error() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    ports: [{containerPort: eighty}]\n";
        let err = load_str(text).unwrap_err().to_string();
        assert!(err.contains("cannot be handled as a Pod"), "{err}");
    }

    #[test]
    fn namespace_defaults_to_default_and_n_fills_it_in() {
        let text = seed("two-containers.yaml");
        let m = load_str(&text).unwrap();
        assert_eq!(m.pods[0].metadata.namespace.as_deref(), Some("default"));
        let opts = LoadOptions {
            source: "f".into(),
            namespace: Some("prod".into()),
        };
        let m = load(&text, &opts).unwrap();
        assert_eq!(m.pods[0].metadata.namespace.as_deref(), Some("prod"));
    }

    #[test]
    fn n_that_contradicts_the_manifest_is_kubectls_error() {
        let opts = LoadOptions {
            source: "f".into(),
            namespace: Some("prod".into()),
        };
        let err = load(&seed("pod-base.yaml"), &opts).unwrap_err().to_string();
        assert_eq!(
            err,
            "the namespace from the provided object \"dev\" does not match the namespace \"prod\". You must pass '--namespace=dev' to perform this operation."
        );
        let opts = LoadOptions {
            source: "f".into(),
            namespace: Some("dev".into()),
        };
        assert!(load(&seed("pod-base.yaml"), &opts).is_ok());
    }

    #[test]
    fn an_invalid_pod_refuses_the_whole_manifest() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n";
        let err = load_str(text).unwrap_err().to_string();
        assert_eq!(
            err,
            "The Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn octal_file_modes_read_as_kubectl_reads_them() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n  - {name: a, secret: {secretName: s, defaultMode: 0400, items: [{key: k, path: k, mode: 0755}]}}\n  - {name: b, configMap: {name: c, defaultMode: 420}}\n  containers: [{name: c, image: i}]\n";
        let m = load_str(text).unwrap();
        let vols = m.pods[0].spec.as_ref().unwrap().volumes.clone().unwrap();
        let s = vols[0].secret.as_ref().unwrap();
        assert_eq!(s.default_mode, Some(0o400));
        assert_eq!(s.items.as_ref().unwrap()[0].mode, Some(0o755));
        assert_eq!(vols[1].config_map.as_ref().unwrap().default_mode, Some(420));
    }

    #[test]
    fn the_same_pod_twice_is_refused() {
        let doc = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: i}]\n";
        let err = load_str(&format!("{doc}---\n{doc}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pods \"p\" already exists"), "{err}");
        let other_ns = doc.replace("{name: p}", "{name: p, namespace: other}");
        assert!(load_str(&format!("{doc}---\n{other_ns}")).is_ok());
    }

    #[test]
    fn generate_name_makes_a_unique_name() {
        let doc = "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec:\n  containers: [{name: c, image: i}]\n";
        let a = load_str(doc).unwrap().pods.remove(0).metadata.name.unwrap();
        let b = load_str(doc).unwrap().pods.remove(0).metadata.name.unwrap();
        assert!(a.starts_with("web-") && a.len() == 9, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn containers_in_start_order_with_roles() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers:\n  - {name: setup, image: i}\n  - {name: proxy, image: i, restartPolicy: Always}\n  containers:\n  - {name: app, image: i}\n";
        let m = load_str(text).unwrap();
        let order: Vec<(ContainerRole, &str)> = pod_containers(&m.pods[0])
            .into_iter()
            .map(|(r, c)| (r, c.name.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (ContainerRole::Init, "setup"),
                (ContainerRole::Sidecar, "proxy"),
                (ContainerRole::Regular, "app")
            ]
        );
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(load_str("").is_err());
        assert!(load_str("---\n").is_err());
    }

    #[test]
    fn unsupported_fields_are_warnings_not_silence() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  priorityClassName: high\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      claims: [{name: gpu}]\n";
        let m = load_str(text).unwrap();
        let w: Vec<String> = m.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            w.contains(
                &"spec.containers[0].resources.claims is not supported by podrun and is ignored"
                    .to_string()
            ),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.starts_with("spec.priorityClassName ")),
            "{w:?}"
        );
    }

    #[test]
    fn seed_examples_give_no_warnings() {
        for name in [
            "pod-base.yaml",
            "pod-hook-exec.yaml",
            "pod-initcontainer.yaml",
            "pod-liveness-httpget.yaml",
            "pod-toleration.yaml",
            "pod-podaffinity-required.yaml",
            "sidecar-log-collector.yaml",
        ] {
            let m = load_str(&seed(name)).unwrap();
            assert!(m.warnings.is_empty(), "{name}: {:?}", m.warnings);
        }
    }
}
