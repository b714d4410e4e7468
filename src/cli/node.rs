//! Node commands in kubectl's words: `label node`, `taint node`, and the `get nodes` /
//! `describe node` output that the `get`/`describe` commands call into.
use super::GlobalOpts;
use crate::manifest::quantity::{format_binary, format_cpu};
use crate::node::{self, NodeError, NodeStore};
use anyhow::Context;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Update the labels on this node: `label node NODE k=v [k2=v2...] [--overwrite]`, `k-`.
    Label(LabelArgs),
    /// Update the taints on this node: `taint node NODE k=v:Effect`, `k:Effect-`, `k-`.
    Taint(TaintArgs),
}

#[derive(Args, Debug)]
pub struct LabelArgs {
    /// Allow labels to be overwritten, otherwise reject updates that overwrite existing labels.
    #[arg(long)]
    pub overwrite: bool,
    /// `node NAME k=v ... k-` or `node/NAME k=v ...`.
    #[arg(required = true, num_args = 1..)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TaintArgs {
    /// If true, allow taints to be overwritten, otherwise reject taint updates that overwrite existing taints.
    #[arg(long)]
    pub overwrite: bool,
    /// `node NAME key=value:Effect ... key:Effect- key-` or `node/NAME ...`.
    #[arg(required = true, num_args = 1..)]
    pub args: Vec<String>,
}

pub fn run(g: &GlobalOpts, cmd: NodeCommand) -> anyhow::Result<i32> {
    match cmd {
        NodeCommand::Label(a) => label(g, &a.args, a.overwrite),
        NodeCommand::Taint(a) => taint(g, &a.args, a.overwrite),
    }
}

/// Splits `node NAME specs...` / `node/NAME specs...` into (name, specs), or prints
/// kubectl's error and returns the exit code.
fn target(args: &[String]) -> Result<(&str, &[String]), i32> {
    let Some(first) = args.first() else {
        eprintln!(
            "error: one or more resources must be specified as <resource> <name> or <resource>/<name>"
        );
        return Err(1);
    };
    let (kind, name, rest) = match first.split_once('/') {
        Some((kind, name)) => (kind, Some(name), &args[1..]),
        None => (
            first.as_str(),
            args.get(1).map(String::as_str),
            args.get(2..).unwrap_or(&[]),
        ),
    };
    if !matches!(kind, "node" | "nodes" | "no") {
        eprintln!("error: the server doesn't have a resource type \"{kind}\"");
        return Err(1);
    }
    match name {
        Some(n) if !n.is_empty() => Ok((n, rest)),
        _ => {
            eprintln!("error: resource(s) were provided, but no name was specified");
            Err(1)
        }
    }
}

/// Prints a library error as kubectl does and returns the exit code; I/O and parse
/// failures go up as errors.
fn report(e: NodeError) -> anyhow::Result<i32> {
    match e {
        NodeError::NotFound(name) => {
            eprintln!("Error from server (NotFound): nodes \"{name}\" not found");
            Ok(1)
        }
        NodeError::Rejected(msg) => {
            eprintln!("error: {msg}");
            Ok(1)
        }
        other => Err(other).context("node"),
    }
}

fn label(g: &GlobalOpts, args: &[String], overwrite: bool) -> anyhow::Result<i32> {
    let (name, specs) = match target(args) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let changes = match node::parse_label_specs(specs) {
        Ok(c) => c,
        Err(e) => return report(e),
    };
    let store = NodeStore::new(&g.data_dir);
    let res = store.update(|n| {
        if node::node_name(n) != name {
            return Err(NodeError::NotFound(name.to_string()));
        }
        node::apply_labels(n, &changes, overwrite)
    });
    match res {
        Ok((_, (outcome, warnings))) => {
            for w in warnings {
                println!("{w}");
            }
            println!("node/{name} {}", outcome.as_str());
            Ok(0)
        }
        Err(e) => report(e),
    }
}

