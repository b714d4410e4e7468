//! Reading and writing cgroupfs files, creating and removing cgroup directories, with
//! errors that name the file and the OCI field.
use super::{CgroupError, Result};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn io_err(path: &Path, what: String, e: &std::io::Error) -> CgroupError {
    let hint = match e.kind() {
        ErrorKind::NotFound => " (controller not available in this cgroup)",
        _ => "",
    };
    CgroupError::Io {
        path: path.to_path_buf(),
        msg: format!("{what}: {e}{hint}"),
    }
}

/// Writes `value` to `dir/file` (no O_CREAT: a missing file means a missing controller).
/// `field` names the OCI field it comes from, for the error.
pub(crate) fn write(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|e| io_err(&path, format!("writing {value:?} ({field})"), &e))
}

/// Reads `dir/file`, trimmed.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| io_err(&path, "reading".into(), &e))
}

/// Reads `dir/file`, None when it does not exist (controller absent).
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, "reading".into(), &e)),
    }
}

/// Reads a number file ("max" → None); a missing file reads as None too.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) if s == "max" => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| CgroupError::Io {
            path: dir.join(file),
            msg: format!("not a number: {s:?}"),
        }),
    }
}

/// The value of `key` in a flat-keyed file ("key value" per line), 0 when absent.
pub(crate) fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

/// Creates `dir` and any missing ancestors below `mountpoint`, calling `on_new` for
/// each directory this call created (top-down) and returning them, so a caller can
/// initialise new levels (v1 cpuset) and undo them on failure.
pub(crate) fn mkdir_below(
    mountpoint: &Path,
    dir: &Path,
    mut on_new: impl FnMut(&Path) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    // Fast path: the leaf or its parent exists (the usual case for containers of a pod).
    match std::fs::create_dir(dir) {
        Ok(()) => {
            let created = vec![dir.to_path_buf()];
            if let Err(e) = on_new(dir) {
                rmdirs(&created);
                return Err(e);
            }
            return Ok(created);
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Vec::new()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(dir, "creating cgroup".into(), &e)),
    }
    let rel = dir.strip_prefix(mountpoint).map_err(|_| CgroupError::Io {
        path: dir.to_path_buf(),
        msg: format!("not below the hierarchy mount {}", mountpoint.display()),
    })?;
    let mut created = Vec::new();
    let mut cur = mountpoint.to_path_buf();
    // Another process may remove an empty parent (a QoS class dir, a test's parent)
    // between our mkdirs: walk again from the top a few times before giving up.
    let mut retries = 5;
    let mut comps: Vec<_> = rel.components().collect();
    comps.reverse();
    while let Some(comp) = comps.pop() {
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => {
                created.push(cur.clone());
                if let Err(e) = on_new(&cur) {
                    rmdirs(&created);
                    return Err(e);
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == ErrorKind::NotFound && retries > 0 => {
                retries -= 1;
                created.retain(|d| d.exists());
                cur = mountpoint.to_path_buf();
                comps = rel.components().collect();
                comps.reverse();
            }
            Err(e) => {
                rmdirs(&created);
                return Err(io_err(&cur, "creating cgroup".into(), &e));
            }
        }
    }
    Ok(created)
}

/// Best-effort removal of directories this process created, deepest first (undo path).
pub(crate) fn rmdirs(created: &[PathBuf]) {
    for d in created.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}

/// Removes cgroup directories (one per hierarchy); missing ones are fine. The kernel
/// keeps a cgroup busy for a moment after its last process exits, so EBUSY is retried
/// with a growing delay, as runc does (about 1.3 s in all, for all directories together).
/// Every directory is attempted; the first failure is returned.
pub(crate) fn rmdir_retry<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    const ATTEMPTS: u32 = 8;
    let mut left: Vec<&Path> = dirs.into_iter().collect();
    let mut first_err = None;
    let mut delay = Duration::from_millis(10);
    for attempt in 1..=ATTEMPTS {
        let mut busy = Vec::new();
        for d in left {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => busy.push(d),
                Err(e) => {
                    first_err.get_or_insert(io_err(d, "removing cgroup".into(), &e));
                }
            }
        }
        left = busy;
        if left.is_empty() || attempt == ATTEMPTS {
            break;
        }
        std::thread::sleep(delay);
        delay *= 2;
    }
    if let Some(d) = left.first() {
        let n = procs(d).map(|p| p.len()).unwrap_or(0);
        let reason = match n {
            0 => "device or resource busy (child cgroups left?)".to_string(),
            n => format!("{n} process(es) still inside"),
        };
        first_err.get_or_insert(CgroupError::Busy {
            path: d.to_path_buf(),
            attempts: ATTEMPTS,
            reason,
        });
    }
    first_err.map_or(Ok(()), Err)
}

/// Pids listed in `dir/cgroup.procs` (empty when the cgroup does not exist).
pub(crate) fn procs(dir: &Path) -> Result<Vec<i32>> {
    let text = read_opt(dir, "cgroup.procs")?.unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim().parse().map_err(|_| CgroupError::Io {
                path: dir.join("cgroup.procs"),
                msg: format!("not a pid: {l:?}"),
            })
        })
        .collect()
}

/// Maps a cgroups-rs error to ours, naming the file and the OCI field.
pub(crate) fn rs_err(
    dir: &Path,
    file: &str,
    field: &str,
    e: cgroups_rs::fs::error::Error,
) -> CgroupError {
    let cause = if !dir.join(file).exists() {
        "file missing (controller not available in this cgroup)".to_string()
    } else {
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.kind().to_string())
    };
    CgroupError::Io {
        path: dir.join(file),
        msg: format!("writing {field}: {cause}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_files() {
        let ev = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(ev, "oom_kill"), 2);
        assert_eq!(keyed(ev, "oom"), 3);
        assert_eq!(keyed(ev, "absent"), 0);
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        assert_eq!(keyed(v1, "oom_kill"), 1);
    }
}
