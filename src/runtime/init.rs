//! The container's first process, from clone to execve: joins/creates namespaces,
//! builds the rootfs, sets identity and limits, waits for `start` on the exec fifo,
//! then execs the user program. Errors go back to podrun over the sync socket.
use super::process;
use super::rootfs;
use super::sys::{self, msg};
use oci_spec::runtime::{Process, Spec};
use std::os::fd::RawFd;
use std::path::Path;

type R<T> = std::result::Result<T, String>;

/// Everything the child needs, prepared by the parent before clone.
pub(crate) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    /// v1 cgroup `tasks` files to join before anything else.
    pub cgroup_tasks: &'a [std::path::PathBuf],
    pub sync: RawFd,
    /// The exec fifo to wait on for `start`; None starts at once (`run`).
    pub fifo: Option<RawFd>,
    /// Wait for the parent's GO (it migrates us or writes our id maps first).
    pub wait_go: bool,
    pub console: Option<RawFd>,
    pub stdio: [Option<RawFd>; 3],
    pub preserve_fds: u32,
    pub no_pivot: bool,
    /// Namespaces to join by path, user first (slow path only).
    pub joins: Vec<(RawFd, nix::sched::CloneFlags)>,
    /// Namespaces to unshare after the joins (slow path only; excludes pid and cgroup).
    pub unshare: nix::sched::CloneFlags,
    /// Slow path with a new pid namespace: fork once more so init is pid 1.
    pub fork_for_pid: bool,
    pub new_userns: bool,
    pub new_cgroupns: bool,
    pub hooks_needed: bool,
    /// linux.seccomp compiled by the parent; loaded last (see [`load_seccomp_early`]).
    pub seccomp: Option<&'a super::seccomp::Compiled>,
    /// Detached idmapped trees by mount index (see idmounts.rs), attached in mount_all.
    pub idmapped: Vec<(usize, RawFd)>,
}

/// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the
/// capabilities are dropped (as runc). With no_new_privs it is loaded just before exec.
pub(crate) fn load_seccomp_early(p: &Process, f: Option<&super::seccomp::Compiled>) -> R<()> {
    match f {
        Some(f) if p.no_new_privileges() != Some(true) => super::seccomp::load(f),
        _ => Ok(()),
    }
}

/// The late half of [`load_seccomp_early`]: the last step before execve.
pub(crate) fn load_seccomp_late(p: &Process, f: Option<&super::seccomp::Compiled>) -> R<()> {
    match f {
        Some(f) if p.no_new_privileges() == Some(true) => super::seccomp::load(f),
        _ => Ok(()),
    }
}

/// Child entry: never returns.
pub(crate) fn init_main(a: &InitArgs) -> ! {
    let e = match setup(a) {
        Ok((state_json, prog)) => after_ready(a, &state_json, &prog),
        Err(e) => e,
    };
    let _ = sys::send_msg(a.sync, msg::ERR, e.as_bytes());
    // SAFETY: _exit skips atexit handlers that belong to the parent's copy of the process.
    unsafe { libc::_exit(1) }
}

/// After READY nobody listens on the sync socket: report on the container's stderr.
fn after_ready(a: &InitArgs, state_json: &[u8], prog: &process::Program) -> String {
    let e = match start_and_exec(a, state_json, prog) {
        Ok(()) => return String::new(),
        Err(e) => e,
    };
    let _ = nix::unistd::write(
        // SAFETY: fd 2 is the container's stderr, borrowed for one write.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(2) },
        format!("podrun: {e}\n").as_bytes(),
    );
    // SAFETY: plain process exit.
    unsafe { libc::_exit(127) }
}

pub(crate) fn expect(sync: RawFd, want: u8) -> R<Vec<u8>> {
    match sys::recv_msg(sync) {
        Ok(Some((t, p))) if t == want => Ok(p),
        Ok(Some((t, _))) => Err(format!("sync: unexpected message {t}, wanted {want}")),
        Ok(None) => {
            // The parent died or gave up: nothing to report to.
            // SAFETY: plain process exit.
            unsafe { libc::_exit(1) }
        }
        Err(e) => Err(format!("sync: {}", e.desc())),
    }
}

