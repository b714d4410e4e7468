//! The Job controller: runs pods until `completions` succeeded (NonIndexed or Indexed),
//! `parallelism` at a time, with the controller's back-off (10 s doubling, at most 6
//! minutes) after failures, backoffLimit, podFailurePolicy on exit codes,
//! activeDeadlineSeconds, suspend and ttlSecondsAfterFinished; Complete and Failed
//! conditions with kube's reasons.
use super::apply::{invalid, template_errors};
use super::meta;
use super::pods::{self, PodExtras};
use super::store::{self, workload_meta, Workload};
use super::Turn;
use crate::manifest::validate::InvalidError;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeSet;

pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const BACKOFF_BASE_SECS: i64 = 10;
const BACKOFF_MAX_SECS: i64 = 360;

impl Workload for Job {
    const RESOURCE: &'static str = "jobs";
    const KIND: &'static str = "Job";
    const API_VERSION: &'static str = "batch/v1";
    const GROUP_KIND: &'static str = "job.batch";
    workload_meta!();

    fn set_defaults(&mut self) {
        let uid = self.metadata.uid.clone().unwrap_or_default();
        let name = meta::name(&self.metadata);
        let spec = self.spec.get_or_insert_with(Default::default);
        if spec.completions.is_none() && spec.parallelism.is_none() {
            spec.completions = Some(1);
        }
        spec.parallelism.get_or_insert(1);
        spec.backoff_limit.get_or_insert(6);
        spec.completion_mode
            .get_or_insert_with(|| "NonIndexed".into());
        spec.suspend.get_or_insert(false);
        spec.pod_replacement_policy
            .get_or_insert_with(|| "TerminatingOrFailed".into());
        if spec.manual_selector != Some(true) {
            let labels = [
                (CONTROLLER_UID.to_string(), uid.clone()),
                (JOB_NAME.to_string(), name.clone()),
                ("controller-uid".to_string(), uid.clone()),
                ("job-name".to_string(), name),
            ];
            spec.selector = Some(LabelSelector {
                match_labels: Some([(CONTROLLER_UID.to_string(), uid)].into()),
                match_expressions: None,
            });
            let tm = spec.template.metadata.get_or_insert_with(Default::default);
            tm.labels
                .get_or_insert_with(Default::default)
                .extend(labels);
        }
        super::apply::default_template(&mut spec.template);
        // A Job's pods default to no restart policy of their own: the pod default
        // (Always) is invalid here and the user must say OnFailure or Never.
    }

    fn validate(&self) -> Result<(), InvalidError> {
        let spec = self.spec.clone().unwrap_or_default();
        let errs = template_errors(&spec.template, "spec.template.", &["OnFailure", "Never"]);
        invalid(Self::KIND, &meta::name(&self.metadata), errs)
    }
}

/// What one turn does to a Job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// New pods, each with its completion index (Indexed) or None.
    pub create: Vec<Option<i32>>,
    pub delete: Vec<String>,
    pub status: JobStatus,
    /// When the next pod may be created after a failure (the back-off).
    pub wait_until: Option<Timestamp>,
}

fn index_of(p: &Pod) -> Option<i32> {
    p.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

/// The exit codes of a pod's terminated containers, by container name.
fn exit_codes(p: &Pod) -> Vec<(String, i32)> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            Some((c.name, t.exit_code))
        })
        .collect()
}

/// The first podFailurePolicy rule a failed pod matches: (index, action, container, code).
fn matching_rule(rules: &[PodFailurePolicyRule], p: &Pod) -> Option<(usize, String, String, i32)> {
    let codes = exit_codes(p);
    rules.iter().enumerate().find_map(|(i, r)| {
        let on = r.on_exit_codes.as_ref()?;
        codes.iter().find_map(|(c, code)| {
            if on.container_name.as_deref().is_some_and(|n| n != c) {
                return None;
            }
            let listed = on.values.contains(code);
            let hit = match on.operator.as_str() {
                "In" => listed,
                "NotIn" => *code != 0 && !listed,
                _ => false,
            };
            hit.then(|| (i, r.action.clone(), c.clone(), *code))
        })
    })
}

/// When a pod ended: its latest container finish, else its creation.
fn finished_at(p: &Pod) -> i64 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(|t| t.0.as_second())
        })
        .max()
        .or_else(|| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
        .unwrap_or(0)
}

