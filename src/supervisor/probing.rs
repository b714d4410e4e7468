//! The worker's side of probes: it starts the probes that are due, moves the runs on,
//! and applies their outcomes (readiness, restarts on liveness and startup failure).
use super::probes::{self, ProbeKind, ProbeOutcome};
use super::worker::{Worker, PROBE_BATCH};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

impl Worker {
    /// Handles the probe results and timers of running containers.
    pub(super) fn run_probes(&mut self) {
        let mut started = Vec::new();
        for c in 0..self.ctrs.len() {
            if !self.ctrs[c].running() || self.ctrs[c].stop_deadline.is_some() {
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
                if self.ctrs[c].running() && self.ctrs[c].stop_deadline.is_none() {
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
        let name = self.ctrs[c].spec.name.clone();
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
                        let verb = if kind == ProbeKind::Liveness {
                            "liveness"
                        } else {
                            "startup"
                        };
                        self.kubelet_event(
                            c,
                            "Normal",
                            "Killing",
                            &format!("Container {name} failed {verb} probe, will be restarted"),
                        );
                        let grace = self.ctrs[c]
                            .probes
                            .grace(kind)
                            .unwrap_or_else(|| self.pod_grace());
                        self.stop_container(c, grace, Some(verb));
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