fn has_mount_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Mount)
        })
}

fn process_of(spec: &Spec) -> R<&Process> {
    spec.process()
        .as_ref()
        .ok_or_else(|| "process: missing".to_string())
}

fn setup(a: &InitArgs) -> R<(Vec<u8>, process::Program)> {
    let spec = a.spec;
    let p = process_of(spec)?;
    sys::join_cgroup_tasks(a.cgroup_tasks)?;
    // Lowering oom_score_adj needs CAP_SYS_RESOURCE in the host's user namespace: set it
    // before entering another one. A child cloned into a new user namespace has it set
    // by the parent instead.
    let cloned_into_userns =
        a.new_userns && !a.unshare.contains(nix::sched::CloneFlags::CLONE_NEWUSER);
    if !cloned_into_userns {
        process::apply_oom_score_adj(p)?;
    }
    if a.wait_go {
        expect(a.sync, msg::GO)?;
    }
    let joins_userns = enter_namespaces(a)?;
    process::reset_signals()?;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    dup_stdio(a)?;
    let state_json = build_root(a, a.new_userns || joins_userns)?;
    if p.terminal() == Some(true) {
        let console = a
            .console
            .ok_or_else(|| "process.terminal: no console socket".to_string())?;
        setup_console(console, p, true)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::readonly_root()?;
    }
    process::apply_rlimits(p)?;
    nix::unistd::chdir(p.cwd())
        .map_err(|e| format!("process.cwd {}: {}", p.cwd().display(), e.desc()))?;
    super::lsm::apply_apparmor(p.apparmor_profile().as_deref().unwrap_or_default())?;
    process::apply_no_new_privs(p)?;
    load_seccomp_early(p, a.seccomp)?;
    process::apply_user_and_caps(p)?;
    process::apply_umask(p);
    // Resolve the program now so a missing binary fails `create`, as runc does.
    let prog = process::prepare_program(p)?;
    sys::send_msg(a.sync, msg::READY, b"").map_err(|e| e.desc().to_string())?;
    Ok((state_json, prog))
}

/// Joins the namespaces given by path, unshares the new ones (asking the parent for id
/// maps), forks into a new pid namespace when it could not be cloned, becomes a session
/// leader and unshares the cgroup namespace. Returns whether a user namespace was joined.
fn enter_namespaces(a: &InitArgs) -> R<bool> {
    let joins_userns = a
        .joins
        .iter()
        .any(|(_, f)| *f == nix::sched::CloneFlags::CLONE_NEWUSER);
    for (fd, flag) in &a.joins {
        // SAFETY: fd is an open namespace file inherited from the parent.
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
        nix::sched::setns(bfd, *flag)
            .map_err(|e| format!("join namespace {flag:?}: {}", e.desc()))?;
        let _ = nix::unistd::close(*fd);
    }
    if !a.unshare.is_empty() {
        nix::sched::unshare(a.unshare)
            .map_err(|e| format!("unshare {:?}: {}", a.unshare, e.desc()))?;
        if a.unshare.contains(nix::sched::CloneFlags::CLONE_NEWUSER) {
            sys::send_msg(a.sync, msg::MAPS_REQ, b"").map_err(|e| e.desc().to_string())?;
            expect(a.sync, msg::MAPS_DONE)?;
        }
    }
    if a.fork_for_pid {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(|e| format!("unshare pid namespace: {}", e.desc()))?;
        let pid = sys::clone_fork(0).map_err(|e| format!("fork: {}", e.desc()))?;
        if pid > 0 {
            let _ = sys::send_msg(a.sync, msg::PID, &pid.to_ne_bytes());
            // SAFETY: the intermediate process has nothing left to do.
            unsafe { libc::_exit(0) }
        }
    }
    // A session of its own, as runc's init (nsexec calls setsid): the caller's terminal
    // signals do not reach it directly (they are forwarded), and CRIU can dump it (it
    // refuses a session leader outside the container's pid namespace).
    nix::unistd::setsid().map_err(|e| format!("setsid: {}", e.desc()))?;
    if a.new_cgroupns {
        // After the parent placed us in the container cgroup, so that is the ns root.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| format!("unshare cgroup namespace: {}", e.desc()))?;
    }
    Ok(joins_userns)
}

