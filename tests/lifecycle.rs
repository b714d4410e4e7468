//! Pod lifecycle end to end (root, real kernel): restart back-off, init containers, hooks,
//! probes with kubelet's messages, restartPolicy, sidecars, OOM, deadlines, termination.
mod pod_support;

use pod_support::*;
use std::time::{Duration, Instant};

fn status_of(pod: &serde_json::Value, list: &str, name: &str) -> serde_json::Value {
    pod["status"][list]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_default()
}

fn restarts(w: &World, ns: &str, pod: &str, c: &str) -> i64 {
    status_of(&w.pod(ns, pod), "containerStatuses", c)["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

#[test]
fn pod_base_busybox_restarts_with_back_off_and_crash_loops() {
    let w = World::new("pod-base");
    w.up_ok(&seed("pod-base.yaml"));
    // busybox's sh exits at once without a terminal: restarted at once, then after 10 s.
    let t1 = w.wait_for(20, "first restart", || {
        (restarts(&w, "dev", "pod-base", "busybox") >= 1).then(Instant::now)
    });
    let (ready, status, _) = w.wait_for(15, "CrashLoopBackOff", || {
        let c = w.columns("dev", "pod-base");
        (c.1 == "CrashLoopBackOff").then_some(c)
    });
    assert_eq!(
        (ready.as_str(), status.as_str()),
        ("1/2", "CrashLoopBackOff")
    );
    let t2 = w.wait_for(25, "second restart", || {
        (restarts(&w, "dev", "pod-base", "busybox") >= 2).then(Instant::now)
    });
    let gap = t2.duration_since(t1);
    assert!(
        gap >= Duration::from_secs(9) && gap <= Duration::from_secs(14),
        "back-off 10 s, saw {gap:?}"
    );
    let t3 = w.wait_for(35, "third restart", || {
        (restarts(&w, "dev", "pod-base", "busybox") >= 3).then(Instant::now)
    });
    let gap = t3.duration_since(t2);
    assert!(
        gap >= Duration::from_secs(19) && gap <= Duration::from_secs(24),
        "back-off 20 s, saw {gap:?}"
    );
    let d = w.describe("dev", "pod-base");
    for needle in [
        "Back-off restarting failed container busybox in pod pod-base_dev(",
        "Started container nginx",
        "already present on machine",
        "Last State:     Terminated",
        "Reason:       Completed",
    ] {
        assert!(d.contains(needle), "describe lacks {needle:?}:\n{d}");
    }
    let nginx = status_of(&w.pod("dev", "pod-base"), "containerStatuses", "nginx");
    assert_eq!(nginx["ready"], true);
    assert_eq!(nginx["restartCount"], 0);
}

#[test]
fn init_containers_run_in_order_before_the_main_container() {
    let w = World::new("init");
    let gates = w.root.parent().unwrap().join("gates");
    let manifest =
        seed("pod-initcontainer.yaml").replace("/tmp/podrun-gates", &gates.display().to_string());
    w.up_ok(&manifest);
    let (ready, status, _) = w.wait_status("dev", "pod-initcontainer", "Init:0/2", 20);
    assert_eq!(ready, "0/1");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        w.columns("dev", "pod-initcontainer").1,
        status,
        "the gate is closed: still Init:0/2"
    );
    // Opening the second gate first changes nothing: strictly in order.
    std::fs::write(gates.join("redis"), "").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.columns("dev", "pod-initcontainer").1, "Init:0/2");
    std::fs::write(gates.join("mysql"), "").unwrap();
    w.wait_status("dev", "pod-initcontainer", "Running", 30);
    let pod = w.pod("dev", "pod-initcontainer");
    let mysql = status_of(&pod, "initContainerStatuses", "test-mysql");
    let redis = status_of(&pod, "initContainerStatuses", "test-redis");
    assert_eq!(mysql["state"]["terminated"]["reason"], "Completed");
    assert_eq!(redis["state"]["terminated"]["reason"], "Completed");
    let f1 = mysql["state"]["terminated"]["finishedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let s2 = redis["state"]["terminated"]["startedAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(s2 >= f1, "test-redis started after test-mysql finished");
    let logs = w.ok(&["logs", "pod-initcontainer", "-n", "dev", "-c", "test-mysql"]);
    assert!(logs.contains("waiting for mysql..."), "{logs}");
}

#[test]
fn post_start_hook_rewrites_the_page_and_pre_stop_quits_nginx() {
    let w = World::new("hooks");
    w.up_ok(&seed("pod-hook-exec.yaml"));
    w.wait_status("dev", "pod-hook-exec", "Running", 30);
    let page = w.ok(&[
        "exec",
        "pod-hook-exec",
        "-n",
        "dev",
        "--",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1/",
    ]);
    assert_eq!(page.trim(), "postStart...");
    // preStop `nginx -s quit` stops nginx well inside the 30 s grace period.
    let t0 = Instant::now();
    w.ok(&["delete", "pod", "pod-hook-exec", "-n", "dev"]);
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "preStop quit nginx: deletion took {:?}",
        t0.elapsed()
    );
}

