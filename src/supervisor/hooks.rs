//! Lifecycle hooks (postStart, preStop) of the pod's containers, with kubelet's events
//! and words. A hook runs in a helper process (see [`offload`]) and its end is one more
//! event of the loop: a failed postStart kills the container (FailedPostStartHook), and
//! until its postStart is over a container does not count as started; preStop runs
//! within the grace period and the container's stop signal follows it (or SIGKILL at the
//! grace deadline).
use super::offload::{self, Offloaded};
use super::pod_state;
use super::worker::Worker;
use super::{http_probe, probes};
use k8s_openapi::api::core::v1::{HTTPGetAction, LifecycleHandler};
use std::time::{Duration, Instant};

pub use super::pod_state::Hook;

/// A hook under way for container `c`'s run `run`.
#[derive(Debug)]
pub struct HookRun {
    pub c: usize,
    pub hook: Hook,
    run: String,
    /// After it the helper is killed (preStop: the container's grace deadline).
    deadline: Instant,
    work: Offloaded,
}

impl HookRun {
    /// The helper's pipe, to wait on.
    pub fn fd(&self) -> Option<i32> {
        self.work.fd()
    }
}

/// How long a postStart hook may run (kubelet gives it no timeout of its own).
const POST_START_LIMIT: Duration = Duration::from_secs(3600);

/// The helper outlives a passed deadline by this much before it is killed: the hook's
/// own deadline (inside the helper) ends it first, with kubelet's message.
const KILL_SLACK: Duration = Duration::from_secs(2);

impl Worker {
    /// Starts container `c`'s postStart hook, if it has one; until it is over the
    /// container does not count as started.
    pub(super) fn begin_post_start(&mut self, c: usize) {
        let Some(handler) = self.ctrs[c]
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
        else {
            return;
        };
        // kubelet reports the container Running only once postStart is over.
        let ctr = &mut self.ctrs[c];
        ctr.status.started = Some(false);
        ctr.running_state = ctr.status.state.take();
        ctr.waiting(pod_state::WaitingReason::ContainerCreating, None);
        let deadline = pod_state::deadline(Instant::now(), POST_START_LIMIT);
        self.start_hook(c, Hook::PostStart, &handler, deadline);
    }

    /// Starts container `c`'s preStop hook when it has one (true); the stop signal
    /// follows once it is over.
    pub(super) fn begin_pre_stop(&mut self, c: usize, deadline: Instant) -> bool {
        let Some(handler) = self.ctrs[c]
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.clone())
        else {
            return false;
        };
        self.start_hook(c, Hook::PreStop, &handler, deadline);
        true
    }

    fn start_hook(&mut self, c: usize, hook: Hook, h: &LifecycleHandler, deadline: Instant) {
        let started = offload::offload(|| run_hook(self, c, h, deadline));
        match started {
            Ok(work) => self.hook_runs.push(HookRun {
                c,
                hook,
                run: self.ctrs[c].id.clone().unwrap_or_default(),
                deadline,
                work,
            }),
            Err(msg) => self.hook_done(c, hook, Err(msg)),
        }
    }

    /// Takes the results of hooks that ended; kills those past their deadline.
    pub(super) fn collect_hooks(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.hook_runs.len() {
            let r = &mut self.hook_runs[i];
            let result = match r.work.poll() {
                Some(res) => res,
                None if now >= r.deadline + KILL_SLACK => {
                    r.work.kill();
                    Err("the hook did not end by its deadline".into())
                }
                None => {
                    i += 1;
                    continue;
                }
            };
            let run = self.hook_runs.swap_remove(i);
            if self.ctrs[run.c].id.as_deref() == Some(run.run.as_str()) {
                self.hook_done(run.c, run.hook, result);
            }
        }
    }

    /// A hook of container `c`'s current run ended.
    fn hook_done(&mut self, c: usize, hook: Hook, result: Result<(), String>) {
        match (hook, result) {
            (Hook::PostStart, Ok(())) => {
                let ctr = &mut self.ctrs[c];
                if let Some(state) = ctr.running_state.take() {
                    ctr.status.state = Some(state);
                }
                ctr.status.started = Some(!ctr.probes.has(probes::ProbeKind::Startup));
                self.dirty = true;
            }
            (Hook::PostStart, Err(msg)) => {
                self.kubelet_event(c, "Warning", "FailedPostStartHook", &msg);
                // The plan kills it at once (no grace period).
                let stop = (
                    pod_state::KillReason::PostStartHookFailure,
                    Some(Duration::ZERO),
                );
                self.ctrs[c].stop_request = Some(stop);
            }
            (Hook::PreStop, result) => {
                if let Err(msg) = result {
                    self.kubelet_event(c, "Warning", "FailedPreStopHook", &msg);
                }
                // The plan sends the stop signal now.
                self.pre_stop_over(c);
            }
        }
    }

    /// Whether container `c`'s postStart hook is still going.
    pub(super) fn in_post_start(&self, c: usize) -> bool {
        self.hook_runs
            .iter()
            .any(|r| r.c == c && r.hook == Hook::PostStart)
    }

    /// Ends the hooks of container `c` (it exited), or all of them (teardown).
    pub(super) fn end_hooks(&mut self, c: Option<usize>) {
        self.hook_runs.retain(|r| {
            let ends = c.is_none_or(|c| r.c == c);
            if ends {
                r.work.kill();
            }
            !ends
        });
    }

    /// The earliest hook deadline (when a helper is killed).
    pub(super) fn next_hook_deadline(&self) -> Option<Instant> {
        self.hook_runs.iter().map(|r| r.deadline + KILL_SLACK).min()
    }

    /// A helper exited (reaped by the loop); true when it was a hook's.
    pub(super) fn hook_exited(&mut self, pid: i32) -> bool {
        match self.hook_runs.iter_mut().find(|r| r.work.pid == pid) {
            Some(r) => {
                r.work.exited();
                true
            }
            None => false,
        }
    }
}

