//! The container's filesystem view, set up by the container init inside its new mount
//! namespace: config mounts, cgroup mounts, /dev, pivot_root, masked/readonly paths.
use super::sys::{self, mount};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

type R<T> = std::result::Result<T, String>;

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Parsed mount options: flags to set, propagation changes, and filesystem data.
#[derive(Default, Debug, PartialEq)]
pub struct MountOpts {
    pub flags: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub data: String,
}

/// Splits OCI mount options into mount(2) flags, propagation and data, as runc does.
pub fn parse_options(options: &[String]) -> MountOpts {
    use libc::*;
    let mut o = MountOpts::default();
    let mut data = Vec::new();
    for opt in options {
        let (clear, flag): (bool, c_ulong) = match opt.as_str() {
            "acl" => (false, MS_POSIXACL),
            "async" => (true, MS_SYNCHRONOUS),
            "atime" => (true, MS_NOATIME),
            "bind" => (false, MS_BIND),
            "defaults" => (false, 0),
            "dev" => (true, MS_NODEV),
            "diratime" => (true, MS_NODIRATIME),
            "dirsync" => (false, MS_DIRSYNC),
            "exec" => (true, MS_NOEXEC),
            "iversion" => (false, MS_I_VERSION),
            "lazytime" => (false, MS_LAZYTIME),
            "loud" => (true, MS_SILENT),
            "mand" => (false, MS_MANDLOCK),
            "noacl" => (true, MS_POSIXACL),
            "noatime" => (false, MS_NOATIME),
            "nodev" => (false, MS_NODEV),
            "nodiratime" => (false, MS_NODIRATIME),
            "noexec" => (false, MS_NOEXEC),
            "noiversion" => (true, MS_I_VERSION),
            "nolazytime" => (true, MS_LAZYTIME),
            "nomand" => (true, MS_MANDLOCK),
            "norelatime" => (true, MS_RELATIME),
            "nostrictatime" => (true, MS_STRICTATIME),
            "nosuid" => (false, MS_NOSUID),
            "nosymfollow" => (false, 256), // MS_NOSYMFOLLOW
            "rbind" => (false, MS_BIND | MS_REC),
            "relatime" => (false, MS_RELATIME),
            "remount" => (false, MS_REMOUNT),
            "ro" | "rro" => (false, MS_RDONLY),
            "rw" | "rrw" => (true, MS_RDONLY),
            "silent" => (false, MS_SILENT),
            "strictatime" => (false, MS_STRICTATIME),
            "suid" => (true, MS_NOSUID),
            "sync" => (false, MS_SYNCHRONOUS),
            "symfollow" => (true, 256),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => MS_PRIVATE,
                    "shared" => MS_SHARED,
                    "slave" => MS_SLAVE,
                    _ => MS_UNBINDABLE,
                };
                let rec = if opt.starts_with('r') { MS_REC } else { 0 };
                o.propagation.push(base | rec);
                continue;
            }
            "tmpcopyup" => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        if clear {
            o.flags &= !flag;
        } else {
            o.flags |= flag;
        }
    }
    o.data = data.join(",");
    o
}

/// Resolves `path` inside `root`, following symlinks as if `root` were `/`, so a
/// symlink in the image can never point a mount outside the rootfs.
pub fn resolve_in_root(root: &Path, path: &Path) -> PathBuf {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            parts.pop();
            continue;
        }
        parts.push(c);
        let cur: PathBuf = root.join(parts.iter().collect::<PathBuf>());
        if let Ok(target) = std::fs::read_link(&cur) {
            hops += 1;
            if hops > 40 {
                break;
            }
            parts.pop();
            if target.is_absolute() {
                parts.clear();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
        }
    }
    root.join(parts.iter().collect::<PathBuf>())
}

/// Does the config mount a fresh /dev (so podrun must populate it)?
pub fn needs_dev(spec: &Spec) -> bool {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|m| {
            m.destination() == Path::new("/dev")
                && !m
                    .options()
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o == "bind" || o == "rbind")
                && m.typ().as_deref() != Some("bind")
        })
}

