//! start, state, kill, delete, list, ps, pause/resume: the operations on a container
//! that already exists, each under the container's lock.
use super::cgroups::{self, CgroupManager};
use super::create::remove_cgroup;
use super::error::{Result, RuntimeError};
use super::hooks::{self, HookKind};
use super::state::{self, ContainerRecord, State, Status};
use super::{config, log, sys, Runtime};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use std::path::PathBuf;

impl Runtime {
    pub(super) fn load(&self, id: &str) -> Result<(PathBuf, ContainerRecord)> {
        config::validate_id(id).map_err(|_| RuntimeError::NotFound(id.to_string()))?;
        let dir = self.container_dir(id);
        let rec = ContainerRecord::load(&dir, id)?;
        Ok((dir, rec))
    }

    fn lock(&self, id: &str) -> Result<crate::util::FileLock> {
        config::validate_id(id).map_err(|_| RuntimeError::NotFound(id.to_string()))?;
        let dir = self.container_dir(id);
        if !dir.join(state::STATE_FILE).exists() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        let p = dir.join(state::LOCK_FILE);
        crate::util::FileLock::exclusive(&p).map_err(|e| RuntimeError::io("lock", p, e))
    }

    /// The config.json the container was created from (kept in its state dir).
    pub fn spec_of(&self, id: &str) -> Result<Spec> {
        let p = self.container_dir(id).join(state::CONFIG_FILE);
        let raw = std::fs::read(&p).map_err(|e| RuntimeError::io("read", p.clone(), e))?;
        config::parse_spec(&p, &raw)
    }

    /// The stored record (pid, cgroup, bundle) of a container.
    pub fn record(&self, id: &str) -> Result<ContainerRecord> {
        Ok(self.load(id)?.1)
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str) -> Result<State> {
        let (dir, rec) = self.load(id)?;
        Ok(rec.oci_state(rec.status(&dir)))
    }

