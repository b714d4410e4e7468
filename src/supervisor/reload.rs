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
    /// Reads pod.json again (SIGHUP) and acts on what changed.
    pub(super) fn reload_pod(&mut self) {
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
