use super::*;

fn cronjob(schedule: &str, policy: &str) -> CronJob {
    let text = format!("apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: tick, uid: c1, creationTimestamp: '2026-01-01T00:00:30Z'}}\nspec:\n  schedule: '{schedule}'\n  concurrencyPolicy: {policy}\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: busybox}}]\n");
    let v: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let mut c: CronJob = serde_json::from_value(v).expect("cronjob");
    c.set_defaults();
    c
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("time")
}

#[test]
fn schedules_take_five_fields_and_macros_not_seconds_or_tz() {
    assert!(parse_schedule("*/1 * * * *").is_ok());
    assert!(parse_schedule("@hourly").is_ok());
    assert!(parse_schedule("@midnight").is_ok());
    assert!(parse_schedule("0 * * * * *").is_err(), "six fields");
    assert!(parse_schedule("CRON_TZ=UTC 0 * * * *").is_err());
    let mut c = cronjob("nope", "Allow");
    c.set_defaults();
    let err = c.validate().expect_err("invalid").to_string();
    assert!(
        err.starts_with("The CronJob \"tick\" is invalid: spec.schedule: Invalid value: \"nope\""),
        "{err}"
    );
}

#[test]
fn the_most_recent_missed_time_runs_once() {
    let c = cronjob("*/1 * * * *", "Allow");
    let p = plan(&c, &[], at("2026-01-01T00:05:10Z"));
    assert_eq!(
        p.run_at,
        Some(at("2026-01-01T00:05:00Z")),
        "one catch-up run, the latest"
    );
    assert_eq!(
        job_name(&c, at("2026-01-01T00:05:00Z")),
        format!("tick-{}", at("2026-01-01T00:05:00Z").as_second() / 60)
    );
    assert!(p.warning.is_none());
    let p = plan(&c, &[], at("2026-01-01T00:00:50Z"));
    assert_eq!(p.run_at, None, "nothing due yet");
}

#[test]
fn past_a_hundred_missed_times_kube_warns() {
    let c = cronjob("*/1 * * * *", "Allow");
    let p = plan(&c, &[], at("2026-01-01T03:00:10Z"));
    assert_eq!(p.run_at, Some(at("2026-01-01T03:00:00Z")));
    assert!(
        p.warning
            .as_deref()
            .is_some_and(|w| w.starts_with("too many missed start times: 101")),
        "{:?}",
        p.warning
    );
    let mut c = c;
    if let Some(s) = c.spec.as_mut() {
        s.starting_deadline_seconds = Some(200);
    }
    assert!(
        plan(&c, &[], at("2026-01-01T03:00:10Z")).warning.is_none(),
        "the deadline bounds the look-back"
    );
}

#[test]
fn forbid_skips_while_a_job_runs_and_replace_deletes_it() {
    let running = new_job(&cronjob("*/1 * * * *", "Allow"), at("2026-01-01T00:01:00Z"));
    let c = cronjob("*/1 * * * *", "Forbid");
    assert_eq!(
        plan(&c, &[&running], at("2026-01-01T00:02:05Z")).run_at,
        None
    );
    let c = cronjob("*/1 * * * *", "Replace");
    let p = plan(&c, &[&running], at("2026-01-01T00:02:05Z"));
    assert_eq!(p.run_at, Some(at("2026-01-01T00:02:00Z")));
    assert_eq!(p.delete, [meta::name(&running.metadata)]);
}

#[test]
fn time_zones_move_the_schedule() {
    let mut c = cronjob("0 9 * * *", "Allow");
    if let Some(s) = c.spec.as_mut() {
        s.time_zone = Some("Europe/Paris".into());
    }
    assert!(c.validate().is_ok());
    let p = plan(&c, &[], at("2026-01-01T08:30:00Z"));
    assert_eq!(
        p.run_at,
        Some(at("2026-01-01T08:00:00Z")),
        "09:00 in Paris is 08:00 UTC in winter"
    );
}
