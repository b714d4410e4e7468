//! PersistentVolumeClaims, PersistentVolumes and StorageClasses on one node: a built-in
//! default class `local-path` (as local-path-provisioner: a directory per volume under the
//! data dir, reclaimPolicy Delete), the PV controller's binding (a claim binds to a
//! matching Available PV, or one is provisioned for it), the protection finalizers, and
//! the host path a pod's `persistentVolumeClaim` volume mounts.
//!
//! Binding is Immediate (at apply), not local-path-provisioner's WaitForFirstConsumer.
use super::kinds::{admit_typed, meta_str, AdmitError, Object, CLUSTER_SCOPE};
use super::{ObjectKey, ObjectStore};
use crate::manifest::defaults;
use crate::manifest::validate::{ErrorType, FieldError, InvalidError};
use crate::pod::PodContext;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const CLAIMS: &str = "persistentvolumeclaims";
pub const VOLUMES: &str = "persistentvolumes";
pub const CLASSES: &str = "storageclasses";
pub const DEFAULT_CLASS: &str = "local-path";
pub const PROVISIONER: &str = "podrun.io/local-path";
const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

fn required(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.into(),
        kind: ErrorType::Required,
        value: None,
        detail: detail.into(),
    }
}

fn finish(kind: &str, name: Option<String>, errors: Vec<FieldError>) -> Result<(), InvalidError> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(InvalidError {
        kind: kind.into(),
        name: name.unwrap_or_default(),
        errors,
    })
}

pub fn admit_claim(v: &mut Value) -> Result<(), AdmitError> {
    admit_typed::<PersistentVolumeClaim>(v, |c| {
        defaults::default_object_meta(&mut c.metadata);
        let spec = c.spec.get_or_insert_with(Default::default);
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        // The DefaultStorageClass admission plugin.
        spec.storage_class_name
            .get_or_insert_with(|| DEFAULT_CLASS.into());
        let mut errs = Vec::new();
        if spec.access_modes.as_ref().is_none_or(|m| m.is_empty()) {
            errs.push(required(
                "spec.accessModes",
                "at least 1 access mode is required",
            ));
        }
        let has_storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|r| r.contains_key("storage"));
        if !has_storage {
            errs.push(required("spec.resources[storage]", ""));
        }
        c.status = Some(serde_json::from_value(json!({"phase": "Pending"})).unwrap_or_default());
        finish("PersistentVolumeClaim", c.metadata.name.clone(), errs)
    })
}

pub fn admit_volume(v: &mut Value) -> Result<(), AdmitError> {
    admit_typed::<PersistentVolume>(v, |pv| {
        defaults::default_object_meta(&mut pv.metadata);
        pv.metadata.namespace = None;
        let spec = pv.spec.get_or_insert_with(Default::default);
        spec.persistent_volume_reclaim_policy
            .get_or_insert_with(|| "Retain".into());
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        let mut errs = Vec::new();
        if spec.host_path.is_none() && spec.local.is_none() {
            errs.push(required(
                "spec",
                "must specify a volume type (podrun runs hostPath and local)",
            ));
        }
        if spec.access_modes.as_ref().is_none_or(|m| m.is_empty()) {
            errs.push(required("spec.accessModes", ""));
        }
        pv.status = Some(serde_json::from_value(json!({"phase": "Available"})).unwrap_or_default());
        finish("PersistentVolume", pv.metadata.name.clone(), errs)
    })
}

pub fn admit_class(v: &mut Value) -> Result<(), AdmitError> {
    admit_typed::<StorageClass>(v, |sc| {
        defaults::default_object_meta(&mut sc.metadata);
        sc.metadata.namespace = None;
        sc.reclaim_policy.get_or_insert_with(|| "Delete".into());
        sc.volume_binding_mode
            .get_or_insert_with(|| "Immediate".into());
        Ok(())
    })
}

/// A claim's spec is immutable once created, but for its requests.
pub fn check_claim_update(old: &Value, new: &Value) -> Result<(), String> {
    let strip = |v: &Value| {
        let mut s = v.get("spec").cloned().unwrap_or_default();
        if let Some(o) = s.as_object_mut() {
            o.remove("resources");
            o.remove("volumeName");
        }
        s
    };
    if strip(old) == strip(new) {
        return Ok(());
    }
    Err(InvalidError {
        kind: "PersistentVolumeClaim".into(),
        name: meta_str(new, "name").into(),
        errors: vec![FieldError {
            field: "spec".into(),
            kind: ErrorType::Forbidden,
            value: None,
            detail: "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into(),
        }],
    }
    .to_string())
}

/// The built-in default class, as `get sc` shows it.
pub fn built_in_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate", "allowVolumeExpansion": false,
    })
}

/// Where provisioned volumes live.
fn provision_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("storage").join(DEFAULT_CLASS)
}

