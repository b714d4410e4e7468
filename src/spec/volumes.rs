//! Pod volumes on the host: emptyDir (disk or tmpfs), hostPath with kubelet's type checks,
//! configMap, secret, downwardAPI and projected contents, and each container's mounts
//! with readOnly and subPath (resolved inside the volume). [`cleanup_volumes`] undoes it all.
use super::env::{
    config_map_value, field_ref_value, resource_field_value, secret_value, EnvContext,
};
use super::fsutil;
use crate::manifest::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Volume};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a volume could not be set up, in kubelet's words.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("MountVolume.SetUp failed for volume {volume:?} : {reason}")]
    SetUp { volume: String, reason: String },
    #[error(
        "failed to prepare subPath for volumeMount {mount:?} of container {container:?}: {reason}"
    )]
    SubPath {
        container: String,
        mount: String,
        reason: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("volume {volume:?} is not prepared")]
    Unknown { volume: String },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { op, path, source }
}

/// A volume ready on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedVolume {
    pub name: String,
    pub host_path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are always mounted read-only.
    pub read_only: bool,
}

/// One bind mount of a container: host `source` at `destination` in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    pub destination: String,
    pub source: PathBuf,
    pub read_only: bool,
}

/// The pod's volumes, prepared under `pod_dir`.
#[derive(Debug, Clone)]
pub struct PreparedVolumes {
    pod_dir: PathBuf,
    volumes: BTreeMap<String, PreparedVolume>,
}

fn setup(volume: &str, reason: impl Into<String>) -> VolumeError {
    VolumeError::SetUp {
        volume: volume.to_string(),
        reason: reason.into(),
    }
}

/// What one prepare_volumes call made, so that a failure undoes exactly that.
#[derive(Default)]
struct Undo {
    mounts: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Undo {
    /// Creates `dir` (and parents), remembering the topmost directory it had to make.
    fn create_dir(&mut self, dir: &Path) -> Result<(), VolumeError> {
        let mut first_missing = None;
        let mut p = Some(dir);
        while let Some(d) = p {
            if d.exists() {
                break;
            }
            first_missing = Some(d.to_path_buf());
            p = d.parent();
        }
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        if let Some(d) = first_missing {
            self.dirs.push(d);
        }
        Ok(())
    }

    /// Mounts a tmpfs on `dir` unless one is already there (a second prepare of the same
    /// pod keeps the data of the first).
    fn mount_tmpfs(&mut self, dir: &Path, opts: &str) -> Result<(), VolumeError> {
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if mounts_below(&canonical).contains(&canonical) {
            return Ok(());
        }
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(opts),
        )
        .map_err(|e| io_err("mount tmpfs on", dir)(e.into()))?;
        self.mounts.push(dir.to_path_buf());
        Ok(())
    }

