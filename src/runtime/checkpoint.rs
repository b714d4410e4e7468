//! `checkpoint` and `restore` through CRIU's command line, with runc's flags and image
//! layout: the images directory gets CRIU's images plus config.json and descriptors.json
//! (the paths of init's fds 0-2, as runc writes them, so pipes can be handed back on
//! restore). Bind mounts (and v1 cgroup binds) are external mounts, keyed by their
//! destination as runc keys them; masked files (binds of /dev/null) likewise.
use super::config;
use super::state::{self, ContainerRecord};
use super::{Result, Runtime, RuntimeError, Status};
use std::path::{Path, PathBuf};
use std::process::Command;

/// runc's checkpoint flags.
#[derive(Debug, Default, Clone)]
pub struct CheckpointOptions {
    pub image_path: PathBuf,
    /// CRIU's work dir (logs); the image path when unset.
    pub work_path: Option<PathBuf>,
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub pre_dump: bool,
    pub auto_dedup: bool,
    /// soft (default), full, strict or ignore.
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces CRIU leaves out of the images ("network").
    pub empty_ns: Vec<String>,
}

/// runc's restore flags.
#[derive(Debug, Default, Clone)]
pub struct RestoreOptions {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub auto_dedup: bool,
    pub manage_cgroups_mode: Option<String>,
    pub empty_ns: Vec<String>,
}

const DESCRIPTORS: &str = "descriptors.json";

fn criu() -> String {
    std::env::var("PODRUN_CRIU").unwrap_or_else(|_| "criu".into())
}

fn manage_cgroups(mode: &Option<String>) -> Result<String> {
    let m = mode.as_deref().unwrap_or("soft");
    if !matches!(m, "soft" | "full" | "strict" | "ignore") {
        return Err(RuntimeError::Invalid(format!(
            "--manage-cgroups-mode {m:?}: must be soft, full, strict or ignore"
        )));
    }
    Ok(format!("--manage-cgroups={m}"))
}

fn empty_ns(names: &[String], cmd: &mut Command) -> Result<()> {
    for n in names {
        let n = match n.as_str() {
            "network" | "net" => "net",
            other => {
                return Err(RuntimeError::Invalid(format!(
                    "--empty-ns {other:?}: only \"network\" is supported (as runc)"
                )))
            }
        };
        cmd.args(["--empty-ns", n]);
    }
    Ok(())
}

/// Runs CRIU; on failure the error names the operation, CRIU's last error line and log.
fn run_criu(mut cmd: Command, what: &str, log: &Path) -> Result<()> {
    let out = cmd.output().map_err(|e| {
        RuntimeError::Invalid(format!(
            "{what}: running {} (is criu installed?): {e}",
            criu()
        ))
    })?;
    if out.status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find(|l| l.contains("Error"))
        .or_else(|| {
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .map(|_| "")
        })
        .unwrap_or("")
        .trim()
        .to_string();
    Err(RuntimeError::Invalid(format!(
        "criu failed: type {what} ({}): {last}\nlog file: {}",
        out.status,
        log.display()
    )))
}

/// Bind mounts of the config, by destination (CRIU's external mount keys).
fn bind_mounts(spec: &oci_spec::runtime::Spec) -> Vec<(String, PathBuf)> {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| {
            m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o == "bind" || o == "rbind")
        })
        .map(|m| {
            (
                m.destination().to_string_lossy().into_owned(),
                m.source().clone().unwrap_or_default(),
            )
        })
        .collect()
}

const EXTERNAL_MOUNTS: &str = "podrun-external-mounts.json";
const EXTERNAL_FILES: &str = "podrun-external-files.json";

/// init's stdio files on mounts outside its mount namespace (the caller's /dev/null, a
/// log file), as `(fd, CRIU key "file[mnt_id:inode]")`: dumped as external files and
/// on restore replaced by the restoring caller's own descriptor (as pipes are).
fn external_stdio_of(pid: i32) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let own: std::collections::HashSet<&str> =
        info.lines().filter_map(|l| l.split(' ').next()).collect();
    let mut out = Vec::new();
    for n in 0..3u32 {
        let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{n}")) else {
            continue;
        };
        if !target.is_absolute() {
            continue; // pipe:[..], socket:[..], anon_inode:..: not a file on a mount
        }
        let fdinfo = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{n}")).unwrap_or_default();
        let Some(mnt) = fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            continue;
        };
        if own.contains(mnt.to_string().as_str()) {
            continue;
        }
        if let Ok(md) = std::fs::metadata(format!("/proc/{pid}/fd/{n}")) {
            out.push((n, format!("file[{mnt:x}:{:x}]", md.ino())));
        }
    }
    out
}