/// Makes the host's mounts invisible to changes we make, and the rootfs a mount point.
pub fn prepare_root(spec: &Spec, rootfs: &Path) -> R<()> {
    // As runc: `/` of the new mount namespace gets rootfsPropagation (rslave when unset)
    // before any mount, so an rshared root keeps its peers and a mount made under an
    // rshared volume reaches the host; applying it only after pivot_root is too late.
    let flags = rootfs_propagation_flags(spec);
    for f in flags.unwrap_or_else(|| vec![libc::MS_SLAVE | libc::MS_REC]) {
        mount(Path::new(""), Path::new("/"), "", f, "")
            .map_err(|e| err("set / propagation", Path::new("/"), e))?;
    }
    parent_mount_private(rootfs)?;
    mount(rootfs, rootfs, "", libc::MS_BIND | libc::MS_REC, "")
        .map_err(|e| err("bind rootfs", rootfs, e))
}

/// linux.rootfsPropagation as mount(2) propagation flags (None: unset).
fn rootfs_propagation_flags(spec: &Spec) -> Option<Vec<libc::c_ulong>> {
    let p = spec.linux().as_ref()?.rootfs_propagation().clone()?;
    Some(parse_options(std::slice::from_ref(&p)).propagation)
}

/// pivot_root refuses a new root whose parent mount is shared: make that one mount (in
/// this mount namespace only) private, as runc does; the rest keeps its propagation.
fn parent_mount_private(rootfs: &Path) -> R<()> {
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| err("read", Path::new("/proc/self/mountinfo"), e))?;
    let Some((mountpoint, shared)) = mount_of(&info, parent) else {
        return Ok(());
    };
    if !shared {
        return Ok(());
    }
    mount(Path::new(""), &mountpoint, "", libc::MS_PRIVATE, "")
        .map_err(|e| err("make the rootfs parent mount private", &mountpoint, e))
}

/// The mount holding `path` in a mountinfo text (the last, i.e. topmost, of the longest
/// matching mount points) and whether it is shared.
fn mount_of(info: &str, path: &Path) -> Option<(PathBuf, bool)> {
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let Some((pre, _)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = pre.split(' ').collect();
        let Some(mp) = fields.get(4).map(|m| PathBuf::from(unescape_mountinfo(m))) else {
            continue;
        };
        if !path.starts_with(&mp) {
            continue;
        }
        let longer = best
            .as_ref()
            .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len());
        if longer {
            let shared = fields.iter().skip(6).any(|f| f.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    best
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Performs every mount of config.json's `mounts`, in order.
pub fn mount_all(spec: &Spec, rootfs: &Path, in_userns: bool, new_cgroupns: bool) -> R<()> {
    for m in spec.mounts().as_deref().unwrap_or_default() {
        mount_one(m, rootfs, in_userns, new_cgroupns)?;
    }
    Ok(())
}

fn mount_one(m: &Mount, rootfs: &Path, in_userns: bool, new_cgroupns: bool) -> R<()> {
    let dest = resolve_in_root(rootfs, m.destination());
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    if matches!(typ, "proc" | "sysfs") {
        // A proc/sysfs over a symlink would land where the image chose (runc
        // CVE-2019-19921, CVE-2019-16884): refused, as runc does.
        let mut lexical = rootfs.to_path_buf();
        for c in m.destination().components() {
            match c {
                Component::Normal(n) => lexical.push(n),
                Component::ParentDir if lexical != rootfs => {
                    lexical.pop();
                }
                _ => {}
            }
        }
        if dest != lexical {
            return Err(err(
                &format!("mount {typ}"),
                m.destination(),
                "the destination is a symlink in the rootfs",
            ));
        }
    }
    let is_bind = opts.flags & libc::MS_BIND != 0 || typ == "bind";
    let source = m.source().clone().unwrap_or_default();
    if (typ == "cgroup" || typ == "cgroup2") && !is_bind {
        return mount_cgroups(&dest, &opts, new_cgroupns);
    }
    if is_bind {
        let meta = std::fs::metadata(&source).map_err(|e| err("bind source", &source, e))?;
        make_mountpoint(&dest, !meta.is_dir())?;
        let rec = opts.flags & libc::MS_REC;
        let pinned = pin_in_root(rootfs, &dest)?;
        mount(&source, pinned.path(&dest), "", libc::MS_BIND | rec, "")
            .map_err(|e| err("bind mount", &dest, e))?;
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            remount_bind(&dest, extra)?;
        }
    } else {
        make_mountpoint(&dest, false)?;
        let mut flags = opts.flags;
        let pinned = pin_in_root(rootfs, &dest)?;
        // sysfs and mqueue cannot be mounted fresh without owning the net/ipc namespace
        // user ns; fall back to binding the host's like runc does.
        let r = mount(&source, pinned.path(&dest), typ, flags, &opts.data);
        match r {
            Err(nix::Error::EPERM) if in_userns && typ == "sysfs" => {
                flags = libc::MS_BIND | libc::MS_REC;
                mount(Path::new("/sys"), &dest, "", flags, "")
                    .map_err(|e| err("bind mount sysfs", &dest, e))?;
            }
            Err(e) => return Err(err(&format!("mount {typ}"), &dest, e)),
            Ok(()) => {}
        }
    }
    for p in &opts.propagation {
        mount(Path::new(""), &dest, "", *p, "").map_err(|e| err("set propagation", &dest, e))?;
    }
    Ok(())
}

/// A mount target opened inside the rootfs (openat2 RESOLVE_IN_ROOT): mounting on
/// /proc/self/fd/N hits exactly that directory, even if a process sharing a volume swaps
/// a path component for a symlink after [`resolve_in_root`] (runc CVE-2021-30465).
struct Pinned {
    fd: Option<std::os::fd::OwnedFd>,
    via: PathBuf,
}

impl Pinned {
    fn path<'a>(&'a self, fallback: &'a Path) -> &'a Path {
        if self.fd.is_some() {
            &self.via
        } else {
            fallback
        }
    }
}

fn pin_in_root(rootfs: &Path, dest: &Path) -> R<Pinned> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use std::os::fd::AsRawFd;
    let rel = dest.strip_prefix(rootfs).unwrap_or(dest);
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| err("open", rootfs, e))?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(&root, rel, how) {
        Ok(fd) => {
            let via = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            Ok(Pinned { fd: Some(fd), via })
        }
        // Kernels before 5.6: the lexical resolution above is all we have.
        Err(nix::Error::ENOSYS) => Ok(Pinned {
            fd: None,
            via: PathBuf::new(),
        }),
        Err(e) => Err(err("open mount target in rootfs", dest, e)),
    }
}

