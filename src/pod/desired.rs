//! A pod's desired state under the data dir, which survives a reboot: recorded when the
//! pod is created, dropped when its deletion is asked for. The node agent restores from
//! it every pod whose runtime state (under --root, a tmpfs) is gone.
use super::owner::PodOwner;
use super::PodContext;
use crate::objects::{ObjectError, ObjectKey, ObjectStore};
use crate::supervisor::store::{self, PodObjects};
use k8s_openapi::api::core::v1::{Pod, PodStatus};

const PODS: &str = "pods";
/// The ConfigMaps and Secrets that came with a pod (what its objects.json holds).
const POD_OBJECTS: &str = "podobjects";

fn key(resource: &str, ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(resource, ns, name)
}

fn ns_name(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Records `pod` (spec and metadata, no status) and its objects as desired.
pub fn record(ctx: &PodContext, pod: &Pod, objects: &PodObjects) -> Result<(), ObjectError> {
    let store = ObjectStore::new(&ctx.data_dir);
    let (ns, name) = ns_name(pod);
    let mut p = pod.clone();
    p.status = None;
    store.put(&key(POD_OBJECTS, &ns, &name), objects)?;
    store.put(&key(PODS, &ns, &name), &p)
}

/// The pod is no longer wanted: its deletion was asked for.
pub fn forget(ctx: &PodContext, ns: &str, name: &str) {
    let store = ObjectStore::new(&ctx.data_dir);
    let _ = store.delete(&key(PODS, ns, name));
    let _ = store.delete(&key(POD_OBJECTS, ns, name));
}

/// Every desired pod with its objects; one that cannot be read is reported, not lost.
pub fn desired(ctx: &PodContext) -> Vec<Result<(Pod, PodObjects), ObjectError>> {
    let store = ObjectStore::new(&ctx.data_dir);
    store
        .list::<Pod>(PODS, None)
        .into_iter()
        .map(|(k, pod)| {
            let pod = pod?;
            let objects = store
                .get::<PodObjects>(&key(POD_OBJECTS, &k.namespace, &k.name))?
                .unwrap_or_default();
            Ok((pod, objects))
        })
        .collect()
}

/// Writes the runtime record of a desired pod whose runtime state is gone (a reboot):
/// the same pod (same uid), its objects and its last durable status. Returns the pod
/// directory's name; its supervisor is to be started to take it over. None when the
/// pod is there already.
pub fn restore_record(
    ctx: &PodContext,
    pod: &Pod,
    objects: &PodObjects,
) -> Result<Option<String>, store::StoreError> {
    let (ns, name) = ns_name(pod);
    let pods = ctx.store();
    let dir = pods.dir(&ns, &name);
    let _lock = pods.lock()?;
    if dir.exists() {
        return Ok(None);
    }
    let io = |source| store::StoreError::Io {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let written = PodOwner::create(&dir)
        .map_err(|e| io(std::io::Error::other(e.to_string())))
        .and_then(|_owner| {
            store::write_json(&dir.join(store::OBJECTS_FILE), objects)?;
            let uid = pod.metadata.uid.as_deref().unwrap_or("");
            let last: Option<PodStatus> =
                store::read_json(&store::durable_status_path(&ctx.data_dir, uid)).ok();
            if let Some(st) = last {
                store::write_json(&dir.join(store::RESTORED_STATUS_FILE), &st)?;
            }
            store::write_json(&dir.join(store::POD_FILE), pod)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir.file_name().map(|n| n.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_pod_is_desired_until_forgotten() {
        let base = std::env::temp_dir().join(format!("podrun-desired-{}", std::process::id()));
        let ctx = PodContext {
            root: base.join("root"),
            data_dir: base.join("data"),
        };
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.uid = Some("u-1".into());
        pod.status = Some(PodStatus::default());
        record(&ctx, &pod, &PodObjects::default()).expect("record");
        let all = desired(&ctx);
        assert_eq!(all.len(), 1);
        let (p, _) = all
            .into_iter()
            .next()
            .and_then(|r| r.ok())
            .expect("readable");
        assert_eq!(p.metadata.uid.as_deref(), Some("u-1"));
        assert!(p.status.is_none(), "status is not desired state");
        let restored = restore_record(&ctx, &p, &PodObjects::default()).expect("restore");
        assert_eq!(restored.as_deref(), Some("default_web"));
        assert!(restore_record(&ctx, &p, &PodObjects::default())
            .expect("again")
            .is_none());
        forget(&ctx, "default", "web");
        assert!(desired(&ctx).is_empty());
        let _ = std::fs::remove_dir_all(base);
    }
}
