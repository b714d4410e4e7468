//! The workload commands: `apply` of Deployments, ReplicaSets, Jobs and CronJobs (stored
//! for the agent's controllers), `get deploy|rs|jobs|cronjobs`, `scale`, `rollout status|history|undo|restart`
//! and `delete deployment|rs|job NAME --cascade`, with kubectl's words and columns.
use super::printers::{age, human_duration, table};
use super::GlobalOpts;
use crate::controllers::deployment::REVISION;
use crate::controllers::gc::mark_foreground;
use crate::controllers::meta;
use crate::controllers::store::{self, Workload};
use crate::objects::{ObjectKey, ObjectStore};
use crate::pod::PodContext;
use clap::{Args, Subcommand};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum WorkloadCommand {
    /// Set a new size for a Deployment or ReplicaSet (kubectl scale).
    Scale(ScaleArgs),
    /// Manage the rollout of a Deployment (status, history, undo, restart).
    Rollout(RolloutArgs),
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// deployment/NAME, replicaset/NAME (or TYPE NAME)
    pub target: Vec<String>,
    #[arg(long)]
    pub replicas: i32,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct RolloutArgs {
    /// status | history | undo | restart
    pub action: String,
    /// deployment/NAME (or deployment NAME)
    pub target: Vec<String>,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// undo: the revision to roll back to (0: the previous one).
    #[arg(long = "to-revision", default_value_t = 0)]
    pub to_revision: i64,
    /// status: how long to wait (0: no limit).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// status: false to print once and not wait.
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,
}

fn ctx(g: &GlobalOpts) -> PodContext {
    PodContext {
        root: g.root.clone(),
        data_dir: g.data_dir.clone(),
    }
}

/// The workload resource a kubectl name stands for.
pub fn resource_name(r: &str) -> Option<&'static str> {
    match r {
        "deployment" | "deployments" | "deploy" | "deployment.apps" => Some("deployments"),
        "replicaset" | "replicasets" | "rs" | "replicaset.apps" => Some("replicasets"),
        "job" | "jobs" | "job.batch" => Some("jobs"),
        "cronjob" | "cronjobs" | "cj" | "cronjob.batch" => Some("cronjobs"),
        _ => None,
    }
}

pub fn run(g: &GlobalOpts, c: WorkloadCommand) -> anyhow::Result<i32> {
    match c {
        WorkloadCommand::Scale(a) => scale(g, a),
        WorkloadCommand::Rollout(a) => rollout(g, a),
    }
}

/// `TYPE/NAME` or `TYPE NAME` into (resource, name).
fn target(args: &[String]) -> Option<(&'static str, String)> {
    match args {
        [one] => {
            let (r, n) = one.split_once('/')?;
            Some((resource_name(r)?, n.to_string()))
        }
        [r, n] => Some((resource_name(r)?, n.clone())),
        _ => None,
    }
}

fn ns_or_default(ns: &Option<String>) -> String {
    ns.clone().unwrap_or_else(|| "default".into())
}

/// `apply -f FILE` of a file holding workload objects: they are stored for the
/// controllers. Returns the exit code so far and the file's other documents (None when
/// there are none), which the caller applies the pods' way; a file with no workload
/// object comes back whole, so its line numbers stay as written.
pub fn apply_workloads(
    ctx: &PodContext,
    text: &str,
    namespace: Option<&str>,
    source: &str,
) -> (i32, Option<String>) {
    let Some(docs) = split_docs(text) else {
        return (0, Some(text.to_string()));
    };
    let is_wl = |d: &Value| {
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        crate::controllers::is_workload(&s("apiVersion"), &s("kind"))
    };
    if !docs.iter().any(is_wl) {
        return (0, Some(text.to_string()));
    }
    let mut rc = 0;
    for d in docs.iter().filter(|d| is_wl(d)) {
        match crate::controllers::apply_object(ctx, d, namespace, source) {
            Ok(done) => println!("{}", done.line),
            Err(e) => {
                eprintln!("error: {e}");
                rc = 1;
            }
        }
    }
    let rest: Vec<String> = docs
        .iter()
        .filter(|d| !is_wl(d))
        .filter_map(|v| serde_yaml_ng::to_string(v).ok())
        .collect();
    (rc, (!rest.is_empty()).then(|| rest.join("---\n")))
}

/// The YAML (or JSON) documents of a file, empty ones dropped.
fn split_docs(text: &str) -> Option<Vec<Value>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).ok()?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Some(out)
}

