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
    Ok(Compiled {
        prog: decode(&bytes),
        flags: flags_of(s),
    })
}

/// BPF bytes (as libseccomp exports them, native endian) → instructions.
fn decode(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(std::mem::size_of::<libc::sock_filter>())
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

fn encode(prog: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

fn flags_of(s: &LinuxSeccomp) -> libc::c_ulong {
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
    flags
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
    install(c).map_err(|errno| {
        format!(
            "load seccomp filter: {}",
            nix::Error::from_raw(errno).desc()
        )
    })
}

/// [`load`] with the errno as the error: no allocation even on failure (for a child
/// that shares its parent's memory).
pub(crate) fn install(c: &Compiled) -> Result<(), i32> {
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
        return Err(nix::Error::last_raw());
    }
    Ok(())
}

/// Compiles the spec's filter, if it has one. libseccomp needs ~20 ms for a
/// RuntimeDefault-sized profile over x86-64+x86+x32, so programs are cached in
/// `cache_dir` (under the runtime's root-only state dir) by a hash of the profile and
/// the libseccomp version: a repeated profile (every pod container) loads in ~0.1 ms.
pub(crate) fn of_spec(
    spec: &oci_spec::runtime::Spec,
    cache_dir: Option<&std::path::Path>,
) -> Result<Option<Compiled>, String> {
    let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let Some(dir) = cache_dir else {
        return compile(s).map(Some);
    };
    let key = cache_key(s);
    let path = dir.join(format!("{key}.bpf"));
    if let Ok(bytes) = std::fs::read(&path) {
        if !bytes.is_empty() && bytes.len() % 8 == 0 && bytes.len() / 8 <= u16::MAX as usize {
            return Ok(Some(Compiled {
                prog: decode(&bytes),
                flags: flags_of(s),
            }));
        }
    }
    let c = compile(s)?;
    // A cache that cannot be written costs time, not correctness.
    if crate::util::ensure_private_dir(dir, false).is_ok() {
        let _ = crate::util::write_atomic(&path, &encode(&c.prog));
    }
    Ok(Some(c))
}

fn cache_key(s: &LinuxSeccomp) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(serde_json::to_vec(s).unwrap_or_default());
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        h.update(format!("libseccomp {}.{}.{}", v.major, v.minor, v.micro));
    }
    h.update(std::env::consts::ARCH);
    hex::encode(h.finalize())
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
    fn cached_program_equals_the_compiled_one() {
        let dir = std::env::temp_dir().join(format!("podrun-sccache-{}", std::process::id()));
        let mut spec = oci_spec::runtime::Spec::default();
        let mut linux = oci_spec::runtime::Linux::default();
        linux.set_seccomp(Some(profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}],"flags":["SECCOMP_FILTER_FLAG_LOG"]}"#,
        )));
        spec.set_linux(Some(linux));
        let first = of_spec(&spec, Some(&dir)).unwrap().unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let again = of_spec(&spec, Some(&dir)).unwrap().unwrap();
        assert_eq!(encode(&first.prog), encode(&again.prog));
        assert_eq!(again.flags, libc::SECCOMP_FILTER_FLAG_LOG);
        std::fs::remove_dir_all(&dir).unwrap();
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
