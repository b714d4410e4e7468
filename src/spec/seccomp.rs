//! seccompProfile → `linux.seccomp`: RuntimeDefault (containerd's default profile:
//! an allow-list, everything else EPERM, some syscalls unlocked by capabilities),
//! Unconfined, or Localhost (an OCI/Docker-format JSON file under the profile root,
//! as kubelet's /var/lib/kubelet/seccomp). Container-level settings win over pod-level.
use super::SpecError;
use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use std::path::{Component, Path};

/// Syscalls RuntimeDefault allows to every container (x86/x86-64/x32 names; names the
/// running kernel does not know are skipped when the filter is compiled).
const ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk capget capset chdir chmod \
chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime \
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect \
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old \
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit \
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod \
fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork \
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 \
futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 \
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp \
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit \
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday \
getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch \
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get \
ioprio_set io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill \
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr \
link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 \
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 \
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv \
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open \
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free \
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease \
pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv \
recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat \
renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask \
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 \
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 \
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select \
semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg \
sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 \
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid \
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area \
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack \
signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs \
statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time \
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime \
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime \
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat \
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev \
arch_prctl modify_ldt process_vm_readv process_vm_writev ptrace";

/// Syscalls a capability unlocks under RuntimeDefault.
const BY_CAPABILITY: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname \
         sethostname setns syslog umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// clone flags that create namespaces: without CAP_SYS_ADMIN clone must leave them 0.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;
/// personality(2) values RuntimeDefault allows: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and the 0xffffffff query.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
const AF_VSOCK: u64 = 40;

fn rule(names: &str, action: LinuxSeccompAction) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.split_whitespace().map(String::from).collect());
    s.set_action(action);
    s
}

fn arg(index: usize, value: u64, two: Option<u64>, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    if let Some(t) = two {
        b = b.value_two(t);
    }
    // Every field is set: the builder cannot fail.
    b.build().unwrap_or_default()
}

/// containerd's default profile for a container holding `caps` (`CAP_*` names).
pub fn runtime_default(caps: &[String]) -> LinuxSeccomp {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut rules = vec![rule(ALLOWED, allow)];
    let mut socket = rule("socket", allow);
    socket.set_args(Some(vec![arg(
        0,
        AF_VSOCK,
        None,
        LinuxSeccompOperator::ScmpCmpNe,
    )]));
    rules.push(socket);
    // One arg per rule on the same index: the compiler ORs them.
    let mut pers = rule("personality", allow);
    pers.set_args(Some(
        PERSONALITIES
            .iter()
            .map(|v| arg(0, *v, None, LinuxSeccompOperator::ScmpCmpEq))
            .collect(),
    ));
    rules.push(pers);
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            rules.push(rule(names, allow));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        let mut clone = rule("clone", allow);
        let a = arg(
            0,
            CLONE_NS_FLAGS,
            Some(0),
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        );
        clone.set_args(Some(vec![a]));
        rules.push(clone);
        // clone3 hides its flags in memory: ENOSYS makes libc fall back to clone.
        let mut c3 = rule("clone3", LinuxSeccompAction::ScmpActErrno);
        c3.set_errno_ret(Some(libc::ENOSYS as u32));
        rules.push(c3);
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(LinuxSeccompAction::ScmpActErrno);
    s.set_default_errno_ret(Some(libc::EPERM as u32));
    s.set_architectures(Some(vec![
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchX32,
    ]));
    s.set_syscalls(Some(rules));
    s
}

/// The profile that applies to `c`: its own seccompProfile, else the pod's.
fn effective_profile<'a>(pod: &'a Pod, c: &'a Container) -> Option<(&'a SeccompProfile, String)> {
    let idx = c.name.as_str();
    if let Some(p) = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
    {
        return Some((
            p,
            format!("container {idx:?} securityContext.seccompProfile"),
        ));
    }
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| (p, "spec.securityContext.seccompProfile".to_string()))
}

