//! The cgroup v2 device filter: `linux.resources.devices` applied as the v1 devices
//! cgroup applies them, compiled to a BPF_PROG_TYPE_CGROUP_DEVICE program, loaded with
//! bpf(2) and attached to the container's cgroup2 directory.
//!
//! [`DeviceRules`] is the v1 devices cgroup in miniature (the kernel's
//! security/device_cgroup.c, as runc's emulator does it): a default (allow or deny) and
//! exceptions keyed by type/major/minor. A rule of type `a` resets both; an allow rule
//! adds an exception under default deny and takes access bits off the exactly matching
//! exception under default allow; deny rules the other way round. Like the kernel (and
//! unlike runc, which refuses it), removing access that only a wildcard exception grants
//! is silently a no-op, so a config behaves the same on both lanes. Decisions: under
//! default deny one exception must grant every requested access bit; under default allow
//! an exception sharing any bit denies (runc checks a subset for deny rules too).
//!
//! The program is straight-line: exceptions grouped by type, one short block each that
//! jumps to the next on a mismatch, and the default at the end; the verifier's time is
//! most of a container's start cost, so it is kept small (53 instructions for runc's
//! defaults). Programs are cached per rule set in the process (a pod's supervisor loads
//! one for all its containers). Replacing a filter attaches the new
//! program (BPF_F_ALLOW_MULTI) before detaching the old ones, so there is never a moment
//! without one (both apply meanwhile: stricter, never looser).
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// What went wrong building, loading or attaching a device filter.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    /// A `linux.resources.devices` rule that cannot be a device cgroup rule.
    #[error("linux.resources.devices[{index}].{field}: invalid value {value}: {reason}")]
    InvalidRule {
        index: usize,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// bpf(2) refused an operation (`op`: BPF_PROG_LOAD, BPF_PROG_ATTACH, ...).
    #[error("device filter {op} on {path}: {source}{log}")]
    Bpf {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
        /// The verifier's log, when loading failed.
        log: String,
    },
    /// The cgroup2 directory could not be opened.
    #[error("device filter: opening cgroup {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, DeviceFilterError>;

/// Device node types a device cgroup rule can name (`c` and `u` are both char).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DevType {
    Block,
    Char,
}

impl DevType {
    /// The type as the kernel passes it in `bpf_cgroup_dev_ctx.access_type`.
    fn bpf(self) -> i32 {
        match self {
            DevType::Block => 1, // BPF_DEVCG_DEV_BLOCK
            DevType::Char => 2,  // BPF_DEVCG_DEV_CHAR
        }
    }
}

/// Access bits, as the kernel passes them (upper half of `access_type`).
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One exception: type, major and minor (None: any), and the access bits it covers.
type Key = (DevType, Option<u32>, Option<u32>);

/// The state of a v1 devices cgroup: a default and its exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRules {
    default_allow: bool,
    exceptions: BTreeMap<Key, u8>,
}

/// A rule as the devices cgroup sees it: None type is `a` (everything).
struct Rule {
    allow: bool,
    typ: Option<DevType>,
    major: Option<u32>,
    minor: Option<u32>,
    access: u8,
}

fn parse_number(index: usize, field: &'static str, v: Option<i64>) -> Result<Option<u32>> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| DeviceFilterError::InvalidRule {
                index,
                field,
                value: n.to_string(),
                reason: "a device number is 0..4294967295, or -1 for any",
            }),
    }
}

/// Access letters → bits; none given means all three (the kernel's and runc's reading).
pub fn parse_access(s: &str) -> Option<u8> {
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return None,
        };
    }
    Some(if bits == 0 { ACC_ALL } else { bits })
}

fn parse_rule(index: usize, r: &LinuxDeviceCgroup) -> Result<Rule> {
    let typ = match r.typ() {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DevType::Char),
        Some(LinuxDeviceType::B) => Some(DevType::Block),
        Some(LinuxDeviceType::P) => {
            return Err(DeviceFilterError::InvalidRule {
                index,
                field: "type",
                value: "p".into(),
                reason: "a fifo is not a device cgroup type (a, b, c)",
            })
        }
    };
    let access_text = r.access().as_deref().unwrap_or("rwm");
    let access = parse_access(access_text).ok_or_else(|| DeviceFilterError::InvalidRule {
        index,
        field: "access",
        value: access_text.to_string(),
        reason: "letters r, w, m",
    })?;
    Ok(Rule {
        allow: r.allow(),
        typ,
        major: parse_number(index, "major", r.major())?,
        minor: parse_number(index, "minor", r.minor())?,
        access,
    })
}