fn get_one<T: Workload>(store: &ObjectStore, ns: &str, name: &str) -> Option<T> {
    store
        .get::<T>(&ObjectKey::new(T::RESOURCE, ns, name))
        .ok()
        .flatten()
}

fn not_found(resource: &str, name: &str) -> i32 {
    let group = match resource {
        "jobs" => "jobs.batch",
        "cronjobs" => "cronjobs.batch",
        "replicasets" => "replicasets.apps",
        _ => "deployments.apps",
    };
    eprintln!("Error from server (NotFound): {group} {name:?} not found");
    1
}

/// `get deploy|rs|jobs [NAME...]` with kubectl's columns, or -o json|yaml|name.
pub fn get(
    g: &GlobalOpts,
    resource: &str,
    names: &[String],
    ns: Option<&str>,
    all: bool,
    output: Option<&str>,
) -> anyhow::Result<i32> {
    let store = ObjectStore::new(&g.data_dir);
    let ns_filter = if all {
        None
    } else {
        Some(ns.unwrap_or("default"))
    };
    let (rows, values, rc) = match resource {
        "deployments" => {
            collect::<Deployment>(&store, ns_filter, names, all, (DEPLOY_COLUMNS, deploy_row))
        }
        "replicasets" => collect::<ReplicaSet>(&store, ns_filter, names, all, (RS_COLUMNS, rs_row)),
        "cronjobs" => collect::<CronJob>(
            &store,
            ns_filter,
            names,
            all,
            (CRONJOB_COLUMNS, cronjob_row),
        ),
        _ => collect::<Job>(&store, ns_filter, names, all, (JOB_COLUMNS, job_row)),
    };
    match output {
        Some("json") | Some("yaml") => {
            let v = if values.len() == 1 && !names.is_empty() {
                values[0].clone()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values, "metadata": {"resourceVersion": ""}})
            };
            if output == Some("json") {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", serde_yaml_ng::to_string(&v)?);
            }
        }
        Some("name") => {
            let kind = match resource {
                "deployments" => "deployment.apps",
                "replicasets" => "replicaset.apps",
                "cronjobs" => "cronjob.batch",
                _ => "job.batch",
            };
            for v in &values {
                println!(
                    "{kind}/{}",
                    v.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                );
            }
        }
        _ if rows.len() <= 1 && rc == 0 => match ns_filter {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        },
        _ if rows.len() > 1 => print!("{}", table(&rows)),
        _ => {}
    }
    Ok(rc)
}

type Row = Vec<String>;

fn collect<T: Workload>(
    store: &ObjectStore,
    ns: Option<&str>,
    names: &[String],
    all: bool,
    (header, row): (&[&str], fn(&T) -> Row),
) -> (Vec<Row>, Vec<Value>, i32) {
    let mut objs: Vec<T> = store::list(store, ns);
    let mut rc = 0;
    if !names.is_empty() {
        for n in names {
            if !objs.iter().any(|o| &meta::name(o.meta()) == n) {
                rc = not_found(T::RESOURCE, n);
            }
        }
        objs.retain(|o| names.contains(&meta::name(o.meta())));
    }
    let mut head: Row = header.iter().map(|h| h.to_string()).collect();
    if all {
        head.insert(0, "NAMESPACE".into());
    }
    let mut rows = vec![head];
    let mut values = Vec::new();
    for o in &objs {
        let mut r = row(o);
        if all {
            r.insert(0, meta::ns(o.meta()));
        }
        rows.push(r);
        let mut v = serde_json::to_value(o).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), T::API_VERSION.into());
            m.insert("kind".into(), T::KIND.into());
        }
        values.push(v);
    }
    (rows, values, rc)
}

const DEPLOY_COLUMNS: &[&str] = &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
const RS_COLUMNS: &[&str] = &["NAME", "DESIRED", "CURRENT", "READY", "AGE"];
const JOB_COLUMNS: &[&str] = &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"];
const CRONJOB_COLUMNS: &[&str] = &[
    "NAME",
    "SCHEDULE",
    "TIMEZONE",
    "SUSPEND",
    "ACTIVE",
    "LAST SCHEDULE",
    "AGE",
];

fn cronjob_row(c: &CronJob) -> Row {
    let spec = c.spec.clone().unwrap_or_default();
    let st = c.status.clone().unwrap_or_default();
    vec![
        meta::name(&c.metadata),
        spec.schedule.clone(),
        spec.time_zone.clone().unwrap_or_else(|| "<none>".into()),
        if spec.suspend == Some(true) {
            "True"
        } else {
            "False"
        }
        .into(),
        st.active.map(|a| a.len()).unwrap_or(0).to_string(),
        match &st.last_schedule_time {
            Some(t) => age(Some(&t.0)),
            None => "<none>".into(),
        },
        age(c.metadata.creation_timestamp.as_ref().map(|t| &t.0)),
    ]
}

