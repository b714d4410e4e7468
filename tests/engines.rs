//! podrun under real engines, each a private daemon started by the test: docker 20.10,
//! podman 4.3 and containerd 1.6's CRI plugin, with the same scenarios run with runc
//! (the control: a failure with podrun alone is podrun's) and with podrun. The runtime
//! commands the engines called are logged through wrappers and printed per test.
mod engine_support;
use engine_support::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// A docker or podman command line (they share the scenario list).
struct Cli {
    engine: &'static str,
    base: Command,
    runtime: Runtime,
}

impl Cli {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.base.get_program());
        c.args(self.base.get_args());
        for (k, v) in self.base.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        run(self.cmd(args), None, T)
    }

    fn run_in(&self, args: &[&str], input: &str) -> Out {
        run(self.cmd(args), Some(input), T)
    }

    /// Runs and insists on success, naming the engine and runtime.
    fn must(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok(),
            "{} {args:?} with {}: {out}",
            self.engine,
            self.runtime.name()
        );
        out.stdout
    }

    fn runtime_flag(&self) -> String {
        match (self.engine, self.runtime) {
            ("docker", Runtime::Runc) => "--runtime=runc-logged".into(),
            _ => format!("--runtime={}", self.runtime.name()),
        }
    }

    fn state(&self, name: &str) -> String {
        self.must(&["inspect", "-f", "{{.State.Status}}", name])
            .trim()
            .to_string()
    }
}

/// The shared scenarios: run to an exit code with output, -d, exec (-i, -t), top,
/// stats, pause/unpause, update (docker), stop/start/kill/rm.
fn scenarios(cli: &Cli) {
    let rt = cli.runtime_flag();
    let rt = rt.as_str();
    let who = format!("{} with {}", cli.engine, cli.runtime.name());
    // Run to completion: output and exit code come back.
    let out = cli.run(&[
        "run",
        rt,
        "--rm",
        "--network",
        "none",
        BUSYBOX_REF,
        "sh",
        "-c",
        "echo hello from $(hostname); exit 3",
    ]);
    assert_eq!(out.code, 3, "{who}: run: {out}");
    assert!(out.stdout.contains("hello from"), "{who}: run: {out}");

    // Detached.
    let name = format!("c-{}", cli.runtime.name());
    cli.must(&[
        "run",
        rt,
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--memory",
        "128m",
        BUSYBOX_REF,
        "sleep",
        "600",
    ]);
    assert_eq!(cli.state(&name), "running", "{who}");
    // The engine really used the runtime under test.
    let fmt = if cli.engine == "docker" {
        "{{.HostConfig.Runtime}}"
    } else {
        "{{.OCIRuntime}}"
    };
    let used = cli.must(&["inspect", "-f", fmt, &name]);
    assert_eq!(used.trim(), rt.trim_start_matches("--runtime="), "{who}");

    // exec, exec -i, exec -t.
    let out = cli.must(&["exec", &name, "sh", "-c", "echo $((6*7))"]);
    assert_eq!(out.trim(), "42", "{who}: exec");
    let out = cli.run_in(&["exec", "-i", &name, "cat"], "through stdin\n");
    assert!(
        out.ok() && out.stdout.contains("through stdin"),
        "{who}: exec -i: {out}"
    );
    let out = cli.must(&["exec", "-t", &name, "tty"]);
    assert!(out.contains("/dev/pts/"), "{who}: exec -t: {out}");
    let out = cli.run(&["exec", &name, "sh", "-c", "exit 5"]);
    assert_eq!(out.code, 5, "{who}: exec exit code: {out}");

    // The container's own cgroup view, with its limit.
    let out = cli.must(&[
        "exec",
        &name,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_eq!(out.trim(), "134217728", "{who}: memory limit inside");

    // top and stats.
    let out = cli.must(&["top", &name]);
    assert!(out.contains("sleep"), "{who}: top: {out}");
    let out = cli.must(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}} {{.PIDs}}",
        &name,
    ]);
    assert!(
        out.contains("128MiB") || out.contains("128MB") || out.contains("134.2MB"),
        "{who}: stats shows no memory limit: {out}"
    );

    // pause / unpause.
    cli.must(&["pause", &name]);
    assert_eq!(cli.state(&name), "paused", "{who}: pause");
    cli.must(&["unpause", &name]);
    assert_eq!(cli.state(&name), "running", "{who}: unpause");
    cli.must(&["exec", &name, "true"]);

    // update (docker): new limits reach the cgroup.
    if cli.engine == "docker" {
        cli.must(&[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "--pids-limit",
            "77",
            "--cpu-shares",
            "512",
            &name,
        ]);
        let out = cli.must(&[
            "exec",
            &name,
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
            "/sys/fs/cgroup/cpu/cpu.shares",
        ]);
        let v: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(v, ["67108864", "77", "512"], "{who}: update");
    }

    // stop, start, kill, rm.
    cli.must(&["stop", "-t", "2", &name]);
    assert_eq!(cli.state(&name), "exited", "{who}: stop");
    cli.must(&["start", &name]);
    assert_eq!(cli.state(&name), "running", "{who}: start again");
    cli.must(&["kill", &name]);
    assert!(
        eventually(Duration::from_secs(20), || cli.state(&name) == "exited"),
        "{who}: kill"
    );
    let code = cli.must(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "137", "{who}: killed exit code");
    cli.must(&["rm", &name]);
    let out = cli.run(&["inspect", &name]);
    assert!(!out.ok(), "{who}: still there after rm");
}