    fn undo(self) {
        for m in self.mounts.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        for d in self.dirs.iter().rev() {
            // Only directories this call created, and only once nothing is mounted below.
            if mounts_below(d).is_empty() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}

/// Materialises every volume of the pod under `pod_dir/volumes`. On failure what this
/// call made is undone (hostPath directories created for DirectoryOrCreate stay, as
/// with kubelet). Calling it again for the same pod (a restarted supervisor) keeps
/// existing emptyDir contents.
/// `disk`: where disk-backed emptyDirs live (kubelet's /var/lib/kubelet/pods/<uid>/volumes:
/// on disk, kept across a reboot); None puts them under `pod_dir` too.
pub fn prepare_volumes(
    ctx: &EnvContext<'_>,
    pod_dir: &Path,
    disk: Option<&Path>,
) -> Result<PreparedVolumes, VolumeError> {
    let mut out = PreparedVolumes {
        pod_dir: pod_dir.to_path_buf(),
        volumes: BTreeMap::new(),
    };
    let vols = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut undo = Undo::default();
    for v in &vols {
        match prepare_one(ctx, pod_dir, disk, v, &mut undo) {
            Ok(p) => {
                out.volumes.insert(v.name.clone(), p);
            }
            Err(e) => {
                undo.undo();
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn volume_dir(pod_dir: &Path, plugin: &str, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(plugin).join(name)
}

fn fs_group(ctx: &EnvContext<'_>) -> Option<u32> {
    ctx.pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

fn prepare_one(
    ctx: &EnvContext<'_>,
    pod_dir: &Path,
    disk: Option<&Path>,
    v: &Volume,
    undo: &mut Undo,
) -> Result<PreparedVolume, VolumeError> {
    let name = v.name.as_str();
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        check_host_path(&path, h.type_.as_deref().unwrap_or("")).map_err(|r| setup(name, r))?;
        return Ok(PreparedVolume {
            name: name.into(),
            host_path: path,
            read_only: false,
        });
    }
    if let Some(c) = &v.persistent_volume_claim {
        // `disk` is <data-dir>/pods/<uid>/volumes: the claims are in that data dir.
        let data_dir = disk.and_then(|d| d.parent()?.parent()?.parent());
        let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
        let path = data_dir
            .ok_or_else(|| "no data dir for claims".to_string())
            .and_then(|d| crate::objects::storage::claim_path(d, ns, &c.claim_name))
            .map_err(|r| setup(name, r))?;
        check_host_path(&path, "DirectoryOrCreate").map_err(|r| setup(name, r))?;
        return Ok(PreparedVolume {
            name: name.into(),
            host_path: path,
            read_only: c.read_only == Some(true),
        });
    }
    if let Some(ed) = &v.empty_dir {
        let on_disk = ed.medium.as_deref() != Some("Memory");
        let base = disk.filter(|_| on_disk).map(Path::to_path_buf);
        let dir = match base {
            Some(b) => b.join("kubernetes.io~empty-dir").join(name),
            None => volume_dir(pod_dir, "kubernetes.io~empty-dir", name),
        };
        return prepare_empty_dir(ctx, &dir, name, ed, undo);
    }
    let mut files: Vec<(String, Vec<u8>, i32)> = Vec::new();
    let (plugin, missing) = match volume_files(ctx, v, &mut files) {
        Ok(p) => (p, None),
        // As kubelet: the volume waits for its ConfigMap/Secret; the containers that
        // mount it wait too (their start says why) until it is applied.
        Err(e) if missing_object(&e) => (plugin_of(v), Some(e.to_string())),
        Err(e) => return Err(e),
    };
    let dir = volume_dir(pod_dir, plugin, name);
    if plugin == "kubernetes.io~secret" || plugin == "kubernetes.io~projected" {
        // As kubelet: secret material lives in memory, never on disk.
        undo.create_dir(&dir)?;
        let mut opts = "mode=0755".to_string();
        if let Some(bytes) = memory_volume_size(ctx, None).map_err(|e| setup(name, e))? {
            opts.push_str(&format!(",size={bytes}"));
        }
        undo.mount_tmpfs(&dir, &opts)?;
    } else {
        undo.create_dir(&dir)?;
    }
    match missing {
        Some(why) => {
            let marker = dir.join(MISSING);
            std::fs::write(&marker, why).map_err(io_err("write", &marker))?;
        }
        None => {
            atomic_writer::write(&dir, &files)?;
            let _ = std::fs::remove_file(dir.join(MISSING));
        }
    }
    if let Some(g) = fs_group(ctx) {
        set_ownership(&dir, g, true)?;
    }
    Ok(PreparedVolume {
        name: name.into(),
        host_path: dir,
        read_only: true,
    })
}

/// In a volume whose ConfigMap or Secret is missing: why (the volume is not ready).
const MISSING: &str = "..missing";

/// A configMap/secret volume whose object is not there (yet).
fn missing_object(e: &VolumeError) -> bool {
    matches!(e, VolumeError::SetUp { reason, .. }
        if (reason.starts_with("configmap ") || reason.starts_with("secret "))
            && reason.ends_with(" not found"))
}

/// The kubelet plugin directory of a configMap, secret or projected volume.
fn plugin_of(v: &Volume) -> &'static str {
    if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else {
        "kubernetes.io~projected"
    }
}

/// An emptyDir at `dir`: world-writable (a tmpfs for medium Memory).
fn prepare_empty_dir(
    ctx: &EnvContext<'_>,
    dir: &Path,
    name: &str,
    ed: &k8s_openapi::api::core::v1::EmptyDirVolumeSource,
    undo: &mut Undo,
) -> Result<PreparedVolume, VolumeError> {
    let dir = dir.to_path_buf();
    undo.create_dir(&dir)?;
    // World-writable as kubelet makes it, so any container user can write.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .map_err(io_err("chmod", &dir))?;
    if ed.medium.as_deref() == Some("Memory") {
        let mut opts = "mode=0777".to_string();
        if let Some(bytes) = memory_volume_size(ctx, ed.size_limit.as_ref().map(|q| q.0.as_str()))
            .map_err(|e| setup(name, e))?
        {
            opts.push_str(&format!(",size={bytes}"));
        }
        undo.mount_tmpfs(&dir, &opts)?;
        // The tmpfs root takes its mode from the options; keep it world-writable.
    }
    if let Some(g) = fs_group(ctx) {
        set_ownership(&dir, g, false)?;
    }
    Ok(PreparedVolume {
        name: name.into(),
        host_path: dir,
        read_only: false,
    })
}

/// The files of a configMap, secret, downwardAPI or projected volume, into `files`;
/// returns the volume's kubelet plugin name.
fn volume_files(
    ctx: &EnvContext<'_>,
    v: &Volume,
    files: &mut Vec<(String, Vec<u8>, i32)>,
) -> Result<&'static str, VolumeError> {
    let name = v.name.as_str();
    let plugin;
    if let Some(c) = &v.config_map {
        plugin = "kubernetes.io~configmap";
        let mode = c.default_mode.unwrap_or(0o644);
        add_config_map(
            ctx,
            name,
            &c.name,
            c.items.as_deref(),
            c.optional == Some(true),
            mode,
            files,
        )?;
    } else if let Some(s) = &v.secret {
        plugin = "kubernetes.io~secret";
        let mode = s.default_mode.unwrap_or(0o644);
        let sname = s.secret_name.clone().unwrap_or_default();
        add_secret(
            ctx,
            name,
            &sname,
            s.items.as_deref(),
            s.optional == Some(true),
            mode,
            files,
        )?;
    } else if let Some(d) = &v.downward_api {
        plugin = "kubernetes.io~downward-api";
        let mode = d.default_mode.unwrap_or(0o644);
        add_downward(
            ctx,
            name,
            d.items.as_deref().unwrap_or_default(),
            mode,
            files,
        )?;
    } else if let Some(p) = &v.projected {
        plugin = "kubernetes.io~projected";
        let mode = p.default_mode.unwrap_or(0o644);
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                add_config_map(
                    ctx,
                    name,
                    &c.name,
                    c.items.as_deref(),
                    c.optional == Some(true),
                    mode,
                    files,
                )?;
            }
            if let Some(s) = &src.secret {
                add_secret(
                    ctx,
                    name,
                    &s.name,
                    s.items.as_deref(),
                    s.optional == Some(true),
                    mode,
                    files,
                )?;
            }
            if let Some(d) = &src.downward_api {
                add_downward(
                    ctx,
                    name,
                    d.items.as_deref().unwrap_or_default(),
                    mode,
                    files,
                )?;
            }
        }
    } else {
        return Err(setup(name, "volume type is not supported by podrun"));
    }
    Ok(plugin)
}

/// kubelet's size for a memory emptyDir: the node's allocatable memory, or the pod's
/// memory limit if smaller, or the volume's sizeLimit if smaller still.
fn memory_volume_size(
    ctx: &EnvContext<'_>,
    size_limit: Option<&str>,
) -> Result<Option<i64>, String> {
    let mut size =
        (ctx.node_allocatable.memory_bytes > 0).then_some(ctx.node_allocatable.memory_bytes);
    if let Some(pod_limit) = super::resources::pod_resources(ctx.pod).memory_limit {
        if pod_limit > 0 && size.is_none_or(|s| pod_limit <= s) {
            size = Some(pod_limit);
        }
    }
    if let Some(sl) = size_limit {
        let bytes = ParsedQuantity::parse(sl)
            .and_then(|q| q.value())
            .map_err(|e| format!("sizeLimit {sl:?}: {e}"))?;
        let bytes = i64::try_from(bytes).map_err(|_| format!("sizeLimit {sl:?} is too large"))?;
        if bytes > 0 && size.is_none_or(|s| bytes <= s) {
            size = Some(bytes);
        }
    }
    Ok(size)
}

/// kubelet's hostPath type checks (and containerd's mkdir for an untyped missing path).
fn check_host_path(path: &Path, typ: &str) -> Result<(), String> {
    let p = path.display();
    let meta = std::fs::metadata(path).ok();
    let ft = meta.as_ref().map(|m| m.file_type());
    match typ {
        "" => {
            if meta.is_none() {
                std::fs::create_dir_all(path).map_err(|e| format!("mkdir {p}: {e}"))?;
            }
        }
        "DirectoryOrCreate" | "Directory" => {
            if meta.is_none() && typ == "DirectoryOrCreate" {
                std::fs::create_dir_all(path).map_err(|e| format!("mkdir {p}: {e}"))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("chmod {p}: {e}"))?;
            } else if !ft.is_some_and(|t| t.is_dir()) {
                return Err(format!(
                    "hostPath type check failed: {p} is not a directory"
                ));
            }
        }
        "FileOrCreate" | "File" => {
            if meta.is_none() && typ == "FileOrCreate" {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("open {p}: {e}"))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| format!("chmod {p}: {e}"))?;
            } else if !ft.is_some_and(|t| t.is_file()) {
                return Err(format!("hostPath type check failed: {p} is not a file"));
            }
        }
        "Socket" => {
            if !ft.is_some_and(|t| t.is_socket()) {
                return Err(format!(
                    "hostPath type check failed: {p} is not a socket file"
                ));
            }
        }
        "CharDevice" => {
            if !ft.is_some_and(|t| t.is_char_device()) {
                return Err(format!(
                    "hostPath type check failed: {p} is not a character device"
                ));
            }
        }
        "BlockDevice" => {
            if !ft.is_some_and(|t| t.is_block_device()) {
                return Err(format!(
                    "hostPath type check failed: {p} is not a block device"
                ));
            }
        }
        other => return Err(format!("{other} is an invalid volume type")),
    }
    Ok(())
}

