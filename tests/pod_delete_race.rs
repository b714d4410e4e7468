//! `delete` racing `up`: whenever the delete lands (before the record exists, while the
//! supervisor starts, while the sandbox is made, once it runs), it ends with no pod, no
//! process, nothing on disk or in the kernel (cgroup, veth, mounts), and the name free.
mod pod_support;
use pod_support::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: race\nspec:\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [sleep, '3600']\n";

/// What the pod showed of itself while it existed: its uid and its veth.
#[derive(Default, Debug, Clone)]
struct Seen {
    uids: Vec<String>,
    veths: Vec<String>,
}

fn json_string(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let v = rest.strip_prefix('"')?;
    Some(v[..v.find('"')?].to_string())
}

/// Watches the pod's directory every millisecond, noting every uid and veth it shows.
fn watch(dir: PathBuf, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    while !stop.load(Ordering::Relaxed) {
        let note = |file: &str, key: &str| {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|t| json_string(&t, key))
        };
        let uid = note("pod.json", "uid");
        let veth = note("network-attachment.json", "veth");
        let mut guard = seen.lock().unwrap();
        let s = &mut *guard;
        for (v, list) in [(uid, &mut s.uids), (veth, &mut s.veths)] {
            if let Some(v) = v.filter(|v| !v.is_empty() && !list.contains(v)) {
                list.push(v);
            }
        }
        drop(guard);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Processes whose command line mentions `needle` (the world's root: its supervisors).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .flat_map(|h| {
            ["", "burstable", "besteffort"]
                .map(|q| h.path().join("kubepods").join(q).join(format!("pod{uid}")))
        })
        .filter(|p| p.exists())
        .collect()
}

/// Everything the pod could have left, empty when nothing is.
fn leftovers(w: &World, seen: &Seen) -> Vec<String> {
    let mut left = Vec::new();
    let dir = w.root.join("pods/default_race");
    if dir.exists() {
        let files: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        left.push(format!("pod dir {} with {files:?}", dir.display()));
    }
    let root = w.root.display().to_string();
    for pid in processes_mentioning(&format!("{root}\0")) {
        left.push(format!("supervisor process {pid}"));
    }
    let containers = std::fs::read_dir(w.root.join("containers"))
        .map(|rd| rd.flatten().count())
        .unwrap_or(0);
    if containers > 0 {
        left.push(format!("{containers} container records"));
    }
    for uid in &seen.uids {
        for pid in processes_in_cgroup(&format!("pod{uid}")) {
            left.push(format!("container process {pid} of pod {uid}"));
        }
        for cg in pod_cgroups(uid) {
            left.push(format!("cgroup {}", cg.display()));
        }
        let prefix: String = uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        for m in mounts_containing(&prefix) {
            left.push(format!("mount {m}"));
        }
    }
    for v in &seen.veths {
        if Path::new("/sys/class/net").join(v).exists() {
            left.push(format!("veth {v}"));
        }
    }
    left
}

/// One trial: `up`, then `delete` `delay` later, repeated while it finds no pod and
/// `up` still runs (as a user retries): the first delete that finds the record lands
/// right after it was written, while the supervisor starts.
fn trial(w: &World, delay: Duration) -> Seen {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher = {
        let (dir, stop, seen) = (w.root.join("pods/default_race"), stop.clone(), seen.clone());
        std::thread::spawn(move || watch(dir, stop, seen))
    };
    let mut up = w.spawn_up(POD, std::process::Stdio::piped);
    std::thread::sleep(delay);
    let first = loop {
        let o = w.run(&["delete", "pod", "race", "--grace-period", "0"]);
        if o.status.success() || up.try_wait().unwrap().is_some() {
            break o;
        }
    };
    // A delete that said "deleted" is done: the pod is gone now, and stays gone.
    let gone_now = w.run(&["get", "pod", "race"]);
    let up = up.wait_with_output().unwrap();
    let after_up = w.run(&["get", "pod", "race"]);
    // Deleted before it ran or after: `up` created the pod either way.
    assert!(
        up.status.success() && text(&up.stdout).contains("pod/race created"),
        "delete at {delay:?}: up said {:?} {:?}",
        text(&up.stdout),
        text(&up.stderr)
    );
    if first.status.success() {
        for (when, o) in [("at once", &gone_now), ("after up", &after_up)] {
            assert!(
                !o.status.success() && text(&o.stderr).contains("NotFound"),
                "delete at {delay:?} said {:?}, yet the pod is listed {when}: {}",
                text(&first.stdout),
                text(&o.stdout)
            );
        }
    } else {
        assert!(
            text(&first.stderr).contains("NotFound"),
            "delete at {delay:?}: {}",
            text(&first.stderr)
        );
        w.ok(&["delete", "pod", "race", "--grace-period", "0"]);
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    // The pod's processes may take a moment to be reaped after their cgroup is killed.
    let mut left = leftovers(w, &seen);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = leftovers(w, &seen);
    }
    assert!(
        left.is_empty(),
        "delete at {delay:?} into up (up: {:?}; first delete: {:?} {:?}) left {left:#?}",
        text(&up.stderr),
        text(&first.stdout),
        text(&first.stderr)
    );
    seen
}

#[test]
fn delete_at_any_moment_of_up_leaves_nothing_and_frees_the_name() {
    let w = World::new("delrace");
    let mut created = 0;
    for i in 0..20u64 {
        let seen = trial(&w, Duration::from_millis(i * 150 / 19));
        created += usize::from(!seen.uids.is_empty());
    }
    // The trials did race a pod that existed, not only a name that did not yet.
    assert!(created > 0, "no trial ever saw the pod's record");
    // The name is free: a following up runs the pod, and its delete cleans up too.
    w.up_ok(POD);
    w.wait_status("default", "race", "Running", 60);
    let uid = w.pod("default", "race")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    w.ok(&["delete", "pod", "race", "--grace-period", "0"]);
    let seen = Seen {
        uids: vec![uid],
        veths: Vec::new(),
    };
    w.wait_for(10, "nothing left of the last pod", || {
        leftovers(&w, &seen).is_empty().then_some(())
    });
}
