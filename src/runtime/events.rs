//! `events`: a container's cgroup statistics in runc's JSON (libcontainer/types'
//! `Event` and `Stats`, with the same field names and the same omitted-when-zero fields),
//! read from cgroup v1 (this hybrid host, as runc's v1 manager does) or cgroup v2.
use super::cgroups::{CgroupManager, CgroupMode};
use super::{Result, Runtime, RuntimeError, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

fn zero(v: &u64) -> bool {
    *v == 0
}

/// One line of `runc events`: {"type": "stats"|"oom", "id": ..., "data": ...}.
#[derive(Debug, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: BTreeMap<String, u64>,
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// USER_HZ: cpuacct.stat counts in clock ticks (runc assumes 100, as the kernel ABI does).
const CLOCK_TICKS: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / CLOCK_TICKS;

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> u64 {
    read(dir, file).map_or(0, |s| parse_u64(s.trim()))
}

/// A cgroup number; "max" (v2 unlimited) as runc reports it, u64::MAX.
fn parse_u64(s: &str) -> u64 {
    if s == "max" {
        u64::MAX
    } else {
        s.parse().unwrap_or(0)
    }
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat, memory.events).
fn keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A cpuset list ("0-3,5") as runc's []uint16.
fn cpu_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

fn numbers(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// Page sizes the kernel offers, in runc's names ("2MB", "1GB").
fn huge_page_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<(u64, String)> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = n
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kb, page_size_name(kb)))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, n)| n).collect()
}

/// runc's (units.CustomSize "%g%s" in binary units) name of a huge page size.
pub(crate) fn page_size_name(kb: u64) -> String {
    let units = ["KB", "MB", "GB", "TB", "PB"];
    let mut size = kb as f64;
    let mut i = 0;
    while size >= 1024.0 && i + 1 < units.len() {
        size /= 1024.0;
        i += 1;
    }
    format!("{size}{}", units[i])
}

/// "MAJ:MIN op value" lines (blkio.throttle.*) into runc's entries; the last "Total N"
/// line, naming no device, is left out as runc does.
fn blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

fn memory_entry(dir: &Path, prefix: &str) -> MemoryEntry {
    MemoryEntry {
        limit: read_u64(dir, &format!("{prefix}.limit_in_bytes")),
        usage: read_u64(dir, &format!("{prefix}.usage_in_bytes")),
        max: read_u64(dir, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: read_u64(dir, &format!("{prefix}.failcnt")),
    }
}

/// runc's v1 manager: every figure from the v1 hierarchies (on a hybrid host too).
fn v1_stats(cg: &dyn CgroupManager) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = cg.controller_path("cpuacct") {
        let u = &mut s.cpu.usage;
        u.total = read_u64(&d, "cpuacct.usage");
        u.percpu = read(&d, "cpuacct.usage_percpu").map_or_else(Vec::new, |t| numbers(&t));
        u.percpu_kernel =
            read(&d, "cpuacct.usage_percpu_sys").map_or_else(Vec::new, |t| numbers(&t));
        u.percpu_user =
            read(&d, "cpuacct.usage_percpu_user").map_or_else(Vec::new, |t| numbers(&t));
        let st = keyed(&read(&d, "cpuacct.stat").unwrap_or_default());
        u.kernel = st.get("system").copied().unwrap_or(0) * NS_PER_TICK;
        u.user = st.get("user").copied().unwrap_or(0) * NS_PER_TICK;
    }
    if let Some(d) = cg.controller_path("cpu") {
        let st = keyed(&read(&d, "cpu.stat").unwrap_or_default());
        s.cpu.throttling = Throttling {
            periods: st.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: st.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(d) = cg.controller_path("cpuset") {
        let c = &mut s.cpuset;
        c.cpus = cpu_list(&read(&d, "cpuset.cpus").unwrap_or_default());
        c.mems = cpu_list(&read(&d, "cpuset.mems").unwrap_or_default());
        c.cpu_exclusive = read_u64(&d, "cpuset.cpu_exclusive");
        c.mem_hardwall = read_u64(&d, "cpuset.mem_hardwall");
        c.mem_exclusive = read_u64(&d, "cpuset.mem_exclusive");
        c.memory_migrate = read_u64(&d, "cpuset.memory_migrate");
        c.memory_spread_page = read_u64(&d, "cpuset.memory_spread_page");
        c.memory_spread_slab = read_u64(&d, "cpuset.memory_spread_slab");
        c.memory_pressure = read_u64(&d, "cpuset.memory_pressure");
        c.sched_load_balance = read_u64(&d, "cpuset.sched_load_balance");
        c.sched_relax_domain_level = read(&d, "cpuset.sched_relax_domain_level")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
    }
    if let Some(d) = cg.controller_path("memory") {
        let m = &mut s.memory;
        m.usage = memory_entry(&d, "memory");
        m.swap = if d.join("memory.memsw.usage_in_bytes").exists() {
            memory_entry(&d, "memory.memsw")
        } else {
            MemoryEntry::default()
        };
        m.kernel = memory_entry(&d, "memory.kmem");
        m.kernel_tcp = memory_entry(&d, "memory.kmem.tcp");
        m.raw = keyed(&read(&d, "memory.stat").unwrap_or_default());
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
    }
    if let Some(d) = cg.controller_path("pids") {
        s.pids.current = read_u64(&d, "pids.current");
        let max = read(&d, "pids.max").unwrap_or_default();
        s.pids.limit = if max.trim() == "max" {
            0
        } else {
            parse_u64(max.trim())
        };
    }
    if let Some(d) = cg.controller_path("blkio") {
        // runc reads the CFQ files first and falls back to the throttle ones.
        let cfq = blkio_entries(&read(&d, "blkio.io_service_bytes_recursive").unwrap_or_default());
        if cfq.is_empty() {
            s.blkio.io_service_bytes_recursive = blkio_entries(
                &read(&d, "blkio.throttle.io_service_bytes_recursive").unwrap_or_default(),
            );
            s.blkio.io_serviced_recursive = blkio_entries(
                &read(&d, "blkio.throttle.io_serviced_recursive").unwrap_or_default(),
            );
        } else {
            s.blkio.io_service_bytes_recursive = cfq;
            s.blkio.io_serviced_recursive =
                blkio_entries(&read(&d, "blkio.io_serviced_recursive").unwrap_or_default());
        }
    }
    if let Some(d) = cg.controller_path("hugetlb") {
        for size in huge_page_sizes() {
            let p = format!("hugetlb.{size}");
            s.hugetlb.insert(
                size,
                Hugetlb {
                    usage: read_u64(&d, &format!("{p}.usage_in_bytes")),
                    max: read_u64(&d, &format!("{p}.max_usage_in_bytes")),
                    failcnt: read_u64(&d, &format!("{p}.failcnt")),
                },
            );
        }
    }
    s
}

/// runc's v2 manager (fs2): cpu.stat, memory.{current,max,stat,events,swap.*},
/// pids.*, io.stat, hugetlb.*.
fn v2_stats(d: &Path) -> Stats {
    let mut s = Stats::default();
    let cpu = keyed(&read(d, "cpu.stat").unwrap_or_default());
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = get(&cpu, "usage_usec") * 1000;
    s.cpu.usage.user = get(&cpu, "user_usec") * 1000;
    s.cpu.usage.kernel = get(&cpu, "system_usec") * 1000;
    s.cpu.throttling = Throttling {
        periods: get(&cpu, "nr_periods"),
        throttled_periods: get(&cpu, "nr_throttled"),
        throttled_time: get(&cpu, "throttled_usec") * 1000,
    };
    let m = &mut s.memory;
    m.raw = keyed(&read(d, "memory.stat").unwrap_or_default());
    m.cache = get(&m.raw, "file");
    let events = keyed(&read(d, "memory.events").unwrap_or_default());
    m.usage = MemoryEntry {
        limit: read_u64(d, "memory.max"),
        usage: read_u64(d, "memory.current"),
        max: 0,
        failcnt: get(&events, "max"),
    };
    // As runc: v2 swap figures are memory+swap, like v1's memsw.
    if d.join("memory.swap.current").exists() {
        m.swap = MemoryEntry {
            limit: read_u64(d, "memory.swap.max").saturating_add(m.usage.limit),
            usage: read_u64(d, "memory.swap.current") + m.usage.usage,
            max: 0,
            failcnt: 0,
        };
    }
    s.pids.current = read_u64(d, "pids.current");
    let max = read(d, "pids.max").unwrap_or_default();
    s.pids.limit = if max.trim() == "max" {
        0
    } else {
        parse_u64(max.trim())
    };
    for line in read(d, "io.stat").unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let value = v.parse().unwrap_or(0);
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    for size in huge_page_sizes() {
        let ev = keyed(&read(d, &format!("hugetlb.{size}.events")).unwrap_or_default());
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: read_u64(d, &format!("hugetlb.{size}.current")),
                max: 0,
                failcnt: get(&ev, "max"),
            },
        );
    }
    s
}

