//! The CronJob controller: a Job per scheduled time (`<cronjob>-<minutes since epoch>`)
//! in the schedule's time zone, concurrencyPolicy Allow/Forbid/Replace,
//! startingDeadlineSeconds, suspend, the history limits, and missed times as kube's
//! controller takes them: only the most recent one runs, and past 100 missed the
//! "too many missed start times" warning.
use super::apply::{field_error, invalid, template_errors};
use super::meta;
use super::store::{self, workload_meta, Workload};
use super::Turn;
use crate::manifest::validate::{ErrorType, InvalidError};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{tz::TimeZone, Timestamp};

/// The annotation a CronJob's Job carries: the time it was scheduled for.
pub const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Past this many missed start times kube warns (and still runs the latest).
const TOO_MANY_MISSED: usize = 100;

impl Workload for CronJob {
    const RESOURCE: &'static str = "cronjobs";
    const KIND: &'static str = "CronJob";
    const API_VERSION: &'static str = "batch/v1";
    const GROUP_KIND: &'static str = "cronjob.batch";
    workload_meta!();

    fn set_defaults(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.concurrency_policy
            .get_or_insert_with(|| "Allow".into());
        spec.suspend.get_or_insert(false);
        spec.successful_jobs_history_limit.get_or_insert(3);
        spec.failed_jobs_history_limit.get_or_insert(1);
        if let Some(t) = spec.job_template.spec.as_mut() {
            super::apply::default_template(&mut t.template);
        }
    }

    fn validate(&self) -> Result<(), InvalidError> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut errs = Vec::new();
        if let Err(e) = parse_schedule(&spec.schedule) {
            errs.push(field_error(
                "spec.schedule",
                ErrorType::Invalid,
                Some(format!("{:?}", spec.schedule)),
                &e,
            ));
        }
        if let Some(tz) = &spec.time_zone {
            if zone(tz).is_none() {
                errs.push(field_error(
                    "spec.timeZone",
                    ErrorType::Invalid,
                    Some(format!("{tz:?}")),
                    &format!("unknown time zone {tz}"),
                ));
            }
        }
        match spec.concurrency_policy.as_deref() {
            Some("Allow" | "Forbid" | "Replace") => {}
            other => errs.push(field_error(
                "spec.concurrencyPolicy",
                ErrorType::NotSupported,
                Some(format!("{:?}", other.unwrap_or(""))),
                "supported values: \"Allow\", \"Forbid\", \"Replace\"",
            )),
        }
        match &spec.job_template.spec {
            Some(js) => errs.extend(template_errors(
                &js.template,
                "spec.jobTemplate.spec.template.",
                &["OnFailure", "Never"],
            )),
            None => errs.push(field_error(
                "spec.jobTemplate.spec",
                ErrorType::Required,
                None,
                "",
            )),
        }
        invalid(Self::KIND, &meta::name(&self.metadata), errs)
    }
}

/// The time zone `name` from the system's tzdb (/usr/share/zoneinfo, as Go's time
/// package reads it); jiff is built here without a tzdb of its own.
pub fn zone(name: &str) -> Option<TimeZone> {
    if let Ok(tz) = TimeZone::get(name) {
        return Some(tz);
    }
    let valid = !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if !valid {
        return None;
    }
    let dir = std::env::var_os("ZONEINFO").unwrap_or_else(|| "/usr/share/zoneinfo".into());
    let data = std::fs::read(std::path::Path::new(&dir).join(name)).ok()?;
    TimeZone::tzif(name, &data).ok()
}

/// A five-field schedule or a macro (@yearly, @monthly, @weekly, @daily, @midnight,
/// @hourly), as kube's parser takes them; TZ= prefixes belong in spec.timeZone.
pub fn parse_schedule(s: &str) -> Result<croner::Cron, String> {
    let s = s.trim();
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    let s = if s.eq_ignore_ascii_case("@midnight") {
        "@daily"
    } else {
        s
    };
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(s)
        .map_err(|e| e.to_string())
}

/// The scheduled times between `earliest` (exclusive) and `now` (inclusive): the most
/// recent, and how many there were (counted up to one past the warning's limit).
pub fn missed(
    cron: &croner::Cron,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let start = earliest.to_zoned(tz.clone());
    let mut count = 0;
    let mut last = None;
    for t in cron.iter_after(start) {
        let ts = t.timestamp();
        if ts > now {
            break;
        }
        count += 1;
        last = Some(ts);
        if count > TOO_MANY_MISSED {
            // The most recent one is what runs; no need to walk every minute of a year.
            last = cron
                .find_previous_occurrence(&now.to_zoned(tz.clone()), true)
                .ok()
                .map(|z| z.timestamp());
            break;
        }
    }
    (last, count)
}

/// What one turn does to a CronJob.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// A Job to create for this scheduled time.
    pub run_at: Option<Timestamp>,
    /// Jobs to delete (Replace, or past the history limits), by name.
    pub delete: Vec<String>,
    pub status: CronJobStatus,
    /// A warning for the agent's log (kube records it as an event).
    pub warning: Option<String>,
}

fn job_finished(j: &Job) -> Option<&'static str> {
    let st = j.status.as_ref()?;
    st.conditions
        .iter()
        .flatten()
        .find_map(|c| match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => Some("Complete"),
            ("Failed", "True") => Some("Failed"),
            _ => None,
        })
}