/// The lent stdio descriptors onto 0..2.
fn dup_stdio(a: &InitArgs) -> R<()> {
    for (target, fd) in a.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 onto 0..2; fd is an inherited open descriptor.
            if unsafe { libc::dup2(*fd, target as i32) } < 0 {
                return Err(format!(
                    "dup2 stdio {target}: {}",
                    nix::Error::last().desc()
                ));
            }
        }
    }
    Ok(())
}

/// The container's root: mounts, /dev, hostname, createContainer hooks, sysctls, masks,
/// then pivot_root (or chroot without a mount namespace). Returns the state JSON the
/// parent sent for the hooks (empty without hooks).
fn build_root(a: &InitArgs, in_userns: bool) -> R<Vec<u8>> {
    let spec = a.spec;
    // Without a mount namespace the container shares the runtime's: nothing is mounted
    // (config.rs refused what would need it) and the root is entered by chroot, as runc.
    let own_mounts = has_mount_namespace(spec);
    if own_mounts {
        rootfs::prepare_root(spec, a.rootfs)?;
    }
    // In a user namespace we are still the host's root by id (unmapped there), which
    // lets us walk podrun's root-only (0700) directories to the rootfs: pin it now, then
    // become the namespace's root, whose files are mapped (mount points in its tmpfs).
    // Bind sources need no walk: the runtime cloned them before the clone.
    let pinned_root = if in_userns {
        Some(pin_rootfs(a.rootfs)?)
    } else {
        None
    };
    let via_fd = pinned_root.as_ref().map(|fd| {
        std::path::PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(fd)
        ))
    });
    let rootfs: &Path = via_fd.as_deref().unwrap_or(a.rootfs);
    if in_userns {
        let root = nix::unistd::Uid::from_raw(0);
        let rootg = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(rootg, rootg, rootg)
            .map_err(|e| format!("setresgid 0 in user namespace: {}", e.desc()))?;
        nix::unistd::setresuid(root, root, root)
            .map_err(|e| format!("setresuid 0 in user namespace: {}", e.desc()))?;
    }
    if own_mounts {
        rootfs::mount_all(spec, rootfs, in_userns, a.new_cgroupns, &a.idmapped)?;
        if rootfs::needs_dev(spec) {
            rootfs::setup_dev(spec, rootfs, in_userns)?;
        }
    }
    set_names(spec)?;
    let mut state_json = Vec::new();
    if a.hooks_needed {
        sys::send_msg(a.sync, msg::HOOKS_REQ, b"").map_err(|e| e.desc().to_string())?;
        state_json = expect(a.sync, msg::HOOKS_DONE)?;
        run_hooks_in_child(spec, super::hooks::HookKind::CreateContainer, &state_json)?;
    }
    super::sysctl::apply(spec, rootfs)?;
    if own_mounts {
        rootfs::mask_and_protect(spec, rootfs)?;
        rootfs::enter_root(rootfs, a.no_pivot)?;
        drop(pinned_root);
        rootfs::root_propagation(spec)?;
    } else {
        rootfs::chroot_root(rootfs)?;
    }
    Ok(state_json)
}

/// hostname and domainname, when the config sets them.
fn set_names(spec: &Spec) -> R<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| format!("hostname {h:?}: {}", e.desc()))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        let c = std::ffi::CString::new(d).map_err(|_| "domainname: NUL byte".to_string())?;
        // SAFETY: valid pointer and length.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } < 0 {
            return Err(format!("domainname {d:?}: {}", nix::Error::last().desc()));
        }
    }
    Ok(())
}

/// An O_PATH descriptor of the (bind-mounted) rootfs in our mount namespace.
fn pin_rootfs(rootfs: &Path) -> R<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open rootfs {}: {}", rootfs.display(), e.desc()))
}

