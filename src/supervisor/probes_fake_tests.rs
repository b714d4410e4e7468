//! Probes against a fake pod (see [`ProbeHost`]): gating, thresholds and timing, with
//! no root, no container and no process.
use super::*;
use k8s_openapi::api::core::v1::ExecAction;
use std::collections::HashMap;

/// A pod of one container whose exec probes end as the test says.
#[derive(Default)]
struct Fake {
    container: Container,
    runner: ProbeRunner,
    started: bool,
    run_id: String,
    /// The command (its first word) and what it ends with: exit code and output.
    script: HashMap<String, (i32, &'static str)>,
    /// Commands that cannot even be started: the spawn error.
    refuse: Option<String>,
    spawned: Vec<String>,
    events: Vec<String>,
}

impl ProbeHost for Fake {
    fn spawn_exec(
        &mut self,
        _c: usize,
        cmd: &[String],
        out: RawFd,
    ) -> Result<(i32, OwnedFd), String> {
        if let Some(e) = &self.refuse {
            return Err(e.clone());
        }
        let name = cmd.first().cloned().unwrap_or_default();
        let (_, text) = self.script.get(&name).copied().unwrap_or((0, ""));
        // The probe's output file: what the command "wrote".
        // SAFETY: out is the run's open memfd; the bytes are ours.
        unsafe { libc::write(out, text.as_ptr().cast(), text.len()) };
        self.spawned.push(name);
        // No process: a pid nobody has, and any descriptor as its "pidfd".
        let fd = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        Ok((i32::MAX, fd.into()))
    }
    fn pod_socket(&mut self, addr: &SocketAddr, flags: libc::c_int) -> std::io::Result<OwnedFd> {
        new_socket(addr, flags)
    }
    fn pod_ip(&self) -> Option<&str> {
        None
    }
    fn container(&self, _c: usize) -> &Container {
        &self.container
    }
    fn run_id(&self, _c: usize) -> Option<&str> {
        Some(&self.run_id)
    }
    fn started(&self, _c: usize) -> bool {
        self.started
    }
    fn probes(&mut self, _c: usize) -> &mut ProbeRunner {
        &mut self.runner
    }
    fn event(&mut self, _c: usize, type_: &str, reason: &str, message: &str) {
        self.events.push(format!("{type_} {reason} {message}"));
    }
}

fn exec_probe(cmd: &str, f: impl FnOnce(&mut Probe)) -> Option<Probe> {
    let mut p = Probe {
        exec: Some(ExecAction {
            command: Some(vec![cmd.to_string()]),
        }),
        ..Default::default()
    };
    f(&mut p);
    Some(p)
}

/// A fake whose container has the given probes, run reset at `epoch`.
fn fake(c: Container, epoch: Instant, started: bool) -> Fake {
    let mut f = Fake {
        runner: ProbeRunner::new(&c),
        container: c,
        started,
        run_id: "run-1".into(),
        ..Default::default()
    };
    f.runner.reset(epoch, epoch);
    f
}

/// One pass of the loop at `now`: due probes start, and each run ends as scripted.
fn pass(f: &mut Fake, now: Instant) -> Vec<(ProbeKind, ProbeOutcome)> {
    let mut runs = Vec::new();
    let mut out = due(f, 0, now, &mut runs);
    for mut run in runs {
        let name = match &run.work {
            Work::Exec { cmd, .. } => cmd.first().cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let code = f.script.get(&name).map_or(0, |s| s.0);
        run.exited(code);
        if let Some((_, kind, o)) = finish_run(f, run) {
            out.push((kind, o));
        }
    }
    out
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn failed(reached: bool) -> impl Fn(&ProbeOutcome) -> bool {
    move |o| matches!(o, ProbeOutcome::Failed { threshold_reached, .. } if *threshold_reached == reached)
}

#[test]
fn the_first_run_waits_for_initial_delay_seconds() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("live", |p| p.initial_delay_seconds = Some(5)),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    assert_eq!(f.runner.next_due(), Some(t0 + secs(5)));
    assert!(pass(&mut f, t0 + secs(4)).is_empty());
    assert_eq!(f.spawned, Vec::<String>::new());
    assert_eq!(pass(&mut f, t0 + secs(5)).len(), 1);
    assert_eq!(f.spawned, ["live"]);
}

#[test]
fn first_runs_fall_on_the_pods_probe_grid() {
    let epoch = Instant::now();
    let c = Container {
        readiness_probe: exec_probe("ready", |_| {}),
        ..Default::default()
    };
    let mut f = fake(c, epoch, true);
    f.runner.reset(epoch + Duration::from_millis(300), epoch);
    assert_eq!(f.runner.next_due(), Some(epoch + PROBE_GRID));
}

#[test]
fn runs_come_every_period_and_ticks_missed_are_dropped() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("live", |p| p.period_seconds = Some(10)),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    pass(&mut f, t0);
    assert_eq!(f.runner.next_due(), Some(t0 + secs(10)));
    assert!(pass(&mut f, t0 + secs(9)).is_empty());
    // The loop was away for three periods: one run, and the cadence is kept.
    assert_eq!(pass(&mut f, t0 + secs(35)).len(), 1);
    assert_eq!(f.runner.next_due(), Some(t0 + secs(40)));
    assert_eq!(f.spawned.len(), 2);
}

#[test]
fn the_period_defaults_to_ten_seconds() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("live", |_| {}),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    pass(&mut f, t0);
    assert_eq!(f.runner.next_due(), Some(t0 + secs(10)));
}

