//! Layer unpacking: a (gzip, zstd or plain) tar stream becomes a directory usable as an
//! overlayfs lower dir. OCI whiteouts (`.wh.NAME`) become overlay whiteouts (0/0 character
//! devices) and opaque markers (`.wh..wh..opq`) become `trusted.overlay.opaque=y`.
use super::error::{ImageError, Result};
use super::fsutil;
use sha2::{Digest as _, Sha256};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Reader that hashes (and optionally counts) everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Reads the rest of the stream (so the digest covers it), then returns
    /// (`sha256:<hex>`, bytes read, inner reader).
    pub fn finish(mut self) -> io::Result<(String, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        let d = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok((d, self.count, self.inner))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Compression of a layer stream, told by its first bytes (media types lie too often).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Peeks at the first bytes of `r` to tell its compression.
pub fn detect_compression<R: BufRead>(r: &mut R) -> io::Result<Compression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Wraps `r` in the decompressor its magic bytes call for.
pub fn decompress<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match detect_compression(&mut r)? {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::None => Box::new(r),
    })
}

/// Unpacks the possibly compressed tar stream `src` into the new directory `dest`, and
/// returns the diff-id (sha256 of the uncompressed tar).
pub fn unpack_layer<R: Read>(src: R, dest: &Path, layer: &str) -> Result<String> {
    let rd = decompress(BufReader::with_capacity(256 * 1024, src))
        .map_err(|e| unpack_err(layer, "", e))?;
    let mut hashed = HashingReader::new(rd);
    unpack_tar(&mut hashed, dest, layer)?;
    let (diff_id, _, _) = hashed
        .finish()
        .map_err(|e| unpack_err(layer, "<trailer>", e))?;
    Ok(diff_id)
}

fn unpack_err(layer: &str, entry: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Unpack {
        layer: layer.to_string(),
        entry: entry.to_string(),
        reason: e.to_string(),
    }
}

/// Metadata applied to each unpacked entry.
struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: (i64, i64),
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Unpacks an uncompressed tar into `dest` (created if missing).
pub fn unpack_tar<R: Read>(src: R, dest: &Path, layer: &str) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| unpack_err(layer, "/", e))?;
    let mut ar = tar::Archive::new(src);
    let mut dirs: Vec<(PathBuf, Meta)> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    // Parents already checked (consecutive entries mostly share one).
    let mut known_parent: Option<(PathBuf, PathBuf)> = None;
    let entries = ar.entries().map_err(|e| unpack_err(layer, "", e))?;
    for entry in entries {
        let mut e = entry.map_err(|e| unpack_err(layer, "<header>", e))?;
        let raw = e
            .path()
            .map_err(|err| unpack_err(layer, "<path>", err))?
            .into_owned();
        let shown = raw.display().to_string();
        let fail = |err: &dyn std::fmt::Display| unpack_err(layer, &shown, err);
        let rel = sanitize(&raw).map_err(|r| fail(&r))?;
        let meta = read_meta(&mut e).map_err(|r| fail(&r))?;
        let kind = e.header().entry_type();
        if rel.as_os_str().is_empty() {
            // "./" itself: the layer root's metadata.
            if kind.is_dir() {
                dirs.push((dest.to_path_buf(), meta));
            }
            continue;
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = match &known_parent {
            Some((rel_p, full_p)) if rel_p == parent_rel => full_p.clone(),
            _ => {
                let p = ensure_parent(dest, parent_rel).map_err(|r| fail(&r))?;
                known_parent = Some((parent_rel.to_path_buf(), p.clone()));
                p
            }
        };
        if apply_whiteout(&parent, &name).map_err(|r| fail(&r))? {
            continue;
        }
        let full = parent.join(&name);
        let existing = std::fs::symlink_metadata(&full).ok();
        if let Some(m) = &existing {
            if !(m.is_dir() && kind.is_dir()) {
                fsutil::remove_any(&full).map_err(|r| fail(&r))?;
            }
        }
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                    std::fs::create_dir(&full).map_err(|r| fail(&r))?;
                }
                dirs.push((full, meta));
                continue;
            }
            T::Symlink => {
                let target = e
                    .link_name()
                    .map_err(|r| fail(&r))?
                    .ok_or_else(|| fail(&"symlink without target"))?;
                std::os::unix::fs::symlink(&target, &full).map_err(|r| fail(&r))?;
            }
            T::Link => {
                let target = e
                    .link_name()
                    .map_err(|r| fail(&r))?
                    .ok_or_else(|| fail(&"hard link without target"))?;
                let trel = sanitize(&target).map_err(|r| fail(&r))?;
                check_no_symlink_parents(dest, &trel).map_err(|r| fail(&r))?;
                std::fs::hard_link(dest.join(&trel), &full).map_err(|r| fail(&r))?;
                // A hard link shares its target's metadata.
                continue;
            }
            T::Char | T::Block | T::Fifo => {
                let (major, minor) = (
                    e.header().device_major().ok().flatten().unwrap_or(0),
                    e.header().device_minor().ok().flatten().unwrap_or(0),
                );
                let k = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                fsutil::mknod(&full, k, meta.mode, major, minor).map_err(|r| fail(&r))?;
            }
            T::GNUSparse => return Err(fail(&"sparse files are not supported")),
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            _ => {
                // Regular files (and unknown types, which POSIX says to treat as files).
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&full)
                    .map_err(|r| fail(&r))?;
                copy_big(&mut e, &mut f, &mut buf).map_err(|r| fail(&r))?;
            }
        }
        apply_meta(&full, &meta, kind == tar::EntryType::Symlink).map_err(|r| fail(&r))?;
    }
    // Directories last and deepest first: their mtimes change while children are created.
    for (path, meta) in dirs.iter().rev() {
        apply_meta(path, meta, false)
            .map_err(|r| unpack_err(layer, &path.display().to_string(), r))?;
    }
    Ok(())
}

