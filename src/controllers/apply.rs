//! `apply` of a workload object (Deployment, ReplicaSet, Job, CronJob): decoded, defaulted
//! and validated as the API server does, then stored as desired state for the controllers
//! of the node agent, with kubectl's `deployment.apps/web created|unchanged|configured`.
use super::store::{self, Workload};
use crate::manifest::validate::{ErrorType, FieldError, InvalidError};
use crate::objects::{ObjectError, ObjectStore};
use crate::pod::PodContext;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde_json::Value;

/// Why a workload object was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// No `podrun serve` answers on the state root: nothing would run the object.
    #[error(
        "{kind} {name:?} needs the node agent: start `podrun serve` (no agent answers on {root})"
    )]
    NeedsAgent {
        kind: String,
        name: String,
        root: String,
    },
    #[error("error when creating {source_name:?}: {kind} in version {api_version:?} cannot be handled as a {kind}: {message}")]
    Decode {
        source_name: String,
        kind: String,
        api_version: String,
        message: String,
    },
    #[error("the namespace from the provided object {given:?} does not match the namespace {wanted:?}. You must pass '--namespace={given}' to perform this operation.")]
    Namespace { given: String, wanted: String },
    #[error(transparent)]
    Invalid(#[from] InvalidError),
    #[error(transparent)]
    Store(#[from] ObjectError),
}

/// What `apply` did, as kubectl prints it: `deployment.apps/web created`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectApplied {
    pub line: String,
}

/// The resource (the store's plural) of a workload kind podrun's controllers run.
pub fn resource_of(api_version: &str, kind: &str) -> Option<&'static str> {
    match (api_version, kind) {
        ("apps/v1", "Deployment") => Some("deployments"),
        ("apps/v1", "ReplicaSet") => Some("replicasets"),
        ("batch/v1", "Job") => Some("jobs"),
        ("batch/v1", "CronJob") => Some("cronjobs"),
        _ => None,
    }
}

/// Whether the controllers run objects of this apiVersion and kind.
pub fn is_workload(api_version: &str, kind: &str) -> bool {
    resource_of(api_version, kind).is_some()
}

/// Applies one workload document (its raw JSON), `-n` giving the namespace of one that
/// names none. Refused when no agent runs: the object would never become pods.
pub fn apply_object(
    ctx: &PodContext,
    doc: &Value,
    namespace: Option<&str>,
    source: &str,
) -> Result<ObjectApplied, WorkloadError> {
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if crate::handoff::connect_agent(&ctx.root).is_none() {
        return Err(WorkloadError::NeedsAgent {
            kind,
            name,
            root: ctx.root.display().to_string(),
        });
    }
    let store = ObjectStore::new(&ctx.data_dir);
    let decode = |message: String| WorkloadError::Decode {
        source_name: source.to_string(),
        kind: kind.clone(),
        api_version: api_version.clone(),
        message,
    };
    match kind.as_str() {
        "Deployment" => apply_typed::<Deployment>(&store, doc, namespace, decode),
        "ReplicaSet" => apply_typed::<ReplicaSet>(&store, doc, namespace, decode),
        "Job" => apply_typed::<Job>(&store, doc, namespace, decode),
        _ => apply_typed::<CronJob>(&store, doc, namespace, decode),
    }
}

fn apply_typed<T: Workload>(
    store: &ObjectStore,
    doc: &Value,
    namespace: Option<&str>,
    decode: impl Fn(String) -> WorkloadError,
) -> Result<ObjectApplied, WorkloadError> {
    let mut obj: T = serde_json::from_value(doc.clone()).map_err(|e| decode(e.to_string()))?;
    let meta = obj.meta_mut();
    match (
        meta.namespace.as_deref().filter(|n| !n.is_empty()),
        namespace,
    ) {
        (Some(given), Some(wanted)) if given != wanted => {
            return Err(WorkloadError::Namespace {
                given: given.into(),
                wanted: wanted.into(),
            })
        }
        (None, Some(wanted)) => meta.namespace = Some(wanted.into()),
        _ => {}
    }
    crate::manifest::defaults::default_object_meta(obj.meta_mut());
    let key = store::key_of(&obj);
    let _lock = store.lock()?;
    let existing = store.get::<T>(&key)?;
    if let Some(old) = &existing {
        // The same object: its uid (which a Job's generated selector names) stays.
        obj.meta_mut().uid = old.meta().uid.clone();
        obj.meta_mut().creation_timestamp = old.meta().creation_timestamp.clone();
    }
    obj.set_defaults();
    obj.validate()?;
    let word = match existing {
        None => {
            obj.meta_mut().generation = Some(1);
            store.put(&key, &obj)?;
            "created"
        }
        Some(old) if store::same_desired(&old, &obj) => "unchanged",
        Some(old) => {
            let next = store::updated(old, obj);
            store.put(&key, &next)?;
            "configured"
        }
    };
    Ok(ObjectApplied {
        line: format!("{}/{} {word}", T::GROUP_KIND, key.name),
    })
}

/// One field error of an object of `kind` named `name`.
pub fn invalid(kind: &str, name: &str, errors: Vec<FieldError>) -> Result<(), InvalidError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(InvalidError {
        kind: kind.into(),
        name: name.into(),
        errors,
    })
}

pub fn field_error(
    field: &str,
    kind: ErrorType,
    value: Option<String>,
    detail: &str,
) -> FieldError {
    FieldError {
        field: field.into(),
        kind,
        value,
        detail: detail.into(),
    }
}

/// The API server's defaults for a pod template (those of a pod, without its identity).
pub fn default_template(t: &mut PodTemplateSpec) {
    let mut pod = Pod {
        metadata: t.metadata.clone().unwrap_or_default(),
        spec: t.spec.clone(),
        status: None,
    };
    pod.metadata.name = Some("template".into());
    crate::manifest::defaults::default_pod(&mut pod);
    t.spec = pod.spec;
}

/// A pod template's errors as the pod's, under `spec.template.` (or `prefix`), plus the
/// restartPolicy values the kind allows.
pub fn template_errors(t: &PodTemplateSpec, prefix: &str, policies: &[&str]) -> Vec<FieldError> {
    let mut pod = Pod {
        metadata: t.metadata.clone().unwrap_or_default(),
        spec: t.spec.clone(),
        status: None,
    };
    pod.metadata.name = Some("template".into());
    pod.metadata.namespace = Some("default".into());
    let mut out: Vec<FieldError> = match crate::manifest::validate::validate_pod(&pod) {
        Ok(()) => Vec::new(),
        Err(e) => e
            .errors
            .into_iter()
            .filter(|f| !f.field.starts_with("metadata.name"))
            .map(|mut f| {
                f.field = format!("{prefix}{}", f.field);
                f
            })
            .collect(),
    };
    let policy = t
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_default();
    if !policies.contains(&policy.as_str()) {
        let quoted: Vec<String> = policies.iter().map(|p| format!("{p:?}")).collect();
        out.push(field_error(
            &format!("{prefix}spec.restartPolicy"),
            ErrorType::NotSupported,
            Some(format!("{policy:?}")),
            &format!("supported values: {}", quoted.join(", ")),
        ));
    }
    out
}
