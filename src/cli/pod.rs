//! kubectl-like pod commands: up, down, get, describe, logs (exec and `delete pod` arrive
//! through the OCI commands of the same name and are routed here), and the hidden
//! `supervise` entry the supervisor process runs.
use super::printers::{self, pod_columns, table};
use super::GlobalOpts;
use crate::manifest::{self, LoadOptions};
use crate::pod::{CreateError, ExecError, LogsError};
use crate::supervisor::events;
use crate::supervisor::store::{self, PodObjects, PodRecord, PodStore};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum PodCommand {
    /// Run the Pods (and ConfigMaps, Secrets) of a manifest on this host.
    Up(UpArgs),
    /// Delete the pods of a manifest (graceful, as `kubectl delete -f`).
    Down(DownArgs),
    /// Display pods (or nodes) as `kubectl get` does.
    Get(GetArgs),
    /// Show details of a pod (or node) as `kubectl describe` does.
    Describe(DescribeArgs),
    /// Print the logs of a container in a pod.
    Logs(LogsArgs),
    /// (internal) Run the supervisor of one pod.
    #[command(hide = true)]
    Supervise(SuperviseCmd),
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// The manifest file (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    pub file_flag: Option<String>,
    /// The manifest file (`-` for stdin).
    pub file: Option<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Wait until every pod is Ready.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 60s, 2m).
    #[arg(long, default_value = "300s")]
    pub timeout: String,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    #[arg(short = 'f', long = "filename")]
    pub file_flag: Option<String>,
    pub file: Option<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[arg(long = "grace-period")]
    pub grace_period: Option<i64>,
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// pods|pod|po|nodes|node|no|events|event|ev (optionally TYPE/NAME)
    pub resource: String,
    pub names: Vec<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// wide|json|yaml|name
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing what exists first (events).
    #[arg(long = "watch-only")]
    pub watch_only: bool,
    /// Only the events of this object, e.g. pod/NAME (events).
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub for_object: Option<String>,
    #[arg(long = "show-labels")]
    pub show_labels: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    pub resource: String,
    pub names: Vec<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    pub pod: String,
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[arg(short = 'p', long)]
    pub previous: bool,
    #[arg(long, default_value_t = -1)]
    pub tail: i64,
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Args, Debug)]
pub struct SuperviseCmd {
    #[arg(long = "pod-dir")]
    pub pod_dir: PathBuf,
    #[arg(long = "ready-fd")]
    pub ready_fd: Option<i32>,
    /// The pod's owner lock, held from `up` on for the supervisor's whole life.
    #[arg(long = "lock-fd")]
    pub lock_fd: Option<i32>,
}

pub fn run(g: &GlobalOpts, cmd: PodCommand) -> anyhow::Result<i32> {
    match cmd {
        PodCommand::Up(a) => up(g, a),
        PodCommand::Down(a) => down(g, a),
        PodCommand::Get(a) => get(g, a),
        PodCommand::Describe(a) => describe(g, a),
        PodCommand::Logs(a) => logs_cmd(g, a),
        PodCommand::Supervise(a) => {
            crate::pod::supervise(&context(g), a.pod_dir, a.ready_fd, a.lock_fd)?;
            Ok(0)
        }
    }
}

fn read_manifest(file: Option<&str>) -> anyhow::Result<(String, String)> {
    let Some(file) = file else {
        anyhow::bail!("error: must specify -f FILE (or `-` for stdin)");
    };
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("error: the path {file:?} cannot be read: {e}"))?;
    }
    Ok((file.to_string(), text))
}

fn load_manifest(file: Option<&str>, namespace: Option<&str>) -> Result<manifest::Manifest, i32> {
    let (source, text) = match read_manifest(file) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Err(1);
        }
    };
    match manifest::load(
        &text,
        &LoadOptions {
            source,
            namespace: namespace.map(String::from),
        },
    ) {
        Ok(m) => {
            for w in &m.warnings {
                eprintln!("Warning: {w}");
            }
            Ok(m)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(1)
        }
    }
}

