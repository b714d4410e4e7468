//! The static pod manifest directory (kubelet's staticPodPath): a scan of the files that
//! count, each with a content hash and its parsed manifest or parse error; a pure diff
//! between two scans; and an inotify watcher that says when to scan again.
//!
//! Which files count follows kubelet's pkg/kubelet/config/file.go: the directory's own
//! entries only (sub-directories are not recursed into), regular files (a symlink to one
//! counts: kubelet stats through it), names not starting with a dot (kubelet's
//! `[^.]*` glob: this also skips vim's `.x.swp` and emacs' `.#x` locks), whatever their
//! extension (kubelet reads `pod`, `pod.yaml`, `pod.json` alike). Beyond kubelet, names
//! ending in `~` (editors' backups, which would run a second copy of a pod) and emacs'
//! `#x#` autosaves, and vim's `4913` write-probe file, are skipped too.
use crate::manifest::{LoadOptions, Manifest};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether a directory entry's name is never a manifest (see the module doc).
pub fn ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name == "4913"
}

/// One manifest file as scanned.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub path: PathBuf,
    /// sha256 of the content, hex.
    pub hash: String,
    /// The parsed manifest, or the parse error (naming the file and the field).
    pub manifest: Result<Manifest, String>,
}

/// kubelet's annotation holding a static pod's uid, the hash of its source.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// kubelet's annotation naming where a pod came from (`file` for the manifest directory).
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

impl ManifestFile {
    /// The file's pods as kubelet makes static pods of them (pkg/kubelet/config/common.go
    /// applyDefaults): named `<name>-<node>`, bound to the node, a uid that is a hash of
    /// the node, the file and its content (so an unchanged file keeps its pods' uids across
    /// restarts and reboots, and an edited one gets new pods), that uid in the
    /// config.hash annotation, config.source `file`, and a toleration of every NoExecute
    /// taint so node problems do not evict them.
    pub fn static_pods(
        &self,
        node_name: &str,
    ) -> Result<Vec<k8s_openapi::api::core::v1::Pod>, String> {
        let m = self.manifest.as_ref().map_err(Clone::clone)?;
        let node = node_name.to_lowercase();
        let mut out = Vec::new();
        for pod in &m.pods {
            let mut p = pod.clone();
            let name = p.metadata.name.clone().unwrap_or_default();
            let mut h = Sha256::new();
            h.update(format!("host:{node_name}file:{}", self.path.display()));
            h.update(format!("content:{}pod:{name}", self.hash));
            // 32 hex digits, as kubelet's md5-based uid.
            let uid = hex::encode(&h.finalize()[..16]);
            p.metadata.uid = Some(uid.clone());
            p.metadata.name = Some(format!("{name}-{node}"));
            let ann = p.metadata.annotations.get_or_insert_with(Default::default);
            ann.insert(CONFIG_HASH_ANNOTATION.into(), uid);
            ann.insert(CONFIG_SOURCE_ANNOTATION.into(), "file".into());
            let spec = p.spec.get_or_insert_with(Default::default);
            spec.node_name = Some(node_name.to_string());
            let tolerate_no_execute = k8s_openapi::api::core::v1::Toleration {
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                ..Default::default()
            };
            let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
            if !tolerations.contains(&tolerate_no_execute) {
                tolerations.push(tolerate_no_execute);
            }
            out.push(p);
        }
        Ok(out)
    }
}

/// The files of the directory that count, by file name.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub files: BTreeMap<String, ManifestFile>,
    /// The directory does not exist (kubelet: "path does not exist, ignoring").
    pub missing: bool,
}

impl Scan {
    /// The files that did not parse, as (path, error).
    pub fn errors(&self) -> Vec<(&Path, &str)> {
        self.files
            .values()
            .filter_map(|f| {
                f.manifest
                    .as_ref()
                    .err()
                    .map(|e| (f.path.as_path(), e.as_str()))
            })
            .collect()
    }
}

