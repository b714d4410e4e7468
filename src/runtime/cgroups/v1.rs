//! The cgroup v1 manager (also the hybrid layout): one directory per hierarchy, plus the
//! cgroup2 hierarchy beside them when the host mounts one (process placement only).
use super::devices_bpf::{self, DeviceRules};
use super::fsio::{self, rs_err};
use super::layout::V1Hierarchy;
use super::{CgroupError, CgroupManager, CgroupMode, CgroupStats, Result};
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::devices::{DevicePermissions, DeviceType, DevicesController};
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxResources};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub(crate) struct V1Manager {
    /// Each hierarchy with this cgroup's directory in it.
    dirs: Vec<(&'static V1Hierarchy, PathBuf)>,
    /// Hybrid hosts: (cgroup2 mount point, this cgroup's directory there).
    unified: Option<(PathBuf, PathBuf)>,
    created: AtomicBool,
}

fn unsupported(field: &str, reason: &str) -> CgroupError {
    CgroupError::UnsupportedField {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// v1 reports "no limit" as the largest page-aligned counter value.
const V1_UNLIMITED: u64 = 1 << 62;

/// A new cpuset cgroup starts with no cpus and no mems (nothing could run in it):
/// copy the parent's, as runc does. A parent still empty (created by a concurrent
/// podrun that has not filled it yet) is filled first, up to the hierarchy root.
fn init_cpuset(dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        init_cpuset_file(dir, file, 0)?;
    }
    Ok(())
}

fn init_cpuset_file(dir: &Path, file: &str, depth: u32) -> Result<String> {
    let v = fsio::read(dir, file)?;
    if !v.is_empty() || depth > 64 {
        return Ok(v);
    }
    let Some(parent) = dir.parent() else {
        return Ok(v);
    };
    let pv = init_cpuset_file(parent, file, depth + 1)?;
    fsio::write(dir, file, &pv, "copying the parent's cpuset")?;
    Ok(pv)
}

impl V1Manager {
    pub(crate) fn new(
        dirs: Vec<(&'static V1Hierarchy, PathBuf)>,
        unified: Option<(PathBuf, PathBuf)>,
    ) -> Self {
        V1Manager {
            dirs,
            unified,
            created: AtomicBool::new(false),
        }
    }

    /// (mount point, directory) of the hierarchy that has `controller`.
    fn hier(&self, controller: &str) -> Option<(&Path, &Path)> {
        self.dirs
            .iter()
            .find(|(h, _)| h.has(controller))
            .map(|(h, d)| (h.mount.mountpoint.as_path(), d.as_path()))
    }

    fn need(&self, controller: &str, field: &str) -> Result<(PathBuf, PathBuf)> {
        self.hier(controller)
            .map(|(m, d)| (m.to_path_buf(), d.to_path_buf()))
            .ok_or_else(|| {
                unsupported(
                    field,
                    &format!("the host mounts no {controller} cgroup v1 hierarchy"),
                )
            })
    }

    fn set_cpu(&self, cpu: &LinuxCpu) -> Result<()> {
        let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            let (m, d) = self.need("cpuset", "cpu.cpus")?;
            let c = CpuSetController::new(d.clone(), m, false);
            if let Some(cpus) = cpus {
                c.set_cpus(cpus)
                    .map_err(|e| rs_err(&d, "cpuset.cpus", "linux.resources.cpu.cpus", e))?;
            }
            if let Some(mems) = mems {
                c.set_mems(mems)
                    .map_err(|e| rs_err(&d, "cpuset.mems", "linux.resources.cpu.mems", e))?;
            }
        }
        let wants_cpu = cpu.shares().is_some_and(|s| s != 0)
            || cpu.quota().is_some_and(|q| q != 0)
            || cpu.period().is_some_and(|p| p != 0)
            || cpu.burst().is_some()
            || cpu.idle().is_some()
            || cpu.realtime_runtime().is_some()
            || cpu.realtime_period().is_some();
        if !wants_cpu {
            return Ok(());
        }
        let (m, d) = self.need("cpu", "cpu")?;
        let c = CpuController::new(d.clone(), m, false);
        let field = |f: &str| format!("linux.resources.cpu.{f}");
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            c.set_shares(shares)
                .map_err(|e| rs_err(&d, "cpu.shares", &field("shares"), e))?;
        }
        // The kernel checks quota against period at each write: write the period first,
        // and if it is refused with the old quota in place, the quota first (as runc).
        let period = cpu.period().filter(|p| *p != 0);
        let quota = cpu.quota().filter(|q| *q != 0);
        let period_ok = match period {
            Some(p) => c.set_cfs_period(p).is_ok(),
            None => true,
        };
        if let Some(q) = quota {
            c.set_cfs_quota(q)
                .map_err(|e| rs_err(&d, "cpu.cfs_quota_us", &field("quota"), e))?;
        }
        if let (false, Some(p)) = (period_ok, period) {
            c.set_cfs_period(p)
                .map_err(|e| rs_err(&d, "cpu.cfs_period_us", &field("period"), e))?;
        }
        if let Some(b) = cpu.burst() {
            fsio::write(&d, "cpu.cfs_burst_us", &b.to_string(), &field("burst"))?;
        }
        if let Some(i) = cpu.idle() {
            fsio::write(&d, "cpu.idle", &i.to_string(), &field("idle"))?;
        }
        if let Some(p) = cpu.realtime_period() {
            c.set_rt_period_us(p)
                .map_err(|e| rs_err(&d, "cpu.rt_period_us", &field("realtimePeriod"), e))?;
        }
        if let Some(r) = cpu.realtime_runtime() {
            c.set_rt_runtime(r)
                .map_err(|e| rs_err(&d, "cpu.rt_runtime_us", &field("realtimeRuntime"), e))?;
        }
        Ok(())
    }

    fn set_memory(&self, mem: &LinuxMemory) -> Result<()> {
        let (m, d) = self.need("memory", "memory")?;
        let c = MemController::new(d.clone(), m, false);
        let field = |f: &str| format!("linux.resources.memory.{f}");
        let limit = mem.limit().unwrap_or(0);
        let mut swap = mem.swap().unwrap_or(0);
        // Unlimited memory with swap unsaid means unlimited swap too (runc).
        if limit == -1 && swap == 0 {
            swap = -1;
        }
        if mem.check_before_update() == Some(true) && limit > 0 {
            let current = fsio::read_u64_opt(&d, "memory.usage_in_bytes")?.unwrap_or(0);
            if limit as u64 <= current {
                return Err(CgroupError::InvalidValue {
                    field: "memory.limit".into(),
                    value: limit.to_string(),
                    reason: format!("not above the current usage {current}"),
                });
            }
        }
        let memsw = d.join("memory.memsw.limit_in_bytes").exists();
        if swap != 0 && !memsw {
            if swap != -1 {
                return Err(unsupported(
                    "memory.swap",
                    "swap accounting is off (no memory.memsw.limit_in_bytes)",
                ));
            }
            swap = 0;
        }
        if swap > 0 && limit > 0 && swap < limit {
            return Err(CgroupError::InvalidValue {
                field: "memory.swap".into(),
                value: swap.to_string(),
                reason: "memory+swap is below memory.limit".into(),
            });
        }
        let set_limit = || {
            c.set_limit(limit)
                .map_err(|e| rs_err(&d, "memory.limit_in_bytes", &field("limit"), e))
        };
        let set_swap = || {
            c.set_memswap_limit(swap)
                .map_err(|e| rs_err(&d, "memory.memsw.limit_in_bytes", &field("swap"), e))
        };
        // The kernel keeps memsw ≥ limit at every write: raise memsw first when it grows.
        if limit != 0 && swap != 0 {
            let current = fsio::read_u64_opt(&d, "memory.limit_in_bytes")?.unwrap_or(0);
            if swap == -1 || (current as i64) < swap {
                set_swap()?;
                set_limit()?;
            } else {
                set_limit()?;
                set_swap()?;
            }
        } else if limit != 0 {
            set_limit()?;
        } else if swap != 0 {
            set_swap()?;
        }
        if let Some(r) = mem.reservation().filter(|r| *r != 0) {
            c.set_soft_limit(r)
                .map_err(|e| rs_err(&d, "memory.soft_limit_in_bytes", &field("reservation"), e))?;
        }
        if let Some(s) = mem.swappiness() {
            if s > 100 {
                return Err(CgroupError::InvalidValue {
                    field: "memory.swappiness".into(),
                    value: s.to_string(),
                    reason: "must be 0..100".into(),
                });
            }
            c.set_swappiness(s)
                .map_err(|e| rs_err(&d, "memory.swappiness", &field("swappiness"), e))?;
        }
        if mem.disable_oom_killer() == Some(true) {
            c.disable_oom_killer()
                .map_err(|e| rs_err(&d, "memory.oom_control", &field("disableOOMKiller"), e))?;
        }
        // `kernel` is deprecated and ignored, as runc does; runc still writes kernelTCP.
        if let Some(tcp) = mem.kernel_tcp().filter(|v| *v != 0) {
            let v = if tcp < 0 {
                "-1".into()
            } else {
                tcp.to_string()
            };
            fsio::write(
                &d,
                "memory.kmem.tcp.limit_in_bytes",
                &v,
                &field("kernelTCP"),
            )?;
        }
        Ok(())
    }

    /// The cgroup2 directory whose eBPF program holds the device rules: on a hybrid host
    /// without a v1 devices controller, or when PODRUN_DEVICES_BPF=1 asks for it.
    fn devices_bpf_dir(&self) -> Option<&Path> {
        let (_, unified) = self.unified.as_ref()?;
        let forced = std::env::var_os("PODRUN_DEVICES_BPF").is_some_and(|v| v == "1");
        (forced || self.hier("devices").is_none()).then_some(unified.as_path())
    }

    fn set_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        // Checked whichever way they are applied, so both fail alike on a bad rule.
        let emulated = DeviceRules::from_oci(rules)?;
        if let Some(dir) = self.devices_bpf_dir() {
            return Ok(devices_bpf::apply(dir, &emulated)?);
        }
        if rules.is_empty() {
            return Ok(());
        }
        let (m, d) = self.need("devices", "devices")?;
        let c = DevicesController::new(d.clone(), m);
        for (i, r) in rules.iter().enumerate() {
            let field = format!("linux.resources.devices[{i}]");
            let typ = match r.typ().map(|t| t.as_str().to_string()).as_deref() {
                None | Some("a") => DeviceType::All,
                Some("c") | Some("u") => DeviceType::Char,
                Some("b") => DeviceType::Block,
                Some(other) => {
                    return Err(CgroupError::InvalidValue {
                        field: format!("devices[{i}].type"),
                        value: other.to_string(),
                        reason: "the devices cgroup knows a, b and c".into(),
                    })
                }
            };
            let access = r.access().clone().unwrap_or_else(|| "rwm".into());
            let perms =
                DevicePermissions::from_str(&access).map_err(|_| CgroupError::InvalidValue {
                    field: format!("devices[{i}].access"),
                    value: access.clone(),
                    reason: "letters r, w, m".into(),
                })?;
            let (maj, min) = (r.major().unwrap_or(-1), r.minor().unwrap_or(-1));
            let res = if r.allow() {
                c.allow_device(typ, maj, min, &perms)
            } else {
                c.deny_device(typ, maj, min, &perms)
            };
            let file = if r.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            res.map_err(|e| rs_err(&d, file, &field, e))?;
        }
        Ok(())
    }

    fn set_block_io(&self, bio: &LinuxBlockIo) -> Result<()> {
        let (_, d) = self.need("blkio", "blockIO")?;
        let f = |s: &str| format!("linux.resources.blockIO.{s}");
        // A zero weight means "not set" (docker always sends weight 0), as runc reads it.
        if let Some(w) = bio.weight().filter(|w| *w != 0) {
            fsio::write(&d, "blkio.weight", &w.to_string(), &f("weight"))?;
        }
        if let Some(w) = bio.leaf_weight().filter(|w| *w != 0) {
            fsio::write(&d, "blkio.leaf_weight", &w.to_string(), &f("leafWeight"))?;
        }
        for dev in bio.weight_device().iter().flatten() {
            if let Some(w) = dev.weight().filter(|w| *w != 0) {
                let v = format!("{}:{} {w}", dev.major(), dev.minor());
                fsio::write(&d, "blkio.weight_device", &v, &f("weightDevice"))?;
            }
            if let Some(w) = dev.leaf_weight().filter(|w| *w != 0) {
                let v = format!("{}:{} {w}", dev.major(), dev.minor());
                fsio::write(&d, "blkio.leaf_weight_device", &v, &f("weightDevice"))?;
            }
        }
        let throttles = [
            (
                bio.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "throttleReadBpsDevice",
            ),
            (
                bio.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "throttleWriteBpsDevice",
            ),
            (
                bio.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "throttleReadIOPSDevice",
            ),
            (
                bio.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "throttleWriteIOPSDevice",
            ),
        ];
        for (devs, file, name) in throttles {
            for dev in devs.iter().flatten() {
                let v = format!("{}:{} {}", dev.major(), dev.minor(), dev.rate());
                fsio::write(&d, file, &v, &f(name))?;
            }
        }
        Ok(())
    }

    fn freezer_dir(&self) -> Result<(PathBuf, PathBuf)> {
        self.hier("freezer")
            .map(|(m, d)| (m.to_path_buf(), d.to_path_buf()))
            .ok_or_else(|| CgroupError::Unsupported("the host mounts no freezer hierarchy".into()))
    }

    /// Every directory: the v1 ones, then the unified one.
    fn all_dirs(&self) -> impl Iterator<Item = (&Path, &Path)> {
        self.dirs
            .iter()
            .map(|(h, d)| (h.mount.mountpoint.as_path(), d.as_path()))
            .chain(self.unified.iter().map(|(m, d)| (m.as_path(), d.as_path())))
    }
}

