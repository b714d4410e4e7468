//! `podrun image prune [-a]` as podman's image prune (crictl rmi --prune) does it: the
//! container overlays no pod owns any more, then the dangling (or, with `-a`, all unused)
//! images, then the blobs and layers no image refers to. Never an image a pod uses:
//! running (its record under --root) or desired (its object under the data dir).
use crate::image::{Image, ImageError, ImageStore};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// A container directory younger than this is never taken for a leftover (its pod may
/// be starting in another state root).
pub const LEFTOVER_MIN_AGE: Duration = Duration::from_secs(60);

/// What a prune removed.
#[derive(Debug, Default)]
pub struct Pruned {
    pub images: Vec<Image>,
    pub containers: Vec<String>,
}

/// The images of a pod's containers (init and ephemeral ones too).
pub fn pod_images(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut out: Vec<String> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.clone())
        .collect();
    out.extend(
        spec.ephemeral_containers
            .iter()
            .flatten()
            .filter_map(|c| c.image.clone()),
    );
    out
}

/// The pods of the node: running (records under `root`) and desired (objects).
pub fn node_pods(root: &Path, data_dir: &Path) -> Vec<Pod> {
    let mut pods: Vec<Pod> = crate::supervisor::store::PodStore::new(root)
        .list()
        .into_iter()
        .map(|r| r.pod)
        .collect();
    let objects = crate::objects::ObjectStore::new(data_dir);
    pods.extend(
        objects
            .list::<Pod>("pods", None)
            .into_iter()
            .filter_map(|(_, p)| p.ok()),
    );
    pods
}

/// Manifest digests of the images the pods use.
pub fn images_in_use(store: &ImageStore, pods: &[Pod]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for reference in pods.iter().flat_map(pod_images) {
        if let Ok(Some(img)) = store.resolve(&reference) {
            used.insert(img.manifest_digest);
        }
    }
    used
}

/// The container ids the pods' statuses name.
fn pod_container_ids(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .chain(s.ephemeral_container_statuses.iter().flatten())
        })
        .filter_map(|cs| cs.container_id.as_deref())
        .map(|id| id.rsplit("://").next().unwrap_or(id).to_string())
        .collect()
}

/// Container directories no pod owns: not named by a pod, rootfs not mounted, older
/// than [`LEFTOVER_MIN_AGE`] (a reboot leaves them so).
pub fn leftover_containers(store: &ImageStore, pods: &[Pod]) -> Vec<String> {
    let owned = pod_container_ids(pods);
    store
        .container_ids()
        .into_iter()
        .filter(|id| !owned.contains(id))
        .filter(|id| {
            let dir = store.container_dir(id);
            let mounted = crate::image::fsutil::is_mountpoint(&dir.join("rootfs"));
            let age = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            !mounted && age >= LEFTOVER_MIN_AGE
        })
        .collect()
}

/// Removes leftover containers, then the unused images (`all`) or the untagged ones,
/// then what no image refers to.
pub fn prune(
    store: &ImageStore,
    root: &Path,
    data_dir: &Path,
    all: bool,
) -> Result<Pruned, ImageError> {
    let pods = node_pods(root, data_dir);
    let mut out = Pruned::default();
    for id in leftover_containers(store, &pods) {
        store.release_rootfs(&id)?;
        out.containers.push(id);
    }
    let mut used = images_in_use(store, &pods);
    used.extend(store.images_of_containers().into_iter().map(|(_, m)| m));
    for img in store.list()? {
        let dangling = img.reference == "<none>";
        if used.contains(&img.manifest_digest) || !(all || dangling) {
            continue;
        }
        let target = if dangling {
            img.config_digest.clone()
        } else {
            img.reference.clone()
        };
        match store.remove(&target) {
            Ok(_) => out.images.push(img),
            // Taken by a container meanwhile, or gone with an earlier tag of it.
            Err(ImageError::InUse { .. } | ImageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    store.collect_garbage()?;
    Ok(out)
}