/// Re-applies flags (ro, nosuid, ...) to a bind mount, keeping the flags the kernel
/// locks in a user namespace.
fn remount_bind(dest: &Path, flags: libc::c_ulong) -> R<()> {
    let base = libc::MS_BIND | libc::MS_REMOUNT;
    match mount(Path::new(""), dest, "", base | flags, "") {
        Err(nix::Error::EPERM) => {
            let st = nix::sys::statvfs::statvfs(dest).map_err(|e| err("statvfs", dest, e))?;
            let locked = st.flags().bits() as libc::c_ulong
                & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY);
            mount(Path::new(""), dest, "", base | flags | locked, "")
                .map_err(|e| err("remount", dest, e))
        }
        r => r.map_err(|e| err("remount", dest, e)),
    }
}

fn make_mountpoint(dest: &Path, file: bool) -> R<()> {
    if file {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err("mkdir", parent, e))?;
        }
        if std::fs::symlink_metadata(dest).is_err() {
            std::fs::File::create(dest).map_err(|e| err("create mountpoint", dest, e))?;
        }
        Ok(())
    } else {
        std::fs::create_dir_all(dest).map_err(|e| err("mkdir", dest, e))
    }
}

/// One cgroup hierarchy from /proc/self/mountinfo.
struct Hierarchy {
    mountpoint: PathBuf,
    /// The cgroup mounted there: "/" on a host, the outer container's own cgroup when
    /// podrun itself runs in a container without a cgroup namespace (nested use).
    root: String,
    fstype: String,
    /// v1: comma-separated controllers (and name=...); empty for cgroup2.
    controllers: String,
}

