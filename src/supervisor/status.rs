//! The pod's status: PodStatus and its conditions derived from the containers' state
//! (kubelet's getPhase and generateAPIPodStatus), written to status.json atomically.
use super::pod_state::{self, ContainerView, CtrState, Kind, RestartPolicy};
use super::probes::ProbeKind;
use super::store;
use super::worker::{now_time, Worker};
use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Instant;

/// kubelet's order of the pod's conditions, as kubectl lists them.
const CONDITION_ORDER: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Sets condition `type_` in `conds` (kept in kubelet's order); its transition time
/// moves only when it changes. True when something changed.
pub fn set_condition(
    conds: &mut Vec<PodCondition>,
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: Time,
) -> bool {
    let s = if status { "True" } else { "False" };
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == s && c.reason.as_deref() == reason && c.message.as_deref() == message {
            return false;
        }
        c.status = s.into();
        c.reason = reason.map(Into::into);
        c.message = message.map(Into::into);
        c.last_transition_time = Some(now);
        return true;
    }
    conds.push(PodCondition {
        type_: type_.into(),
        status: s.into(),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        last_transition_time: Some(now),
        ..Default::default()
    });
    let rank = |t: &str| {
        CONDITION_ORDER
            .iter()
            .position(|o| *o == t)
            .unwrap_or(CONDITION_ORDER.len())
    };
    conds.sort_by_key(|c| rank(&c.type_));
    true
}

/// Whether the pod is bound to this node (PodScheduled True).
pub fn is_bound(status: &PodStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True")
}

/// The PodStatus written for the pod: `status` with the containers' statuses, init
/// containers (sidecars among them) apart. Until the pod is bound no kubelet has seen
/// it: no container statuses, so kubectl's STATUS column reads the phase (Pending), not
/// PodInitializing.
pub fn status_to_write(status: &PodStatus, ctrs: &[(Kind, &ContainerStatus)]) -> PodStatus {
    let mut st = status.clone();
    let bound = is_bound(status);
    let init: Vec<ContainerStatus> = ctrs
        .iter()
        .filter(|(k, _)| *k != Kind::Regular)
        .map(|(_, s)| (*s).clone())
        .collect();
    let regular: Vec<ContainerStatus> = ctrs
        .iter()
        .filter(|(k, _)| *k == Kind::Regular)
        .map(|(_, s)| (*s).clone())
        .collect();
    st.init_container_statuses = (bound && !init.is_empty()).then_some(init);
    st.container_statuses = bound.then_some(regular);
    st
}

/// A container's readiness now: without a readiness probe (and not an init container)
/// ready once running and started; with one, whatever it said last while running, and
/// never when not running (or stopping).
pub fn readiness(kind: Kind, has_probe: bool, running: bool, started: bool, ready: bool) -> bool {
    if !has_probe && kind != Kind::Init {
        running && started
    } else {
        ready && running
    }
}

impl Worker {
    pub(super) fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: Option<&str>,
        message: Option<&str>,
    ) {
        let conds = self.status.conditions.get_or_insert_with(Vec::new);
        if set_condition(conds, type_, status, reason, message, now_time()) {
            self.dirty = true;
        }
    }

    /// Writes status.json (atomically) when something changed; the first time it shows
    /// a bound pod finished, Pending pods are told there may be room now.
    pub(super) fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        let ctrs: Vec<(Kind, &ContainerStatus)> =
            self.ctrs.iter().map(|c| (c.kind, &c.status)).collect();
        let st = status_to_write(&self.status, &ctrs);
        if store::write_json(&self.args.pod_dir.join(store::STATUS_FILE), &st).is_ok() {
            self.dirty = false;
        }
        self.persist_status(&st);
        if !self.end_announced && self.is_terminal() && is_bound(&self.status) {
            self.end_announced = true;
            store::PodStore::new(&self.args.root).announce_end();
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
            let running = c.running() && c.stopping.is_none() && c.stop_request.is_none();
            let has_probe = c.probes.has(ProbeKind::Readiness);
            let started = c.status.started == Some(true);
            let ready = readiness(c.kind, has_probe, running, started, c.status.ready);
            if c.status.ready != ready {
                c.status.ready = ready;
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
                waiting_reason: match CtrState::of(&c.status) {
                    Some(CtrState::Waiting { reason }) => Some(reason),
                    _ => None,
                },
                stop: c.stopping,
                stop_request: c.stop_request,
                has_pre_stop: c
                    .spec
                    .lifecycle
                    .as_ref()
                    .is_some_and(|l| l.pre_stop.is_some()),
                stop_signal: Some(c.stop_signal),
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

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
