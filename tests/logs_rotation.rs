//! Container log rotation (root, real kernel): a writer's numbered lines rotate at
//! containerLogMaxSize into at most containerLogMaxFiles files, none lost or split, and
//! `podrun logs` (`--tail`, `-f`) reads right across the rotated files.
mod pod_support;
use pod_support::*;
use podrun::supervisor::logs::{parse, read_log_file, rotated_logs};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const MAX_SIZE: u64 = 64 * 1024;
const MAX_FILES: usize = 4;

fn world(tag: &str) -> World {
    let mut w = World::new(tag);
    let config = w.root.parent().unwrap().join("config.yaml");
    std::fs::write(
        &config,
        format!("containerLogMaxSize: 64Ki\ncontainerLogMaxFiles: {MAX_FILES}\n"),
    )
    .unwrap();
    w.extra_env
        .push(("PODRUN_NODE_CONFIG".into(), config.display().to_string()));
    w
}

/// A pod whose container prints `line-0`… `line-<n-1>`, pausing every `burst` lines.
fn numbered(name: &str, n: u32, burst: u32) -> String {
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); \
         if [ $((i % {burst})) = 0 ]; then sleep 0.3; fi; done; sleep 3600"
    );
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sh, -c, '{script}']\n"
    )
}

fn live_log(w: &World, name: &str) -> PathBuf {
    let pod = w.pod("default", name);
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    w.logs.join(format!("default_{name}_{uid}/c/0.log"))
}

/// The log's lines, oldest file first.
fn all_lines(live: &Path) -> Vec<String> {
    let mut files = rotated_logs(live);
    files.push(live.to_path_buf());
    files
        .iter()
        .flat_map(|f| parse(&read_log_file(f).unwrap_or_default()))
        .map(|l| l.text)
        .collect()
}

fn visible_files(live: &Path) -> Vec<String> {
    std::fs::read_dir(live.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

fn wait_for_line(w: &World, live: &Path, last: &str) {
    w.wait_for(60, &format!("{last} in the log"), || {
        all_lines(live)
            .last()
            .is_some_and(|l| l == last)
            .then_some(())
    });
}

fn numbers(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .map(|l| {
            l.strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a split or foreign line: {l:?}"))
        })
        .collect()
}

#[test]
fn rotated_files_stay_under_the_limits_and_keep_every_line() {
    let w = world("logrot");
    // ~50 bytes a record: 2,000 lines rotate twice (nothing removed yet).
    w.up_ok(&numbered("few", 2000, 100_000));
    w.up_ok(&numbered("many", 20000, 100_000));
    let few = live_log(&w, "few");
    let many = live_log(&w, "many");
    wait_for_line(&w, &few, "line-1999");
    wait_for_line(&w, &many, "line-19999");

    assert_eq!(numbers(&all_lines(&few)), (0..2000).collect::<Vec<_>>());
    assert!(!rotated_logs(&few).is_empty(), "{:?}", visible_files(&few));

    let files = visible_files(&many);
    assert_eq!(files.len(), MAX_FILES, "{files:?}");
    let rotated = rotated_logs(&many);
    for f in rotated.iter().chain([&many]) {
        let len = read_log_file(f).unwrap().len() as u64;
        assert!(len <= MAX_SIZE, "{} holds {len} bytes", f.display());
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if f != &many {
            // kubelet's `0.log.20060102-150405`, the older ones gzip-compressed.
            let stamp = name.trim_start_matches("0.log.");
            assert!(stamp.as_bytes().get(8) == Some(&b'-'), "{name}");
        }
    }
    w.wait_for(30, "the older rotated files compressed", || {
        let r = rotated_logs(&many);
        r[..r.len() - 1]
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "gz"))
            .then_some(())
    });
    // What is kept is the newest lines, without a gap.
    let kept = numbers(&all_lines(&many));
    let first = kept[0];
    assert_eq!(kept, (first..20000).collect::<Vec<_>>());

    let tail = w.ok(&["logs", "many", "--tail", "3"]);
    assert_eq!(tail, "line-19997\nline-19998\nline-19999\n");
    // More lines than the live file holds: the tail reaches into the rotated files.
    let live_lines = parse(&read_log_file(&many).unwrap()).len();
    let n = live_lines + 500;
    let tail = w.ok(&["logs", "many", "--tail", &n.to_string()]);
    let got = numbers(&tail.lines().map(String::from).collect::<Vec<_>>());
    assert_eq!(got, ((20000 - n as u32)..20000).collect::<Vec<_>>());
    let all = w.ok(&["logs", "few"]);
    assert_eq!(all.lines().count(), 2000);
    assert_eq!(
        w.ok(&["logs", "few", "--since", "1h"]).lines().count(),
        2000
    );
    w.delete_all();
}

#[test]
fn follow_goes_on_across_rotations_without_a_gap() {
    let w = world("logfollow");
    // Bursts of 400 lines (~20 KB): a rotation every few bursts.
    w.up_ok(&numbered("slow", 6000, 400));
    let live = live_log(&w, "slow");
    let mut child = w
        .cmd()
        .args(["logs", "-f", "slow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    for line in out.lines() {
        let line = line.unwrap();
        let done = line == "line-5999";
        got.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        rotated_logs(&live).len() >= 2,
        "the test needs rotations: {:?}",
        visible_files(&live)
    );
    assert_eq!(numbers(&got), (0..6000).collect::<Vec<_>>());
    w.delete_all();
}
