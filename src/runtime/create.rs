//! `create`: clone the container init straight into its namespaces, place it in its
//! cgroup, answer its requests (id maps, hooks) and record its state once it is ready.
use super::cgroups::{self, CgroupManager};
use super::config::{self, Bundle};
use super::error::{Result, RuntimeError};
use super::hooks::{self, HookKind};
use super::init::{self, InitArgs};
use super::state::{self, ContainerRecord, State, Status};
use super::sys::{self, msg};
use super::{log, CreateOptions, Runtime};
use nix::sched::CloneFlags;
use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceType,
    LinuxResources, Spec,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

fn ns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::empty(),
    }
}

/// Undoes a half-made container: kills its processes, removes its cgroup and state dir.
struct CreateGuard {
    dir: PathBuf,
    child: Option<i32>,
    init: Option<i32>,
    cgroup: Option<Box<dyn CgroupManager>>,
    armed: bool,
}

impl CreateGuard {
    fn new(dir: PathBuf) -> CreateGuard {
        CreateGuard {
            dir,
            child: None,
            init: None,
            cgroup: None,
            armed: true,
        }
    }
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.init.filter(|p| Some(*p) != self.child) {
            let pidfd = sys::pidfd_open(pid).ok();
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            if let Some(fd) = pidfd {
                sys::pidfd_wait(&fd, 2000);
            }
        }
        if let Some(pid) = self.child {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = self.cgroup.take() {
            remove_cgroup(cg.as_ref());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes a cgroup, retrying briefly while the kernel finishes tearing down tasks.
pub(crate) fn remove_cgroup(cg: &dyn CgroupManager) {
    for i in 0..50 {
        match cg.remove() {
            Ok(()) => return,
            Err(e) if i == 49 => log::warn(&format!("remove cgroup: {e}")),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// The spec and options for socket activation: LISTEN_FDS/LISTEN_PID in the process env
/// and the listen fds counted as preserved (they come first, at 3..).
fn with_listen_fds(spec: &Spec, opts: &CreateOptions) -> (Spec, CreateOptions) {
    let mut spec = spec.clone();
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.push(format!("LISTEN_FDS={}", opts.listen_fds));
        env.push("LISTEN_PID=1".into());
        p.set_env(Some(env));
    }
    let mut opts = opts.clone();
    opts.preserve_fds += opts.listen_fds;
    opts.listen_fds = 0;
    (spec, opts)
}

/// The default cgroupsPath for a container without one.
pub(crate) fn default_cgroups_path(id: &str) -> String {
    format!("/podrun/{id}")
}

/// Device rules runc always allows on top of the config's (null, zero, tty, ptys, ...).
fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |t: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(t)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().ok()
    };
    use LinuxDeviceType::{B, C};
    [
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The container's device cgroup rules, as runc builds them: everything denied, then
/// `rules` (the config's linux.resources.devices, or those of an `update`), then
/// linux.devices (fifos are no device cgroup rule), then runc's defaults. Always, as
/// runc does: a config without rules gets only the defaults.
pub(crate) fn device_rules(
    spec: &Spec,
    rules: Option<&[LinuxDeviceCgroup]>,
) -> Vec<LinuxDeviceCgroup> {
    let linux = spec.linux().as_ref();
    let rules = rules.or_else(|| {
        linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().as_deref())
    });
    let mut all: Vec<LinuxDeviceCgroup> = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .ok()
        .into_iter()
        .collect();
    all.extend(rules.unwrap_or_default().iter().cloned());
    for d in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        if d.typ() != LinuxDeviceType::P {
            all.push(LinuxDeviceCgroup::from(d));
        }
    }
    all.extend(default_allowed_devices());
    all
}

/// The resources to write: the config's, with the device rules of [`device_rules`].
fn effective_resources(spec: &Spec) -> Option<LinuxResources> {
    let linux = spec.linux().as_ref()?;
    let mut res = linux.resources().clone().unwrap_or_default();
    res.set_devices(Some(device_rules(spec, None)));
    Some(res)
}

/// Does the config ask for cgroup settings beyond the default device rules?
fn cgroups_required(spec: &Spec) -> bool {
    let Some(linux) = spec.linux().as_ref() else {
        return false;
    };
    if linux.cgroups_path().is_some() {
        return true;
    }
    let Some(r) = linux.resources().as_ref() else {
        return false;
    };
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
}

/// Opens the container's cgroup (cgroupsPath, or /podrun/<id>). Without any cgroup
/// settings in the config, a host without usable cgroups only earns a warning.
pub(crate) fn open_cgroup(
    spec: &Spec,
    id: &str,
    systemd: bool,
) -> Result<Option<(String, Box<dyn CgroupManager>)>> {
    let given = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| p.to_string_lossy().into_owned());
    let path = if systemd {
        super::systemd::resolve(given.as_deref(), id)?
    } else {
        given.unwrap_or_else(|| default_cgroups_path(id))
    };
    match cgroups::open(&path) {
        Ok(m) => Ok(Some((path, m))),
        Err(e) if !cgroups_required(spec) => {
            log::warn(&format!("container {id}: no cgroup: {e}"));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// How a new process enters a cgroup cheaply: cgroup2 by clone3(CLONE_INTO_CGROUP),
/// v1 hierarchies by the child writing "0" to their `tasks` files itself.
#[derive(Default)]
pub(crate) struct CgroupJoin {
    pub tasks: Vec<PathBuf>,
    pub unified: Option<OwnedFd>,
}

impl CgroupJoin {
    pub(crate) fn prepare(cg: &dyn CgroupManager, low: i32) -> CgroupJoin {
        let unified_path = cg.unified_path();
        let tasks = cg
            .paths()
            .into_iter()
            .filter(|d| Some(d) != unified_path.as_ref())
            .map(|d| d.join("tasks"))
            .collect();
        let unified = unified_path.and_then(|u| {
            let f = std::fs::File::open(&u).ok()?;
            let fd: OwnedFd = f.into();
            if fd.as_raw_fd() >= low {
                Some(fd)
            } else {
                sys::dup_above(&fd, low).ok()
            }
        });
        CgroupJoin { tasks, unified }
    }

    /// Clones the child (into the cgroup2 directory when there is one); true when the
    /// caller must still move the child with `apply` (clone3 unavailable).
    pub(crate) fn clone(&self, flags: CloneFlags) -> Result<(i32, bool)> {
        if let Some(dir) = &self.unified {
            match sys::clone3_into_cgroup(flags.bits(), dir.as_raw_fd()) {
                Ok(pid) => return Ok((pid, false)),
                Err(e) => log::debug(&format!("clone3 into cgroup: {e}; falling back")),
            }
            let pid = sys::clone_fork(flags.bits())
                .map_err(|e| RuntimeError::sys(format!("clone {flags:?}"), e))?;
            return Ok((pid, true));
        }
        let pid = sys::clone_fork(flags.bits())
            .map_err(|e| RuntimeError::sys(format!("clone {flags:?}"), e))?;
        Ok((pid, false))
    }
}

/// Writes /proc/<pid>/{uid,gid}_map from linux.uidMappings/gidMappings.
pub(crate) fn write_id_maps(spec: &Spec, pid: i32) -> Result<()> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    for (file, maps) in [
        ("uid_map", linux.uid_mappings()),
        ("gid_map", linux.gid_mappings()),
    ] {
        let text: String = maps
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, text).map_err(|e| RuntimeError::io("write id map", path, e))?;
    }
    Ok(())
}

fn open_ns(path: &Path) -> Result<OwnedFd> {
    let f = std::fs::File::open(path).map_err(|e| RuntimeError::io("open namespace", path, e))?;
    Ok(f.into())
}

/// Joins a pid namespace for our future children, and back again when dropped.
pub(crate) struct PidNsSwitch {
    own: OwnedFd,
}

impl PidNsSwitch {
    pub(crate) fn enter(target: &OwnedFd) -> Result<PidNsSwitch> {
        let own = open_ns(Path::new("/proc/self/ns/pid"))?;
        nix::sched::setns(target, CloneFlags::CLONE_NEWPID)
            .map_err(|e| RuntimeError::sys("join pid namespace", e))?;
        Ok(PidNsSwitch { own })
    }
}

impl Drop for PidNsSwitch {
    fn drop(&mut self) {
        if let Err(e) = nix::sched::setns(&self.own, CloneFlags::CLONE_NEWPID) {
            log::warn(&format!("return to own pid namespace: {e}"));
        }
    }
}

/// A state dir without state.json whose lock nobody holds is what a killed `create`
/// leaves: remove it so the id can be used again. True if it was removed.
fn remove_stale(dir: &Path) -> bool {
    if dir.join(state::STATE_FILE).exists() {
        return false;
    }
    let Ok(f) = std::fs::File::open(dir.join(state::LOCK_FILE)) else {
        // No lock file yet: a create that has only made the directory, or a crash
        // right there; only the latter is old.
        let old = std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(10));
        return old && std::fs::remove_dir_all(dir).is_ok();
    };
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(_held) => {
            log::warn(&format!("removing stale state {}", dir.display()));
            std::fs::remove_dir_all(dir).is_ok()
        }
        Err(_) => false,
    }
}

/// Who owns the container, as runc reports it.
pub(crate) fn owner() -> String {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        "root".into()
    } else {
        uid.to_string()
    }
}