impl CgroupManager for V1Manager {
    fn apply(&self, pid: i32) -> Result<()> {
        self.create()?;
        let pid = pid.to_string();
        for (_, d) in self.all_dirs() {
            fsio::write(d, "cgroup.procs", &pid, "joining the cgroup")?;
        }
        Ok(())
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
            let (m, d) = self.need("pids", "pids")?;
            let v = if pids.limit() > 0 {
                MaxValue::Value(pids.limit())
            } else {
                MaxValue::Max
            };
            PidController::new(d.clone(), m, false)
                .set_pid_max(v)
                .map_err(|e| rs_err(&d, "pids.max", "linux.resources.pids.limit", e))?;
        }
        if let Some(devs) = r.devices() {
            self.set_devices(devs)?;
        }
        if let Some(limits) = r.hugepage_limits().as_ref().filter(|l| !l.is_empty()) {
            let (_, d) = self.need("hugetlb", "hugepageLimits")?;
            for h in limits {
                let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
                fsio::write(
                    &d,
                    &file,
                    &h.limit().to_string(),
                    "linux.resources.hugepageLimits",
                )?;
            }
        }
        if let Some(bio) = r.block_io() {
            self.set_block_io(bio)?;
        }
        if let Some(net) = r.network() {
            if let Some(id) = net.class_id() {
                let (_, d) = self.need("net_cls", "network.classID")?;
                fsio::write(
                    &d,
                    "net_cls.classid",
                    &id.to_string(),
                    "linux.resources.network.classID",
                )?;
            }
            for p in net.priorities().iter().flatten() {
                let (_, d) = self.need("net_prio", "network.priorities")?;
                let v = format!("{} {}", p.name(), p.priority());
                fsio::write(
                    &d,
                    "net_prio.ifpriomap",
                    &v,
                    "linux.resources.network.priorities",
                )?;
            }
        }
        for (dev, l) in r.rdma().iter().flatten() {
            let (_, d) = self.need("rdma", "rdma")?;
            let mut v = dev.clone();
            if let Some(h) = l.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            fsio::write(&d, "rdma.max", &v, "linux.resources.rdma")?;
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(unsupported(
                "unified",
                "cgroup v2 files cannot be set on a cgroup v1 host",
            ));
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        // Any hierarchy holds every process; prefer one that always exists.
        let d = self
            .hier("pids")
            .or_else(|| self.hier("memory"))
            .map(|(_, d)| d)
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()));
        match d {
            Some(d) => fsio::procs(d),
            None => Ok(Vec::new()),
        }
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let (m, d) = self.freezer_dir()?;
        let f = FreezerController::new(d.clone(), m, false);
        let want = if frozen { "FROZEN" } else { "THAWED" };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0u32;
        loop {
            // Freezing can stall on a task in an uninterruptible sleep: re-request it
            // now and then, as runc does.
            if n.is_multiple_of(50) {
                let res = if frozen { f.freeze() } else { f.thaw() };
                res.map_err(|e| rs_err(&d, "freezer.state", "freezing", e))?;
            }
            let state = fsio::read(&d, "freezer.state")?;
            if state == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                if frozen {
                    let _ = f.thaw();
                }
                return Err(CgroupError::Io {
                    path: d.join("freezer.state"),
                    msg: format!("still {state} after 10 s (wanted {want})"),
                });
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn stats(&self) -> Result<CgroupStats> {
        let mut s = CgroupStats::default();
        if !self.exists() {
            return Err(CgroupError::Io {
                path: self
                    .dirs
                    .first()
                    .map(|(_, d)| d.clone())
                    .unwrap_or_default(),
                msg: "no such cgroup".into(),
            });
        }
        if let Some((_, d)) = self.hier("memory") {
            s.memory_usage_bytes = fsio::read_u64_opt(d, "memory.usage_in_bytes")?.unwrap_or(0);
            s.memory_limit_bytes =
                fsio::read_u64_opt(d, "memory.limit_in_bytes")?.filter(|l| *l < V1_UNLIMITED);
            s.oom_kill_count = self.oom_kill_count()?;
        }
        if let Some((_, d)) = self.hier("cpuacct") {
            s.cpu_usage_nanos = fsio::read_u64_opt(d, "cpuacct.usage")?.unwrap_or(0);
        }
        if let Some((_, d)) = self.hier("pids") {
            s.pids_current = fsio::read_u64_opt(d, "pids.current")?.unwrap_or(0);
            s.pids_limit = fsio::read_u64_opt(d, "pids.max")?;
        }
        Ok(s)
    }

    fn remove(&self) -> Result<()> {
        if let Some(dir) = self.devices_bpf_dir() {
            // Should detaching fail, removing the cgroup frees the program anyway.
            let _ = devices_bpf::remove(dir);
        }
        let res = fsio::rmdir_retry(self.all_dirs().map(|(_, d)| d));
        self.created.store(false, Ordering::Release);
        res
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.all_dirs().map(|(_, d)| d.to_path_buf()).collect()
    }

    fn create(&self) -> Result<()> {
        if self.created.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut created: Vec<PathBuf> = Vec::new();
        for (h, d) in &self.dirs {
            let cpuset = h.has("cpuset");
            let res = fsio::mkdir_below(&h.mount.mountpoint, d, |new| {
                if cpuset {
                    init_cpuset(new)
                } else {
                    Ok(())
                }
            });
            match res {
                Ok(c) => created.extend(c),
                Err(e) => {
                    fsio::rmdirs(&created);
                    return Err(e);
                }
            }
        }
        if let Some((m, d)) = &self.unified {
            if let Err(e) = fsio::mkdir_below(m, d, |_| Ok(())) {
                fsio::rmdirs(&created);
                return Err(e);
            }
        }
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    fn mode(&self) -> CgroupMode {
        if self.unified.is_some() {
            CgroupMode::Hybrid
        } else {
            CgroupMode::Legacy
        }
    }

    fn controller_path(&self, controller: &str) -> Option<PathBuf> {
        self.hier(controller).map(|(_, d)| d.to_path_buf())
    }

    fn unified_path(&self) -> Option<PathBuf> {
        self.unified.as_ref().map(|(_, d)| d.clone())
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let Some((_, d)) = self.hier("memory") else {
            return Ok(0);
        };
        let text = fsio::read_opt(d, "memory.oom_control")?.unwrap_or_default();
        Ok(fsio::keyed(&text, "oom_kill"))
    }

    fn exists(&self) -> bool {
        self.dirs.first().is_some_and(|(_, d)| d.is_dir())
    }
}