impl DeviceRules {
    /// Every access denied (where runc's emulator, and a container's rules, start).
    pub fn deny_all() -> Self {
        DeviceRules {
            default_allow: false,
            exceptions: BTreeMap::new(),
        }
    }

    /// `rules` applied in order on top of [`DeviceRules::deny_all`].
    pub fn from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Self> {
        let mut s = Self::deny_all();
        for (i, r) in rules.iter().enumerate() {
            s.apply(i, r)?;
        }
        Ok(s)
    }

    /// Applies one rule as writing it to devices.allow / devices.deny would.
    pub fn apply(&mut self, index: usize, r: &LinuxDeviceCgroup) -> Result<()> {
        let r = parse_rule(index, r)?;
        let Some(typ) = r.typ else {
            self.default_allow = r.allow;
            self.exceptions.clear();
            return Ok(());
        };
        let key = (typ, r.major, r.minor);
        if r.allow != self.default_allow {
            *self.exceptions.entry(key).or_insert(0) |= r.access;
        } else if let Some(bits) = self.exceptions.get_mut(&key) {
            *bits &= !r.access;
            if *bits == 0 {
                self.exceptions.remove(&key);
            }
        }
        Ok(())
    }

    /// Nothing is restricted (no program is needed).
    pub fn allows_everything(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// The decision for one access (`access`: ACC_* bits), as the v1 devices cgroup takes it.
    pub fn allows(&self, typ: DevType, major: u32, minor: u32, access: u8) -> bool {
        let mut hits = self.exceptions.iter().filter(|((t, ma, mi), _)| {
            *t == typ && ma.is_none_or(|m| m == major) && mi.is_none_or(|m| m == minor)
        });
        if self.default_allow {
            !hits.any(|(_, bits)| bits & access != 0)
        } else {
            hits.any(|(_, bits)| access & !bits == 0)
        }
    }

    /// The BPF_PROG_TYPE_CGROUP_DEVICE program enforcing these rules.
    ///
    /// Kept small because the verifier's time is the start cost: exceptions grouped by
    /// type (one type check per group), an exact major:minor compared as the kernel's
    /// 32-bit device number in one jump, an access check only where not all of rwm.
    pub fn program(&self) -> Vec<Insn> {
        use reg::*;
        let mut p = vec![
            // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
            Insn::ldx_w(R2, R1, 0),
            Insn::alu32_imm(op::AND, R2, 0xffff),
            Insn::ldx_w(R3, R1, 0),
            Insn::alu32_imm(op::RSH, R3, 16),
            Insn::ldx_w(R4, R1, 4),
            Insn::ldx_w(R5, R1, 8),
        ];
        // Below 2^31, so the 64-bit compare's sign-extended immediate equals it.
        let encodable = |ma: u32, mi: u32| ma < (1 << 11) && mi < (1 << 20);
        if self
            .exceptions
            .keys()
            .any(|(_, ma, mi)| matches!((ma, mi), (Some(a), Some(b)) if encodable(*a, *b)))
        {
            // R6 = major << 20 | minor (the kernel's MINORBITS split).
            p.push(Insn::mov32_reg(R6, R4));
            p.push(Insn::alu32_imm(op::LSH, R6, 20));
            p.push(Insn::alu32_reg(op::OR, R6, R5));
        }
        let (hit, miss) = if self.default_allow { (0, 1) } else { (1, 0) };
        for typ in [DevType::Block, DevType::Char] {
            let mut group = Vec::new();
            for (&(_, major, minor), &bits) in self.exceptions.iter().filter(|(k, _)| k.0 == typ) {
                // Every jump in a block goes to the block's end (the next block).
                let mut block = Vec::new();
                if bits != ACC_ALL {
                    block.push(Insn::mov32_reg(R1, R3));
                    if self.default_allow {
                        // No requested bit the exception names: not this one.
                        block.push(Insn::alu32_imm(op::AND, R1, i32::from(bits)));
                        block.push(Insn::jmp_imm(op::JEQ, R1, 0));
                    } else {
                        // A requested bit the exception lacks: not this one.
                        block.push(Insn::alu32_imm(op::AND, R1, i32::from(ACC_ALL & !bits)));
                        block.push(Insn::jmp_imm(op::JNE, R1, 0));
                    }
                }
                match (major, minor) {
                    (Some(ma), Some(mi)) if encodable(ma, mi) => {
                        block.push(Insn::jmp_imm(op::JNE, R6, ((ma << 20) | mi) as i32));
                    }
                    _ => {
                        for (r, want) in [(R4, major), (R5, minor)] {
                            let Some(m) = want else { continue };
                            match i32::try_from(m) {
                                Ok(imm) => block.push(Insn::jmp_imm(op::JNE, r, imm)),
                                // No immediate holds it zero-extended: compare registers.
                                Err(_) => {
                                    block.push(Insn::mov32_imm(R1, m as i32));
                                    block.push(Insn::jmp_reg(op::JNE, r, R1));
                                }
                            }
                        }
                    }
                }
                block.push(Insn::mov64_imm(R0, hit));
                block.push(Insn::exit());
                let len = block.len();
                for (i, insn) in block.iter_mut().enumerate() {
                    if insn.is_jump() {
                        insn.off = (len - i - 1) as i16;
                    }
                }
                group.extend(block);
            }
            if !group.is_empty() {
                let mut skip = Insn::jmp_imm(op::JNE, R2, typ.bpf());
                skip.off = group.len() as i16;
                p.push(skip);
                p.extend(group);
            }
        }
        p.push(Insn::mov64_imm(R0, miss));
        p.push(Insn::exit());
        p
    }
}

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

mod reg {
    pub const R0: u8 = 0;
    pub const R1: u8 = 1;
    pub const R2: u8 = 2;
    pub const R3: u8 = 3;
    pub const R4: u8 = 4;
    pub const R5: u8 = 5;
    pub const R6: u8 = 6;
}

/// Opcode parts (linux/bpf_common.h, linux/bpf.h).
mod op {
    pub const LDX: u8 = 0x01;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const ALU64: u8 = 0x07;
    pub const W: u8 = 0x00;
    pub const MEM: u8 = 0x60;
    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;
    pub const OR: u8 = 0x40;
    pub const AND: u8 = 0x50;
    pub const LSH: u8 = 0x60;
    pub const RSH: u8 = 0x70;
    pub const MOV: u8 = 0xb0;
    pub const JEQ: u8 = 0x10;
    pub const JNE: u8 = 0x50;
    pub const EXIT: u8 = 0x90;
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(op::LDX | op::MEM | op::W, dst, src, off, 0)
    }
    fn alu32_imm(o: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(op::ALU | o | op::K, dst, 0, 0, imm)
    }
    fn alu32_reg(o: u8, dst: u8, src: u8) -> Insn {
        Insn::new(op::ALU | o | op::X, dst, src, 0, 0)
    }
    fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn::new(op::ALU | op::MOV | op::X, dst, src, 0, 0)
    }
    fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(op::ALU64 | op::MOV | op::K, dst, 0, 0, imm)
    }
    /// A compare with an immediate; the offset is filled in by the block. 64-bit jumps
    /// (not JMP32, Linux 5.1+) so older kernels load it too: every register compared
    /// holds a zero-extended u32 and every immediate is below 2^31 (larger numbers are
    /// compared register to register).
    fn jmp_imm(o: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(op::JMP | o | op::K, dst, 0, 0, imm)
    }
    fn mov32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(op::ALU | op::MOV | op::K, dst, 0, 0, imm)
    }
    fn jmp_reg(o: u8, dst: u8, src: u8) -> Insn {
        Insn::new(op::JMP | o | op::X, dst, src, 0, 0)
    }
    fn exit() -> Insn {
        Insn::new(op::JMP | op::EXIT, 0, 0, 0, 0)
    }
    fn is_jump(&self) -> bool {
        self.code & 0x07 == op::JMP && self.code & 0xf0 != op::EXIT
    }
    fn dst(&self) -> usize {
        usize::from(self.regs & 0x0f)
    }
    fn src(&self) -> usize {
        usize::from(self.regs >> 4)
    }
}