fn cgroup_hierarchies() -> Vec<Hierarchy> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let mp = PathBuf::from(pre[4]);
        if !mp.starts_with("/sys/fs/cgroup") {
            continue;
        }
        let controllers = post[2]
            .split(',')
            .filter(|o| {
                *o != "rw"
                    && *o != "ro"
                    && !o.starts_with("release_agent")
                    && *o != "clone_children"
                    && *o != "nsdelegate"
                    && *o != "memory_recursiveprot"
                    && *o != "xattr"
            })
            .collect::<Vec<_>>()
            .join(",");
        out.push(Hierarchy {
            mountpoint: mp,
            root: pre[3].to_string(),
            fstype: fstype.to_string(),
            controllers: if fstype == "cgroup2" {
                String::new()
            } else {
                controllers
            },
        });
    }
    out
}

/// This process's cgroup path in the hierarchy with the given controllers ("" = v2).
fn own_cgroup(controllers: &str) -> String {
    let Ok(s) = std::fs::read_to_string("/proc/self/cgroup") else {
        return "/".into();
    };
    let want: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
    for line in s.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        let have: Vec<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
        if want.is_empty() && have.is_empty() {
            return path.to_string();
        }
        if !want.is_empty() && want.iter().all(|w| have.contains(w)) && have.len() == want.len() {
            return path.to_string();
        }
    }
    "/".into()
}

/// `own` (a path from /proc/self/cgroup) relative to the hierarchy's mount, whose root is
/// `root`: inside an outer container the mount shows only the outer container's cgroup,
/// so its prefix is left out (as runc's cgroup mount does).
fn below_mount_root<'a>(own: &'a str, root: &str) -> &'a str {
    let rel = match root.trim_end_matches('/') {
        "" => own,
        r => match own.strip_prefix(r) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => own,
        },
    };
    rel.trim_start_matches('/')
}

/// Mounts the container's view of its cgroups at `dest` (type "cgroup" in config.json):
/// fresh cgroup filesystems inside a cgroup namespace, else binds of its own cgroup dirs.
fn mount_cgroups(dest: &Path, opts: &MountOpts, new_cgroupns: bool) -> R<()> {
    make_mountpoint(dest, false)?;
    let flags = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    let hier = cgroup_hierarchies();
    let pure_v2 = hier.len() == 1 && hier[0].mountpoint == Path::new("/sys/fs/cgroup");
    let mount_h = |h: &Hierarchy, target: &Path| -> R<()> {
        if new_cgroupns {
            let data = h.controllers.as_str();
            mount(Path::new(&h.fstype), target, &h.fstype, flags, data)
                .map_err(|e| err("mount cgroup", target, e))
        } else {
            let own = own_cgroup(&h.controllers);
            let src = h.mountpoint.join(below_mount_root(&own, &h.root));
            mount(&src, target, "", libc::MS_BIND | libc::MS_REC, "")
                .map_err(|e| err("bind cgroup", target, e))?;
            remount_bind(target, flags)
        }
    };
    if pure_v2 {
        return mount_h(&hier[0], dest);
    }
    mount(
        Path::new("tmpfs"),
        dest,
        "tmpfs",
        flags & !libc::MS_RDONLY,
        "mode=755",
    )
    .map_err(|e| err("mount cgroup tmpfs", dest, e))?;
    for h in &hier {
        let Ok(rel) = h.mountpoint.strip_prefix("/sys/fs/cgroup") else {
            continue;
        };
        let target = dest.join(rel);
        make_mountpoint(&target, false)?;
        if let Err(e) = mount_h(h, &target) {
            // A hierarchy we cannot see from here (e.g. a named one) is left empty.
            super::log::warn(&format!("cgroup mount: {e}"));
        }
    }
    // The host's controller aliases (cpu -> cpu,cpuacct).
    if let Ok(dir) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in dir.flatten() {
            if let Ok(t) = std::fs::read_link(e.path()) {
                let _ = symlink(t, dest.join(e.file_name()));
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        remount_bind(dest, flags).or_else(|_| {
            mount(
                Path::new(""),
                dest,
                "",
                libc::MS_REMOUNT | flags,
                "mode=755",
            )
            .map_err(|e| err("remount cgroup tmpfs", dest, e))
        })?;
    }
    Ok(())
}

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("tty", 5, 0),
    ("urandom", 1, 9),
    ("random", 1, 8),
];

