//! `podrun import`: OCI image layouts (dir or tar), docker-archive tars (`docker save`),
//! and plain root filesystems (dir or tarball) turned into one-layer images.
use super::error::{invalid, io_err, json_err, ImageError, Result};
use super::progress::Progress;
use super::reference::Reference;
use super::store::{
    read_limited, BlobSource, Descriptor, Image, ImageStore, Index, ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME, MAX_JSON_BLOB, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_CONFIG,
    MT_OCI_INDEX, MT_OCI_LAYER_TAR, MT_OCI_MANIFEST,
};
use super::unpack::{self, Compression, HashingReader};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Image config fields for a rootfs import (Docker's `import --change` in flag form).
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Reference to tag the image with (required for a rootfs; overrides names in a layout).
    pub tag: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    /// Show progress on stderr.
    pub progress: bool,
}

/// What an import path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    OciLayout,
    DockerArchive,
    Rootfs,
}

impl ImageStore {
    /// Imports `path` (format detected from its contents); returns the images stored.
    pub fn import(&self, path: &Path, opts: &ImportOptions) -> Result<Vec<Image>> {
        self.clean_stale();
        let meta = std::fs::metadata(path).map_err(io_err("stat", path))?;
        if meta.is_dir() {
            return match detect_dir(path) {
                ImportFormat::OciLayout => self.import_oci_layout(path, opts),
                ImportFormat::DockerArchive => self.import_docker_archive(path, opts),
                ImportFormat::Rootfs => self.import_rootfs_dir(path, opts).map(|i| vec![i]),
            };
        }
        if tar_is_image_archive(path)? {
            let tmp = ImportTmp(self.tmp.join(super::store::temp_name("import")));
            let f = std::fs::File::open(path).map_err(io_err("open", path))?;
            let rd = unpack::decompress(BufReader::new(f)).map_err(io_err("read", path))?;
            let mut ar = tar::Archive::new(rd);
            ar.unpack(&tmp.0).map_err(io_err("extract", path))?;
            return match detect_dir(&tmp.0) {
                ImportFormat::OciLayout => self.import_oci_layout(&tmp.0, opts),
                _ => self.import_docker_archive(&tmp.0, opts),
            };
        }
        self.import_rootfs_tar(path, opts).map(|i| vec![i])
    }

    fn import_oci_layout(&self, dir: &Path, opts: &ImportOptions) -> Result<Vec<Image>> {
        let idx_path = dir.join("index.json");
        let b = std::fs::read(&idx_path).map_err(io_err("read", &idx_path))?;
        let idx: Index =
            serde_json::from_slice(&b).map_err(json_err(idx_path.display().to_string()))?;
        let src = LayoutSource {
            root: dir.to_path_buf(),
        };
        if opts.tag.is_some() && idx.manifests.len() > 1 {
            return Err(invalid(
                format!("OCI layout {}", dir.display()),
                "holds several images; --tag can name only one",
            ));
        }
        let mut out = Vec::new();
        for d in &idx.manifests {
            let name = match &opts.tag {
                Some(t) => Reference::parse(t)?.to_string(),
                None => layout_name(d).ok_or_else(|| {
                    invalid(
                        format!("OCI layout {}", dir.display()),
                        format!(
                            "manifest {} has no full image name (annotation {} or {}); give --tag",
                            d.digest, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME
                        ),
                    )
                })??,
            };
            let (mt, bytes) = resolve_platform_manifest(&src, d)?;
            let progress = Progress::new(opts.progress);
            out.push(self.ingest(&src, &bytes, &mt, &[name], &progress)?);
        }
        Ok(out)
    }