/// Applies a whiteout entry (`.wh..wh..opq`: its directory opaque; `.wh.NAME`: NAME
/// hidden, as overlayfs marks it); false for any other name.
fn apply_whiteout(parent: &Path, name: &str) -> std::result::Result<bool, String> {
    if name == ".wh..wh..opq" {
        fsutil::lsetxattr(parent, "trusted.overlay.opaque", b"y").map_err(|r| r.to_string())?;
        return Ok(true);
    }
    let Some(hidden) = name.strip_prefix(".wh.") else {
        return Ok(false);
    };
    if hidden.is_empty() || hidden == "." || hidden == ".." {
        return Err("invalid whiteout name".into());
    }
    let target = parent.join(hidden);
    fsutil::remove_any(&target).map_err(|r| r.to_string())?;
    fsutil::mknod(&target, libc::S_IFCHR, 0, 0, 0).map_err(|r| r.to_string())?;
    Ok(true)
}

/// io::copy with a large buffer: fewer write(2) calls for big files.
fn copy_big(r: &mut impl Read, w: &mut impl io::Write, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
    }
}

fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = e.header();
    let mut m = Meta {
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        mode: h.mode().unwrap_or(0o644),
        mtime: (h.mtime().unwrap_or(0) as i64, 0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = e.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let val = ext.value_bytes();
            let num = || {
                std::str::from_utf8(val)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            };
            match key {
                "uid" => m.uid = num().unwrap_or(m.uid),
                "gid" => m.gid = num().unwrap_or(m.gid),
                "mtime" => {
                    if let Some((s, frac)) = std::str::from_utf8(val)
                        .ok()
                        .map(|s| s.split_once('.').unwrap_or((s, "")))
                    {
                        if let Ok(sec) = s.parse::<i64>() {
                            let digits: String = frac.chars().take(9).collect();
                            let ns = format!("{digits:0<9}").parse::<i64>().unwrap_or(0);
                            m.mtime = (sec, ns);
                        }
                    }
                }
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        m.xattrs.push((name.to_string(), val.to_vec()));
                    }
                }
            }
        }
    }
    Ok(m)
}