#[test]
fn liveness_exec_failure_is_reported_and_the_container_restarted() {
    let w = World::new("liveness-exec");
    w.up_ok(&seed("pod-liveness-exec.yaml"));
    w.wait_for(60, "a restart", || {
        (restarts(&w, "dev", "pod-liveness-exec", "nginx") >= 1).then_some(())
    });
    let d = w.describe("dev", "pod-liveness-exec");
    assert!(d.contains("Liveness probe failed: /bin/cat: /tmp/hello.txt: No such file or directory") || d.contains("Liveness probe failed: cat: can't open '/tmp/hello.txt': No such file or directory"), "{d}");
    assert!(
        d.contains("Container nginx failed liveness probe, will be restarted"),
        "{d}"
    );
}

#[test]
fn liveness_tcp_socket_refused_kills_and_restarts() {
    let w = World::new("liveness-tcp");
    w.up_ok(&seed("pod-liveness-tcpsocket.yaml"));
    w.wait_for(60, "a restart", || {
        (restarts(&w, "dev", "pod-liveness-tcpsocket", "nginx") >= 1).then_some(())
    });
    let d = w.describe("dev", "pod-liveness-tcpsocket");
    assert!(d.contains(":8080: connect: connection refused"), "{d}");
    assert!(
        d.contains("Killing")
            && d.contains("Container nginx failed liveness probe, will be restarted"),
        "{d}"
    );
}