fn gated_container() -> Container {
    Container {
        startup_probe: exec_probe("startup", |_| {}),
        liveness_probe: exec_probe("live", |_| {}),
        readiness_probe: exec_probe("ready", |_| {}),
        ..Default::default()
    }
}

#[test]
fn until_the_startup_probe_succeeds_liveness_and_readiness_do_not_run() {
    let t0 = Instant::now();
    let mut f = fake(gated_container(), t0, false);
    let out = pass(&mut f, t0);
    assert_eq!(f.spawned, ["startup"]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, ProbeKind::Startup);
    assert_eq!(
        out[0].1,
        ProbeOutcome::Succeeded {
            threshold_reached: true
        }
    );
}

#[test]
fn once_started_the_startup_probe_stops_and_the_others_run() {
    let t0 = Instant::now();
    let mut f = fake(gated_container(), t0, true);
    let kinds: Vec<ProbeKind> = pass(&mut f, t0).into_iter().map(|(k, _)| k).collect();
    assert_eq!(f.spawned, ["live", "ready"]);
    assert_eq!(kinds, [ProbeKind::Liveness, ProbeKind::Readiness]);
}

#[test]
fn liveness_fails_the_container_at_the_failure_threshold_and_then_stops() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("live", |p| {
            p.failure_threshold = Some(3);
            p.period_seconds = Some(1);
        }),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    f.script.insert("live".into(), (1, "not yet"));
    let mut seen = Vec::new();
    for s in 0..3 {
        seen.extend(pass(&mut f, t0 + secs(s)));
    }
    assert!(failed(false)(&seen[0].1) && failed(false)(&seen[1].1));
    assert!(failed(true)(&seen[2].1), "{seen:?}");
    // The container is being restarted: no further runs until its next run resets.
    assert_eq!(f.runner.next_due(), None);
    assert!(pass(&mut f, t0 + secs(10)).is_empty());
}

