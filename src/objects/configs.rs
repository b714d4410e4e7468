//! ConfigMaps and Secrets as objects of their own: admitted as the API server admits
//! them (immutable ones refused a change in its words), resolved for the pods that use
//! them from the store, and, when one changes, handed to the running pods that use it
//! (their objects.json rewritten, their supervisor told with SIGHUP: it updates the
//! configMap/secret volumes in place; env vars keep the values their containers got).
use super::kinds::{admit_typed, meta_str, AdmitError, Object};
use super::{ObjectKey, ObjectStore};
use crate::manifest::validate::{ErrorType, FieldError, InvalidError};
use crate::manifest::{defaults, validate};
use crate::pod::PodContext;
use crate::supervisor::store::{self, PodObjects};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::Value;
use std::collections::BTreeSet;

pub const CONFIG_MAPS: &str = "configmaps";
pub const SECRETS: &str = "secrets";
/// The ConfigMaps and Secrets a desired pod was handed (pod::desired's record).
const POD_OBJECTS: &str = "podobjects";

pub fn admit_config_map(v: &mut Value) -> Result<(), AdmitError> {
    admit_typed::<ConfigMap>(v, |cm| {
        defaults::default_object_meta(&mut cm.metadata);
        validate::validate_config_map(cm)
    })
}

pub fn admit_secret(v: &mut Value) -> Result<(), AdmitError> {
    admit_typed::<Secret>(v, |s| {
        defaults::default_secret(s);
        validate::validate_secret(s)
    })
}

fn forbidden(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.into(),
        kind: ErrorType::Forbidden,
        value: None,
        detail: detail.into(),
    }
}

const IMMUTABLE: &str = "field is immutable when `immutable` is set";

/// The API server's ValidateConfigMapUpdate / ValidateSecretUpdate for `immutable`.
fn immutable_errors(old: &Value, new: &Value, fields: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return errs;
    }
    if new.get("immutable") != Some(&Value::Bool(true)) {
        errs.push(forbidden("immutable", IMMUTABLE));
    }
    for f in fields {
        if old.get(*f) != new.get(*f) {
            errs.push(forbidden(f, IMMUTABLE));
        }
    }
    errs
}

fn invalid(kind: &str, new: &Value, errors: Vec<FieldError>) -> Result<(), String> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(InvalidError {
        kind: kind.into(),
        name: meta_str(new, "name").into(),
        errors,
    }
    .to_string())
}

pub fn check_config_map_update(old: &Value, new: &Value) -> Result<(), String> {
    invalid(
        "ConfigMap",
        new,
        immutable_errors(old, new, &["data", "binaryData"]),
    )
}

pub fn check_secret_update(old: &Value, new: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    if old.get("type") != new.get("type") {
        errs.push(FieldError {
            field: "type".into(),
            kind: ErrorType::Invalid,
            value: new.get("type").map(|t| t.to_string()),
            detail: "field is immutable".into(),
        });
    }
    errs.extend(immutable_errors(old, new, &["data"]));
    invalid("Secret", new, errs)
}

/// The names of the ConfigMaps and Secrets a pod refers to (volumes, projected
/// sources, env, envFrom, imagePullSecrets).
pub fn referenced(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    let Some(spec) = pod.spec.as_ref() else {
        return (cms, secrets);
    };
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            cms.insert(c.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(s);
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &src.config_map {
                cms.insert(c.name.clone());
            }
            if let Some(s) = &src.secret {
                secrets.insert(s.name.clone());
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        secrets.insert(s.name.clone());
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for e in c.env.iter().flatten() {
            let from = e.value_from.as_ref();
            if let Some(r) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
                cms.insert(r.name.clone());
            }
            if let Some(r) = from.and_then(|f| f.secret_key_ref.as_ref()) {
                secrets.insert(r.name.clone());
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    (cms, secrets)
}

/// The ConfigMaps and Secrets `pod` uses: each from `local` (those of its own manifest,
/// just applied), else from the store.
pub fn pod_objects(ctx: &PodContext, pod: &Pod, local: &PodObjects) -> PodObjects {
    resolve(ctx, pod, local, &PodObjects::default())
}

/// Each object `pod` uses from `first`, else the store, else `last`.
fn resolve(ctx: &PodContext, pod: &Pod, first: &PodObjects, last: &PodObjects) -> PodObjects {
    let store = ObjectStore::new(&ctx.data_dir);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (cms, secrets) = referenced(pod);
    let named = |n: &Option<String>, name: &str| n.as_deref() == Some(name);
    let mut out = PodObjects::default();
    for name in &cms {
        let find = |o: &PodObjects| {
            o.config_maps
                .iter()
                .find(|c| named(&c.metadata.name, name))
                .cloned()
        };
        let key = ObjectKey::new(CONFIG_MAPS, ns, name);
        let found = find(first)
            .or_else(|| store.get::<ConfigMap>(&key).ok().flatten())
            .or_else(|| find(last));
        out.config_maps.extend(found);
    }
    for name in &secrets {
        let find = |o: &PodObjects| {
            o.secrets
                .iter()
                .find(|s| named(&s.metadata.name, name))
                .cloned()
        };
        let key = ObjectKey::new(SECRETS, ns, name);
        let found = find(first)
            .or_else(|| store.get::<Secret>(&key).ok().flatten())
            .or_else(|| find(last));
        out.secrets.extend(found);
    }
    out
}

/// A ConfigMap or Secret was created or changed: every pod of its namespace that uses
/// it gets the new objects and its supervisor is told (SIGHUP).
pub fn after_apply(ctx: &PodContext, obj: &Object) {
    let (ns, name) = (obj.namespace(), obj.name());
    let is_cm = obj.kind.kind == "ConfigMap";
    refresh_pods(ctx, ns, |pod| {
        let (cms, secrets) = referenced(pod);
        if is_cm {
            cms.contains(name)
        } else {
            secrets.contains(name)
        }
    });
}

/// Hands every pod of `ns` for which `uses` holds its objects as the store now has them;
/// returns how many pods were told. Also for the node agent, when it learns of a change.
pub fn refresh_pods(ctx: &PodContext, ns: &str, uses: impl Fn(&Pod) -> bool) -> usize {
    let mut told = 0;
    let desired = ObjectStore::new(&ctx.data_dir);
    for rec in ctx.store().list() {
        if rec.namespace() != ns || rec.damaged.is_some() || !uses(&rec.pod) {
            continue;
        }
        let path = rec.dir.join(store::OBJECTS_FILE);
        let old: PodObjects = store::read_json(&path).unwrap_or_default();
        let new = resolve(ctx, &rec.pod, &PodObjects::default(), &old);
        if serde_json::to_value(&old).ok() == serde_json::to_value(&new).ok() {
            continue;
        }
        if store::write_json(&path, &new).is_err() {
            continue;
        }
        let key = ObjectKey::new(POD_OBJECTS, ns, rec.name());
        if matches!(desired.get::<Value>(&key), Ok(Some(_))) {
            let _ = desired.put(&key, &new);
        }
        let pid_file = rec.dir.join(store::PID_FILE);
        store::signal_pid_file(&pid_file, nix::sys::signal::Signal::SIGHUP);
        told += 1;
    }
    told
}

#[cfg(test)]
#[path = "configs_tests.rs"]
mod tests;