// ---- docker ----

struct Docker {
    world: World,
}

impl Docker {
    fn start() -> Docker {
        let mut w = World::new("d");
        for d in ["data", "exec", "cli"] {
            std::fs::create_dir_all(w.path(d)).unwrap();
        }
        std::fs::write(w.path("daemon.json"), "{}").unwrap();
        let sock = w.path("docker.sock");
        let mut c = Command::new("/usr/sbin/dockerd");
        c.arg("--data-root")
            .arg(w.path("data"))
            .arg("--exec-root")
            .arg(w.path("exec"))
            .arg("--pidfile")
            .arg(w.path("docker.pid"))
            .arg("--config-file")
            .arg(w.path("daemon.json"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .args(["--ip-forward=false", "--storage-driver=overlay2"])
            .arg(format!(
                "--add-runtime=podrun={}",
                w.wrapper(Runtime::Podrun).display()
            ))
            .arg(format!(
                "--add-runtime=runc-logged={}",
                w.wrapper(Runtime::Runc).display()
            ));
        w.spawn_daemon("dockerd", c);
        w.wait_for("dockerd", &sock, Duration::from_secs(60));
        let d = Docker { world: w };
        // The socket appears a little before the API answers.
        assert!(
            eventually(Duration::from_secs(30), || d
                .cli(Runtime::Runc)
                .run(&["version"])
                .ok()),
            "dockerd never answered:\n{}",
            d.world.daemon_log("dockerd")
        );
        skopeo_copy(
            &fixture("busybox"),
            "1.30",
            &format!("docker-daemon:{BUSYBOX_REF}"),
            &["--dest-daemon-host", &format!("unix://{}", sock.display())],
        );
        d
    }

    fn cli(&self, runtime: Runtime) -> Cli {
        let mut base = Command::new("/usr/bin/docker");
        base.env("DOCKER_CONFIG", self.world.path("cli"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.world.path("docker.sock").display()
            ));
        Cli {
            engine: "docker",
            base,
            runtime,
        }
    }
}

fn docker_scenarios(rt: Runtime) {
    if !have(&["/usr/sbin/dockerd", "/usr/bin/docker", "/usr/bin/skopeo"]) {
        return;
    }
    let started = std::time::Instant::now();
    let d = Docker::start();
    scenarios(&d.cli(rt));
    d.world.report_calls("docker", rt);
    eprintln!("docker with {} took {:?}", rt.name(), started.elapsed());
}

#[test]
fn docker_scenarios_with_runc() {
    docker_scenarios(Runtime::Runc);
}

#[test]
fn docker_scenarios_with_podrun() {
    docker_scenarios(Runtime::Podrun);
}

// ---- podman ----

struct Podman {
    world: World,
}

impl Podman {
    fn start() -> Podman {
        let p = Podman::bare();
        let dest = format!(
            "containers-storage:[overlay@{}+{}]",
            p.world.path("storage").display(),
            p.world.path("run").display()
        );
        skopeo_copy(
            &fixture("busybox"),
            "1.30",
            &format!("{dest}{BUSYBOX_REF}"),
            &[],
        );
        let pause = pause_image(&p.world);
        skopeo_copy(&pause, "podrun", &format!("{dest}{PAUSE_REF}"), &[]);
        p
    }

    /// The private podman without images (for --rootfs containers).
    fn bare() -> Podman {
        let w = World::new("p");
        for d in ["storage", "run", "tmp", "volumes"] {
            std::fs::create_dir_all(w.path(d)).unwrap();
        }
        // crun 1.8.1 refuses this hybrid host, so runc is the default; nofile/nproc
        // ulimits as podman's defaults would set them beyond this host's hard limits.
        std::fs::write(
            w.path("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# Locks as files in tmp_dir: the default shm segment (/dev/shm/libpod_lock) is shared by
# every podman on the host, so two private podmans would hand out the same lock numbers.
lock_type = "file"
events_logfile_path = "{dir}/events.log"
tmp_dir = "{dir}/tmp"
volume_path = "{dir}/volumes"
infra_image = "{PAUSE_REF}"
infra_command = "/pause"

[engine.runtimes]
runc = ["{runc}"]
podrun = ["{podrun}"]
"#,
                dir = w.dir.display(),
                runc = w.wrapper(Runtime::Runc).display(),
                podrun = w.wrapper(Runtime::Podrun).display(),
            ),
        )
        .unwrap();
        std::fs::write(
            w.path("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/storage\"\n",
                w.dir.display()
            ),
        )
        .unwrap();
        Podman { world: w }
    }

    fn cli(&self, runtime: Runtime) -> Cli {
        let mut base = Command::new("/usr/bin/podman");
        base.env("CONTAINERS_CONF", self.world.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.world.path("storage.conf"))
            .arg("--root")
            .arg(self.world.path("storage"))
            .arg("--runroot")
            .arg(self.world.path("run"))
            .arg("--tmpdir")
            .arg(self.world.path("tmp"));
        Cli {
            engine: "podman",
            base,
            runtime,
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // podman has no daemon: what is left is containers (conmon) and mounts.
        let cli = self.cli(Runtime::Runc);
        let _ = run(cli.cmd(&["rm", "-af", "-t", "0"]), None, T);
        let _ = run(cli.cmd(&["pod", "rm", "-af"]), None, T);
        let _ = run(cli.cmd(&["system", "prune", "-f"]), None, T);
        unmount_below(&self.world.dir);
    }
}

/// A pod (podman pod create + run --pod) and a kube play manifest, then removal.
fn podman_pods(cli: &Cli, w: &World) {
    let rt = cli.runtime_flag();
    let rt = rt.as_str();
    let who = format!("podman pods with {}", cli.runtime.name());
    let pod = format!("pod-{}", cli.runtime.name());
    cli.must(&["pod", "create", "--name", &pod, "--network", "none"]);
    cli.must(&[
        "run",
        rt,
        "-d",
        "--pod",
        &pod,
        "--name",
        &format!("{pod}-a"),
        BUSYBOX_REF,
        "sleep",
        "600",
    ]);
    // Containers of one pod share its IPC, UTS and network namespaces.
    let out = cli.must(&[
        "run",
        rt,
        "--rm",
        "--pod",
        &pod,
        BUSYBOX_REF,
        "sh",
        "-c",
        "hostname",
    ]);
    assert!(out.trim() == pod, "{who}: hostname in the pod is {out:?}");
    let out = cli.must(&["pod", "ps", "--format", "{{.Name}} {{.Status}}"]);
    assert!(out.contains(&format!("{pod} Running")), "{who}: {out}");
    cli.must(&["pod", "stop", "-t", "2", &pod]);
    cli.must(&["pod", "rm", &pod]);

    // kube play: a Pod manifest, run by this runtime.
    let yaml = w.path(&format!("kube-{}.yaml", cli.runtime.name()));
    let kpod = format!("kube-{}", cli.runtime.name());
    std::fs::write(
        &yaml,
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {kpod}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX_REF}
    command: ["sh", "-c", "echo kube says hi; sleep 600"]
    resources:
      limits:
        memory: 96Mi
"#
        ),
    )
    .unwrap();
    cli.must(&[
        "kube",
        "play",
        rt,
        "--network",
        "none",
        yaml.to_str().unwrap(),
    ]);
    let c = format!("{kpod}-main");
    let used = cli.must(&["inspect", "-f", "{{.OCIRuntime}}", &c]);
    assert_eq!(
        used.trim(),
        cli.runtime.name(),
        "{who}: kube play's runtime"
    );
    assert!(
        eventually(Duration::from_secs(20), || cli
            .run(&["logs", &c])
            .stdout
            .contains("kube says hi")),
        "{who}: kube play container never logged"
    );
    let out = cli.must(&[
        "exec",
        &c,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_eq!(out.trim(), "100663296", "{who}: kube play memory limit");
    cli.must(&["kube", "down", yaml.to_str().unwrap()]);
    let out = cli.must(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!out.contains(&kpod), "{who}: left after kube down: {out}");
}

fn podman_scenarios(rt: Runtime) {
    if !have(&["/usr/bin/podman", "/usr/bin/conmon", "/usr/bin/skopeo"]) {
        return;
    }
    let started = std::time::Instant::now();
    let p = Podman::start();
    let cli = p.cli(rt);
    scenarios(&cli);
    podman_pods(&cli, &p.world);
    p.world.report_calls("podman", rt);
    eprintln!("podman with {} took {:?}", rt.name(), started.elapsed());
}

#[test]
fn podman_scenarios_with_runc() {
    podman_scenarios(Runtime::Runc);
}

#[test]
fn podman_scenarios_with_podrun() {
    podman_scenarios(Runtime::Podrun);
}

// ---- containerd's CRI plugin ----

struct Containerd {
    world: World,
    sock: std::path::PathBuf,
}

impl Containerd {
    fn start() -> Containerd {
        let mut w = World::new("c");
        let d = w.dir.clone();
        let sock = w.path("c.sock");
        for rt in [Runtime::Runc, Runtime::Podrun] {
            std::fs::create_dir_all(w.path(&format!("{}-root", rt.name()))).unwrap();
        }
        let runtime = |rt: Runtime| {
            format!(
                r#"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{bin}"
        Root = "{dir}/{name}-root"
"#,
                name = rt.name(),
                bin = w.wrapper(rt).display(),
                dir = d.display()
            )
        };
        // This host withholds CAP_SYS_RESOURCE: oom_score_adj below containerd's own is
        // clamped (restrict_oom_score_adj), or every sandbox start fails.
        let config = format!(
            r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_REF}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{dir}/cni/bin"
    conf_dir = "{dir}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
{runc}{podrun}"#,
            dir = d.display(),
            sock = sock.display(),
            runc = runtime(Runtime::Runc),
            podrun = runtime(Runtime::Podrun),
        );
        std::fs::write(w.path("config.toml"), config).unwrap();
        let mut c = Command::new("/usr/bin/containerd");
        c.arg("--config").arg(w.path("config.toml"));
        w.spawn_daemon("containerd", c);
        w.wait_for("containerd", &sock, Duration::from_secs(60));
        let c = Containerd { world: w, sock };
        for layout in [fixture("busybox"), pause_image(&c.world)] {
            let tar = c.world.path("image.tar");
            let mut t = Command::new("tar");
            t.arg("-C").arg(&layout).arg("-cf").arg(&tar).arg(".");
            assert!(run(t, None, T).ok());
            let out = run(c.ctr(&["images", "import", tar.to_str().unwrap()]), None, T);
            assert!(out.ok(), "ctr import {}: {out}", layout.display());
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/ctr");
        c.arg("--address")
            .arg(&self.sock)
            .args(["-n", "k8s.io"])
            .args(args);
        c
    }

    fn cri(&self, args: &[&str]) -> Out {
        let mut c = Command::new("/usr/bin/python3");
        c.arg(repo().join("tests/engine_support/cri.py"))
            .arg(&self.sock)
            .args(args);
        run(c, None, Duration::from_secs(300))
    }
}

fn cri_scenario(rt: Runtime) {
    if !have(&["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/python3"]) {
        return;
    }
    let started = std::time::Instant::now();
    let c = Containerd::start();
    let out = c.cri(&["scenario", rt.name(), BUSYBOX_REF]);
    assert!(
        out.ok(),
        "CRI with {}: {out}\ncontainerd log:\n{}",
        rt.name(),
        c.world.daemon_log("containerd")
    );
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let who = format!("CRI with {}", rt.name());
    assert_eq!(r["sandbox_state"], 0, "{who}: sandbox not ready: {r}");
    assert_eq!(r["sandbox_handler"], rt.name(), "{who}: {r}");
    assert_eq!(r["exec"]["stdout"], "out\n", "{who}: {r}");
    assert_eq!(r["exec"]["stderr"], "err\n", "{who}: {r}");
    assert_eq!(r["exec"]["exit_code"], 7, "{who}: {r}");
    let ps = r["ps"].as_str().unwrap_or("");
    assert!(
        ps.contains("1 /pause") && ps.contains("sleep 600"),
        "{who}: {ps}"
    );
    assert_eq!(r["container_state"], 1, "{who}: not running: {r}");
    assert_eq!(r["stopped_state"], 2, "{who}: not exited: {r}");
    assert_eq!(r["sandboxes_after"], serde_json::json!([]), "{who}: {r}");
    // Nothing left: no shim of this containerd, no mount, no container in the runtime.
    let sb = r["sandbox"].as_str().unwrap_or("").to_string();
    assert!(
        eventually(Duration::from_secs(20), || processes_with(&sb).is_empty()),
        "{who}: left running: {:?}",
        processes_with(&sb)
    );
    assert!(
        mounts_below(&c.world.dir).is_empty(),
        "{who}: mounts left: {:?}",
        mounts_below(&c.world.dir)
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&sb), "{who}: a mount of {sb} is left");
    // runc keeps <root>/<id>/, podrun <root>/containers/<id>/.
    let root = c.world.path(&format!("{}-root/k8s.io", rt.name()));
    let ids = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut left = ids(&root);
    left.extend(ids(&root.join("containers")));
    assert!(left.is_empty(), "{who}: runtime state left: {left:?}");
    c.world.report_calls("containerd CRI", rt);
    eprintln!("CRI with {} took {:?}", rt.name(), started.elapsed());
}

#[test]
fn containerd_cri_runtime_class_with_runc() {
    cri_scenario(Runtime::Runc);
}

#[test]
fn containerd_cri_runtime_class_with_podrun() {
    cri_scenario(Runtime::Podrun);
}

// ---- nested: podrun inside a privileged container ----

/// A root filesystem with busybox, /etc/passwd and, when `podrun` is set, the podrun
/// binary and the shared libraries it links (no nft: `up` must say it is missing).
fn busybox_rootfs(dir: &Path, podrun: bool) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in [
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "run",
        "var/lib",
        "usr/local/bin",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
    if !podrun {
        return;
    }
    std::fs::copy(PODRUN, dir.join("usr/local/bin/podrun")).unwrap();
    let ldd = Command::new("ldd").arg(PODRUN).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(std::path::PathBuf::from);
        if let Some(lib) = lib {
            let dest = dir.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &dest).unwrap();
        }
    }
}

