//! What wakes the idle agent instead of a clock: inotify on the pods directory (a pod
//! directory made or moved in, perhaps by an `up` that found no agent) and on node.json's
//! directory (labels, taints, capacity changed).
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// What one read of the watch found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// A directory appeared in the pods directory: look for pods not yet known.
    pub pods: bool,
    /// node.json was written, replaced or removed.
    pub node: bool,
    /// A pod directory went, or a pod's end was announced: room for Pending pods.
    pub room: bool,
}

/// One inotify descriptor over both directories; None where inotify is not to be had
/// (the agent then looks on a clock, as before).
pub struct PodsWatch {
    inotify: Option<Inotify>,
    pods_wd: Option<WatchDescriptor>,
    node_wd: Option<WatchDescriptor>,
    node_file: OsString,
}

impl PodsWatch {
    /// Watches `pods_dir` and the directory of `node_file` (both must exist to watch).
    pub fn new(pods_dir: &Path, node_file: &Path) -> PodsWatch {
        let mut w = PodsWatch {
            inotify: None,
            pods_wd: None,
            node_wd: None,
            node_file: node_file.file_name().unwrap_or_default().to_os_string(),
        };
        let Ok(i) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) else {
            return w;
        };
        // Only entries made: the pods lock and the end file (closed after writing) and
        // the pods' own files (one level down) do not wake the agent.
        let made = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO;
        let written = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_DELETE | made;
        let gone = AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM;
        let node_dir = node_file.parent().filter(|p| !p.as_os_str().is_empty());
        // The end file is written (closed) only when a pod ends.
        let ended = AddWatchFlags::IN_CLOSE_WRITE;
        w.pods_wd = i.add_watch(pods_dir, made | gone | ended).ok();
        w.node_wd = node_dir.and_then(|d| i.add_watch(d, written).ok());
        if w.pods_wd.is_some() && w.node_wd.is_some() {
            w.inotify = Some(i);
        }
        w
    }

    /// Whether events come (false: the caller looks on a clock).
    pub fn watching(&self) -> bool {
        self.inotify.is_some()
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.inotify.as_ref().map(|i| i.as_fd())
    }

    /// Takes every pending event.
    pub fn read(&self) -> Seen {
        let mut seen = Seen::default();
        let Some(i) = &self.inotify else {
            return seen;
        };
        while let Ok(events) = i.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                let overflow = e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW);
                let s = classify(
                    Some(e.wd) == self.pods_wd,
                    Some(e.wd) == self.node_wd,
                    e.mask,
                    e.name.as_deref(),
                    &self.node_file,
                );
                seen.pods |= s.pods || overflow;
                seen.node |= s.node || overflow;
                seen.room |= s.room || overflow;
            }
        }
        seen
    }
}

/// What one event means: in the pods directory, a directory made (dot names are the
/// store's own), or one gone or the end file written (room); in node.json's, that file
/// changed.
pub fn classify(
    in_pods: bool,
    in_node_dir: bool,
    mask: AddWatchFlags,
    name: Option<&OsStr>,
    node_file: &OsStr,
) -> Seen {
    let dotted = name.is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let dir = mask.contains(AddWatchFlags::IN_ISDIR);
    let made = mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
    let gone = mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
    let ended = name == Some(OsStr::new(crate::supervisor::store::ENDED_FILE));
    Seen {
        pods: in_pods && dir && made && !dotted,
        node: in_node_dir && name == Some(node_file),
        room: in_pods && ((dir && gone && !dotted) || ended),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "node.json";

    fn pods(mask: AddWatchFlags, name: &str) -> Seen {
        classify(true, false, mask, Some(OsStr::new(name)), OsStr::new(NODE))
    }

    #[test]
    fn a_pod_directory_made_or_moved_in_is_seen_the_lock_is_not() {
        let dir = AddWatchFlags::IN_ISDIR;
        assert!(pods(AddWatchFlags::IN_CREATE | dir, "default_web").pods);
        assert!(pods(AddWatchFlags::IN_MOVED_TO | dir, "default_web").pods);
        assert!(!pods(AddWatchFlags::IN_CREATE, ".lock").pods);
        assert!(!pods(AddWatchFlags::IN_CREATE | dir, ".tmp").pods);
        assert!(!pods(AddWatchFlags::IN_CREATE | dir, "default_web").node);
        assert!(!pods(AddWatchFlags::IN_CREATE | dir, "default_web").room);
    }

    #[test]
    fn a_pod_directory_gone_or_a_pod_ended_is_room_a_lock_closed_is_not() {
        let dir = AddWatchFlags::IN_ISDIR;
        assert!(pods(AddWatchFlags::IN_DELETE | dir, "default_web").room);
        assert!(pods(AddWatchFlags::IN_MOVED_FROM | dir, "default_web").room);
        assert!(pods(AddWatchFlags::IN_CLOSE_WRITE, ".ended").room);
        assert!(!pods(AddWatchFlags::IN_CLOSE_WRITE, ".lock").room);
        assert!(!pods(AddWatchFlags::IN_DELETE | dir, "default_web").pods);
    }

    #[test]
    fn node_json_written_or_replaced_is_seen_other_files_are_not() {
        let node = |name: &str| {
            classify(
                false,
                true,
                AddWatchFlags::IN_MOVED_TO,
                Some(OsStr::new(name)),
                OsStr::new(NODE),
            )
        };
        assert_eq!(
            node(NODE),
            Seen {
                pods: false,
                node: true,
                room: false,
            }
        );
        assert_eq!(node("images.json"), Seen::default());
    }

    #[test]
    fn events_arrive_for_a_new_pod_dir_and_a_rewritten_node_file() {
        let root = std::env::temp_dir().join(format!("podrun-podswatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pods_dir = root.join("pods");
        std::fs::create_dir_all(&pods_dir).expect("dir");
        let node = root.join(NODE);
        let w = PodsWatch::new(&pods_dir, &node);
        assert!(w.watching());
        assert_eq!(w.read(), Seen::default());
        std::fs::write(pods_dir.join(".lock"), "").expect("lock");
        assert_eq!(w.read(), Seen::default());
        std::fs::create_dir(pods_dir.join("default_a")).expect("pod");
        assert!(w.read().pods);
        std::fs::write(root.join("tmp"), "{}").expect("tmp");
        std::fs::rename(root.join("tmp"), &node).expect("rename");
        assert!(w.read().node);
        assert_eq!(w.read(), Seen::default());
        let _ = std::fs::remove_dir_all(&root);
    }
}
