//! Admission of the pod on this node, and its re-admission while Pending: retried when
//! node.json changes or another pod ends (inotify on the node file's and the pods'
//! directories), not by polling.
use super::store;
use super::worker::{SupervisorError, Worker};
use crate::admission::{self, Decision};
use crate::node::NodeStore;
use crate::spec;
use k8s_openapi::api::core::v1::Pod;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use std::os::fd::AsRawFd;
use std::time::Duration;

impl Worker {
    /// Waits until the pod fits this node (re-checking every second), recording
    /// FailedScheduling once per distinct reason. Returns false when deleted meanwhile.
    pub(super) fn schedule(&mut self, sigfd: &SignalFd) -> Result<bool, SupervisorError> {
        let nodes = NodeStore::new(&self.args.data_dir);
        let pods = store::PodStore::new(&self.args.root);
        let mut last_message = String::new();
        loop {
            let node = nodes
                .load()
                .map_err(|e| SupervisorError::Sandbox(e.to_string()))?;
            let decision = {
                // The pods counted and our binding under one lock: a concurrent admission
                // either sees us bound or runs after us (read before it, 200 concurrent
                // `up`s admitted 186 past maxPods 110).
                let _lock = pods.lock()?;
                let others: Vec<Pod> = pods
                    .list()
                    .into_iter()
                    .filter(|r| r.dir != self.args.pod_dir)
                    .filter(|r| is_bound_and_active(&r.pod))
                    .map(|r| r.pod)
                    .collect();
                let d = admission::admit(&self.pod, &node, &others);
                if let Decision::Admitted(_) = &d {
                    // Bind while holding the lock, so a concurrent admission counts us.
                    self.set_condition("PodScheduled", true, None, None);
                    self.status.host_ip = crate::network::host_ip();
                    self.status.host_ips = self
                        .status
                        .host_ip
                        .clone()
                        .map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip }]);
                    self.flush();
                }
                d
            };
            self.node_name = crate::node::node_name(&node).to_string();
            self.node_mem = node_capacity(&node, "memory") as u64;
            self.node_alloc = spec::env::NodeAllocatable {
                cpu_milli: node_allocatable(&node, "cpu", true),
                memory_bytes: node_allocatable(&node, "memory", false),
                ephemeral_storage_bytes: node_allocatable(&node, "ephemeral-storage", false),
            };
            match decision {
                Decision::Admitted(a) => {
                    if let Some(spec) = self.pod.spec.as_mut() {
                        spec.node_name = Some(a.node.clone());
                    }
                    let _ = store::write_json(&self.args.pod_dir.join(store::POD_FILE), &self.pod);
                    if a.scheduled {
                        self.event(
                            "Normal",
                            "Scheduled",
                            "default-scheduler",
                            "",
                            &a.scheduled_message(&self.pod),
                        );
                    }
                    return Ok(true);
                }
                Decision::Unschedulable(u) => {
                    if u.message != last_message {
                        self.event(
                            "Warning",
                            "FailedScheduling",
                            "default-scheduler",
                            "",
                            &u.message,
                        );
                        self.set_condition(
                            "PodScheduled",
                            false,
                            Some("Unschedulable"),
                            Some(&u.message),
                        );
                        last_message = u.message.clone();
                    }
                }
                Decision::BoundElsewhere { message, .. } => {
                    if message != last_message {
                        self.event(
                            "Warning",
                            "FailedScheduling",
                            "default-scheduler",
                            "",
                            &message,
                        );
                        self.set_condition(
                            "PodScheduled",
                            false,
                            Some("Unschedulable"),
                            Some(&message),
                        );
                        last_message = message.clone();
                    }
                }
                Decision::SchedulingGated { .. } => {
                    self.set_condition(
                        "PodScheduled",
                        false,
                        Some(admission::SCHEDULING_GATED_REASON),
                        Some(admission::SCHEDULING_GATED_MESSAGE),
                    );
                }
                Decision::Rejected(r) => {
                    self.event("Warning", &r.reason, "kubelet", "", &r.message);
                    self.status.phase = Some("Failed".into());
                    self.status.reason = Some(r.reason.clone());
                    self.status.message = Some(format!("Pod was rejected: {}", r.message));
                    self.dirty = true;
                    self.flush();
                    self.signal_ready("ok");
                    return Ok(false);
                }
                Decision::Invalid(errs) => {
                    let msg = errs.to_string();
                    self.status.phase = Some("Failed".into());
                    self.status.message = Some(msg.clone());
                    self.dirty = true;
                    self.flush();
                    self.signal_ready(&format!("error: {msg}"));
                    return Ok(false);
                }
            }
            self.flush();
            self.signal_ready("ok");
            // Sleep a second, but wake for a deletion.
            if wait_signal(sigfd, Duration::from_secs(1))?.is_some_and(|s| s != Signal::SIGCHLD) {
                return Ok(false);
            }
        }
    }
}

/// A pod bound to this node that still holds resources (not Succeeded/Failed).
pub fn is_bound_and_active(pod: &Pod) -> bool {
    let st = pod.status.as_ref();
    let scheduled = st.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    });
    let phase = st.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    scheduled && phase != "Succeeded" && phase != "Failed"
}

fn quantity(node: &k8s_openapi::api::core::v1::Node, which: &str, key: &str, milli: bool) -> i64 {
    let q = node.status.as_ref().and_then(|s| {
        if which == "capacity" {
            s.capacity.as_ref()
        } else {
            s.allocatable.as_ref()
        }
    });
    let Some(q) = q.and_then(|m| m.get(key)) else {
        return 0;
    };
    let v = if milli {
        crate::manifest::quantity::parse_milli(&q.0)
    } else {
        crate::manifest::quantity::parse_value(&q.0)
    };
    v.map(|v| v as i64).unwrap_or(0)
}

fn node_capacity(node: &k8s_openapi::api::core::v1::Node, key: &str) -> i64 {
    quantity(node, "capacity", key, false)
}

fn node_allocatable(node: &k8s_openapi::api::core::v1::Node, key: &str, milli: bool) -> i64 {
    quantity(node, "allocatable", key, milli)
}

/// Waits up to `timeout` for a signal on the signalfd.
pub(super) fn wait_signal(
    sigfd: &SignalFd,
    timeout: Duration,
) -> Result<Option<Signal>, SupervisorError> {
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
