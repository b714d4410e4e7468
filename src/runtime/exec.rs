//! `exec`: start another process in a running container, joining every namespace of
//! its init, its cgroup, and the security settings of the given OCI process.
use super::create::{CgroupJoin, PidNsSwitch};
use super::error::{Result, RuntimeError};
use super::init::{expect, setup_console};
use super::state::Status;
use super::sys::{self, msg};
use super::{cgroups, process, Runtime};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Options for [`Runtime::exec`], mirroring runc's `exec` flags.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to run (args, env, cwd, user, capabilities, rlimits, terminal...).
    pub process: Process,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// An already-connected socket to send the pty master to.
    pub console_fd: Option<RawFd>,
    pub preserve_fds: u32,
    pub stdin: Option<RawFd>,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
}

impl ExecOptions {
    pub fn new(process: Process) -> ExecOptions {
        ExecOptions {
            process,
            pid_file: None,
            console_socket: None,
            console_fd: None,
            preserve_fds: 0,
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }
}

/// A started exec process: a child of the caller, who must wait for it.
#[derive(Debug)]
pub struct ExecOutcome {
    pub pid: i32,
}

pub(super) fn ns_file(t: LinuxNamespaceType) -> Option<(&'static str, CloneFlags)> {
    Some(match t {
        LinuxNamespaceType::User => ("user", CloneFlags::CLONE_NEWUSER),
        LinuxNamespaceType::Ipc => ("ipc", CloneFlags::CLONE_NEWIPC),
        LinuxNamespaceType::Uts => ("uts", CloneFlags::CLONE_NEWUTS),
        LinuxNamespaceType::Network => ("net", CloneFlags::CLONE_NEWNET),
        LinuxNamespaceType::Cgroup => ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        LinuxNamespaceType::Mount => ("mnt", CloneFlags::CLONE_NEWNS),
        LinuxNamespaceType::Pid => ("pid", CloneFlags::CLONE_NEWPID),
        LinuxNamespaceType::Time => return None,
    })
}

impl Runtime {
    /// The record of container `id` when it can take an exec (created or running).
    pub(super) fn exec_target(&self, id: &str) -> Result<super::ContainerRecord> {
        let rec = self.record(id)?;
        let status = rec.status(&self.container_dir(id));
        if !matches!(status, Status::Running | Status::Created) {
            return Err(RuntimeError::BadState {
                id: id.into(),
                msg: format!("cannot exec in a container that is {status}"),
            });
        }
        Ok(rec)
    }

    /// Starts `opts.process` inside container `id` and returns its pid once it has
    /// exec'd (errors before that are reported here).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<ExecOutcome> {
        let rec = self.exec_target(id)?;
        let spec = self.spec_of(id)?;
        let p = &opts.process;
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(RuntimeError::Invalid(
                "exec: process.args must not be empty".into(),
            ));
        }
        let low = 3 + opts.preserve_fds as i32;
        let lift = |fd: OwnedFd| -> Result<OwnedFd> {
            if fd.as_raw_fd() >= low {
                Ok(fd)
            } else {
                sys::dup_above(&fd, low).map_err(|e| RuntimeError::sys("dup", e))
            }
        };
        let (joins, pid_ns) = exec_namespaces(id, &spec, rec.pid, &lift)?;
        let terminal = p.terminal() == Some(true);
        let mut console_owned = None;
        if terminal && opts.console_fd.is_none() {
            let Some(sock) = &opts.console_socket else {
                return Err(RuntimeError::Invalid(
                    "exec: a terminal needs a console socket".into(),
                ));
            };
            let s = std::os::unix::net::UnixStream::connect(sock)
                .map_err(|e| RuntimeError::io("connect console socket", sock.clone(), e))?;
            console_owned = Some(lift(s.into())?);
        }
        let console = opts
            .console_fd
            .or(console_owned.as_ref().map(|f| f.as_raw_fd()));
        let (stdio, stdio_owned) = lend_stdio([opts.stdin, opts.stdout, opts.stderr], low)?;
        let (sync_parent, sync_child) =
            sys::sync_pair().map_err(|e| RuntimeError::sys("socketpair", e))?;
        let sync_child = lift(sync_child)?;
        let cg = rec
            .cgroups_path
            .as_ref()
            .and_then(|p| cgroups::open(p).ok());