fn ns_of(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

fn parse_duration(s: &str) -> Duration {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    Duration::from_secs_f64(num.parse::<f64>().unwrap_or(300.0) * mult)
}

/// The library's view of the global flags.
pub(super) fn context(g: &GlobalOpts) -> crate::pod::PodContext {
    crate::pod::PodContext {
        root: g.root.clone(),
        data_dir: g.data_dir.clone(),
    }
}

/// The ConfigMaps and Secrets of a manifest that are in namespace `ns`.
fn objects_in(m: &manifest::Manifest, ns: &str) -> PodObjects {
    let in_ns = |n: Option<&String>| n.map(String::as_str).unwrap_or("default") == ns;
    PodObjects {
        config_maps: m
            .config_maps
            .iter()
            .filter(|c| in_ns(c.metadata.namespace.as_ref()))
            .cloned()
            .collect(),
        secrets: m
            .secrets
            .iter()
            .filter(|c| in_ns(c.metadata.namespace.as_ref()))
            .cloned()
            .collect(),
    }
}

fn up(g: &GlobalOpts, a: UpArgs) -> anyhow::Result<i32> {
    let file = a.file_flag.as_deref().or(a.file.as_deref());
    let m = match load_manifest(file, a.namespace.as_deref()) {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    if m.pods.is_empty() {
        eprintln!("error: no Pod in {}", file.unwrap_or("-"));
        return Ok(1);
    }
    let ctx = context(g);
    if let Err(e) = crate::pod::preflight(&ctx, &m.pods) {
        eprintln!("error: {e}");
        return Ok(1);
    }
    for cm in &m.config_maps {
        println!(
            "configmap/{} created",
            cm.metadata.name.as_deref().unwrap_or("")
        );
    }
    for s in &m.secrets {
        println!(
            "secret/{} created",
            s.metadata.name.as_deref().unwrap_or("")
        );
    }
    let mut rc = 0;
    let mut started = Vec::new();
    for pod in &m.pods {
        let ns = ns_of(pod);
        let name = pod.metadata.name.clone().unwrap_or_default();
        match crate::pod::create(&ctx, pod, &objects_in(&m, &ns)) {
            Ok(()) => {
                println!("pod/{name} created");
                started.push((ns, name));
            }
            Err(e @ CreateError::AlreadyExists { .. }) => {
                let f = file.unwrap_or("-");
                eprintln!("Error from server (AlreadyExists): error when creating {f:?}: {e}");
                rc = 1;
            }
            Err(e @ (CreateError::FailedToStart { .. } | CreateError::Spawn { .. })) => {
                eprintln!("Error: {e}");
                rc = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if a.wait && rc == 0 {
        let deadline = Instant::now() + parse_duration(&a.timeout);
        for (ns, name) in &started {
            if !crate::pod::wait_ready(&ctx, ns, name, deadline) {
                eprintln!("error: timed out waiting for the condition on pods/{name}");
                return Ok(1);
            }
            println!("pod/{name} condition met");
        }
    }
    Ok(rc)
}

fn down(g: &GlobalOpts, a: DownArgs) -> anyhow::Result<i32> {
    let file = a.file_flag.as_deref().or(a.file.as_deref());
    let m = match load_manifest(file, a.namespace.as_deref()) {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let mut rc = 0;
    for pod in &m.pods {
        let ns = ns_of(pod);
        let name = pod.metadata.name.clone().unwrap_or_default();
        rc = rc.max(delete_one(g, &ns, &name, a.grace_period, a.force)?);
    }
    Ok(rc)
}

/// `podrun delete pod NAME... [-n NS] [--grace-period N] [--force]`: routed here by the
/// `delete` command when its first argument is `pod`/`pods`/`po`.
pub fn delete_pod(
    g: &GlobalOpts,
    names: &[String],
    namespace: Option<&str>,
    grace_period: Option<i64>,
    force: bool,
) -> anyhow::Result<i32> {
    if names.is_empty() {
        eprintln!("error: resource(s) were provided, but no name was specified");
        return Ok(1);
    }
    let ns = namespace.unwrap_or("default");
    let mut rc = 0;
    for n in names {
        rc = rc.max(delete_one(g, ns, n, grace_period, force)?);
    }
    Ok(rc)
}

fn delete_one(
    g: &GlobalOpts,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    force: bool,
) -> anyhow::Result<i32> {
    if force && grace == Some(0) {
        eprintln!("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.");
    }
    let opts = crate::pod::DeleteOptions {
        grace_period: grace,
        force,
    };
    match crate::pod::delete(&context(g), ns, name, opts) {
        Ok(()) => {
            println!("pod {name:?} deleted");
            Ok(0)
        }
        Err(e @ crate::pod::DeleteError::NotFound { .. }) => {
            eprintln!("Error from server (NotFound): {e}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn is_pod_resource(r: &str) -> bool {
    matches!(r, "pod" | "pods" | "po")
}

fn is_node_resource(r: &str) -> bool {
    matches!(r, "node" | "nodes" | "no")
}

/// Splits `pod/NAME` forms.
fn split_resource(resource: &str, names: &[String]) -> (String, Vec<String>) {
    match resource.split_once('/') {
        Some((r, n)) => {
            let mut all = vec![n.to_string()];
            all.extend(names.iter().cloned());
            (r.to_string(), all)
        }
        None => (resource.to_string(), names.to_vec()),
    }
}

fn select_pods(
    g: &GlobalOpts,
    names: &[String],
    ns: Option<&str>,
    all: bool,
) -> (Vec<PodRecord>, Vec<String>) {
    let store = PodStore::new(&g.root);
    let ns = ns.unwrap_or("default");
    let (found, missing) = if names.is_empty() {
        let pods = store
            .list()
            .into_iter()
            .filter(|r| all || r.namespace() == ns)
            .collect();
        (pods, Vec::new())
    } else {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for n in names {
            match store.load(ns, n) {
                Some(r) => found.push(r),
                None => missing.push(n.clone()),
            }
        }
        (found, missing)
    };
    for r in &found {
        if let Some(why) = &r.damaged {
            eprintln!("Warning: pod {}/{}: {why}", r.namespace(), r.name());
        }
    }
    (found, missing)
}

fn pod_rows(
    pods: &[PodRecord],
    wide: bool,
    all_ns: bool,
    show_labels: bool,
    header: bool,
) -> String {
    let mut rows = Vec::new();
    if header {
        let mut h: Vec<String> = Vec::new();
        if all_ns {
            h.push("NAMESPACE".into());
        }
        h.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"].map(String::from));
        if wide {
            h.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"].map(String::from));
        }
        if show_labels {
            h.push("LABELS".into());
        }
        rows.push(h);
    }
    for r in pods {
        let c = pod_columns(&r.pod);
        let mut row = Vec::new();
        if all_ns {
            row.push(r.namespace().to_string());
        }
        row.push(r.name().to_string());
        row.push(c.ready);
        row.push(c.status);
        row.push(c.restarts);
        row.push(printers::age(
            r.pod.metadata.creation_timestamp.as_ref().map(|t| &t.0),
        ));
        if wide {
            let st = r.pod.status.as_ref();
            row.push(
                st.and_then(|s| s.pod_ip.clone())
                    .unwrap_or_else(|| "<none>".into()),
            );
            row.push(
                r.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| "<none>".into()),
            );
            row.push(
                st.and_then(|s| s.nominated_node_name.clone())
                    .unwrap_or_else(|| "<none>".into()),
            );
            row.push("<none>".into());
        }
        if show_labels {
            row.push(labels_text(r.pod.metadata.labels.as_ref(), ","));
        }
        rows.push(row);
    }
    table(&rows)
}

fn labels_text(labels: Option<&std::collections::BTreeMap<String, String>>, sep: &str) -> String {
    match labels {
        Some(l) if !l.is_empty() => l
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(sep),
        _ => "<none>".into(),
    }
}

fn print_pods_structured(pods: &[PodRecord], output: &str, single: bool) -> anyhow::Result<()> {
    let value = if single && pods.len() == 1 {
        serde_json::to_value(&pods[0].pod)?
    } else {
        serde_json::json!({
            "apiVersion": "v1",
            "items": pods.iter().map(|r| &r.pod).collect::<Vec<_>>(),
            "kind": "List",
            "metadata": {"resourceVersion": ""}
        })
    };
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", serde_yaml_ng::to_string(&value)?);
    }
    Ok(())
}

fn get(g: &GlobalOpts, a: GetArgs) -> anyhow::Result<i32> {
    let (resource, names) = split_resource(&a.resource, &a.names);
    if super::events::is_event_resource(&resource) {
        return super::events::get(g, &a, &names);
    }
    for (given, flag) in [
        (a.for_object.is_some(), "--for"),
        (a.watch_only, "--watch-only"),
    ] {
        if given {
            eprintln!("error: {flag} is only supported for events");
            return Ok(1);
        }
    }
    if is_node_resource(&resource) {
        let store = crate::node::NodeStore::new(&g.data_dir);
        let node = store.load()?;
        if let Some(n) = names
            .iter()
            .find(|n| n.as_str() != crate::node::node_name(&node))
        {
            eprintln!("Error from server (NotFound): nodes {n:?} not found");
            return Ok(1);
        }
        super::node::print_nodes(
            &mut std::io::stdout(),
            &[node],
            a.output.as_deref(),
            a.show_labels,
            names.is_empty(),
        )?;
        return Ok(0);
    }
    if !is_pod_resource(&resource) {
        eprintln!("error: the server doesn't have a resource type {resource:?}");
        return Ok(1);
    }
    let output = a.output.clone().unwrap_or_default();
    let mut last = String::new();
    loop {
        let (pods, missing) = select_pods(g, &names, a.namespace.as_deref(), a.all_namespaces);
        for m in &missing {
            eprintln!("Error from server (NotFound): pods {m:?} not found");
        }
        if !missing.is_empty() && pods.is_empty() && !a.watch {
            return Ok(1);
        }
        match output.as_str() {
            "json" | "yaml" => print_pods_structured(&pods, &output, !names.is_empty())?,
            "name" => {
                for p in &pods {
                    println!("pod/{}", p.name());
                }
            }
            "" | "wide" => {
                if pods.is_empty() && !a.watch {
                    let ns = a.namespace.as_deref().unwrap_or("default");
                    if a.all_namespaces {
                        eprintln!("No resources found");
                    } else {
                        eprintln!("No resources found in {ns} namespace.");
                    }
                } else if a.watch {
                    // Print only rows that changed, after the first table.
                    let text = pod_rows(
                        &pods,
                        output == "wide",
                        a.all_namespaces,
                        a.show_labels,
                        last.is_empty(),
                    );
                    let body: String = text
                        .lines()
                        .skip(if last.is_empty() { 1 } else { 0 })
                        .collect::<Vec<_>>()
                        .join("\n");
                    if last.is_empty() {
                        print!("{text}");
                    } else if body != last {
                        for line in body.lines() {
                            if !last.lines().any(|l| l == line) {
                                println!("{line}");
                            }
                        }
                    }
                    last = if body.is_empty() { " ".into() } else { body };
                } else {
                    print!(
                        "{}",
                        pod_rows(
                            &pods,
                            output == "wide",
                            a.all_namespaces,
                            a.show_labels,
                            true
                        )
                    );
                }
            }
            other => {
                eprintln!("error: unable to match a printer suitable for the output format {other:?}, allowed formats are: json,name,wide,yaml");
                return Ok(1);
            }
        }
        if !a.watch {
            return Ok(if missing.is_empty() { 0 } else { 1 });
        }
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn describe(g: &GlobalOpts, a: DescribeArgs) -> anyhow::Result<i32> {
    let (resource, names) = split_resource(&a.resource, &a.names);
    if is_node_resource(&resource) {
        let store = crate::node::NodeStore::new(&g.data_dir);
        let node = store.load()?;
        if let Some(n) = names
            .iter()
            .find(|n| n.as_str() != crate::node::node_name(&node))
        {
            eprintln!("Error from server (NotFound): nodes {n:?} not found");
            return Ok(1);
        }
        let pods: Vec<Pod> = PodStore::new(&g.root)
            .list()
            .into_iter()
            .map(|r| r.pod)
            .filter(crate::supervisor::worker::is_bound_and_active)
            .collect();
        super::node::describe_node(&mut std::io::stdout(), &node, &pods, None)?;
        return Ok(0);
    }
    if !is_pod_resource(&resource) {
        eprintln!("error: the server doesn't have a resource type {resource:?}");
        return Ok(1);
    }
    let (pods, missing) = select_pods(g, &names, a.namespace.as_deref(), false);
    for m in &missing {
        eprintln!("Error from server (NotFound): pods {m:?} not found");
    }
    for (i, r) in pods.iter().enumerate() {
        if i > 0 {
            println!("\n");
        }
        print!("{}", describe_pod(r));
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}

use super::node::describe_time;

/// Aligns `Label:\tvalue` lines as kubectl's tabwriter does: each run of lines that
/// carry a value is one block, values start 2 spaces after the block's longest label.
fn align(lines: &[(usize, String, String)]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].2.is_empty() {
            out.push_str(&format!("{}{}\n", " ".repeat(lines[i].0), lines[i].1));
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && !lines[i].2.is_empty() {
            i += 1;
        }
        let block = &lines[start..i];
        let width = block
            .iter()
            .map(|(ind, k, _)| ind + k.chars().count())
            .max()
            .unwrap_or(0);
        for (ind, k, v) in block {
            let gap = " ".repeat(width - (ind + k.chars().count()) + 2);
            out.push_str(&format!("{}{k}{gap}{v}\n", " ".repeat(*ind)));
        }
    }
    out
}

/// A port given by number or by name, as written.
fn port_text(port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

fn probe_text(p: &k8s_openapi::api::core::v1::Probe) -> String {
    let how = if let Some(e) = &p.exec {
        format!("exec [{}]", e.command.clone().unwrap_or_default().join(" "))
    } else if let Some(h) = &p.http_get {
        let port = port_text(&h.port);
        format!(
            "http-get {}://{}:{port}{}",
            h.scheme.as_deref().unwrap_or("HTTP").to_lowercase(),
            h.host.clone().unwrap_or_default(),
            h.path.clone().unwrap_or_default()
        )
    } else if let Some(t) = &p.tcp_socket {
        let port = port_text(&t.port);
        format!("tcp-socket {}:{port}", t.host.clone().unwrap_or_default())
    } else if let Some(gr) = &p.grpc {
        format!(
            "grpc <pod>:{} {}",
            gr.port,
            gr.service.clone().unwrap_or_default()
        )
    } else {
        "unknown".into()
    };
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    )
}

fn state_lines(out: &mut Vec<(usize, String, String)>, label: &str, st: Option<&ContainerState>) {
    let Some(st) = st else {
        out.push((4, format!("{label}:"), "Waiting".into()));
        return;
    };
    if let Some(r) = &st.running {
        out.push((4, format!("{label}:"), "Running".into()));
        if let Some(t) = &r.started_at {
            out.push((6, "Started:".into(), describe_time(&t.0)));
        }
    } else if let Some(w) = &st.waiting {
        out.push((4, format!("{label}:"), "Waiting".into()));
        if let Some(r) = &w.reason {
            out.push((6, "Reason:".into(), r.clone()));
        }
        if let Some(m) = w.message.as_ref().filter(|m| !m.is_empty()) {
            out.push((6, "Message:".into(), m.clone()));
        }
    } else if let Some(t) = &st.terminated {
        out.push((4, format!("{label}:"), "Terminated".into()));
        if let Some(r) = &t.reason {
            out.push((6, "Reason:".into(), r.clone()));
        }
        if let Some(m) = t.message.as_ref().filter(|m| !m.is_empty()) {
            out.push((6, "Message:".into(), m.clone()));
        }
        out.push((6, "Exit Code:".into(), t.exit_code.to_string()));
        if let Some(s) = t.signal.filter(|s| *s != 0) {
            out.push((6, "Signal:".into(), s.to_string()));
        }
        if let Some(s) = &t.started_at {
            out.push((6, "Started:".into(), describe_time(&s.0)));
        }
        if let Some(f) = &t.finished_at {
            out.push((6, "Finished:".into(), describe_time(&f.0)));
        }
    }
}

fn container_block(
    out: &mut Vec<(usize, String, String)>,
    c: &k8s_openapi::api::core::v1::Container,
    cs: Option<&k8s_openapi::api::core::v1::ContainerStatus>,
) {
    out.push((2, format!("{}:", c.name), String::new()));
    if let Some(cs) = cs {
        out.push((
            4,
            "Container ID:".into(),
            cs.container_id.clone().unwrap_or_default(),
        ));
    }
    out.push((4, "Image:".into(), c.image.clone().unwrap_or_default()));
    if let Some(cs) = cs {
        out.push((4, "Image ID:".into(), cs.image_id.clone()));
    }
    let ports = c.ports.clone().unwrap_or_default();
    if ports.is_empty() {
        out.push((4, "Port:".into(), "<none>".into()));
        out.push((4, "Host Port:".into(), "<none>".into()));
    } else {
        let p: Vec<String> = ports
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.container_port,
                    p.protocol.as_deref().unwrap_or("TCP")
                )
            })
            .collect();
        let hp: Vec<String> = ports
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.host_port.unwrap_or(0),
                    p.protocol.as_deref().unwrap_or("TCP")
                )
            })
            .collect();
        out.push((
            4,
            if p.len() > 1 { "Ports:" } else { "Port:" }.into(),
            p.join(", "),
        ));
        out.push((
            4,
            if hp.len() > 1 {
                "Host Ports:"
            } else {
                "Host Port:"
            }
            .into(),
            hp.join(", "),
        ));
    }
    if let Some(cmd) = &c.command {
        out.push((4, "Command:".into(), String::new()));
        for a in cmd {
            out.push((6, a.clone(), String::new()));
        }
    }
    if let Some(args) = &c.args {
        out.push((4, "Args:".into(), String::new()));
        for a in args {
            out.push((6, a.clone(), String::new()));
        }
    }
    // As kubectl: no state lines for a container no kubelet has reported on (an
    // unscheduled pod).
    if let Some(cs) = cs {
        state_lines(out, "State", cs.state.as_ref());
        if let Some(ls) = cs.last_state.as_ref().filter(|l| l.terminated.is_some()) {
            state_lines(out, "Last State", Some(ls));
        }
        out.push((
            4,
            "Ready:".into(),
            if cs.ready { "True" } else { "False" }.into(),
        ));
        out.push((4, "Restart Count:".into(), cs.restart_count.to_string()));
    }
    if let Some(res) = &c.resources {
        for (title, map) in [("Limits:", &res.limits), ("Requests:", &res.requests)] {
            if let Some(m) = map.as_ref().filter(|m| !m.is_empty()) {
                out.push((4, title.into(), String::new()));
                for (k, v) in m {
                    out.push((6, format!("{k}:"), v.0.clone()));
                }
            }
        }
    }
    for (title, p) in [
        ("Liveness:", &c.liveness_probe),
        ("Readiness:", &c.readiness_probe),
        ("Startup:", &c.startup_probe),
    ] {
        if let Some(p) = p {
            out.push((4, title.into(), probe_text(p)));
        }
    }
    let env = c.env.clone().unwrap_or_default();
    if env.is_empty() && c.env_from.is_none() {
        out.push((4, "Environment:".into(), "<none>".into()));
    } else {
        out.push((4, "Environment:".into(), String::new()));
        for e in env {
            let v = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(vf)) => {
                    if let Some(k) = &vf.secret_key_ref {
                        format!("<set to the key '{}' in secret '{}'>", k.key, k.name)
                    } else if let Some(k) = &vf.config_map_key_ref {
                        format!("<set to the key '{}' of config map '{}'>", k.key, k.name)
                    } else if let Some(f) = &vf.field_ref {
                        format!(
                            " ({}:{})",
                            f.api_version.as_deref().unwrap_or("v1"),
                            f.field_path
                        )
                    } else if let Some(r) = &vf.resource_field_ref {
                        format!(
                            "{} ({})",
                            r.resource,
                            r.container_name.clone().unwrap_or_default()
                        )
                    } else {
                        String::new()
                    }
                }
                _ => String::new(),
            };
            out.push((6, format!("{}:", e.name), v));
        }
    }
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    if mounts.is_empty() {
        out.push((4, "Mounts:".into(), "<none>".into()));
    } else {
        out.push((4, "Mounts:".into(), String::new()));
        for m in mounts {
            let ro = if m.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            };
            let sub = m
                .sub_path
                .as_ref()
                .map(|s| format!(",path={s:?}"))
                .unwrap_or_default();
            out.push((
                6,
                format!("{} from {} ({ro}{sub})", m.mount_path, m.name),
                String::new(),
            ));
        }
    }
}

