//! The container process's identity and limits: rlimits, user and groups, capabilities,
//! no_new_privs, umask, and the final execve. Runs in the container's first process (or
//! an exec'd one) just before the user program.
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{LinuxCapabilities, PosixRlimitType, Process};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

type R<T> = std::result::Result<T, String>;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    use PosixRlimitType::*;
    Some(match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    })
}

/// Sets process.rlimits on the calling process.
pub fn apply_rlimits(p: &Process) -> R<()> {
    for rl in p.rlimits().as_deref().unwrap_or_default() {
        let Some(res) = rlimit_resource(rl.typ()) else {
            continue;
        };
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: a valid rlimit struct for a known resource.
        if unsafe { libc::setrlimit(res, &lim) } < 0 {
            return Err(format!(
                "process.rlimits {}: {}",
                rl.typ(),
                nix::Error::last().desc()
            ));
        }
    }
    Ok(())
}

/// Puts every signal back to its default disposition and unblocks them all: exec keeps
/// ignored signals (Rust's runtime ignores SIGPIPE) and the mask (the pod supervisor
/// blocks signals it takes through a signalfd), and a container starts clean, as under runc.
pub fn reset_signals() -> R<()> {
    super::sys::reset_signals(&super::sys::non_default_signals());
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(|e| format!("resetting the signal mask: {}", e.desc()))
}

/// Writes process.oomScoreAdj for the calling process.
pub fn apply_oom_score_adj(p: &Process) -> R<()> {
    if let Some(adj) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("process.oomScoreAdj {adj}: {e}"))?;
    }
    Ok(())
}

fn to_caps(set: &Option<oci_spec::runtime::Capabilities>) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        match format!("CAP_{c}").parse::<Capability>() {
            Ok(c) => {
                out.insert(c);
            }
            Err(_) => super::log::warn(&format!("capability CAP_{c} unknown here; ignored")),
        }
    }
    out
}

/// Switches to process.user (groups, gid, uid) and then leaves exactly the configured
/// capability sets, keeping capabilities across the uid change.
pub fn apply_user_and_caps(p: &Process) -> R<()> {
    let user = p.user();
    let caps_cfg: Option<&LinuxCapabilities> = p.capabilities().as_ref();
    // Bounding set first: dropping needs CAP_SETPCAP, which we still hold.
    if let Some(c) = caps_cfg {
        let keep = to_caps(c.bounding());
        for cap in caps::all() {
            if !keep.contains(&cap) {
                if let Err(e) = caps::drop(None, CapSet::Bounding, cap) {
                    // Capabilities the running kernel does not know cannot be dropped.
                    if caps::runtime::thread_all_supported().contains(&cap) {
                        return Err(format!("drop bounding {cap}: {e}"));
                    }
                }
            }
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let gids: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    // setgroups is denied in a user namespace whose setgroups file says "deny".
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        Err(nix::Error::EPERM) if gids.is_empty() => {}
        Err(e) => {
            return Err(format!(
                "process.user.additionalGids: setgroups: {}",
                e.desc()
            ))
        }
    }
    let gid = nix::unistd::Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| format!("process.user.gid {}: setresgid: {}", user.gid(), e.desc()))?;
    let uid = nix::unistd::Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| format!("process.user.uid {}: setresuid: {}", user.uid(), e.desc()))?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(c) = caps_cfg {
        let eff = to_caps(c.effective());
        let perm = to_caps(c.permitted());
        let inh = to_caps(c.inheritable());
        caps::set(None, CapSet::Effective, &eff)
            .map_err(|e| format!("process.capabilities.effective: {e}"))?;
        caps::set(None, CapSet::Permitted, &perm)
            .map_err(|e| format!("process.capabilities.permitted: {e}"))?;
        caps::set(None, CapSet::Inheritable, &inh)
            .map_err(|e| format!("process.capabilities.inheritable: {e}"))?;
        let amb = to_caps(c.ambient());
        for cap in amb {
            if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
                super::log::debug(&format!("ambient {cap}: {e}"));
            }
        }
    } else if user.uid() != 0 {
        let _ = caps::clear(None, CapSet::Effective);
        let _ = caps::clear(None, CapSet::Permitted);
    }
    Ok(())
}

pub fn apply_no_new_privs(p: &Process) -> R<()> {
    if p.no_new_privileges() == Some(true) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
            return Err(format!("noNewPrivileges: {}", nix::Error::last().desc()));
        }
    }
    Ok(())
}

pub fn apply_umask(p: &Process) {
    let mask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        mask as libc::mode_t,
    ));
}

/// What execve needs, prepared before the point of no return.
pub struct Program {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

fn cs(s: &str) -> R<CString> {
    CString::new(s).map_err(|_| format!("NUL byte in {s:?}"))
}

/// Finds args[0] on the process PATH (as execvp would) inside the current root.
pub fn prepare_program(p: &Process) -> R<Program> {
    let args = p.args().as_deref().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return Err("process.args: must not be empty".into());
    };
    let env = p.env().as_deref().unwrap_or_default();
    let path = if arg0.contains('/') {
        PathBuf::from(arg0)
    } else {
        let search = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        search
            .split(':')
            .map(|d| Path::new(d).join(arg0))
            .find(|c| is_executable(c))
            .ok_or_else(|| format!("exec: {arg0:?}: executable file not found in $PATH"))?
    };
    if !path.exists() {
        return Err(format!(
            "exec: {}: no such file or directory",
            path.display()
        ));
    }
    let mut envp = env.iter().map(|e| cs(e)).collect::<R<Vec<_>>>()?;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        envp.push(cs(&format!("HOME={}", home_of(p.user().uid())))?);
    }
    Ok(Program {
        path: CString::new(path.as_os_str().as_bytes()).map_err(|_| "NUL in path".to_string())?,
        argv: args.iter().map(|a| cs(a)).collect::<R<Vec<_>>>()?,
        envp,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// HOME from the container's /etc/passwd, "/" when absent (as runc does).
fn home_of(uid: u32) -> String {
    if let Ok(pw) = std::fs::read_to_string("/etc/passwd") {
        for line in pw.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) {
                return f[5].to_string();
            }
        }
    }
    "/".into()
}

/// Replaces the process with the program; returns only on failure.
pub fn exec(prog: &Program) -> String {
    let _ = nix::unistd::execve(&prog.path, &prog.argv, &prog.envp);
    format!(
        "exec {}: {}",
        prog.path.to_string_lossy(),
        nix::Error::last().desc()
    )
}