fn taint(g: &GlobalOpts, args: &[String], overwrite: bool) -> anyhow::Result<i32> {
    let (name, specs) = match target(args) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let changes = match node::parse_taint_specs(specs) {
        Ok(c) => c,
        Err(e) => return report(e),
    };
    let store = NodeStore::new(&g.data_dir);
    let res = store.update(|n| {
        if node::node_name(n) != name {
            return Err(NodeError::NotFound(name.to_string()));
        }
        node::apply_taints(n, &changes, overwrite)
    });
    match res {
        Ok((_, outcome)) => {
            println!("node/{name} {}", outcome.as_str());
            Ok(0)
        }
        Err(e) => report(e),
    }
}

// ---------------------------------------------------------------------------------------
// Output shared with `get` and `describe`.

/// kubectl's HumanDuration (the AGE column).
pub use super::printers::human_duration;

/// The AGE of an object created at `t` (`<unknown>` without a timestamp).
pub fn age(t: Option<&Time>) -> String {
    super::printers::age(t.map(|t| &t.0))
}

/// Aligns tab-separated cells as Go's text/tabwriter does with the given padding: a
/// column is as wide as its widest cell within each run of consecutive lines that have it.
pub fn tabwrite(text: &str, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let max_cols = lines.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut widths: Vec<Vec<usize>> = lines.iter().map(|c| vec![0; c.len()]).collect();
    for col in 0..max_cols.saturating_sub(1) {
        let mut i = 0;
        while i < lines.len() {
            if lines[i].len() <= col + 1 {
                i += 1;
                continue;
            }
            let start = i;
            let mut w = 0;
            while i < lines.len() && lines[i].len() > col + 1 {
                w = w.max(lines[i][col].chars().count());
                i += 1;
            }
            for row in widths.iter_mut().take(i).skip(start) {
                row[col] = w + padding;
            }
        }
    }
    let mut out = String::new();
    for (cells, ws) in lines.iter().zip(&widths) {
        let mut line = String::new();
        for (j, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if j + 1 < cells.len() {
                let pad = ws[j].saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// ROLES: `node-role.kubernetes.io/<role>` and `kubernetes.io/role=<role>` labels.
pub fn node_roles(n: &Node) -> String {
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in node::node_labels(n) {
        if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
            if !r.is_empty() {
                roles.push(r.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.push(v.clone());
        }
    }
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn node_status_word(n: &Node) -> String {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| {
            if c.status == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    if n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_string()
    }
}

fn address(n: &Node, kind: &str) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == kind))
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "<none>".into())
}

/// `get nodes` output: the table (`None`), `wide`, `json`, `yaml` or `name`. `list`
/// wraps json/yaml in a v1 List as `get nodes` does (`get node NAME` prints the object).
pub fn print_nodes(
    w: &mut dyn Write,
    nodes: &[Node],
    output: Option<&str>,
    show_labels: bool,
    list: bool,
) -> anyhow::Result<()> {
    match output.unwrap_or("") {
        "json" | "yaml" => {
            let value = if list || nodes.len() != 1 {
                serde_json::json!({
                    "apiVersion": "v1",
                    "items": nodes,
                    "kind": "List",
                    "metadata": {"resourceVersion": ""},
                })
            } else {
                serde_json::to_value(&nodes[0])?
            };
            if output == Some("json") {
                writeln!(w, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                write!(w, "{}", serde_yaml_ng::to_string(&value)?)?;
            }
        }
        "name" => {
            for n in nodes {
                writeln!(w, "node/{}", node::node_name(n))?;
            }
        }
        fmt @ ("" | "wide") => {
            let wide = fmt == "wide";
            let mut t = String::from("NAME\tSTATUS\tROLES\tAGE\tVERSION");
            if wide {
                t.push_str("\tINTERNAL-IP\tEXTERNAL-IP\tOS-IMAGE\tKERNEL-VERSION\tCONTAINER-RUNTIME");
            }
            if show_labels {
                t.push_str("\tLABELS");
            }
            t.push('\n');
            for n in nodes {
                let info = n.status.as_ref().and_then(|s| s.node_info.clone()).unwrap_or_default();
                t.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}",
                    node::node_name(n),
                    node_status_word(n),
                    node_roles(n),
                    age(n.metadata.creation_timestamp.as_ref()),
                    info.kubelet_version
                ));
                if wide {
                    t.push_str(&format!(
                        "\t{}\t{}\t{}\t{}\t{}",
                        address(n, "InternalIP"),
                        address(n, "ExternalIP"),
                        info.os_image,
                        info.kernel_version,
                        info.container_runtime_version
                    ));
                }
                if show_labels {
                    let l: Vec<String> = node::node_labels(n).iter().map(|(k, v)| format!("{k}={v}")).collect();
                    t.push_str(&format!("\t{}", l.join(",")));
                }
                t.push('\n');
            }
            write!(w, "{}", tabwrite(&t, 3))?;
        }
        other => anyhow::bail!(
            "unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,name,wide,yaml"
        ),
    }
    Ok(())
}