type Files = Vec<(String, Vec<u8>, i32)>;

fn add_items(
    volume: &str,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
    what: &str,
    files: &mut Files,
) -> Result<(), VolumeError> {
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => files.push((it.path.clone(), v.clone(), it.mode.unwrap_or(mode))),
                    None if optional => {}
                    None => {
                        return Err(setup(
                            volume,
                            format!("{what} references non-existent config key: {}", it.key),
                        ))
                    }
                }
            }
        }
        _ => {
            for (k, v) in data {
                files.push((k, v, mode));
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_config_map(
    ctx: &EnvContext<'_>,
    volume: &str,
    cm_name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
    files: &mut Files,
) -> Result<(), VolumeError> {
    let Some(cm) = ctx.config_map(cm_name) else {
        if optional {
            return Ok(());
        }
        return Err(setup(volume, format!("configmap {cm_name:?} not found")));
    };
    let mut data = BTreeMap::new();
    for k in cm
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(cm.binary_data.iter().flat_map(|d| d.keys()))
    {
        if let Some(v) = config_map_value(cm, k) {
            data.insert(k.clone(), v);
        }
    }
    add_items(volume, data, items, optional, mode, "configmap", files)
}

fn add_secret(
    ctx: &EnvContext<'_>,
    volume: &str,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
    files: &mut Files,
) -> Result<(), VolumeError> {
    let Some(s) = ctx.secret(name) else {
        if optional {
            return Ok(());
        }
        return Err(setup(volume, format!("secret {name:?} not found")));
    };
    let mut data = BTreeMap::new();
    for k in s.data.iter().flat_map(|d| d.keys()) {
        if let Some(v) = secret_value(s, k) {
            data.insert(k.clone(), v);
        }
    }
    add_items(volume, data, items, optional, mode, "secret", files)
}

fn add_downward(
    ctx: &EnvContext<'_>,
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    mode: i32,
    files: &mut Files,
) -> Result<(), VolumeError> {
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            field_ref_value(ctx, &f.field_path).map_err(|e| setup(volume, e.to_string()))?
        } else if let Some(r) = &it.resource_field_ref {
            let name = r.container_name.clone().unwrap_or_default();
            let c = ctx
                .pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    setup(
                        volume,
                        format!("resourceFieldRef: no container named {name:?}"),
                    )
                })?;
            resource_field_value(ctx, c, r).map_err(|e| setup(volume, e.to_string()))?
        } else {
            String::new()
        };
        files.push((it.path.clone(), value.into_bytes(), it.mode.unwrap_or(mode)));
    }
    Ok(())
}