impl Runtime {
    /// Creates container `id` from the bundle at `bundle`: on success its init waits
    /// (status `created`) for [`Runtime::start`]. On failure nothing is left behind.
    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<State> {
        config::validate_id(id)?;
        let b = config::load_bundle(bundle)?;
        self.create_from(id, &b, opts)
    }

    /// [`Runtime::create`] from an already loaded bundle.
    pub fn create_from(&self, id: &str, b: &Bundle, opts: &CreateOptions) -> Result<State> {
        let activated;
        let (spec, opts) = if opts.listen_fds > 0 {
            activated = with_listen_fds(&b.spec, opts);
            (&activated.0, &activated.1)
        } else {
            (&b.spec, opts)
        };
        // Compiled before anything touches the host: a bad profile fails cleanly.
        let filter = super::seccomp::of_spec(spec, Some(&self.root.join("seccomp-cache")))
            .map_err(|msg| RuntimeError::Config {
                path: b.config_path.clone(),
                msg,
            })?;
        let dir = self.make_container_dir(id)?;
        let mut guard = CreateGuard::new(dir.clone());
        let _lock = crate::util::FileLock::exclusive(&dir.join(state::LOCK_FILE))
            .map_err(|e| RuntimeError::io("lock", dir.join(state::LOCK_FILE), e))?;
        let cfg_copy = dir.join(state::CONFIG_FILE);
        std::fs::write(&cfg_copy, &b.raw).map_err(|e| RuntimeError::io("write", cfg_copy, e))?;
        // `run` skips the created state: no exec fifo, the init goes straight on.
        let fifo = if opts.start_immediately {
            None
        } else {
            Some(open_exec_fifo(&dir)?)
        };
        let console_owned = connect_console(spec, opts)?;

        // Keep our own fds above the preserved range so the child's fds 3..3+N are intact.
        let low = 3 + opts.preserve_fds as i32;
        let (sync_parent, sync_child) =
            sys::sync_pair().map_err(|e| RuntimeError::sys("socketpair", e))?;
        let sync_child = lift(sync_child, low)?;
        let fifo = fifo.map(|f| lift(f, low)).transpose()?;
        let console_owned = console_owned.map(|f| lift(f, low)).transpose()?;
        let console = opts
            .console_fd
            .or(console_owned.as_ref().map(|f| f.as_raw_fd()));
        let (stdio, stdio_owned) =
            super::exec::lend_stdio([opts.stdin, opts.stdout, opts.stderr], low)?;
        let ns = NsPlan::of(spec, low)?;

        // The cgroup exists, with its limits, before the child does: the child joins it
        // at birth (cgroup2) or first thing (v1), never by a slow migration.
        let (cgroups_path, join) = prepare_cgroup(spec, id, opts.systemd_cgroup, low, &mut guard)?;

        // Idmapped binds are made here, on the host side (see idmounts.rs).
        let idmapped: Vec<(usize, OwnedFd)> = super::idmounts::prepare(spec, &b.config_path)?
            .into_iter()
            .map(|(i, fd)| lift(fd, low).map(|fd| (i, fd)))
            .collect::<Result<_>>()?;

        let mut args = InitArgs {
            cgroup_tasks: &join.tasks,
            spec,
            rootfs: &b.rootfs,
            sync: sync_child.as_raw_fd(),
            fifo: fifo.as_ref().map(|f| f.as_raw_fd()),
            wait_go: false,
            console,
            stdio,
            preserve_fds: opts.preserve_fds,
            no_pivot: opts.no_pivot,
            joins: ns.joins.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect(),
            unshare: ns.unshare,
            fork_for_pid: ns.fork_for_pid,
            new_userns: ns.new_userns,
            new_cgroupns: ns.new_cgroupns,
            hooks_needed: hooks_needed(spec),
            seccomp: filter.as_ref(),
            idmapped: idmapped.iter().map(|(i, f)| (*i, f.as_raw_fd())).collect(),
        };
        // CVE-2019-5736: until execve the init is this binary; non-dumpable, its
        // /proc/<pid>/exe cannot be opened from inside the container.
        sys::set_non_dumpable();
        let switch = ns.pid_join.as_ref().map(PidNsSwitch::enter).transpose()?;
        let (pid, need_apply) = join.clone(ns.clone_flags)?;
        if pid == 0 {
            // Only a migration by the parent or id maps need the child to wait.
            args.wait_go = need_apply || (ns.fast && ns.new_userns);
            // The child lives in the target pid namespace: nothing to switch back.
            std::mem::forget(switch);
            drop(sync_parent);
            init::init_main(&args);
        }
        drop(switch);
        guard.child = Some(pid);
        drop(args);
        drop(sync_child);
        drop(idmapped);
        drop(stdio_owned);
        drop(console_owned);
        let sp = sync_parent.as_raw_fd();

        drop(join);
        let new_pid_ns = ns.new_flags.contains(CloneFlags::CLONE_NEWPID);
        release_child(spec, pid, need_apply, ns, guard.cgroup.as_deref(), sp)?;

        let mut record = new_record(id, b, spec, pid, cgroups_path, new_pid_ns);
        serve_until_ready(spec, sp, pid, &mut record, &mut guard)?;
        if opts.systemd_cgroup && guard.cgroup.is_some() {
            start_systemd_scope(spec, id, record.pid)?;
        }
        record.pid_start = state::process_start_time(record.pid).unwrap_or(0);
        record.save(&dir)?;
        if let Some(pf) = &opts.pid_file {
            crate::util::write_atomic(pf, record.pid.to_string().as_bytes())
                .map_err(|e| RuntimeError::io("write pid file", pf.clone(), e))?;
        }
        guard.armed = false;
        drop(fifo);
        Ok(after_create(spec, opts, &record))
    }

