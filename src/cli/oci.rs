//! runc-compatible OCI runtime commands: create, start, state, kill, delete, run, list, ps,
//! exec, spec, features, pause, resume, update.
use super::GlobalOpts;
use crate::runtime::{self, CreateOptions, ExecOptions, Runtime, State};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum OciCommand {
    /// Create a container from a bundle; it waits for `start`.
    Create(Box<CreateArgs>),
    /// Start a created container's process.
    Start { id: String },
    /// Print a container's OCI state (JSON).
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init, or all its processes.
    Kill {
        /// Signal every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete containers (or, with `pod NAME...`, pods).
    Delete(Box<DeleteArgs>),
    /// Create and start a container; attached, exit with its status.
    Run(Box<RunArgs>),
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Only print ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List a container's processes.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a process in a container (or, given a pod name, in a pod's container).
    Exec(Box<ExecArgs>),
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print the runtime-spec features this runtime supports (JSON).
    Features,
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print a container's events as runc does: a stats line every --interval and an
    /// "oom" line per OOM kill, until it stops; with --stats one stats line.
    Events {
        /// Print the statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// How often to print statistics (a Go duration, e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Checkpoint a running container with CRIU (runc's flags).
    Checkpoint(Box<CheckpointArgs>),
    /// Restore a container from a CRIU checkpoint (runc's flags).
    Restore(Box<RestoreArgs>),
    /// Change a running container's resources (JSON linux.resources from -r FILE or stdin).
    Update {
        #[arg(short = 'r', long)]
        resources: Option<PathBuf>,
        #[arg(long)]
        memory: Option<i64>,
        #[arg(long = "pids-limit")]
        pids_limit: Option<i64>,
        #[arg(long = "cpu-quota")]
        cpu_quota: Option<i64>,
        #[arg(long = "cpu-period")]
        cpu_period: Option<u64>,
        #[arg(long = "cpu-shares")]
        cpu_shares: Option<u64>,
        id: String,
    },
}

/// CRIU flags shared by checkpoint and restore, as runc names them.
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// Where CRIU's images are (default ./checkpoint, as runc).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Where CRIU writes its logs (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces left out of the images ("network").
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Not supported (runc: lazy migration through a page server).
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// Not supported (runc: dump to a remote CRIU page server).
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility (the restored process is restored detached).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[arg(short, long)]
    pub force: bool,
    #[arg(short, long)]
    pub namespace: Option<String>,
    #[arg(long = "grace-period")]
    pub grace_period: Option<i64>,
    /// With `pod`: every pod whose labels match (kubectl's -l).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// With `pod`: every pod of the namespace.
    #[arg(long)]
    pub all: bool,
    /// With a workload (deployment, rs, job): background, foreground or orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
    /// Container ids, or `pod NAME...`.
    #[arg(required = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// A process.json to run instead of CMD.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pod container (pod exec).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pod namespace (pod exec).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Container id (or pod name).
    pub target: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

pub fn run(g: &GlobalOpts, cmd: OciCommand) -> anyhow::Result<i32> {
    if let Some(path) = &g.log {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open log {}", path.display()))?;
        runtime::log::configure(Some(f), g.log_format == "json", g.debug);
    } else if g.debug {
        runtime::log::configure(None, false, true);
    }
    let r = dispatch(g, cmd);
    if let Err(e) = &r {
        if runtime::log::has_file() {
            let mut line = e.to_string();
            for c in e.chain().skip(1) {
                line.push_str(": ");
                line.push_str(&c.to_string());
            }
            runtime::log::error(&line);
        }
    }
    r
}

fn dispatch(g: &GlobalOpts, cmd: OciCommand) -> anyhow::Result<i32> {
    let rt = Runtime::new(&g.root);
    match cmd {
        OciCommand::Create(a) => {
            rt.create(&a.id, &a.bundle, &create_opts(g, &a))?;
            Ok(0)
        }
        OciCommand::Start { id } => {
            rt.start(&id)?;
            Ok(0)
        }
        OciCommand::State { id } => {
            let st = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
            Ok(0)
        }
        OciCommand::Kill { all, id, signal } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
            Ok(0)
        }
        OciCommand::Delete(a) => delete(g, &rt, *a),
        OciCommand::Run(a) => run_container(g, &rt, *a),
        OciCommand::List { format, quiet } => list(&rt, &format, quiet),
        OciCommand::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &format, &id, &ps_args),
        OciCommand::Exec(a) => exec(g, &rt, *a),
        OciCommand::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{}: already exists; remove it first", path.display());
            }
            let spec = runtime::features::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
        OciCommand::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&runtime::features::features())?
            );
            Ok(0)
        }
        OciCommand::Events {
            stats,
            interval,
            id,
        } => events(&rt, stats, &interval, &id),
        OciCommand::Checkpoint(a) => checkpoint(&rt, *a),
        OciCommand::Restore(a) => restore(&rt, *a),
        OciCommand::Pause { id } => {
            rt.set_paused(&id, true)?;
            Ok(0)
        }
        OciCommand::Resume { id } => {
            rt.set_paused(&id, false)?;
            Ok(0)
        }
        OciCommand::Update {
            resources,
            memory,
            pids_limit,
            cpu_quota,
            cpu_period,
            cpu_shares,
            id,
        } => {
            let mut v: serde_json::Value = match resources {
                Some(p) if p.as_os_str() == "-" => serde_json::from_reader(std::io::stdin())?,
                Some(p) => serde_json::from_slice(
                    &std::fs::read(&p).with_context(|| format!("read {}", p.display()))?,
                )
                .with_context(|| format!("parse {}", p.display()))?,
                None => serde_json::json!({}),
            };
            if let Some(m) = memory {
                v["memory"]["limit"] = m.into();
            }
            if let Some(p) = pids_limit {
                v["pids"]["limit"] = p.into();
            }
            if let Some(q) = cpu_quota {
                v["cpu"]["quota"] = q.into();
            }
            if let Some(p) = cpu_period {
                v["cpu"]["period"] = p.into();
            }
            if let Some(s) = cpu_shares {
                v["cpu"]["shares"] = s.into();
            }
            let res: oci_spec::runtime::LinuxResources =
                serde_json::from_value(v).context("linux resources")?;
            rt.update(&id, &res)?;
            Ok(0)
        }
    }
}