/// Populates a fresh /dev: default devices, linux.devices, and the standard symlinks.
pub fn setup_dev(spec: &Spec, rootfs: &Path, in_userns: bool) -> R<()> {
    let dev = rootfs.join("dev");
    for (name, major, minor) in DEFAULT_DEVICES {
        create_device(
            &dev.join(name),
            libc::S_IFCHR,
            *major,
            *minor,
            0o666,
            0,
            0,
            in_userns,
        )?;
    }
    let devices: &[LinuxDevice] = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        let path = resolve_in_root(rootfs, d.path());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err("mkdir", parent, e))?;
        }
        let _ = std::fs::remove_file(&path);
        create_device(
            &path,
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
            in_userns,
        )?;
    }
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    for (target, name) in links {
        let p = dev.join(name);
        if std::fs::symlink_metadata(&p).is_err() {
            symlink(target, &p).map_err(|e| err("symlink", &p, e))?;
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = symlink("/proc/kcore", dev.join("core"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn create_device(
    path: &Path,
    kind: libc::mode_t,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    in_userns: bool,
) -> R<()> {
    if in_userns {
        // mknod is not allowed in a user namespace: bind the host's node instead.
        let host = Path::new("/dev").join(path.file_name().unwrap_or_default());
        make_mountpoint(path, true)?;
        return mount(&host, path, "", libc::MS_BIND, "").map_err(|e| err("bind device", path, e));
    }
    let c = sys::cstr(path);
    let dev = libc::makedev(major as u32, minor as u32);
    // SAFETY: valid C string; mknod only creates a filesystem node.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | (mode & 0o7777), dev) };
    if r < 0 {
        let e = nix::Error::last();
        if e != nix::Error::EEXIST {
            return Err(err("mknod", path, e));
        }
    }
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| err("chown", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| err("chmod", path, e))
}

/// Switches the root to `rootfs`: pivot_root (old root detached) or MS_MOVE + chroot.
pub fn enter_root(rootfs: &Path, no_pivot: bool) -> R<()> {
    nix::unistd::chdir(rootfs).map_err(|e| err("chdir", rootfs, e))?;
    if no_pivot {
        mount(rootfs, Path::new("/"), "", libc::MS_MOVE, "")
            .map_err(|e| err("move rootfs", rootfs, e))?;
        nix::unistd::chroot(".").map_err(|e| err("chroot", rootfs, e))?;
    } else {
        // pivot_root(".", ".") stacks the old root on the new one; detach it. "." must
        // name the old root when it is made rslave (as runc, through an fd of it): the
        // cwd still names the new root, and making that rslave would cut every
        // container mount from its host peers (rshared volumes).
        let old_root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| err("open old root", Path::new("/"), e))?;
        nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", rootfs, e))?;
        nix::unistd::fchdir(&old_root).map_err(|e| err("fchdir old root", rootfs, e))?;
        drop(old_root);
        mount(
            Path::new(""),
            Path::new("."),
            "",
            libc::MS_SLAVE | libc::MS_REC,
            "",
        )
        .map_err(|e| err("make old root rslave", rootfs, e))?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| err("detach old root", rootfs, e))?;
    }
    nix::unistd::chdir("/").map_err(|e| err("chdir", Path::new("/"), e))
}

/// Enters the rootfs by chroot alone, for a container without a mount namespace (runc
/// does the same): no mount is made or moved in the namespace it shares with its caller.
pub fn chroot_root(rootfs: &Path) -> R<()> {
    nix::unistd::chdir(rootfs).map_err(|e| err("chdir", rootfs, e))?;
    nix::unistd::chroot(".").map_err(|e| err("chroot", rootfs, e))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir", Path::new("/"), e))
}

/// Applies rootfsPropagation to the new root.
pub fn root_propagation(spec: &Spec) -> R<()> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    else {
        return Ok(());
    };
    let o = parse_options(std::slice::from_ref(&p));
    for f in o.propagation {
        mount(Path::new(""), Path::new("/"), "", f, "")
            .map_err(|e| err(&format!("rootfsPropagation {p}"), Path::new("/"), e))?;
    }
    Ok(())
}

/// Hides maskedPaths (tmpfs over dirs, /dev/null over files) and makes readonlyPaths
/// read-only. Runs before pivot_root with container paths resolved under `root`, which
/// keeps these mounts clear of the old root's lazy unmount.
pub fn mask_and_protect(spec: &Spec, root: &Path) -> R<()> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    for p in linux.readonly_paths().as_deref().unwrap_or_default() {
        let p = resolve_in_root(root, Path::new(p));
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        mount(&p, &p, "", libc::MS_BIND | libc::MS_REC, "").map_err(|e| err("bind", &p, e))?;
        remount_bind(&p, libc::MS_RDONLY | libc::MS_REC)?;
    }
    let null = root.join("dev/null");
    let null = if null.exists() {
        null
    } else {
        PathBuf::from("/dev/null")
    };
    // One read-only tmpfs serves every masked directory: binding it is cheaper than a
    // new superblock per path.
    let mut empty_dir: Option<PathBuf> = None;
    for p in linux.masked_paths().as_deref().unwrap_or_default() {
        let p = resolve_in_root(root, Path::new(p));
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let r = if meta.is_dir() {
            match &empty_dir {
                Some(d) => mount(d, &p, "", libc::MS_BIND, ""),
                None => {
                    // A fresh read-only tmpfs superblock is slow to make (ms); a
                    // read-write one made read-only per mount is not.
                    let r = mount(Path::new("tmpfs"), &p, "tmpfs", 0, "size=4k,mode=555").and_then(
                        |()| {
                            mount(
                                Path::new(""),
                                &p,
                                "",
                                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                                "",
                            )
                        },
                    );
                    empty_dir = Some(p.clone());
                    r
                }
            }
        } else {
            mount(&null, &p, "", libc::MS_BIND, "")
        };
        r.map_err(|e| err("mask", &p, e))?;
    }
    Ok(())
}

