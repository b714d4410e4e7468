//! Exec probes as a kubelet user sees them (root, real kernel): the probe command runs as
//! the container's own process would (user, cwd, env, namespaces, cgroups, capability
//! bounding set, seccomp, no_new_privs), a slow probe of one container does not hold up
//! the others, and a probe past its timeout fails with kubelet's message.
mod pod_support;

use pod_support::*;
use std::time::{Duration, Instant};

fn ready(w: &World, ns: &str, pod: &str, c: &str) -> bool {
    w.pod(ns, pod)["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == c).cloned())
        .is_some_and(|s| s["ready"] == true)
}

/// The readiness probe compares what it sees of itself with the container's main process
/// (pid 1 of the container's pid namespace): only an exec made exactly like the
/// container's own process passes, and the pod becomes Ready.
#[test]
fn exec_probe_runs_with_the_container_identity() {
    let w = World::new("probe-identity");
    let check = [
        r#"[ "$(id -u)" = 1000 ] || { echo "uid $(id -u)"; exit 1; }"#,
        r#"[ "$(id -G)" = "3000 4000" ] || { echo "groups $(id -G)"; exit 1; }"#,
        r#"[ "$PWD" = /tmp ] || { echo "cwd $PWD"; exit 1; }"#,
        r#"[ "$GREETING" = hello ] || { echo "env $GREETING"; exit 1; }"#,
        r#"for ns in mnt net ipc uts pid cgroup; do [ "$(readlink /proc/self/ns/$ns)" = "$(readlink /proc/1/ns/$ns)" ] || { echo "ns $ns differs"; exit 1; }; done"#,
        r#"[ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] || { echo cgroup differs; exit 1; }"#,
        r#"for f in CapBnd CapPrm CapEff Seccomp NoNewPrivs; do [ "$(grep "^$f:" /proc/self/status)" = "$(grep "^$f:" /proc/1/status)" ] || { echo "$f differs"; exit 1; }; done"#,
        r#"[ "$(cat /proc/self/oom_score_adj)" = "$(cat /proc/1/oom_score_adj)" ] || { echo oom_score_adj differs; exit 1; }"#,
        r#"[ "$(ulimit -n)" = "$(grep 'open files' /proc/1/limits | awk '{print $4}')" ] || { echo nofile differs; exit 1; }"#,
    ]
    .join("\n");
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: ident
  namespace: dev
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    supplementalGroups: [4000]
  containers:
  - name: app
    image: busybox:1.30
    workingDir: /tmp
    env:
    - name: GREETING
      value: hello
    command: ["sleep", "3600"]
    securityContext:
      allowPrivilegeEscalation: false
      seccompProfile:
        type: RuntimeDefault
      capabilities:
        drop: ["NET_RAW", "CHOWN"]
    readinessProbe:
      periodSeconds: 1
      exec:
        command:
        - sh
        - -c
        - |
{}
"#,
        check
            .lines()
            .map(|l| format!("          {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    w.up_ok(&yaml);
    let got = w.wait_for(30, "Ready through the identity probe", || {
        if ready(&w, "dev", "ident", "app") {
            return Some(true);
        }
        let d = w.describe("dev", "ident");
        // A failing check prints why: stop at once with it.
        d.contains("Readiness probe failed:").then_some(false)
    });
    assert!(got, "{}", w.describe("dev", "ident"));
}

/// A container whose liveness probe runs for 8 s (within its timeout) does not delay its
/// neighbour's readiness probe: kubelet runs each probe on its own worker.
#[test]
fn a_slow_exec_probe_does_not_hold_up_the_other_containers() {
    let w = World::new("probe-slow");
    w.up_ok(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: slow
  namespace: dev
spec:
  containers:
  - name: sleepy
    image: busybox:1.30
    command: ["sleep", "3600"]
    livenessProbe:
      periodSeconds: 1
      timeoutSeconds: 20
      exec:
        command: ["sleep", "8"]
  - name: gate
    image: busybox:1.30
    command: ["sleep", "3600"]
    readinessProbe:
      periodSeconds: 1
      exec:
        command: ["test", "-f", "/tmp/ready"]
"#,
    );
    w.wait_for(20, "gate running", || {
        (w.columns("dev", "slow").1 == "Running").then_some(())
    });
    // Let the slow probe start, then open the gate while it runs.
    std::thread::sleep(Duration::from_secs(3));
    w.ok(&[
        "exec",
        "slow",
        "-n",
        "dev",
        "-c",
        "gate",
        "--",
        "touch",
        "/tmp/ready",
    ]);
    let opened = Instant::now();
    w.wait_for(20, "gate ready", || {
        ready(&w, "dev", "slow", "gate").then_some(())
    });
    let took = opened.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "readiness waited {took:?} behind the other container's 8 s probe"
    );
    assert_eq!(w.columns("dev", "slow").2, "0", "sleepy was not restarted");
}

/// A probe command that outlives timeoutSeconds is killed and reported as kubelet does.
#[test]
fn an_exec_probe_past_its_timeout_fails_with_kubelets_message() {
    let w = World::new("probe-timeout");
    w.up_ok(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: late
  namespace: dev
spec:
  containers:
  - name: app
    image: busybox:1.30
    command: ["sleep", "3600"]
    livenessProbe:
      periodSeconds: 2
      timeoutSeconds: 1
      failureThreshold: 2
      exec:
        command: ["sleep", "5"]
"#,
    );
    w.wait_for(40, "a restart", || {
        (w.columns("dev", "late").2 != "0").then_some(())
    });
    let d = w.describe("dev", "late");
    assert!(
        d.contains(r#"Liveness probe failed: command "sleep 5" timed out"#),
        "{d}"
    );
    assert!(
        d.contains("Container app failed liveness probe, will be restarted"),
        "{d}"
    );
}

/// A probe whose program does not exist fails with the runtime's words, and the container
/// stays unready.
#[test]
fn an_exec_probe_of_a_missing_program_reports_not_found() {
    let w = World::new("probe-missing");
    w.up_ok(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: missing
  namespace: dev
spec:
  containers:
  - name: app
    image: busybox:1.30
    command: ["sleep", "3600"]
    readinessProbe:
      periodSeconds: 1
      exec:
        command: ["no-such-probe-program"]
"#,
    );
    let d = w.wait_for(20, "the probe failure", || {
        let d = w.describe("dev", "missing");
        d.contains("Readiness probe failed:").then_some(d)
    });
    assert!(d.contains("executable file not found in $PATH"), "{d}");
    assert_eq!(w.columns("dev", "missing").0, "0/1");
    // Failed probe starts leave nothing behind: the pod deletes cleanly and its
    // supervisor exits (a zombie probe child would keep the container's init waiting).
    let sup = w.supervisor_pid("dev", "missing");
    w.ok(&[
        "delete",
        "pod",
        "missing",
        "-n",
        "dev",
        "--grace-period",
        "1",
    ]);
    w.wait_for(15, "the supervisor to exit", || {
        (!std::path::Path::new(&format!("/proc/{sup}")).exists()).then_some(())
    });
}
