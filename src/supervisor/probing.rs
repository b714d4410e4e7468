//! The worker's side of probes: it starts the probes that are due, moves the runs on,
//! and applies their outcomes (readiness, restarts on liveness and startup failure).
use super::pod_state::KillReason;
use super::probes::{self, ProbeHost, ProbeKind, ProbeOutcome, ProbeRunner};
use super::worker::{Worker, PROBE_BATCH};
use k8s_openapi::api::core::v1::Container;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

impl Worker {
    /// Handles the probe results and timers of running containers.
    pub(super) fn run_probes(&mut self) {
        let mut started = Vec::new();
        for c in 0..self.ctrs.len() {
            // Probes start once the container counts as started: after postStart.
            let stopping = self.ctrs[c].stopping.is_some() || self.ctrs[c].stop_request.is_some();
            if !self.ctrs[c].running() || stopping || self.in_post_start(c) {
                continue;
            }
            let results = probes::due(self, c, Instant::now(), &mut started);
            for (kind, outcome) in results {
                self.apply_probe(c, kind, outcome);
            }
        }
        if !started.is_empty() {
            self.probe_batch = Some(Instant::now() + PROBE_BATCH);
        }
        self.probe_runs.extend(started);
        self.collect_probe_runs();
    }

    /// Whether probe results are looked at now (false within a batch's window).
    pub(super) fn probe_results_due(&mut self, now: Instant) -> bool {
        match self.probe_batch {
            Some(t) if t > now => false,
            _ => {
                self.probe_batch = None;
                true
            }
        }
    }

    /// Moves the probe runs on and concludes those that finished (or timed out).
    pub(super) fn collect_probe_runs(&mut self) {
        if self.probe_runs.is_empty() {
            return;
        }
        let now = Instant::now();
        if !self.probe_results_due(now) {
            return;
        }
        let mut runs = std::mem::take(&mut self.probe_runs);
        let mut i = 0;
        while i < runs.len() {
            if !runs[i].advance(now, &mut |h, port, t| probes::dial(self, h, port, t)) {
                i += 1;
                continue;
            }
            let run = runs.swap_remove(i);
            if self.terminating.is_some() {
                continue;
            }
            if let Some((c, kind, outcome)) = probes::finish_run(self, run) {
                let stopping =
                    self.ctrs[c].stopping.is_some() || self.ctrs[c].stop_request.is_some();
                if self.ctrs[c].running() && !stopping {
                    self.apply_probe(c, kind, outcome);
                }
            }
        }
        runs.append(&mut self.probe_runs);
        self.probe_runs = runs;
    }

    /// /dev/null for exec stdin, opened on first use.
    pub fn devnull(&mut self) -> std::io::Result<RawFd> {
        if self.devnull.is_none() {
            self.devnull = Some(File::open("/dev/null")?);
        }
        Ok(self.devnull.as_ref().map_or(-1, |f| f.as_raw_fd()))
    }

    pub(super) fn apply_probe(&mut self, c: usize, kind: ProbeKind, outcome: ProbeOutcome) {
        match outcome {
            ProbeOutcome::Failed {
                message,
                threshold_reached,
            } => {
                let what = kind.title();
                self.kubelet_event(
                    c,
                    "Warning",
                    "Unhealthy",
                    &format!("{what} probe failed: {message}"),
                );
                if !threshold_reached {
                    return;
                }
                match kind {
                    ProbeKind::Readiness => {
                        if self.ctrs[c].status.ready {
                            self.ctrs[c].status.ready = false;
                            self.dirty = true;
                        }
                    }
                    ProbeKind::Liveness | ProbeKind::Startup => {
                        // The plan stops it (within the probe's grace period, if it has
                        // one), with kubelet's Killing event.
                        let reason = if kind == ProbeKind::Liveness {
                            KillReason::LivenessFailure
                        } else {
                            KillReason::StartupFailure
                        };
                        let grace = self.ctrs[c].probes.grace(kind);
                        self.ctrs[c].stop_request = Some((reason, grace));
                    }
                }
            }
            ProbeOutcome::Succeeded { threshold_reached } => {
                if !threshold_reached {
                    return;
                }
                match kind {
                    ProbeKind::Readiness => {
                        if !self.ctrs[c].status.ready {
                            self.ctrs[c].status.ready = true;
                            self.dirty = true;
                        }
                    }
                    ProbeKind::Startup => {
                        if self.ctrs[c].status.started != Some(true) {
                            self.ctrs[c].status.started = Some(true);
                            self.dirty = true;
                        }
                    }
                    ProbeKind::Liveness => {}
                }
            }
            ProbeOutcome::Pending => {}
        }
    }

