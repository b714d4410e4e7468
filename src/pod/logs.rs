//! Reading a container's log (`podrun logs`): which run's files (the live `N.log` and
//! the rotated `N.log.<time>[.gz]` before it), their lines, the tail, `--since`, and
//! following the live file across rotations while that run lasts.
use super::{container_status, pick_container, PickError, PickedContainer, PodContext};
use crate::supervisor::logs::{self, LogLine};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which log: pod, container (default: the first), the previous run, the last N lines.
#[derive(Debug, Clone)]
pub struct LogsRequest {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub previous: bool,
    /// -1: all lines.
    pub tail: i64,
    /// Only lines of the last this many seconds (`--since`).
    pub since_seconds: Option<i64>,
}

/// Why there is no log to show.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("pods {0:?} not found")]
    NotFound(String),
    #[error(transparent)]
    Pick(#[from] PickError),
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { container: String, pod: String },
    #[error("container {container:?} in pod {pod:?} is waiting to start: {reason}")]
    Waiting {
        container: String,
        pod: String,
        reason: String,
    },
}

/// One run's log of one container, as read when opened.
#[derive(Debug)]
pub struct ContainerLog {
    pub container: PickedContainer,
    /// The lines to show (the tail already applied).
    pub lines: Vec<LogLine>,
    path: PathBuf,
    /// The live file as opened, read up to its last whole record.
    file: Option<File>,
    run: i32,
    namespace: String,
    pod: String,
}

/// Opens the log `req` names.
pub fn open_logs(ctx: &PodContext, req: &LogsRequest) -> Result<ContainerLog, LogsError> {
    let pod_name = req.pod.strip_prefix("pod/").unwrap_or(&req.pod).to_string();
    let Some(rec) = ctx.store().load(&req.namespace, &pod_name) else {
        return Err(LogsError::NotFound(pod_name));
    };
    let picked = pick_container(&rec.pod, req.container.as_deref())?;
    let c = picked.name.clone();
    let cs = container_status(&rec.pod, &c).cloned();
    let restarts = cs.as_ref().map(|s| s.restart_count).unwrap_or(0);
    let dir = logs::pod_log_dir(
        &req.namespace,
        &pod_name,
        rec.pod.metadata.uid.as_deref().unwrap_or(""),
    );
    let run = if req.previous {
        if restarts == 0 && cs.as_ref().and_then(|s| s.last_state.as_ref()).is_none() {
            return Err(LogsError::NoPrevious {
                container: c,
                pod: pod_name,
            });
        }
        restarts - 1
    } else {
        restarts
    };
    let path = logs::container_log_path(&dir, &c, run);
    let mut file = File::open(&path).ok();
    if file.is_none() {
        let waiting = cs
            .as_ref()
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone());
        if let Some(reason) = waiting {
            return Err(LogsError::Waiting {
                container: c,
                pod: pod_name,
                reason,
            });
        }
    }
    let live = file.as_mut().map(read_records).unwrap_or_default();
    let since = req
        .since_seconds
        .map(|s| crate::util::now().as_second().saturating_sub(s));
    let lines = read_lines(&path, logs::parse(&live), req.tail, since);
    Ok(ContainerLog {
        container: picked,
        lines,
        file,
        path,
        run,
        namespace: req.namespace.clone(),
        pod: pod_name,
    })
}

/// The whole records from the file's position on (the position moves past them).
fn read_records(f: &mut File) -> String {
    let start = f.stream_position().unwrap_or(0);
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(complete);
    let _ = f.seek(SeekFrom::Start(start + complete as u64));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The lines to show: the live file's, preceded by the rotated files' (newest first, only
/// as many as the tail needs), none older than `since` (Unix seconds).
fn read_lines(path: &Path, live: Vec<LogLine>, tail: i64, since: Option<i64>) -> Vec<LogLine> {
    let keep = |l: &LogLine| {
        since.is_none_or(|s| crate::util::parse_rfc3339(&l.time).is_none_or(|t| t >= s))
    };
    let want = usize::try_from(tail).ok();
    let mut chunks: Vec<Vec<LogLine>> = vec![live.into_iter().filter(keep).collect()];
    for f in logs::rotated_logs(path).iter().rev() {
        if want.is_some_and(|n| chunks.iter().map(Vec::len).sum::<usize>() >= n) {
            break;
        }
        let Ok(text) = logs::read_log_file(f) else {
            continue; // compressed or removed meanwhile
        };
        let lines: Vec<LogLine> = logs::parse(&text).into_iter().filter(keep).collect();
        if lines.is_empty() && since.is_some() {
            break; // older files are older still
        }
        chunks.push(lines);
    }
    let mut lines: Vec<LogLine> = chunks.into_iter().rev().flatten().collect();
    if let Some(n) = want {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

/// The rotated files written after the one with inode `ino` (all of them when it is
/// gone: compressed, or removed past containerLogMaxFiles).
fn rotated_after(path: &Path, ino: u64) -> Vec<PathBuf> {
    let rotated = logs::rotated_logs(path);
    match rotated
        .iter()
        .position(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == ino))
    {
        Some(i) => rotated[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

impl ContainerLog {
    /// Hands every line written after the opening to `each`, until the container run
    /// this log belongs to is no longer running.
    pub fn follow(
        &mut self,
        ctx: &PodContext,
        mut each: impl FnMut(&LogLine),
    ) -> std::io::Result<()> {
        let store = ctx.store();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            self.read_fresh(&mut each);
            let still = store
                .load(&self.namespace, &self.pod)
                .as_ref()
                .and_then(|r| container_status(&r.pod, &self.container.name))
                .is_some_and(|s| {
                    s.restart_count == self.run
                        && s.state.as_ref().is_some_and(|st| st.running.is_some())
                });
            if !still {
                return Ok(());
            }
        }
    }
}

impl ContainerLog {
    /// Hands over what was written since the last look, across rotations: the rest of the
    /// file as opened, the files rotated after it, then the new live file.
    fn read_fresh(&mut self, each: &mut impl FnMut(&LogLine)) {
        let Some(f) = self.file.as_mut() else {
            self.file = File::open(&self.path).ok();
            return;
        };
        let text = read_records(f);
        logs::parse(&text).iter().for_each(&mut *each);
        let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
        let now_ino = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if now_ino.is_none_or(|i| i == ino) {
            return;
        }
        for r in rotated_after(&self.path, ino) {
            if let Ok(text) = logs::read_log_file(&r) {
                logs::parse(&text).iter().for_each(&mut *each);
            }
        }
        self.file = File::open(&self.path).ok();
        if let Some(f) = self.file.as_mut() {
            let text = read_records(f);
            logs::parse(&text).iter().for_each(&mut *each);
        }
    }
}
