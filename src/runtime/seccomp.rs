//! Seccomp: config.json `linux.seccomp` compiled to a BPF program (libseccomp) in the
//! parent, loaded with one `seccomp(2)` call in the container process just before exec.
//!
//! Semantics follow runc: syscall names this kernel/libseccomp does not know are
//! skipped, rules whose action equals the default action are dropped, several args on
//! the same index become separate rules (OR), MASKED_EQ takes the mask in `value` and
//! the datum in `valueTwo`, ERRNO/TRACE without errnoRet return EPERM.
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

/// A compiled filter, ready to load without allocating.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    prog: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, String> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.map_or(libc::EPERM, |e| e as i32))
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.map_or(libc::EPERM as u16, |e| e as u16))
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err("SCMP_ACT_NOTIFY is not supported (no seccomp agent)".into())
        }
    })
}

fn arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn op(o: LinuxSeccompOperator, value: u64) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    }
}

/// Compiles `linux.seccomp` into BPF for this machine. Errors name the field.
pub(crate) fn compile(s: &LinuxSeccomp) -> Result<Compiled, String> {
    let def = action(s.default_action(), s.default_errno_ret())
        .map_err(|e| format!("linux.seccomp.defaultAction: {e}"))?;
    let mut ctx =
        ScmpFilterContext::new(def).map_err(|e| format!("linux.seccomp: init filter: {e}"))?;
    // We set no_new_privs ourselves (process.noNewPrivileges); the filter must not.
    ctx.set_ctl_nnp(false)
        .map_err(|e| format!("linux.seccomp: {e}"))?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let Some(sa) = arch(*a) else {
            return Err(format!(
                "linux.seccomp.architectures[{i}]: unsupported {a:?}"
            ));
        };
        if sa == ScmpArch::Native {
            continue;
        }
        // Adding the native arch again reports EEXIST: harmless.
        if !ctx.is_arch_present(sa).unwrap_or(false) {
            ctx.add_arch(sa)
                .map_err(|e| format!("linux.seccomp.architectures[{i}] {a:?}: {e}"))?;
        }
    }
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret())
            .map_err(|e| format!("linux.seccomp.syscalls[{i}].action: {e}"))?;
        if act == def {
            continue;
        }
        let args = sc.args().as_deref().unwrap_or_default();
        let mut conds = Vec::with_capacity(args.len());
        for (j, a) in args.iter().enumerate() {
            if a.index() > 5 {
                return Err(format!(
                    "linux.seccomp.syscalls[{i}].args[{j}].index: {} is not 0..5",
                    a.index()
                ));
            }
            let datum = if a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
                a.value_two().unwrap_or(0)
            } else {
                a.value()
            };
            conds.push(ScmpArgCompare::new(
                a.index() as u32,
                op(a.op(), a.value()),
                datum,
            ));
        }
        let mut idx: Vec<usize> = args.iter().map(|a| a.index()).collect();
        idx.sort_unstable();
        idx.dedup();
        let same_index = idx.len() != args.len();
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                // Unknown here (other arch or newer kernel): skipped, as runc does.
                continue;
            };
            let r = if conds.is_empty() {
                ctx.add_rule(act, nr)
            } else if same_index {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, nr, &[*c]).map(|_| ()))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, nr, &conds)
            };
            r.map_err(|e| format!("linux.seccomp.syscalls[{i}] {name}: {e}"))?;
        }
    }
    let bytes = export(&ctx).map_err(|e| format!("linux.seccomp: export BPF: {e}"))?;
    let sz = std::mem::size_of::<libc::sock_filter>();
    let prog = bytes
        .chunks_exact(sz)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let mut flags: libc::c_ulong = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            #[allow(unreachable_patterns)]
            _ => 0,
        };
    }
    Ok(Compiled { prog, flags })
}

/// The BPF program as bytes (libseccomp 2.5 only writes it to an fd: a memfd).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, String> {
    use std::io::{Read, Seek};
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"podrun-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", nix::Error::last().desc()));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    ctx.export_bpf(&f).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Installs the filter on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
/// Does not allocate: safe between fork and exec.
pub(crate) fn load(c: &Compiled) -> Result<(), String> {
    let fprog = libc::sock_fprog {
        len: c.prog.len() as u16,
        filter: c.prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at `c.prog`, alive for the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            c.flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(format!(
            "load seccomp filter: {}",
            nix::Error::last().desc()
        ));
    }
    Ok(())
}

/// Compiles the spec's filter, if it has one.
pub(crate) fn of_spec(spec: &oci_spec::runtime::Spec) -> Result<Option<Compiled>, String> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => compile(s).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn compiles_allow_list_with_args_and_unknown_names() {
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["read","write","no_such_syscall"],"action":"SCMP_ACT_ALLOW"},
            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
            {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"op":"SCMP_CMP_MASKED_EQ"}]},
            {"names":["getpid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let c = compile(&s).unwrap();
        assert!(c.prog.len() > 10, "{}", c.prog.len());
    }

    #[test]
    fn notify_is_refused_with_the_field() {
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let e = compile(&s).unwrap_err();
        assert!(e.contains("syscalls[0].action"), "{e}");
    }
}