/// After READY: wait for `start`, run startContainer hooks, exec.
fn start_and_exec(a: &InitArgs, state_json: &[u8], prog: &process::Program) -> R<()> {
    let _ = nix::unistd::close(a.sync);
    // Until `start` this process outlives `create`: keep only stdio, the preserved fds
    // and the fifo, not whatever else the caller of `create` had open.
    sys::close_from_except(3 + a.preserve_fds, a.fifo);
    if let Some(fifo) = a.fifo {
        wait_for_start(fifo)?;
        let _ = nix::unistd::close(fifo);
    }
    run_hooks_in_child(a.spec, super::hooks::HookKind::StartContainer, state_json)?;
    sys::cloexec_from(3 + a.preserve_fds);
    load_seccomp_late(process_of(a.spec)?, a.seccomp)?;
    Err(process::exec(prog))
}

/// Blocks until `start` writes to the exec fifo. A fifo opened for reading never reports
/// POLLHUP before a writer has connected, so poll sleeps until `start` arrives.
fn wait_for_start(fifo: RawFd) -> R<()> {
    loop {
        let mut pfd = libc::pollfd {
            fd: fifo,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r < 0 {
            let e = nix::Error::last();
            if e == nix::Error::EINTR {
                continue;
            }
            return Err(format!("exec fifo: {}", e.desc()));
        }
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fifo, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return Ok(());
        }
        if n == 0 {
            return Err("exec fifo closed without start".into());
        }
    }
}

fn run_hooks_in_child(spec: &Spec, kind: super::hooks::HookKind, state_json: &[u8]) -> R<()> {
    if super::hooks::hooks_of(spec, kind).is_empty() {
        return Ok(());
    }
    let state: super::state::State =
        serde_json::from_slice(state_json).map_err(|e| format!("hook state: {e}"))?;
    super::hooks::run_hooks(spec, kind, &state).map_err(|e| e.to_string())
}

/// Creates the container's pty (in its devpts), hands the master to the console socket,
/// and makes the slave the controlling terminal and stdio.
pub(crate) fn setup_console(console: RawFd, p: &Process, bind_console: bool) -> R<()> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("open /dev/ptmx: {}", e.desc()))?;
    nix::pty::grantpt(&master).map_err(|e| format!("grantpt: {}", e.desc()))?;
    nix::pty::unlockpt(&master).map_err(|e| format!("unlockpt: {}", e.desc()))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| format!("ptsname: {}", e.desc()))?;
    if let Some(sz) = p.console_size() {
        let ws = libc::winsize {
            ws_row: sz.height() as u16,
            ws_col: sz.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: TIOCSWINSZ with a valid winsize on our pty master.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {name}: {}", e.desc()))?;
    {
        use std::os::fd::AsRawFd;
        sys::send_fd(console, master.as_raw_fd())
            .map_err(|e| format!("console socket: send pty: {}", e.desc()))?;
    }
    drop(master);
    let _ = nix::unistd::close(console);
    if bind_console {
        let dc = Path::new("/dev/console");
        if std::fs::symlink_metadata(dc).is_err() {
            let _ = std::fs::File::create(dc);
        }
        let _ = sys::mount(Path::new(&name), dc, "", libc::MS_BIND, "");
    }
    use std::os::fd::AsRawFd;
    let sfd = slave.as_raw_fd();
    let _ = nix::unistd::setsid();
    // SAFETY: TIOCSCTTY on our own pty slave; we are a session leader.
    if unsafe { libc::ioctl(sfd, libc::TIOCSCTTY, 0) } < 0 {
        return Err(format!(
            "set controlling tty: {}",
            nix::Error::last().desc()
        ));
    }
    for t in 0..3 {
        // SAFETY: dup2 onto stdio from our open slave fd.
        if unsafe { libc::dup2(sfd, t) } < 0 {
            return Err(format!("dup2 tty: {}", nix::Error::last().desc()));
        }
    }
    Ok(())
}