/// A describe map field: `<none>`, or one `k<sep>v` per line under the title.
fn push_map(
    l: &mut Vec<(usize, String, String)>,
    title: &str,
    map: &std::collections::BTreeMap<String, String>,
    sep: &str,
) {
    if map.is_empty() {
        l.push((0, title.into(), "<none>".into()));
    }
    for (i, (k, v)) in map.iter().enumerate() {
        let key = if i == 0 {
            title.to_string()
        } else {
            String::new()
        };
        l.push((0, key, format!("{k}{sep}{v}")));
    }
}

/// `kubectl describe pod` layout.
pub fn describe_pod(r: &PodRecord) -> String {
    let pod = &r.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let st = pod.status.clone().unwrap_or_default();
    let mut l: Vec<(usize, String, String)> = vec![(0, "Name:".into(), r.name().into())];
    l.push((0, "Namespace:".into(), r.namespace().into()));
    l.push((
        0,
        "Priority:".into(),
        spec.priority.unwrap_or(0).to_string(),
    ));
    l.push((
        0,
        "Service Account:".into(),
        spec.service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
    ));
    let node = match &spec.node_name {
        Some(n) => format!("{n}/{}", st.host_ip.clone().unwrap_or_default()),
        None => "<none>".into(),
    };
    l.push((0, "Node:".into(), node));
    if let Some(t) = &st.start_time {
        l.push((0, "Start Time:".into(), describe_time(&t.0)));
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    push_map(&mut l, "Labels:", &labels, "=");
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    push_map(&mut l, "Annotations:", &ann, ": ");
    let status_word = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        st.phase.clone().unwrap_or_else(|| "Pending".into())
    };
    l.push((0, "Status:".into(), status_word));
    if let Some(reason) = &st.reason {
        l.push((0, "Reason:".into(), reason.clone()));
    }
    if let Some(msg) = &st.message {
        l.push((0, "Message:".into(), msg.clone()));
    }
    l.push((0, "IP:".into(), st.pod_ip.clone().unwrap_or_default()));
    match &st.pod_ips {
        Some(ips) if !ips.is_empty() => {
            l.push((0, "IPs:".into(), String::new()));
            for ip in ips {
                l.push((2, "IP:".into(), ip.ip.clone()));
            }
        }
        _ => l.push((0, "IPs:".into(), "<none>".into())),
    }
    let find = |list: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>, name: &str| {
        list.as_ref()
            .and_then(|v| v.iter().find(|s| s.name == name).cloned())
    };
    if let Some(inits) = spec.init_containers.as_ref().filter(|v| !v.is_empty()) {
        l.push((0, "Init Containers:".into(), String::new()));
        for c in inits {
            container_block(
                &mut l,
                c,
                find(&st.init_container_statuses, &c.name).as_ref(),
            );
        }
    }
    l.push((0, "Containers:".into(), String::new()));
    for c in &spec.containers {
        container_block(&mut l, c, find(&st.container_statuses, &c.name).as_ref());
    }
    let mut out = align(&l);
    let conds = st.conditions.clone().unwrap_or_default();
    out.push_str("Conditions:\n");
    let mut rows = vec![vec!["  Type".to_string(), "Status".to_string()]];
    for c in &conds {
        rows.push(vec![format!("  {}", c.type_), c.status.clone()]);
    }
    out.push_str(&printers::table_pad(&rows, 2));
    let vols = spec.volumes.clone().unwrap_or_default();
    if vols.is_empty() {
        out.push_str("Volumes:                     <none>\n");
    } else {
        out.push_str("Volumes:\n");
        let mut v: Vec<(usize, String, String)> = Vec::new();
        for vol in &vols {
            v.push((2, format!("{}:", vol.name), String::new()));
            if let Some(h) = &vol.host_path {
                v.push((
                    4,
                    "Type:".into(),
                    "HostPath (bare host directory volume)".to_string(),
                ));
                v.push((4, "Path:".into(), h.path.clone()));
                v.push((
                    4,
                    "HostPathType:".into(),
                    h.type_.clone().unwrap_or_default(),
                ));
            } else if let Some(e) = &vol.empty_dir {
                v.push((
                    4,
                    "Type:".into(),
                    "EmptyDir (a temporary directory that shares a pod's lifetime)".into(),
                ));
                v.push((4, "Medium:".into(), e.medium.clone().unwrap_or_default()));
                v.push((
                    4,
                    "SizeLimit:".into(),
                    e.size_limit
                        .as_ref()
                        .map(|q| q.0.clone())
                        .unwrap_or_else(|| "<unset>".into()),
                ));
            } else if let Some(cm) = &vol.config_map {
                v.push((
                    4,
                    "Type:".into(),
                    "ConfigMap (a volume populated by a ConfigMap)".into(),
                ));
                v.push((4, "Name:".into(), cm.name.clone()));
                v.push((
                    4,
                    "Optional:".into(),
                    cm.optional.unwrap_or(false).to_string(),
                ));
            } else if let Some(s) = &vol.secret {
                v.push((
                    4,
                    "Type:".into(),
                    "Secret (a volume populated by a Secret)".into(),
                ));
                v.push((
                    4,
                    "SecretName:".into(),
                    s.secret_name.clone().unwrap_or_default(),
                ));
                v.push((
                    4,
                    "Optional:".into(),
                    s.optional.unwrap_or(false).to_string(),
                ));
            } else if vol.downward_api.is_some() {
                v.push((
                    4,
                    "Type:".into(),
                    "DownwardAPI (a volume populated by information about the pod)".into(),
                ));
            } else if vol.projected.is_some() {
                v.push((
                    4,
                    "Type:".into(),
                    "Projected (a volume that contains injected data from multiple sources)".into(),
                ));
            }
        }
        out.push_str(&align(&v));
    }
    let mut tail: Vec<(usize, String, String)> = Vec::new();
    tail.push((
        0,
        "QoS Class:".into(),
        st.qos_class.clone().unwrap_or_default(),
    ));
    let sel = spec.node_selector.clone().unwrap_or_default();
    tail.push((
        0,
        "Node-Selectors:".into(),
        if sel.is_empty() {
            "<none>".into()
        } else {
            sel.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        },
    ));
    let tols = spec.tolerations.clone().unwrap_or_default();
    if tols.is_empty() {
        tail.push((0, "Tolerations:".into(), "<none>".into()));
    } else {
        for (i, t) in tols.iter().enumerate() {
            let mut s = t.key.clone().unwrap_or_default();
            if let Some(v) = t.value.as_ref().filter(|v| !v.is_empty()) {
                s.push_str(&format!("={v}"));
            }
            if let Some(e) = t.effect.as_ref().filter(|e| !e.is_empty()) {
                s.push_str(&format!(":{e}"));
            }
            if t.operator.as_deref() == Some("Exists") {
                s.push_str(" op=Exists");
            }
            if let Some(secs) = t.toleration_seconds {
                s.push_str(&format!(" for {secs}s"));
            }
            tail.push((
                0,
                if i == 0 {
                    "Tolerations:".into()
                } else {
                    String::new()
                },
                s,
            ));
        }
    }
    // kubectl aligns these three with the "Volumes:" column width used above.
    out.push_str(&align(&tail));
    let evs = events::aggregate(&events::read_all(&r.dir.join(store::EVENTS_FILE)));
    if evs.is_empty() {
        out.push_str("Events:                      <none>\n");
    } else {
        out.push_str("Events:\n");
        let mut rows = vec![
            vec![
                "  Type".to_string(),
                "Reason".into(),
                "Age".into(),
                "From".into(),
                "Message".into(),
            ],
            vec![
                "  ----".to_string(),
                "------".into(),
                "----".into(),
                "----".into(),
                "-------".into(),
            ],
        ];
        for e in evs {
            let last = e.last.parse::<k8s_openapi::jiff::Timestamp>().ok();
            let first = e.first.parse::<k8s_openapi::jiff::Timestamp>().ok();
            let age = if e.count > 1 {
                format!(
                    "{} (x{} over {})",
                    printers::age(last.as_ref()),
                    e.count,
                    printers::age(first.as_ref())
                )
            } else {
                printers::age(last.as_ref())
            };
            rows.push(vec![
                format!("  {}", e.record.type_),
                e.record.reason.clone(),
                age,
                e.record.source.clone(),
                e.record.message.clone(),
            ]);
        }
        out.push_str(&printers::table_pad(&rows, 2));
    }
    out
}