        let join = cg
            .as_deref()
            .map(|c| CgroupJoin::prepare(c, low))
            .unwrap_or_default();
        // The container's own filter: an exec'd process never gets more than init.
        let filter = super::seccomp::of_spec(&spec, Some(&self.root.join("seccomp-cache")))
            .map_err(RuntimeError::Invalid)?;
        // CVE-2019-5736: until execve the child is this binary; non-dumpable, its
        // /proc/<pid>/exe cannot be opened by the container's processes.
        sys::set_non_dumpable();
        let switch = pid_ns.as_ref().map(PidNsSwitch::enter).transpose()?;
        let (pid, need_apply) = join.clone(CloneFlags::empty())?;
        if pid == 0 {
            // The child lives in the target pid namespace: nothing to switch back.
            std::mem::forget(switch);
            drop(sync_parent);
            let child = ExecChild {
                process: p,
                sync: sync_child.as_raw_fd(),
                cgroup_tasks: &join.tasks,
                joins: joins.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect(),
                console,
                stdio,
                preserve_fds: opts.preserve_fds,
                seccomp: filter.as_ref(),
            };
            exec_child_main(&child);
        }
        drop(switch);
        drop(sync_child);
        drop(joins);
        drop(stdio_owned);
        drop(console_owned);
        let fail = |e: RuntimeError| {
            let p = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(p, None);
            e
        };
        drop(join);
        if let Some(cg) = cg.as_deref().filter(|_| need_apply) {
            cg.apply(pid).map_err(|e| fail(e.into()))?;
        }
        await_exec(sync_parent.as_raw_fd(), pid, &fail)?;
        if let Some(pf) = &opts.pid_file {
            crate::util::write_atomic(pf, pid.to_string().as_bytes())
                .map_err(|e| RuntimeError::io("write pid file", pf.clone(), e))?;
        }
        Ok(ExecOutcome { pid })
    }
}

/// Namespace files to join, with their clone flags.
type JoinList = Vec<(OwnedFd, CloneFlags)>;

/// The container's namespaces opened from its init: the ones to join (user first,
/// mount last, each lifted above the preserved fds) and its pid namespace. A container
/// without a mount namespace is refused.
fn exec_namespaces(
    id: &str,
    spec: &oci_spec::runtime::Spec,
    pid: i32,
    lift: &dyn Fn(OwnedFd) -> Result<OwnedFd>,
) -> Result<(JoinList, Option<OwnedFd>)> {
    let mut joins: Vec<(OwnedFd, CloneFlags)> = Vec::new();
    let mut pid_ns: Option<OwnedFd> = None;
    let types = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    // Without a mount namespace the container is only chrooted into its rootfs:
    // joining its namespaces would leave the new process at the caller's root.
    if !types.iter().any(|n| n.typ() == LinuxNamespaceType::Mount) {
        return Err(RuntimeError::Invalid(format!(
            "exec: container {id} has no mount namespace (it shares the runtime's and \
             is chrooted into its rootfs); podrun does not exec into it"
        )));
    }
    for ns in types {
        let Some((name, flag)) = ns_file(ns.typ()) else {
            continue;
        };
        let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let f = std::fs::File::open(&path)
            .map_err(|e| RuntimeError::io("open namespace", path.clone(), e))?;
        if flag == CloneFlags::CLONE_NEWPID {
            pid_ns = Some(f.into());
        } else {
            joins.push((lift(f.into())?, flag));
        }
    }
    joins.sort_by_key(|(_, f)| match *f {
        CloneFlags::CLONE_NEWUSER => 0,
        CloneFlags::CLONE_NEWNS => 2,
        _ => 1,
    });
    Ok((joins, pid_ns))
}