/// Runs a lifecycle hook to its end, giving up at `deadline`: in the helper process
/// (see [`offload`]), where blocking is harmless.
fn run_hook(
    w: &mut Worker,
    c: usize,
    h: &LifecycleHandler,
    deadline: Instant,
) -> Result<(), String> {
    let name = w.ctrs[c].spec.name.clone();
    let pod_desc = crate::spec::user::pod_desc(&w.pod);
    if let Some(e) = &h.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return probes::run_exec(w, c, e, Some(deadline)).map(|_| ()).map_err(|out| {
            format!(
                "Exec lifecycle hook ({cmd:?}) for Container \"{name}\" in Pod \"{pod_desc}\" failed - error: command '{}' exited with error, message: \"{}\"",
                cmd.join(" "),
                out.trim_end()
            )
        });
    }
    if let Some(hg) = &h.http_get {
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(30));
        return run_http_hook(w, c, hg, Instant::now() + timeout)
            .map_err(|e| format!("HTTP lifecycle hook ({}) for Container \"{name}\" in Pod \"{pod_desc}\" failed - error: {e}", hg.path.clone().unwrap_or_default()));
    }
    if let Some(s) = &h.sleep {
        let d =
            pod_state::seconds(s.seconds).min(deadline.saturating_duration_since(Instant::now()));
        std::thread::sleep(d);
        return Ok(());
    }
    if h.tcp_socket.is_some() {
        return Err("tcpSocket lifecycle hooks are deprecated and not supported".into());
    }
    Ok(())
}

/// kubelet's HTTP lifecycle handler (runHTTPHandler): only a failed request fails the
/// hook, whatever the status code; an HTTPS hook answered in plain HTTP is retried over
/// HTTP, with a LifecycleHTTPFallback event when that works.
fn run_http_hook(
    w: &mut Worker,
    c: usize,
    hg: &HTTPGetAction,
    deadline: Instant,
) -> Result<(), String> {
    match probes::http_get(w, c, hg, "lifecycle", deadline) {
        Ok(_) => Ok(()),
        Err(e) if e.contains(http_probe::HTTP_TO_HTTPS) => {
            let mut plain = hg.clone();
            plain.scheme = Some("HTTP".into());
            probes::http_get(w, c, &plain, "lifecycle", deadline).map_err(|_| e.clone())?;
            let port = probes::resolve_port(&w.ctrs[c].spec, &hg.port).unwrap_or_default();
            let host = hg
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .or_else(|| w.pod_ip().map(String::from))
                .unwrap_or_default();
            w.event(
                "Warning",
                "LifecycleHTTPFallback",
                "kubelet",
                "",
                &format!(
                    "request to HTTPS lifecycle hook {} got HTTP response, retry with HTTP succeeded",
                    http_probe::join_host_port(&host, port)
                ),
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}
