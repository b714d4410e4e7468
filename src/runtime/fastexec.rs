//! A prepared exec for callers that start many short processes in one running container
//! (the pod supervisor's exec probes and hooks).
//!
//! [`Runtime::exec`] is the general path: it reads the container's state and config,
//! opens its namespaces and cgroups, and forks a copy of the caller, which then sets
//! itself up with ordinary (allocating) code. For a probe every second that costs the
//! caller more than the probe: the fork copies and write-protects its page tables (TLB
//! shootdowns, then copy-on-write faults in the caller), and the files are read again
//! each time. Here everything is resolved once per container run: namespace and cgroup
//! fds stay open, the process settings become plain syscall arguments, and each spawn is
//! a `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD [| CLONE_INTO_CGROUP])` whose child runs
//! on its own stack, makes only raw syscalls (no allocation, no locks), and execs. The
//! caller sleeps until that exec (as with vfork), so the child never races it.
//!
//! What the child does is what [`Runtime::exec`]'s child does, in the same order: join
//! the v1 cgroups, the namespaces (mount last), stdio, oom_score_adj, signal mask,
//! rlimits, cwd, no_new_privs, seccomp (early), bounding set, groups/gid/uid, the
//! capability sets, umask, close-on-exec above stdio, seccomp (late), execve along PATH.
//! A container with a user namespace is refused (setns into a user namespace needs an
//! unshared address space): callers then use [`Runtime::exec`].
use super::error::{Result, RuntimeError};
use super::seccomp::Compiled;
use super::{cgroups, sys, Runtime};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const STACK_SIZE: usize = 64 * 1024;

/// A container's exec settings, resolved once; spawn many processes from it.
pub struct PreparedExec {
    /// Namespaces to join in order (user never: refused), mount last.
    joins: Vec<(OwnedFd, libc::c_int)>,
    pid_ns: Option<OwnedFd>,
    own_pid_ns: Option<OwnedFd>,
    /// v1 `tasks` files, opened for writing: the child writes "0" (itself).
    tasks: Vec<OwnedFd>,
    /// The cgroup2 directory, for CLONE_INTO_CGROUP.
    unified: Option<OwnedFd>,
    oom_score_adj: Option<Vec<u8>>,
    rlimits: Vec<(libc::c_int, libc::rlimit)>,
    cwd: CString,
    no_new_privs: bool,
    seccomp: Option<Compiled>,
    /// Capabilities to drop from the bounding set (when capabilities are configured).
    bounding_drop: Vec<libc::c_ulong>,
    groups: Vec<libc::gid_t>,
    uid: libc::uid_t,
    gid: libc::gid_t,
    /// effective, permitted, inheritable as 64-bit masks (None: leave as they are,
    /// except that a non-root user without configured capabilities loses them).
    caps: Option<[u64; 3]>,
    clear_caps: bool,
    ambient: Vec<libc::c_ulong>,
    umask: libc::mode_t,
    /// Signals this process ignores or catches, put back to SIG_DFL in the child.
    signals: sys::Signals,
    env: Vec<CString>,
    path_dirs: Vec<String>,
    stack: Vec<u128>,
}

/// A process started by [`PreparedExec::spawn`]: a child of the caller, with a pidfd.
/// Its exit signal is 0, so only a `__WALL` wait reaps it; wait on the pidfd. (The kernel
/// may still send SIGCHLD once it has exec'd: 6.18 here does. Rely on neither.)
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

fn io_err(what: &'static str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::io(what, path.to_path_buf(), e)
}

fn open_fd(path: &Path, write: bool) -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open(path)
        .map_err(|e| io_err("open", path, e))?;
    Ok(f.into())
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::Invalid(format!("{what}: NUL byte in {s:?}")))
}

fn cap_mask(set: &Option<oci_spec::runtime::Capabilities>) -> u64 {
    let mut m = 0u64;
    for c in set.iter().flatten() {
        if let Ok(cap) = format!("CAP_{c}").parse::<caps::Capability>() {
            m |= 1u64 << cap.index();
        }
    }
    m
}

