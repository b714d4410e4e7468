//! The pod's status: PodStatus and its conditions derived from the containers' state
//! (kubelet's getPhase and generateAPIPodStatus), written to status.json atomically.
use super::pod_state::{self, ContainerView, Kind, RestartPolicy};
use super::probes::ProbeKind;
use super::store;
use super::worker::{now_time, Worker};
use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition};
use std::time::Instant;

impl Worker {
    pub(super) fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: Option<&str>,
        message: Option<&str>,
    ) {
        let conds = self.status.conditions.get_or_insert_with(Vec::new);
        let s = if status { "True" } else { "False" };
        if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
            if c.status != s || c.reason.as_deref() != reason || c.message.as_deref() != message {
                c.status = s.into();
                c.reason = reason.map(Into::into);
                c.message = message.map(Into::into);
                c.last_transition_time = Some(now_time());
                self.dirty = true;
            }
            return;
        }
        conds.push(PodCondition {
            type_: type_.into(),
            status: s.into(),
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            last_transition_time: Some(now_time()),
            ..Default::default()
        });
        // kubectl lists them in kubelet's order.
        let order = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ];
        conds.sort_by_key(|c| {
            order
                .iter()
                .position(|o| *o == c.type_)
                .unwrap_or(order.len())
        });
        self.dirty = true;
    }

    /// Writes status.json when something changed.
    pub(super) fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        let mut st = self.status.clone();
        let (init, regular): (Vec<_>, Vec<_>) =
            self.ctrs.iter().partition(|c| c.kind != Kind::Regular);
        // Until the pod is bound no kubelet has seen it: no container statuses, so
        // kubectl's STATUS column reads the phase (Pending), not PodInitializing.
        let bound = self
            .status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True");
        st.init_container_statuses =
            (bound && !init.is_empty()).then(|| init.iter().map(|c| c.status.clone()).collect());
        st.container_statuses = bound.then(|| regular.iter().map(|c| c.status.clone()).collect());
        if store::write_json(&self.args.pod_dir.join(store::STATUS_FILE), &st).is_ok() {
            self.dirty = false;
        }
    }

    /// Phase and conditions from the containers, as kubelet computes them (getPhase); a
    /// phase the pod was given for a reason (DeadlineExceeded) stays.
    pub(super) fn update_phase(&mut self) {
        if self.status.reason.is_some() && self.is_terminal() {
            return;
        }
        let kinds: Vec<(Kind, &ContainerStatus)> =
            self.ctrs.iter().map(|c| (c.kind, &c.status)).collect();
        let names: Vec<&str> = self.ctrs.iter().map(|c| c.spec.name.as_str()).collect();
        let terminal = self.terminating.is_some() || self.regular_done();
        let policy = RestartPolicy::of(self.spec());
        let phase = pod_state::pod_phase(policy, &kinds, terminal);
        let conds = pod_state::conditions(&names, &kinds, phase);
        drop(kinds);
        drop(names);
        if self.status.phase.as_deref() != Some(phase.as_str()) {
            self.status.phase = Some(phase.as_str().into());
            self.dirty = true;
        }
        for (type_, c) in [
            ("Initialized", &conds.initialized),
            ("ContainersReady", &conds.containers_ready),
            ("Ready", &conds.ready),
        ] {
            self.set_condition(type_, c.status, c.reason, c.message.as_deref());
        }
        if phase.is_terminal() && self.sandbox.is_some() {
            self.set_condition("PodReadyToStartContainers", false, None, None);
        }
    }

    /// Readiness without a readiness probe: ready as soon as started.
    pub(super) fn update_readiness(&mut self) {
        for c in self.ctrs.iter_mut() {
            let running = c.running() && c.stop_deadline.is_none();
            if !c.probes.has(ProbeKind::Readiness) && c.kind != Kind::Init {
                let ready = running && c.status.started == Some(true);
                if c.status.ready != ready {
                    c.status.ready = ready;
                    self.dirty = true;
                }
            } else if !running && c.status.ready {
                c.status.ready = false;
                self.dirty = true;
            }
        }
    }

    /// What the planner sees of each container now.
    pub(super) fn views(&self, now: Instant) -> Vec<ContainerView> {
        self.ctrs
            .iter()
            .map(|c| ContainerView {
                kind: Some(c.kind),
                running: c.running(),
                started: c.status.started == Some(true),
                done: c.done,
                succeeded: terminated_ok(&c.status),
                backoff_left: c
                    .finished
                    .map(|f| c.backoff.remaining(f, now))
                    .unwrap_or_default(),
                waiting_reason: c
                    .status
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone()),
            })
            .collect()
    }

    /// Every regular container finished and will not run again.
    pub(super) fn regular_done(&self) -> bool {
        let mut regular = self
            .ctrs
            .iter()
            .filter(|c| c.kind == Kind::Regular)
            .peekable();
        regular.peek().is_some() && regular.all(|c| c.done && !c.running())
    }
}

pub(super) fn terminated_ok(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}