/// Runs `prog` on one device access the way the kernel would (only the instructions
/// [`DeviceRules::program`] emits): 1 allows, 0 denies. For tests and `debug` output.
pub fn run(prog: &[Insn], typ: DevType, major: u32, minor: u32, access: u8) -> Option<u64> {
    let ctx = [(u32::from(access) << 16) | typ.bpf() as u32, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..4096 {
        let i = prog.get(pc)?;
        pc += 1;
        let imm32 = i.imm as u32;
        match i.code {
            c if c == op::LDX | op::MEM | op::W => {
                // Only the context (in R1) is ever read.
                r[i.dst()] = u64::from(*ctx.get(usize::try_from(i.off).ok()? / 4)?);
            }
            c if c == op::ALU | op::AND | op::K => {
                r[i.dst()] = u64::from(r[i.dst()] as u32 & imm32)
            }
            c if c == op::ALU | op::RSH | op::K => {
                r[i.dst()] = u64::from((r[i.dst()] as u32) >> (imm32 & 31))
            }
            c if c == op::ALU | op::MOV | op::X => r[i.dst()] = u64::from(r[i.src()] as u32),
            c if c == op::ALU | op::LSH | op::K => {
                r[i.dst()] = u64::from((r[i.dst()] as u32) << (imm32 & 31))
            }
            c if c == op::ALU | op::OR | op::X => {
                r[i.dst()] = u64::from(r[i.dst()] as u32 | r[i.src()] as u32)
            }
            c if c == op::ALU64 | op::MOV | op::K => r[i.dst()] = i64::from(i.imm) as u64,
            c if c == op::ALU | op::MOV | op::K => r[i.dst()] = u64::from(imm32),
            c if c == op::JMP | op::JNE | op::X => {
                if r[i.dst()] != r[i.src()] {
                    pc = pc.checked_add_signed(isize::from(i.off))?;
                }
            }
            c if c == op::JMP | op::JNE | op::K || c == op::JMP | op::JEQ | op::K => {
                let eq = r[i.dst()] == i64::from(i.imm) as u64;
                let jne = c & 0xf0 == op::JNE;
                if eq != jne {
                    pc = pc.checked_add_signed(isize::from(i.off))?;
                }
            }
            c if c == op::JMP | op::EXIT => return Some(r[0]),
            _ => return None,
        }
    }
    None
}

// bpf(2) commands, program and attach types, flags (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Room for every union bpf_attr member we fill; the kernel wants the rest zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable, 8-aligned buffer of the size we pass; every
    // pointer stored in it refers to memory the caller keeps alive across the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, size_of::<Attr>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_of(r: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) returned this new fd to us (r ≥ 0); nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

const LICENSE: &[u8] = b"Apache-2.0\0";
const PROG_NAME: &[u8] = b"podrun_devices";

fn load_once(prog: &[Insn], log: Option<&mut Vec<u8>>) -> std::io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32(4, prog.len() as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, LICENSE.as_ptr() as u64);
    if let Some(buf) = log {
        a.u32(24, 1)
            .u32(28, buf.len() as u32)
            .u64(32, buf.as_mut_ptr() as u64);
    }
    a.0[48..48 + PROG_NAME.len()].copy_from_slice(PROG_NAME);
    bpf(BPF_PROG_LOAD, &mut a).map(fd_of)
}