/// HOME of `uid` from the container's /etc/passwd (seen through its init's root), "/"
/// when absent, as runc does.
fn home_in(root: &Path, uid: u32) -> String {
    if let Ok(pw) = std::fs::read_to_string(root.join("etc/passwd")) {
        for line in pw.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) {
                return f[5].to_string();
            }
        }
    }
    "/".into()
}

/// Namespace files to join, with their CLONE_NEW* flags.
type NsJoins = Vec<(OwnedFd, i32)>;

/// The container's namespaces to join (mount last) and its pid namespace, opened from
/// its init; a user namespace is refused (the general path handles it).
fn namespace_fds(spec: &oci_spec::runtime::Spec, pid: i32) -> Result<(NsJoins, Option<OwnedFd>)> {
    let mut joins = Vec::new();
    let mut pid_ns = None;
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in namespaces {
        if ns.typ() == LinuxNamespaceType::User {
            return Err(RuntimeError::Invalid(
                "prepared exec: container has a user namespace".into(),
            ));
        }
        let Some((name, flag)) = super::exec::ns_file(ns.typ()) else {
            continue;
        };
        let flag = flag.bits();
        let fd = open_fd(&PathBuf::from(format!("/proc/{pid}/ns/{name}")), false)?;
        if flag == libc::CLONE_NEWPID {
            pid_ns = Some(fd);
        } else {
            joins.push((fd, flag));
        }
    }
    joins.sort_by_key(|(_, f)| i32::from(*f == libc::CLONE_NEWNS));
    Ok((joins, pid_ns))
}

/// The container cgroup's v1 `tasks` files (opened for writing) and its cgroup2 dir.
fn cgroup_fds(cgroups_path: Option<&str>) -> Result<(Vec<OwnedFd>, Option<OwnedFd>)> {
    let cg = cgroups_path.and_then(|p| cgroups::open(p).ok());
    let (mut tasks, mut unified) = (Vec::new(), None);
    if let Some(cg) = cg.as_deref() {
        let unified_path = cg.unified_path();
        for d in cg.paths() {
            if Some(&d) == unified_path.as_ref() {
                continue;
            }
            tasks.push(open_fd(&d.join("tasks"), true)?);
        }
        if let Some(u) = unified_path {
            unified = Some(open_fd(&u, false)?);
        }
    }
    Ok((tasks, unified))
}

/// process.rlimits as prlimit64 arguments (unknown types skipped).
fn rlimits_of(p: &Process) -> Vec<(libc::c_int, libc::rlimit)> {
    let mut rlimits = Vec::new();
    for rl in p.rlimits().as_deref().unwrap_or_default() {
        if let Some(res) = super::process::rlimit_resource(rl.typ()) {
            rlimits.push((
                res as libc::c_int,
                libc::rlimit {
                    rlim_cur: rl.soft(),
                    rlim_max: rl.hard(),
                },
            ));
        }
    }
    rlimits
}

/// Capability sets `[effective, permitted, inheritable]` as masks, the bounding
/// capabilities to drop and the ambient ones to raise.
type CapPlan = (Option<[u64; 3]>, Vec<libc::c_ulong>, Vec<libc::c_ulong>);

fn cap_plan(caps_cfg: Option<&oci_spec::runtime::LinuxCapabilities>) -> CapPlan {
    let mut bounding_drop = Vec::new();
    let mut ambient = Vec::new();
    let caps = caps_cfg.map(|c| {
        let keep = cap_mask(c.bounding());
        let last = caps::runtime::thread_all_supported()
            .iter()
            .map(|c| c.index())
            .max()
            .unwrap_or(40);
        for i in 0..=last {
            if keep & (1u64 << i) == 0 {
                bounding_drop.push(libc::c_ulong::from(i));
            }
        }
        let amb = cap_mask(c.ambient());
        for i in 0..64u8 {
            if amb & (1u64 << i) != 0 {
                ambient.push(libc::c_ulong::from(i));
            }
        }
        [
            cap_mask(c.effective()),
            cap_mask(c.permitted()),
            cap_mask(c.inheritable()),
        ]
    });
    (caps, bounding_drop, ambient)
}