/// RFC 1123 with numeric zone, as describe prints times.
pub fn describe_time(t: &Timestamp) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%a, %d %b %Y %H:%M:%S +0000", *t)
        .unwrap_or_else(|_| t.to_string())
}

fn quantity_string(resource: &str, v: i128) -> String {
    if resource == "cpu" {
        format_cpu(v)
    } else {
        format_binary(v)
    }
}

fn percent(v: i128, of: i128) -> i128 {
    if of == 0 {
        0
    } else {
        v * 100 / of
    }
}

/// `describe node` in kubectl's layout; `pods` are the pods on the node (terminated ones
/// are skipped), `events` a pre-rendered Events table (or `None` for `<none>`).
pub fn describe_node(
    w: &mut dyn Write,
    n: &Node,
    pods: &[Pod],
    events: Option<&str>,
) -> anyhow::Result<()> {
    let mut t = String::new();
    meta_text(&mut t, n);
    status_text(&mut t, n);
    pods_text(&mut t, n, pods);
    match events {
        Some(e) if !e.trim().is_empty() => {
            push(&mut t, "Events:".into());
            t.push_str(e);
            if !e.ends_with('\n') {
                t.push('\n');
            }
        }
        _ => push(&mut t, "Events:\t<none>".into()),
    }
    write!(w, "{}", tabwrite(&t, 2))?;
    Ok(())
}

/// One line of describe text (tab-separated columns).
fn push(t: &mut String, s: String) {
    t.push_str(&s);
    t.push('\n');
}

/// Name to Unschedulable: the node's own fields.
fn meta_text(t: &mut String, n: &Node) {
    push(t, format!("Name:\t{}", node::node_name(n)));
    push(t, format!("Roles:\t{}", node_roles(n)));
    let kv_block = |t: &mut String, title: &str, m: Option<&BTreeMap<String, String>>| {
        let entries: Vec<String> = m
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if entries.is_empty() {
            t.push_str(&format!("{title}:\t<none>\n"));
        }
        for (i, e) in entries.iter().enumerate() {
            if i == 0 {
                t.push_str(&format!("{title}:\t{e}\n"));
            } else {
                t.push_str(&format!("\t{e}\n"));
            }
        }
    };
    kv_block(t, "Labels", n.metadata.labels.as_ref());
    kv_block(t, "Annotations", n.metadata.annotations.as_ref());
    push(
        t,
        format!(
            "CreationTimestamp:\t{}",
            n.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| describe_time(&t.0))
                .unwrap_or_else(|| "<unset>".into())
        ),
    );
    let taints = node::node_taints(n);
    if taints.is_empty() {
        push(t, "Taints:\t<none>".into());
    }
    for (i, taint) in taints.iter().enumerate() {
        let s = node::taint_string(taint);
        push(
            t,
            if i == 0 {
                format!("Taints:\t{s}")
            } else {
                format!("\t{s}")
            },
        );
    }
    push(
        t,
        format!(
            "Unschedulable:\t{}",
            n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        ),
    );
}

