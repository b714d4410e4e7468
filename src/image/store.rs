//! The content-addressed image store: an OCI image layout under `<data-dir>/images`
//! (blobs by digest, `index.json` tagging manifests with their full reference), unpacked
//! layers under `<data-dir>/layers/<diff-id>`, and the records of which container uses
//! which image. Every blob is verified on the way in and becomes visible only by rename.
use super::error::{invalid, io_err, json_err, ImageError, Result};
use super::progress::Progress;
use super::reference::{validate_digest, Reference};
use super::unpack;
use crate::util::FileLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation for the full image name in an exported layout.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Largest manifest or config accepted (they are small JSON documents).
pub const MAX_JSON_BLOB: u64 = 8 << 20;

/// An OCI content descriptor (also fits Docker's distribution descriptors).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One layer of an image: its blob and the directory it unpacks to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

/// An image present in the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// The full normalised reference it was found under (tag or digest form).
    pub reference: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    /// The image ID, as Docker shows it: the config's digest.
    pub config_digest: String,
    /// Layers bottom first.
    pub layers: Vec<Layer>,
    /// Sum of the blob sizes (config and compressed layers).
    pub size: u64,
    /// The config's `created` timestamp (RFC 3339) when it has one.
    pub created: Option<String>,
}

impl Image {
    /// The short image ID: 12 hex digits of the config digest.
    pub fn short_id(&self) -> &str {
        let hex = self
            .config_digest
            .strip_prefix("sha256:")
            .unwrap_or(&self.config_digest);
        &hex[..hex.len().min(12)]
    }
}

/// Where a blob comes from during ingest (a registry, an OCI layout, a docker archive).
pub(crate) trait BlobSource: Sync {
    /// Opens the blob; the store verifies digest and size while reading.
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;
}

/// The local image store rooted at a data dir.
#[derive(Debug, Clone)]
pub struct ImageStore {
    pub(crate) data_dir: PathBuf,
    pub(crate) images: PathBuf,
    pub(crate) layers: PathBuf,
    pub(crate) containers: PathBuf,
    pub(crate) locks: PathBuf,
    pub(crate) tmp: PathBuf,
}