/// kubectl's note when no -c was given and the pod has several containers; returns the
/// container picked, so the library acts on the same one. Errors are left to the
/// library, which reports them in kubectl's order.
fn note_default_container(
    g: &GlobalOpts,
    ns: &str,
    pod: &str,
    wanted: Option<&str>,
) -> Option<String> {
    if wanted.is_some() {
        return wanted.map(String::from);
    }
    let pod = pod.strip_prefix("pod/").unwrap_or(pod);
    let rec = crate::pod::load(&context(g), ns, pod)?;
    let picked = crate::pod::pick_container(&rec.pod, None).ok()?;
    if let Some(names) = &picked.defaulted_from {
        eprintln!(
            "Defaulted container {:?} out of: {}",
            picked.name,
            names.join(", ")
        );
    }
    Some(picked.name)
}

fn logs_cmd(g: &GlobalOpts, a: LogsArgs) -> anyhow::Result<i32> {
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let req = crate::pod::LogsRequest {
        container: note_default_container(g, &ns, &a.pod, a.container.as_deref()),
        namespace: ns,
        pod: a.pod.clone(),
        previous: a.previous,
        tail: a.tail,
    };
    let ctx = context(g);
    let mut log = match crate::pod::open_logs(&ctx, &req) {
        Ok(l) => l,
        Err(e) => {
            let prefix = match e {
                LogsError::NotFound(_) => "Error from server (NotFound): ",
                LogsError::Pick(_) => "error: ",
                _ => "Error from server (BadRequest): ",
            };
            eprintln!("{prefix}{e}");
            return Ok(1);
        }
    };
    let print = |l: &crate::supervisor::logs::LogLine| {
        let mut out = std::io::stdout().lock();
        let _ = if a.timestamps {
            writeln!(out, "{} {}", l.time, l.text)
        } else {
            writeln!(out, "{}", l.text)
        };
        let _ = out.flush();
    };
    log.lines.iter().for_each(print);
    if a.follow && !a.previous {
        log.follow(&ctx, print)?;
    }
    Ok(0)
}

