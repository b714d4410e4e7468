//! Reading a container's log (`podrun logs`): which run's file, its lines, the tail,
//! and following it while that run lasts.
use super::{container_status, pick_container, PickError, PickedContainer, PodContext};
use crate::supervisor::logs::{self, LogLine};
use std::path::PathBuf;
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
    offset: usize,
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
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => {
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
            String::new()
        }
    };
    let mut lines = logs::parse(&text);
    if req.tail >= 0 {
        let skip = lines.len().saturating_sub(req.tail as usize);
        lines.drain(..skip);
    }
    Ok(ContainerLog {
        container: picked,
        lines,
        offset: text.rfind('\n').map(|i| i + 1).unwrap_or(0),
        path,
        run,
        namespace: req.namespace.clone(),
        pod: pod_name,
    })
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
            std::thread::sleep(Duration::from_millis(200));
            let Ok(now) = std::fs::read_to_string(&self.path) else {
                return Ok(());
            };
            if now.len() > self.offset {
                let fresh = &now[self.offset..];
                let complete = fresh.rfind('\n').map(|i| i + 1).unwrap_or(0);
                for l in logs::parse(&fresh[..complete]) {
                    each(&l);
                }
                self.offset += complete;
            }
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