/// Statistics of one cgroup as runc reports them.
pub fn stats_of(cg: &dyn CgroupManager) -> Stats {
    match (cg.mode(), cg.unified_path()) {
        (CgroupMode::Unified, Some(d)) => v2_stats(&d),
        _ => v1_stats(cg),
    }
}

impl Runtime {
    /// runc's `events --stats` for container `id`: refused unless it is running
    /// (or paused), in runc's words.
    pub fn runc_stats(&self, id: &str) -> Result<Event> {
        let (dir, rec) = self.load(id)?;
        if rec.status(&dir) == Status::Stopped {
            return Err(RuntimeError::BadState {
                id: id.into(),
                msg: format!("container with id {id} is not running"),
            });
        }
        let cg = self.cgroup_of(&rec).ok_or_else(|| RuntimeError::BadState {
            id: id.into(),
            msg: "container has no cgroup".into(),
        })?;
        Ok(Event {
            kind: "stats",
            id: id.into(),
            data: Some(stats_of(cg.as_ref())),
        })
    }

    /// OOM kills in container `id`'s cgroup so far (for `events`' "oom" lines).
    pub fn oom_kills(&self, id: &str) -> Result<u64> {
        let (_, rec) = self.load(id)?;
        match self.cgroup_of(&rec) {
            Some(cg) => Ok(cg.oom_kill_count()?),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_named_as_runc_names_them() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }

    #[test]
    fn cpu_lists_and_blkio_lines_parse_as_runc_reads_them() {
        assert_eq!(cpu_list("0-2,5\n"), [0, 1, 2, 5]);
        let e = blkio_entries("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].major, e[0].minor, e[0].op.as_str()), (8, 0, "Read"));
    }

    #[test]
    fn zero_fields_are_left_out_where_runc_omits_them() {
        let v = serde_json::to_value(Event {
            kind: "stats",
            id: "x".into(),
            data: Some(Stats::default()),
        })
        .unwrap();
        let d = &v["data"];
        assert_eq!(
            d["cpu"]["usage"],
            serde_json::json!({"kernel": 0, "user": 0})
        );
        assert_eq!(
            d["memory"]["usage"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert_eq!(d["pids"], serde_json::json!({}));
        assert!(d["network_interfaces"].is_null());
        assert_eq!(d["hugetlb"], serde_json::json!({}));
    }
}