/// The directory could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("unable to read config path {path:?}: {source}")]
pub struct ScanError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Reads every manifest of `dir`. A file that cannot be read or parsed is in the scan
/// with its error; only an unreadable directory fails the scan.
pub fn scan(dir: &Path) -> Result<Scan, ScanError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Scan {
                missing: true,
                ..Scan::default()
            })
        }
        Err(source) => {
            return Err(ScanError {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Scan::default();
    for entry in rd.flatten() {
        let Some(name) = entry.file_name().to_str().map(String::from) else {
            continue;
        };
        if ignored_name(&name) {
            continue;
        }
        let path = entry.path();
        // Through a symlink, as kubelet's os.Stat; directories and devices are skipped.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            _ => continue,
        }
        out.files.insert(name, read_file(&path));
    }
    Ok(out)
}

fn read_file(path: &Path) -> ManifestFile {
    let shown = path.display().to_string();
    let (hash, manifest) = match std::fs::read(path) {
        Err(e) => (String::new(), Err(format!("{shown}: {e}"))),
        Ok(bytes) => {
            let hash = hex::encode(Sha256::digest(&bytes));
            let parsed = match String::from_utf8(bytes) {
                Err(_) => Err(format!("{shown}: the file is not UTF-8 text")),
                Ok(text) => parse(&text, &shown),
            };
            (hash, parsed)
        }
    };
    ManifestFile {
        path: path.to_path_buf(),
        hash,
        manifest,
    }
}

fn parse(text: &str, source: &str) -> Result<Manifest, String> {
    let opts = LoadOptions {
        source: source.to_string(),
        namespace: None,
    };
    let m = crate::manifest::load(text, &opts).map_err(|e| e.to_string())?;
    if m.pods.is_empty() {
        return Err(format!("{source}: no Pod in the file"));
    }
    Ok(m)
}

/// What happened to one file between two scans.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Added(String),
    Changed(String),
    Removed(String),
}

/// The files added, changed (other content) and removed from `old` to `new`, by name.
pub fn diff(old: &Scan, new: &Scan) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, f) in &new.files {
        match old.files.get(name) {
            None => out.push(Change::Added(name.clone())),
            Some(o) if o.hash != f.hash || o.hash.is_empty() => {
                out.push(Change::Changed(name.clone()))
            }
            Some(_) => {}
        }
    }
    for name in old.files.keys() {
        if !new.files.contains_key(name) {
            out.push(Change::Removed(name.clone()));
        }
    }
    out.sort();
    out
}

/// Bursts of events (an editor's save is several) become one rescan: due once no event
/// came for `quiet`, or `max` after the first, whichever is sooner.
#[derive(Debug, Clone)]
pub struct Coalesce {
    quiet: Duration,
    max: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Coalesce {
    pub fn new(quiet: Duration, max: Duration) -> Coalesce {
        Coalesce {
            quiet,
            max,
            first: None,
            last: None,
        }
    }

    /// An event came at `now`.
    pub fn note(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    fn due_at(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + self.max))
    }

    /// Whether a rescan is due at `now`; true once per burst.
    pub fn take_due(&mut self, now: Instant) -> bool {
        match self.due_at() {
            Some(at) if at <= now => {
                self.first = None;
                self.last = None;
                true
            }
            _ => false,
        }
    }

    /// How long a poll may sleep before the burst is due (None: nothing pending).
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.due_at().map(|at| at.saturating_duration_since(now))
    }
}

/// How often the watcher retries when neither the directory nor its parent exists.
pub const REARM_PERIOD: Duration = Duration::from_secs(1);

const DIR_EVENTS: AddWatchFlags = AddWatchFlags::from_bits_truncate(
    AddWatchFlags::IN_CREATE.bits()
        | AddWatchFlags::IN_DELETE.bits()
        | AddWatchFlags::IN_CLOSE_WRITE.bits()
        | AddWatchFlags::IN_MODIFY.bits()
        | AddWatchFlags::IN_MOVED_FROM.bits()
        | AddWatchFlags::IN_MOVED_TO.bits()
        | AddWatchFlags::IN_ATTRIB.bits()
        | AddWatchFlags::IN_DELETE_SELF.bits()
        | AddWatchFlags::IN_MOVE_SELF.bits()
        | AddWatchFlags::IN_ONLYDIR.bits(),
);
const PARENT_EVENTS: AddWatchFlags = AddWatchFlags::from_bits_truncate(
    AddWatchFlags::IN_CREATE.bits()
        | AddWatchFlags::IN_MOVED_TO.bits()
        | AddWatchFlags::IN_MOVED_FROM.bits()
        | AddWatchFlags::IN_DELETE.bits()
        | AddWatchFlags::IN_ONLYDIR.bits(),
);