fn quantity_bytes(q: &Value) -> i128 {
    q.as_str()
        .and_then(|s| crate::manifest::quantity::ParsedQuantity::parse(s).ok())
        .and_then(|q| q.value().ok())
        .unwrap_or(0)
}

fn modes(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(String::from))
        .collect()
}

/// Whether `pv` can hold `claim` (class, access modes, size, not bound elsewhere).
fn fits(pv: &Value, claim: &Value) -> bool {
    let (ps, cs) = (&pv["spec"], &claim["spec"]);
    let class = |v: &Value| v["storageClassName"].as_str().unwrap_or("").to_string();
    let free = pv["status"]["phase"] == "Available" && ps.get("claimRef").is_none();
    let pv_modes = modes(&ps["accessModes"]);
    free && class(ps) == class(cs)
        && modes(&cs["accessModes"])
            .iter()
            .all(|m| pv_modes.contains(m))
        && quantity_bytes(&ps["capacity"]["storage"])
            >= quantity_bytes(&cs["resources"]["requests"]["storage"])
}

fn add_finalizer(v: &mut Value, f: &str) {
    let list = &mut v["metadata"]["finalizers"];
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        if !a.iter().any(|x| x == f) {
            a.push(json!(f));
        }
    }
}

/// The PV controller for one claim: bound to a fitting PV, or to one provisioned.
pub fn bind(ctx: &PodContext, ns: &str, name: &str) -> Result<bool, super::ObjectError> {
    let store = ObjectStore::new(&ctx.data_dir);
    let _lock = store.lock()?;
    let ckey = ObjectKey::new(CLAIMS, ns, name);
    let Some(mut claim) = store.get::<Value>(&ckey)? else {
        return Ok(false);
    };
    if claim["status"]["phase"] == "Bound" {
        return Ok(true);
    }
    let wanted = claim["spec"]["volumeName"].as_str().map(String::from);
    let mut candidates: Vec<Value> = store
        .list::<Value>(VOLUMES, Some(CLUSTER_SCOPE))
        .into_iter()
        .filter_map(|(_, v)| v.ok())
        .filter(|pv| wanted.as_deref().is_none_or(|w| meta_str(pv, "name") == w))
        .filter(|pv| fits(pv, &claim))
        .collect();
    candidates.sort_by_key(|pv| quantity_bytes(&pv["spec"]["capacity"]["storage"]));
    let class = claim["spec"]["storageClassName"].as_str().unwrap_or("");
    let mut pv = match candidates.into_iter().next() {
        Some(pv) => pv,
        None if class == DEFAULT_CLASS && wanted.is_none() => provision(ctx, &claim)?,
        None => return Ok(false),
    };
    pv["spec"]["claimRef"] = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1",
        "namespace": ns, "name": name, "uid": claim["metadata"]["uid"]});
    pv["status"] = json!({"phase": "Bound"});
    add_finalizer(&mut pv, PV_PROTECTION);
    let pv_name = meta_str(&pv, "name").to_string();
    store.put(&ObjectKey::new(VOLUMES, CLUSTER_SCOPE, &pv_name), &pv)?;
    claim["spec"]["volumeName"] = json!(pv_name);
    claim["status"] = json!({"phase": "Bound", "accessModes": pv["spec"]["accessModes"],
        "capacity": pv["spec"]["capacity"]});
    add_finalizer(&mut claim, PVC_PROTECTION);
    store.put(&ckey, &claim)?;
    Ok(true)
}

/// local-path-provisioner's volume: `pvc-<uid>`, a directory `pvc-<uid>_<ns>_<name>`.
fn provision(ctx: &PodContext, claim: &Value) -> Result<Value, super::ObjectError> {
    let uid = meta_str(claim, "uid");
    let (ns, name) = (meta_str(claim, "namespace"), meta_str(claim, "name"));
    let dir = provision_dir(&ctx.data_dir).join(format!("pvc-{uid}_{ns}_{name}"));
    let io = |source| super::ObjectError::Io {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
    Ok(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": format!("pvc-{uid}"), "uid": crate::manifest::defaults::new_uid(),
                     "creationTimestamp": crate::util::now_seconds(),
                     "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {"accessModes": claim["spec"]["accessModes"],
                 "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                 "hostPath": {"path": dir.display().to_string(), "type": "DirectoryOrCreate"},
                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": DEFAULT_CLASS,
                 "volumeMode": "Filesystem"},
    }))
}

/// After a claim is applied: bind it.
pub fn after_apply_claim(ctx: &PodContext, obj: &Object) {
    let _ = bind(ctx, obj.namespace(), obj.name());
}

/// After a PV is applied: claims waiting for one may bind now.
pub fn after_apply_volume(ctx: &PodContext, _obj: &Object) {
    let store = ObjectStore::new(&ctx.data_dir);
    for (k, v) in store.list::<Value>(CLAIMS, None) {
        if v.is_ok_and(|c| c["status"]["phase"] != "Bound") {
            let _ = bind(ctx, &k.namespace, &k.name);
        }
    }
}