    /// Lets a created container's init exec the user program; runs poststart hooks.
    pub fn start(&self, id: &str) -> Result<()> {
        let _lock = self.lock(id)?;
        let (dir, rec) = self.load(id)?;
        match rec.status(&dir) {
            Status::Created => {}
            s => {
                return Err(RuntimeError::BadState {
                    id: id.into(),
                    msg: format!("cannot start a container that is {s}"),
                })
            }
        }
        let fifo = dir.join(state::FIFO_FILE);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| RuntimeError::io("open exec fifo", fifo.clone(), e))?;
        use std::io::Write;
        (&f).write_all(b"0")
            .map_err(|e| RuntimeError::io("write exec fifo", fifo.clone(), e))?;
        drop(f);
        let _ = std::fs::remove_file(&fifo);
        let spec = self.spec_of(id)?;
        if !hooks::hooks_of(&spec, HookKind::Poststart).is_empty() {
            let st = rec.oci_state(Status::Running);
            if let Err(e) = hooks::run_hooks(&spec, HookKind::Poststart, &st) {
                log::warn(&e.to_string());
            }
        }
        Ok(())
    }

    pub(super) fn cgroup_of(&self, rec: &ContainerRecord) -> Option<Box<dyn CgroupManager>> {
        let p = rec.cgroups_path.as_ref()?;
        match cgroups::open(p) {
            Ok(m) => Some(m),
            Err(e) => {
                log::warn(&format!("container {}: cgroup {p}: {e}", rec.id));
                None
            }
        }
    }

    /// Sends `sig` to the container init, or with `all` to every process in its cgroup.
    pub fn kill(&self, id: &str, sig: Signal, all: bool) -> Result<()> {
        let (dir, rec) = self.load(id)?;
        let status = rec.status(&dir);
        if status == Status::Stopped && !all {
            return Err(RuntimeError::BadState {
                id: id.into(),
                // runc's words: containerd and podman match them to tell "already stopped".
                msg: "container not running".into(),
            });
        }
        if all {
            if let Some(cg) = self.cgroup_of(&rec) {
                for p in cg.pids()? {
                    let _ = kill(Pid::from_raw(p), sig);
                }
                if status == Status::Paused {
                    let _ = cg.freeze(false);
                }
                return Ok(());
            }
        }
        if status == Status::Stopped {
            return Ok(());
        }
        kill(Pid::from_raw(rec.pid), sig)
            .map_err(|e| RuntimeError::sys(format!("kill {} (pid {})", sig, rec.pid), e))
    }

    /// Removes a container: refuses a running one unless `force` (then SIGKILLs it).
    /// Removes its cgroup and state, and runs poststop hooks.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let _lock = self.lock(id)?;
        let (dir, rec) = self.load(id)?;
        let status = rec.status(&dir);
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(RuntimeError::BadState {
                id: id.into(),
                msg: format!("cannot delete a container that is {status} (use --force)"),
            });
        }
        let cg = self.cgroup_of(&rec);
        if status != Status::Stopped {
            let pidfd = sys::pidfd_open(rec.pid).ok();
            let _ = kill(Pid::from_raw(rec.pid), Signal::SIGKILL);
            if let Some(cg) = &cg {
                if status == Status::Paused {
                    let _ = cg.freeze(false);
                }
            }
            match pidfd {
                Some(fd) => {
                    if !sys::pidfd_wait(&fd, 10_000) {
                        log::warn(&format!("container {id}: init {} did not exit", rec.pid));
                    }
                }
                None => wait_gone(&rec),
            }
        }
        if let Some(cg) = &cg {
            // Without a pid namespace, other processes outlive init: kill them too.
            if let Ok(pids) = cg.pids() {
                for p in pids {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
            remove_cgroup(cg.as_ref());
        }
        if let Ok(spec) = self.spec_of(id) {
            if !hooks::hooks_of(&spec, HookKind::Poststop).is_empty() {
                let st = rec.oci_state(Status::Stopped);
                if let Err(e) = hooks::run_hooks(&spec, HookKind::Poststop, &st) {
                    log::warn(&e.to_string());
                }
            }
        }
        std::fs::remove_dir_all(&dir).map_err(|e| RuntimeError::io("remove state", dir, e))
    }

    /// Every container under the root, sorted by id.
    pub fn list(&self) -> Result<Vec<State>> {
        let d = self.containers_dir();
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io("list", d, e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            match self.state(&id) {
                Ok(s) => out.push(s),
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => log::warn(&e.to_string()),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Pids of the container's processes (its cgroup, else init and its descendants).
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (dir, rec) = self.load(id)?;
        if rec.status(&dir) == Status::Stopped {
            return Ok(Vec::new());
        }
        if let Some(cg) = self.cgroup_of(&rec) {
            let mut p = cg.pids()?;
            p.sort_unstable();
            return Ok(p);
        }
        let mut out = vec![rec.pid];
        let mut i = 0;
        while i < out.len() {
            let pid = out[i];
            if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
                for t in tasks.flatten() {
                    let f = t.path().join("children");
                    if let Ok(s) = std::fs::read_to_string(f) {
                        out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
                    }
                }
            }
            i += 1;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Freezes (`pause`) or thaws (`resume`) every process of the container.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        let _lock = self.lock(id)?;
        let (dir, mut rec) = self.load(id)?;
        let status = rec.status(&dir);
        let ok = if paused {
            status == Status::Running
        } else {
            status == Status::Paused
        };
        if !ok {
            return Err(RuntimeError::BadState {
                id: id.into(),
                msg: format!("container is {status}"),
            });
        }
        let cg = self.cgroup_of(&rec).ok_or_else(|| RuntimeError::BadState {
            id: id.into(),
            msg: "container has no cgroup to freeze".into(),
        })?;
        cg.freeze(paused)?;
        rec.paused = paused;
        rec.save(&dir)
    }

    /// Applies new resources to a running container's cgroup (`update`); device rules
    /// given replace the config's (the program is swapped without a gap on v2).
    pub fn update(&self, id: &str, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let _lock = self.lock(id)?;
        let (_, rec) = self.load(id)?;
        let cg = self.cgroup_of(&rec).ok_or_else(|| RuntimeError::BadState {
            id: id.into(),
            msg: "container has no cgroup".into(),
        })?;
        let Some(new_rules) = res.devices().as_deref() else {
            cg.set(res)?;
            return Ok(());
        };
        // New device rules take the place of the config's, with linux.devices and runc's
        // defaults around them as at create: containerd sends the spec's own list (a
        // lone deny-all) with every resource update, which must not take /dev/null away.
        let mut res = res.clone();
        res.set_devices(Some(super::create::device_rules(
            &self.spec_of(id)?,
            Some(new_rules),
        )));
        cg.set(&res)?;
        Ok(())
    }

    /// Cgroup usage figures of a container.
    pub fn stats(&self, id: &str) -> Result<cgroups::CgroupStats> {
        let (_, rec) = self.load(id)?;
        let cg = self.cgroup_of(&rec).ok_or_else(|| RuntimeError::BadState {
            id: id.into(),
            msg: "container has no cgroup".into(),
        })?;
        Ok(cg.stats()?)
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// Polls until the init process is gone (kernels without pidfd_open).
fn wait_gone(rec: &ContainerRecord) {
    for _ in 0..2000 {
        if !rec.init_alive() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
