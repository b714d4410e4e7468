//! The agent's static pods (kubelet's staticPodPath): the manifest directory's pods are
//! created, replaced when their file changes and deleted when it goes, by one worker
//! thread, so that the agent's loop never waits for a pod to start or stop.
use super::manifest_dir::{self, Change, DirWatcher, Scan, CONFIG_SOURCE_ANNOTATION};
use crate::pod::{DeleteOptions, PodContext};
use crate::supervisor::store::PodObjects;
use k8s_openapi::api::core::v1::Pod;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

/// The reason of the event a manifest that does not parse gives.
pub const MANIFEST_REASON: &str = "FailedToProcessManifest";

/// One thing the worker thread does.
enum Work {
    Create(Box<(Pod, PodObjects)>),
    Delete(String, String),
}

/// The manifest directory as the agent last applied it.
pub struct StaticPods {
    dir: PathBuf,
    node: String,
    applied: Scan,
    watcher: Option<DirWatcher>,
    work: Sender<Work>,
    started: bool,
    ctx: PodContext,
}

impl StaticPods {
    /// Watches `dir` (it may not exist yet); pods are created and deleted in `ctx`.
    pub fn new(ctx: &PodContext, dir: PathBuf) -> StaticPods {
        let node = crate::node::NodeStore::new(&ctx.data_dir)
            .load()
            .map(|n| crate::node::node_name(&n).to_string())
            .unwrap_or_default();
        let watcher = DirWatcher::new(&dir, Duration::from_millis(100));
        if let Err(e) = &watcher {
            eprintln!(
                "podrun serve: watching {}: {e}; looking every few seconds instead",
                dir.display()
            );
        }
        let (work, jobs) = channel::<Work>();
        let c = ctx.clone();
        std::thread::spawn(move || {
            for job in jobs {
                run(&c, job);
            }
        });
        StaticPods {
            dir,
            node,
            applied: Scan::default(),
            watcher: watcher.ok(),
            work,
            started: false,
            ctx: ctx.clone(),
        }
    }

    /// The watcher's fd, to poll.
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.watcher.as_ref().map(|w| w.as_fd())
    }

    /// How long the agent may sleep before [`Self::tick`] is due.
    pub fn timeout(&self) -> Duration {
        let fallback = Duration::from_secs(5);
        match &self.watcher {
            Some(w) => w.timeout().unwrap_or(Duration::from_secs(3600)),
            None => fallback,
        }
    }

    /// After a wake-up: takes the watcher's events and applies a due rescan.
    pub fn tick(&mut self, readable: bool) {
        let due = match self.watcher.as_mut() {
            Some(w) => {
                if readable {
                    let _ = w.handle_events();
                }
                w.rescan_due()
            }
            None => true,
        };
        if due || !self.started {
            self.rescan();
        }
    }

    fn rescan(&mut self) {
        let new = match manifest_dir::scan(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("podrun serve: {e}");
                return;
            }
        };
        let before = self.applied.errors();
        for (path, err) in new.errors() {
            eprintln!(
                "podrun serve: static pod manifest {}: {err}",
                path.display()
            );
            // An event once per new fault, not at every rescan of a file left broken.
            if !before.contains(&(path, err)) {
                self.manifest_event(path, err);
            }
        }
        if !self.started {
            self.started = true;
            self.remove_strays(&new);
        }
        for change in manifest_dir::diff(&self.applied, &new) {
            self.apply(&change, &new);
        }
        self.applied = new;
    }

    /// A Warning event of the node naming the file and what is wrong in it, with the
    /// words kubelet logs it with ("Could not process manifest file").
    fn manifest_event(&self, path: &std::path::Path, err: &str) {
        let file = crate::supervisor::events::node_events_path(&self.ctx.root);
        if let Some(parent) = file.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let message = format!(
            "Could not process manifest file {:?}: {err}",
            path.display().to_string()
        );
        let _ = crate::supervisor::events::record(
            &file,
            "Warning",
            MANIFEST_REASON,
            "kubelet",
            "",
            &message,
        );
    }

    /// Applies one file's change. A file that does not parse keeps what it ran before
    /// (the error is logged), so a half-saved edit does not take a pod down.
    fn apply(&mut self, change: &Change, new: &Scan) {
        let (name, old, add) = match change {
            Change::Added(n) => (n, false, true),
            Change::Changed(n) => (n, true, true),
            Change::Removed(n) => (n, true, false),
        };
        let parsed = new
            .files
            .get(name)
            .and_then(|f| f.static_pods(&self.node).ok());
        if add && parsed.is_none() {
            return;
        }
        if old {
            let before = self.applied.files.get(name);
            for p in before
                .and_then(|f| f.static_pods(&self.node).ok())
                .unwrap_or_default()
            {
                let _ = self.work.send(Work::Delete(ns_of(&p), name_of(&p)));
            }
        }
        let Some(file) = new.files.get(name) else {
            return;
        };
        let objects = file.manifest.as_ref().map(objects_of).unwrap_or_default();
        for p in parsed.unwrap_or_default() {
            let _ = self.work.send(Work::Create(Box::new((p, objects.clone()))));
        }
    }

    /// At start: static pods still recorded (restored after a reboot, say) whose file is
    /// gone or changed while the agent was away are deleted, as kubelet does.
    fn remove_strays(&self, scan: &Scan) {
        let wanted: Vec<String> = scan
            .files
            .values()
            .flat_map(|f| f.static_pods(&self.node).unwrap_or_default())
            .filter_map(|p| p.metadata.uid)
            .collect();
        for (pod, _) in crate::pod::desired::desired(&self.ctx)
            .into_iter()
            .flatten()
        {
            let from_file = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
                .is_some_and(|s| s == "file");
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if from_file && !wanted.contains(&uid) {
                let _ = self.work.send(Work::Delete(ns_of(&pod), name_of(&pod)));
            }
        }
    }
}

fn ns_of(p: &Pod) -> String {
    p.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

fn name_of(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn objects_of(m: &crate::manifest::Manifest) -> PodObjects {
    PodObjects {
        config_maps: m.config_maps.clone(),
        secrets: m.secrets.clone(),
    }
}

fn run(ctx: &PodContext, job: Work) {
    match job {
        Work::Create(job) => {
            let (pod, objects) = *job;
            let name = name_of(&pod);
            match crate::pod::create(ctx, &pod, &objects) {
                Ok(()) => eprintln!("podrun serve: static pod {name} created"),
                Err(crate::pod::CreateError::AlreadyExists { .. }) => {}
                Err(e) => eprintln!("podrun serve: static pod {name}: {e}"),
            }
        }
        Work::Delete(ns, name) => {
            let opts = DeleteOptions::default();
            match crate::pod::delete(ctx, &ns, &name, opts) {
                Ok(()) => eprintln!("podrun serve: static pod {name} deleted"),
                Err(crate::pod::DeleteError::NotFound { .. }) => {}
                Err(e) => eprintln!("podrun serve: deleting static pod {name}: {e}"),
            }
        }
    }
}