    fn import_docker_archive(&self, dir: &Path, opts: &ImportOptions) -> Result<Vec<Image>> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let mpath = dir.join("manifest.json");
        let b = std::fs::read(&mpath).map_err(io_err("read", &mpath))?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&b).map_err(json_err(mpath.display().to_string()))?;
        if opts.tag.is_some() && entries.len() > 1 {
            return Err(invalid(
                format!("docker archive {}", dir.display()),
                "holds several images; --tag can name only one",
            ));
        }
        let mut out = Vec::new();
        for e in entries {
            let mut src = MapSource::default();
            let cfg_path = safe_join(dir, &e.config)?;
            let cfg = std::fs::read(&cfg_path).map_err(io_err("read", &cfg_path))?;
            let cfg_digest = super::store::sha256_digest(&cfg);
            src.files.insert(cfg_digest.clone(), cfg_path);
            let mut layers = Vec::new();
            for l in &e.layers {
                let p = safe_join(dir, l)?;
                let (digest, size, comp) = hash_file(&p)?;
                let media_type = match comp {
                    Compression::Gzip => super::store::MT_OCI_LAYER_GZIP,
                    Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                    Compression::None => MT_OCI_LAYER_TAR,
                };
                src.files.insert(digest.clone(), p);
                layers.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "config": {"mediaType": MT_OCI_CONFIG, "digest": cfg_digest, "size": cfg.len()},
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&manifest).map_err(json_err("manifest"))?;
            let names: Vec<String> = match &opts.tag {
                Some(t) => vec![Reference::parse(t)?.to_string()],
                None => e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| Reference::parse(t).map(|r| r.to_string()))
                    .collect::<std::result::Result<_, _>>()?,
            };
            if names.is_empty() {
                return Err(invalid(
                    format!("docker archive {}", dir.display()),
                    "image has no RepoTags; give --tag",
                ));
            }
            let progress = Progress::new(opts.progress);
            out.push(self.ingest(&src, &bytes, MT_OCI_MANIFEST, &names, &progress)?);
        }
        Ok(out)
    }

    fn import_rootfs_dir(&self, dir: &Path, opts: &ImportOptions) -> Result<Image> {
        let name = rootfs_tag(opts, dir)?;
        // The layer and config blobs are stored before the manifest: keep GC away.
        let _gc = self.gc_lock(false)?;
        let mut w = self.blob_writer()?;
        write_tar_of_dir(dir, &mut w).map_err(io_err("archive", dir))?;
        let (digest, size) = w.current_digest();
        w.commit(&digest, Some(size), &format!("layer of {}", dir.display()))?;
        self.finish_rootfs_import(&name, &digest, size, &digest, MT_OCI_LAYER_TAR, opts)
    }

    fn import_rootfs_tar(&self, path: &Path, opts: &ImportOptions) -> Result<Image> {
        let name = rootfs_tag(opts, path)?;
        let _gc = self.gc_lock(false)?;
        let (digest, size, comp) = hash_file(path)?;
        let f = std::fs::File::open(path).map_err(io_err("open", path))?;
        let rd = unpack::decompress(BufReader::new(f)).map_err(io_err("read", path))?;
        let (diff_id, _, _) = HashingReader::new(rd)
            .finish()
            .map_err(io_err("read", path))?;
        let mut w = self.blob_writer()?;
        let mut f = std::fs::File::open(path).map_err(io_err("open", path))?;
        std::io::copy(&mut f, &mut w).map_err(io_err("copy", path))?;
        w.commit(&digest, Some(size), &format!("layer {}", path.display()))?;
        let mt = match comp {
            Compression::Gzip => super::store::MT_OCI_LAYER_GZIP,
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => MT_OCI_LAYER_TAR,
        };
        self.finish_rootfs_import(&name, &digest, size, &diff_id, mt, opts)
    }

    fn finish_rootfs_import(
        &self,
        name: &str,
        digest: &str,
        size: u64,
        diff_id: &str,
        media_type: &str,
        opts: &ImportOptions,
    ) -> Result<Image> {
        let now = crate::util::now_rfc3339();
        let mut config = serde_json::Map::new();
        let mut env =
            vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
        for e in &opts.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        config.insert("Env".into(), json!(env));
        if let Some(c) = &opts.cmd {
            config.insert("Cmd".into(), json!(c));
        }
        if let Some(c) = &opts.entrypoint {
            config.insert("Entrypoint".into(), json!(c));
        }
        if let Some(w) = &opts.workdir {
            config.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = &opts.user {
            config.insert("User".into(), json!(u));
        }
        if !opts.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, serde_json::Value> = opts
                .exposed_ports
                .iter()
                .map(|p| {
                    let p = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    (p, json!({}))
                })
                .collect();
            config.insert("ExposedPorts".into(), json!(ports));
        }
        if let Some(s) = &opts.stop_signal {
            config.insert("StopSignal".into(), json!(s));
        }
        let cfg = json!({
            "created": now,
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": now, "created_by": "podrun import"}],
        });
        let cfg_bytes = serde_json::to_vec(&cfg).map_err(json_err("config"))?;
        let cfg_digest = self.write_blob(&cfg_bytes, None, "image config")?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": cfg_digest, "size": cfg_bytes.len()},
            "layers": [{"mediaType": media_type, "digest": digest, "size": size}],
        });
        let bytes = serde_json::to_vec(&manifest).map_err(json_err("manifest"))?;
        let progress = Progress::new(opts.progress);
        self.ingest(
            &StoreSource(self),
            &bytes,
            MT_OCI_MANIFEST,
            &[name.to_string()],
            &progress,
        )
    }
}