/// Conditions, Addresses, Capacity, Allocatable and System Info.
fn status_text(t: &mut String, n: &Node) {
    let status = n.status.clone().unwrap_or_default();
    push(t, "Conditions:".into());
    push(
        t,
        "  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage".into(),
    );
    push(
        t,
        "  ----\t------\t-----------------\t------------------\t------\t-------".into(),
    );
    for c in status.conditions.iter().flatten() {
        let tm = |x: &Option<Time>| x.as_ref().map(|t| describe_time(&t.0)).unwrap_or_default();
        push(
            t,
            format!(
                "  {}\t{}\t{}\t{}\t{}\t{}",
                c.type_,
                c.status,
                tm(&c.last_heartbeat_time),
                tm(&c.last_transition_time),
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ),
        );
    }
    push(t, "Addresses:".into());
    for a in status.addresses.iter().flatten() {
        push(t, format!("  {}:\t{}", a.type_, a.address));
    }
    for (title, list) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        push(t, format!("{title}:"));
        for (k, q) in list.iter().flatten() {
            push(t, format!("  {k}:\t{}", q.0));
        }
    }
    let info = status.node_info.clone().unwrap_or_default();
    push(t, "System Info:".into());
    for (k, v) in [
        ("Machine ID", &info.machine_id),
        ("System UUID", &info.system_uuid),
        ("Boot ID", &info.boot_id),
        ("Kernel Version", &info.kernel_version),
        ("OS Image", &info.os_image),
        ("Operating System", &info.operating_system),
        ("Architecture", &info.architecture),
        ("Container Runtime Version", &info.container_runtime_version),
        ("Kubelet Version", &info.kubelet_version),
        ("Kube-Proxy Version", &info.kube_proxy_version),
    ] {
        push(t, format!("  {k}:\t{v}"));
    }
}

