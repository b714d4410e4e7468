//! A pod changed in place by `apply` (a container's image, labels, annotations,
//! activeDeadlineSeconds, added tolerations): the supervisor takes the new record and, as
//! kubelet does when a container's definition changes, stops and starts again only the
//! containers whose image changed.
use super::backoff::RestartBackoff;
use super::pod_state::{self, Kind};
use super::store;
use super::worker::Worker;
use k8s_openapi::api::core::v1::{Container, Pod};

impl Worker {
    /// Reads objects.json again (SIGHUP: a ConfigMap or Secret the pod uses was
    /// applied): configMap/secret volumes are updated in place (atomically), containers
    /// waiting for a missing one try again at once; env vars of running containers keep
    /// the values they started with.
    fn reload_objects(&mut self) {
        let path = self.args.pod_dir.join(store::OBJECTS_FILE);
        let Ok(objects) = store::read_json::<store::PodObjects>(&path) else {
            return;
        };
        if serde_json::to_value(&objects).ok() == serde_json::to_value(&self.objects).ok() {
            return;
        }
        self.objects = objects;
        if self.volumes.is_some() {
            self.refresh_api_volumes();
        }
        for ctr in self.ctrs.iter_mut() {
            let waits = ctr.status.state.as_ref().and_then(|s| s.waiting.as_ref());
            if waits.and_then(|w| w.reason.as_deref()) == Some("CreateContainerConfigError") {
                ctr.backoff = RestartBackoff::default();
            }
        }
        self.dirty = true;
    }

    /// The configMap/secret volumes written again from the new objects.
    fn refresh_api_volumes(&mut self) {
        let pod_ips: Vec<String> = self.status.pod_ip.iter().cloned().collect();
        let host_ips: Vec<String> = crate::network::host_ip().into_iter().collect();
        let ctx = crate::spec::env::EnvContext {
            pod: &self.pod,
            config_maps: &self.objects.config_maps,
            secrets: &self.objects.secrets,
            pod_ips: &pod_ips,
            host_ips: &host_ips,
            node_name: &self.node_name,
            node_allocatable: self.node_alloc,
        };
        if let Err(e) = crate::spec::volumes::refresh_api_volumes(&ctx, &self.args.pod_dir) {
            let msg = format!("MountVolume.SetUp failed: {e}");
            self.event("Warning", "FailedMount", "kubelet", "", &msg);
        }
    }

    /// Reads pod.json again (SIGHUP) and acts on what changed.
    pub(super) fn reload_pod(&mut self) {
        self.reload_objects();
        let Ok(new) = store::read_json::<Pod>(&self.args.pod_dir.join(store::POD_FILE)) else {
            return;
        };
        if new.metadata.uid != self.pod.metadata.uid {
            return;
        }
        let spec = new.spec.clone().unwrap_or_default();
        let all: Vec<Container> = spec
            .init_containers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(spec.containers.clone())
            .collect();
        for c in 0..self.ctrs.len() {
            let name = self.ctrs[c].spec.name.clone();
            let Some(next) = all.iter().find(|x| x.name == name) else {
                continue;
            };
            if next.image != self.ctrs[c].spec.image {
                self.ctrs[c].spec.image = next.image.clone();
                self.ctrs[c].status.image = next.image.clone().unwrap_or_default();
                self.image_changed(c);
            }
        }
        let deadline = spec.active_deadline_seconds;
        if deadline != self.spec().active_deadline_seconds {
            self.active_deadline = deadline.map(|s| pod_state::after(self.started_at, s));
        }
        self.pod = new;
        self.dirty = true;
    }

    /// Container `c` has a new image: a running one is stopped (within the grace period)
    /// and started again with it; a waiting one (ImagePullBackOff, a back-off) tries the
    /// new image at once.
    fn image_changed(&mut self, c: usize) {
        let ctr = &mut self.ctrs[c];
        ctr.backoff = RestartBackoff::default();
        if !(ctr.kind == Kind::Init && ctr.done) {
            ctr.done = false;
        }
        if !self.ctrs[c].running() {
            return;
        }
        let name = self.ctrs[c].spec.name.clone();
        self.kubelet_event(
            c,
            "Normal",
            "Killing",
            &format!("Container {name} definition changed, will be restarted"),
        );
        self.ctrs[c].restart_for_change = true;
        let grace = self.pod_grace();
        self.stop_container(c, grace);
    }
}