fn deploy_row(d: &Deployment) -> Row {
    let st = d.status.clone().unwrap_or_default();
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    vec![
        meta::name(&d.metadata),
        format!("{}/{want}", st.ready_replicas.unwrap_or(0)),
        st.updated_replicas.unwrap_or(0).to_string(),
        st.available_replicas.unwrap_or(0).to_string(),
        age(d.metadata.creation_timestamp.as_ref().map(|t| &t.0)),
    ]
}

fn rs_row(rs: &ReplicaSet) -> Row {
    let st = rs.status.clone().unwrap_or_default();
    vec![
        meta::name(&rs.metadata),
        rs.spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .to_string(),
        st.replicas.to_string(),
        st.ready_replicas.unwrap_or(0).to_string(),
        age(rs.metadata.creation_timestamp.as_ref().map(|t| &t.0)),
    ]
}

/// kubectl's STATUS column of `get jobs`.
pub fn job_status(j: &Job) -> &'static str {
    let st = j.status.clone().unwrap_or_default();
    let has = |t: &str| {
        st.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if has("Failed") {
        "Failed"
    } else if has("Complete") {
        "Complete"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if j.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else {
        "Running"
    }
}

fn job_row(j: &Job) -> Row {
    let st = j.status.clone().unwrap_or_default();
    let completions = match j.spec.as_ref().and_then(|s| s.completions) {
        Some(c) => format!("{}/{c}", st.succeeded.unwrap_or(0)),
        None => format!(
            "{}/1 of {}",
            st.succeeded.unwrap_or(0),
            j.spec.as_ref().and_then(|s| s.parallelism).unwrap_or(1)
        ),
    };
    let duration = match (&st.start_time, &st.completion_time) {
        (Some(s), Some(c)) => human_duration(c.0.as_second() - s.0.as_second()),
        (Some(s), None) => human_duration(crate::util::now().as_second() - s.0.as_second()),
        _ => String::new(),
    };
    vec![
        meta::name(&j.metadata),
        job_status(j).into(),
        completions,
        duration,
        age(j.metadata.creation_timestamp.as_ref().map(|t| &t.0)),
    ]
}

fn scale(g: &GlobalOpts, a: ScaleArgs) -> anyhow::Result<i32> {
    let Some((resource, name)) = target(&a.target) else {
        eprintln!(
            "error: the server doesn't have a resource type {:?}",
            a.target.join(" ")
        );
        return Ok(1);
    };
    let store = ObjectStore::new(&g.data_dir);
    let ns = ns_or_default(&a.namespace);
    let replicas = a.replicas;
    let done = match resource {
        "deployments" => change::<Deployment>(&store, &ns, &name, |d| {
            d.spec.get_or_insert_with(Default::default).replicas = Some(replicas)
        }),
        "replicasets" => change::<ReplicaSet>(&store, &ns, &name, |d| {
            d.spec.get_or_insert_with(Default::default).replicas = Some(replicas)
        }),
        _ => {
            eprintln!("error: {resource} cannot be scaled by podrun");
            return Ok(1);
        }
    }?;
    if !done {
        return Ok(not_found(resource, &name));
    }
    let kind = if resource == "deployments" {
        "deployment.apps"
    } else {
        "replicaset.apps"
    };
    println!("{kind}/{name} scaled");
    Ok(0)
}

/// Changes a stored object under the lock, bumping its generation when its spec changed.
fn change<T: Workload>(
    store: &ObjectStore,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut T),
) -> anyhow::Result<bool> {
    let Some(obj) = get_one::<T>(store, ns, name) else {
        return Ok(false);
    };
    Ok(store::modify(store, &obj, |cur| {
        let before = serde_json::to_value(&*cur)
            .ok()
            .and_then(|v| v.get("spec").cloned());
        f(cur);
        let after = serde_json::to_value(&*cur)
            .ok()
            .and_then(|v| v.get("spec").cloned());
        if before != after {
            let m = cur.meta_mut();
            m.generation = Some(m.generation.unwrap_or(1) + 1);
        }
    })?)
}