    /// The container's state dir, new (a stale one from a dead create is replaced).
    fn make_container_dir(&self, id: &str) -> Result<PathBuf> {
        let cdirs = self.containers_dir();
        std::fs::create_dir_all(&cdirs)
            .map_err(|e| RuntimeError::io("create", cdirs.clone(), e))?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !remove_stale(&dir) {
                    return Err(RuntimeError::Exists(id.to_string()));
                }
                std::fs::create_dir(&dir)
                    .map_err(|e| RuntimeError::io("create", dir.clone(), e))?;
            }
            Err(e) => return Err(RuntimeError::io("create", dir, e)),
        }
        Ok(dir)
    }
}

/// `--systemd-cgroup` where systemd runs: the init, ready in the cgroup at the unit's
/// path, becomes systemd's transient scope (as runc's systemd driver makes it).
fn start_systemd_scope(spec: &Spec, id: &str, pid: i32) -> Result<()> {
    if !super::systemd::systemd_running() {
        return Ok(());
    }
    let given = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| p.to_string_lossy().into_owned());
    let unit = super::systemd::Unit::parse(given.as_deref(), id)?;
    super::systemd::start_scope(&unit, id, pid, effective_resources(spec).as_ref())
}

/// The record of a container whose init (or intermediate child) is `pid`.
fn new_record(
    id: &str,
    b: &Bundle,
    spec: &Spec,
    pid: i32,
    cgroups_path: Option<String>,
    new_pid_ns: bool,
) -> ContainerRecord {
    ContainerRecord {
        id: id.to_string(),
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        pid,
        pid_start: 0,
        created: crate::util::now_rfc3339(),
        owner: owner(),
        cgroups_path,
        new_pid_ns,
        paused: false,
        annotations: spec.annotations().clone().unwrap_or_default(),
    }
}