fn created(j: &Job) -> i64 {
    j.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0)
}

/// The decision for one CronJob from its Jobs (pure: unit-tested).
pub fn plan(cj: &CronJob, jobs: &[&Job], now: Timestamp) -> Plan {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut plan = Plan::default();
    let active: Vec<&&Job> = jobs.iter().filter(|j| job_finished(j).is_none()).collect();
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&&Job> = jobs
            .iter()
            .filter(|j| job_finished(j) == Some(kind))
            .collect();
        done.sort_by_key(|j| created(j));
        let surplus = done.len().saturating_sub(limit.max(0) as usize);
        plan.delete
            .extend(done.iter().take(surplus).map(|j| meta::name(&j.metadata)));
    }
    if let Some(t) = jobs
        .iter()
        .filter(|j| job_finished(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.clone())
        .max_by_key(|t| t.0)
    {
        status.last_successful_time = Some(t);
    }
    status.active = Some(active.iter().map(|j| reference(j)).collect())
        .filter(|v: &Vec<ObjectReference>| !v.is_empty());
    plan.status = status.clone();
    if spec.suspend == Some(true) {
        return plan;
    }
    let Ok(cron) = parse_schedule(&spec.schedule) else {
        return plan;
    };
    let tz = spec
        .time_zone
        .as_deref()
        .and_then(zone)
        .unwrap_or(TimeZone::UTC);
    let mut earliest = status
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(now);
    if let Some(sds) = spec.starting_deadline_seconds {
        if let Ok(floor) = Timestamp::from_second(now.as_second() - sds) {
            earliest = earliest.max(floor);
        }
    }
    let (last, count) = missed(&cron, &tz, earliest, now);
    let Some(at) = last else {
        return plan;
    };
    if count > TOO_MANY_MISSED {
        plan.warning = Some(format!("too many missed start times: {count}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"));
    }
    let name = job_name(cj, at);
    if jobs.iter().any(|j| meta::name(&j.metadata) == name) {
        plan.status.last_schedule_time = Some(Time(at));
        return plan;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => return plan,
        Some("Replace") => plan
            .delete
            .extend(active.iter().map(|j| meta::name(&j.metadata))),
        _ => {}
    }
    plan.run_at = Some(at);
    plan.status.last_schedule_time = Some(Time(at));
    plan
}

fn reference(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some(Job::API_VERSION.into()),
        kind: Some(Job::KIND.into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: None,
        field_path: None,
    }
}

/// kube's getJobName: the CronJob's name and the scheduled time in minutes.
pub fn job_name(cj: &CronJob, at: Timestamp) -> String {
    format!("{}-{}", meta::name(&cj.metadata), at.as_second() / 60)
}

/// The Job of a scheduled time, from the jobTemplate, defaulted as a created Job.
fn new_job(cj: &CronJob, at: Timestamp) -> Job {
    let spec = cj.spec.clone().unwrap_or_default();
    let tmeta = spec.job_template.metadata.clone().unwrap_or_default();
    let mut annotations = tmeta.annotations.clone().unwrap_or_default();
    annotations.insert(SCHEDULED.into(), at.to_string());
    let mut metadata = ObjectMeta {
        name: Some(job_name(cj, at)),
        namespace: cj.metadata.namespace.clone(),
        labels: tmeta.labels.clone(),
        annotations: Some(annotations),
        owner_references: Some(vec![meta::controller_ref(
            CronJob::API_VERSION,
            CronJob::KIND,
            &cj.metadata,
        )]),
        ..Default::default()
    };
    crate::manifest::defaults::default_object_meta(&mut metadata);
    metadata.generation = Some(1);
    let mut job = Job {
        metadata,
        spec: spec.job_template.spec.clone(),
        status: None,
    };
    job.set_defaults();
    job
}

/// One turn of the CronJob controller over every CronJob.
pub fn reconcile(turn: &mut Turn) {
    let cronjobs: Vec<CronJob> = store::list(&turn.store, None);
    if cronjobs.is_empty() {
        return;
    }
    let jobs: Vec<Job> = store::list(&turn.store, None);
    for cj in &cronjobs {
        if store::deleting(&cj.metadata) {
            continue;
        }
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let owned: Vec<&Job> = jobs
            .iter()
            .filter(|j| meta::controlled_by(&j.metadata, &uid))
            .collect();
        let p = plan(cj, &owned, turn.now);
        if let Some(w) = &p.warning {
            eprintln!(
                "podrun serve: cronjob {}/{}: Warning TooManyMissedTimes: {w}",
                meta::ns(&cj.metadata),
                meta::name(&cj.metadata)
            );
        }
        for name in &p.delete {
            if let Some(j) = owned.iter().find(|j| &meta::name(&j.metadata) == name) {
                let _ = turn.store.delete(&store::key_of(*j));
                turn.changed = true;
            }
        }
        if let Some(at) = p.run_at {
            if let Err(e) = store::create(&turn.store, &new_job(cj, at)) {
                eprintln!("podrun serve: cronjob {}: {e}", meta::name(&cj.metadata));
            }
            turn.changed = true;
        }
        let status = serde_json::to_value(Some(&p.status)).unwrap_or_default();
        store::write_status(&turn.store, cj, status);
    }
}

#[cfg(test)]
#[path = "cronjob_tests.rs"]
mod tests;