impl Runtime {
    /// Resolves everything an exec of `process` into running container `id` needs.
    /// Fails for containers in a user namespace (use [`Runtime::exec`]).
    pub fn prepare_exec(&self, id: &str, process: &Process) -> Result<PreparedExec> {
        let rec = self.exec_target(id)?;
        let spec = self.spec_of(id)?;
        if process
            .apparmor_profile()
            .as_ref()
            .is_some_and(|a| !a.is_empty())
        {
            return Err(RuntimeError::Invalid(
                "prepared exec: process.apparmorProfile is applied by the general path".into(),
            ));
        }
        let (joins, pid_ns) = namespace_fds(&spec, rec.pid)?;
        let own_pid_ns = match pid_ns {
            Some(_) => Some(open_fd(Path::new("/proc/self/ns/pid"), false)?),
            None => None,
        };
        let (tasks, unified) = cgroup_fds(rec.cgroups_path.as_deref())?;
        let seccomp = super::seccomp::of_spec(&spec, Some(&self.root.join("seccomp-cache")))
            .map_err(RuntimeError::Invalid)?;

        let p = process;
        let user = p.user();
        let rlimits = rlimits_of(p);
        let caps_cfg = p.capabilities().as_ref();
        let (caps, bounding_drop, ambient) = cap_plan(caps_cfg);
        let env_list = p.env().as_deref().unwrap_or_default();
        let mut env = env_list
            .iter()
            .map(|e| cstring(e, "process.env"))
            .collect::<Result<Vec<_>>>()?;
        if !env_list.iter().any(|e| e.starts_with("HOME=")) {
            let root = PathBuf::from(format!("/proc/{}/root", rec.pid));
            env.push(cstring(
                &format!("HOME={}", home_in(&root, user.uid())),
                "HOME",
            )?);
        }
        let path_dirs = env_list
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .split(':')
            .map(String::from)
            .collect();
        let cwd = CString::new(p.cwd().as_os_str().as_encoded_bytes())
            .map_err(|_| RuntimeError::Invalid("process.cwd: NUL byte".into()))?;
        // CVE-2019-5736: until execve the child is this binary; non-dumpable, its
        // /proc/<pid>/exe cannot be opened by the container's processes.
        sys::set_non_dumpable();
        Ok(PreparedExec {
            joins,
            pid_ns,
            own_pid_ns,
            tasks,
            unified,
            oom_score_adj: p.oom_score_adj().map(|a| a.to_string().into_bytes()),
            rlimits,
            cwd,
            no_new_privs: p.no_new_privileges() == Some(true),
            seccomp,
            bounding_drop,
            groups: user.additional_gids().clone().unwrap_or_default(),
            uid: user.uid(),
            gid: user.gid(),
            caps,
            clear_caps: caps_cfg.is_none() && user.uid() != 0,
            ambient,
            umask: user.umask().unwrap_or(0o022) as libc::mode_t,
            signals: sys::non_default_signals(),
            env,
            path_dirs,
            stack: vec![0u128; STACK_SIZE / 16],
        })
    }
}

/// What the child reads: raw pointers into the caller's memory (shared, CLONE_VM),
/// valid because the caller is suspended until the child execs or exits.
struct Child<'a> {
    p: &'a PreparedExec,
    stdio: [RawFd; 3],
    candidates: &'a [CString],
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// A failure before exec, as `(stage + 1) << 32 | errno` (0: none). Written by the
    /// child before it exits; the caller reads it once resumed (exit or exec released
    /// the shared memory, so no pipe and no wait on one is needed).
    report: AtomicU64,
    oom_path: &'a CString,
}