/// Watches the manifest directory with inotify, also when it does not exist yet or is
/// replaced (its parent is watched for its name). The fd is non-blocking: put it in a
/// poll loop, call [`DirWatcher::handle_events`] when readable and
/// [`DirWatcher::rescan_due`] after each wake-up, sleeping at most
/// [`DirWatcher::timeout`].
pub struct DirWatcher {
    inotify: Inotify,
    dir: PathBuf,
    name: std::ffi::OsString,
    dir_wd: Option<WatchDescriptor>,
    parent_wd: Option<WatchDescriptor>,
    coalesce: Coalesce,
}

impl AsFd for DirWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

impl DirWatcher {
    /// Watches `dir`; a first rescan is due after `quiet`.
    pub fn new(dir: &Path, quiet: Duration) -> std::io::Result<DirWatcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let mut w = DirWatcher {
            inotify,
            dir: dir.to_path_buf(),
            name: dir
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default(),
            dir_wd: None,
            parent_wd: None,
            coalesce: Coalesce::new(quiet, quiet * 10),
        };
        w.arm();
        w.coalesce.note(Instant::now());
        Ok(w)
    }

    /// Adds whichever watches are missing; quietly, as either path may not exist.
    fn arm(&mut self) {
        if self.parent_wd.is_none() {
            if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.parent_wd = self.inotify.add_watch(parent, PARENT_EVENTS).ok();
            }
        }
        if self.dir_wd.is_none() {
            self.dir_wd = self.inotify.add_watch(&self.dir, DIR_EVENTS).ok();
            if self.dir_wd.is_some() {
                // It may have appeared with no event seen (its parent was missing too).
                self.coalesce.note(Instant::now());
            }
        }
    }

    /// Whether the directory itself is being watched.
    pub fn watching(&self) -> bool {
        self.dir_wd.is_some()
    }

    /// Reads every pending event (none is fine); each relevant one schedules a rescan.
    pub fn handle_events(&mut self) -> std::io::Result<()> {
        let now = Instant::now();
        loop {
            let events = match self.inotify.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            };
            for ev in events {
                self.event(ev.wd, ev.mask, ev.name.as_deref(), now);
            }
        }
        self.arm();
        Ok(())
    }

    fn event(
        &mut self,
        wd: WatchDescriptor,
        mask: AddWatchFlags,
        name: Option<&std::ffi::OsStr>,
        now: Instant,
    ) {
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            self.coalesce.note(now);
            return;
        }
        if Some(wd) == self.dir_wd {
            if mask.intersects(
                AddWatchFlags::IN_IGNORED
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF,
            ) {
                // Gone or renamed away: drop the watch; the parent's event re-arms it.
                if !mask.contains(AddWatchFlags::IN_IGNORED) {
                    let _ = self.inotify.rm_watch(wd);
                }
                self.dir_wd = None;
                self.coalesce.note(now);
                return;
            }
            let relevant = name
                .and_then(|n| n.to_str())
                .is_none_or(|n| !ignored_name(n));
            if relevant {
                self.coalesce.note(now);
            }
        } else if Some(wd) == self.parent_wd {
            if mask.contains(AddWatchFlags::IN_IGNORED) {
                self.parent_wd = None;
            } else if name == Some(self.name.as_os_str()) {
                // The directory appeared, was replaced or went away under its name.
                if let Some(old) = self.dir_wd.take() {
                    let _ = self.inotify.rm_watch(old);
                }
                self.coalesce.note(now);
            }
        }
    }

    /// Whether the directory should be scanned again now (once per burst of events).
    pub fn rescan_due(&mut self) -> bool {
        self.arm();
        self.coalesce.take_due(Instant::now())
    }

    /// How long a poll may sleep: until a pending burst is due, or the re-arm period
    /// while the directory is not watched; None when nothing is pending.
    pub fn timeout(&self) -> Option<Duration> {
        let pending = self.coalesce.timeout(Instant::now());
        if self.dir_wd.is_none() {
            return Some(pending.map_or(REARM_PERIOD, |p| p.min(REARM_PERIOD)));
        }
        pending
    }
}

#[cfg(test)]
#[path = "manifest_dir_tests.rs"]
mod tests;
