//! Watch on pods: inotify on the pods directory and each pod's directory wakes the
//! stream, which re-reads the pods and sends ADDED, MODIFIED and DELETED events for what
//! changed (an object that stops matching the selectors is DELETED, as the API server
//! does), as JSON lines, or Tables of one row when kubectl asks for them.
use super::resources::{fetch, Objects, Query, Selection};
use super::server::{Reply, State};
use super::{status, table};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::json;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::unix::AsyncFd;

/// The inotify instance and the directories it watches.
struct Watcher {
    inotify: Inotify,
    watched: HashSet<PathBuf>,
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }
}

impl Watcher {
    fn add(&mut self, dir: PathBuf) {
        if self.watched.contains(&dir) {
            return;
        }
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_ONLYDIR;
        if self.inotify.add_watch(&dir, mask).is_ok() {
            self.watched.insert(dir);
        }
    }
}

/// The stream of one watch: events waiting to be sent, and the pods last seen.
pub struct WatchBody {
    fd: AsyncFd<Watcher>,
    state: Arc<State>,
    namespace: Option<String>,
    selection: Selection,
    table: Option<Option<String>>,
    /// Each pod last seen ("ns/name"), with its JSON to tell a change.
    seen: BTreeMap<String, (String, Pod)>,
    queue: VecDeque<Bytes>,
    pods_dir: PathBuf,
}

/// Starts a watch of pods (in `namespace`, or all).
pub fn start(
    state: &State,
    namespace: Option<String>,
    selection: Selection,
    query: &Query,
    want_table: bool,
) -> Reply {
    let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
        Ok(i) => i,
        Err(e) => return status::failure(500, "InternalError", &format!("inotify: {e}"), None),
    };
    let watcher = Watcher {
        inotify,
        watched: HashSet::new(),
    };
    // SAFETY: the Watcher owns its inotify fd, which stays open as long as the AsyncFd
    // owns the Watcher, and as_raw_fd always returns that same fd.
    let fd =
        match unsafe { AsyncFd::register_with_interest(watcher, tokio::io::Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => return status::failure(500, "InternalError", &format!("watch: {e}"), None),
        };
    let state = Arc::new(State {
        opts: state.opts.clone(),
    });
    let pods_dir = state.opts.root.join("pods");
    let mut body = WatchBody {
        fd,
        state,
        namespace,
        selection,
        table: want_table.then(|| query.include_object.clone()),
        seen: BTreeMap::new(),
        queue: VecDeque::new(),
        pods_dir,
    };
    body.watch_dirs();
    // No resourceVersion (or "0"): every pod first, as ADDED. From a list's
    // resourceVersion: only what changed since.
    // A watch-list (sendInitialEvents=true) gets every pod, then the bookmark that
    // ends the initial events (client-go waits for it).
    let since = query
        .resource_version
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0 && !query.send_initial_events);
    body.rescan(since);
    if query.send_initial_events {
        body.push_initial_events_end();
    }
    let mut r = hyper::Response::new(body.boxed());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

impl WatchBody {
    /// Watches the pods directory and every pod's directory not yet watched.
    fn watch_dirs(&mut self) {
        let watcher = self.fd.get_mut();
        watcher.add(self.pods_dir.clone());
        if let Ok(entries) = std::fs::read_dir(&self.pods_dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    watcher.add(e.path());
                }
            }
        }
    }

    /// Re-reads the pods and queues the events of what changed. `since`: on the first
    /// scan, the resourceVersion the client has seen (pods newer than it are MODIFIED).
    fn rescan(&mut self, since: Option<u64>) {
        let first = self.seen.is_empty();
        let mut objects = fetch(&self.state, "pods", self.namespace.as_deref(), None);
        self.selection.retain(&mut objects);
        let Objects::Pods(pods) = objects else {
            return;
        };
        let mut now = BTreeMap::new();
        for p in pods {
            let key = format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or("default"),
                p.metadata.name.as_deref().unwrap_or("")
            );
            let text = serde_json::to_string(&p).unwrap_or_default();
            now.insert(key, (text, p));
        }
        for (key, (text, pod)) in &now {
            let kind = match self.seen.get(key) {
                None if first && since.is_some() => {
                    let rv = pod.metadata.resource_version.as_deref();
                    match rv.and_then(|v| v.parse::<u64>().ok()) {
                        Some(rv) if Some(rv) > since => Some("MODIFIED"),
                        _ => None,
                    }
                }
                None => Some("ADDED"),
                Some((old, _)) if old != text => Some("MODIFIED"),
                Some(_) => None,
            };
            if let Some(kind) = kind {
                self.push(kind, pod);
            }
        }
        let gone: Vec<Pod> = self
            .seen
            .iter()
            .filter(|(k, _)| !now.contains_key(*k))
            .map(|(_, (_, p))| p.clone())
            .collect();
        for p in &gone {
            self.push("DELETED", p);
        }
        self.seen = now;
    }

    /// The BOOKMARK that ends a watch-list's initial events, at the newest
    /// resourceVersion seen.
    fn push_initial_events_end(&mut self) {
        let rv = self
            .seen
            .values()
            .filter_map(|(_, p)| p.metadata.resource_version.as_deref()?.parse::<u64>().ok())
            .max()
            .unwrap_or(1);
        let event = json!({"type": "BOOKMARK", "object": {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "resourceVersion": rv.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"},
            },
        }});
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
    }

    fn push(&mut self, kind: &str, pod: &Pod) {
        let object = match &self.table {
            Some(include) => table::table(
                "pods",
                &Objects::Pods(vec![pod.clone()]),
                include.as_deref(),
            ),
            None => serde_json::to_value(pod).unwrap_or_default(),
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
    }
}

impl Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(b) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            let mut guard = match this.fd.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(g)) => g,
            };
            // Drains the events; only "would block" says the fd is not ready any more.
            loop {
                match guard.get_inner().inotify.read_events() {
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EAGAIN) => {
                        guard.clear_ready();
                        break;
                    }
                    Err(_) => return Poll::Ready(None),
                }
            }
            this.watch_dirs();
            this.rescan(None);
        }
    }
}