fn rollout(g: &GlobalOpts, a: RolloutArgs) -> anyhow::Result<i32> {
    let Some(("deployments", name)) = target(&a.target) else {
        eprintln!("error: podrun's rollout works on deployment/NAME");
        return Ok(1);
    };
    let store = ObjectStore::new(&g.data_dir);
    let ns = ns_or_default(&a.namespace);
    let Some(d) = get_one::<Deployment>(&store, &ns, &name) else {
        return Ok(not_found("deployments", &name));
    };
    match a.action.as_str() {
        "status" => super::workloads_rollout::status(&store, &ns, &name, &a.timeout, a.watch),
        "history" => Ok(super::workloads_rollout::history(&store, &d)),
        "undo" => super::workloads_rollout::undo(&store, &d, a.to_revision),
        "restart" => {
            let now = crate::util::now_seconds().0.to_string();
            change::<Deployment>(&store, &ns, &name, |cur| {
                let spec = cur.spec.get_or_insert_with(Default::default);
                let tm = spec.template.metadata.get_or_insert_with(Default::default);
                tm.annotations
                    .get_or_insert_with(Default::default)
                    .insert("kubectl.kubernetes.io/restartedAt".into(), now);
            })?;
            println!("deployment.apps/{name} restarted");
            Ok(0)
        }
        other => {
            eprintln!("error: unknown command {other:?} for \"podrun rollout\"");
            Ok(1)
        }
    }
}

/// `delete deployment|rs|job NAME... [--cascade=background|foreground|orphan]`.
pub fn delete(
    g: &GlobalOpts,
    resource: &str,
    names: &[String],
    ns: Option<&str>,
    cascade: &str,
) -> anyhow::Result<i32> {
    let store = ObjectStore::new(&g.data_dir);
    let ns = ns.unwrap_or("default");
    let c = ctx(g);
    let mut rc = 0;
    for name in names {
        let found = match resource {
            "deployments" => delete_one::<Deployment>(&c, &store, ns, name, cascade)?,
            "replicasets" => delete_one::<ReplicaSet>(&c, &store, ns, name, cascade)?,
            "cronjobs" => delete_one::<CronJob>(&c, &store, ns, name, cascade)?,
            _ => delete_one::<Job>(&c, &store, ns, name, cascade)?,
        };
        if found {
            let kind = match resource {
                "deployments" => "deployment.apps",
                "replicasets" => "replicaset.apps",
                "cronjobs" => "cronjob.batch",
                _ => "job.batch",
            };
            println!("{kind} {name:?} deleted");
        } else {
            rc = not_found(resource, name);
        }
    }
    Ok(rc)
}

fn delete_one<T: Workload>(
    ctx: &PodContext,
    store: &ObjectStore,
    ns: &str,
    name: &str,
    cascade: &str,
) -> anyhow::Result<bool> {
    let Some(obj) = get_one::<T>(store, ns, name) else {
        return Ok(false);
    };
    let uid = obj.meta().uid.clone().unwrap_or_default();
    match cascade {
        "foreground" => {
            store::modify(store, &obj, mark_foreground)?;
            // kubectl waits (--wait) until the object is gone: after its dependents.
            let deadline = Instant::now() + Duration::from_secs(120);
            while get_one::<T>(store, ns, name)
                .is_some_and(|o| o.meta().uid.as_deref() == Some(&uid))
            {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        "orphan" => {
            orphan_dependents(store, ns, &uid)?;
            super::workloads_rollout::orphan_pods(ctx, std::slice::from_ref(&uid));
            store.delete(&store::key_of(&obj))?;
        }
        _ => {
            store.delete(&store::key_of(&obj))?;
        }
    }
    Ok(true)
}

/// `--cascade=orphan`: the dependents lose their owner reference (and so stay).
fn orphan_dependents(store: &ObjectStore, ns: &str, uid: &str) -> anyhow::Result<()> {
    let strip = |m: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        if let Some(refs) = m.owner_references.as_mut() {
            refs.retain(|r| r.uid != uid);
        }
    };
    for rs in store::list::<ReplicaSet>(store, Some(ns)) {
        if meta::controlled_by(&rs.metadata, uid) {
            store::modify(store, &rs, |cur| strip(&mut cur.metadata))?;
        }
    }
    for j in store::list::<Job>(store, Some(ns)) {
        if meta::controlled_by(&j.metadata, uid) {
            store::modify(store, &j, |cur| strip(&mut cur.metadata))?;
        }
    }
    Ok(())
}

pub(super) fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// `delete deployment NAME...` or `delete deployment/NAME`: the resource and names.
pub fn delete_target(args: &[String]) -> Option<(&'static str, Vec<String>)> {
    let first = args.first()?;
    match first.split_once('/') {
        Some((r, n)) => Some((resource_name(r)?, vec![n.to_string()])),
        None => Some((resource_name(first)?, args[1..].to_vec())),
    }
}