fn create_opts(g: &GlobalOpts, a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        systemd_cgroup: g.systemd_cgroup,
        pid_file: a.pid_file.as_ref().map(|p| absolute(p)),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        listen_fds: listen_fds(),
        ..Default::default()
    }
}

/// Socket-activation fds handed to us by systemd (LISTEN_PID is our pid), as runc
/// passes them on.
fn listen_fds() -> u32 {
    let var = |k| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    match var("LISTEN_PID") {
        Some(pid) if pid == std::process::id() => var("LISTEN_FDS").unwrap_or(0),
        _ => 0,
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Parses a signal as runc does: a number, or a name with or without SIG.
pub fn parse_signal(s: &str) -> anyhow::Result<nix::sys::signal::Signal> {
    crate::util::parse_signal(s).with_context(|| format!("unknown signal {s:?}"))
}

fn delete(g: &GlobalOpts, rt: &Runtime, a: DeleteArgs) -> anyhow::Result<i32> {
    // kubectl's `delete -f pod.yaml`: runc's -f is --force, so a -f whose every argument
    // is a manifest (a .yaml/.yml/.json file, a directory, `-`) is read as kubectl's.
    if a.force && a.args.iter().all(|f| super::apply::is_manifest_arg(f)) {
        return super::pod::delete_files(g, &a.args, a.namespace.as_deref(), a.grace_period);
    }
    if let Some(rc) = super::get_objects::delete(g, &a.args, a.namespace.as_deref()) {
        return Ok(rc);
    }
    if let Some((r, names)) = super::workloads::delete_target(&a.args) {
        return super::workloads::delete(g, r, &names, a.namespace.as_deref(), &a.cascade);
    }
    if matches!(a.args[0].as_str(), "pod" | "pods" | "po") {
        let choice = super::pod::PodChoice {
            names: &a.args[1..],
            selector: a.selector.as_deref(),
            all: a.all,
        };
        return super::pod::delete_pod(g, choice, a.namespace.as_deref(), a.grace_period, a.force);
    }
    for id in &a.args {
        match rt.delete(id, a.force) {
            // As runc: forcing the delete of a container that is gone is not an error.
            Err(runtime::RuntimeError::NotFound(_)) if a.force => {}
            r => r?,
        }
    }
    Ok(0)
}

/// A socketpair whose one end the container's pty master arrives on.
fn console_pair() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

fn run_container(g: &GlobalOpts, rt: &Runtime, a: RunArgs) -> anyhow::Result<i32> {
    let id = a.create.id.clone();
    let mut opts = create_opts(g, &a.create);
    if a.detach {
        opts.start_immediately = true;
        rt.create(&id, &a.create.bundle, &opts)?;
        return Ok(0);
    }
    // Attached: we wait for init, which may be a grandchild when a second fork is needed.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let bundle = runtime::config::load_bundle(&a.create.bundle)?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    opts.start_immediately = true;
    let mut ours = None;
    let mut theirs = None;
    if terminal && opts.console_socket.is_none() {
        let (x, y) = console_pair()?;
        opts.console_fd = Some(y.as_raw_fd());
        ours = Some(x);
        theirs = Some(y);
    }
    runtime::config::validate_id(&id)?;
    let st: State = rt.create_from(&id, &bundle, &opts)?;
    drop(theirs);
    let master = match &ours {
        Some(s) => match crate::runtime::terminal::recv_master(s) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = rt.delete(&id, true);
                return Err(e.into());
            }
        },
        None => None,
    };
    runtime::terminal::forward_signals(st.pid);
    if let Some(m) = &master {
        let _raw = runtime::terminal::RawMode::enter();
        runtime::terminal::relay(m);
    }
    let code = runtime::terminal::wait_exit_code(st.pid);
    if let Err(e) = rt.delete(&id, true) {
        runtime::log::warn(&format!("delete {id}: {e}"));
    }
    Ok(code)
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> anyhow::Result<i32> {
    let all = rt.list()?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&all)?),
        "table" => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for s in &all {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            print_table(&rows);
        }
        f => bail!("unknown format {f:?} (table or json)"),
    }
    Ok(0)
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn image_path(a: &CriuArgs) -> anyhow::Result<PathBuf> {
    if a.lazy_pages {
        bail!("--lazy-pages: lazy migration is not supported by podrun");
    }
    Ok(absolute(
        a.image_path
            .as_deref()
            .unwrap_or(std::path::Path::new("checkpoint")),
    ))
}