/// Before Linux 5.11 programs are charged to RLIMIT_MEMLOCK: on EPERM, try once more
/// with it raised (as crun does), then put it back so the container does not inherit it.
fn retry_with_memlock(prog: &[Insn], first: std::io::Error) -> std::io::Result<OwnedFd> {
    if first.raw_os_error() != Some(libc::EPERM) {
        return Err(first);
    }
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } != 0 {
        return Err(first);
    }
    let raised = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } != 0 {
        return Err(first);
    }
    let res = load_once(prog, None);
    // SAFETY: as above; restoring the limit read before.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
    res.map_err(|_| first)
}

/// Loaded programs of this process, by their instructions: the verifier runs once per
/// rule set (a supervisor starting many containers with the same rules loads one).
static CACHE: OnceLock<Mutex<HashMap<Vec<Insn>, Arc<OwnedFd>>>> = OnceLock::new();

/// Loads `prog` (or returns this process's loaded copy).
pub fn load(prog: &[Insn], path: &Path) -> Result<Arc<OwnedFd>> {
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(fd) = cache.lock().ok().and_then(|c| c.get(prog).cloned()) {
        return Ok(fd);
    }
    let fd = match load_once(prog, None).or_else(|e| retry_with_memlock(prog, e)) {
        Ok(fd) => fd,
        Err(source) => {
            // Ask again with a log, for the verifier's words.
            let mut buf = vec![0u8; 16 * 1024];
            let _ = load_once(prog, Some(&mut buf));
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            let text = String::from_utf8_lossy(&buf[..end]).trim().to_string();
            return Err(DeviceFilterError::Bpf {
                op: "BPF_PROG_LOAD",
                path: path.to_path_buf(),
                source,
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!(" (verifier: {text})")
                },
            });
        }
    };
    let fd = Arc::new(fd);
    if let Ok(mut c) = cache.lock() {
        c.insert(prog.to_vec(), fd.clone());
    }
    Ok(fd)
}