/// The container's state once created: for `run` (started at once) after its
/// poststart hooks, whose failure is only a warning.
fn after_create(spec: &Spec, opts: &CreateOptions, record: &ContainerRecord) -> State {
    if !opts.start_immediately {
        return record.oci_state(Status::Created);
    }
    if !hooks::hooks_of(spec, HookKind::Poststart).is_empty() {
        if let Err(e) = hooks::run_hooks(
            spec,
            HookKind::Poststart,
            &record.oci_state(Status::Running),
        ) {
            log::warn(&e.to_string());
        }
    }
    record.oci_state(Status::Running)
}

/// Opens the container's cgroup and makes it with its limits (before the child exists,
/// so it joins at birth); the guard owns it from here. Returns its path and the join.
fn prepare_cgroup(
    spec: &Spec,
    id: &str,
    systemd: bool,
    low: i32,
    guard: &mut CreateGuard,
) -> Result<(Option<String>, CgroupJoin)> {
    let cg = open_cgroup(spec, id, systemd)?;
    let cgroups_path = cg.as_ref().map(|(p, _)| p.clone());
    guard.cgroup = cg.map(|(_, m)| m);
    let mut join = CgroupJoin::default();
    if let Some(cg) = guard.cgroup.as_deref() {
        cg.create()?;
        if let Some(res) = effective_resources(spec) {
            cg.set(&res)?;
        }
        join = CgroupJoin::prepare(cg, low);
    }
    Ok((cgroups_path, join))
}

