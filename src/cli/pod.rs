//! kubectl-like pod commands: up, down, get, describe, logs (exec and `delete pod` arrive
//! through the OCI commands of the same name and are routed here), and the hidden
//! `supervise` entry the supervisor process runs.
use super::printers::{self, pod_columns, table};
use super::GlobalOpts;
use crate::manifest::{self, LoadOptions};
use crate::pod::{CreateError, ExecError, LogsError};
use crate::supervisor::store::{PodObjects, PodRecord, PodStore};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Pod;
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
    /// Only pods whose labels match, e.g. `app=web,tier!=db` (kubectl's -l).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
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
    /// Only lines newer than this duration (5s, 2m, 3h).
    #[arg(long)]
    pub since: Option<String>,
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
    /// Take over the pod of a supervisor that died (the agent starts it so).
    #[arg(long)]
    pub adopt: bool,
}

pub fn run(g: &GlobalOpts, cmd: PodCommand) -> anyhow::Result<i32> {
    match cmd {
        PodCommand::Up(a) => up(g, a),
        PodCommand::Down(a) => down(g, a),
        PodCommand::Get(a) => get(g, a),
        PodCommand::Describe(a) => describe(g, a),
        PodCommand::Logs(a) => logs_cmd(g, a),
        PodCommand::Supervise(a) => {
            let how = crate::pod::Supervision {
                ready_fd: a.ready_fd,
                lock_fd: a.lock_fd,
                adopt: a.adopt,
            };
            crate::pod::supervise(&context(g), a.pod_dir, how)?;
            Ok(0)
        }
    }
}

