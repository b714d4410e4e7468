//! Creating a pod: its record under the store lock, then its supervisor, which inherits
//! the pod's owner lock and reports how the start went.
use super::owner::{OwnerError, Ownership, PodOwner};
use super::PodContext;
use crate::supervisor::events;
use crate::supervisor::store::{self, PodObjects, StoreError};
use crate::supervisor::worker::{self, SuperviseArgs};
use k8s_openapi::api::core::v1::Pod;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What stops `up` before any pod: the node's configuration or the pod network.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("node configuration {0}")]
    NodeConfig(#[from] crate::node_config::NodeConfigError),
    #[error("{0}")]
    Network(#[from] crate::network::NetworkError),
}

/// Why one pod was not created (or did not start).
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("pods {name:?} already exists")]
    AlreadyExists { name: String },
    #[error("pod {namespace}/{name} failed to start: {reason}")]
    FailedToStart {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("starting the supervisor of pod {namespace}/{name}: {source}")]
    Spawn {
        namespace: String,
        name: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Owner(#[from] OwnerError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks what every pod of a manifest needs from the node; prunes expired events.
pub fn preflight(ctx: &PodContext, pods: &[Pod]) -> Result<(), PreflightError> {
    crate::node_config::load(&ctx.data_dir)?;
    crate::network::preflight(&ctx.data_dir, pods)?;
    prune_events_if_due(&ctx.root);
    Ok(())
}

/// How often `up` prunes the expired events of deleted pods (`get events` prunes too).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Prunes expired events at most once a [`PRUNE_EVERY`] (a stamp file's mtime says when
/// last): pruning lists every retained event file, one per pod, and 1000 `up`s of a
/// burst listed half a million.
fn prune_events_if_due(root: &Path) {
    let dir = events::retained_dir(root);
    let stamp = dir.join(".pruned");
    let age = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    if age.is_some_and(|a| a < PRUNE_EVERY) {
        return;
    }
    let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&stamp, b""));
    events::prune_retained(root, events::EVENT_TTL);
}

fn ns_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// Writes the record of `pod` (with `objects`) and returns its directory and the held
/// owner lock; AlreadyExists when the name is taken (by a pod or what is left of one).
fn write_record(
    ctx: &PodContext,
    pod: &Pod,
    objects: &PodObjects,
) -> Result<(PathBuf, PodOwner), CreateError> {
    let store = ctx.store();
    let ns = ns_of(pod);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let dir = store.dir(ns, &name);
    let _lock = store.lock()?;
    if dir.exists() {
        return Err(CreateError::AlreadyExists { name });
    }
    std::fs::create_dir_all(&dir).map_err(|source| CreateError::Io {
        path: dir.clone(),
        source,
    })?;
    let owner = match PodOwner::create(&dir) {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
    };
    // Best effort: without the second name the events still work, they only go with
    // the pod when it is deleted.
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    if !uid.is_empty() {
        let _ = events::link_for_retention(&ctx.root, &dir, ns, &name, uid);
    }
    let mut p = pod.clone();
    p.status = None;
    let res = store::write_json(&dir.join(store::OBJECTS_FILE), objects)
        .and_then(|_| store::write_json(&dir.join(store::POD_FILE), &p));
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e.into());
    }
    Ok((dir, owner))
}

/// Creates pod `pod` and starts its supervisor; Ok once the supervisor said "ok".
/// A pod that failed to start keeps its record (as kubelet keeps a failed pod) until
/// deleted.
pub fn create(ctx: &PodContext, pod: &Pod, objects: &PodObjects) -> Result<(), CreateError> {
    let (dir, owner) = write_record(ctx, pod, objects)?;
    // Desired state: a pod created is kept across reboots until it is deleted.
    if let Err(e) = super::desired::record(ctx, pod, objects) {
        eprintln!("warning: {e}: the pod will not be restored after a reboot");
    }
    let namespace = ns_of(pod).to_string();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let line = match spawn_supervisor(ctx, &dir, &owner) {
        Ok(line) => line,
        Err(source) => {
            // Still ours (nobody inherited the lock): nothing else can be in the dir.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(CreateError::Spawn {
                namespace,
                name,
                source,
            });
        }
    };
    drop(owner);
    if line == "ok" {
        return Ok(());
    }
    let why = line.strip_prefix("error: ").unwrap_or(&line).to_string();
    let reason = if why.is_empty() {
        std::fs::read_to_string(dir.join("supervisor.log"))
            .unwrap_or_default()
            .trim()
            .to_string()
    } else {
        why
    };
    Err(CreateError::FailedToStart {
        namespace,
        name,
        reason,
    })
}

/// Starts the supervisor of the pod in `dir`, detached, with the owner lock, and waits
/// for its first report.
fn spawn_supervisor(ctx: &PodContext, dir: &Path, owner: &PodOwner) -> std::io::Result<String> {
    if let Some(result) = spawn_through_agent(ctx, dir, owner) {
        return result;
    }
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(dir.join("supervisor.log"))?;
    let wfd = w.as_raw_fd();
    let mut cmd = supervisor_command(&exe, ctx, dir, Some((wfd, owner.raw_fd())), log);
    let mut child = cmd.spawn()?;
    drop(w);
    let mut line = String::new();
    let mut f = std::fs::File::from(r);
    let _ = f.read_to_string(&mut line);
    // The supervisor is detached (its own session); reap it here only if it already died.
    let _ = child.try_wait();
    std::mem::forget(child);
    Ok(line.trim().to_string())
}