#[test]
fn readiness_goes_on_probing_after_its_threshold() {
    let t0 = Instant::now();
    let c = Container {
        readiness_probe: exec_probe("ready", |p| {
            p.failure_threshold = Some(1);
            p.period_seconds = Some(1);
        }),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    f.script.insert("ready".into(), (1, ""));
    let out = pass(&mut f, t0);
    assert!(failed(true)(&out[0].1));
    assert_eq!(f.runner.next_due(), Some(t0 + secs(1)));
    assert!(failed(true)(&pass(&mut f, t0 + secs(1))[0].1));
}

#[test]
fn the_success_threshold_needs_consecutive_successes() {
    let t0 = Instant::now();
    let c = Container {
        readiness_probe: exec_probe("ready", |p| {
            p.success_threshold = Some(2);
            p.period_seconds = Some(1);
        }),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    let ok = |reached| ProbeOutcome::Succeeded {
        threshold_reached: reached,
    };
    assert_eq!(pass(&mut f, t0)[0].1, ok(false));
    f.script.insert("ready".into(), (1, ""));
    assert!(failed(false)(&pass(&mut f, t0 + secs(1))[0].1));
    f.script.clear();
    assert_eq!(
        pass(&mut f, t0 + secs(2))[0].1,
        ok(false),
        "a failure restarts the count"
    );
    assert_eq!(pass(&mut f, t0 + secs(3))[0].1, ok(true));
}

#[test]
fn a_success_clears_the_failures_counted() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("live", |p| {
            p.failure_threshold = Some(2);
            p.period_seconds = Some(1);
        }),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    f.script.insert("live".into(), (1, ""));
    pass(&mut f, t0);
    f.script.clear();
    pass(&mut f, t0 + secs(1));
    f.script.insert("live".into(), (1, ""));
    assert!(failed(false)(&pass(&mut f, t0 + secs(2))[0].1));
}

#[test]
fn a_run_still_going_drops_the_next_tick() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("slow", |p| p.period_seconds = Some(1)),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    let mut runs = Vec::new();
    assert!(due(&mut f, 0, t0, &mut runs).is_empty());
    assert_eq!(runs.len(), 1);
    let mut more = Vec::new();
    due(&mut f, 0, t0 + secs(1), &mut more);
    assert!(more.is_empty(), "no second run while the first goes on");
    assert_eq!(f.spawned, ["slow"]);
    assert_eq!(f.runner.next_due(), Some(t0 + secs(2)));
}

#[test]
fn a_run_is_bounded_by_timeout_seconds_at_least_one_second() {
    let t0 = Instant::now();
    for (timeout, bound) in [(Some(3), 3), (None, 1), (Some(0), 1)] {
        let c = Container {
            liveness_probe: exec_probe("live", |p| p.timeout_seconds = timeout),
            ..Default::default()
        };
        let mut f = fake(c, t0, true);
        let mut runs = Vec::new();
        due(&mut f, 0, t0, &mut runs);
        assert_eq!(
            runs[0].deadline,
            t0 + secs(bound),
            "timeoutSeconds {timeout:?}"
        );
    }
}

#[test]
fn a_failed_exec_says_its_output_or_else_its_exit_code() {
    let t0 = Instant::now();
    let c = Container {
        readiness_probe: exec_probe("check", |p| p.period_seconds = Some(1)),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    f.script.insert("check".into(), (1, "db down\n"));
    let message = |o: &ProbeOutcome| match o {
        ProbeOutcome::Failed { message, .. } => message.clone(),
        o => panic!("{o:?}"),
    };
    assert_eq!(message(&pass(&mut f, t0)[0].1), "db down\n");
    f.script.insert("check".into(), (2, ""));
    assert_eq!(
        message(&pass(&mut f, t0 + secs(1))[0].1),
        "command \"check\" exited with 2"
    );
}

#[test]
fn a_probe_that_cannot_start_fails_with_the_reason() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("live", |_| {}),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    f.refuse = Some("container is not running".into());
    let out = pass(&mut f, t0);
    assert_eq!(
        out[0].1,
        ProbeOutcome::Failed {
            message: "container is not running".into(),
            threshold_reached: false
        }
    );
}

#[test]
fn a_result_for_an_earlier_run_of_the_container_is_dropped() {
    let t0 = Instant::now();
    let c = Container {
        liveness_probe: exec_probe("live", |_| {}),
        ..Default::default()
    };
    let mut f = fake(c, t0, true);
    let mut runs = Vec::new();
    due(&mut f, 0, t0, &mut runs);
    f.run_id = "run-2".into();
    let mut run = runs.remove(0);
    run.exited(1);
    assert_eq!(finish_run(&mut f, run), None);
}

#[test]
fn the_probe_level_grace_period_is_the_probes_own() {
    let c = Container {
        liveness_probe: exec_probe("live", |p| p.termination_grace_period_seconds = Some(7)),
        readiness_probe: exec_probe("ready", |_| {}),
        ..Default::default()
    };
    let r = ProbeRunner::new(&c);
    assert_eq!(r.grace(ProbeKind::Liveness), Some(secs(7)));
    assert_eq!(r.grace(ProbeKind::Readiness), None);
    assert!(r.has(ProbeKind::Readiness) && !r.has(ProbeKind::Startup));
}