/// kubelet's SetVolumeOwnership: group `gid` everywhere, group read(-write), setgid dirs.
fn set_ownership(dir: &Path, gid: u32, read_only: bool) -> Result<(), VolumeError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&p, None, Some(gid)).map_err(io_err("chown", &p))?;
        let mut mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            mode |= if read_only { 0o2050 } else { 0o2070 };
            for e in std::fs::read_dir(&p).map_err(io_err("read", &p))? {
                stack.push(e.map_err(io_err("read", &p))?.path());
            }
        } else {
            mode |= if read_only { 0o040 } else { 0o060 };
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &p))?;
    }
    Ok(())
}

impl PreparedVolumes {
    pub fn get(&self, name: &str) -> Option<&PreparedVolume> {
        self.volumes.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PreparedVolume> {
        self.volumes.values()
    }

    /// The bind mounts of `container`. A subPath is resolved inside its volume (links
    /// cannot leave it), created as a directory when missing as kubelet does, and
    /// bind-mounted at `pod_dir/volume-subpaths/...` so the runtime mounts a path that
    /// no later change inside the volume can redirect.
    pub fn mounts_for(&self, container: &Container) -> Result<Vec<ResolvedMount>, VolumeError> {
        let mut out = Vec::new();
        for (i, m) in container.volume_mounts.iter().flatten().enumerate() {
            let vol = self
                .volumes
                .get(&m.name)
                .ok_or_else(|| VolumeError::Unknown {
                    volume: m.name.clone(),
                })?;
            let ours = vol.host_path.starts_with(&self.pod_dir);
            if let Some(why) = ours
                .then(|| std::fs::read_to_string(vol.host_path.join(MISSING)).ok())
                .flatten()
            {
                return Err(setup(&m.name, why.rsplit(" : ").next().unwrap_or(&why)));
            }
            let read_only = vol.read_only || m.read_only == Some(true);
            let sub = m.sub_path.as_deref().unwrap_or("");
            let source = if sub.is_empty() {
                vol.host_path.clone()
            } else {
                let sp_err = |reason: String| VolumeError::SubPath {
                    container: container.name.clone(),
                    mount: m.name.clone(),
                    reason,
                };
                let root = fsutil::open_root(&vol.host_path)
                    .map_err(|e| sp_err(format!("open volume {}: {e}", vol.host_path.display())))?;
                let target = fsutil::open_or_mkdir_in_root(&root, sub, 0o755)
                    .map_err(|e| sp_err(format!("resolve subPath {sub:?}: {e}")))?;
                let resolved = fsutil::fd_path(&target);
                let is_dir = std::fs::metadata(&resolved)
                    .map(|m| m.is_dir())
                    .unwrap_or(true);
                let dest = self
                    .pod_dir
                    .join("volume-subpaths")
                    .join(&m.name)
                    .join(&container.name)
                    .join(i.to_string());
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
                }
                // A previous run of this container left its bind: replace it.
                let _ = nix::mount::umount2(&dest, nix::mount::MntFlags::MNT_DETACH);
                if is_dir {
                    std::fs::create_dir_all(&dest).map_err(io_err("create", &dest))?;
                } else if !dest.exists() {
                    std::fs::write(&dest, b"").map_err(io_err("create", &dest))?;
                }
                nix::mount::mount(
                    Some(&resolved),
                    &dest,
                    None::<&str>,
                    nix::mount::MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| sp_err(format!("bind {}: {e}", dest.display())))?;
                dest
            };
            out.push(ResolvedMount {
                destination: m.mount_path.clone(),
                source,
                read_only,
            });
        }
        Ok(out)
    }