/// `podrun supervise` for the pod in `dir`, detached in its own session, stderr to `log`:
/// a new pod's, handed `fds` (the pipe it reports on, the owner lock), or with none one
/// that takes over the pod of a supervisor that died (`--adopt`).
pub fn supervisor_command(
    exe: &Path,
    ctx: &PodContext,
    dir: &Path,
    fds: Option<(RawFd, RawFd)>,
    log: std::fs::File,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(&ctx.root)
        .arg("--data-dir")
        .arg(&ctx.data_dir)
        .arg("supervise")
        .arg("--pod-dir")
        .arg(dir);
    match fds {
        Some((ready, lock)) => {
            cmd.arg("--ready-fd").arg(ready.to_string());
            cmd.arg("--lock-fd").arg(lock.to_string());
        }
        None => {
            cmd.arg("--adopt");
        }
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid, close_range,
    // fcntl and sigprocmask. The supervisor outlives its starter: it inherits none of the
    // caller's fds (a lock held by `flock F podrun up` would stay held for the pod's
    // life), only the two it is handed. It starts with only SIGTERM, SIGINT and SIGHUP blocked, so
    // a `delete` racing its start-up never kills it half-way: the signal waits for its
    // loop (and the agent's own mask, all it reads from a signalfd, is not passed on).
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if let Some((ready, lock)) = fds {
                libc::fcntl(ready, libc::F_SETFD, 0);
                libc::fcntl(lock, libc::F_SETFD, 0);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            crate::util::restore_nofile_limit();
            Ok(())
        });
    }
    cmd
}

/// How a supervisor was started: by `create` (the pipe it reports on and the owner lock
/// it inherits), or by the agent to take over from a dead one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervision {
    pub ready_fd: Option<i32>,
    pub lock_fd: Option<i32>,
    pub adopt: bool,
}

/// With a node agent running, the agent starts the supervisor as its own child (so that
/// it can replace it, should it die); None when no agent listens.
fn spawn_through_agent(
    ctx: &PodContext,
    dir: &Path,
    owner: &PodOwner,
) -> Option<std::io::Result<String>> {
    use crate::handoff::vault as handoff;
    use std::os::fd::AsFd;
    let sock = crate::handoff::connect_agent(&ctx.root)?;
    let key = dir.file_name()?.to_string_lossy().into_owned();
    let run = || -> std::io::Result<String> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let req = handoff::Request::Spawn { pod: key };
        handoff::call(sock.as_fd(), &req, &[w.as_raw_fd(), owner.raw_fd()])
            .map_err(std::io::Error::other)?;
        drop(w);
        let mut line = String::new();
        let _ = std::fs::File::from(r).read_to_string(&mut line);
        Ok(line.trim().to_string())
    };
    Some(run())
}

/// The supervisor process's entry (`podrun supervise`): holds the pod's owner lock for
/// its whole life (inherited, or taken over from a dead supervisor), then runs the pod.
pub fn supervise(
    ctx: &PodContext,
    pod_dir: PathBuf,
    how: Supervision,
) -> Result<(), SuperviseError> {
    let _owner = match how.lock_fd {
        Some(fd) => Some(PodOwner::adopt(fd)?),
        None if how.adopt => match PodOwner::try_take(&pod_dir)? {
            Ownership::Taken(owner) => Some(owner),
            // A live owner (a `delete` cleaning up, or a supervisor after all), or the
            // pod is gone: not ours to run.
            Ownership::Held | Ownership::Gone => return Ok(()),
            Ownership::NoLock => None,
        },
        None => None,
    };
    worker::supervise(SuperviseArgs {
        root: ctx.root.clone(),
        data_dir: ctx.data_dir.clone(),
        pod_dir,
        ready_fd: how.ready_fd,
        adopt: how.adopt,
    })?;
    Ok(())
}

/// Why a supervisor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Owner(#[from] OwnerError),
    #[error(transparent)]
    Supervisor(#[from] crate::supervisor::worker::SupervisorError),
}

/// Waits until pod `ns/name` is Ready; false at `deadline`. Woken by the supervisor's
/// status writes (inotify on the pod's directory), not by a clock; without inotify, it
/// looks every 100 ms.
pub fn wait_ready(ctx: &PodContext, ns: &str, name: &str, deadline: Instant) -> bool {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let store = ctx.store();
    // Watching before the first look: a write between the look and the wait is seen.
    let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .ok()
        .filter(|i| {
            let flags = AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE_SELF;
            i.add_watch(&store.dir(ns, name), flags).is_ok()
        });
    loop {
        let ready = store.load(ns, name).is_some_and(|r| {
            r.pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let left = deadline - now;
        match &watch {
            Some(i) => wait_for_write(i, left),
            None => std::thread::sleep(left.min(Duration::from_millis(100))),
        }
    }
}

/// Sleeps until a file of the watched pod directory is written (or `left` passes) and
/// drains the events: status.json comes as an atomic rename.
fn wait_for_write(i: &nix::sys::inotify::Inotify, left: Duration) {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        i.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = left.as_millis().min(u128::from(u16::MAX - 1)) as u16 + 1;
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
    while i.read_events().is_ok_and(|e| !e.is_empty()) {}
}