/// A container's record of the image its rootfs was made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageRecord {
    pub image: String,
    pub image_id: String,
    pub reference: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<ImageStore> {
        let s = ImageStore {
            data_dir: data_dir.to_path_buf(),
            images: data_dir.join("images"),
            layers: data_dir.join("layers"),
            containers: data_dir.join("containers"),
            locks: data_dir.join("locks"),
            tmp: data_dir.join("tmp"),
        };
        let blobs = s.images.join("blobs").join("sha256");
        // locks/ is made last, so a concurrent opener that sees it finds the rest too.
        if !blobs.is_dir() || !s.locks.is_dir() {
            for d in [&blobs, &s.layers, &s.containers, &s.tmp, &s.locks] {
                std::fs::create_dir_all(d).map_err(io_err("create directory", d))?;
            }
        }
        let layout = s.images.join("oci-layout");
        if !layout.exists() {
            crate::util::write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(io_err("write", &layout))?;
        }
        Ok(s)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Path of a blob in the layout (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        validate_digest(digest).map_err(|r| invalid(format!("digest {digest:?}"), r))?;
        Ok(self
            .images
            .join("blobs")
            .join("sha256")
            .join(&digest["sha256:".len()..]))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// Directory a layer with this diff-id unpacks to.
    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf> {
        validate_digest(diff_id).map_err(|r| invalid(format!("diff-id {diff_id:?}"), r))?;
        Ok(self.layers.join(&diff_id["sha256:".len()..]))
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        std::fs::read(&p).map_err(io_err("read blob", p))
    }

    pub(crate) fn lock(&self, name: &str) -> Result<FileLock> {
        let p = self.locks.join(format!("{name}.lock"));
        FileLock::exclusive(&p).map_err(io_err("lock", p))
    }

    /// Ingests hold this lock shared, garbage collection exclusively, so nothing an ingest
    /// stored or found present is collected before the ingest has tagged it.
    pub(crate) fn gc_lock(&self, exclusive: bool) -> Result<nix::fcntl::Flock<std::fs::File>> {
        let p = self.locks.join("gc.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .map_err(io_err("open", &p))?;
        let how = if exclusive {
            nix::fcntl::FlockArg::LockExclusive
        } else {
            nix::fcntl::FlockArg::LockShared
        };
        nix::fcntl::Flock::lock(f, how).map_err(|(_, e)| io_err("lock", &p)(e.into()))
    }

    /// Stores `data` as a blob after checking it against `expected` (when given).
    pub fn write_blob(&self, data: &[u8], expected: Option<&str>, what: &str) -> Result<String> {
        let digest = sha256_digest(data);
        if let Some(e) = expected {
            if e != digest {
                return Err(ImageError::DigestMismatch {
                    what: what.to_string(),
                    expected: e.to_string(),
                    actual: digest,
                });
            }
        }
        if !self.has_blob(&digest) {
            let mut w = self.blob_writer()?;
            w.write_all(data).map_err(io_err("write", w.path.clone()))?;
            w.commit(&digest, Some(data.len() as u64), what)?;
        }
        Ok(digest)
    }

    pub(crate) fn blob_writer(&self) -> Result<BlobWriter> {
        let path = self.tmp.join(temp_name("blob"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        Ok(BlobWriter {
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            path,
            final_dir: self.images.join("blobs").join("sha256"),
            hasher: Sha256::new(),
            count: 0,
        })
    }

    /// Removes temp files and half-unpacked layers left by processes that died.
    pub fn clean_stale(&self) {
        for dir in [&self.tmp, &self.layers] {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = stale_pid(&name) else {
                    continue;
                };
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = super::fsutil::remove_any(&e.path());
                }
            }
        }
    }

    pub fn read_index(&self) -> Result<Index> {
        let p = self.images.join("index.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(json_err(p.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(MT_OCI_INDEX.to_string()),
                ..Default::default()
            }),
            Err(e) => Err(io_err("read", p)(e)),
        }
    }

    fn write_index(&self, idx: &Index) -> Result<()> {
        let p = self.images.join("index.json");
        let data = serde_json::to_vec_pretty(idx).map_err(json_err("index.json"))?;
        crate::util::write_atomic(&p, &data).map_err(io_err("write", p))
    }

    /// Points `reference` (a full normalised reference) at a stored manifest.
    pub fn tag(&self, reference: &str, manifest: &Descriptor) -> Result<()> {
        let _l = self.lock("index")?;
        let mut idx = self.read_index()?;
        idx.manifests.retain(|d| ref_name(d) != Some(reference));
        let mut d = manifest.clone();
        d.platform = None;
        d.urls = None;
        let mut ann = BTreeMap::new();
        ann.insert(ANNOTATION_REF_NAME.to_string(), reference.to_string());
        d.annotations = Some(ann);
        idx.manifests.push(d);
        self.write_index(&idx)
    }

    /// Finds an image by reference (`nginx`, `nginx:1.17.1`, `x@sha256:…`) or by image ID
    /// (full or prefix of at least 4 hex digits). Cheap: reads index.json, the manifest and
    /// the config's rootfs section.
    pub fn resolve(&self, input: &str) -> Result<Option<Image>> {
        let idx = self.read_index()?;
        if let Ok(r) = Reference::parse(input) {
            let full = r.to_string();
            let hit = idx.manifests.iter().find(|d| {
                let name = ref_name(d).unwrap_or("");
                match &r.digest {
                    Some(dg) => d.digest == *dg && name.starts_with(&r.name()),
                    None => name == full,
                }
            });
            if let Some(d) = hit {
                let reference = ref_name(d).unwrap_or(&full).to_string();
                return self.load_image(d, &reference).map(Some);
            }
            // A digest reference whose manifest is present under another tag.
            if let Some(dg) = &r.digest {
                if let Some(d) = idx.manifests.iter().find(|d| d.digest == *dg) {
                    return self.load_image(d, &full).map(Some);
                }
            }
        }
        let id = input.strip_prefix("sha256:").unwrap_or(input);
        if id.len() >= 4 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            for d in &idx.manifests {
                let img = self.load_image(d, ref_name(d).unwrap_or(""))?;
                if img.config_digest["sha256:".len()..].starts_with(id) {
                    return Ok(Some(img));
                }
            }
        }
        Ok(None)
    }

    /// All tagged images, in index order.
    pub fn list(&self) -> Result<Vec<Image>> {
        let idx = self.read_index()?;
        idx.manifests
            .iter()
            .map(|d| self.load_image(d, ref_name(d).unwrap_or("<none>")))
            .collect()
    }

    pub(crate) fn read_manifest(&self, digest: &str) -> Result<Manifest> {
        let b = self.read_blob(digest)?;
        serde_json::from_slice(&b).map_err(json_err(format!("manifest {digest}")))
    }

    fn load_image(&self, d: &Descriptor, reference: &str) -> Result<Image> {
        let m = self.read_manifest(&d.digest)?;
        let cfg = self.read_blob(&m.config.digest)?;
        let (diff_ids, created) = parse_config_rootfs(&cfg, &m.config.digest)?;
        if diff_ids.len() != m.layers.len() {
            return Err(invalid(
                format!("image {reference}"),
                format!(
                    "config lists {} diff-ids for {} layers",
                    diff_ids.len(),
                    m.layers.len()
                ),
            ));
        }
        let layers: Vec<Layer> = m
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(l, diff_id)| Layer {
                digest: l.digest.clone(),
                diff_id,
                media_type: l.media_type.clone(),
                size: l.size,
            })
            .collect();
        Ok(Image {
            reference: reference.to_string(),
            manifest_digest: d.digest.clone(),
            manifest_media_type: m.media_type.clone().unwrap_or_else(|| d.media_type.clone()),
            config_digest: m.config.digest.clone(),
            size: m.config.size + layers.iter().map(|l| l.size).sum::<u64>(),
            layers,
            created,
        })
    }

    /// The image's configuration (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts,
    /// StopSignal…).
    pub fn config(&self, image: &Image) -> Result<oci_spec::image::ImageConfiguration> {
        let b = self.read_blob(&image.config_digest)?;
        serde_json::from_slice(&b)
            .map_err(json_err(format!("image config {}", image.config_digest)))
    }

    /// The raw config JSON (for `image inspect`).
    pub fn config_json(&self, image: &Image) -> Result<serde_json::Value> {
        let b = self.read_blob(&image.config_digest)?;
        serde_json::from_slice(&b)
            .map_err(json_err(format!("image config {}", image.config_digest)))
    }

    /// Containers whose rootfs was prepared from the image with this manifest digest.
    pub fn users_of(&self, manifest_digest: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.containers) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("read directory", &self.containers)(e)),
        };
        for e in rd.flatten() {
            let p = e.path().join("image.json");
            let Ok(b) = std::fs::read(&p) else { continue };
            if let Ok(rec) = serde_json::from_slice::<UsageRecord>(&b) {
                if rec.image == manifest_digest {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a reference (`rmi`). Refused while a container uses the image; blobs and
    /// layers no other image needs are deleted. Returns the removed image.
    pub fn remove(&self, input: &str) -> Result<Image> {
        // gc before index: ingests take them in that order too.
        let _gc = self.gc_lock(true)?;
        let _l = self.lock("index")?;
        let img = self
            .resolve(input)?
            .ok_or_else(|| ImageError::NotFound(input.to_string()))?;
        if let Some(c) = self.users_of(&img.manifest_digest)?.into_iter().next() {
            return Err(ImageError::InUse {
                reference: input.to_string(),
                container: c,
                image_id: img.short_id().to_string(),
            });
        }
        let mut idx = self.read_index()?;
        let by_id = !Reference::parse(input).is_ok_and(|r| {
            idx.manifests.iter().any(|d| {
                ref_name(d) == Some(r.to_string().as_str()) || Some(&d.digest) == r.digest.as_ref()
            })
        });
        idx.manifests.retain(|d| {
            if by_id {
                d.digest != img.manifest_digest
            } else {
                ref_name(d) != Some(img.reference.as_str())
            }
        });
        self.write_index(&idx)?;
        self.garbage_collect(&idx)?;
        Ok(img)
    }

    /// Deletes the blobs and unpacked layers no image in the index refers to (`image
    /// prune`: those an interrupted removal or a re-tag left behind).
    pub fn collect_garbage(&self) -> Result<()> {
        let _gc = self.gc_lock(true)?;
        let _l = self.lock("index")?;
        let idx = self.read_index()?;
        self.garbage_collect(&idx)
    }

    /// Manifest digests of the images containers' rootfs were made from.
    pub fn images_of_containers(&self) -> Vec<(String, String)> {
        let Ok(rd) = std::fs::read_dir(&self.containers) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let b = std::fs::read(e.path().join("image.json")).ok()?;
                let rec = serde_json::from_slice::<UsageRecord>(&b).ok()?;
                Some((e.file_name().to_string_lossy().into_owned(), rec.image))
            })
            .collect()
    }

    /// The container ids with a directory under `containers/`.
    pub fn container_ids(&self) -> Vec<String> {
        std::fs::read_dir(&self.containers)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deletes blobs and unpacked layers no manifest in `idx` refers to.
    fn garbage_collect(&self, idx: &Index) -> Result<()> {
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers = std::collections::HashSet::new();
        for d in &idx.manifests {
            keep_blobs.insert(d.digest.clone());
            let Ok(m) = self.read_manifest(&d.digest) else {
                continue;
            };
            keep_blobs.insert(m.config.digest.clone());
            for l in &m.layers {
                keep_blobs.insert(l.digest.clone());
            }
            if let Ok(cfg) = self.read_blob(&m.config.digest) {
                if let Ok((ids, _)) = parse_config_rootfs(&cfg, &m.config.digest) {
                    keep_layers.extend(ids);
                }
            }
        }
        let blobs = self.images.join("blobs").join("sha256");
        for e in std::fs::read_dir(&blobs)
            .map_err(io_err("read directory", &blobs))?
            .flatten()
        {
            let d = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep_blobs.contains(&d) {
                std::fs::remove_file(e.path()).map_err(io_err("remove", e.path()))?;
            }
        }
        for e in std::fs::read_dir(&self.layers)
            .map_err(io_err("read directory", &self.layers))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || keep_layers.contains(&format!("sha256:{name}")) {
                continue;
            }
            // Rename first, so no half-deleted layer is ever visible under its name.
            let trash = self
                .layers
                .join(format!(".del-{}-{name}", std::process::id()));
            std::fs::rename(e.path(), &trash).map_err(io_err("rename", e.path()))?;
            std::fs::remove_dir_all(&trash).map_err(io_err("remove", &trash))?;
            // No ingest runs under the exclusive gc lock, so its layer lock is unused.
            let _ = std::fs::remove_file(self.locks.join(format!("layer-{name}.lock")));
        }
        Ok(())
    }

    /// Stores an image: config and layers fetched from `source` (each verified, each layer
    /// unpacked once per diff-id), then the manifest, then the tags in `names`.
    pub(crate) fn ingest(
        &self,
        source: &dyn BlobSource,
        manifest_bytes: &[u8],
        manifest_media_type: &str,
        names: &[String],
        progress: &Progress,
    ) -> Result<Image> {
        let manifest: Manifest = serde_json::from_slice(manifest_bytes)
            .map_err(json_err("image manifest".to_string()))?;
        let _gc = self.gc_lock(false)?;
        if manifest.schema_version != 2 {
            return Err(invalid(
                "image manifest",
                format!("schemaVersion {} is not supported", manifest.schema_version),
            ));
        }
        let cfg_bytes = if self.has_blob(&manifest.config.digest) {
            self.read_blob(&manifest.config.digest)?
        } else {
            let mut r = source.open(&manifest.config)?;
            let b = read_limited(&mut r, MAX_JSON_BLOB, "image config")?;
            self.write_blob(&b, Some(&manifest.config.digest), "image config")?;
            b
        };
        let (diff_ids, _) = parse_config_rootfs(&cfg_bytes, &manifest.config.digest)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(invalid(
                "image config",
                format!(
                    "{} diff-ids for {} layers",
                    diff_ids.len(),
                    manifest.layers.len()
                ),
            ));
        }
        let total: u64 = manifest.layers.iter().map(|l| l.size).sum();
        progress.start(
            names.first().map(String::as_str).unwrap_or("image"),
            manifest.layers.len(),
            total,
        );
        let jobs: Vec<(&Descriptor, &String)> = manifest.layers.iter().zip(&diff_ids).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..jobs.len().min(3))
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let Some((desc, diff_id)) = jobs.get(i) else {
                                return Ok(());
                            };
                            self.ingest_layer(source, desc, diff_id, progress)?;
                            progress.layer_done();
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(invalid("layer worker", "panicked while fetching a layer"))
                    })
                })
                .collect()
        });
        for r in results {
            r?;
        }
        progress.finish();
        let digest = self.write_blob(manifest_bytes, None, "image manifest")?;
        let desc = Descriptor {
            media_type: manifest_media_type.to_string(),
            digest: digest.clone(),
            size: manifest_bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        };
        for n in names {
            self.tag(n, &desc)?;
        }
        let reference = names.first().cloned().unwrap_or_default();
        self.load_image(&desc, &reference)
    }

    /// Fetches one layer blob and unpacks it, both verified, unless already present.
    fn ingest_layer(
        &self,
        source: &dyn BlobSource,
        desc: &Descriptor,
        diff_id: &str,
        progress: &Progress,
    ) -> Result<()> {
        let dir = self.layer_path(diff_id)?;
        if dir.is_dir() && self.has_blob(&desc.digest) {
            progress.bytes(desc.size);
            return Ok(());
        }
        let _l = self.lock(&format!("layer-{}", &diff_id["sha256:".len()..]))?;
        let have_layer = dir.is_dir();
        let have_blob = self.has_blob(&desc.digest);
        if have_layer && have_blob {
            progress.bytes(desc.size);
            return Ok(());
        }
        let what = format!("layer {}", desc.digest);
        let tmp_dir = TempDir(self.layers.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            unique()
        )));
        if have_blob {
            let p = self.blob_path(&desc.digest)?;
            let f = std::fs::File::open(&p).map_err(io_err("open", &p))?;
            let got = unpack::unpack_layer(f, &tmp_dir.0, &desc.digest)?;
            check_digest(&format!("diff-id of {what}"), diff_id, &got)?;
            progress.bytes(desc.size);
        } else {
            let src = source.open(desc)?;
            let mut w = self.blob_writer()?;
            let mut tee = TeeReader {
                inner: src,
                out: &mut w,
                progress,
            };
            if have_layer {
                io::copy(&mut tee, &mut io::sink()).map_err(|e| ImageError::Registry {
                    registry: "source".into(),
                    reason: format!("reading {what}: {e}"),
                })?;
            } else {
                // Two threads: this one fetches, hashes and stores the blob; the other
                // decompresses and unpacks what it is handed. Both run at once.
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(32);
                let (fetched, unpacked) = std::thread::scope(|s| {
                    let unpacker = s.spawn(|| {
                        unpack::unpack_layer(ChannelReader::new(rx), &tmp_dir.0, &desc.digest)
                    });
                    let fetched = pump(&mut tee, tx);
                    let unpacked = unpacker
                        .join()
                        .unwrap_or_else(|_| Err(invalid(&what, "unpacking thread panicked")));
                    (fetched, unpacked)
                });
                fetched.map_err(|e| ImageError::Registry {
                    registry: "source".into(),
                    reason: format!("reading {what}: {e}"),
                })?;
                // A corrupt stream fails to decompress before its digest is known: when
                // the bytes do not match the digest, that is the real error.
                let (actual, _) = w.current_digest();
                check_digest(&what, &desc.digest, &actual)?;
                let got = unpacked?;
                check_digest(&format!("diff-id of {what}"), diff_id, &got)?;
            }
            w.commit(&desc.digest, Some(desc.size), &what)?;
        }
        if !have_layer {
            std::fs::rename(&tmp_dir.0, &dir).map_err(io_err("rename", &dir))?;
        }
        Ok(())
    }
}