/// `podrun exec [-i] [-t] POD [-c C] [-n NS] -- CMD...`: routed here by the `exec`
/// command when its first argument names a pod rather than an OCI container.
pub fn exec_pod(
    g: &GlobalOpts,
    pod: &str,
    namespace: Option<&str>,
    container: Option<&str>,
    stdin: bool,
    tty: bool,
    cmd: &[String],
) -> anyhow::Result<i32> {
    let ns = namespace.unwrap_or("default").to_string();
    let ctx = context(g);
    // kubectl's order: an unknown pod, then a missing command, then the container.
    let named = crate::pod::load(&ctx, &ns, pod.strip_prefix("pod/").unwrap_or(pod)).is_some();
    let container = if named && !cmd.is_empty() {
        note_default_container(g, &ns, pod, container)
    } else {
        container.map(String::from)
    };
    let req = crate::pod::ExecRequest {
        namespace: ns,
        pod: pod.to_string(),
        container,
        stdin,
        tty,
        command: cmd.to_vec(),
    };
    let session = match crate::pod::exec(&ctx, &req) {
        Ok(s) => s,
        Err(e @ ExecError::NotFound(_)) => {
            eprintln!("Error from server (NotFound): {e}");
            return Ok(1);
        }
        Err(e @ (ExecError::NoCommand | ExecError::Pick(_) | ExecError::NotRunning(_))) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    let code = match session.console {
        Some(sock) => {
            let master = crate::runtime::terminal::recv_master(&sock)?;
            super::tty::proxy(master, stdin, session.pid)?
        }
        None => crate::pod::exec::wait_code(session.pid),
    };
    Ok(code)
}