fn bpf_err(op: &'static str, path: &Path, source: std::io::Error) -> DeviceFilterError {
    DeviceFilterError::Bpf {
        op,
        path: path.to_path_buf(),
        source,
        log: String::new(),
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| DeviceFilterError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// The kernel's id of a loaded program.
fn prog_id(fd: &OwnedFd, path: &Path) -> Result<u32> {
    // struct bpf_prog_info starts with u32 type, u32 id; 16 bytes is enough to ask.
    let mut info = [0u8; 16];
    let mut a = Attr::new();
    a.u32(0, fd.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map_err(|e| bpf_err("BPF_OBJ_GET_INFO_BY_FD", path, e))?;
    Ok(u32::from_ne_bytes([info[4], info[5], info[6], info[7]]))
}

/// Ids of the device programs attached to the cgroup at `dir` itself (not inherited).
pub fn attached(dir: &Path) -> Result<Vec<u32>> {
    let cg = open_dir(dir)?;
    query(&cg, dir)
}

fn query(cg: &OwnedFd, path: &Path) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut a = Attr::new();
    a.u32(0, cg.as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut a).map_err(|e| bpf_err("BPF_PROG_QUERY", path, e))?;
    ids.truncate(a.get_u32(24) as usize);
    Ok(ids)
}

fn detach(cg: &OwnedFd, id: u32, path: &Path) -> Result<()> {
    let mut a = Attr::new();
    a.u32(0, id);
    let prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut a) {
        Ok(r) => fd_of(r),
        // Detached and freed meanwhile: nothing to do.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(bpf_err("BPF_PROG_GET_FD_BY_ID", path, e)),
    };
    let mut a = Attr::new();
    a.u32(0, cg.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE);
    match bpf(BPF_PROG_DETACH, &mut a) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(bpf_err("BPF_PROG_DETACH", path, e)),
    }
}

/// Whether a program with this id is still loaded (anywhere on the host).
pub fn loaded(id: u32) -> bool {
    let mut a = Attr::new();
    a.u32(0, id);
    bpf(BPF_PROG_GET_FD_BY_ID, &mut a).map(fd_of).is_ok()
}