/// Stages the child reports on failure (with errno).
const STAGES: &[&str] = &[
    "join cgroup",
    "join namespace",
    "dup2 stdio",
    "process.oomScoreAdj",
    "reset signal mask",
    "process.rlimits",
    "process.cwd",
    "noNewPrivileges",
    "load seccomp filter",
    "drop bounding capability",
    "process.user.additionalGids: setgroups",
    "process.user.gid: setresgid",
    "process.user.uid: setresuid",
    "process.capabilities",
    "exec",
];

impl PreparedExec {
    /// Starts `args` (args[0] looked up on the process PATH) with the given stdio.
    pub fn spawn(
        &mut self,
        args: &[String],
        stdin: RawFd,
        stdout: RawFd,
        stderr: RawFd,
    ) -> Result<Spawned> {
        let Some(arg0) = args.first() else {
            return Err(RuntimeError::Invalid(
                "exec: process.args must not be empty".into(),
            ));
        };
        let argv_c = args
            .iter()
            .map(|a| cstring(a, "process.args"))
            .collect::<Result<Vec<_>>>()?;
        let candidates: Vec<CString> = if arg0.contains('/') {
            vec![cstring(arg0, "process.args")?]
        } else {
            self.path_dirs
                .iter()
                .filter_map(|d| {
                    CString::new(Path::new(d).join(arg0).as_os_str().as_encoded_bytes()).ok()
                })
                .collect()
        };
        let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        // Descriptors at 3 and above survive the child's dup2 onto 0..2 as they are;
        // only lower ones need a copy out of the way.
        let (stdio, _lent) = if stdin >= 3 && stdout >= 3 && stderr >= 3 {
            ([Some(stdin), Some(stdout), Some(stderr)], Vec::new())
        } else {
            super::exec::lend_stdio([Some(stdin), Some(stdout), Some(stderr)], 3)?
        };
        let oom_path = c"/proc/self/oom_score_adj".to_owned();
        let child = Child {
            p: self,
            stdio: [
                stdio[0].unwrap_or(-1),
                stdio[1].unwrap_or(-1),
                stdio[2].unwrap_or(-1),
            ],
            candidates: &candidates,
            argv: &argv,
            envp: &envp,
            report: AtomicU64::new(0),
            oom_path: &oom_path,
        };
        let mut pidfd: libc::c_int = -1;
        let stack_base = self.stack.as_ptr() as u64;
        let stack_size = (self.stack.len() * 16) as u64;
        if let Some(ns) = &self.pid_ns {
            nix::sched::setns(ns, CloneFlags::CLONE_NEWPID)
                .map_err(|e| RuntimeError::sys("join pid namespace", e))?;
        }
        let r = clone_vfork(
            stack_base,
            stack_size,
            self.unified.as_ref().map(|f| f.as_raw_fd()),
            &mut pidfd,
            &child,
        );
        if let Some(own) = &self.own_pid_ns {
            if let Err(e) = nix::sched::setns(own, CloneFlags::CLONE_NEWPID) {
                super::log::warn(&format!("return to own pid namespace: {e}"));
            }
        }
        let pid = r.map_err(|e| RuntimeError::sys("clone3", e))?;
        // SAFETY: CLONE_PIDFD stored a fresh pidfd we now own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        let report = child.report.load(Ordering::SeqCst);
        if report != 0 {
            // A non-SIGCHLD child: only __WALL waits for it (a zombie left here would
            // keep a pid namespace's init from exiting).
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::__WALL),
            );
            let stage = ((report >> 32) as usize).saturating_sub(1);
            let errno = nix::Error::from_raw(report as u32 as i32);
            let what = STAGES.get(stage).copied().unwrap_or("exec");
            let text = if what == "exec" {
                if errno == nix::Error::ENOENT && !arg0.contains('/') {
                    format!("exec: {arg0:?}: executable file not found in $PATH")
                } else {
                    format!("exec {arg0}: {}", errno.desc())
                }
            } else {
                format!("{what}: {}", errno.desc())
            };
            return Err(RuntimeError::Init(text));
        }
        Ok(Spawned { pid, pidfd })
    }
}

use super::sys::{CloneArgs, CLONE_INTO_CGROUP};

