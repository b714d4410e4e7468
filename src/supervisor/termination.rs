//! Stopping containers and the pod: graceful stops with preStop and the stop signal,
//! SIGKILL at the grace deadline, pod deletion, NoExecute eviction, activeDeadlineSeconds.
use super::pod_state::{self, Kind};
use super::store::{self, DeletionRequest};
use super::worker::{SupervisorError, Worker};
use crate::admission;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

impl Worker {
    /// Begins a graceful stop of container `c`: preStop, then its stop signal, SIGKILL
    /// after `grace`.
    pub fn stop_container(&mut self, c: usize, grace: Duration, note: Option<&str>) {
        if !self.ctrs[c].running() || self.ctrs[c].stop_deadline.is_some() {
            return;
        }
        if let Some(n) = note {
            self.ctrs[c].kill_note = Some(n.to_string());
        }
        let deadline = pod_state::deadline(Instant::now(), grace);
        self.ctrs[c].stop_deadline = Some(deadline);
        // The stop signal follows the preStop hook (see hooks.rs), SIGKILL the deadline.
        if !grace.is_zero() && self.begin_pre_stop(c, deadline) {
            return;
        }
        let sig = if grace.is_zero() {
            Signal::SIGKILL
        } else {
            self.stop_signal(c)
        };
        self.kill_container(c, sig);
    }

    /// Stops a container with the event kubelet records (once, when it is running and
    /// not already stopping).
    pub(super) fn stop_with_event(&mut self, c: usize, grace: Duration) {
        if self.ctrs[c].running() && self.ctrs[c].stop_deadline.is_none() {
            let name = self.ctrs[c].spec.name.clone();
            self.kubelet_event(
                c,
                "Normal",
                "Killing",
                &format!("Stopping container {name}"),
            );
        }
        self.stop_container(c, grace, None);
    }

    pub(super) fn pod_grace(&self) -> Duration {
        pod_state::seconds(self.spec().termination_grace_period_seconds.unwrap_or(30))
    }

    /// Starts pod termination: regular containers first, sidecars after them.
    pub(super) fn begin_termination(&mut self) {
        if self.terminating.is_some() {
            return;
        }
        let req: DeletionRequest =
            store::read_json(&self.args.pod_dir.join(store::DELETION_FILE)).unwrap_or_default();
        let grace = match (req.force, req.grace_period_seconds) {
            (true, _) => Duration::ZERO,
            (_, Some(g)) => pod_state::seconds(g),
            _ => self.pod_grace(),
        };
        let deadline = pod_state::deadline(Instant::now(), grace);
        self.terminating = Some(deadline);
        for c in 0..self.ctrs.len() {
            if self.ctrs[c].kind == Kind::Regular || self.ctrs[c].kind == Kind::Init {
                self.stop_with_event(c, grace);
            }
        }
        self.dirty = true;
    }

    /// The taint eviction controller's part: a NoExecute taint the pod does not tolerate
    /// (or no longer, after tolerationSeconds) deletes it gracefully, as `podrun delete
    /// pod` does: the deletion request, then termination; the loop removes the pod.
    /// True when termination began.
    pub(super) fn evicted_by_noexecute(&mut self) -> bool {
        let start = self.status.start_time.as_ref();
        let now = (Instant::now(), crate::util::now());
        let Some(message) = self.noexecute.poll(&self.pod, start, now.0, now.1) else {
            return false;
        };
        self.event(
            "Normal",
            admission::EVENT_TAINT_EVICTION,
            admission::TAINT_EVICTION_SOURCE,
            "",
            &message,
        );
        let path = self.args.pod_dir.join(store::DELETION_FILE);
        if !path.exists() {
            let req = DeletionRequest {
                grace_period_seconds: None,
                force: false,
                timestamp: crate::util::now().to_string(),
            };
            let _ = store::write_json(&path, &req);
        }
        self.begin_termination();
        true
    }

    /// During termination: sidecars stop once the regular containers are gone (in reverse
    /// order); anything past the deadline gets SIGKILL.
    pub(super) fn drive_termination(&mut self) {
        let Some(deadline) = self.terminating else {
            return;
        };
        let now = Instant::now();
        if let Some(c) = pod_state::next_sidecar_to_stop(&self.views(now)) {
            let left = deadline.saturating_duration_since(now);
            self.stop_with_event(c, left.max(Duration::from_secs(2)));
        }
        for c in 0..self.ctrs.len() {
            if let Some(d) = self.ctrs[c].stop_deadline {
                if now >= d && self.ctrs[c].running() {
                    self.kill_container(c, Signal::SIGKILL);
                }
            }
        }
    }

    /// Container stop deadlines of probes-killed containers (outside pod termination).
    pub(super) fn enforce_stop_deadlines(&mut self) {
        let now = Instant::now();
        for c in 0..self.ctrs.len() {
            if let Some(d) = self.ctrs[c].stop_deadline {
                if now >= d && self.ctrs[c].running() {
                    self.kill_container(c, Signal::SIGKILL);
                }
            }
        }
    }

    /// activeDeadlineSeconds passed: kill everything, phase Failed, reason DeadlineExceeded.
    pub(super) fn deadline_exceeded(&mut self) {
        let msg = "Pod was active on the node longer than the specified deadline".to_string();
        self.event("Normal", "DeadlineExceeded", "kubelet", "", &msg);
        for c in 0..self.ctrs.len() {
            self.ctrs[c].done = true;
            self.stop_container(c, self.pod_grace(), None);
        }
        self.status.phase = Some("Failed".into());
        self.status.reason = Some("DeadlineExceeded".into());
        self.status.message = Some(msg);
        self.active_deadline = None;
        self.dirty = true;
    }

    /// For pods that never started: keep the record until deleted.
    pub(super) fn wait_for_delete(&mut self, sigfd: &SignalFd) -> Result<(), SupervisorError> {
        // Deleted before it ran: `up` created it all the same (a failed start said so).
        self.signal_ready("ok");
        // `delete` writes its request before the SIGTERM, which `schedule` may have
        // consumed already: then there is nothing left to wait for.
        while !self.args.pod_dir.join(store::DELETION_FILE).exists() {
            if let Some(s) = wait_signal(sigfd, Duration::from_secs(3600))? {
                if s != Signal::SIGCHLD {
                    break;
                }
                self.reap();
            }
        }
        remove_pod_dir(&self.args.pod_dir);
        Ok(())
    }
}

pub(super) use super::leftovers::remove_pod_dir;

/// Waits up to `timeout` for a signal on the signalfd.
fn wait_signal(sigfd: &SignalFd, timeout: Duration) -> Result<Option<Signal>, SupervisorError> {
    let mut pfd = libc::pollfd {
        fd: sigfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe {
        libc::poll(
            &mut pfd,
            1,
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
    };
    if n <= 0 {
        return Ok(None);
    }
    match sigfd.read_signal() {
        Ok(Some(info)) => Ok(Signal::try_from(info.ssi_signo as i32).ok()),
        _ => Ok(None),
    }
}