fn apply_meta(path: &Path, m: &Meta, symlink: bool) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(m.uid as u32), Some(m.gid as u32))?;
    if !symlink {
        // After chown, which clears setuid/setgid bits.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.mode & 0o7777))?;
    }
    for (name, val) in &m.xattrs {
        // Overlay's own attributes in an image would let it forge whiteouts; drop them.
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        fsutil::lsetxattr(path, name, val)?;
    }
    fsutil::set_times_nofollow(path, m.mtime.0, m.mtime.1)
}

/// Turns a tar path into a relative path with no `..`; "./" becomes empty.
fn sanitize(p: &Path) -> std::result::Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err("path contains '..'".into()),
            Component::Prefix(_) => return Err("path has a prefix".into()),
        }
    }
    Ok(out)
}

/// Creates missing parents of an entry (0755 root:root like Docker) and refuses to walk
/// through a symlink, so no entry can land outside the layer.
fn ensure_parent(dest: &Path, parent_rel: &Path) -> std::result::Result<PathBuf, String> {
    let mut cur = dest.to_path_buf();
    for c in parent_rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "parent {} is a symlink inside the layer",
                    cur.display()
                ))
            }
            Ok(_) => return Err(format!("parent {} is not a directory", cur.display())),
            Err(_) => {
                std::fs::create_dir(&cur).map_err(|e| format!("mkdir {}: {e}", cur.display()))?;
            }
        }
    }
    Ok(cur)
}

fn check_no_symlink_parents(dest: &Path, rel: &Path) -> std::result::Result<(), String> {
    let mut cur = dest.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur.push(c);
            if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(format!(
                    "hard link target goes through symlink {}",
                    cur.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_000_000);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts_and_metadata_is_kept() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root for chown/mknod");
            return;
        }
        let data = tar_with(|b| {
            file(b, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o4755);
            file(b, "etc/.wh.shadow", b"", 0o644);
            file(b, "var/cache/.wh..wh..opq", b"", 0o644);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, "etc/passwd-link", "etc/passwd")
                .unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, "bin/sh", "busybox").unwrap();
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &data).unwrap();
        let gz = gz.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("podrun-unpack-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let diff = unpack_layer(&gz[..], &dir, "test").unwrap();
        assert_eq!(
            diff,
            format!("sha256:{}", hex::encode(Sha256::digest(&data)))
        );
        let m = std::fs::metadata(dir.join("etc/passwd")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755);
        assert_eq!((m.uid(), m.gid()), (1000, 1001));
        assert_eq!(m.mtime(), 1_000_000);
        assert_eq!(m.nlink(), 2);
        let wh = std::fs::symlink_metadata(dir.join("etc/shadow")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert_eq!(
            fsutil::lgetxattr(&dir.join("var/cache"), "trusted.overlay.opaque").unwrap(),
            Some(b"y".to_vec())
        );
        assert_eq!(
            std::fs::read_link(dir.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zstd_and_plain_layers_unpack_to_the_same_diff_id() {
        let data = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_size(5);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, "a/b.txt", &b"hello"[..]).unwrap();
        });
        let zst = zstd::encode_all(&data[..], 3).unwrap();
        let base = std::env::temp_dir().join(format!("podrun-unpack-zst-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let d1 = unpack_layer(&zst[..], &base.join("z"), "zstd").unwrap();
        let d2 = unpack_layer(&data[..], &base.join("p"), "plain").unwrap();
        assert_eq!(d1, d2);
        assert_eq!(std::fs::read(base.join("z/a/b.txt")).unwrap(), b"hello");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn parent_dir_escapes_are_refused() {
        let data = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            // append_data refuses "..", so write the name into the header directly.
            h.as_old_mut().name[..9].copy_from_slice(b"../escape");
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        });
        let dir = std::env::temp_dir().join(format!("podrun-unpack-esc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let err = unpack_layer(&data[..], &dir, "test").unwrap_err();
        assert!(err.to_string().contains(".."), "{err}");
        assert!(!dir.parent().unwrap().join("escape").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