/// The back-off before the next pod after `failures` failures (kube's: 10 s doubling,
/// at most 6 minutes).
pub fn backoff_secs(failures: i32) -> i64 {
    if failures <= 0 {
        return 0;
    }
    let shift = (failures - 1).min(16) as u32;
    (BACKOFF_BASE_SECS << shift).min(BACKOFF_MAX_SECS)
}

fn finished(st: &JobStatus) -> bool {
    st.conditions
        .iter()
        .flatten()
        .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
}

fn cond(type_: &str, reason: &str, message: &str, now: &Time) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The Suspended condition: True (JobSuspended) while suspended, False (JobResumed) after.
fn suspend_conditions(conds: &mut Vec<JobCondition>, suspended: bool, already: bool, t: &Time) {
    let susp = conds
        .iter()
        .any(|c| c.type_ == "Suspended" && c.status == "True");
    if suspended && !susp && !already {
        conds.retain(|c| c.type_ != "Suspended");
        conds.push(cond("Suspended", "JobSuspended", "Job suspended", t));
    } else if !suspended && susp {
        conds.retain(|c| c.type_ != "Suspended");
        let mut c = cond("Suspended", "JobResumed", "Job resumed", t);
        c.status = "False".into();
        conds.push(c);
    }
}

/// "0-2,4": the Indexed mode's completedIndexes.
pub fn index_ranges(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().peekable();
    while let Some(&start) = it.next() {
        let mut end = start;
        while it.peek().is_some_and(|&&n| n == end + 1) {
            end += 1;
            it.next();
        }
        out.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
    }
    out.join(",")
}

/// The failures that count toward backoffLimit, a FailJob rule's reason and message if
/// one matched, and when the last failure ended.
fn failures(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    pods: &[&Pod],
    active: &[&&Pod],
) -> (i32, Option<(String, String)>, i64) {
    let rules = spec
        .pod_failure_policy
        .as_ref()
        .map(|p| p.rules.clone())
        .unwrap_or_default();
    let mut failed = 0;
    let mut fail_job: Option<(String, String)> = None;
    let mut last_failure = 0;
    for p in pods.iter().filter(|p| meta::phase(p) == "Failed") {
        match matching_rule(&rules, p) {
            Some((_, a, _, _)) if a == "Ignore" => continue,
            Some((i, a, c, code)) if a == "FailJob" && fail_job.is_none() => {
                let msg = format!("Container {c} for pod {}/{} failed with exit code {code} matching FailJob rule at index {i}", meta::ns(&p.metadata), meta::name(&p.metadata));
                fail_job = Some(("PodFailurePolicy".into(), msg));
            }
            _ => {}
        }
        failed += 1;
        last_failure = last_failure.max(finished_at(p));
    }
    // With restartPolicy OnFailure the failures are the containers' restarts.
    if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure")
    {
        failed += active
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .map(|c| c.restart_count)
            .sum::<i32>();
    }
    (failed, fail_job, last_failure)
}