#[test]
fn liveness_http_get_404_restarts_and_never_policy_completes() {
    let w = World::new("liveness-http");
    w.up_ok(&seed("pod-liveness-httpget.yaml"));
    w.up_ok(&seed("pod-restartpolicy.yaml"));
    w.wait_for(60, "a restart", || {
        (restarts(&w, "dev", "pod-liveness-httpget", "nginx") >= 1).then_some(())
    });
    let d = w.describe("dev", "pod-liveness-httpget");
    assert!(
        d.contains("Liveness probe failed: HTTP probe failed with statuscode: 404"),
        "{d}"
    );
    // restartPolicy Never: stopped once, never restarted; nginx exits 0 on SIGTERM.
    let (ready, status, restarts) = w.wait_status("dev", "pod-restartpolicy", "Completed", 60);
    assert_eq!((ready.as_str(), restarts.as_str()), ("0/1", "0"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.columns("dev", "pod-restartpolicy").1, status);
    assert_eq!(
        w.pod("dev", "pod-restartpolicy")["status"]["phase"],
        "Succeeded"
    );
}

#[test]
fn sidecar_adapter_becomes_ready_through_its_readiness_probe() {
    let w = World::new("adapter");
    w.up_ok(&seed("sidecar-adapter.yaml"));
    let (ready, status, _) = w.wait_for(40, "2/2 Running", || {
        let c = w.columns("dev", "app-with-adapter");
        (c.0 == "2/2").then_some(c)
    });
    assert_eq!((ready.as_str(), status.as_str()), ("2/2", "Running"));
    let out = w.ok(&[
        "exec",
        "app-with-adapter",
        "-n",
        "dev",
        "-c",
        "app",
        "--",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:8081/cgi-bin/health",
    ]);
    assert!(out.contains("requests_total 42"), "{out}");
}

#[test]
fn sidecar_patterns_init_war_log_collector_and_proxy() {
    let w = World::new("patterns");
    w.up_ok(&seed("sidecar-initcontainer-war.yaml"));
    w.up_ok(&seed("sidecar-log-collector.yaml"));
    w.up_ok(&seed("sidecar-proxy.yaml"));
    w.wait_status("dev", "javaweb", "Running", 40);
    let page = w.ok(&[
        "exec",
        "javaweb",
        "-n",
        "dev",
        "-c",
        "server",
        "--",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1/sample/index.html",
    ]);
    assert_eq!(page.trim(), "sample app v1");
    w.wait_status("dev", "app-with-log-collector", "Running", 40);
    let logs = w.wait_for(15, "collected lines", || {
        let l = w.ok(&[
            "logs",
            "app-with-log-collector",
            "-n",
            "dev",
            "-c",
            "log-collector",
        ]);
        l.contains("request served").then_some(l)
    });
    assert!(logs.lines().count() >= 1);
    w.wait_status("dev", "app-with-proxy", "Running", 40);
    let logs = w.wait_for(20, "proxied page", || {
        let l = w.ok(&["logs", "app-with-proxy", "-n", "dev", "-c", "app"]);
        l.contains("Welcome to nginx").then_some(l)
    });
    assert!(
        logs.contains("<title>Welcome to nginx!</title>") || logs.contains("Welcome to nginx"),
        "{logs}"
    );
}

#[test]
fn oom_killed_container_reports_oomkilled_137() {
    let w = World::new("oom");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: oom\nspec:\n  restartPolicy: Never\n  containers:\n  - name: hog\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", \"x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done\"]\n    resources:\n      limits:\n        memory: 32Mi\n";
    w.up_ok(yaml);
    let hog = w.wait_for(60, "terminated", || {
        let s = status_of(&w.pod("default", "oom"), "containerStatuses", "hog");
        s["state"]["terminated"].is_object().then_some(s)
    });
    assert_eq!(hog["state"]["terminated"]["reason"], "OOMKilled", "{hog}");
    assert_eq!(hog["state"]["terminated"]["exitCode"], 137);
    assert_eq!(w.columns("default", "oom").1, "OOMKilled");
}

#[test]
fn active_deadline_fails_the_pod_with_deadline_exceeded() {
    let w = World::new("deadline");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dl\nspec:\n  activeDeadlineSeconds: 3\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [\"sleep\", \"3600\"]\n";
    w.up_ok(yaml);
    w.wait_for(20, "DeadlineExceeded", || {
        let p = w.pod("default", "dl");
        (p["status"]["reason"] == "DeadlineExceeded" && p["status"]["phase"] == "Failed")
            .then_some(())
    });
}

#[test]
fn native_sidecar_starts_first_and_stops_after_the_main_container() {
    let w = World::new("native-sidecar");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ns\nspec:\n  terminationGracePeriodSeconds: 5\n  initContainers:\n  - name: side\n    image: busybox:1.30\n    restartPolicy: Always\n    command: [\"sh\", \"-c\", \"trap 'read u _ < /proc/uptime; echo $u > /shared/side-stop; exit 0' TERM; read u _ < /proc/uptime; echo $u > /shared/side-start; while true; do sleep 0.1; done\"]\n    volumeMounts:\n    - {name: shared, mountPath: /shared}\n  containers:\n  - name: main\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", \"trap 'read u _ < /proc/uptime; echo $u > /shared/main-stop; exit 0' TERM; read u _ < /proc/uptime; echo $u > /shared/main-start; while true; do sleep 0.1; done\"]\n    volumeMounts:\n    - {name: shared, mountPath: /shared}\n  volumes:\n  - name: shared\n    hostPath: {path: SHARED, type: DirectoryOrCreate}\n";
    let shared = w.root.parent().unwrap().join("shared");
    w.up_ok(&yaml.replace("SHARED", &shared.display().to_string()));
    let (ready, status, _) = w.wait_status("default", "ns", "Running", 30);
    assert_eq!((ready.as_str(), status.as_str()), ("2/2", "Running"));
    w.ok(&["delete", "pod", "ns"]);
    let read = |f: &str| {
        std::fs::read_to_string(shared.join(f))
            .unwrap_or_else(|_| panic!("{f} missing"))
            .trim()
            .parse::<f64>()
            .unwrap()
    };
    assert!(
        read("side-start") <= read("main-start"),
        "sidecar starts first"
    );
    assert!(
        read("side-stop") >= read("main-stop"),
        "sidecar stops after the main container"
    );
}

#[test]
fn termination_message_and_tty_stdin_containers() {
    let w = World::new("termmsg");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: tm\nspec:\n  restartPolicy: Never\n  containers:\n  - name: msg\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", \"echo bye from msg > /dev/termination-log; exit 3\"]\n  - name: fallback\n    image: busybox:1.30\n    terminationMessagePolicy: FallbackToLogsOnError\n    command: [\"sh\", \"-c\", \"echo last words; exit 4\"]\n  - name: interactive\n    image: busybox:1.30\n    stdin: true\n    tty: true\n";
    w.up_ok(yaml);
    let pod = w.wait_for(30, "both terminated", || {
        let p = w.pod("default", "tm");
        let a = status_of(&p, "containerStatuses", "msg");
        let b = status_of(&p, "containerStatuses", "fallback");
        (a["state"]["terminated"].is_object() && b["state"]["terminated"].is_object()).then_some(p)
    });
    let a = status_of(&pod, "containerStatuses", "msg");
    assert_eq!(a["state"]["terminated"]["exitCode"], 3);
    assert_eq!(a["state"]["terminated"]["reason"], "Error");
    assert_eq!(a["state"]["terminated"]["message"], "bye from msg\n");
    let b = status_of(&pod, "containerStatuses", "fallback");
    assert_eq!(b["state"]["terminated"]["message"], "last words");
    // A shell with stdin and a terminal waits for input instead of exiting.
    let i = status_of(&pod, "containerStatuses", "interactive");
    assert!(i["state"]["running"].is_object(), "{i}");
    let tty = w.ok(&[
        "exec",
        "tm",
        "-c",
        "interactive",
        "--",
        "sh",
        "-c",
        "readlink /proc/1/fd/0",
    ]);
    assert!(tty.trim().starts_with("/dev/pts/"), "{tty}");
}