#[test]
fn podrun_run_and_up_inside_a_privileged_podman_container_see_their_own_cgroups() {
    if !have(&["/usr/bin/podman", "/usr/bin/conmon"]) {
        return;
    }
    let started = std::time::Instant::now();
    let p = Podman::bare();
    let outer = p.world.path("outer");
    busybox_rootfs(&outer, true);
    // A bundle for `podrun run` inside, its config from `podrun spec` with limits.
    let bundle = outer.join("bundle");
    busybox_rootfs(&bundle.join("rootfs"), false);
    let st = Command::new(PODRUN)
        .args(["spec", "--bundle", bundle.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) \
         pids=$(cat /sys/fs/cgroup/pids/pids.max) \
         procs=$(wc -l < /sys/fs/cgroup/memory/cgroup.procs)"
    ]);
    // No cgroup namespace (as docker's and podman's configs on cgroup v1): the container's
    // cgroups are binds of its own directories in the outer container's hierarchies.
    if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "cgroup");
    }
    cfg["linux"]["resources"] = serde_json::json!({
        "memory": {"limit": 50331648},
        "pids": {"limit": 33}
    });
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let pod = |name: &str, host_network: bool| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: {host_network}
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX_REF}
    command: ["sh", "-c", "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) procs=$(wc -l < /sys/fs/cgroup/memory/cgroup.procs); sleep 600"]
    resources:
      limits:
        memory: 40Mi