/// Remounts the root read-only (root.readonly).
pub fn readonly_root() -> R<()> {
    remount_bind(Path::new("/"), libc::MS_RDONLY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_path_is_taken_below_the_outer_containers_mount_root() {
        // podrun in a container (no cgroupns): the mount shows /libpod-1 at its top.
        assert_eq!(
            below_mount_root("/libpod-1/podrun/c1", "/libpod-1"),
            "podrun/c1"
        );
        assert_eq!(below_mount_root("/libpod-1", "/libpod-1/"), "");
        // On a host, or in a cgroup namespace, the path is already relative.
        assert_eq!(below_mount_root("/podrun/c1", "/"), "podrun/c1");
        // A prefix that is not a whole component is not stripped.
        assert_eq!(below_mount_root("/libpod-10/x", "/libpod-1"), "libpod-10/x");
    }

    #[test]
    fn the_mount_of_a_path_is_the_topmost_longest_one() {
        let info = "22 1 8:1 / / rw shared:1 - ext4 /dev/vda rw\n\
                    30 22 0:5 / /run rw shared:7 - tmpfs tmpfs rw\n\
                    31 30 0:6 / /run/podrun rw - tmpfs tmpfs rw\n\
                    32 30 0:7 / /run/podrun rw shared:9 - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_of(info, Path::new("/run/podrun/x")),
            Some((PathBuf::from("/run/podrun"), true))
        );
        assert_eq!(
            mount_of(info, Path::new("/var/lib")),
            Some((PathBuf::from("/"), true))
        );
        assert_eq!(
            mount_of(info, Path::new("/run/other")),
            Some((PathBuf::from("/run"), true))
        );
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&[
            "nosuid".into(),
            "ro".into(),
            "rslave".into(),
            "mode=755".into(),
            "size=64k".into(),
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_RDONLY);
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(o.data, "mode=755,size=64k");
        let rw = parse_options(&["ro".into(), "rw".into()]);
        assert_eq!(rw.flags, 0);
    }

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let d = std::env::temp_dir().join(format!("podrun-resolve-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a")).unwrap();
        let _ = std::fs::remove_file(d.join("a/up"));
        let _ = std::fs::remove_file(d.join("abs"));
        symlink("../../../../etc", d.join("a/up")).unwrap();
        symlink("/a", d.join("abs")).unwrap();
        assert_eq!(resolve_in_root(&d, Path::new("/a/up/x")), d.join("etc/x"));
        assert_eq!(resolve_in_root(&d, Path::new("/abs/y")), d.join("a/y"));
        assert_eq!(resolve_in_root(&d, Path::new("/../../z")), d.join("z"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