fn checkpoint(rt: &Runtime, a: CheckpointArgs) -> anyhow::Result<i32> {
    if a.page_server.is_some() {
        bail!("--page-server: dumping to a CRIU page server is not supported by podrun");
    }
    let opts = runtime::checkpoint::CheckpointOptions {
        image_path: image_path(&a.criu)?,
        work_path: a.criu.work_path.as_deref().map(absolute),
        parent_path: a.parent_path.clone(),
        leave_running: a.leave_running,
        tcp_established: a.criu.tcp_established,
        ext_unix_sk: a.criu.ext_unix_sk,
        shell_job: a.criu.shell_job,
        file_locks: a.criu.file_locks,
        pre_dump: a.pre_dump,
        auto_dedup: a.criu.auto_dedup,
        manage_cgroups_mode: a.criu.manage_cgroups_mode.clone(),
        empty_ns: a.criu.empty_ns.clone(),
    };
    rt.checkpoint(&a.id, &opts)?;
    Ok(0)
}

fn restore(rt: &Runtime, a: RestoreArgs) -> anyhow::Result<i32> {
    let opts = runtime::checkpoint::RestoreOptions {
        image_path: image_path(&a.criu)?,
        work_path: a.criu.work_path.as_deref().map(absolute),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.as_deref().map(absolute),
        tcp_established: a.criu.tcp_established,
        ext_unix_sk: a.criu.ext_unix_sk,
        shell_job: a.criu.shell_job,
        file_locks: a.criu.file_locks,
        auto_dedup: a.criu.auto_dedup,
        manage_cgroups_mode: a.criu.manage_cgroups_mode.clone(),
        empty_ns: a.criu.empty_ns.clone(),
    };
    let st = rt.restore(&a.id, &opts)?;
    if a.detach {
        return Ok(0);
    }
    // Attached: the restored process is our child (CRIU restores it as a sibling).
    let pid = nix::unistd::Pid::from_raw(st.pid);
    let code = loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => break c,
            Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("waiting for restored container {}: {e}", a.id),
        }
    };
    let _ = rt.delete(&a.id, true);
    Ok(code)
}

/// `events`: one JSON object per line (runc's format); streaming ends when the
/// container stops (or is deleted).
fn events(rt: &Runtime, once: bool, interval: &str, id: &str) -> anyhow::Result<i32> {
    use std::io::Write;
    let every = parse_go_duration(interval).with_context(|| format!("--interval {interval:?}"))?;
    if every.is_zero() {
        bail!("--interval {interval:?}: duration must be greater than 0");
    }
    let ev = rt.runc_stats(id)?;
    let mut out = std::io::stdout().lock();
    if once {
        writeln!(out, "{}", serde_json::to_string(&ev)?)?;
        return Ok(0);
    }
    let mut ooms = rt.oom_kills(id).unwrap_or(0);
    let step = std::time::Duration::from_millis(100).min(every);
    let mut next = std::time::Instant::now();
    loop {
        let now = std::time::Instant::now();
        if now >= next {
            match rt.runc_stats(id) {
                Ok(ev) => writeln!(out, "{}", serde_json::to_string(&ev)?)?,
                Err(_) => return Ok(0),
            }
            out.flush()?;
            next = now + every;
        }
        let n = match rt.oom_kills(id) {
            Ok(n) => n,
            Err(_) => return Ok(0),
        };
        for _ in ooms..n {
            writeln!(out, "{}", serde_json::json!({"type": "oom", "id": id}))?;
            out.flush()?;
        }
        ooms = ooms.max(n);
        if !matches!(
            rt.state(id).map(|s| s.status),
            Ok(runtime::Status::Running | runtime::Status::Paused | runtime::Status::Created)
        ) {
            return Ok(0);
        }
        std::thread::sleep(step);
    }
}

