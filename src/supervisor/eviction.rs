//! NoExecute taints for one running pod: notices node changes cheaply and says when the
//! taint eviction controller would delete the pod.
//!
//! The worker polls [`NoExecuteWatch::poll`] from its main loop. An inotify watch on
//! node.json's directory says when the node may have changed (the loop waits on it with
//! everything else, so an idle pod does not wake for it); without one, a stat at most
//! once a second does. A stat then tells whether the node really changed; only then is
//! node.json read and [`admission::taints::noexecute_evictions`] asked about this pod. A pod that tolerates
//! the taint for tolerationSeconds gets a timer, re-checked when it fires, so removing the
//! taint in time keeps the pod.
use crate::admission::taints::{self, EvictionTime};
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often node.json is looked at when it cannot be watched.
pub const CHECK_PERIOD: Duration = Duration::from_secs(1);

/// What identifies one version of node.json without reading it: atomic writes replace
/// the file, so the inode changes with every write; mtime and size guard the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        ino: m.ino(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        len: m.len(),
    })
}

/// Watches this node's NoExecute taints on behalf of one pod.
#[derive(Debug)]
pub struct NoExecuteWatch {
    node_file: PathBuf,
    /// Changes to node.json's directory (written atomically: a rename into it).
    inotify: Option<Inotify>,
    /// With a watch: a change was notified and not looked at yet.
    changed: bool,
    next_check: Instant,
    seen: Option<FileStamp>,
    /// The pod tolerates the taints for a while: decide again at this instant.
    evict_at: Option<Instant>,
    /// Told of changes by the node agent (SIGHUP): no inotify instance, no polling.
    driven: bool,
}

impl NoExecuteWatch {
    /// A watch over `<data_dir>/node.json`, notified by inotify where it can be; the
    /// first poll always reads it.
    pub fn new(data_dir: &Path) -> NoExecuteWatch {
        let mut w = NoExecuteWatch::polling(data_dir);
        let node_dir = w.node_file.parent().map(Path::to_path_buf);
        w.inotify = node_dir.and_then(|dir| {
            let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
            let mask = AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE;
            fd.add_watch(&dir, mask).ok()?;
            Some(fd)
        });
        w
    }

    /// A watch that looks at node.json once a second (where inotify is not available).
    pub fn polling(data_dir: &Path) -> NoExecuteWatch {
        NoExecuteWatch {
            node_file: crate::node::NodeStore::new(data_dir).path(),
            inotify: None,
            changed: true,
            next_check: Instant::now(),
            seen: None,
            evict_at: None,
            driven: false,
        }
    }

    /// A watch the node agent drives: it watches node.json once for every pod and tells
    /// each supervisor ([`Self::notified`]), so 1000 pods cost neither 1000 inotify
    /// instances (128 per user by default) nor 1000 stats a second.
    pub fn driven(data_dir: &Path) -> NoExecuteWatch {
        NoExecuteWatch {
            driven: true,
            ..NoExecuteWatch::polling(data_dir)
        }
    }

    /// The inotify descriptor to wait on (readable: call [`Self::notified`]).
    pub fn fd(&self) -> Option<RawFd> {
        self.inotify.as_ref().map(|i| i.as_fd().as_raw_fd())
    }

    /// Takes the inotify events; a change to node.json makes the next poll look.
    pub fn notified(&mut self) {
        if self.driven {
            self.changed = true;
            return;
        }
        let Some(i) = &self.inotify else { return };
        let name = self.node_file.file_name();
        while let Ok(events) = i.read_events() {
            if events.is_empty() {
                break;
            }
            if events.iter().any(|e| e.name.as_deref() == name) {
                self.changed = true;
            }
        }
    }

