//! The workload kinds as stored objects: one trait over the k8s-openapi types that gives
//! each its resource name, defaults and validation, and the read-modify-write helpers
//! the controllers and the CLI share (status written under the store's lock).
use crate::manifest::validate::InvalidError;
use crate::objects::{ObjectError, ObjectKey, ObjectStore};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// A kind the controllers keep in the object store.
pub trait Workload: Serialize + DeserializeOwned + Clone {
    /// The store's (and the API's) plural: "deployments".
    const RESOURCE: &'static str;
    const KIND: &'static str;
    const API_VERSION: &'static str;
    /// kubectl's `deployment.apps` prefix of `deployment.apps/web created`.
    const GROUP_KIND: &'static str;
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// The API server's defaults.
    fn set_defaults(&mut self);
    /// The API server's validation.
    fn validate(&self) -> Result<(), InvalidError>;
    /// Drops the status (a copy made into a new object).
    fn clear_status(&mut self);
    fn status_value(&self) -> Value;
    fn set_status_value(&mut self, v: Value);
}

macro_rules! workload_meta {
    () => {
        fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            &mut self.metadata
        }
        fn clear_status(&mut self) {
            self.status = None;
        }
        fn status_value(&self) -> serde_json::Value {
            serde_json::to_value(&self.status).unwrap_or(serde_json::Value::Null)
        }
        fn set_status_value(&mut self, v: serde_json::Value) {
            self.status = serde_json::from_value(v).ok();
        }
    };
}
pub(crate) use workload_meta;

/// The parts `apply` sets: spec, labels, annotations.
fn desired_value<T: Workload>(obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

fn spec_value<T: Workload>(obj: &T) -> Value {
    serde_json::to_value(obj)
        .ok()
        .and_then(|v| v.get("spec").cloned())
        .unwrap_or(Value::Null)
}

/// Whether `new` asks for nothing `old` does not already say.
pub fn same_desired<T: Workload>(old: &T, new: &T) -> bool {
    desired_value(old) == desired_value(new)
        && old.meta().labels == new.meta().labels
        && old.meta().annotations == new.meta().annotations
}

/// `new` as the update of `old`: the same identity and status; the generation bumped
/// when the spec changed (as the API server does).
pub fn updated<T: Workload>(old: T, mut new: T) -> T {
    let om = old.meta();
    let spec_changed = spec_value(&old) != spec_value(&new);
    let generation = om.generation.unwrap_or(1) + i64::from(spec_changed);
    {
        let nm = new.meta_mut();
        nm.uid = om.uid.clone();
        nm.creation_timestamp = om.creation_timestamp.clone();
        nm.generation = Some(generation);
        nm.owner_references = om.owner_references.clone().or(nm.owner_references.take());
        nm.finalizers = om.finalizers.clone();
        nm.deletion_timestamp = om.deletion_timestamp.clone();
        // Annotations the controllers own survive an apply that does not name them.
        for k in [super::deployment::REVISION] {
            if let Some(v) = om.annotations.as_ref().and_then(|a| a.get(k)) {
                nm.annotations
                    .get_or_insert_with(Default::default)
                    .entry(k.to_string())
                    .or_insert_with(|| v.clone());
            }
        }
    }
    new.set_status_value(old.status_value());
    new
}

/// The key of a stored object.
pub fn key_of<T: Workload>(obj: &T) -> ObjectKey {
    ObjectKey::new(
        T::RESOURCE,
        &super::meta::ns(obj.meta()),
        &super::meta::name(obj.meta()),
    )
}

/// Every readable object of kind `T` (in `ns`, or all).
pub fn list<T: Workload>(store: &ObjectStore, ns: Option<&str>) -> Vec<T> {
    store
        .list::<T>(T::RESOURCE, ns)
        .into_iter()
        .filter_map(|(_, v)| v.ok())
        .collect()
}

/// Changes the stored object (the same one: same uid) under the store's lock; false
/// when it is gone or was replaced meanwhile.
pub fn modify<T: Workload>(
    store: &ObjectStore,
    obj: &T,
    f: impl FnOnce(&mut T),
) -> Result<bool, ObjectError> {
    let key = key_of(obj);
    let _lock = store.lock()?;
    let Some(mut cur) = store.get::<T>(&key)? else {
        return Ok(false);
    };
    if cur.meta().uid != obj.meta().uid {
        return Ok(false);
    }
    f(&mut cur);
    store.put(&key, &cur)?;
    Ok(true)
}

/// Writes `status` into the stored object when it differs from what is stored.
pub fn write_status<T: Workload>(store: &ObjectStore, obj: &T, status: Value) {
    if obj.status_value() == status {
        return;
    }
    let res = modify(store, obj, |cur| cur.set_status_value(status));
    if let Err(e) = res {
        eprintln!("podrun serve: writing the status of {}: {e}", T::RESOURCE);
    }
}

/// Creates a new object (the controllers' ReplicaSets and Jobs).
pub fn create<T: Workload>(store: &ObjectStore, obj: &T) -> Result<(), ObjectError> {
    let _lock = store.lock()?;
    store.put(&key_of(obj), obj)
}

/// Whether an object is being deleted (foreground cascading: waits for its dependents).
pub fn deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}
