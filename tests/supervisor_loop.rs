//! The supervisor's loop never waits on a lifecycle hook: while one container's postStart
//! hook runs, another container's output still reaches its log as it is written.
mod pod_support;
use pod_support::*;

/// Seconds of the day of a `--timestamps` line (`2026-12-02T01:23:45.123456789Z text`).
fn second_of_day(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

#[test]
fn output_is_logged_as_written_while_a_post_start_hook_runs() {
    let w = World::new("hook-loop");
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hookloop\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: ticker\n    image: busybox:1.30\n    command: [sh, -c, 'while true; do echo tick; sleep 0.2; done']\n  - name: slow\n    image: busybox:1.30\n    command: [sleep, '3600']\n    lifecycle:\n      postStart:\n        exec: {command: [sleep, '6']}\n";
    w.up_ok(manifest);
    // The ticker's first 25 lines were written over ~5 s, all while the hook slept: a
    // loop held up by the hook would have logged them together when it ended.
    let stamps = w.wait_for(30, "40 ticks", || {
        let logs = w.ok(&["logs", "hookloop", "-c", "ticker", "--timestamps"]);
        let s: Vec<f64> = logs.lines().filter_map(second_of_day).collect();
        (s.len() >= 40).then_some(s)
    });
    let spread = stamps[25] - stamps[0];
    assert!(
        spread >= 3.0,
        "the first 25 lines were logged {spread:.2} s apart"
    );
    w.ok(&["delete", "pod", "hookloop"]);
}
