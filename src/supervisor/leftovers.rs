//! Removing whatever a pod still has on the host, from its record alone: the one
//! teardown sweep the supervisor ends with and `delete` runs for a pod whose supervisor
//! is gone. Every step is idempotent (gone already is fine).
use super::logs;
use super::store;
use k8s_openapi::api::core::v1::Pod;
use std::path::Path;

/// The prefix of every container id of the pod with `uid` (its first 8 alphanumerics):
/// `<prefix>-<container>-<attempt>`, and the pause's `<uid12>-pause`.
pub fn container_id_prefix(uid: &str) -> String {
    uid.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect()
}

/// The runtime id of attempt `attempt` of container `name` of the pod with `uid`.
pub fn container_id(uid: &str, name: &str, attempt: u32) -> String {
    format!("{}-{name}-{attempt}", container_id_prefix(uid))
}

/// Removes the pod's network, containers, volumes, user-namespace range, /dev/shm, pod
/// cgroup and logs, then its directory (pod.json first, so listings drop it at once).
pub fn remove(root: &Path, data_dir: &Path, dir: &Path, pod: &Pod) {
    remove_host_state(root, data_dir, dir, pod);
    remove_durable(data_dir, pod);
    let _ = std::fs::remove_dir_all(logs::pod_log_dir(
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or(""),
    ));
    remove_pod_dir(dir);
}

/// The pod's own directory under the data dir (its disk emptyDirs, its status copy):
/// kept while the pod lives, sandbox restarts and reboots included; gone with the pod.
pub fn remove_durable(data_dir: &Path, pod: &Pod) {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    if !uid.is_empty() && !uid.contains('/') {
        let dir = store::durable_dir(data_dir, uid);
        // Never through a mount left inside it (host data must not go with it).
        if crate::spec::volumes::cleanup_volumes(&dir).is_ok() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Everything but the logs and the record: what a pod that failed to start must not
/// keep while its record waits for `delete`.
pub fn remove_host_state(root: &Path, data_dir: &Path, dir: &Path, pod: &Pod) {
    let rt = crate::runtime::Runtime::new(root);
    let prefix = container_id_prefix(pod.metadata.uid.as_deref().unwrap_or(""));
    // Network first, while the pause may still hold the namespace (CNI DEL wants it).
    crate::network::cleanup_pod_dir(dir);
    if prefix.len() == 8 {
        let images = crate::image::ImageStore::open(data_dir).ok();
        for st in rt.list().unwrap_or_default() {
            if st.id.starts_with(&prefix) {
                let _ = rt.kill(&st.id, nix::sys::signal::Signal::SIGKILL, true);
                let _ = rt.delete(&st.id, true);
                if let Some(s) = images.as_ref() {
                    let _ = s.release_rootfs(&st.id);
                }
            }
        }
    }
    let _ = crate::spec::volumes::cleanup_volumes(dir);
    // Its pause is gone with its containers: the pod's id range is free again.
    let _ = crate::userns::release_pod(data_dir, dir);
    let shm = dir.join("shm");
    let _ = nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH);
    let cg = crate::spec::resources::pod_cgroup_path(pod);
    if let Ok(c) = crate::runtime::cgroups::open(&cg) {
        let _ = c.remove();
    }
}

/// Removes a deleted pod's directory. pod.json goes first, so listings stop showing the
/// pod at once instead of a half-removed record (status without its deletion request).
pub fn remove_pod_dir(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(store::POD_FILE));
    let _ = std::fs::remove_dir_all(dir);
}