/// The container's own mounts in its mount namespace whose source is outside it: cgroup
/// binds (kind "cgroup") and masked files bound from /dev/null, keyed by mount point.
fn external_mounts_of(pid: i32) -> Vec<(String, String)> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let fstype = post.split(' ').next().unwrap_or("");
        if pre.len() < 5 {
            continue;
        }
        let (root, mp) = (pre[3], pre[4]);
        if fstype == "cgroup" && root != "/" {
            out.push((mp.to_string(), "cgroup".to_string()));
        } else if fstype == "devtmpfs" && root == "/null" && mp != "/dev/null" {
            out.push((mp.to_string(), "/dev/null".to_string()));
        }
    }
    out
}

/// The dumped external mounts mapped for restore: cgroup binds to the new container's
/// cgroup dirs, masked files to /dev/null.
fn map_external_mounts(
    images: &Path,
    cg: Option<&dyn super::cgroups::CgroupManager>,
    c: &mut Command,
) {
    let external: Vec<(String, String)> = std::fs::read(images.join(EXTERNAL_MOUNTS))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    for (mp, kind) in external {
        let src = if kind == "cgroup" {
            let name = Path::new(&mp)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            cg.and_then(|m| {
                if name == "unified" {
                    m.unified_path()
                } else {
                    m.controller_path(name.split(',').next().unwrap_or(""))
                }
            })
        } else {
            Some(PathBuf::from(kind))
        };
        if let Some(src) = src {
            c.args(["--ext-mount-map", &format!("{mp}:{}", src.display())]);
        }
    }
}

