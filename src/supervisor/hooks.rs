//! Lifecycle hooks (postStart, preStop) of the pod's containers, with kubelet's events:
//! a failed postStart kills the container (FailedPostStartHook); preStop runs within
//! the grace period and the stop signal follows it.
use super::probes;
use super::worker::Worker;
use nix::sys::signal::Signal;

impl Worker {
    /// Runs container `c`'s postStart hook, if it has one.
    pub(super) fn begin_post_start(&mut self, c: usize) {
        let Some(handler) = self.ctrs[c]
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
        else {
            return;
        };
        if let Err(msg) = probes::run_hook(self, c, &handler) {
            self.kubelet_event(c, "Warning", "FailedPostStartHook", &msg);
            self.ctrs[c].kill_note = Some("PostStartHookError".into());
            self.kill_container(c, Signal::SIGKILL);
        }
    }
}
