//! Running a command in a pod's container (`podrun exec`): the container's own process
//! spec with the new args, through the OCI runtime's exec.
use super::{container_status, pick_container, PickError, PickedContainer, PodContext};
use std::os::fd::{AsRawFd, OwnedFd};

/// What to run where: pod `namespace/pod`, container (default: the first), the command,
/// and whether it gets our stdin and a terminal.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub stdin: bool,
    pub tty: bool,
    pub command: Vec<String>,
}

/// A started exec: its pid, and with a terminal the socket its pty master arrives on.
#[derive(Debug)]
pub struct ExecSession {
    pub container: PickedContainer,
    pub pid: i32,
    pub console: Option<OwnedFd>,
}

/// Why an exec did not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("pods {0:?} not found")]
    NotFound(String),
    #[error("you must specify at least one command for the container")]
    NoCommand,
    #[error(transparent)]
    Pick(#[from] PickError),
    #[error("unable to upgrade connection: container not found ({0:?})")]
    NotRunning(String),
    #[error("container {0} has no process")]
    NoProcess(String),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<nix::Error> for ExecError {
    fn from(e: nix::Error) -> ExecError {
        ExecError::Io(e.into())
    }
}

/// Starts `req.command` in the container; the caller waits for `pid` (and relays the
/// terminal when there is one).
pub fn exec(ctx: &PodContext, req: &ExecRequest) -> Result<ExecSession, ExecError> {
    let pod_name = req.pod.strip_prefix("pod/").unwrap_or(&req.pod);
    let Some(rec) = ctx.store().load(&req.namespace, pod_name) else {
        return Err(ExecError::NotFound(pod_name.to_string()));
    };
    if req.command.is_empty() {
        return Err(ExecError::NoCommand);
    }
    let picked = pick_container(&rec.pod, req.container.as_deref())?;
    let c = picked.name.clone();
    let cs = container_status(&rec.pod, &c);
    let running = cs
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    let id = cs
        .and_then(|s| s.container_id.as_deref())
        .and_then(|i| i.strip_prefix("podrun://"))
        .map(String::from);
    let (true, Some(id)) = (running, id) else {
        return Err(ExecError::NotRunning(c));
    };
    let rt = crate::runtime::Runtime::new(&ctx.root);
    let spec = rt.spec_of(&id)?;
    let Some(mut process) = spec.process().clone() else {
        return Err(ExecError::NoProcess(c));
    };
    process.set_args(Some(req.command.clone()));
    process.set_terminal(Some(req.tty));
    let mut opts = crate::runtime::ExecOptions::new(process);
    let devnull = std::fs::File::open("/dev/null")?;
    if !req.stdin {
        opts.stdin = Some(devnull.as_raw_fd());
    }
    let mut console = None;
    if req.tty {
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )?;
        opts.console_fd = Some(theirs.as_raw_fd());
        console = Some((ours, theirs));
    }
    let outcome = rt.exec(&id, &opts)?;
    // Their end closed: the runtime (our child) holds its own copy until it sent.
    let console = console.map(|(ours, _theirs)| ours);
    Ok(ExecSession {
        container: picked,
        pid: outcome.pid,
        console,
    })
}

/// Waits for an exec'd process: its exit code, or 128 + the signal that killed it.
pub fn wait_code(pid: i32) -> i32 {
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
        Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
        _ => 1,
    }
}