"#
        )
    };
    std::fs::write(outer.join("pod-net.yaml"), pod("needs-net", false)).unwrap();
    std::fs::write(outer.join("pod.yaml"), pod("nested", true)).unwrap();
    let fixtures = fixture("busybox");
    let script = r#"
podrun run --bundle /bundle inner 2>/tmp/run.err; echo "run rc=$?"
echo "run stderr: $(cat /tmp/run.err)"
podrun up /pod-net.yaml 2>&1; echo "up-net rc=$?"
podrun import /fixture >/dev/null 2>&1 || echo "import failed"
podrun up --wait --timeout 60s /pod.yaml 2>&1; echo "up rc=$?"
for i in $(seq 50); do podrun logs nested 2>/dev/null | grep -q mem= && break; sleep 0.2; done
echo "pod: $(podrun logs nested 2>&1)"
podrun delete pod nested --grace-period 0 >/dev/null 2>&1; echo "delete rc=$?"
"#;
    let cli = p.cli(Runtime::Runc);
    let out = cli.run(&[
        "run",
        "--rm",
        "--privileged",
        "--runtime=runc",
        "--network",
        "none",
        "-v",
        &format!("{}:/fixture:ro", fixtures.display()),
        "--rootfs",
        outer.to_str().unwrap(),
        "sh",
        "-c",
        script,
    ]);
    assert!(out.ok(), "nested: {out}");
    let o = &out.stdout;
    // podrun run inside: its own limits, its own (non-empty) cgroup, no mount warnings.
    assert!(o.contains("run rc=0"), "{o}");
    assert!(o.contains("mem=50331648 pids=33 procs="), "{o}");
    assert!(o.contains("run stderr: \n"), "podrun run warned: {o}");
    // up without nft says so before admitting anything.
    assert!(o.contains("up-net rc=1"), "{o}");
    assert!(o.contains("needs the nft program from nftables"), "{o}");
    assert!(!o.contains("pod/needs-net created"), "{o}");
    // up of a host-network pod inside: the container sees its own limit.
    assert!(o.contains("up rc=0"), "{o}");
    assert!(o.contains("pod: mem=41943040 procs="), "{o}");
    assert!(!o.contains("procs=0"), "{o}");
    assert!(o.contains("delete rc=0"), "{o}");
    eprintln!("nested took {:?}", started.elapsed());
}