/// `linux.seccomp` for container `c`. Privileged containers run unconfined (as
/// containerd); no profile at either level means Unconfined (kubelet's default).
/// Localhost profiles are read from `profile_root/<localhostProfile>`.
pub fn container_seccomp(
    pod: &Pod,
    c: &Container,
    caps: &[String],
    privileged: bool,
    profile_root: Option<&Path>,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    let Some((p, field)) = effective_profile(pod, c) else {
        return Ok(None);
    };
    if privileged {
        return Ok(None);
    }
    let bad = |reason: String| SpecError::Seccomp { reason };
    match p.type_.as_str() {
        "Unconfined" => Ok(None),
        "RuntimeDefault" => Ok(Some(runtime_default(caps))),
        "Localhost" => {
            let rel = p
                .localhost_profile
                .as_deref()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    bad(format!(
                        "{field}: localhostProfile must be set for type Localhost"
                    ))
                })?;
            let relp = Path::new(rel);
            if relp.is_absolute() || relp.components().any(|c| c == Component::ParentDir) {
                return Err(bad(format!(
                    "{field}.localhostProfile {rel:?}: must be a relative path without '..'"
                )));
            }
            let root = profile_root
                .ok_or_else(|| bad(format!("{field}: no seccomp profile directory configured")))?;
            let path = root.join(relp);
            let raw = std::fs::read(&path).map_err(|e| {
                bad(format!(
                    "failed to load seccomp profile {}: {e}",
                    path.display()
                ))
            })?;
            let prof: LinuxSeccomp = serde_json::from_slice(&raw).map_err(|e| {
                bad(format!(
                    "failed to load seccomp profile {}: {e}",
                    path.display()
                ))
            })?;
            Ok(Some(prof))
        }
        other => Err(bad(format!(
            "{field}.type {other:?}: must be RuntimeDefault, Unconfined or Localhost"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn caps() -> Vec<String> {
        super::super::security::DEFAULT_CAPABILITIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn container_profile_wins_over_pod_profile() {
        let p = pod(serde_json::json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a"},
                {"name": "b", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}}));
        let cs = &p.spec.as_ref().unwrap().containers;
        let a = container_seccomp(&p, &cs[0], &caps(), false, None).unwrap();
        assert!(a.is_some());
        let b = container_seccomp(&p, &cs[1], &caps(), false, None).unwrap();
        assert!(b.is_none());
    }

    #[test]
    fn runtime_default_unlocks_mount_only_with_sys_admin() {
        let names = |s: &LinuxSeccomp| -> Vec<String> {
            s.syscalls()
                .iter()
                .flatten()
                .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
                .flat_map(|r| r.names().clone())
                .collect()
        };
        let plain = runtime_default(&caps());
        assert!(!names(&plain).contains(&"mount".to_string()));
        assert!(!names(&plain).contains(&"unshare".to_string()));
        assert!(names(&plain).contains(&"read".to_string()));
        let mut c = caps();
        c.push("CAP_SYS_ADMIN".into());
        assert!(names(&runtime_default(&c)).contains(&"mount".to_string()));
        assert_eq!(plain.default_errno_ret(), Some(libc::EPERM as u32));
    }

    #[test]
    fn localhost_profile_is_confined_to_the_root() {
        let dir = std::env::temp_dir().join(format!("podrun-seccomp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("deny-mkdir.json"),
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let mk = |prof: &str| {
            pod(
                serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a",
                "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": prof}}}]}}),
            )
        };
        let p = mk("deny-mkdir.json");
        let c = &p.spec.as_ref().unwrap().containers[0];
        let s = container_seccomp(&p, c, &caps(), false, Some(&dir))
            .unwrap()
            .unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        let p = mk("../etc/passwd");
        let c = &p.spec.as_ref().unwrap().containers[0];
        let e = container_seccomp(&p, c, &caps(), false, Some(&dir)).unwrap_err();
        assert!(e.to_string().contains("without '..'"), "{e}");
        let p = mk("missing.json");
        let c = &p.spec.as_ref().unwrap().containers[0];
        let e = container_seccomp(&p, c, &caps(), false, Some(&dir)).unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