/// Lets the exec child go on and waits until it has exec'd (the sync socket closes on
/// exec) or reported its error; `fail` kills and reaps it on our own errors.
fn await_exec(sp: RawFd, pid: i32, fail: &dyn Fn(RuntimeError) -> RuntimeError) -> Result<()> {
    sys::send_msg(sp, msg::GO, b"").map_err(|e| fail(RuntimeError::sys("sync", e)))?;
    match sys::recv_msg(sp) {
        Ok(None) => Ok(()),
        Ok(Some((msg::ERR, text))) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Err(RuntimeError::Init(
                String::from_utf8_lossy(&text).into_owned(),
            ))
        }
        Ok(Some((t, _))) => Err(fail(RuntimeError::Init(format!(
            "unexpected sync message {t}"
        )))),
        Err(e) => Err(fail(RuntimeError::sys("sync", e))),
    }
}

struct ExecChild<'a> {
    process: &'a Process,
    sync: RawFd,
    cgroup_tasks: &'a [PathBuf],
    joins: Vec<(RawFd, CloneFlags)>,
    console: Option<RawFd>,
    stdio: [Option<RawFd>; 3],
    preserve_fds: u32,
    seccomp: Option<&'a super::seccomp::Compiled>,
}

fn exec_child_main(c: &ExecChild) -> ! {
    let e = exec_child(c).err().unwrap_or_default();
    let _ = sys::send_msg(c.sync, msg::ERR, e.as_bytes());
    // SAFETY: plain process exit of the child.
    unsafe { libc::_exit(1) }
}

fn exec_child(c: &ExecChild) -> std::result::Result<(), String> {
    sys::join_cgroup_tasks(c.cgroup_tasks)?;
    expect(c.sync, msg::GO)?;
    // Before a user namespace is joined: lowering it needs the host's CAP_SYS_RESOURCE.
    process::apply_oom_score_adj(c.process)?;
    for (fd, flag) in &c.joins {
        // SAFETY: fd is an open namespace file inherited from the parent.
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
        nix::sched::setns(bfd, *flag)
            .map_err(|e| format!("join namespace {flag:?}: {}", e.desc()))?;
        let _ = nix::unistd::close(*fd);
    }
    for (target, fd) in c.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 onto 0..2 from an inherited open descriptor.
            if unsafe { libc::dup2(*fd, target as i32) } < 0 {
                return Err(format!(
                    "dup2 stdio {target}: {}",
                    nix::Error::last().desc()
                ));
            }
        }
    }
    let p = c.process;
    if p.terminal() == Some(true) {
        let console = c
            .console
            .ok_or_else(|| "terminal: no console socket".to_string())?;
        setup_console(console, p, false)?;
    }
    process::reset_signals()?;
    process::apply_rlimits(p)?;
    nix::unistd::chdir(p.cwd()).map_err(|e| format!("cwd {}: {}", p.cwd().display(), e.desc()))?;
    super::lsm::apply_apparmor(p.apparmor_profile().as_deref().unwrap_or_default())?;
    process::apply_no_new_privs(p)?;
    super::init::load_seccomp_early(p, c.seccomp)?;
    process::apply_user_and_caps(p)?;
    process::apply_umask(p);
    let prog = process::prepare_program(p)?;
    sys::cloexec_from(3 + c.preserve_fds);
    super::init::load_seccomp_late(p, c.seccomp)?;
    Err(process::exec(&prog))
}

/// Duplicates the stdio fds a caller lends (for the duration of a create or exec) to
/// numbers at or above `low`, so setting up fds 0..low in the child cannot clobber them.
/// Returns the raw numbers and the owned duplicates that keep them open.
pub(super) fn lend_stdio(
    fds: [Option<RawFd>; 3],
    low: RawFd,
) -> Result<([Option<RawFd>; 3], Vec<OwnedFd>)> {
    let mut owned = Vec::new();
    let mut raw: [Option<RawFd>; 3] = [None; 3];
    for (i, fd) in fds.into_iter().enumerate() {
        let Some(fd) = fd else { continue };
        // SAFETY: the caller lends us this fd for the duration of the call.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let d = b
            .try_clone_to_owned()
            .map_err(|e| RuntimeError::io("dup stdio", PathBuf::from(format!("fd {fd}")), e))?;
        let d = if d.as_raw_fd() >= low {
            d
        } else {
            sys::dup_above(&d, low).map_err(|e| RuntimeError::sys("dup", e))?
        };
        raw[i] = Some(d.as_raw_fd());
        owned.push(d);
    }
    Ok((raw, owned))
}