fn rootfs_tag(opts: &ImportOptions, path: &Path) -> Result<String> {
    let t = opts.tag.as_deref().ok_or_else(|| {
        invalid(
            format!("import of {}", path.display()),
            "a plain root filesystem needs --tag NAME[:TAG]",
        )
    })?;
    Ok(Reference::parse(t)?.to_string())
}

/// sha256, size and compression of a file.
fn hash_file(path: &Path) -> Result<(String, u64, Compression)> {
    let f = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut br = BufReader::with_capacity(256 * 1024, f);
    let comp = unpack::detect_compression(&mut br).map_err(io_err("read", path))?;
    let (d, n, _) = HashingReader::new(br)
        .finish()
        .map_err(io_err("read", path))?;
    Ok((d, n, comp))
}

fn detect_dir(dir: &Path) -> ImportFormat {
    if dir.join("oci-layout").exists() || dir.join("index.json").exists() {
        if dir.join("manifest.json").exists() && !dir.join("index.json").exists() {
            return ImportFormat::DockerArchive;
        }
        ImportFormat::OciLayout
    } else if dir.join("manifest.json").exists() {
        ImportFormat::DockerArchive
    } else {
        ImportFormat::Rootfs
    }
}

/// True when a tar's top level has `oci-layout`, `index.json` or `manifest.json` (an image
/// archive) rather than a root filesystem.
fn tar_is_image_archive(path: &Path) -> Result<bool> {
    let f = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut br = BufReader::new(f);
    if br.fill_buf().map_err(io_err("read", path))?.is_empty() {
        return Err(invalid(
            format!("import of {}", path.display()),
            "empty file",
        ));
    }
    let rd = unpack::decompress(br).map_err(io_err("read", path))?;
    let mut ar = tar::Archive::new(rd);
    let entries = ar.entries().map_err(io_err("read tar", path))?;
    for e in entries {
        let e = e.map_err(io_err("read tar", path))?;
        let p = e.path().map_err(io_err("read tar", path))?;
        let s = p.to_string_lossy();
        let s = s.trim_start_matches("./");
        if matches!(s, "oci-layout" | "index.json" | "manifest.json") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The full name a layout gives a manifest: containerd's annotation, else a ref.name that
/// is a whole reference (a bare tag like `1.30` is not).
fn layout_name(d: &Descriptor) -> Option<Result<String>> {
    let ann = d.annotations.as_ref()?;
    if let Some(n) = ann.get(ANNOTATION_CONTAINERD_NAME) {
        return Some(
            Reference::parse(n)
                .map(|r| r.to_string())
                .map_err(Into::into),
        );
    }
    let n = ann.get(ANNOTATION_REF_NAME)?;
    if n.contains('/') || n.contains(':') || n.contains('@') {
        return Some(
            Reference::parse(n)
                .map(|r| r.to_string())
                .map_err(Into::into),
        );
    }
    None
}

/// Reads a manifest descriptor; an index / manifest list is resolved to linux/amd64.
pub(crate) fn resolve_platform_manifest(
    src: &dyn BlobSource,
    d: &Descriptor,
) -> Result<(String, Vec<u8>)> {
    let mut r = src.open(d)?;
    let bytes = read_limited(&mut r, MAX_JSON_BLOB, "manifest")?;
    super::store::check_digest(
        &format!("manifest {}", d.digest),
        &d.digest,
        &super::store::sha256_digest(&bytes),
    )?;
    let mt = manifest_media_type(&bytes, &d.media_type);
    if mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST {
        let idx: Index = serde_json::from_slice(&bytes).map_err(json_err("image index"))?;
        let pick = pick_platform(&idx)?;
        return resolve_platform_manifest(src, pick);
    }
    Ok((mt, bytes))
}

/// The media type a manifest declares, else the descriptor's, else guessed from fields.
pub(crate) fn manifest_media_type(bytes: &[u8], fallback: &str) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) if !m.is_empty() => m,
        Ok(p) if !fallback.is_empty() && !fallback.starts_with("application/json") => {
            let _ = p;
            fallback.to_string()
        }
        Ok(Probe {
            manifests: Some(_), ..
        }) => MT_OCI_INDEX.to_string(),
        _ => MT_OCI_MANIFEST.to_string(),
    }
}