/// `fd` itself when at or above `low`, else a copy there (the preserved fds lie below).
fn lift(fd: OwnedFd, low: i32) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= low {
        Ok(fd)
    } else {
        sys::dup_above(&fd, low).map_err(|e| RuntimeError::sys("dup", e))
    }
}

/// The exec fifo `start` opens, made in `dir` and opened here for reading (non-blocking).
fn open_exec_fifo(dir: &Path) -> Result<OwnedFd> {
    let fifo_path = dir.join(state::FIFO_FILE);
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| RuntimeError::sys(format!("mkfifo {}", fifo_path.display()), e))?;
    nix::fcntl::open(
        &fifo_path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys(format!("open {}", fifo_path.display()), e))
}

/// The console socket connection a terminal process needs (none when the caller passed
/// a console fd, or the process has no terminal).
fn connect_console(spec: &Spec, opts: &CreateOptions) -> Result<Option<OwnedFd>> {
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if !terminal || opts.console_fd.is_some() {
        return Ok(None);
    }
    let Some(sock) = &opts.console_socket else {
        return Err(RuntimeError::Invalid(
            "process.terminal is true: --console-socket is required".into(),
        ));
    };
    let s = std::os::unix::net::UnixStream::connect(sock)
        .map_err(|e| RuntimeError::io("connect console socket", sock.clone(), e))?;
    Ok(Some(s.into()))
}

/// Whether any hook runs during create (the child then asks for them).
fn hooks_needed(spec: &Spec) -> bool {
    [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
    ]
    .iter()
    .any(|k| !hooks::hooks_of(spec, *k).is_empty())
}

/// Namespace plan: new ones by clone flags; joined ones by setns.
struct NsPlan {
    new_flags: CloneFlags,
    joins: Vec<(OwnedFd, CloneFlags)>,
    pid_join: Option<OwnedFd>,
    new_userns: bool,
    new_cgroupns: bool,
    /// Nothing to join: everything new is made by the clone itself.
    fast: bool,
    clone_flags: CloneFlags,
    unshare: CloneFlags,
    fork_for_pid: bool,
}

