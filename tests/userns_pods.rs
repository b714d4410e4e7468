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

/// A world whose state and data dirs are root's alone (0700), as podrun makes its
/// default /run/podrun and /var/lib/podrun: the pod's root must not need to walk them.
fn private_world(tag: &str) -> World {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new(tag);
    for d in [&w.root, &w.data] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    w
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

/// The range leases this world's pods hold (the store is shared by the tests of this
/// binary; a lease names its owner's pod dir).
fn leases(w: &World) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(w.data.join("userns")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|o| o.starts_with(&*w.root.to_string_lossy()))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn root_in_the_pod_is_an_unprivileged_range_of_the_host() {
    let w = private_world("userns-maps");
    w.up_ok(&pod(
        "maps",
        "",
        "cat /proc/self/uid_map /proc/self/gid_map; id; touch /made-by-root && stat -c 'rootfs %u %g' /made-by-root; grep -E '^(Uid|Gid|CapEff)' /proc/self/status",
    ));
    let log = log_when_done(&w, "maps");
    let pid = container_pid(&w, "maps");
    let base = host_base(pid);
    assert!(base >= 65536 && base.is_multiple_of(65536), "base {base}");
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

#[test]
fn volumes_keep_their_owners_through_the_pods_idmap() {
    let w = private_world("userns-vols");
    let host = w.root.parent().unwrap().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "host").unwrap();
    // Writable by the container's uid 1000 too (who is not root's group).
    std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let spec = format!(
        "  volumes:\n  - name: h\n    hostPath: {{path: {}}}\n  - name: e\n    emptyDir: {{}}\n",
        host.display()
    );
    let manifest = pod(
        "vols",
        &spec,
        "stat -c 'host-file %u %g' /h/from-host; echo x > /h/by-root && stat -c 'h %u %g' /h/by-root; su -s /bin/sh nobody -c true; touch /e/f && stat -c 'e %u %g' /e/f; echo term > /dev/termination-log && echo term-ok",
    )
    .replace(
        "    command:",
        "    volumeMounts:\n    - {name: h, mountPath: /h}\n    - {name: e, mountPath: /e}\n    command:",
    );
    // A second container writes as uid 1000 of the pod.
    let manifest = format!(
        "{manifest}  - name: u\n    image: busybox:1.30\n    securityContext: {{runAsUser: 1000, runAsGroup: 1000}}\n    volumeMounts:\n    - {{name: h, mountPath: /h}}\n    command: [\"sh\", \"-c\", \"touch /h/by-1000 && stat -c 'u %u %g' /h/by-1000; echo DONE; sleep 3600\"]\n"
    );
    w.up_ok(&manifest);
    let log = log_when_done(&w, "vols");
    let log_u = w.wait_for(60, "u DONE", || {
        let t = text(&w.run(&["logs", "vols", "-c", "u"]).stdout);
        t.contains("DONE").then_some(t)
    });
    let pid = container_pid(&w, "vols");
    let base = host_base(pid);
    // Inside, every owner is as on disk: the host's root file is root's, not nobody's.
    assert!(log.contains("host-file 0 0"), "{log}");
    assert!(log.contains("h 0 0"), "{log}");
    assert!(log.contains("e 0 0"), "{log}");
    assert!(log.contains("term-ok"), "{log}");
    assert!(log_u.contains("u 1000 1000"), "{log_u}");
    // From the host through the container's own mount: the pod's host ids.
    let via = |f: &str| {
        let m = std::fs::metadata(format!("/proc/{pid}/root/h/{f}")).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(via("by-root"), (base, base));
    assert_eq!(via("by-1000"), (base + 1000, base + 1000));
    // On disk nothing was chowned: the ids the pod used, as KEP-127's idmapped volumes.
    let disk = |f: &str| {
        let m = std::fs::metadata(host.join(f)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(disk("from-host"), (0, 0));
    assert_eq!(disk("by-root"), (0, 0));
    assert_eq!(disk("by-1000"), (1000, 1000));
}

#[test]
fn an_escaped_process_holds_no_privilege_on_the_host() {
    let w = private_world("userns-escape");
    // A root-only host file, and a host dir only root may write.
    let secret_dir = w.root.parent().unwrap().join("secret");
    std::fs::create_dir_all(&secret_dir).unwrap();
    let secret = secret_dir.join("key");
    std::fs::write(&secret, "host secret").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    w.up_ok(&pod("esc", "", "grep CapEff /proc/self/status"));
    let log = log_when_done(&w, "esc");
    let pid = container_pid(&w, "esc");
    let base = host_base(pid);
    // Full capabilities inside its own namespace...
    assert!(log.contains("CapEff:\t00000000a80425fb"), "{log}");
    // ...but a process with the container's credentials that reaches the host's files
    // (its user namespace, the host's mount namespace) is the unprivileged uid base:
    // no DAC override, no chown, no write to root's dirs.
    let escaped = |cmd: &str| {
        std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-U", "--", "sh", "-c", cmd])
            .output()
            .unwrap()
    };
    let o = escaped(&format!("id -u; cat {}", secret.display()));
    assert!(!o.status.success(), "read the secret: {}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("Permission denied"),
        "{}",
        text(&o.stderr)
    );
    let o = escaped(&format!("touch {}/planted", secret_dir.display()));
    assert!(!o.status.success());
    assert!(!secret_dir.join("planted").exists());
    let o = escaped(&format!("chown 0 {}", secret.display()));
    assert!(!o.status.success());
    // And its host uid is the pod's, ≥ 65536.
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid: u32 = status_field(&st, "Uid")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(uid, base);
    assert!(uid >= 65536);
}

#[test]
fn live_pods_get_disjoint_ranges_and_fifty_pods_leave_none_behind() {
    let w = private_world("userns-many");
    // Two pods side by side: ranges that do not overlap.
    w.up_ok(&pod("a", "", "true"));
    w.up_ok(&pod("b", "", "true"));
    log_when_done(&w, "a");
    log_when_done(&w, "b");
    let (ba, bb) = (
        host_base(container_pid(&w, "a")),
        host_base(container_pid(&w, "b")),
    );
    assert!(ba.abs_diff(bb) >= 65536, "{ba} {bb}");
    let mut l = leases(&w);
    l.sort();
    let mut want = vec![ba.to_string(), bb.to_string()];
    want.sort();
    assert_eq!(l, want);
    w.ok(&["delete", "pod", "a", "b", "--grace-period", "0"]);
    assert!(leases(&w).is_empty(), "{:?}", leases(&w));

    // Fifty at once, then all gone: each had a range of its own, none is left.
    let many: String = (0..50)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: m{i}\nspec:\n  hostUsers: false\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [\"sleep\", \"3600\"]\n"
            )
        })
        .collect();
    w.up_ok(&many);
    w.wait_for(120, "50 pods Running", || {
        let out = w.ok(&["get", "pods"]);
        (out.lines().filter(|l| l.contains("Running")).count() == 50).then_some(())
    });
    let l = leases(&w);
    assert_eq!(l.len(), 50, "{l:?}");
    let mut uniq = l.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 50);
    let names: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let mut args = vec!["delete", "pod"];
    args.extend(names.iter().map(|s| s.as_str()));
    args.extend(["--grace-period", "0"]);
    w.ok(&args);
    assert!(leases(&w).is_empty(), "left: {:?}", leases(&w));
}

#[test]
fn host_namespaces_with_host_users_false_are_refused_as_the_api_server_does() {
    let w = private_world("userns-invalid");
    let o = w.up(&pod("hn", "  hostNetwork: true\n  hostPID: true\n", "true"));
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("spec.hostNetwork: Forbidden: when `pod.Spec.HostUsers` is false"),
        "{err}"
    );
    assert!(
        err.contains("spec.HostPID: Forbidden: when `pod.Spec.HostUsers` is false"),
        "{err}"
    );
    assert!(leases(&w).is_empty());
}