/// clone3 with CLONE_VM | CLONE_VFORK | CLONE_PIDFD: the child runs `child_main` on the
/// given stack; we resume once it has exec'd or exited.
#[cfg(target_arch = "x86_64")]
fn clone_vfork(
    stack: u64,
    stack_size: u64,
    cgroup: Option<RawFd>,
    pidfd: &mut libc::c_int,
    child: &Child,
) -> nix::Result<i32> {
    let mut flags = (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64;
    if cgroup.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    let args = CloneArgs {
        flags,
        pidfd: pidfd as *mut libc::c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        // Not SIGCHLD: the caller waits on the pidfd and reaps with __WALL (a SIGCHLD may
        // still come once the child has exec'd; callers do not depend on it).
        exit_signal: 0,
        stack,
        stack_size,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.map_or(0, |c| c as u64),
    };
    let entry: extern "C" fn(*const Child) -> ! = child_main;
    let ret: i64;
    // SAFETY: clone3 returns twice. The parent continues here as after any syscall. The
    // child starts on the fresh, 16-byte aligned stack `stack..stack+stack_size` with the
    // caller's registers: it calls child_main(child) at once, which never returns, so no
    // code that relies on the old stack runs in it. rcx and r11 are clobbered by
    // `syscall`; r12/r13 carry the entry and its argument across it.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") child as *const Child,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(nix::Error::from_raw(-ret as i32));
    }
    Ok(ret as i32)
}

#[cfg(not(target_arch = "x86_64"))]
fn clone_vfork(
    _stack: u64,
    _stack_size: u64,
    _cgroup: Option<RawFd>,
    _pidfd: &mut libc::c_int,
    _child: &Child,
) -> nix::Result<i32> {
    Err(nix::Error::ENOSYS)
}