/// linux/amd64 from an index, as `docker pull` on this machine would choose.
pub(crate) fn pick_platform(idx: &Index) -> Result<&Descriptor> {
    let plain = |d: &&Descriptor| {
        d.media_type == MT_OCI_MANIFEST
            || d.media_type == MT_DOCKER_MANIFEST
            || d.media_type.is_empty()
    };
    idx.manifests
        .iter()
        .filter(plain)
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .or_else(|| {
            // An index without platforms (e.g. a single-image layout) means "this one".
            let unspecified: Vec<_> = idx
                .manifests
                .iter()
                .filter(plain)
                .filter(|d| d.platform.is_none())
                .collect();
            (unspecified.len() == 1).then(|| unspecified[0])
        })
        .ok_or_else(|| {
            let have: Vec<String> = idx
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            invalid(
                "image index",
                format!("no manifest for linux/amd64 (has: {})", have.join(", ")),
            )
        })
}

/// Blobs of an OCI layout directory.
struct LayoutSource {
    root: PathBuf,
}

impl BlobSource for LayoutSource {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let (alg, hex) = desc
            .digest
            .split_once(':')
            .ok_or_else(|| invalid(format!("digest {:?}", desc.digest), "no algorithm"))?;
        if alg != "sha256" || hex.contains('/') || hex.contains('.') {
            return Err(invalid(format!("digest {:?}", desc.digest), "unsupported"));
        }
        let p = self.root.join("blobs").join(alg).join(hex);
        let f = std::fs::File::open(&p).map_err(io_err("open blob", &p))?;
        Ok(Box::new(f))
    }
}

/// Blobs named by digest → file (docker archives).
#[derive(Default)]
struct MapSource {
    files: HashMap<String, PathBuf>,
}

impl BlobSource for MapSource {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let p = self
            .files
            .get(&desc.digest)
            .ok_or_else(|| ImageError::NotFound(desc.digest.clone()))?;
        let f = std::fs::File::open(p).map_err(io_err("open", p))?;
        Ok(Box::new(f))
    }
}

/// Blobs already in the store (a rootfs import writes its layer first).
struct StoreSource<'a>(&'a ImageStore);

impl BlobSource for StoreSource<'_> {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let p = self.0.blob_path(&desc.digest)?;
        let f = std::fs::File::open(&p).map_err(io_err("open blob", &p))?;
        Ok(Box::new(f))
    }
}

/// Joins an archive-relative path, refusing anything that leaves `dir`.
fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(invalid(
            format!("archive path {rel:?}"),
            "leaves the archive",
        ));
    }
    Ok(dir.join(p))
}

/// Extracted archive dir, removed on drop.
struct ImportTmp(PathBuf);
impl Drop for ImportTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a deterministic tar (sorted names) of `dir`'s contents: files, dirs, symlinks,
/// hard links, devices and FIFOs with ownership, modes and mtimes.
pub fn write_tar_of_dir<W: std::io::Write>(dir: &Path, out: W) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    walk(&mut b, dir, Path::new(""), &mut links)?;
    b.into_inner()?.flush()
}

fn walk<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let full = root.join(&r);
        let m = std::fs::symlink_metadata(&full)?;
        let ft = m.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(m.mode() & 0o7777);
        h.set_uid(m.uid() as u64);
        h.set_gid(m.gid() as u64);
        h.set_mtime(m.mtime().max(0) as u64);
        h.set_size(0);
        if !ft.is_dir() && m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                b.append_link(&mut h, &r, first)?;
                continue;
            }
            links.insert((m.dev(), m.ino()), r.clone());
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, &r, std::io::empty())?;
            walk(b, root, &r, links)?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = std::fs::read_link(&full)?;
            b.append_link(&mut h, &r, target)?;
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            let f = std::fs::File::open(&full)?;
            b.append_data(&mut h, &r, f)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            let rdev = m.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            b.append_data(&mut h, &r, std::io::empty())?;
        }
        // Sockets are not archived (as tar and docker do).
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_pick_prefers_linux_amd64() {
        let idx: Index = serde_json::from_value(json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": MT_OCI_MANIFEST, "digest": format!("sha256:{}", "1".repeat(64)), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64"}},
                {"mediaType": MT_OCI_MANIFEST, "digest": format!("sha256:{}", "2".repeat(64)), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
            ]
        }))
        .unwrap();
        assert!(pick_platform(&idx).unwrap().digest.contains("2222"));
        let idx: Index = serde_json::from_value(json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": MT_OCI_MANIFEST, "digest": format!("sha256:{}", "1".repeat(64)), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64"}},
            ]
        }))
        .unwrap();
        let err = pick_platform(&idx).unwrap_err().to_string();
        assert!(err.contains("linux/arm64"), "{err}");
    }
}