    /// When the next poll has something to do (None: only when notified).
    pub fn next_due(&self) -> Option<Instant> {
        let notified = self.inotify.is_some() || self.driven;
        let check = match notified {
            true if !self.changed => None,
            true => Some(Instant::now()),
            false => Some(self.next_check),
        };
        match (self.evict_at, check) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        }
    }

    /// Returns the TaintManagerEviction message when `pod` (started at `start_time`) must
    /// be deleted now; `now` paces the checks, `wall` (the same instant on the wall
    /// clock) is what taints' timeAdded compare with. Cheap when nothing changed: a stat
    /// at most once a second.
    pub fn poll(
        &mut self,
        pod: &Pod,
        start_time: Option<&Time>,
        now: Instant,
        wall: Timestamp,
    ) -> Option<String> {
        let timer_due = self.evict_at.is_some_and(|t| now >= t);
        let check_due = match self.inotify.is_some() || self.driven {
            true => self.changed,
            false => now >= self.next_check,
        };
        if !check_due && !timer_due {
            return None;
        }
        self.changed = false;
        self.next_check = now + CHECK_PERIOD;
        let current = stamp(&self.node_file);
        if current == self.seen && !timer_due {
            return None;
        }
        let node: Node = match std::fs::read(&self.node_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(n) => n,
            // Missing or unreadable (it is written atomically, so this is rare): no
            // taints we can see; look again next time.
            None => {
                self.seen = None;
                self.evict_at = None;
                return None;
            }
        };
        self.seen = current;
        let mut with_start = pod.clone();
        if let Some(t) = start_time {
            with_start.status = Some(PodStatus {
                start_time: Some(t.clone()),
                ..Default::default()
            });
        }
        let pods = std::slice::from_ref(&with_start);
        let verdict = taints::noexecute_evictions(crate::node::node_taints(&node), pods, wall)
            .into_iter()
            .next()
            .map(|e| (e.when.clone(), e.message()));
        match verdict {
            None => {
                self.evict_at = None;
                None
            }
            Some((EvictionTime::Now, message)) => {
                self.evict_at = None;
                Some(message)
            }
            Some((EvictionTime::At(t), _)) => {
                let wait = Duration::try_from(t.duration_since(wall)).unwrap_or(Duration::ZERO);
                self.evict_at = Some(now + wait);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, PodSpec, Taint, Toleration};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::SignedDuration;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "podrun-eviction-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn write_node(d: &Path, taints: Vec<Taint>) {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: None,
        };
        crate::util::write_atomic(&d.join("node.json"), &serde_json::to_vec(&node).unwrap())
            .unwrap();
    }

    fn taint(effect: &str) -> Taint {
        Taint {
            key: "tag".into(),
            value: Some("test".into()),
            effect: effect.into(),
            time_added: Some(crate::util::now_time()),
        }
    }

    fn pod(tolerations: Vec<Toleration>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("taint1".into()),
                namespace: Some("dev".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                tolerations: Some(tolerations),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn tolerate(seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some("tag".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Default::default()
        }
    }

    /// Instants and the matching wall-clock time, `d` after the test began.
    struct Clock(Instant, Timestamp);
    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now(), crate::util::now())
        }
        fn poll(
            &self,
            w: &mut NoExecuteWatch,
            p: &Pod,
            start: Option<&Time>,
            d: Duration,
        ) -> Option<String> {
            let wall = self.1 + SignedDuration::try_from(d).unwrap();
            w.poll(p, start, self.0 + d, wall)
        }
    }
    const EVICT: Option<&str> = Some("Marking for deletion Pod dev/taint1");

    #[test]
    fn untolerated_noexecute_evicts_on_the_next_check_only() {
        let d = dir("now");
        write_node(&d.0, vec![taint("NoSchedule")]);
        let p = pod(vec![]);
        let mut w = NoExecuteWatch::polling(&d.0);
        let c = Clock::new();
        assert_eq!(
            c.poll(&mut w, &p, None, Duration::ZERO),
            None,
            "NoSchedule never evicts"
        );
        write_node(&d.0, vec![taint("NoExecute")]);
        // Within the second: not even looked at.
        assert_eq!(c.poll(&mut w, &p, None, Duration::from_millis(500)), None);
        assert_eq!(w.next_due(), Some(c.0 + CHECK_PERIOD));
        assert_eq!(c.poll(&mut w, &p, None, CHECK_PERIOD).as_deref(), EVICT);
    }

    #[test]
    fn toleration_without_seconds_stays_and_unchanged_node_is_not_read() {
        let d = dir("forever");
        write_node(&d.0, vec![taint("NoExecute")]);
        let p = pod(vec![tolerate(None)]);
        let mut w = NoExecuteWatch::polling(&d.0);
        let c = Clock::new();
        assert_eq!(c.poll(&mut w, &p, None, Duration::ZERO), None);
        assert_eq!(w.evict_at, None);
        // A pod that would be evicted is not, because the node did not change.
        let plain = pod(vec![]);
        assert_eq!(c.poll(&mut w, &plain, None, CHECK_PERIOD), None);
    }

    #[test]
    fn toleration_seconds_sets_a_timer_and_removing_the_taint_cancels_it() {
        let d = dir("seconds");
        write_node(&d.0, vec![taint("NoExecute")]);
        let p = pod(vec![tolerate(Some(30))]);
        let mut w = NoExecuteWatch::polling(&d.0);
        let c = Clock::new();
        let start = Time(c.1);
        assert_eq!(c.poll(&mut w, &p, Some(&start), Duration::ZERO), None);
        let at = w.evict_at.expect("a timer");
        assert!(at > c.0 + Duration::from_secs(28) && at <= c.0 + Duration::from_secs(30));
        assert_eq!(w.next_due(), Some(c.0 + CHECK_PERIOD));
        // When the timer fires the pod goes, even though the node did not change.
        let fired = at - c.0;
        assert_eq!(c.poll(&mut w, &p, Some(&start), fired).as_deref(), EVICT);
        // Taint removed before the timer: no eviction, no timer.
        let mut w = NoExecuteWatch::polling(&d.0);
        let c = Clock::new();
        assert_eq!(c.poll(&mut w, &p, Some(&start), Duration::ZERO), None);
        assert!(w.evict_at.is_some());
        write_node(&d.0, vec![]);
        assert_eq!(c.poll(&mut w, &p, Some(&start), CHECK_PERIOD), None);
        assert_eq!(w.evict_at, None);
        assert_eq!(c.poll(&mut w, &p, Some(&start), fired), None);
    }

    #[test]
    fn a_watched_node_is_looked_at_only_when_node_json_changes() {
        let d = dir("inotify");
        write_node(&d.0, vec![taint("NoSchedule")]);
        let p = pod(vec![]);
        let mut w = NoExecuteWatch::new(&d.0);
        assert!(w.fd().is_some(), "inotify watch");
        let c = Clock::new();
        assert_eq!(c.poll(&mut w, &p, None, Duration::ZERO), None);
        // Nothing to wake for: no periodic check.
        assert_eq!(w.next_due(), None);
        std::fs::write(d.0.join("other.json"), b"{}").unwrap();
        w.notified();
        assert_eq!(w.next_due(), None, "another file is no reason to look");
        write_node(&d.0, vec![taint("NoExecute")]);
        let fd = w.fd().unwrap();
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 1000) }, 1, "notified");
        w.notified();
        assert!(w.next_due().is_some());
        // Looked at right away, not a second later.
        assert_eq!(
            c.poll(&mut w, &p, None, Duration::from_millis(1))
                .as_deref(),
            EVICT
        );
    }

    #[test]
    fn missing_node_file_evicts_nothing() {
        let d = dir("missing");
        let mut w = NoExecuteWatch::polling(&d.0);
        let c = Clock::new();
        assert_eq!(c.poll(&mut w, &pod(vec![]), None, Duration::ZERO), None);
    }
}
