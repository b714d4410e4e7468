//! `podrun top pod [NAME] [--containers]` and `podrun top node`: kubectl top's columns
//! from the cgroups over a short window; `-o json` prints kubelet's /stats/summary shape.
use super::GlobalOpts;
use crate::housekeeping::stats::{self, CgroupFiles, CpuStats, MemoryStats};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(subcommand)]
    pub what: TopWhat,
}

#[derive(Subcommand, Debug)]
pub enum TopWhat {
    /// CPU and memory of pods (of one, with NAME).
    Pod {
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// One line per container.
        #[arg(long)]
        containers: bool,
        #[command(flatten)]
        opts: TopOpts,
    },
    /// CPU and memory of the node.
    Node {
        #[command(flatten)]
        opts: TopOpts,
    },
}

#[derive(Args, Debug)]
pub struct TopOpts {
    /// table (default) or json (kubelet's /stats/summary).
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
    /// The measuring window in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub window_ms: u64,
}

type Target = stats::Target<String>;

fn target(label: String, files: CgroupFiles) -> Target {
    (label, Box::new(move || files.sample()))
}

/// The running pods asked for, each with its cgroup and its containers'.
fn pods(g: &GlobalOpts, name: Option<&str>, ns: Option<&str>) -> Vec<Pod> {
    crate::supervisor::store::PodStore::new(&g.root)
        .list()
        .into_iter()
        .map(|r| r.pod)
        .filter(|p| ns.is_none_or(|n| p.metadata.namespace.as_deref().unwrap_or("default") == n))
        .filter(|p| name.is_none_or(|n| p.metadata.name.as_deref() == Some(n)))
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect()
}

fn container_ids(p: &Pod) -> Vec<(String, String)> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .filter_map(|c| {
            let id = c.container_id.as_deref()?;
            Some((
                c.name.clone(),
                id.rsplit("://").next().unwrap_or(id).to_string(),
            ))
        })
        .collect()
}

pub fn run(g: &GlobalOpts, a: TopArgs) -> anyhow::Result<i32> {
    match a.what {
        TopWhat::Pod {
            name,
            namespace,
            all_namespaces,
            containers,
            opts,
        } => {
            let ns = (!all_namespaces).then(|| namespace.unwrap_or_else(|| "default".into()));
            let list = pods(g, name.as_deref(), ns.as_deref());
            if list.is_empty() {
                match name {
                    Some(n) => eprintln!("Error from server (NotFound): pods {n:?} not found"),
                    None => eprintln!("No resources found"),
                }
                return Ok(1);
            }
            summary(g, &list, containers, &opts, false)
        }
        TopWhat::Node { opts } => summary(g, &[], false, &opts, true),
    }
}

/// Measures the node and `pods` (their containers too) in one window, then prints.
fn summary(
    g: &GlobalOpts,
    pods: &[Pod],
    per_container: bool,
    opts: &TopOpts,
    node_table: bool,
) -> anyhow::Result<i32> {
    let mut targets: Vec<Target> = vec![("node".into(), Box::new(stats::node_sample))];
    for (i, p) in pods.iter().enumerate() {
        if let Some(f) = CgroupFiles::of(&crate::spec::resources::pod_cgroup_path(p)) {
            targets.push(target(format!("{i}"), f));
        }
        for (c, id) in container_ids(p) {
            let path = crate::spec::resources::container_cgroup_path(p, &id);
            if let Some(f) = CgroupFiles::of(&path) {
                targets.push(target(format!("{i}/{c}"), f));
            }
        }
    }
    let got = stats::measure(&targets, Duration::from_millis(opts.window_ms));
    let find = |label: &str| {
        targets
            .iter()
            .position(|(l, _)| l == label)
            .map(|i| got[i].clone())
            .unwrap_or_default()
    };
    let node_name = node_name(g);
    if opts.output == "json" {
        let pods_json: Vec<serde_json::Value> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| pod_json(p, find(&i.to_string()), |c| find(&format!("{i}/{c}"))))
            .collect();
        let (cpu, memory) = find("node");
        let out = json!({
            "node": {"nodeName": node_name, "cpu": cpu, "memory": memory},
            "pods": pods_json,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    if opts.output != "table" {
        eprintln!("error: unable to match a printer suitable for the output format {:?}, allowed formats are: json,table", opts.output);
        return Ok(1);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    if node_table {
        let (cpu, mem) = find("node");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let total = crate::node::mem_total_bytes().unwrap_or(1).max(1) as u64;
        rows.push(vec![
            "NAME".into(),
            "CPU(cores)".into(),
            "CPU(%)".into(),
            "MEMORY(bytes)".into(),
            "MEMORY(%)".into(),
        ]);
        rows.push(vec![
            node_name,
            stats::cpu_cell(cpu.usage_nano_cores),
            format!("{}%", cpu.usage_nano_cores / (cores * 10_000_000)),
            stats::memory_cell(mem.working_set_bytes),
            format!("{}%", mem.working_set_bytes * 100 / total),
        ]);
    } else if per_container {
        rows.push(vec![
            "POD".into(),
            "NAME".into(),
            "CPU(cores)".into(),
            "MEMORY(bytes)".into(),
        ]);
        for (i, p) in pods.iter().enumerate() {
            for (c, _) in container_ids(p) {
                let (cpu, mem) = find(&format!("{i}/{c}"));
                let pod = p.metadata.name.clone().unwrap_or_default();
                rows.push(vec![
                    pod,
                    c,
                    stats::cpu_cell(cpu.usage_nano_cores),
                    stats::memory_cell(mem.working_set_bytes),
                ]);
            }
        }
    } else {
        rows.push(vec![
            "NAME".into(),
            "CPU(cores)".into(),
            "MEMORY(bytes)".into(),
        ]);
        for (i, p) in pods.iter().enumerate() {
            let (cpu, mem) = find(&i.to_string());
            let pod = p.metadata.name.clone().unwrap_or_default();
            rows.push(vec![
                pod,
                stats::cpu_cell(cpu.usage_nano_cores),
                stats::memory_cell(mem.working_set_bytes),
            ]);
        }
    }
    print_table(&rows);
    Ok(0)
}

fn pod_json(
    p: &Pod,
    (cpu, memory): (CpuStats, MemoryStats),
    per_container: impl Fn(&str) -> (CpuStats, MemoryStats),
) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = container_ids(p)
        .into_iter()
        .map(|(c, _)| {
            let (cpu, memory) = per_container(&c);
            json!({"name": c, "cpu": cpu, "memory": memory})
        })
        .collect();
    json!({
        "podRef": {
            "name": p.metadata.name,
            "namespace": p.metadata.namespace.as_deref().unwrap_or("default"),
            "uid": p.metadata.uid,
        },
        "cpu": cpu,
        "memory": memory,
        "containers": containers,
    })
}

fn node_name(g: &GlobalOpts) -> String {
    crate::node::NodeStore::new(&g.data_dir)
        .load()
        .map(|n| crate::node::node_name(&n).to_string())
        .unwrap_or_else(|_| crate::node::default_node_name())
}

/// kubectl's columns: left-aligned, three spaces apart.
fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}
