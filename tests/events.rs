//! `podrun get events` end to end (root, real kernel): a crash-looping pod's events as
//! kubectl lists them, as a v1 List, across namespaces, watched, and after deletion.
mod pod_support;

use pod_support::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CRASHING: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ev-crash
  namespace: evtest
spec:
  restartPolicy: Always
  containers:
  - name: sh
    image: busybox:1.30
    command: [\"sh\", \"-c\", \"exit 1\"]
";

const SLEEPER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ev-later
  namespace: evtest
spec:
  containers:
  - name: sleep
    image: busybox:1.30
    command: [\"sleep\", \"3600\"]
";

/// The reasons of `get events` rows about `object` (the 3rd column).
fn reasons(table: &str, object: &str) -> Vec<String> {
    table
        .lines()
        .filter(|l| l.split_whitespace().any(|c| c == object))
        .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
        .collect()
}

#[test]
fn crash_looping_pod_events_list_watch_and_outlive_the_pod() {
    let w = World::new("events");
    // Nothing yet: kubectl's words on stderr, success.
    let o = w.run(&["get", "events", "-n", "evtest"]);
    assert!(o.status.success());
    assert_eq!(
        text(&o.stderr).trim(),
        "No resources found in evtest namespace."
    );
    assert!(o.stdout.is_empty());

    w.up_ok(CRASHING);
    let table = w.wait_for(40, "a BackOff event", || {
        let t = w.ok(&["get", "events", "-n", "evtest"]);
        reasons(&t, "pod/ev-crash")
            .iter()
            .any(|r| r == "BackOff")
            .then_some(t)
    });
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    let got = reasons(&table, "pod/ev-crash");
    for r in ["Scheduled", "Pulled", "Created", "Started", "BackOff"] {
        assert!(got.iter().any(|g| g == r), "no {r} row:\n{table}");
    }
    assert!(
        table.contains("Back-off restarting failed container sh in pod ev-crash_evtest("),
        "{table}"
    );
    // Other namespaces see none of them.
    let o = w.run(&["get", "ev"]);
    assert!(o.status.success());
    assert_eq!(
        text(&o.stderr).trim(),
        "No resources found in default namespace."
    );

    // -o json: a v1 List of core/v1 Events.
    let v: serde_json::Value =
        serde_json::from_str(&w.ok(&["get", "events", "-n", "evtest", "-o", "json"]))
            .expect("get events -o json parses");
    assert_eq!(v["kind"], "List");
    assert_eq!(v["apiVersion"], "v1");
    let items = v["items"].as_array().expect("items");
    assert!(items.len() >= 5, "{v:#}");
    for it in items {
        assert_eq!(it["involvedObject"]["kind"], "Pod");
        assert_eq!(it["involvedObject"]["name"], "ev-crash");
        assert_eq!(it["metadata"]["namespace"], "evtest");
        assert!(it["count"].as_i64().unwrap_or(0) >= 1, "{it:#}");
        assert!(it["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("ev-crash.")));
    }
    let backoff = items.iter().find(|i| i["reason"] == "BackOff").unwrap();
    assert_eq!(backoff["type"], "Warning");
    assert_eq!(
        backoff["involvedObject"]["fieldPath"],
        "spec.containers{sh}"
    );
    assert_eq!(backoff["source"]["component"], "kubelet");

    // One event by name, as an object.
    let name = backoff["metadata"]["name"].as_str().unwrap();
    let one: serde_json::Value =
        serde_json::from_str(&w.ok(&["get", "events", name, "-n", "evtest", "-o", "json"]))
            .unwrap();
    assert_eq!(one["kind"], "Event");
    assert_eq!(one["reason"], "BackOff");
    assert_eq!(
        w.ok(&["get", "events", name, "-n", "evtest", "-o", "name"])
            .trim(),
        format!("event/{name}")
    );

    // -A: a NAMESPACE column first.
    let all = w.ok(&["get", "events", "-A"]);
    assert!(all.starts_with("NAMESPACE   LAST SEEN"), "{all}");
    assert!(
        all.lines()
            .skip(1)
            .all(|l| l.starts_with("evtest ") && l.contains("pod/ev-crash")),
        "{all}"
    );
    // --for filters by object; -o wide adds the kubectl wide columns.
    let wide = w.ok(&[
        "get",
        "events",
        "-n",
        "evtest",
        "--for",
        "pod/ev-crash",
        "-o",
        "wide",
    ]);
    for col in ["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"] {
        assert!(wide.lines().next().unwrap().contains(col), "{wide}");
    }
    assert!(wide.contains("spec.containers{sh}"), "{wide}");
    let o = w.run(&["get", "events", "-n", "evtest", "--for", "pod/nope"]);
    assert!(o.status.success() && o.stdout.is_empty());

    // -w: the existing rows, then rows that appear later (a second pod's).
    let mut watch = w
        .cmd()
        .args(["get", "events", "-n", "evtest", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn get events -w");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let out = watch.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    w.wait_for(10, "the watch's first table", || {
        (lines.lock().unwrap().len() >= 6).then_some(())
    });
    assert!(lines.lock().unwrap()[0].starts_with("LAST SEEN"));
    w.up_ok(SLEEPER);
    let start = Instant::now();
    let seen = w.wait_for(30, "a watched Scheduled row of ev-later", || {
        let l = lines.lock().unwrap();
        l.iter()
            .find(|l| l.contains("pod/ev-later") && l.contains("Scheduled"))
            .cloned()
    });
    assert!(start.elapsed() < Duration::from_secs(30), "{seen}");
    // Ctrl-C, sent to our own child by its pid.
    let pid = watch.id() as i32;
    // SAFETY: kill(2) on a pid we spawned and have not reaped.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let st = watch.wait().unwrap();
    reader.join().unwrap();
    assert!(
        st.success() || st.code().is_none(),
        "watch ended badly: {st:?}"
    );
    // No header repeated in the middle of the stream.
    assert_eq!(
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("LAST SEEN"))
            .count(),
        1
    );

    // The events stay listed after the pod is deleted (the apiserver keeps them 1 h).
    w.ok(&[
        "delete",
        "pod",
        "ev-crash",
        "-n",
        "evtest",
        "--grace-period",
        "0",
        "--force",
    ]);
    assert!(!w.root.join("pods/evtest_ev-crash").exists());
    let after = w.ok(&["get", "events", "-n", "evtest", "--for", "pod/ev-crash"]);
    let got = reasons(&after, "pod/ev-crash");
    for r in ["Scheduled", "Started", "BackOff"] {
        assert!(
            got.iter().any(|g| g == r),
            "no {r} row after delete:\n{after}"
        );
    }
}

#[test]
fn bad_flags_fail_with_kubectl_errors() {
    let w = World::new("events-flags");
    let o = w.run(&["get", "events", "-o", "bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).starts_with("error: unable to match a printer"));
    let o = w.run(&["get", "events", "--for", "ev-crash"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).starts_with("error: --for must be in resource/name form"));
    let o = w.run(&["get", "pods", "--for", "pod/x"]);
    assert_eq!(o.status.code(), Some(1));
    let o = w.run(&["get", "events", "missing.17", "-n", "evtest"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim(),
        "Error from server (NotFound): events \"missing.17\" not found"
    );
}
