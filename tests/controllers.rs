//! The workload controllers of the node agent, through `apply` with the agent running:
//! a Deployment keeps its replicas (a deleted pod is replaced), rolls out an image
//! change gated by readiness and rolls back, scales, and cascades its deletion; a Job
//! completes despite a failing pod and an always-failing one stops at backoffLimit.
//! Without an agent, apply of a Deployment says that it needs `podrun serve`.
mod pod_support;
use pod_support::*;

/// Writes `text` as a manifest file of the world and applies it; returns stdout.
fn apply(w: &World, name: &str, text: &str) -> String {
    let path = w.root.parent().expect("base").join(name);
    std::fs::write(&path, text).expect("write manifest");
    w.ok(&["apply", "-f", path.to_str().expect("path")])
}

/// The rows of `get RESOURCE` after the header, split into columns.
fn rows(w: &World, resource: &str) -> Vec<Vec<String>> {
    let out = w.run(&["get", resource]);
    text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// The names of the pods whose name starts with `prefix`, and how many are Running.
fn pods_of(w: &World, prefix: &str) -> Vec<(String, String)> {
    rows(w, "pods")
        .into_iter()
        .filter(|r| r[0].starts_with(prefix))
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect()
}

fn deployment(image: &str, replicas: u32, ready_cmd: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: app
        image: {image}
        command: [sh, -c, 'sleep 100000']
        readinessProbe:
          exec: {{command: [sh, -c, '{ready_cmd}']}}
          periodSeconds: 1
"
    )
}

fn wait_ready(w: &World, want: &str, secs: u64) {
    w.wait_for(secs, &format!("deploy web READY {want}"), || {
        let r = rows(w, "deploy");
        r.first()
            .filter(|r| r[1] == want && r[2] == r[3])
            .map(|_| ())
    });
}

