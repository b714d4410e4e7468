//! Carrying out the pod's plan: the worker shows pod_state what it observed, and does
//! what [`pod_state::plan`] returns (starts, back-offs, hooks, signals, the pod's
//! termination and failure); the deletion request and NoExecute eviction observed.
use super::pod_state::{self, Action, BackOffShow, Hook, KillReason, PodState, PodView, Stopping};
use super::store::{self, DeletionRequest};
use super::worker::{pod_desc, SupervisorError, Worker};
use crate::admission;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

impl Worker {
    /// Asks for a graceful stop of container `c` within `grace` (`apply` changed its
    /// image); the plan carries it out.
    pub fn stop_container(&mut self, c: usize, grace: Duration) {
        self.ctrs[c].stop_request = Some((KillReason::DefinitionChanged, Some(grace)));
    }

    pub(super) fn pod_grace(&self) -> Duration {
        pod_state::seconds(self.spec().termination_grace_period_seconds.unwrap_or(30))
    }

    /// The pod was deleted (SIGTERM): the request's grace period is noted; the plan
    /// begins the termination.
    pub(super) fn begin_termination(&mut self) {
        if self.terminating.is_some() || self.deletion.is_some() {
            return;
        }
        let req: DeletionRequest =
            store::read_json(&self.args.pod_dir.join(store::DELETION_FILE)).unwrap_or_default();
        let grace = pod_state::deletion_grace(self.spec(), req.force, req.grace_period_seconds);
        self.deletion = Some(grace);
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

    /// What the planner sees of the pod now.
    pub(super) fn pod_view(&self, now: Instant) -> PodView {
        let containers = self.views(now);
        let ended = self.regular_done();
        let state = PodState::derive(self.sandbox.is_some(), self.terminating, ended, &containers);
        PodView {
            state,
            deletion: self.deletion,
            active_deadline: self.active_deadline,
            phase_terminal: self.is_terminal(),
            containers,
        }
    }

    /// Plans and carries out the pod's next actions. False once the pod is terminated
    /// and every container gone.
    pub(super) fn act(&mut self) -> bool {
        let now = Instant::now();
        let view = self.pod_view(now);
        // Every stop asked for is in the plan now (or moot: a stop was under way).
        for c in self.ctrs.iter_mut() {
            c.stop_request = None;
        }
        let actions = pod_state::plan(self.spec(), &view, now);
        for action in actions {
            if !self.execute(action) {
                return false;
            }
        }
        true
    }

    /// Carries out one action (false: the pod is done).
    fn execute(&mut self, action: Action) -> bool {
        match action {
            Action::Start(c) => {
                if self.ctrs[c].finished.is_some() && self.ctrs[c].status.last_state.is_some() {
                    self.ctrs[c].status.restart_count += 1;
                }
                self.start_container(c);
            }
            Action::BackOff { c, show } => self.show_back_off(c, show),
            Action::RunHook {
                c,
                hook: Hook::PreStop,
                reason,
                deadline,
            } => {
                self.note_stop(c, reason, deadline, true);
                if !self.begin_pre_stop(c, deadline) {
                    self.pre_stop_over(c);
                }
            }
            Action::RunHook {
                c,
                hook: Hook::PostStart,
                ..
            } => self.begin_post_start(c),
            Action::Kill {
                c,
                signal,
                reason,
                deadline,
            } => {
                self.note_stop(c, reason, deadline, false);
                if let Some(s) = self.ctrs[c].stopping.as_mut() {
                    s.signalled = true;
                    s.killed |= signal == Signal::SIGKILL;
                }
                self.kill_container(c, signal);
            }
            Action::Terminate { deadline } => {
                self.terminating = Some(deadline);
                self.deletion = None;
                self.dirty = true;
            }
            Action::FailPod { reason } => self.fail_pod(reason),
            Action::Done => return false,
        }
        true
    }

    /// A stop of container `c` begins (once per run), with kubelet's Killing event.
    fn note_stop(&mut self, c: usize, reason: KillReason, deadline: Instant, pre_stop: bool) {
        if self.ctrs[c].stopping.is_some() {
            return;
        }
        if let Some(msg) = reason.event(&self.ctrs[c].spec.name) {
            self.kubelet_event(c, "Normal", "Killing", &msg);
        }
        self.ctrs[c].stopping = Some(Stopping {
            reason,
            deadline,
            pre_stop,
            signalled: false,
            killed: false,
        });
    }

    /// Container `c`'s preStop hook is over: its stop signal follows.
    pub(super) fn pre_stop_over(&mut self, c: usize) {
        if let Some(s) = self.ctrs[c].stopping.as_mut() {
            s.pre_stop = false;
        }
    }

    /// The pod failed for good (activeDeadlineSeconds): phase Failed with the reason,
    /// nothing runs again.
    fn fail_pod(&mut self, reason: pod_state::FailReason) {
        let msg = reason.message();
        self.event("Normal", reason.as_str(), "kubelet", "", msg);
        for c in self.ctrs.iter_mut() {
            c.done = true;
        }
        self.status.phase = Some("Failed".into());
        self.status.reason = Some(reason.as_str().into());
        self.status.message = Some(msg.into());
        self.active_deadline = None;
        self.dirty = true;
    }

    /// A container waiting out its back-off shows why (and an event says so once).
    pub(super) fn show_back_off(&mut self, c: usize, show: Option<BackOffShow>) {
        use pod_state::WaitingReason as W;
        let name = self.ctrs[c].spec.name.clone();
        match show {
            Some(BackOffShow::CrashLoop) => {
                let delay = self.ctrs[c].backoff.current().unwrap_or_default().as_secs();
                let msg = format!(
                    "back-off {delay}s restarting failed container={name} pod={}",
                    pod_desc(&self.pod)
                );
                self.ctrs[c].waiting(W::CrashLoopBackOff, Some(msg));
                let text = format!(
                    "Back-off restarting failed container {name} in pod {}",
                    pod_desc(&self.pod)
                );
                self.kubelet_event(c, "Warning", "BackOff", &text);
                self.dirty = true;
            }
            Some(BackOffShow::ImagePull) => {
                let image = self.ctrs[c].spec.image.clone().unwrap_or_default();
                let msg = format!("Back-off pulling image \"{image}\"");
                self.ctrs[c].waiting(W::ImagePullBackOff, Some(msg.clone()));
                self.kubelet_event(c, "Normal", "BackOff", &msg);
                self.dirty = true;
            }
            None => {}
        }
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