fn errno() -> i32 {
    // SAFETY: reads the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// The child: raw syscalls only (it shares the caller's memory). Reports
/// `(stage, errno)` in `report` and exits 127 on failure.
extern "C" fn child_main(c: *const Child) -> ! {
    // SAFETY: the caller is suspended (CLONE_VFORK) and keeps `c` alive until we exec or
    // exit.
    let c = unsafe { &*c };
    let (stage, err) = match child_steps(c) {
        Ok(()) => (STAGES.len() as u32 - 1, libc::ENOEXEC),
        Err(e) => e,
    };
    c.report.store(
        (u64::from(stage) + 1) << 32 | u64::from(err as u32),
        Ordering::SeqCst,
    );
    // SAFETY: _exit(2) ends this process only.
    unsafe { libc::_exit(127) }
}

fn check(stage: u32, r: libc::c_long) -> std::result::Result<(), (u32, i32)> {
    if r < 0 {
        Err((stage, errno()))
    } else {
        Ok(())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn child_steps(c: &Child) -> std::result::Result<(), (u32, i32)> {
    let p = c.p;
    enter_container(c)?;
    // SAFETY: raw syscalls on buffers prepared by the caller, alive and unchanged while
    // it is suspended; nothing here allocates or takes a lock.
    unsafe {
        check(6, libc::chdir(p.cwd.as_ptr()) as libc::c_long)?;
        if p.no_new_privs {
            check(
                7,
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long,
            )?;
        }
    }
    if let Some(f) = p.seccomp.as_ref().filter(|_| !p.no_new_privs) {
        load_filter(f)?;
    }
    become_user(p)?;
    // SAFETY: as above.
    unsafe {
        libc::umask(p.umask);
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    if let Some(f) = p.seccomp.as_ref().filter(|_| p.no_new_privs) {
        load_filter(f)?;
    }
    // execvp's search: the first candidate that exists and can be run wins; keep the
    // most telling error (EACCES over ENOENT) when none does.
    let mut last = libc::ENOENT;
    for cand in c.candidates {
        // SAFETY: NUL-terminated strings and NULL-terminated arrays built by the caller.
        unsafe { libc::execve(cand.as_ptr(), c.argv.as_ptr(), c.envp.as_ptr()) };
        let e = errno();
        match e {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => last = e,
            _ => return Err((STAGES.len() as u32 - 1, e)),
        }
    }
    Err((STAGES.len() as u32 - 1, last))
}

/// The child's first steps: default signal handlers, the container's cgroups and
/// namespaces, stdio, oomScoreAdj, an empty signal mask and the rlimits.
fn enter_container(c: &Child) -> std::result::Result<(), (u32, i32)> {
    let p = c.p;
    // SAFETY (whole body): raw syscalls on descriptors and buffers prepared by the caller,
    // alive and unchanged while it is suspended; nothing here allocates or takes a lock.
    unsafe {
        // First: a handler of the caller's must not run in this child (shared memory).
        sys::reset_signals(&p.signals);
        for t in &p.tasks {
            check(
                0,
                libc::write(t.as_raw_fd(), b"0".as_ptr().cast(), 1) as libc::c_long,
            )?;
        }
        for (fd, flag) in &p.joins {
            check(1, libc::setns(fd.as_raw_fd(), *flag) as libc::c_long)?;
        }
        for (target, fd) in c.stdio.iter().enumerate() {
            if *fd >= 0 {
                check(2, libc::dup2(*fd, target as i32) as libc::c_long)?;
            }
        }
        if let Some(adj) = &p.oom_score_adj {
            let fd = libc::open(c.oom_path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(3, fd as libc::c_long)?;
            let w = libc::write(fd, adj.as_ptr().cast(), adj.len());
            libc::close(fd);
            check(3, w as libc::c_long)?;
        }
        let empty: libc::sigset_t = std::mem::zeroed();
        check(
            4,
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &empty as *const libc::sigset_t,
                std::ptr::null_mut::<libc::sigset_t>(),
                8usize,
            ),
        )?;
        for (res, lim) in &p.rlimits {
            check(
                5,
                libc::syscall(
                    libc::SYS_prlimit64,
                    0,
                    *res,
                    lim as *const libc::rlimit,
                    0usize,
                ),
            )?;
        }
    }
    Ok(())
}

/// Drops bounding capabilities, sets groups, gid and uid, then the capability sets
/// (keeping them across the uid change) and the ambient ones.
fn become_user(p: &PreparedExec) -> std::result::Result<(), (u32, i32)> {
    // SAFETY (whole body): raw syscalls on buffers prepared by the caller, alive and
    // unchanged while it is suspended; nothing here allocates or takes a lock.
    unsafe {
        for cap in &p.bounding_drop {
            let r = libc::prctl(libc::PR_CAPBSET_DROP, *cap, 0, 0, 0);
            if r < 0 && errno() != libc::EINVAL {
                return Err((9, errno()));
            }
        }
        if p.caps.is_some() {
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
        }
        let r = libc::syscall(libc::SYS_setgroups, p.groups.len(), p.groups.as_ptr());
        if r < 0 && !(errno() == libc::EPERM && p.groups.is_empty()) {
            return Err((10, errno()));
        }
        check(11, libc::syscall(libc::SYS_setresgid, p.gid, p.gid, p.gid))?;
        check(12, libc::syscall(libc::SYS_setresuid, p.uid, p.uid, p.uid))?;
        let hdr = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        if let Some([eff, perm, inh]) = p.caps {
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
            let data = [
                CapData {
                    effective: eff as u32,
                    permitted: perm as u32,
                    inheritable: inh as u32,
                },
                CapData {
                    effective: (eff >> 32) as u32,
                    permitted: (perm >> 32) as u32,
                    inheritable: (inh >> 32) as u32,
                },
            ];
            check(
                13,
                libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()),
            )?;
            for cap in &p.ambient {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    *cap,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                );
            }
        } else if p.clear_caps {
            let data = [CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            }; 2];
            libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr());
        }
    }
    Ok(())
}

fn load_filter(f: &Compiled) -> std::result::Result<(), (u32, i32)> {
    super::seccomp::install(f).map_err(|errno| (8, errno))
}
