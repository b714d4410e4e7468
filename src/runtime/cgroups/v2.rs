//! The cgroup v2 (unified) manager: one directory, controllers delegated from above,
//! device rules as an eBPF program attached to it.
use super::devices_bpf::{self, DeviceRules};
use super::fsio::{self, rs_err};
use super::{CgroupError, CgroupManager, CgroupMode, CgroupStats, Result};
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Controllers podrun delegates down the tree when the parent offers them.
const WANTED: &[&str] = &[
    "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

pub(crate) struct V2Manager {
    mountpoint: PathBuf,
    dir: PathBuf,
    created: AtomicBool,
}

fn unsupported(field: &str, reason: &str) -> CgroupError {
    CgroupError::UnsupportedField {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// Makes `cur`'s children get every wanted controller `cur` itself has. Writes only
/// what is missing; a controller the kernel refuses to delegate is left out (the write
/// of one of its files then fails naming the field).
pub(crate) fn delegate_controllers(cur: &Path) -> Result<()> {
    let available = fsio::read(cur, "cgroup.controllers")?;
    let enabled = fsio::read(cur, "cgroup.subtree_control")?;
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| WANTED.contains(c) && !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all = missing.join(" ");
    if fsio::write(cur, "cgroup.subtree_control", &all, "controller delegation").is_err() {
        for m in &missing {
            let _ = fsio::write(cur, "cgroup.subtree_control", m, "controller delegation");
        }
    }
    Ok(())
}

/// Creates `dir` below `mountpoint`, delegating controllers at every level on the way.
/// Returns the directories created (undone here on failure).
pub(crate) fn create_delegated(mountpoint: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.is_dir() {
        return Ok(Vec::new());
    }
    let rel = dir.strip_prefix(mountpoint).map_err(|_| CgroupError::Io {
        path: dir.to_path_buf(),
        msg: format!("not below the cgroup2 mount {}", mountpoint.display()),
    })?;
    // Another process may remove an empty parent between our mkdirs (a QoS class dir, a
    // test's parent): when a step fails because a directory on the way vanished, walk
    // again from the top, a few times.
    let mut attempts = 0;
    loop {
        let mut created = Vec::new();
        let mut cur = mountpoint.to_path_buf();
        let res = (|| {
            for comp in rel.components() {
                delegate_controllers(&cur)?;
                cur.push(comp);
                match std::fs::create_dir(&cur) {
                    Ok(()) => created.push(cur.clone()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(CgroupError::Io {
                            path: cur.clone(),
                            msg: format!("creating cgroup: {e}"),
                        })
                    }
                }
            }
            Ok(())
        })();
        match res {
            Ok(()) => return Ok(created),
            Err(e) => {
                fsio::rmdirs(&created);
                let vanished = !cur.is_dir() || cur.parent().is_some_and(|p| !p.is_dir());
                attempts += 1;
                if !vanished || attempts >= 5 {
                    return Err(e);
                }
            }
        }
    }
}

impl V2Manager {
    pub(crate) fn new(mountpoint: PathBuf, dir: PathBuf) -> Self {
        V2Manager {
            mountpoint,
            dir,
            created: AtomicBool::new(false),
        }
    }

    fn w(&self, file: &str, value: &str, field: &str) -> Result<()> {
        fsio::write(&self.dir, file, value, &format!("linux.resources.{field}"))
    }

    fn set_cpu(&self, cpu: &LinuxCpu) -> Result<()> {
        if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
            return Err(unsupported(
                "cpu.realtimeRuntime",
                "real-time scheduling groups do not exist in cgroup v2",
            ));
        }
        if let Some(shares) = cpu.shares() {
            let weight = super::cpu_shares_to_weight(shares);
            if weight != 0 {
                self.w("cpu.weight", &weight.to_string(), "cpu.shares")?;
            }
        }
        // As runc: "quota period" (quota ≤ 0 is "max"); quota alone keeps the period.
        let (quota, period) = (cpu.quota(), cpu.period());
        if quota.is_some_and(|q| q != 0) || period.is_some_and(|p| p != 0) {
            let mut v = match quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            if let Some(p) = period.filter(|p| *p != 0) {
                v.push_str(&format!(" {p}"));
            }
            self.w("cpu.max", &v, "cpu.quota")?;
        }
        if let Some(burst) = cpu.burst() {
            self.w("cpu.max.burst", &burst.to_string(), "cpu.burst")?;
        }
        if let Some(idle) = cpu.idle() {
            self.w("cpu.idle", &idle.to_string(), "cpu.idle")?;
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            self.w("cpuset.cpus", cpus, "cpu.cpus")?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            self.w("cpuset.mems", mems, "cpu.mems")?;
        }
        Ok(())
    }

    fn set_memory(&self, mem: &LinuxMemory) -> Result<()> {
        if mem.swappiness().is_some() {
            return Err(unsupported(
                "memory.swappiness",
                "there is no per-cgroup swappiness in cgroup v2",
            ));
        }
        if mem.disable_oom_killer() == Some(true) {
            return Err(unsupported(
                "memory.disableOOMKiller",
                "the OOM killer cannot be disabled per cgroup in cgroup v2",
            ));
        }
        // kernel / kernelTCP are deprecated in the spec and ignored, as runc does.
        let limit = mem.limit().unwrap_or(0);
        let swap = mem.swap().unwrap_or(0);
        if mem.check_before_update() == Some(true) && limit > 0 {
            let current = fsio::read_u64_opt(&self.dir, "memory.current")?.unwrap_or(0);
            if limit as u64 <= current {
                return Err(CgroupError::InvalidValue {
                    field: "memory.limit".into(),
                    value: limit.to_string(),
                    reason: format!("not above the current usage {current}"),
                });
            }
        }
        let swap_max = swap_v2(limit, swap)?;
        if let Some(v) = swap_max {
            let exists = self.dir.join("memory.swap.max").exists();
            if exists {
                self.w("memory.swap.max", &v, "memory.swap")?;
            } else if v != "max" {
                return Err(unsupported(
                    "memory.swap",
                    "swap accounting is not available (no memory.swap.max)",
                ));
            }
        }
        if limit != 0 {
            let v = if limit < 0 {
                "max".into()
            } else {
                limit.to_string()
            };
            self.w("memory.max", &v, "memory.limit")?;
        }
        if let Some(r) = mem.reservation().filter(|r| *r != 0) {
            let v = if r < 0 { "max".into() } else { r.to_string() };
            self.w("memory.low", &v, "memory.reservation")?;
        }
        Ok(())
    }

    fn set_block_io(&self, bio: &LinuxBlockIo) -> Result<()> {
        // A zero leaf weight is "unset" (docker always sends one); any other is refused.
        if bio.leaf_weight().is_some_and(|w| w != 0) {
            return Err(unsupported(
                "blockIO.leafWeight",
                "no leaf weight in cgroup v2",
            ));
        }
        let bfq = self.dir.join("io.bfq.weight").exists();
        if let Some(w) = bio.weight().filter(|w| *w != 0) {
            if bfq {
                self.w("io.bfq.weight", &w.to_string(), "blockIO.weight")?;
            } else {
                self.w(
                    "io.weight",
                    &blkio_weight_to_io(w).to_string(),
                    "blockIO.weight",
                )?;
            }
        }
        for d in bio.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let (file, v) = if bfq {
                    ("io.bfq.weight", w as u64)
                } else {
                    ("io.weight", blkio_weight_to_io(w))
                };
                let line = format!("{}:{} {v}", d.major(), d.minor());
                self.w(file, &line, "blockIO.weightDevice")?;
            }
        }
        let throttles = [
            (
                "rbps",
                bio.throttle_read_bps_device(),
                "blockIO.throttleReadBpsDevice",
            ),
            (
                "wbps",
                bio.throttle_write_bps_device(),
                "blockIO.throttleWriteBpsDevice",
            ),
            (
                "riops",
                bio.throttle_read_iops_device(),
                "blockIO.throttleReadIOPSDevice",
            ),
            (
                "wiops",
                bio.throttle_write_iops_device(),
                "blockIO.throttleWriteIOPSDevice",
            ),
        ];
        for (key, devs, field) in throttles {
            for d in devs.iter().flatten() {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                let line = format!("{}:{} {key}={rate}", d.major(), d.minor());
                self.w("io.max", &line, field)?;
            }
        }
        Ok(())
    }

    /// Polls cgroup.events until "frozen" reads `want` (freezing waits for every task to
    /// reach a safe point; slow under emulation).
    fn wait_frozen(&self, want: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let want = if want { "1" } else { "0" };
        loop {
            let ev = fsio::read(&self.dir, "cgroup.events")?;
            let state = ev
                .lines()
                .find_map(|l| l.strip_prefix("frozen "))
                .unwrap_or("");
            if state == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Io {
                    path: self.dir.join("cgroup.events"),
                    msg: format!("frozen state still {state:?} after 10 s (wanted {want})"),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// OCI swap is memory+swap; cgroup v2 wants swap alone (runc's conversion). None: leave.
fn swap_v2(limit: i64, swap: i64) -> Result<Option<String>> {
    let invalid = |reason: &str| CgroupError::InvalidValue {
        field: "memory.swap".into(),
        value: swap.to_string(),
        reason: reason.into(),
    };
    match (limit, swap) {
        (-1, 0) | (_, -1) => Ok(Some("max".into())),
        (_, 0) => Ok(None),
        (-1, s) => Ok(Some(s.to_string())),
        (0, _) => Err(invalid("needs memory.limit too")),
        (l, s) if s < l => Err(invalid("memory+swap is below memory.limit")),
        (l, s) => Ok(Some((s - l).to_string())),
    }
}

/// blkio weight (10..1000) → io.weight (1..10000), as runc converts it.
fn blkio_weight_to_io(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

impl CgroupManager for V2Manager {
    fn apply(&self, pid: i32) -> Result<()> {
        self.create()?;
        fsio::write(
            &self.dir,
            "cgroup.procs",
            &pid.to_string(),
            "joining the cgroup",
        )
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        self.create()?;
        if let Some(cpu) = r.cpu() {
            self.set_cpu(cpu)?;
        }
        if let Some(mem) = r.memory() {
            self.set_memory(mem)?;
        }
        if let Some(pids) = r.pids() {
            let v = if pids.limit() > 0 {
                MaxValue::Value(pids.limit())
            } else {
                MaxValue::Max
            };
            PidController::new(self.dir.clone(), self.mountpoint.clone(), true)
                .set_pid_max(v)
                .map_err(|e| rs_err(&self.dir, "pids.max", "linux.resources.pids.limit", e))?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let file = format!("hugetlb.{}.max", h.page_size());
            self.w(&file, &h.limit().to_string(), "hugepageLimits")?;
        }
        if let Some(bio) = r.block_io() {
            self.set_block_io(bio)?;
        }
        if r.network().is_some() {
            return Err(unsupported(
                "network",
                "net_cls/net_prio do not exist in cgroup v2",
            ));
        }
        for (dev, l) in r.rdma().iter().flatten() {
            let mut v = dev.clone();
            if let Some(h) = l.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            self.w("rdma.max", &v, "rdma")?;
        }
        for (k, v) in r.unified().iter().flatten() {
            if k.contains('/') || (k.starts_with("cgroup.") && k != "cgroup.freeze") {
                return Err(CgroupError::InvalidValue {
                    field: format!("unified.{k}"),
                    value: v.clone(),
                    reason: "not a controller file of this cgroup".into(),
                });
            }
            self.w(k, v, &format!("unified.{k}"))?;
        }
        if let Some(devs) = r.devices() {
            let rules = DeviceRules::from_oci(devs)?;
            devices_bpf::apply(&self.dir, &rules)?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        fsio::procs(&self.dir)
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let f = FreezerController::new(self.dir.clone(), self.mountpoint.clone(), true);
        let res = if frozen { f.freeze() } else { f.thaw() };
        res.map_err(|e| rs_err(&self.dir, "cgroup.freeze", "freezing", e))?;
        self.wait_frozen(frozen)
    }

    fn stats(&self) -> Result<CgroupStats> {
        let d = &self.dir;
        if !d.is_dir() {
            return Err(CgroupError::Io {
                path: d.clone(),
                msg: "no such cgroup".into(),
            });
        }
        let events = fsio::read_opt(d, "memory.events")?.unwrap_or_default();
        let cpu = fsio::read_opt(d, "cpu.stat")?.unwrap_or_default();
        Ok(CgroupStats {
            memory_usage_bytes: fsio::read_u64_opt(d, "memory.current")?.unwrap_or(0),
            memory_limit_bytes: fsio::read_u64_opt(d, "memory.max")?,
            oom_kill_count: fsio::keyed(&events, "oom_kill"),
            cpu_usage_nanos: fsio::keyed(&cpu, "usage_usec") * 1000,
            pids_current: fsio::read_u64_opt(d, "pids.current")?.unwrap_or(0),
            pids_limit: fsio::read_u64_opt(d, "pids.max")?,
        })
    }

    fn remove(&self) -> Result<()> {
        // Detached explicitly; should that fail, removing the cgroup frees them anyway.
        let _ = devices_bpf::remove(&self.dir);
        fsio::rmdir_retry([self.dir.as_path()])?;
        self.created.store(false, Ordering::Release);
        Ok(())
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn create(&self) -> Result<()> {
        if self.created.load(Ordering::Acquire) {
            return Ok(());
        }
        create_delegated(&self.mountpoint, &self.dir)?;
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    fn mode(&self) -> CgroupMode {
        CgroupMode::Unified
    }

    fn controller_path(&self, _controller: &str) -> Option<PathBuf> {
        Some(self.dir.clone())
    }

    fn unified_path(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let events = fsio::read_opt(&self.dir, "memory.events")?.unwrap_or_default();
        Ok(fsio::keyed(&events, "oom_kill"))
    }

    fn exists(&self) -> bool {
        self.dir.is_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_is_converted_like_runc() {
        let mib = 1 << 20;
        assert_eq!(
            swap_v2(64 * mib, 96 * mib).unwrap().unwrap(),
            (32 * mib).to_string()
        );
        assert_eq!(swap_v2(64 * mib, 64 * mib).unwrap().unwrap(), "0");
        assert_eq!(swap_v2(64 * mib, -1).unwrap().unwrap(), "max");
        assert_eq!(swap_v2(-1, 0).unwrap().unwrap(), "max");
        assert_eq!(swap_v2(64 * mib, 0).unwrap(), None);
        assert!(swap_v2(64 * mib, 32 * mib).is_err());
        assert!(swap_v2(0, 32 * mib).is_err());
    }

    #[test]
    fn blkio_weight_maps_to_io_weight() {
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10000);
        assert_eq!(blkio_weight_to_io(500), 4950);
    }
}