/// Reads `src` to its end, handing each chunk to `tx` while the receiver listens (it
/// stops early when the unpacker fails; the rest is still read so the digest is known).
fn pump(src: &mut impl Read, tx: std::sync::mpsc::SyncSender<Vec<u8>>) -> io::Result<()> {
    let mut tx = Some(tx);
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.truncate(n);
        if let Some(t) = &tx {
            if t.send(buf).is_err() {
                tx = None;
            }
        }
    }
}

/// The receiving end of `pump` as a reader; EOF when the sender is gone.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    fn new(rx: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A directory removed on drop unless renamed away.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Copies everything read from `inner` into the blob writer.
struct TeeReader<'a, R> {
    inner: R,
    out: &'a mut BlobWriter,
    progress: &'a Progress,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        self.progress.bytes(n as u64);
        Ok(n)
    }
}

/// A blob being written to a temp file; visible in the store only after `commit`
/// verified its digest. Dropped uncommitted, the temp file is removed.
pub(crate) struct BlobWriter {
    file: Option<io::BufWriter<std::fs::File>>,
    pub(crate) path: PathBuf,
    final_dir: PathBuf,
    hasher: Sha256,
    count: u64,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter {
    /// Digest and size of what was written so far.
    pub(crate) fn current_digest(&self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.clone().finalize())),
            self.count,
        )
    }

    pub(crate) fn commit(
        mut self,
        expected: &str,
        expected_size: Option<u64>,
        what: &str,
    ) -> Result<()> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if actual != expected {
            return Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
        if let Some(sz) = expected_size {
            if sz != self.count {
                return Err(ImageError::SizeMismatch {
                    what: what.to_string(),
                    expected: sz,
                    actual: self.count,
                });
            }
        }
        validate_digest(expected).map_err(|r| invalid(format!("digest {expected:?}"), r))?;
        if let Some(f) = self.file.take() {
            let f = f
                .into_inner()
                .map_err(|e| io_err("write", &self.path)(e.into_error()))?;
            f.sync_all().map_err(io_err("fsync", &self.path))?;
        }
        let dest = self.final_dir.join(&expected["sha256:".len()..]);
        std::fs::rename(&self.path, &dest).map_err(io_err("rename", &dest))?;
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub(crate) fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub(crate) fn check_digest(what: &str, expected: &str, actual: &str) -> Result<()> {
    if expected != actual {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Reads at most `limit` bytes (JSON documents are small; a huge one is an attack).
pub(crate) fn read_limited(r: &mut dyn Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| invalid(what, format!("read failed: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(invalid(what, format!("larger than {limit} bytes")));
    }
    Ok(buf)
}

/// rootfs.diff_ids and created from a config blob.
fn parse_config_rootfs(cfg: &[u8], digest: &str) -> Result<(Vec<String>, Option<String>)> {
    #[derive(Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Cfg {
        rootfs: RootFs,
        #[serde(default)]
        created: Option<String>,
    }
    let c: Cfg = serde_json::from_slice(cfg).map_err(json_err(format!("image config {digest}")))?;
    for d in &c.rootfs.diff_ids {
        validate_digest(d).map_err(|r| invalid(format!("diff-id {d:?} in config {digest}"), r))?;
    }
    Ok((c.rootfs.diff_ids, c.created))
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn unique() -> String {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{n}-{t}")
}

/// `<what>-<pid>-<unique>`: the pid lets `clean_stale` find leftovers of dead processes.
pub(crate) fn temp_name(what: &str) -> String {
    format!("{what}-{}-{}", std::process::id(), unique())
}

fn stale_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(".tmp-")
        .or_else(|| name.strip_prefix(".del-"))
        .or_else(|| name.strip_prefix("blob-"))
        .or_else(|| name.strip_prefix("import-"))?;
    rest.split('-').next()?.parse().ok()
}
