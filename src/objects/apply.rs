//! `apply` of one stored object (anything but a pod): created when missing, left alone
//! when what was submitted equals what is stored, changed when the kind's update rule
//! allows it (the API server's words otherwise); server-set fields (uid, creation time,
//! status) carried over. Then the kind's follow-up runs (ConfigMap: tell its pods).
use super::kinds::{store_key, Kind, Object};
use super::{ObjectError, ObjectStore};
use crate::pod::apply::Applied;
use crate::pod::PodContext;
use serde_json::Value;

/// Why an object was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ObjectApplyError {
    /// The API server's refusal, whole (`The ConfigMap "x" is invalid: ...`).
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{type_name}/{name} is run by a controller of the node agent: start `podrun serve` first"
    )]
    NeedsAgent { type_name: String, name: String },
    #[error(transparent)]
    Store(#[from] ObjectError),
}

/// Fields the server sets; a submitted object never changes them.
const SERVER_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// `v` without what the server owns: what apply compares.
fn submitted(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_META {
            m.remove(*f);
        }
        // Finalizers belong to the controllers that set them.
        m.remove("finalizers");
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

/// `next` keeps what the server set on `old`: uid, creation time, finalizers, status,
/// and a generation bumped when the spec changed.
fn carry_server_fields(old: &Value, next: &mut Value) {
    // What a controller set in the spec and the file does not say (a claim's volumeName,
    // a PV's claimRef) stays.
    for f in ["volumeName", "claimRef"] {
        if let (Some(v), Some(spec)) = (
            old.get("spec").and_then(|s| s.get(f)),
            next.get_mut("spec").and_then(Value::as_object_mut),
        ) {
            spec.entry(f).or_insert_with(|| v.clone());
        }
    }
    let spec_changed = old.get("spec") != next.get("spec");
    if let (Some(o), Some(n)) = (
        old.get("metadata").and_then(Value::as_object),
        next.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        for f in [
            "uid",
            "creationTimestamp",
            "finalizers",
            "deletionTimestamp",
        ] {
            match o.get(f) {
                Some(v) => n.insert(f.into(), v.clone()),
                None => n.remove(f),
            };
        }
        if let Some(g) = o.get("generation").and_then(Value::as_i64) {
            n.insert(
                "generation".into(),
                Value::from(g + i64::from(spec_changed)),
            );
        }
    }
    if let (Some(st), Some(n)) = (old.get("status"), next.as_object_mut()) {
        n.insert("status".into(), st.clone());
    }
}

/// Whether a node agent listens on this state root.
pub fn agent_running(ctx: &PodContext) -> bool {
    crate::handoff::connect_agent(&ctx.root).is_some()
}

/// Applies one object.
pub fn apply_object(ctx: &PodContext, obj: &Object) -> Result<Applied, ObjectApplyError> {
    if obj.kind.needs_agent && !agent_running(ctx) {
        return Err(ObjectApplyError::NeedsAgent {
            type_name: obj.kind.type_name(),
            name: obj.name().into(),
        });
    }
    let store = ObjectStore::new(&ctx.data_dir);
    let key = obj.key();
    let lock = store.lock()?;
    let applied = match store.get::<Value>(&key)? {
        None => {
            let mut v = obj.value.clone();
            if v.get("spec").is_some() && obj.kind.kind != "Namespace" {
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("generation".into(), Value::from(1));
                }
            }
            store.put(&key, &v)?;
            Applied::Created
        }
        Some(old) => {
            let mut next = obj.value.clone();
            carry_server_fields(&old, &mut next);
            if submitted(&old) == submitted(&next) {
                return Ok(Applied::Unchanged);
            }
            (obj.kind.check_update)(&old, &next).map_err(ObjectApplyError::Invalid)?;
            store.put(&key, &next)?;
            Applied::Configured
        }
    };
    drop(lock);
    if let Some(after) = obj.kind.after_apply {
        after(ctx, obj);
    }
    Ok(applied)
}

/// The stored object of `kind` called `name`.
pub fn get_object(
    ctx: &PodContext,
    kind: &Kind,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, ObjectError> {
    ObjectStore::new(&ctx.data_dir).get(&store_key(kind, ns, name))
}

/// Deletes the object; false when there was none.
pub fn delete_object(
    ctx: &PodContext,
    kind: &Kind,
    ns: &str,
    name: &str,
) -> Result<bool, ObjectError> {
    let store = ObjectStore::new(&ctx.data_dir);
    let _lock = store.lock()?;
    store.delete(&store_key(kind, ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_the_server_sets_is_not_compared_and_is_kept() {
        let old = json!({"metadata": {"name": "a", "uid": "1", "creationTimestamp": "t", "generation": 2},
                         "spec": {"x": 1}, "status": {"phase": "Bound"}});
        let same = json!({"metadata": {"name": "a", "uid": "9", "creationTimestamp": "u"}, "spec": {"x": 1}});
        assert_eq!(submitted(&old), submitted(&same));
        let mut next = json!({"metadata": {"name": "a", "uid": "9"}, "spec": {"x": 2}});
        assert_ne!(submitted(&old), submitted(&next));
        carry_server_fields(&old, &mut next);
        assert_eq!(next["metadata"]["uid"], "1");
        assert_eq!(next["metadata"]["creationTimestamp"], "t");
        assert_eq!(next["metadata"]["generation"], 3);
        assert_eq!(next["status"]["phase"], "Bound");
    }
}
