//! Re-adoption: a supervisor the agent started after its predecessor died takes the pod
//! over as it stands. The sandbox and the running containers are kept (same pids, no
//! restart counted); their log pipes, stdin and pidfds come back from the agent's vault;
//! an exit that happened meanwhile is recorded with the code the pidfd still holds.
use super::container::LogPump;
use super::logs::{self, CriLineWriter, LogFile, LogLimits, SharedLog};
use super::sandbox::Sandbox;
use super::store;
use super::worker::Worker;
use crate::handoff::pidfd::{ExitStatus, ProcessHandle};
use crate::handoff::vault::{self as handoff, Lent, Request};
use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub(super) use crate::handoff::connect_agent;

/// The name a pod has in the agent's vault: its directory's.
fn vault_key(w: &Worker) -> String {
    w.args
        .pod_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Worker {
    /// Takes over the pod from its dead supervisor; false when there is no live sandbox
    /// to take over (then the pod starts afresh).
    pub(super) fn adopt_pod(&mut self) -> bool {
        let status_file = self.args.pod_dir.join(store::STATUS_FILE);
        let Ok(status) = store::read_json::<PodStatus>(&status_file) else {
            return false;
        };
        let Some(sb) = Sandbox::adopt(&self.runtime, &self.args, &self.pod) else {
            return false;
        };
        self.pod_files = sb.files.clone();
        self.sandbox = Some(sb);
        self.status = status;
        if let Ok(node) = crate::node::NodeStore::new(&self.args.data_dir).load() {
            self.learn_node(&node);
        }
        if self.prepare_volumes().is_err() {
            return false;
        }
        let mut lent = self.take_from_agent();
        let mut exited = Vec::new();
        for c in 0..self.ctrs.len() {
            if let Some(st) = self.adopt_container(c, &mut lent) {
                exited.push((c, st));
            }
        }
        if let (Some(secs), Some(t)) = (self.spec().active_deadline_seconds, self.started_wall()) {
            self.active_deadline = Some(super::pod_state::after(t, secs));
        }
        eprintln!(
            "supervisor: adopted the pod ({} containers ran on)",
            self.ctrs.iter().filter(|c| c.pid.is_some()).count()
        );
        for (c, st) in exited {
            let signal = match st {
                ExitStatus::Signaled(s) => Some(s),
                ExitStatus::Exited(_) => None,
            };
            self.on_exit(c, st.exit_code(), signal);
        }
        self.dirty = true;
        true
    }

    /// A pod whose sandbox is gone (a reboot, pause killed) starts afresh in a new
    /// sandbox, as kubelet does after a node restart: what is left of the old one is
    /// swept, and each container that ran before restarts with its restart count going up
    /// and lastState saying its run ended unseen (exit code 255, reason Unknown).
    pub(super) fn restart_lost_pod(&mut self) {
        let status_file = self.args.pod_dir.join(store::STATUS_FILE);
        let restored = self.args.pod_dir.join(store::RESTORED_STATUS_FILE);
        let old = store::read_json::<PodStatus>(&status_file)
            .or_else(|_| store::read_json::<PodStatus>(&restored));
        let _ = std::fs::remove_file(&restored);
        super::leftovers::remove_host_state(
            &self.args.root,
            &self.args.data_dir,
            &self.args.pod_dir,
            &self.pod,
        );
        let Ok(old) = old else {
            return;
        };
        for c in 0..self.ctrs.len() {
            let Some(cs) = last_status(&old, &self.ctrs[c].spec.name) else {
                continue;
            };
            let Some(attempt) = attempt_of(&cs) else {
                continue; // never started: nothing to carry over
            };
            let ctr = &mut self.ctrs[c];
            ctr.attempts = attempt;
            ctr.status.restart_count = cs.restart_count;
            ctr.status.last_state = Some(lost_run(&cs));
            ctr.finished = Some(Instant::now());
        }
    }

    /// When the pod started, as an Instant of this process (its status has the wall time).
    fn started_wall(&self) -> Option<Instant> {
        let t = self.status.start_time.as_ref()?;
        Some(instant_of(t))
    }

    /// Everything the agent keeps for this pod, by container id.
    fn take_from_agent(&mut self) -> BTreeMap<String, Lent> {
        let key = vault_key(self);
        let Some(sock) = self.agent.as_ref() else {
            return BTreeMap::new();
        };
        match handoff::take(sock.as_fd(), &key) {
            Ok(v) => v.into_iter().map(|l| (l.container.clone(), l)).collect(),
            Err(e) => {
                eprintln!("supervisor: taking the pod's fds from the agent: {e}");
                BTreeMap::new()
            }
        }
    }

    /// Restores container `c` from its last status; Some(exit) when its run ended while
    /// no supervisor watched it.
    fn adopt_container(
        &mut self,
        c: usize,
        lent: &mut BTreeMap<String, Lent>,
    ) -> Option<ExitStatus> {
        let name = self.ctrs[c].spec.name.clone();
        let cs = last_status(&self.status, &name)?;
        self.ctrs[c].attempts = attempt_of(&cs).unwrap_or(0);
        self.ctrs[c].status = cs.clone();
        let running = cs.state.as_ref().and_then(|s| s.running.as_ref());
        let Some(run) = running else {
            self.restore_finished(c, &cs);
            return None;
        };
        let id = cs
            .container_id
            .as_deref()?
            .trim_start_matches("podrun://")
            .to_string();
        let mut fds: BTreeMap<String, OwnedFd> = lent
            .remove(&id)
            .map(|l| l.fds.into_iter().collect())
            .unwrap_or_default();
        let recorded = self.runtime.record(&id).ok();
        let process = fds
            .remove("pidfd")
            .zip(recorded.as_ref())
            .and_then(|(fd, rec)| ProcessHandle::from_fd(fd, rec.pid).ok())
            .or_else(|| recorded.and_then(|r| ProcessHandle::open(r.pid, Some(r.pid_start)).ok()));
        let ctr = &mut self.ctrs[c];
        ctr.id = Some(id.clone());
        ctr.started = Some(
            run.started_at
                .as_ref()
                .map(instant_of)
                .unwrap_or_else(Instant::now),
        );
        ctr.termination_file = Some(self.args.pod_dir.join("termination").join(&id));
        let Some(process) = process else {
            // Gone, and nothing kept its exit status: kubelet's word for that is 255.
            ctr.pid = Some(0);
            return Some(ExitStatus::Exited(255));
        };
        ctr.pid = Some(process.pid());
        if process.exited() {
            let st = process.exit_status().unwrap_or(ExitStatus::Exited(255));
            ctr.process = Some(process);
            return Some(st);
        }
        ctr.process = Some(process);
        self.restore_streams(c, fds);
        self.ctrs[c].exec_process = self.bundle_process(&id);
        let now = Instant::now();
        self.ctrs[c].probes.reset(now, self.started_at);
        None
    }

    /// A container that was not running: waiting or finished, as its status says.
    fn restore_finished(&mut self, c: usize, cs: &ContainerStatus) {
        let ctr = &mut self.ctrs[c];
        let terminated = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        ctr.finished = Some(Instant::now());
        if let Some(t) = terminated {
            let policy = super::pod_state::RestartPolicy::of(
                self.pod.spec.as_ref().map_or(&Default::default(), |s| s),
            );
            let restart = super::pod_state::restarts_after(ctr.kind, policy, t.exit_code);
            ctr.done = !restart || (ctr.kind == super::pod_state::Kind::Init && t.exit_code == 0);
        }
    }

    /// The container's OCI process (for exec probes and hooks), from its bundle.
    fn bundle_process(&self, id: &str) -> Option<oci_spec::runtime::Process> {
        let store = self.images.as_ref()?;
        let path = store.container_dir(id).join("config.json");
        let spec: oci_spec::runtime::Spec =
            serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        spec.process().clone()
    }

    /// Log pumps and stdin from the fds the agent kept, appending to the current log.
    fn restore_streams(&mut self, c: usize, mut fds: BTreeMap<String, OwnedFd>) {
        let restart = self.ctrs[c].status.restart_count;
        let path = logs::container_log_path(&self.log_dir, &self.ctrs[c].spec.name, restart);
        let mut pumps = Vec::new();
        let limits = LogLimits::load(&self.args.data_dir);
        match LogFile::open(&path, limits).map(SharedLog::new) {
            Ok(file) => {
                for (slot, stream) in [("log0", "stdout"), ("log1", "stderr")] {
                    let Some(fd) = fds.remove(slot) else { continue };
                    pumps.push(LogPump {
                        fd,
                        writer: CriLineWriter::new(stream),
                        file: file.clone(),
                    });
                }
            }
            Err(e) => eprintln!("supervisor: {}: {e}", path.display()),
        }
        self.ctrs[c].logs = pumps;
        self.ctrs[c].stdin_keep = fds.remove("stdin");
    }

    /// Gives the agent copies of a started container's pidfd, output pipes and stdin, so
    /// that they outlive this supervisor.
    pub(super) fn deposit(&mut self, c: usize) {
        let key = vault_key(self);
        if self.agent.is_none() {
            // An agent may have started since (a connect that fails costs one syscall).
            self.agent = connect_agent(&self.args.root);
        }
        let (Some(sock), Some(id), Some(pid)) = (
            self.agent.as_ref(),
            self.ctrs[c].id.clone(),
            self.ctrs[c].pid,
        ) else {
            return;
        };
        let ctr = &mut self.ctrs[c];
        if ctr.process.is_none() {
            ctr.process = ProcessHandle::open(pid, None).ok();
        }
        let mut names = Vec::new();
        let mut fds = Vec::new();
        if let Some(p) = ctr.process.as_ref() {
            names.push("pidfd".to_string());
            fds.push(p.as_fd().as_raw_fd());
        }
        for (i, p) in ctr.logs.iter().enumerate() {
            names.push(format!("log{i}"));
            fds.push(p.fd.as_raw_fd());
        }
        if let Some(s) = ctr.stdin_keep.as_ref() {
            names.push("stdin".into());
            fds.push(s.as_raw_fd());
        }
        let req = Request::Deposit {
            pod: key,
            container: id,
            names,
        };
        if let Err(e) = handoff::call(sock.as_fd(), &req, &fds) {
            eprintln!("supervisor: the agent did not keep the container's fds: {e}");
            self.agent = None;
        }
    }

    /// A node agent started (it sends SIGHUP to the supervisors it finds): connect to it
    /// and hand it every running container's fds, so that they outlive this supervisor.
    pub(super) fn agent_came(&mut self) {
        // The node may have changed too: the agent sends SIGHUP for that as well.
        self.noexecute.notified();
        if self.agent.as_ref().is_some_and(connection_alive) {
            return;
        }
        self.agent = connect_agent(&self.args.root);
        for c in 0..self.ctrs.len() {
            if self.ctrs[c].pid.is_some() {
                self.deposit(c);
            }
        }
    }

    /// The container's run is over and drained: the agent may drop what it kept.
    pub(super) fn release_deposit(&mut self, c: usize) {
        let key = vault_key(self);
        let (Some(sock), Some(id)) = (self.agent.as_ref(), self.ctrs[c].id.clone()) else {
            return;
        };
        let req = Request::Release {
            pod: key,
            container: id,
        };
        if handoff::call(sock.as_fd(), &req, &[]).is_err() {
            self.agent = None;
        }
    }

    /// The pod is gone: the agent drops everything it kept for it.
    pub(super) fn forget_deposits(&mut self) {
        let key = vault_key(self);
        if let Some(sock) = self.agent.take() {
            let _ = handoff::call(sock.as_fd(), &Request::Forget { pod: key }, &[]);
        }
    }

    /// Keeps a copy of the status under the data dir whenever a container's run changes
    /// (started, restarted, ended): what a restore after a reboot carries restart counts
    /// over from. Probe results and readiness do not cost a disk write.
    pub(super) fn persist_status(&mut self, st: &PodStatus) {
        let runs: Vec<(&str, i32, Option<&str>)> = self
            .ctrs
            .iter()
            .map(|c| {
                (
                    c.spec.name.as_str(),
                    c.status.restart_count,
                    c.status.container_id.as_deref(),
                )
            })
            .collect();
        let key = format!("{runs:?}");
        if key == self.persisted {
            return;
        }
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let path = store::durable_status_path(&self.args.data_dir, &uid);
        let written = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .map_err(|e| store::StoreError::Io {
                path: path.clone(),
                source: e,
            })
            .and_then(|_| store::write_json(&path, st));
        if written.is_ok() {
            self.persisted = key;
        }
    }

    /// Containers this supervisor did not start (adopted) end as their pidfd says: no
    /// SIGCHLD comes for them.
    pub(super) fn reap_adopted(&mut self) {
        for c in 0..self.ctrs.len() {
            let ctr = &self.ctrs[c];
            // Our own children are reported by waitpid, with their status.
            if ctr.pid.is_none_or(is_our_child) {
                continue;
            }
            let done = ctr
                .process
                .as_ref()
                .filter(|p| p.exited())
                .map(settled_exit);
            let Some(st) = done else { continue };
            let st = st.unwrap_or(ExitStatus::Exited(255));
            let signal = match st {
                ExitStatus::Signaled(s) => Some(s),
                ExitStatus::Exited(_) => None,
            };
            self.on_exit(c, st.exit_code(), signal);
        }
    }

    /// The pidfds of adopted containers, to wake the loop when one ends.
    pub(super) fn adopted_fds(&self) -> Vec<i32> {
        self.ctrs
            .iter()
            .filter(|c| c.pid.is_some_and(|p| !is_our_child(p)))
            .filter_map(|c| c.process.as_ref().map(|p| p.as_fd().as_raw_fd()))
            .collect()
    }
}

/// The exit status of an exited process we are not the parent of. The kernel files it
/// with the pidfd when the parent (the agent, as subreaper) reaps the zombie, which it
/// does at once: wait for that briefly. None when it never comes (a kernel before 6.15).
fn settled_exit(p: &ProcessHandle) -> Option<ExitStatus> {
    for _ in 0..200 {
        if let Some(st) = p.exit_status() {
            return Some(st);
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.pid())).unwrap_or_default();
        if !stat.contains(") Z ") {
            return p.exit_status(); // reaped between the two looks, or gone for good
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Whether the agent at the other end of `sock` is still there: it never speaks first,
/// so anything readable is its hang-up.
fn connection_alive(sock: &OwnedFd) -> bool {
    let mut pfd = [nix::poll::PollFd::new(
        sock.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    matches!(
        nix::poll::poll(&mut pfd, nix::poll::PollTimeout::ZERO),
        Ok(0)
    )
}

/// Is `pid` a child of this process (so waitpid reaps it)?
fn is_our_child(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    // Fields after the command: state, ppid.
    rest.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id())
}

/// lastState for a run nobody saw end: as the container runtime reports a container
/// whose shim vanished with the node (exit code 255, reason Unknown).
fn lost_run(cs: &ContainerStatus) -> k8s_openapi::api::core::v1::ContainerState {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated};
    let state = cs.state.as_ref();
    let started_at = state
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.clone())
        .or_else(|| {
            state
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.started_at.clone())
        });
    if let Some(t) = state.and_then(|s| s.terminated.clone()) {
        return ContainerState {
            terminated: Some(t),
            ..Default::default()
        };
    }
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: 255,
            reason: Some("Unknown".into()),
            started_at,
            finished_at: Some(crate::util::now_time()),
            container_id: cs.container_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The status container `name` had, among regular and init containers.
fn last_status(status: &PodStatus, name: &str) -> Option<ContainerStatus> {
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|s| s.name == name)
        .cloned()
}

/// The attempt number in a container id (`<uid8>-<name>-<attempt>`).
fn attempt_of(cs: &ContainerStatus) -> Option<u32> {
    cs.container_id.as_deref()?.rsplit('-').next()?.parse().ok()
}

/// A wall-clock time as an Instant of this process (in the past, or now).
fn instant_of(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Instant {
    let ago = crate::util::now().duration_since(t.0);
    let secs = ago.as_secs_f64().max(0.0);
    Instant::now()
        .checked_sub(Duration::from_secs_f64(secs))
        .unwrap_or_else(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_is_the_last_part_of_the_container_id() {
        let cs = ContainerStatus {
            container_id: Some("podrun://0a1b2c3d-web-3".into()),
            ..Default::default()
        };
        assert_eq!(attempt_of(&cs), Some(3));
        assert_eq!(attempt_of(&ContainerStatus::default()), None);
    }

    #[test]
    fn a_status_is_found_among_init_and_regular_containers() {
        let status = PodStatus {
            init_container_statuses: Some(vec![ContainerStatus {
                name: "init".into(),
                ..Default::default()
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "web".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(last_status(&status, "init").is_some());
        assert!(last_status(&status, "web").is_some());
        assert!(last_status(&status, "other").is_none());
    }

    #[test]
    fn our_own_children_are_told_from_strangers() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        assert!(is_our_child(child.id() as i32));
        assert!(!is_our_child(1));
        let _ = child.kill();
        let _ = child.wait();
    }
}