impl NsPlan {
    fn of(spec: &Spec, low: i32) -> Result<NsPlan> {
        let nss = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut new_flags = CloneFlags::empty();
        let mut joins: Vec<(OwnedFd, CloneFlags)> = Vec::new();
        let mut pid_join: Option<OwnedFd> = None;
        for ns in &nss {
            let flag = ns_flag(ns.typ());
            match ns.path() {
                None => new_flags |= flag,
                Some(p) if flag == CloneFlags::CLONE_NEWPID => pid_join = Some(open_ns(p)?),
                Some(p) => joins.push((lift(open_ns(p)?, low)?, flag)),
            }
        }
        // The user namespace must be joined first: it owns the others.
        joins.sort_by_key(|(_, f)| *f != CloneFlags::CLONE_NEWUSER);
        let fast = joins.is_empty();
        let (clone_flags, unshare, fork_for_pid) = if fast {
            (
                new_flags - CloneFlags::CLONE_NEWCGROUP,
                CloneFlags::empty(),
                false,
            )
        } else {
            (
                CloneFlags::empty(),
                new_flags - CloneFlags::CLONE_NEWCGROUP - CloneFlags::CLONE_NEWPID,
                new_flags.contains(CloneFlags::CLONE_NEWPID),
            )
        };
        Ok(NsPlan {
            new_flags,
            joins,
            pid_join,
            new_userns: new_flags.contains(CloneFlags::CLONE_NEWUSER),
            new_cgroupns: new_flags.contains(CloneFlags::CLONE_NEWCGROUP),
            fast,
            clone_flags,
            unshare,
            fork_for_pid,
        })
    }
}

/// Right after the clone: migrates the child into its cgroup when the clone could not,
/// writes the id maps of a user namespace it was cloned into, and lets it go on.
/// Consumes the plan: the joined namespace fds are closed here, as before.
fn release_child(
    spec: &Spec,
    pid: i32,
    need_apply: bool,
    ns: NsPlan,
    cg: Option<&dyn CgroupManager>,
    sp: std::os::fd::RawFd,
) -> Result<()> {
    let cloned_userns = ns.fast && ns.new_userns;
    drop(ns);
    if need_apply {
        if let Some(cg) = cg {
            cg.apply(pid)?;
        }
    }
    if cloned_userns {
        write_id_maps(spec, pid)?;
        // The child is already in its user namespace, where lowering its
        // oom_score_adj is not allowed: set it from here.
        if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
            let path = PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
            std::fs::write(&path, adj.to_string())
                .map_err(|e| RuntimeError::io("process.oomScoreAdj", path, e))?;
        }
    }
    if need_apply || cloned_userns {
        sys::send_msg(sp, msg::GO, b"").map_err(|e| RuntimeError::sys("sync", e))?;
    }
    Ok(())
}

/// Answers the child's requests (id maps, its pid after the pid-namespace fork, hooks)
/// until it is ready; its error, or its death, fails the create.
fn serve_until_ready(
    spec: &Spec,
    sp: std::os::fd::RawFd,
    pid: i32,
    record: &mut ContainerRecord,
    guard: &mut CreateGuard,
) -> Result<()> {
    loop {
        let m = sys::recv_msg(sp).map_err(|e| RuntimeError::sys("sync", e))?;
        match m {
            Some((msg::MAPS_REQ, _)) => {
                write_id_maps(spec, pid)?;
                sys::send_msg(sp, msg::MAPS_DONE, b"").map_err(|e| RuntimeError::sys("sync", e))?;
                // The child is in its own user namespace now: root there.
            }
            Some((msg::PID, p)) => {
                let mut raw = [0u8; 4];
                if p.len() == 4 {
                    raw.copy_from_slice(&p);
                }
                record.pid = i32::from_ne_bytes(raw);
                guard.init = Some(record.pid);
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                guard.child = None;
            }
            Some((msg::HOOKS_REQ, _)) => {
                let st = record.oci_state(Status::Creating);
                hooks::run_hooks(spec, HookKind::Prestart, &st)?;
                hooks::run_hooks(spec, HookKind::CreateRuntime, &st)?;
                let json = serde_json::to_vec(&record.oci_state(Status::Created))
                    .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
                sys::send_msg(sp, msg::HOOKS_DONE, &json)
                    .map_err(|e| RuntimeError::sys("sync", e))?;
            }
            Some((msg::READY, _)) => return Ok(()),
            Some((msg::ERR, text)) => {
                return Err(RuntimeError::Init(
                    String::from_utf8_lossy(&text).into_owned(),
                ))
            }
            Some((t, _)) => return Err(RuntimeError::Init(format!("unexpected sync message {t}"))),
            None => return Err(RuntimeError::Init("exited during setup".into())),
        }
    }
}