#[test]
fn apply_of_a_deployment_without_an_agent_says_it_needs_podrun_serve() {
    let w = private_world("ctl-noagent");
    let path = w.root.parent().expect("base").join("d.yaml");
    std::fs::write(&path, deployment("busybox:1.30", 1, "true")).expect("write");
    let out = w.run(&["apply", "-f", path.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("needs the node agent") && err.contains("podrun serve"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_deployment_keeps_rolls_out_rolls_back_scales_and_cascades() {
    let w = private_world("ctl-deploy");
    let _agent = Agent::start(&w);
    let out = apply(&w, "d.yaml", &deployment("busybox:1.30", 3, "true"));
    assert_eq!(out.trim(), "deployment.apps/web created");
    wait_ready(&w, "3/3", 60);
    let rs = rows(&w, "rs");
    assert_eq!(rs.len(), 1, "{rs:?}");
    let old_rs = rs[0][0].clone();
    assert_eq!(&rs[0][1..4], ["3", "3", "3"]);
    let pods = pods_of(&w, &format!("{old_rs}-"));
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(
        pods.iter().all(|(n, _)| n.len() == old_rs.len() + 6),
        "{pods:?}"
    );
    // A deleted pod is replaced.
    w.ok(&[
        "delete",
        "pod",
        &pods[0].0,
        "--grace-period",
        "0",
        "--force",
    ]);
    w.wait_for(30, "a replacement pod", || {
        let now = pods_of(&w, &format!("{old_rs}-"));
        (now.len() == 3 && !now.iter().any(|(n, _)| n == &pods[0].0)).then_some(())
    });
    wait_ready(&w, "3/3", 60);
    // An image change whose new pods never get ready: the rollout stops at one new pod.
    let out = apply(&w, "d.yaml", &deployment("nginx:1.17.1", 3, "false"));
    assert_eq!(out.trim(), "deployment.apps/web configured");
    std::thread::sleep(std::time::Duration::from_secs(6));
    let rs = rows(&w, "rs");
    assert_eq!(rs.len(), 2, "{rs:?}");
    let new = rs.iter().find(|r| r[0] != old_rs).expect("new rs");
    assert_eq!(
        new[1], "1",
        "maxSurge 25% of 3: one new pod at a time: {rs:?}"
    );
    let old = rs.iter().find(|r| r[0] == old_rs).expect("old rs");
    assert_eq!(
        old[1], "3",
        "no old pod goes while the new one is not ready: {rs:?}"
    );
    let d = rows(&w, "deploy");
    assert_eq!(&d[0][1..4], ["3/3", "1", "3"], "{d:?}");
    let st = w.run(&["rollout", "status", "deployment/web", "--watch=false"]);
    assert!(
        text(&st.stdout).contains("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."),
        "{}",
        text(&st.stdout)
    );
    let hist = w.ok(&["rollout", "history", "deployment/web"]);
    assert!(
        hist.contains("REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>"),
        "{hist}"
    );
    assert_eq!(
        w.ok(&["rollout", "undo", "deployment/web"]).trim(),
        "deployment.apps/web rolled back"
    );
    w.wait_for(60, "the old ReplicaSet back alone", || {
        let rs = rows(&w, "rs");
        let old = rs.iter().find(|r| r[0] == old_rs)?;
        let new_gone = rs.iter().all(|r| r[0] == old_rs || r[1] == "0");
        (old[1] == "3" && old[3] == "3" && new_gone).then_some(())
    });
    let st = w.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(
        st.contains("deployment \"web\" successfully rolled out"),
        "{st}"
    );
    // Scale to 5, then to 0.
    assert_eq!(
        w.ok(&["scale", "deployment/web", "--replicas=5"]).trim(),
        "deployment.apps/web scaled"
    );
    wait_ready(&w, "5/5", 60);
    w.ok(&["scale", "deployment/web", "--replicas=0"]);
    w.wait_for(60, "no pods of web", || {
        pods_of(&w, "web-").is_empty().then_some(())
    });
    // The status follows the pods on the controller's next turn, as kubectl shows it.
    wait_ready(&w, "0/0", 10);
    // Delete cascades (background): ReplicaSets and pods go.
    w.ok(&["scale", "deployment/web", "--replicas=2"]);
    wait_ready(&w, "2/2", 60);
    assert_eq!(
        w.ok(&["delete", "deployment", "web"]).trim(),
        "deployment.apps \"web\" deleted"
    );
    w.wait_for(60, "the ReplicaSets and pods gone", || {
        (rows(&w, "rs").is_empty() && pods_of(&w, "web-").is_empty()).then_some(())
    });
}

fn job(name: &str, completions: u32, parallelism: u32, script: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  completions: {completions}
  parallelism: {parallelism}
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 0
      containers:
      - name: work
        image: busybox:1.30
        command: [sh, -c, '{script}']
"
    )
}

#[test]
fn jobs_complete_past_a_failure_and_stop_at_the_backoff_limit() {
    let w = private_world("ctl-job");
    let _agent = Agent::start(&w);
    // The first pod to run fails (it leaves a mark in a hostPath-free way: the data dir
    // is not shared, so the mark is a file in /tmp of the host through a hostPath).
    let mark = w.root.parent().expect("base").join("mark");
    std::fs::create_dir_all(&mark).expect("mark dir");
    let text_job = job("work", 3, 2, "if [ -e /mark/failed ]; then sleep 1; exit 0; fi; touch /mark/failed; exit 1")
        .replace(
            "      containers:\n",
            &format!("      volumes:\n      - name: mark\n        hostPath: {{path: {}}}\n      containers:\n", mark.display()),
        )
        .replace("        command:", "        volumeMounts: [{name: mark, mountPath: /mark}]\n        command:");
    assert_eq!(
        apply(&w, "job.yaml", &text_job).trim(),
        "job.batch/work created"
    );
    apply(&w, "fail.yaml", &job("fails", 1, 1, "exit 3"));
    w.wait_for(90, "job work Complete 3/3", || {
        let r = rows(&w, "jobs");
        let row = r.iter().find(|r| r[0] == "work")?;
        (row[1] == "Complete" && row[2] == "3/3").then_some(())
    });
    let j = w.ok(&["get", "job", "work", "-o", "json"]);
    assert!(j.contains("\"failed\": 1"), "{j}");
    w.wait_for(90, "job fails Failed", || {
        let r = rows(&w, "jobs");
        let row = r.iter().find(|r| r[0] == "fails")?;
        (row[1] == "Failed" && row[2] == "0/1").then_some(())
    });
    let j = w.ok(&["get", "job", "fails", "-o", "json"]);
    assert!(j.contains("\"reason\": \"BackoffLimitExceeded\""), "{j}");
    assert!(
        j.contains("\"failed\": 2"),
        "backoffLimit 1: two pods failed: {j}"
    );
    w.ok(&["delete", "job", "work"]);
    w.ok(&["delete", "job", "fails"]);
    w.wait_for(60, "the jobs' pods gone", || {
        (pods_of(&w, "work-").is_empty() && pods_of(&w, "fails-").is_empty()).then_some(())
    });
}

/// Seconds past the current minute.
fn second_of_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() % 60)
        .unwrap_or(0)
}

/// This test waits for two scheduled minutes (about two to three minutes in all).
#[test]
fn a_cronjob_runs_each_minute_and_forbid_skips_while_one_runs() {
    let w = private_world("ctl-cron");
    let _agent = Agent::start(&w);
    let cron = "apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: '*/1 * * * *'
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 10
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 0
          containers:
          - name: c
            image: busybox:1.30
            command: [sh, -c, 'sleep 75']
";
    assert_eq!(
        apply(&w, "cron.yaml", cron).trim(),
        "cronjob.batch/tick created"
    );
    let header = text(&w.run(&["get", "cronjobs"]).stdout);
    assert!(
        header
            .starts_with("NAME   SCHEDULE      TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE"),
        "{header}"
    );
    let jobs = |w: &World| -> Vec<String> {
        rows(w, "jobs")
            .into_iter()
            .map(|r| r[0].clone())
            .filter(|n| n.starts_with("tick-"))
            .collect()
    };
    let first = w.wait_for(75, "the first scheduled job", || jobs(&w).first().cloned());
    // The next minute comes while the first job still runs: Forbid skips it.
    w.wait_for(70, "the next minute", || {
        (second_of_minute() == 5).then_some(())
    });
    assert_eq!(
        jobs(&w),
        std::slice::from_ref(&first),
        "Forbid: no second job while the first runs"
    );
    let cj = rows(&w, "cronjobs");
    // The schedule's spaces split it: ACTIVE is the third column from the end.
    assert_eq!(cj[0][cj[0].len() - 3], "1", "ACTIVE: {cj:?}");
    // It runs 75 s: when it ends, the skipped minute is past its startingDeadlineSeconds
    // (10 s), so the next job is the minute after.
    let second = w.wait_for(130, "the second scheduled job", || {
        jobs(&w).into_iter().find(|n| n != &first)
    });
    let minute = |n: &str| {
        n.trim_start_matches("tick-")
            .parse::<i64>()
            .expect("minutes")
    };
    assert_eq!(
        minute(&second) - minute(&first),
        2,
        "{first} then {second}: one minute skipped"
    );
    assert_eq!(
        w.ok(&["delete", "cronjob", "tick"]).trim(),
        "cronjob.batch \"tick\" deleted"
    );
    w.wait_for(60, "the jobs and pods gone", || {
        (jobs(&w).is_empty() && pods_of(&w, "tick-").is_empty()).then_some(())
    });
}