pub(super) fn read_manifest(file: Option<&str>) -> anyhow::Result<(String, String)> {
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

pub(super) fn load_manifest(
    file: Option<&str>,
    namespace: Option<&str>,
) -> Result<manifest::Manifest, i32> {
    match read_manifest(file) {
        Ok((source, text)) => parse_manifest(source, &text, namespace),
        Err(e) => {
            eprintln!("{e}");
            Err(1)
        }
    }
}

/// A manifest's text as `up`/`apply` load it: warnings printed, errors printed as exit 1.
pub(super) fn parse_manifest(
    source: String,
    text: &str,
    namespace: Option<&str>,
) -> Result<manifest::Manifest, i32> {
    let opts = LoadOptions {
        source,
        namespace: namespace.map(String::from),
    };
    match manifest::load_objects(text, &opts) {
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

pub(super) fn ns_of(pod: &Pod) -> String {
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
pub(super) fn objects_in(m: &manifest::Manifest, ns: &str) -> PodObjects {
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
    let ctx = context(g);
    if let Err(e) = crate::pod::preflight(&ctx, &m.pods) {
        eprintln!("error: {e}");
        return Ok(1);
    }
    // The file's other objects (ConfigMaps, Secrets, ...) are applied: several files may
    // share them. Its pods are created (`kubectl create`).
    let mut rc = super::get_objects::apply_objects(&ctx, &m);
    let mut started = Vec::new();
    for pod in &m.pods {
        let ns = ns_of(pod);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let objects = crate::objects::configs::pod_objects(&ctx, pod, &objects_in(&m, &ns));
        match crate::pod::create(&ctx, pod, &objects) {
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
    rc = rc.max(super::get_objects::report_not_run(&m));
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

/// `delete -f FILE|DIR|-`: the pods of those manifests, as `down` deletes them.
pub fn delete_files(
    g: &GlobalOpts,
    files: &[String],
    namespace: Option<&str>,
    grace_period: Option<i64>,
) -> anyhow::Result<i32> {
    let mut rc = 0;
    for file in super::apply::expand(files, false) {
        let a = DownArgs {
            file_flag: Some(file),
            file: None,
            namespace: namespace.map(String::from),
            grace_period,
            force: false,
        };
        rc = rc.max(down(g, a)?);
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
    rc = rc.max(super::get_objects::delete_objects(&context(g), &m));
    Ok(rc.max(super::get_objects::report_not_run(&m)))
}

/// `podrun delete pod NAME... [-n NS] [--grace-period N] [--force]`: routed here by the
/// `delete` command when its first argument is `pod`/`pods`/`po`.
/// Which pods `delete pod` names: by name, or every pod (of the namespace) matching a
/// selector (`-l`, `--all`).
pub struct PodChoice<'a> {
    pub names: &'a [String],
    pub selector: Option<&'a str>,
    pub all: bool,
}

pub fn delete_pod(
    g: &GlobalOpts,
    choice: PodChoice<'_>,
    namespace: Option<&str>,
    grace_period: Option<i64>,
    force: bool,
) -> anyhow::Result<i32> {
    let ns = namespace.unwrap_or("default");
    let mut names = choice.names.to_vec();
    if names.is_empty() && (choice.all || choice.selector.is_some()) {
        let selector = match crate::manifest::label_selector::parse(choice.selector.unwrap_or("")) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(1);
            }
        };
        names = PodStore::new(&g.root)
            .list()
            .into_iter()
            .filter(|r| r.namespace() == ns && selector.matches(r.pod.metadata.labels.as_ref()))
            .map(|r| r.name().to_string())
            .collect();
        if names.is_empty() {
            println!("No resources found");
            return Ok(0);
        }
    }
    if names.is_empty() {
        eprintln!("error: resource(s) were provided, but no name was specified");
        return Ok(1);
    }
    let mut rc = 0;
    for n in &names {
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

/// `get nodes [NAME]`: this node, as kubectl lists nodes.
fn get_nodes(g: &GlobalOpts, a: &GetArgs, names: &[String]) -> anyhow::Result<i32> {
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
    Ok(0)
}

fn get(g: &GlobalOpts, a: GetArgs) -> anyhow::Result<i32> {
    let (resource, names) = split_resource(&a.resource, &a.names);
    if super::events::is_event_resource(&resource) {
        return super::events::get(g, &a, &names);
    }
    if let Some(r) = super::workloads::resource_name(&resource) {
        return super::workloads::get(
            g,
            r,
            &names,
            a.namespace.as_deref(),
            a.all_namespaces,
            a.output.as_deref(),
        );
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
        return get_nodes(g, &a, &names);
    }
    let q = super::get_objects::Query {
        resource: &resource,
        names: &names,
        namespace: a.namespace.as_deref(),
        all_namespaces: a.all_namespaces,
        output: a.output.as_deref(),
    };
    if let Some(rc) = super::get_objects::get(g, &q) {
        return Ok(rc);
    }
    if !is_pod_resource(&resource) {
        eprintln!("error: the server doesn't have a resource type {resource:?}");
        return Ok(1);
    }
    let output = a.output.clone().unwrap_or_default();
    let selector = match crate::manifest::label_selector::parse(a.selector.as_deref().unwrap_or(""))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let mut last = String::new();
    loop {
        let (mut pods, missing) = select_pods(g, &names, a.namespace.as_deref(), a.all_namespaces);
        pods.retain(|r| selector.matches(r.pod.metadata.labels.as_ref()));
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
                    let text = pod_rows(
                        &pods,
                        output == "wide",
                        a.all_namespaces,
                        a.show_labels,
                        last.is_empty(),
                    );
                    last = print_changed_rows(&text, &last);
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

/// `get -w`: the first table whole, then only rows that changed; returns what was shown.
fn print_changed_rows(text: &str, last: &str) -> String {
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
    if body.is_empty() {
        " ".into()
    } else {
        body
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
    let q = super::get_objects::Query {
        resource: &resource,
        names: &names,
        namespace: a.namespace.as_deref(),
        all_namespaces: false,
        output: None,
    };
    if let Some(rc) = super::get_objects::describe(g, &q) {
        return Ok(rc);
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
        print!("{}", super::describe_pod::describe_pod(r));
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
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
        since_seconds: match a
            .since
            .as_deref()
            .map(crate::node_config::parse_go_duration)
        {
            None => None,
            Some(Ok(n)) => Some((n / 1_000_000_000) as i64),
            Some(Err(e)) => {
                eprintln!(
                    "error: invalid argument {:?} for \"--since\" flag: {e}",
                    a.since
                );
                return Ok(1);
            }
        },
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