/// Makes `rules` the device filter of the cgroup2 directory `dir`: the new program is
/// attached before any old one is detached. Rules that allow everything need none.
pub fn apply(dir: &Path, rules: &DeviceRules) -> Result<()> {
    let start = Instant::now();
    let cg = open_dir(dir)?;
    let old = query(&cg, dir)?;
    let mut keep = None;
    if !rules.allows_everything() {
        let insns = rules.program();
        let t_load = Instant::now();
        let prog = load(&insns, dir)?;
        let t_attach = Instant::now();
        // A fresh cgroup (create) has nothing to keep apart from the new program.
        let id = if old.is_empty() {
            None
        } else {
            Some(prog_id(&prog, dir)?)
        };
        if !id.is_some_and(|id| old.contains(&id)) {
            let mut a = Attr::new();
            a.u32(0, cg.as_raw_fd() as u32)
                .u32(4, prog.as_raw_fd() as u32)
                .u32(8, BPF_CGROUP_DEVICE)
                .u32(12, BPF_F_ALLOW_MULTI);
            bpf(BPF_PROG_ATTACH, &mut a).map_err(|e| bpf_err("BPF_PROG_ATTACH", dir, e))?;
        }
        keep = id;
        // bench/devices.sh reads these figures from `--debug` logs.
        let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
        crate::runtime::log::debug(&format!(
            "device filter on {}: {} instructions, load_us={:.1} attach_us={:.1} total_us={:.1}",
            dir.display(),
            insns.len(),
            us(t_attach - t_load),
            us(t_attach.elapsed()),
            us(start.elapsed()),
        ));
    }
    for id in old.into_iter().filter(|id| Some(*id) != keep) {
        detach(&cg, id, dir)?;
    }
    Ok(())
}