#[test]
fn a_volume_that_cannot_be_idmapped_fails_the_container_with_runcs_words() {
    let w = private_world("userns-noidmap");
    // procfs has no idmapped mounts: a hostPath of /proc/driver cannot be given the
    // pod's ids, and is not chowned instead.
    let manifest = pod(
        "noid",
        "  volumes:\n  - name: p\n    hostPath: {path: /proc/driver}\n",
        "true",
    )
    .replace(
        "    command:",
        "    volumeMounts:\n    - {name: p, mountPath: /p}\n    command:",
    );
    w.up_ok(&manifest);
    let waiting = w.wait_for(60, "CreateContainerError", || {
        let p = w.pod("default", "noid");
        let s = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        (s["reason"] == "CreateContainerError").then_some(s)
    });
    let msg = waiting["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("failed to set MOUNT_ATTR_IDMAP on /proc/driver: Invalid argument (os error 22) (maybe the filesystem used doesn't support idmap mounts on this kernel?)"),
        "{msg}"
    );
}

#[test]
fn a_failed_up_leaves_no_lease_mount_cgroup_or_process() {
    let w = private_world("userns-fail");
    // A pod memory limit of one byte: the sandbox fails once its id range is leased and
    // its cgroup made (a bad node network is now refused before that, by `up`).
    let manifest = pod("fail", "", "true").replace(
        "    command:",
        "    resources:\n      limits: {memory: '1'}\n    command:",
    );
    let o = w.up(&manifest);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("failed to start"),
        "{}",
        text(&o.stderr)
    );
    assert!(leases(&w).is_empty(), "{:?}", leases(&w));
    let pod_dir = w.root.join("pods").join("default_fail");
    let uid = w.pod("default", "fail")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(mounts_containing(&pod_dir.to_string_lossy()).is_empty());
    if !uid.is_empty() {
        let needle: String = uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        assert!(
            mounts_containing(&needle).is_empty(),
            "{:?}",
            mounts_containing(&needle)
        );
        assert!(processes_in_cgroup(&needle).is_empty());
    }
}