/// Opens again, by the path they had, init's stdio files that came from outside its
/// mount namespace, and hands each to CRIU as the dumped file (`--inherit-fd`). The
/// descriptors stay open (inheritable) until the returned files are dropped.
fn reopen_external_stdio(
    images: &Path,
    paths: &[String],
    c: &mut Command,
) -> Result<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let files: Vec<(u32, String)> = std::fs::read(images.join(EXTERNAL_FILES))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    let mut open = Vec::new();
    for (n, key) in files {
        let Some(path) = paths.get(n as usize) else {
            continue;
        };
        // (CRIU checks the file's type and size: a deleted file has no stand-in.)
        let f = std::fs::OpenOptions::new()
            .read(n == 0)
            .write(n != 0)
            .append(n != 0)
            .open(path)
            .map_err(|e| {
                RuntimeError::io(
                    if n == 0 {
                        "restore: reopen the dumped stdin"
                    } else {
                        "restore: reopen the dumped stdout/stderr"
                    },
                    PathBuf::from(path),
                    e,
                )
            })?;
        // SAFETY: dup of an open descriptor; the copy has no FD_CLOEXEC, so CRIU inherits it.
        let fd = unsafe { libc::dup(f.as_raw_fd()) };
        if fd < 0 {
            return Err(RuntimeError::io(
                "restore: dup stdio",
                PathBuf::from(path),
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: fd was just returned by dup and is owned by nobody else.
        open.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        c.args(["--inherit-fd", &format!("fd[{fd}]:{key}")]);
    }
    Ok(open)
}

impl Runtime {
    /// `checkpoint`: dumps container `id` with CRIU into `opts.image_path`; unless
    /// leave-running (or pre-dump), the container is gone afterwards, as with runc.
    pub fn checkpoint(&self, id: &str, opts: &CheckpointOptions) -> Result<()> {
        let (dir, rec) = self.load(id)?;
        if rec.status(&dir) != Status::Running {
            return Err(RuntimeError::BadState {
                id: id.into(),
                msg: "container not running".into(),
            });
        }
        // Flags are checked before anything is written: bad input leaves nothing behind.
        let cgroups_flag = manage_cgroups(&opts.manage_cgroups_mode)?;
        empty_ns(&opts.empty_ns, &mut Command::new(criu()))?;
        let images = &opts.image_path;
        let work = opts.work_path.clone().unwrap_or_else(|| images.clone());
        for d in [images, &work] {
            std::fs::create_dir_all(d).map_err(|e| RuntimeError::io("mkdir", d.clone(), e))?;
        }
        let spec = self.spec_of(id)?;
        let cfg = dir.join(state::CONFIG_FILE);
        std::fs::copy(&cfg, images.join("config.json"))
            .map_err(|e| RuntimeError::io("copy config", cfg.clone(), e))?;
        let fds: Vec<String> = (0..3)
            .map(|n| {
                std::fs::read_link(format!("/proc/{}/fd/{n}", rec.pid))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "/dev/null".into())
            })
            .collect();
        let desc = images.join(DESCRIPTORS);
        std::fs::write(&desc, serde_json::to_vec(&fds).unwrap_or_default())
            .map_err(|e| RuntimeError::io("write", desc.clone(), e))?;
        let log = work.join(if opts.pre_dump {
            "pre-dump.log"
        } else {
            "dump.log"
        });
        let mut c = Command::new(criu());
        c.arg(if opts.pre_dump { "pre-dump" } else { "dump" })
            .args(["--tree", &rec.pid.to_string()])
            .arg("--images-dir")
            .arg(images)
            .arg("--work-dir")
            .arg(&work)
            .arg("--log-file")
            .arg(&log)
            .args(["-v4", &cgroups_flag]);
        for (dest, _) in bind_mounts(&spec) {
            c.args(["--ext-mount-map", &format!("{dest}:{dest}")]);
        }
        let external = external_mounts_of(rec.pid);
        for (mp, _) in &external {
            c.args(["--ext-mount-map", &format!("{mp}:{mp}")]);
        }
        let ext = images.join(EXTERNAL_MOUNTS);
        std::fs::write(&ext, serde_json::to_vec(&external).unwrap_or_default())
            .map_err(|e| RuntimeError::io("write", ext.clone(), e))?;
        let files = external_stdio_of(rec.pid);
        for (_, key) in &files {
            c.args(["--external", key]);
        }
        let ext = images.join(EXTERNAL_FILES);
        std::fs::write(&ext, serde_json::to_vec(&files).unwrap_or_default())
            .map_err(|e| RuntimeError::io("write", ext.clone(), e))?;
        if let Some(p) = &opts.parent_path {
            c.arg("--prev-images-dir").arg(p);
        }
        let flags = [
            (opts.leave_running || opts.pre_dump, "--leave-running"),
            (opts.tcp_established, "--tcp-established"),
            (opts.ext_unix_sk, "--ext-unix-sk"),
            (opts.shell_job, "--shell-job"),
            (opts.file_locks, "--file-locks"),
            (opts.auto_dedup, "--auto-dedup"),
        ];
        add_flags(&mut c, &flags);
        empty_ns(&opts.empty_ns, &mut c)?;
        run_criu(c, if opts.pre_dump { "PRE_DUMP" } else { "DUMP" }, &log)?;
        if !(opts.leave_running || opts.pre_dump) {
            // CRIU killed the tree once dumped: the container is destroyed, as runc does.
            self.delete(id, true)?;
        }
        Ok(())
    }

    /// `restore`: a new container `id` from the bundle, its processes restored by CRIU
    /// from `opts.image_path` (detached, as a child of the caller). Returns its state.
    pub fn restore(&self, id: &str, opts: &RestoreOptions) -> Result<state::State> {
        config::validate_id(id)?;
        let b = config::load_bundle(&opts.bundle)?;
        let dir = self.container_dir(id);
        if dir.join(state::STATE_FILE).exists() {
            return Err(RuntimeError::Invalid(format!(
                "container with id exists: {id}"
            )));
        }
        let images = &opts.image_path;
        let work = opts.work_path.clone().unwrap_or_else(|| images.clone());
        let fds: Vec<String> = std::fs::read(images.join(DESCRIPTORS))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("mkdir", dir.clone(), e))?;
        let undo = |e: RuntimeError| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        let cg = super::create::open_cgroup(&b.spec, id, false).map_err(undo)?;
        if let Some((_, m)) = &cg {
            m.create().map_err(|e| undo(e.into()))?;
        }
        let pidfile = work.join("restore.pid");
        let log = work.join("restore.log");
        let mut c = Command::new(criu());
        c.arg("restore")
            .arg("--images-dir")
            .arg(images)
            .arg("--work-dir")
            .arg(&work)
            .arg("--log-file")
            .arg(&log)
            .arg("--root")
            .arg(&b.rootfs)
            .args(["--restore-detached", "--restore-sibling", "-v4"])
            .arg("--pidfile")
            .arg(&pidfile)
            .arg(manage_cgroups(&opts.manage_cgroups_mode).map_err(undo)?);
        if let Some((_, m)) = &cg {
            if let Some(p) = m.paths().first() {
                c.arg("--cgroup-root").arg(p);
            }
        }
        for (dest, src) in bind_mounts(&b.spec) {
            c.args(["--ext-mount-map", &format!("{dest}:{}", src.display())]);
        }
        map_external_mounts(images, cg.as_ref().map(|(_, m)| m.as_ref()), &mut c);
        // stdio pipes are handed to the restored process in place of the dumped ones.
        for (n, path) in fds.iter().enumerate() {
            if path.starts_with("pipe:") {
                c.args(["--inherit-fd", &format!("fd[{n}]:{path}")]);
            }
        }
        // stdio files from outside the container: the same path opened again.
        let _reopened = reopen_external_stdio(images, &fds, &mut c).map_err(undo)?;
        let flags = [
            (opts.tcp_established, "--tcp-established"),
            (opts.ext_unix_sk, "--ext-unix-sk"),
            (opts.shell_job, "--shell-job"),
            (opts.file_locks, "--file-locks"),
            (opts.auto_dedup, "--auto-dedup"),
        ];
        add_flags(&mut c, &flags);
        empty_ns(&opts.empty_ns, &mut c).map_err(undo)?;
        if let Err(e) = run_criu(c, "RESTORE", &log) {
            if let Some((_, m)) = &cg {
                let _ = m.remove();
            }
            return Err(undo(e));
        }
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                undo(RuntimeError::Invalid(format!(
                    "restore: no pid in {}",
                    pidfile.display()
                )))
            })?;
        let mut rec = ContainerRecord {
            id: id.into(),
            bundle: b.dir.clone(),
            rootfs: b.rootfs.clone(),
            pid,
            pid_start: state::process_start_time(pid).unwrap_or(0),
            created: crate::util::now_rfc3339(),
            owner: "root".into(),
            cgroups_path: cg.as_ref().map(|(p, _)| p.clone()),
            new_pid_ns: true,
            paused: false,
            annotations: b.spec.annotations().clone().unwrap_or_default(),
        };
        let cfg = dir.join(state::CONFIG_FILE);
        std::fs::write(&cfg, &b.raw).map_err(|e| undo(RuntimeError::io("write", cfg, e)))?;
        rec.save(&dir).map_err(undo)?;
        if let Some(p) = &opts.pid_file {
            crate::util::write_atomic(p, pid.to_string().as_bytes())
                .map_err(|e| RuntimeError::io("write pid file", p.clone(), e))?;
        }
        rec.paused = false;
        Ok(rec.oci_state(Status::Running))
    }
}

/// Adds each CRIU flag whose option is set.
fn add_flags(c: &mut Command, flags: &[(bool, &str)]) {
    for (on, f) in flags {
        if *on {
            c.arg(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_modes_and_empty_namespaces_are_checked_as_runc_does() {
        assert_eq!(manage_cgroups(&None).unwrap(), "--manage-cgroups=soft");
        assert!(manage_cgroups(&Some("full".into())).is_ok());
        assert!(manage_cgroups(&Some("bogus".into())).is_err());
        let mut c = Command::new("criu");
        assert!(empty_ns(&["network".into()], &mut c).is_ok());
        assert!(empty_ns(&["pid".into()], &mut c).is_err());
    }
}
