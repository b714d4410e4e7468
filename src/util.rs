//! Small helpers shared by every module: atomic file writes and advisory locks.
use std::io::Write;
use std::path::Path;

/// Writes `data` to `path` atomically: a temporary file in the same directory, fsync,
/// then rename over the target, so readers never see a half-written file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        // Closed before it gets its name: an executable written this way can be run at
        // once (no ETXTBSY from our own write handle).
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// An exclusive advisory lock on a file, released when dropped.
pub struct FileLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> std::io::Result<FileLock> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        Ok(FileLock { _lock: lock })
    }
}

/// The RLIMIT_NOFILE soft limit this process started with, once [`raise_nofile_limit`]
/// raised it (0: not raised).
static ORIGINAL_NOFILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Raises the soft limit on open files to the hard limit (what Go does for kubelet and
/// containerd): the agent holds a few fds per container. Children get the original back
/// ([`restore_nofile_limit`], between fork and exec).
pub fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            ORIGINAL_NOFILE.store(soft, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Puts the original soft limit back (async-signal-safe: for a pre_exec hook).
pub fn restore_nofile_limit() {
    let soft = ORIGINAL_NOFILE.load(std::sync::atomic::Ordering::Relaxed);
    if soft == 0 {
        return;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct; both are async-signal-safe.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = soft;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The current time as a jiff timestamp (the type k8s-openapi's `Time` wraps).
pub fn now() -> k8s_openapi::jiff::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// The current time in RFC 3339 as Go's RFC3339Nano prints it (UTC; the fraction's
/// trailing zeros dropped): runc's state `created`, log lines, image `created`.
pub fn now_rfc3339() -> String {
    now().to_string()
}

/// Unix seconds of an RFC 3339 time; a time with no offset is read as UTC.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    use k8s_openapi::jiff::{civil::DateTime, tz::TimeZone, Timestamp};
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t.as_second());
    }
    let dt: DateTime = s.get(..19)?.parse().ok()?;
    dt.to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// A signal by name (`SIGQUIT`, `QUIT`, `quit`) or number, as runc's `kill` takes it and
/// images write STOPSIGNAL.
pub fn parse_signal(s: &str) -> Option<nix::sys::signal::Signal> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

/// The current time at the API's one-second precision (creationTimestamp, heartbeats).
pub fn now_seconds() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let t = k8s_openapi::jiff::Timestamp::from_second(now().as_second())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)
}

/// The current time as a Kubernetes `Time`.
pub fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now())
}

/// Creates `dir` (and its parents) if missing, itself with mode 0700: podrun's state and
/// data directories are root's alone. `tighten` also narrows an existing one (for the
/// default /run/podrun and /var/lib/podrun, never a directory a user pointed us at).
pub fn ensure_private_dir(dir: &Path, tighten: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(m) => {
            if tighten && m.is_dir() && m.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
        Err(_) => {
            if let Some(p) = dir.parent() {
                std::fs::create_dir_all(p)?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                r => r,
            }
        }
    }
}

/// The first executable file named `prog` in the directories of $PATH (as a shell finds it).
pub fn find_in_path(prog: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_read_with_or_without_an_offset() {
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00"), Some(951_782_400));
        assert_eq!(parse_rfc3339("yesterday"), None);
        let now = now_rfc3339();
        assert!(now.ends_with('Z') && parse_rfc3339(&now).is_some(), "{now}");
    }
}