#[test]
fn unmasked_proc_is_for_pods_with_their_own_user_namespace() {
    let w = private_world("userns-unmasked");
    let manifest = pod("um", "", "echo tl=$(wc -c < /proc/timer_list)").replace(
        "    command:",
        "    securityContext: {procMount: Unmasked}\n    command:",
    );
    w.up_ok(&manifest);
    let log = log_when_done(&w, "um");
    // procMount: Unmasked leaves /proc/timer_list readable.
    assert!(!log.contains("tl=0") && log.contains("tl="), "{log}");
    // Without hostUsers: false the API server refuses it.
    let o = w.up(&manifest
        .replace("  hostUsers: false\n", "")
        .replace("name: um", "name: um2"));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn sysctls_hostname_exec_probes_and_hooks_work_in_the_pods_namespace() {
    let w = private_world("userns-rest");
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: rest\nspec:\n  hostUsers: false\n  hostname: inside\n  terminationGracePeriodSeconds: 0\n  securityContext:\n    sysctls:\n    - {name: kernel.shm_rmid_forced, value: \"1\"}\n    - {name: net.ipv4.ip_unprivileged_port_start, value: \"0\"}\n  containers:\n  - name: c\n    image: busybox:1.30\n    command: [\"sh\", \"-c\", \"mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www\"]\n    lifecycle:\n      postStart:\n        exec: {command: [\"sh\", \"-c\", \"id -u > /hooked\"]}\n    livenessProbe:\n      exec: {command: [\"test\", \"-f\", \"/hooked\"]}\n      periodSeconds: 1\n    readinessProbe:\n      httpGet: {path: /, port: 8080}\n      periodSeconds: 1\n";
    w.up_ok(manifest);
    w.wait_for(60, "rest Ready", || {
        let (ready, status, _) = w.columns("default", "rest");
        (ready == "1/1" && status == "Running").then_some(())
    });
    let out = w.ok(&[
        "exec",
        "rest",
        "--",
        "sh",
        "-c",
        "cat /proc/self/uid_map; hostname; cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start; cat /hooked",
    ]);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[0], "0", "{out}");
    assert!(f[1].parse::<u32>().unwrap() >= 65536, "{out}");
    assert_eq!(&f[2..], ["65536", "inside", "1", "0", "0"], "{out}");
    // No restarts: the liveness probe found what the hook wrote.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(w.columns("default", "rest").2, "0");
}

mod oci_support;

#[test]
fn the_oci_runtime_idmaps_binds_with_the_containers_or_the_mounts_own_mapping() {
    let env = oci_support::Env::new();
    let vol = env.dir.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("f"), "x").unwrap();
    // The bundle's rootfs is the host's root's: its mount points are made beforehand
    // (the runtime does not chown a rootfs to fit a mapping).
    for d in ["own", "shifted", "plain"] {
        std::fs::create_dir_all(env.bundle.join("rootfs").join(d)).unwrap();
    }
    let map = |inside: u32, outside: u32, size: u32| serde_json::json!([{"containerID": inside, "hostID": outside, "size": size}]);
    let base = 3_000_000_000u32;
    env.edit_config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        c["linux"]["uidMappings"] = map(0, base, 65536);
        c["linux"]["gidMappings"] = map(0, base, 65536);
        let bind = |dest: &str, extra: serde_json::Value| {
            let mut m = serde_json::json!({
                "destination": dest, "type": "bind", "source": vol,
                "options": ["rbind", "rw"]
            });
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            m
        };
        let mounts = c["mounts"].as_array_mut().unwrap();
        // The container's own mapping (idmap without mappings).
        mounts.push(bind("/own", serde_json::json!({"options": ["rbind", "rw", "idmap"]})));
        // A mapping of its own: disk 0 is host base+1000, so 1000 inside.
        mounts.push(bind(
            "/shifted",
            serde_json::json!({"uidMappings": map(0, base + 1000, 1), "gidMappings": map(0, base + 1000, 1)}),
        ));
        // No idmap: the host's root is nobody here.
        mounts.push(bind("/plain", serde_json::json!({})));
    });
    let out = env.sh("stat -c '%u' /own/f /shifted/f /plain/f; cat /proc/self/uid_map");
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&f[..3], ["0", "1000", "65534"], "{out}");
    assert_eq!(&f[3..], ["0", &base.to_string(), "65536"], "{out}");
    // idmap needs a user namespace to take the mapping from.
    env.edit_config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
        c["linux"].as_object_mut().unwrap().remove("gidMappings");
    });
    let (code, _, err) = env.run(&oci_support::unique("noidmap"));
    assert_ne!(code, 0);
    assert!(
        err.contains("idmap without uidMappings/gidMappings needs a user namespace"),
        "{err}"
    );
}