/// Detaches every device program from the cgroup at `dir` (a missing cgroup is fine).
pub fn remove(dir: &Path) -> Result<()> {
    let cg = match open_dir(dir) {
        Ok(fd) => fd,
        Err(DeviceFilterError::Open { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    for id in query(&cg, dir)? {
        detach(&cg, id, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        t: &str,
        major: Option<i64>,
        minor: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let typ = match t {
            "a" => LinuxDeviceType::A,
            "b" => LinuxDeviceType::B,
            "c" => LinuxDeviceType::C,
            "p" => LinuxDeviceType::P,
            _ => LinuxDeviceType::U,
        };
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(acc);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    const RW: u8 = ACC_READ | ACC_WRITE;
    use DevType::{Block, Char};

    /// The rules' own decision and the generated program's agree on every probe.
    fn check(rules: &DeviceRules) {
        let prog = rules.program();
        for typ in [Block, Char] {
            for (ma, mi) in [
                (1, 3),
                (1, 5),
                (1, 1),
                (5, 2),
                (136, 0),
                (136, 7),
                (7, 0),
                (8, 0),
                (10, 200),
                (4095, 1048575),
            ] {
                for acc in 1..=7u8 {
                    let want = rules.allows(typ, ma, mi, acc);
                    let got = run(&prog, typ, ma, mi, acc);
                    assert_eq!(
                        got,
                        Some(u64::from(want)),
                        "{typ:?} {ma}:{mi} access {acc}: {rules:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn default_deny_then_allowed_devices() {
        let r = DeviceRules::from_oci(&[
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(136), None, "rw"),
            rule(true, "b", None, None, "m"),
        ])
        .unwrap();
        assert!(r.allows(Char, 1, 3, RW));
        assert!(!r.allows(Char, 1, 1, ACC_READ), "/dev/mem");
        assert!(r.allows(Char, 136, 4, RW), "any pts");
        assert!(!r.allows(Char, 136, 4, ACC_MKNOD), "pts access without m");
        assert!(r.allows(Block, 7, 0, ACC_MKNOD), "mknod a block node");
        assert!(!r.allows(Block, 7, 0, ACC_READ), "but not open it");
        check(&r);
    }

    #[test]
    fn one_exception_must_grant_every_requested_bit() {
        // As the kernel's match_exception: r from one rule and w from another is no rw.
        let r = DeviceRules::from_oci(&[
            rule(true, "c", Some(1), Some(3), "r"),
            rule(true, "c", Some(1), None, "w"),
        ])
        .unwrap();
        assert!(r.allows(Char, 1, 3, ACC_READ));
        assert!(r.allows(Char, 1, 3, ACC_WRITE));
        assert!(!r.allows(Char, 1, 3, RW));
        check(&r);
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let r = DeviceRules::from_oci(&[
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(false, "c", Some(1), Some(3), "w"),
        ])
        .unwrap();
        assert!(r.allows(Char, 1, 3, ACC_READ | ACC_MKNOD));
        assert!(!r.allows(Char, 1, 3, ACC_WRITE));
        // Removing the rest drops the exception entirely.
        let mut r2 = r.clone();
        r2.apply(2, &rule(false, "c", Some(1), Some(3), "rm"))
            .unwrap();
        assert_eq!(r2, DeviceRules::deny_all());
        check(&r);
    }

    #[test]
    fn type_a_resets_to_allow_all_and_deny_rules_then_blacklist() {
        let r = DeviceRules::from_oci(&[
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "a", None, None, "rwm"),
        ])
        .unwrap();
        assert!(r.allows_everything());
        let r = DeviceRules::from_oci(&[
            rule(true, "a", None, None, "rwm"),
            rule(false, "b", Some(8), None, "w"),
        ])
        .unwrap();
        assert!(r.allows(Block, 8, 0, ACC_READ));
        // Default allow: an exception sharing any requested bit denies (kernel's
        // match_exception_partial), so rw is refused although r alone is fine.
        assert!(!r.allows(Block, 8, 0, RW));
        assert!(r.allows(Block, 7, 0, RW));
        assert!(r.allows(Char, 8, 0, RW));
        check(&r);
    }

    #[test]
    fn removing_what_a_wildcard_grants_is_a_no_op_as_in_v1() {
        let r = DeviceRules::from_oci(&[
            rule(true, "c", Some(1), None, "rwm"),
            rule(false, "c", Some(1), Some(3), "rwm"),
        ])
        .unwrap();
        assert!(r.allows(Char, 1, 3, RW));
        check(&r);
    }

    #[test]
    fn unbuffered_char_is_char_and_bad_rules_name_their_field() {
        let r = DeviceRules::from_oci(&[rule(true, "u", Some(4), Some(1), "r")]).unwrap();
        assert!(r.allows(Char, 4, 1, ACC_READ));
        let e = DeviceRules::from_oci(&[
            rule(true, "c", Some(1), Some(3), "r"),
            rule(true, "p", None, None, "rwm"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.devices[1].type"),
            "{e}"
        );
        let e = DeviceRules::from_oci(&[rule(true, "c", Some(-5), None, "r")]).unwrap_err();
        assert!(e.to_string().contains("devices[0].major"), "{e}");
        let e = DeviceRules::from_oci(&[rule(true, "c", Some(1), None, "rx")]).unwrap_err();
        assert!(e.to_string().contains("devices[0].access"), "{e}");
    }

    #[test]
    fn the_largest_device_numbers_match_exactly() {
        // 4095:1048575 does not fit the one-compare encoding; 2047:x does.
        let r = DeviceRules::from_oci(&[
            rule(true, "c", Some(4095), Some(1_048_575), "rw"),
            rule(true, "b", Some(2047), Some(7), "r"),
            rule(true, "c", Some(4_000_000_000), None, "rwm"),
        ])
        .unwrap();
        assert!(r.allows(Char, 4095, 1_048_575, RW));
        assert!(!r.allows(Char, 4095, 1, RW));
        assert!(r.allows(Block, 2047, 7, ACC_READ));
        check(&r);
        let prog = r.program();
        for (typ, ma, mi, acc, want) in [
            (Block, 2047, 7, ACC_READ, 1),
            (Block, 2047, 8, ACC_READ, 0),
            (Char, 4_000_000_000, 3, RW, 1),
            (Char, 4_000_000_001, 3, RW, 0),
        ] {
            assert_eq!(run(&prog, typ, ma, mi, acc), Some(want), "{ma}:{mi}");
        }
    }

    #[test]
    fn the_program_is_straight_line_with_forward_jumps_only() {
        let r = DeviceRules::from_oci(&[
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(5), Some(2), "rw"),
        ])
        .unwrap();
        let p = r.program();
        for (i, insn) in p.iter().enumerate() {
            if insn.is_jump() {
                let target = i as isize + 1 + isize::from(insn.off);
                assert!(insn.off >= 0 && (target as usize) < p.len(), "jump at {i}");
            }
        }
        assert_eq!(p.last().map(|i| i.code), Some(op::JMP | op::EXIT));
        // Six loads, the device number, the char group's check, then (number, r0,
        // exit) and (3 access, number, r0, exit), then the default.
        assert_eq!(p.len(), 6 + 3 + 1 + 3 + 6 + 2);
        assert_eq!(DeviceRules::deny_all().program().len(), 8);
    }
}
