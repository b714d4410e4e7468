//! Per-container root filesystems: an overlayfs over the image's read-only layers with a
//! private upper/work dir under `<data-dir>/containers/<id>/`, or a full copy where overlay
//! cannot be mounted (chosen automatically, and reported).
use super::error::{io_err, ImageError, Result};
use super::fsutil;
use super::store::{Image, ImageStore, UsageRecord};
use serde::Serialize;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How a container's rootfs was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsMode {
    Overlay,
    Copy,
}

impl RootfsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RootfsMode::Overlay => "overlay",
            RootfsMode::Copy => "copy",
        }
    }
}

/// A container's writable root, ready for the runtime (`root.path` of the OCI spec).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedRootfs {
    pub path: PathBuf,
    pub mode: RootfsMode,
    /// Why overlay was not used, when `mode` is `Copy`.
    pub fallback_reason: Option<String>,
}

/// Set to `copy` to force the copy fallback (tests, hosts with a broken overlayfs).
pub const ROOTFS_MODE_ENV: &str = "PODRUN_ROOTFS_MODE";

fn rootfs_err(id: &str, reason: impl std::fmt::Display) -> ImageError {
    ImageError::Rootfs {
        container: id.to_string(),
        reason: reason.to_string(),
    }
}

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id == "."
        || id == ".."
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(rootfs_err(
            id,
            "container id must be 1-128 of [A-Za-z0-9_.-]",
        ));
    }
    Ok(())
}

impl ImageStore {
    /// Directory holding a container's upper/work dirs and its merged `rootfs`.
    pub fn container_dir(&self, container_id: &str) -> PathBuf {
        self.containers.join(container_id)
    }

    /// Makes `<data-dir>/containers/<id>/rootfs` from the image: an overlay mount (lower
    /// dirs = layers, top first) or a copy when overlay fails. Records the image as used,
    /// so `rmi` refuses it until `release_rootfs`. Idempotent for the same image.
    pub fn prepare_rootfs(&self, image: &Image, container_id: &str) -> Result<PreparedRootfs> {
        self.prepare_rootfs_mapped(image, container_id, None)
    }

    /// [`Self::prepare_rootfs`] for a container in a user namespace: the image's layers
    /// are idmapped through `idmap` (as containerd 2's overlay snapshotter does) and only
    /// the new, empty upper dir is chowned to the namespace's root. No layer is chowned.
    pub fn prepare_rootfs_mapped(
        &self,
        image: &Image,
        container_id: &str,
        idmap: Option<&RootfsIdmap>,
    ) -> Result<PreparedRootfs> {
        validate_id(container_id)?;
        let dir = self.container_dir(container_id);
        let rootfs = dir.join("rootfs");
        let record_path = dir.join("image.json");
        if let Ok(b) = std::fs::read(&record_path) {
            let rec: UsageRecord = serde_json::from_slice(&b)
                .map_err(|e| rootfs_err(container_id, format!("{}: {e}", record_path.display())))?;
            let mode = if rec.mode == "copy" {
                RootfsMode::Copy
            } else {
                RootfsMode::Overlay
            };
            let ready = match mode {
                RootfsMode::Overlay => fsutil::is_mountpoint(&rootfs),
                RootfsMode::Copy => rootfs.is_dir(),
            };
            if rec.image == image.manifest_digest && ready {
                return Ok(PreparedRootfs {
                    path: rootfs,
                    mode,
                    fallback_reason: rec.fallback_reason,
                });
            }
            // After a reboot the overlay is gone but its upper dir (the container's
            // changes) is still there: mount it again.
            if rec.image == image.manifest_digest && mode == RootfsMode::Overlay && rootfs.is_dir()
            {
                let lowers = self.lower_dirs(image, container_id)?;
                mount_overlay(&dir, &rootfs, &lowers, idmap)
                    .map_err(|e| rootfs_err(container_id, format!("remounting overlay: {e}")))?;
                return Ok(PreparedRootfs {
                    path: rootfs,
                    mode,
                    fallback_reason: None,
                });
            }
            return Err(rootfs_err(
                container_id,
                format!(
                    "already prepared (from {}); release it first",
                    rec.reference
                ),
            ));
        }
        let lowers = self.lower_dirs(image, container_id)?;
        std::fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let mut guard = DirGuard(Some(dir.clone()));
        {
            // Under the index lock, so a concurrent rmi sees the record or the image is
            // already gone.
            let _l = self.lock("index")?;
            if !self.has_blob(&image.manifest_digest) {
                return Err(ImageError::NotFound(image.reference.clone()));
            }
            let rec = UsageRecord {
                image: image.manifest_digest.clone(),
                image_id: image.config_digest.clone(),
                reference: image.reference.clone(),
                mode: "pending".into(),
                fallback_reason: None,
            };
            write_record(&record_path, &rec)?;
        }
        std::fs::create_dir(&rootfs).map_err(io_err("create directory", &rootfs))?;
        let forced_copy = std::env::var(ROOTFS_MODE_ENV).is_ok_and(|v| v == "copy");
        let (mode, fallback_reason) = if forced_copy {
            (RootfsMode::Copy, Some(format!("{ROOTFS_MODE_ENV}=copy")))
        } else {
            match mount_overlay(&dir, &rootfs, &lowers, idmap) {
                Ok(()) => (RootfsMode::Overlay, None),
                Err(e) => (RootfsMode::Copy, Some(format!("overlay mount failed: {e}"))),
            }
        };
        if mode == RootfsMode::Copy && idmap.is_some() {
            // A copy would have to be chowned file by file: refused instead.
            return Err(rootfs_err(
                container_id,
                format!(
                    "the image cannot be idmapped for a user namespace: {}",
                    fallback_reason.unwrap_or_default()
                ),
            ));
        }
        if mode == RootfsMode::Copy {
            for l in lowers.iter().rev() {
                copy_layer(l, &rootfs).map_err(|e| rootfs_err(container_id, e))?;
            }
        }
        let rec = UsageRecord {
            image: image.manifest_digest.clone(),
            image_id: image.config_digest.clone(),
            reference: image.reference.clone(),
            mode: mode.as_str().into(),
            fallback_reason: fallback_reason.clone(),
        };
        if let Err(e) = write_record(&record_path, &rec) {
            if mode == RootfsMode::Overlay {
                let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
            }
            return Err(e);
        }
        guard.0 = None;
        Ok(PreparedRootfs {
            path: rootfs,
            mode,
            fallback_reason,
        })
    }