/// The decision for one Job from its pods (pure: unit-tested).
pub fn plan(job: &Job, pods: &[&Pod], now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    let t = Time(now);
    let active: Vec<&&Pod> = pods.iter().filter(|p| meta::active(p)).collect();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let succeeded_pods: Vec<&&Pod> = pods
        .iter()
        .filter(|p| meta::phase(p) == "Succeeded")
        .collect();
    let done_indexes: BTreeSet<i32> = succeeded_pods.iter().filter_map(|p| index_of(p)).collect();
    let succeeded = if indexed {
        done_indexes.len() as i32
    } else {
        succeeded_pods.len() as i32
    };
    let (failed, fail_job, last_failure) = failures(&spec, pods, &active);
    let suspended = spec.suspend == Some(true);
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(t.clone());
    }
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let mut plan = Plan::default();
    let mut conds = status.conditions.clone().unwrap_or_default();
    let already = finished(&status);
    let deadline_over = spec
        .active_deadline_seconds
        .zip(status.start_time.as_ref())
        .is_some_and(|(s, st)| !suspended && st.0.as_second() + s <= now.as_second());
    let ending = if already {
        None
    } else if let Some(f) = fail_job {
        Some((false, f.0, f.1))
    } else if failed > spec.backoff_limit.unwrap_or(6) {
        Some((
            false,
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into(),
        ))
    } else if deadline_over {
        Some((
            false,
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into(),
        ))
    } else if completions.is_some_and(|c| succeeded >= c)
        || (completions.is_none() && succeeded > 0 && active.is_empty())
    {
        Some((
            true,
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into(),
        ))
    } else {
        None
    };
    if let Some((complete, reason, message)) = &ending {
        let (first, last) = if *complete {
            ("SuccessCriteriaMet", "Complete")
        } else {
            ("FailureTarget", "Failed")
        };
        conds.retain(|c| c.type_ != "Suspended");
        conds.push(cond(first, reason, message, &t));
        conds.push(cond(last, reason, message, &t));
        if *complete {
            status.completion_time = Some(t.clone());
        }
    }
    if already || ending.is_some() || suspended {
        plan.delete = active.iter().map(|p| meta::name(&p.metadata)).collect();
    } else {
        let want_total = completions
            .map(|c| (c - succeeded).max(0))
            .unwrap_or(parallelism);
        let room = (parallelism.min(want_total) - active.len() as i32).max(0) as usize;
        let wait = last_failure + backoff_secs(failed);
        if room > 0 && failed > 0 && now.as_second() < wait {
            plan.wait_until = Timestamp::from_second(wait).ok();
        } else if indexed {
            let busy: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
            plan.create = (0..completions.unwrap_or(0))
                .filter(|i| !done_indexes.contains(i) && !busy.contains(i))
                .take(room)
                .map(Some)
                .collect();
        } else {
            plan.create = vec![None; room];
        }
    }
    suspend_conditions(&mut conds, suspended, already, &t);
    status.conditions = (!conds.is_empty()).then_some(conds);
    status.active = Some(active.len() as i32).filter(|n| *n > 0);
    status.ready = Some(
        active
            .iter()
            .filter(|p| meta::ready_since(p).is_some())
            .count() as i32,
    );
    status.succeeded = Some(succeeded).filter(|n| *n > 0);
    status.failed = Some(failed).filter(|n| *n > 0);
    status.terminating = Some(
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .count() as i32,
    );
    if indexed {
        status.completed_indexes = Some(index_ranges(&done_indexes));
    }
    plan.status = status;
    plan
}

/// The pod a Job creates (for completion `index` in Indexed mode).
fn new_pod(job: &Job, index: Option<i32>) -> Option<Pod> {
    let spec = job.spec.clone().unwrap_or_default();
    let ns = meta::ns(&job.metadata);
    let name = meta::name(&job.metadata);
    let owner = meta::controller_ref(Job::API_VERSION, Job::KIND, &job.metadata);
    let mut extras = PodExtras::default();
    let pod_name = match index {
        Some(i) => {
            extras.labels.insert(COMPLETION_INDEX.into(), i.to_string());
            extras
                .annotations
                .insert(COMPLETION_INDEX.into(), i.to_string());
            extras
                .env
                .push(("JOB_COMPLETION_INDEX".into(), i.to_string()));
            extras.hostname = Some(format!("{name}-{i}"));
            format!("{name}-{i}-{}", meta::name_suffix())
        }
        None => format!("{name}-{}", meta::name_suffix()),
    };
    match pods::new_pod(&spec.template, &ns, &pod_name, owner, &extras) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("podrun serve: job {ns}/{name}: {e}");
            None
        }
    }
}

/// When a finished Job is due for deletion (ttlSecondsAfterFinished).
fn ttl_due(job: &Job, now: Timestamp) -> bool {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return false;
    };
    let st = job.status.clone().unwrap_or_default();
    let end = st
        .conditions
        .iter()
        .flatten()
        .filter(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0.as_second()))
        .max();
    end.is_some_and(|e| e + i64::from(ttl) <= now.as_second())
}

/// One turn of the Job controller over every Job.
pub fn reconcile(turn: &mut Turn) {
    let jobs: Vec<Job> = store::list(&turn.store, None);
    let mut to_create = Vec::new();
    for job in &jobs {
        if store::deleting(&job.metadata) {
            continue;
        }
        if ttl_due(job, turn.now) {
            let _ = turn.store.delete(&store::key_of(job));
            continue;
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let owned = pods::owned(&turn.pods, &uid);
        let p = plan(job, &owned, turn.now);
        let ns = meta::ns(&job.metadata);
        for name in &p.delete {
            turn.deleter.delete(&turn.ctx, &ns, name);
        }
        to_create.extend(p.create.iter().filter_map(|i| new_pod(job, *i)));
        let status = serde_json::to_value(Some(&p.status)).unwrap_or_default();
        store::write_status(&turn.store, job, status);
    }
    if !to_create.is_empty() {
        turn.changed = true;
    }
    pods::create_all(&turn.ctx, to_create);
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
