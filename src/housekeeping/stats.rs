//! What pods and the node use, read from the cgroups directly (v1 and v2) as kubelet's
//! summary API reports it: CPU in nanocores over a short window, memory as the working
//! set (usage − inactive_file), in /stats/summary's JSON shape.
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One cgroup's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub cpu_nanos: u64,
    pub memory_usage: u64,
    pub working_set: u64,
}

/// kubelet's CPUStats.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: String,
    pub usage_nano_cores: u64,
    pub usage_core_nano_seconds: u64,
}

/// kubelet's MemoryStats (the fields podrun measures).
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: String,
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
}

/// A cgroup's directories for cpu accounting and memory (the same one on v2).
#[derive(Debug, Clone)]
pub struct CgroupFiles {
    pub cpu: Option<PathBuf>,
    pub memory: Option<PathBuf>,
}

impl CgroupFiles {
    /// The cgroup at `path` (an OCI cgroupsPath such as `/kubepods/besteffort/pod<uid>`).
    pub fn of(path: &str) -> Option<CgroupFiles> {
        let cg = crate::runtime::cgroups::open(path).ok()?;
        let cpu = cg
            .controller_path("cpuacct")
            .or_else(|| cg.controller_path("cpu"));
        Some(CgroupFiles {
            cpu,
            memory: cg.controller_path("memory"),
        })
    }

    /// Reads the counters now (zeros for what the host does not account).
    pub fn sample(&self) -> Sample {
        let cpu_nanos = self.cpu.as_deref().map(cpu_nanos).unwrap_or(0);
        let (usage, inactive) = self.memory.as_deref().map(memory).unwrap_or((0, 0));
        Sample {
            cpu_nanos,
            memory_usage: usage,
            working_set: usage.saturating_sub(inactive),
        }
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn stat_field(file: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v1 cpuacct.usage (ns), v2 cpu.stat usage_usec.
fn cpu_nanos(dir: &Path) -> u64 {
    read_u64(&dir.join("cpuacct.usage"))
        .or_else(|| stat_field(&dir.join("cpu.stat"), "usage_usec").map(|u| u * 1000))
        .unwrap_or(0)
}

/// (usage, inactive_file): v1 memory.usage_in_bytes and total_inactive_file, v2
/// memory.current and inactive_file.
fn memory(dir: &Path) -> (u64, u64) {
    let stat = dir.join("memory.stat");
    if let Some(u) = read_u64(&dir.join("memory.usage_in_bytes")) {
        return (u, stat_field(&stat, "total_inactive_file").unwrap_or(0));
    }
    let u = read_u64(&dir.join("memory.current")).unwrap_or(0);
    (u, stat_field(&stat, "inactive_file").unwrap_or(0))
}

/// The node's counters: the root cgroup's CPU (v2 root cpu.stat, v1 cpuacct.usage), and
/// memory from /proc/meminfo as cAdvisor's root: (MemTotal − MemFree) − Inactive(file).
pub fn node_sample() -> Sample {
    let cpu = CgroupFiles::of("/")
        .and_then(|c| c.cpu)
        .map(|d| cpu_nanos(&d));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|k| k * 1024)
        })
    };
    let total = kib("MemTotal").unwrap_or(0);
    let usage = total.saturating_sub(kib("MemFree").unwrap_or(0));
    Sample {
        cpu_nanos: cpu.unwrap_or_else(proc_stat_nanos),
        memory_usage: usage,
        working_set: usage.saturating_sub(kib("Inactive(file)").unwrap_or(0)),
    }
}

/// Busy CPU time from /proc/stat (user … steal), for hosts with no root cpu accounting.
fn proc_stat_nanos() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| *x)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    busy * (1_000_000_000 / hz.max(1))
}

/// Something to sample: a label and how to read its counters.
pub type Target<T> = (T, Box<dyn Fn() -> Sample>);

/// Two samples of every target `window` apart: each one's CPU (nanocores) and memory at
/// the second.
pub fn measure<T>(targets: &[Target<T>], window: Duration) -> Vec<(CpuStats, MemoryStats)> {
    let start = Instant::now();
    let first: Vec<Sample> = targets.iter().map(|(_, f)| f()).collect();
    std::thread::sleep(window);
    let elapsed = start.elapsed().as_nanos().max(1);
    let time = crate::util::now_rfc3339();
    targets
        .iter()
        .zip(first)
        .map(|((_, f), a)| {
            let b = f();
            let used = u128::from(b.cpu_nanos.saturating_sub(a.cpu_nanos));
            let nano_cores = u64::try_from(used * 1_000_000_000 / elapsed).unwrap_or(u64::MAX);
            (
                CpuStats {
                    time: time.clone(),
                    usage_nano_cores: nano_cores,
                    usage_core_nano_seconds: b.cpu_nanos,
                },
                MemoryStats {
                    time: time.clone(),
                    usage_bytes: b.memory_usage,
                    working_set_bytes: b.working_set,
                },
            )
        })
        .collect()
}

/// kubectl top's CPU column: millicores, `5m`.
pub fn cpu_cell(nano_cores: u64) -> String {
    format!("{}m", nano_cores / 1_000_000)
}

/// kubectl top's memory column: mebibytes, `12Mi`.
pub fn memory_cell(bytes: u64) -> String {
    format!("{}Mi", bytes / (1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_in_kubectls_units() {
        assert_eq!(cpu_cell(1_500_000), "1m");
        assert_eq!(cpu_cell(250_000_000), "250m");
        assert_eq!(memory_cell(12 << 20), "12Mi");
    }

    #[test]
    fn the_window_turns_cpu_time_into_nanocores() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let f: Box<dyn Fn() -> Sample> = Box::new(|| Sample {
            cpu_nanos: N.fetch_add(50_000_000, Ordering::SeqCst),
            memory_usage: 10,
            working_set: 7,
        });
        let out = measure(&[((), f)], Duration::from_millis(100));
        // 50 ms of CPU over ~100 ms: about half a core.
        let cores = out[0].0.usage_nano_cores as f64 / 1e9;
        assert!((0.3..=0.55).contains(&cores), "{cores}");
        assert_eq!(out[0].1.working_set_bytes, 7);
    }
}