    /// The image's unpacked layers, top first (overlay's lowerdir order).
    fn lower_dirs(&self, image: &Image, container_id: &str) -> Result<Vec<PathBuf>> {
        let mut lowers = Vec::with_capacity(image.layers.len());
        for l in image.layers.iter().rev() {
            let p = self.layer_path(&l.diff_id)?;
            if !p.is_dir() {
                return Err(rootfs_err(
                    container_id,
                    format!("layer {} of {} is not unpacked", l.diff_id, image.reference),
                ));
            }
            lowers.push(p);
        }
        Ok(lowers)
    }

    /// Unmounts and removes a container's rootfs and its upper dir; absent is fine.
    pub fn release_rootfs(&self, container_id: &str) -> Result<()> {
        validate_id(container_id)?;
        let dir = self.container_dir(container_id);
        if !dir.exists() {
            return Ok(());
        }
        let rootfs = dir.join("rootfs");
        if fsutil::is_mountpoint(&rootfs) {
            nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
                rootfs_err(container_id, format!("umount {}: {e}", rootfs.display()))
            })?;
        }
        if fsutil::is_mountpoint(&rootfs) {
            return Err(rootfs_err(
                container_id,
                format!("{} is still mounted", rootfs.display()),
            ));
        }
        std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))
    }
}

fn write_record(path: &Path, rec: &UsageRecord) -> Result<()> {
    let data = serde_json::to_vec(rec).map_err(|e| ImageError::Json {
        what: path.display().to_string(),
        source: e,
    })?;
    // Rename for atomic visibility; no fsync: the mount it describes does not survive a
    // crash either, and preparation must stay in the millisecond range.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &data).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", path))
}

/// Removes a half-made container dir (unmounting first) unless disarmed.
struct DirGuard(Option<PathBuf>);
impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let rootfs = d.join("rootfs");
            if fsutil::is_mountpoint(&rootfs) {
                let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
            }
            if !fsutil::is_mountpoint(&rootfs) {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
    }
}

/// How a container's layers are idmapped: through `userns` (a user namespace file such as
/// `/proc/<pid>/ns/user`), whose root is host id `root`.
#[derive(Debug, Clone)]
pub struct RootfsIdmap {
    pub userns: PathBuf,
    pub root: u32,
}

/// Mounts overlayfs at `target`. Uses mount(2) when the options fit in a page, else the
/// new mount API, which takes lower dirs one at a time (`lowerdir+`, Linux 6.8+). With
/// `idmap`, every lower dir is an idmapped clone (overlayfs takes idmapped layers since
/// Linux 5.19; an overlay mount itself cannot be idmapped), passed as /proc/self/fd/N.
fn mount_overlay(
    dir: &Path,
    target: &Path,
    lowers: &[PathBuf],
    idmap: Option<&RootfsIdmap>,
) -> std::io::Result<()> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d)?;
    }
    let mut lowers: Vec<PathBuf> = lowers.to_vec();
    if lowers.is_empty() {
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        lowers.push(empty);
    }
    // The upper dir's root takes the mode of the top layer's root through overlay anyway;
    // keep it traversable.
    std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(0o755))?;
    // Held until the overlay is mounted; it keeps its own references to the layers.
    let mut trees: Vec<std::os::fd::OwnedFd> = Vec::new();
    if let Some(m) = idmap {
        use std::os::fd::{AsFd, AsRawFd};
        let ns = std::fs::File::open(&m.userns)?;
        for l in lowers.iter_mut() {
            let tree = crate::idmap::idmapped_tree(l, ns.as_fd(), false)
                .map_err(|e| std::io::Error::new(e.kind(), crate::idmap::idmap_error(l, &e)))?;
            *l = PathBuf::from(format!("/proc/self/fd/{}", tree.as_raw_fd()));
            trees.push(tree);
        }
        // The upper dir is new and empty: its root becomes the namespace's root, so "/"
        // belongs to root in the container. Nothing below it exists yet.
        std::os::unix::fs::chown(&upper, Some(m.root), Some(m.root))?;
    }
    let lower_str: Vec<String> = lowers.iter().map(|p| escape_opt(p)).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower_str.join(":"),
        escape_opt(&upper),
        escape_opt(&work)
    );
    if opts.len() < 4000 {
        return nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(std::io::Error::from);
    }
    new_api::mount_overlay(target, &lowers, &upper, &work)
}