/// The non-terminated pods with their requests and limits, and the node's totals.
fn pods_text(t: &mut String, n: &Node, pods: &[Pod]) {
    let alloc = crate::admission::resources::node_allocatable(n);
    let get = |m: &BTreeMap<String, i128>, k: &str| m.get(k).copied().unwrap_or(0);
    let running: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            )
        })
        .collect();
    push(
        t,
        format!("Non-terminated Pods:\t({} in total)", running.len()),
    );
    push(
        t,
        "  Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge".into(),
    );
    push(
        t,
        "  ---------\t----\t\t------------\t----------\t---------------\t-------------\t---".into(),
    );
    let mut total_req: BTreeMap<String, i128> = BTreeMap::new();
    let mut total_lim: BTreeMap<String, i128> = BTreeMap::new();
    for p in &running {
        let (req, lim) = crate::admission::pod_requests_and_limits(p).unwrap_or_default();
        for (k, v) in &req {
            *total_req.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &lim {
            *total_lim.entry(k.clone()).or_insert(0) += v;
        }
        let cell = |m: &BTreeMap<String, i128>, r: &str| {
            let v = get(m, r);
            format!(
                "{} ({}%)",
                quantity_string(r, v),
                percent(v, get(&alloc, r))
            )
        };
        push(
            t,
            format!(
                "  {}\t{}\t\t{}\t{}\t{}\t{}\t{}",
                crate::admission::affinity::pod_namespace(p),
                p.metadata.name.as_deref().unwrap_or(""),
                cell(&req, "cpu"),
                cell(&lim, "cpu"),
                cell(&req, "memory"),
                cell(&lim, "memory"),
                age(p.metadata.creation_timestamp.as_ref())
            ),
        );
    }
    push(t, "Allocated resources:".into());
    push(
        t,
        "  (Total limits may be over 100 percent, i.e., overcommitted.)".into(),
    );
    push(t, "  Resource\tRequests\tLimits".into());
    push(t, "  --------\t--------\t------".into());
    let mut rows: Vec<&str> = vec!["cpu", "memory", "ephemeral-storage"];
    rows.extend(
        alloc
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("hugepages-")),
    );
    for r in rows {
        let (rq, lm) = (get(&total_req, r), get(&total_lim, r));
        push(
            t,
            format!(
                "  {r}\t{} ({}%)\t{} ({}%)",
                quantity_string(r, rq),
                percent(rq, get(&alloc, r)),
                quantity_string(r, lm),
                percent(lm, get(&alloc, r))
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn tabwriter_aligns_runs() {
        let out = tabwrite("NAME\tSTATUS\nnode-one\tReady\nx:\n  a\tb\n  ccc\td\n", 3);
        assert_eq!(
            out,
            "NAME       STATUS\nnode-one   Ready\nx:\n  a     b\n  ccc   d\n"
        );
    }

    fn sample(tag: &str) -> (Node, Pod) {
        let dir =
            std::env::temp_dir().join(format!("podrun-describe-{tag}-{}", std::process::id()));
        let store = NodeStore::new(&dir);
        let (mut n, _) = store
            .update(|n| {
                let c =
                    node::parse_taint_specs(&["tag=test:NoSchedule".into(), "x:NoExecute".into()])?;
                node::apply_taints(n, &c, false)
            })
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        n.metadata.name = Some("node1".into());
        let alloc = n.status.as_mut().unwrap().allocatable.as_mut().unwrap();
        alloc.insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
        );
        alloc.insert(
            "memory".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("4Gi".into()),
        );
        let pod: Pod = serde_yaml_ng::from_str(
            "metadata: {name: web, namespace: dev}\nspec:\n  containers:\n  - name: c\n    image: x\n    resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: '1', memory: 2Gi}}\n",
        )
        .unwrap();
        (n, pod)
    }

    #[test]
    fn describe_node_layout() {
        let (n, pod) = sample("describe");
        let mut out = Vec::new();
        describe_node(&mut out, &n, &[pod], None).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Name:               node1", "{out}");
        assert!(
            lines.contains(&"Taints:             tag=test:NoSchedule"),
            "{out}"
        );
        assert!(lines.contains(&"                    x:NoExecute"), "{out}");
        assert!(lines.contains(&"Unschedulable:      false"), "{out}");
        assert!(
            out.contains("Non-terminated Pods:          (1 in total)"),
            "{out}"
        );
        let row = lines.iter().find(|l| l.contains(" web ")).unwrap();
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            &cells[..6],
            [
                "dev",
                "web",
                "500m (25%)",
                "1 (50%)",
                "1Gi (25%)",
                "2Gi (50%)"
            ],
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["cpu", "500m", "(25%)", "1", "(50%)"]),
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().take(2).eq(["Ready", "True"])),
            "{out}"
        );
        assert!(
            out.trim_end().ends_with("Events:              <none>"),
            "{out}"
        );
    }

    #[test]
    fn get_nodes_table_and_yaml() {
        let (n, _) = sample("get");
        let mut out = Vec::new();
        print_nodes(&mut out, std::slice::from_ref(&n), None, false, true).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(&row[..3], ["node1", "Ready", "<none>"]);
        assert!(row[4].starts_with("v1.34.0-podrun."), "{out}");
        let mut y = Vec::new();
        print_nodes(&mut y, std::slice::from_ref(&n), Some("yaml"), false, false).unwrap();
        let v: serde_json::Value = serde_yaml_ng::from_slice(&y).unwrap();
        assert_eq!(v["kind"], "Node");
        assert_eq!(v["spec"]["taints"][1]["key"], "x");
        assert!(v["spec"]["taints"][1]["timeAdded"].is_string());
        assert!(v["status"]["capacity"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki"));
        let mut j = Vec::new();
        print_nodes(&mut j, std::slice::from_ref(&n), Some("json"), false, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["metadata"]["name"], "node1");
    }
}