    /// Unmounts and removes everything [`prepare_volumes`] and [`Self::mounts_for`] made.
    pub fn cleanup(&self) -> Result<(), VolumeError> {
        cleanup_volumes(&self.pod_dir)
    }
}

/// Mount points at or below `dir`, deepest first (from /proc/self/mountinfo).
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

fn unescape_mountinfo(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Undoes the volumes of the pod whose directory is `pod_dir`: unmounts tmpfs emptyDirs
/// and subPath binds, then removes `volumes/` and `volume-subpaths/`. hostPath contents
/// are never touched. Safe to call twice and from another process than the one that
/// prepared them.
pub fn cleanup_volumes(pod_dir: &Path) -> Result<(), VolumeError> {
    for sub in ["volume-subpaths", "volumes"] {
        let dir = pod_dir.join(sub);
        // mountinfo shows canonical paths: resolve links in pod_dir the same way.
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        for m in mounts_below(&dir) {
            nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| io_err("unmount", &m)(e.into()))?;
        }
        // Refuse to descend through a mount we failed to see (never delete host data).
        if !mounts_below(&dir).is_empty() {
            return Err(VolumeError::Io {
                op: "unmount",
                path: dir,
                source: std::io::Error::other("mounts remain"),
            });
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &dir)(e)),
        }
    }
    Ok(())
}

/// Writes the configMap, secret, downwardAPI and projected volumes of the pod again from
/// `ctx` (a ConfigMap or Secret it uses changed), each changed one swapped atomically as
/// kubelet's sync does; returns the names of the volumes that changed. A volume whose
/// object is gone keeps its last content, as with kubelet.
pub fn refresh_api_volumes(
    ctx: &EnvContext<'_>,
    pod_dir: &Path,
) -> Result<Vec<String>, VolumeError> {
    let vols = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut changed = Vec::new();
    for v in vols
        .iter()
        .filter(|v| v.host_path.is_none() && v.empty_dir.is_none())
    {
        let mut files = Vec::new();
        let Ok(plugin) = volume_files(ctx, v, &mut files) else {
            continue;
        };
        let dir = volume_dir(pod_dir, plugin, &v.name);
        if !dir.is_dir() {
            continue;
        }
        let was_missing = std::fs::remove_file(dir.join(MISSING)).is_ok();
        if atomic_writer::write(&dir, &files)? || was_missing {
            if let Some(g) = fs_group(ctx) {
                set_ownership(&dir, g, true)?;
            }
            changed.push(v.name.clone());
        }
    }
    Ok(changed)
}

#[path = "atomic_writer.rs"]
mod atomic_writer;

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