/// The host directory of claim `name` in `ns` once bound; the scheduler's words otherwise.
pub fn claim_path(data_dir: &Path, ns: &str, name: &str) -> Result<PathBuf, String> {
    let store = ObjectStore::new(data_dir);
    let claim = store
        .get::<Value>(&ObjectKey::new(CLAIMS, ns, name))
        .ok()
        .flatten()
        .ok_or_else(|| format!("persistentvolumeclaim {name:?} not found"))?;
    if claim["metadata"].get("deletionTimestamp").is_some() {
        return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
    }
    let pv_name = claim["spec"]["volumeName"].as_str().unwrap_or("");
    let pv = store
        .get::<Value>(&ObjectKey::new(VOLUMES, CLUSTER_SCOPE, pv_name))
        .ok()
        .flatten()
        .filter(|_| claim["status"]["phase"] == "Bound")
        .ok_or_else(|| "pod has unbound immediate PersistentVolumeClaims".to_string())?;
    let path = pv["spec"]["hostPath"]["path"]
        .as_str()
        .or(pv["spec"]["local"]["path"].as_str())
        .unwrap_or("");
    Ok(PathBuf::from(path))
}

/// Whether a pod uses claim `name`.
fn uses(pod: &k8s_openapi::api::core::v1::Pod, name: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == name)
        })
}

/// `delete pvc`: marked for deletion, then, once no pod uses it (the pvc-protection
/// finalizer), removed, and its PV released: deleted with its data (reclaimPolicy
/// Delete) or kept as Released. Waits up to `wait` for the pods to go; false if they
/// did not (the claim stays Terminating).
pub fn delete_claim(
    ctx: &PodContext,
    ns: &str,
    name: &str,
    wait: std::time::Duration,
) -> Result<Option<bool>, super::ObjectError> {
    let store = ObjectStore::new(&ctx.data_dir);
    let key = ObjectKey::new(CLAIMS, ns, name);
    {
        let _lock = store.lock()?;
        let Some(mut claim) = store.get::<Value>(&key)? else {
            return Ok(None);
        };
        if claim["metadata"].get("deletionTimestamp").is_none() {
            claim["metadata"]["deletionTimestamp"] = json!(crate::util::now_seconds());
            store.put(&key, &claim)?;
        }
    }
    let deadline = std::time::Instant::now() + wait;
    while ctx
        .store()
        .list()
        .iter()
        .any(|r| r.namespace() == ns && uses(&r.pod, name))
    {
        if std::time::Instant::now() >= deadline {
            return Ok(Some(false));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _lock = store.lock()?;
    let claim = store.get::<Value>(&key)?.unwrap_or_default();
    store.delete(&key)?;
    let pv_name = claim["spec"]["volumeName"].as_str().unwrap_or("");
    let pv_key = ObjectKey::new(VOLUMES, CLUSTER_SCOPE, pv_name);
    if let Some(mut pv) = store.get::<Value>(&pv_key)? {
        if pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
            let path = PathBuf::from(pv["spec"]["hostPath"]["path"].as_str().unwrap_or(""));
            // Only what the provisioner made is removed; a user's hostPath stays.
            if path.starts_with(provision_dir(&ctx.data_dir)) {
                let _ = std::fs::remove_dir_all(&path);
            }
            store.delete(&pv_key)?;
        } else {
            pv["status"] = json!({"phase": "Released"});
            store.put(&pv_key, &pv)?;
        }
    }
    Ok(Some(true))
}

/// kubectl's short access modes.
pub fn short_modes(v: &Value) -> String {
    modes(v)
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pv_fits_a_claim_of_its_class_modes_and_size() {
        let pv = json!({"spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
                        "capacity": {"storage": "1Gi"}}, "status": {"phase": "Available"}});
        let claim = |class: &str, size: &str| {
            json!({"spec": {"storageClassName": class,
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
        };
        assert!(fits(&pv, &claim("manual", "500Mi")));
        assert!(!fits(&pv, &claim("manual", "2Gi")));
        assert!(!fits(&pv, &claim("local-path", "1Gi")));
        assert_eq!(
            short_modes(&json!(["ReadWriteOnce", "ReadWriteOncePod"])),
            "RWO,RWOP"
        );
    }

    #[test]
    fn a_claims_spec_is_immutable_but_for_its_requests() {
        let old = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv1",
                         "resources": {"requests": {"storage": "1Gi"}}}});
        let grown = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "2Gi"}}}});
        assert!(check_claim_update(&old, &grown).is_ok());
        let other = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteMany"]}});
        assert!(check_claim_update(&old, &other)
            .unwrap_err()
            .starts_with("The PersistentVolumeClaim \"c\" is invalid: spec: Forbidden: spec is immutable after creation"));
    }
}
