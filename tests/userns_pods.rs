//! Pods with `hostUsers: false`: their own user namespace with a 65536-id range of the
//! node, checked as a user would: the id maps inside, who owns what a container writes
//! to its volumes (inside, through the container's mount, and on the host), that root in
//! the container is nobody on the host, disjoint ranges, no lease left behind, and the
//! API server's refusal of host namespaces.
mod pod_support;
use pod_support::*;
use std::os::unix::fs::MetadataExt;

fn status_field(text: &str, field: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .to_string()
}

/// A one-container busybox pod with hostUsers: false running `script`, then DONE.
fn pod(name: &str, extra_spec: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  hostUsers: false\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n{extra_spec}  containers:\n  - name: c\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", {:?}]\n",
        format!("{script}\necho DONE; sleep 3600")
    )
}

fn log_when_done(w: &World, name: &str) -> String {
    w.wait_for(60, &format!("{name} DONE"), || {
        let o = w.run(&["logs", name]);
        let t = text(&o.stdout);
        t.contains("DONE").then_some(t)
    })
}

/// The host pid of container `c` of pod `name` (its first start), from `podrun state`.
fn container_pid(w: &World, name: &str) -> i32 {
    let pod = w.pod("default", name);
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let uid8: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let state = w.ok(&["state", &format!("{uid8}-c-1")]);
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    v["pid"].as_i64().unwrap() as i32
}

/// The first host id of a pod's range, from the host's view of its container init.
fn host_base(pid: i32) -> u32 {
    let m = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let f: Vec<u32> = m.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!((f[0], f[2]), (0, 65536), "uid_map {m}");
    f[1]
}

fn leases(w: &World) -> Vec<String> {
    match std::fs::read_dir(w.data.join("userns")) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<u32>().is_ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn root_in_the_pod_is_an_unprivileged_range_of_the_host() {
    let w = World::new("userns-maps");
    w.up_ok(&pod(
        "maps",
        "",
        "cat /proc/self/uid_map /proc/self/gid_map; id; touch /made-by-root && stat -c 'rootfs %u %g' /made-by-root; grep -E '^(Uid|Gid|CapEff)' /proc/self/status",
    ));
    let log = log_when_done(&w, "maps");
    let pid = container_pid(&w, "maps");
    let base = host_base(pid);
    assert!(base >= 65536 && base % 65536 == 0, "base {base}");
    // Inside: the pod's range, root of it; the image's files are root's.
    let maps: Vec<&str> = log.lines().take(2).collect();
    for m in maps {
        let f: Vec<&str> = m.split_whitespace().collect();
        assert_eq!(f, ["0", &base.to_string(), "65536"], "{log}");
    }
    assert!(log.contains("uid=0(root) gid=0(root)"), "{log}");
    assert!(log.contains("rootfs 0 0"), "{log}");
    // On the host: its init runs as base, with no capability in the host's namespace.
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<u32> = status_field(&st, "Uid")
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(uids, [base; 4], "{st}");
    assert!(uids[0] >= 65536);
    // What it wrote to its rootfs is the pod's root on the host, not the host's root.
    let made = std::fs::metadata(format!("/proc/{pid}/root/made-by-root")).unwrap();
    assert_eq!((made.uid(), made.gid()), (base, base));
    assert_eq!(leases(&w), [base.to_string()]);
}