/// A Go time.Duration string ("5s", "1m30s", "250ms", "1.5h").
fn parse_go_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("empty duration");
    }
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow::anyhow!("missing unit in duration {s:?}"))?;
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => bail!("unknown unit {u:?} in duration {s:?}"),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

fn ps(rt: &Runtime, format: &str, id: &str, ps_args: &[String]) -> anyhow::Result<i32> {
    let pids = rt.pids(id)?;
    match format {
        "json" => {
            println!("{}", serde_json::to_string(&pids)?);
            Ok(0)
        }
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let Some(header) = lines.next() else {
                bail!("ps printed nothing");
            };
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                if let Some(p) = l.split_whitespace().nth(col).and_then(|p| p.parse().ok()) {
                    if pids.contains(&p) {
                        println!("{l}");
                    }
                }
            }
            Ok(0)
        }
        f => bail!("unknown format {f:?} (table or json)"),
    }
}

fn exec(g: &GlobalOpts, rt: &Runtime, a: ExecArgs) -> anyhow::Result<i32> {
    if !rt.exists(&a.target) {
        return super::pod::exec_pod(
            g,
            &a.target,
            a.namespace.as_deref(),
            a.container.as_deref(),
            a.interactive,
            a.tty,
            &a.cmd,
        );
    }
    let process: oci_spec::runtime::Process = match &a.process {
        Some(p) => {
            let raw = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            serde_json::from_slice(&raw)
                .with_context(|| format!("{}: invalid process", p.display()))?
        }
        None => {
            if a.cmd.is_empty() {
                bail!("exec: no command given (exec ID CMD... or --process FILE)");
            }
            let spec = rt.spec_of(&a.target)?;
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(a.cmd.clone()));
            p.set_terminal(Some(a.tty));
            let mut env = p.env().clone().unwrap_or_default();
            for kv in &a.env {
                let key = kv.split('=').next().unwrap_or(kv);
                env.retain(|e| e.split('=').next() != Some(key));
                env.push(kv.clone());
            }
            p.set_env(Some(env));
            if let Some(c) = &a.cwd {
                p.set_cwd(c.clone());
            }
            if let Some(u) = &a.user {
                let (uid, gid) = match u.split_once(':') {
                    Some((u, g)) => (u.parse::<u32>()?, Some(g.parse::<u32>()?)),
                    None => (u.parse::<u32>().context("--user wants uid[:gid]")?, None),
                };
                let user = p.user_mut();
                user.set_uid(uid);
                if let Some(gid) = gid {
                    user.set_gid(gid);
                }
            }
            if !a.additional_gids.is_empty() {
                p.user_mut()
                    .set_additional_gids(Some(a.additional_gids.clone()));
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            p
        }
    };
    let terminal = process.terminal() == Some(true);
    let mut opts = ExecOptions::new(process);
    opts.pid_file = a.pid_file.as_ref().map(|p| absolute(p));
    opts.console_socket = a.console_socket.clone();
    opts.preserve_fds = a.preserve_fds;
    let mut ours = None;
    let mut theirs = None;
    if terminal && opts.console_socket.is_none() {
        if a.detach {
            bail!("exec: --detach with a terminal needs --console-socket");
        }
        let (x, y) = console_pair()?;
        opts.console_fd = Some(y.as_raw_fd());
        ours = Some(x);
        theirs = Some(y);
    }
    let out = rt.exec(&a.target, &opts)?;
    drop(theirs);
    if a.detach {
        return Ok(0);
    }
    runtime::terminal::forward_signals(out.pid);
    if let Some(s) = &ours {
        let m = crate::runtime::terminal::recv_master(s)?;
        let _raw = runtime::terminal::RawMode::enter();
        runtime::terminal::relay(&m);
    }
    Ok(runtime::terminal::wait_exit_code(out.pid))
}