    /// The pod's network namespace and this thread's own, both open (None with
    /// hostNetwork), for probes to create their sockets inside the pod.
    pub fn probe_netns(&mut self) -> Option<&(File, File)> {
        if self.netns_files.is_none() {
            let path = self.sandbox.as_ref().and_then(|s| s.namespaces().net)?;
            let target = File::open(path).ok()?;
            let own = File::open("/proc/thread-self/ns/net").ok()?;
            self.netns_files = Some((target, own));
        }
        self.netns_files.as_ref()
    }
}

impl ProbeHost for Worker {
    fn spawn_exec(
        &mut self,
        c: usize,
        cmd: &[String],
        out: RawFd,
    ) -> Result<(i32, OwnedFd), String> {
        let devnull = self.devnull().map_err(|e| e.to_string())?;
        spawn_in(self, c, cmd, devnull, out)
    }

    fn pod_socket(&mut self, addr: &SocketAddr, flags: libc::c_int) -> std::io::Result<OwnedFd> {
        match self.probe_netns() {
            Some((target, own)) => {
                crate::network::in_netns_fd(target, own, || probes::new_socket(addr, flags))
            }
            None => probes::new_socket(addr, flags),
        }
    }

    fn pod_ip(&self) -> Option<&str> {
        self.status.pod_ip.as_deref()
    }

    fn container(&self, c: usize) -> &Container {
        &self.ctrs[c].spec
    }

    fn run_id(&self, c: usize) -> Option<&str> {
        self.ctrs.get(c).and_then(|x| x.id.as_deref())
    }

    fn started(&self, c: usize) -> bool {
        self.ctrs[c].status.started == Some(true)
    }

    fn probes(&mut self, c: usize) -> &mut ProbeRunner {
        &mut self.ctrs[c].probes
    }

    fn event(&mut self, c: usize, type_: &str, reason: &str, message: &str) {
        self.kubelet_event(c, type_, reason, message);
    }
}

/// Starts `cmd` in container `c` with stdin and stdout/stderr given; returns its pid and
/// a pidfd. The prepared exec of the current run is made on first
/// use; a container it cannot serve (user namespace) goes through the general exec.
fn spawn_in(
    w: &mut Worker,
    c: usize,
    cmd: &[String],
    stdin: i32,
    out: i32,
) -> Result<(i32, OwnedFd), String> {
    if let Some(p) = w.ctrs[c].prepared_exec.as_mut() {
        let s = p.spawn(cmd, stdin, out, out).map_err(|e| e.to_string())?;
        return Ok((s.pid, s.pidfd));
    }
    let Some(id) = w.ctrs[c].id.clone() else {
        return Err("container is not running".into());
    };
    let Some(mut process) = w.ctrs[c].exec_process.clone() else {
        return Err("container has no process".into());
    };
    if !w.ctrs[c].prepared_exec_failed {
        match w.runtime().prepare_exec(&id, &process) {
            Ok(mut p) => {
                let s = p.spawn(cmd, stdin, out, out).map_err(|e| e.to_string());
                w.ctrs[c].prepared_exec = Some(p);
                let s = s?;
                return Ok((s.pid, s.pidfd));
            }
            Err(_) => w.ctrs[c].prepared_exec_failed = true,
        }
    }
    process.set_args(Some(cmd.to_vec()));
    process.set_terminal(Some(false));
    let mut opts = crate::runtime::ExecOptions::new(process);
    opts.stdin = Some(stdin);
    opts.stdout = Some(out);
    opts.stderr = Some(out);
    let outcome = w.runtime().exec(&id, &opts).map_err(|e| e.to_string())?;
    // SAFETY: pidfd_open(2) on our own child (not reaped yet, so the pid is its own).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, outcome.pid, 0) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let _ = nix::sys::signal::kill(
            Pid::from_raw(outcome.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = waitpid(Pid::from_raw(outcome.pid), Some(WaitPidFlag::__WALL));
        return Err(format!("pidfd_open: {err}"));
    }
    // SAFETY: a fresh pidfd we own.
    Ok((outcome.pid, unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}