/// Escapes the characters overlay's option parser treats specially.
fn escape_opt(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

mod new_api {
    //! fsopen/fsconfig/fsmount/move_mount: no page-size limit on the option string.
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

    fn cstr(s: &[u8]) -> io::Result<CString> {
        CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
    }

    fn set(fd: &OwnedFd, key: &str, val: &Path) -> io::Result<()> {
        let k = cstr(key.as_bytes())?;
        let v = cstr(val.as_os_str().as_bytes())?;
        // SAFETY: fd is a live fs context; key/value are NUL-terminated strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn mount_overlay(
        target: &Path,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
    ) -> io::Result<()> {
        let fstype = cstr(b"overlay")?;
        // SAFETY: fstype is NUL-terminated; the result is checked before use.
        let fd = unsafe {
            libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1 /* CLOEXEC */)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fsopen returned a fresh descriptor we now own.
        let fsfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        for l in lowers {
            set(&fsfd, "lowerdir+", l)?;
        }
        set(&fsfd, "upperdir", upper)?;
        set(&fsfd, "workdir", work)?;
        // SAFETY: fsfd is a live fs context; no pointers are passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fsfd is a created fs context.
        let m = unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
        if m < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fsmount returned a fresh mount descriptor we now own.
        let mfd = unsafe { OwnedFd::from_raw_fd(m as i32) };
        let empty = cstr(b"")?;
        let t = cstr(target.as_os_str().as_bytes())?;
        // SAFETY: mfd is a detached mount; both paths are NUL-terminated.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mfd.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Copies one unpacked layer onto `dst`, applying overlay whiteouts (0/0 character
/// devices delete) and opaque dirs (clear what lower layers put there).
pub(crate) fn copy_layer(src: &Path, dst: &Path) -> std::io::Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    copy_dir(src, dst, &mut links)?;
    copy_meta(src, dst, false)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let s = e.path();
        let d = dst.join(e.file_name());
        let m = std::fs::symlink_metadata(&s)?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            fsutil::remove_any(&d)?;
            continue;
        }
        let existing = std::fs::symlink_metadata(&d).ok();
        if ft.is_dir() {
            let opaque = fsutil::lgetxattr(&s, "trusted.overlay.opaque")?.as_deref() == Some(b"y");
            match &existing {
                Some(x) if x.is_dir() && opaque => {
                    fsutil::remove_any(&d)?;
                    std::fs::create_dir(&d)?;
                }
                Some(x) if x.is_dir() => {}
                Some(_) => {
                    fsutil::remove_any(&d)?;
                    std::fs::create_dir(&d)?;
                }
                None => std::fs::create_dir(&d)?,
            }
            copy_dir(&s, &d, links)?;
            copy_meta(&s, &d, false)?;
            continue;
        }
        if existing.is_some() {
            fsutil::remove_any(&d)?;
        }
        if m.nlink() > 1 && !ft.is_dir() {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                std::fs::hard_link(first, &d)?;
                continue;
            }
            links.insert((m.dev(), m.ino()), d.clone());
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
            copy_meta(&s, &d, true)?;
        } else if ft.is_file() {
            std::fs::copy(&s, &d)?;
            copy_meta(&s, &d, false)?;
        } else {
            let kind = if ft.is_char_device() {
                libc::S_IFCHR
            } else if ft.is_block_device() {
                libc::S_IFBLK
            } else if ft.is_fifo() {
                libc::S_IFIFO
            } else {
                libc::S_IFSOCK
            };
            let rdev = m.rdev();
            fsutil::mknod(&d, kind, m.mode(), libc::major(rdev), libc::minor(rdev))?;
            copy_meta(&s, &d, false)?;
        }
    }
    Ok(())
}

fn copy_meta(src: &Path, dst: &Path, symlink: bool) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(src)?;
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))?;
    if !symlink {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    for name in fsutil::llistxattr(src)? {
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        if let Some(v) = fsutil::lgetxattr(src, &name)? {
            fsutil::lsetxattr(dst, &name, &v)?;
        }
    }
    fsutil::set_times_nofollow(dst, m.mtime(), m.mtime_nsec())
}
