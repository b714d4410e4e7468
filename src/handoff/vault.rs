//! The agent's fd vault: the log pipes, terminal masters, stdin write ends and pidfds a
//! pod's supervisor deposits so that they outlive it, lent back to its successor.
//!
//! A container's output pipe must keep a reader across a supervisor crash, or what it
//! writes meanwhile is lost (or it dies of SIGPIPE). The agent keeps a copy of every such
//! fd; the new supervisor takes copies and carries on reading where the old one stopped.
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The most fds one message carries.
pub const MAX_FDS: usize = 16;
const MAX_MESSAGE: usize = 64 * 1024;

/// What a supervisor asks of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Keep the attached fds for this container, one per name ("pidfd", "stdout", ...),
    /// replacing what was kept for it before.
    Deposit {
        pod: String,
        container: String,
        names: Vec<String>,
    },
    /// The container is gone and drained: drop its fds.
    Release { pod: String, container: String },
    /// Lend copies of every fd kept for the pod: one `Entry` reply per container, then `End`.
    Take { pod: String },
    /// The pod is deleted: drop everything kept for it.
    Forget { pod: String },
    /// Start the supervisor of the admitted pod `pod` as the agent's child; the one fd
    /// attached is the pipe its caller waits on for the supervisor's first report.
    Spawn { pod: String },
    /// The pod waits for room (`waiting`), or no more: while it waits, the agent sends
    /// its supervisor SIGHUP when room may have come (a pod ended or went, the node
    /// changed), so that it needs no watch of its own.
    Pending { pod: String, waiting: bool },
}

/// The agent's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "camelCase")]
pub enum Reply {
    Ok,
    Error {
        message: String,
    },
    Entry {
        container: String,
        names: Vec<String>,
    },
    End,
}

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("agent socket: {0}")]
    Sys(#[from] nix::Error),
    #[error("agent message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("agent socket closed")]
    Closed,
    #[error("{0}")]
    Protocol(String),
}

/// Sends one message with its fds over a SOCK_SEQPACKET socket.
pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[RawFd]) -> Result<(), WireError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let body = serde_json::to_vec(msg)?;
    if fds.len() > MAX_FDS || body.len() > MAX_MESSAGE {
        return Err(WireError::Protocol("message too large".into()));
    }
    let iov = [IoSlice::new(&body)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one message and the fds that came with it (close-on-exec).
pub fn recv<T: DeserializeOwned>(sock: BorrowedFd<'_>) -> Result<(T, Vec<OwnedFd>), WireError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut body = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut body)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel installed these fds for us; nobody else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (msg.bytes, fds)
    };
    if n == 0 {
        return Err(WireError::Closed);
    }
    Ok((serde_json::from_slice(&body[..n])?, fds))
}

/// The fds kept for one container.
#[derive(Debug)]
struct Kept {
    names: Vec<String>,
    fds: Vec<OwnedFd>,
}

/// Every fd the agent keeps, by pod key (namespace_name) and container id.
#[derive(Debug, Default)]
pub struct FdVault {
    pods: BTreeMap<String, BTreeMap<String, Kept>>,
}

impl FdVault {
    /// Carries out one request; returns the replies to send, each with the fds to attach.
    pub fn handle(&mut self, req: Request, fds: Vec<OwnedFd>) -> Vec<(Reply, Vec<RawFd>)> {
        match req {
            Request::Deposit {
                pod,
                container,
                names,
            } => {
                if names.len() != fds.len() {
                    let message = format!("{} names for {} fds", names.len(), fds.len());
                    return vec![(Reply::Error { message }, Vec::new())];
                }
                let kept = Kept { names, fds };
                self.pods.entry(pod).or_default().insert(container, kept);
                vec![(Reply::Ok, Vec::new())]
            }
            Request::Release { pod, container } => {
                if let Some(p) = self.pods.get_mut(&pod) {
                    p.remove(&container);
                    if p.is_empty() {
                        self.pods.remove(&pod);
                    }
                }
                vec![(Reply::Ok, Vec::new())]
            }
            Request::Take { pod } => self.lend(&pod),
            Request::Forget { pod } => {
                self.pods.remove(&pod);
                vec![(Reply::Ok, Vec::new())]
            }
            Request::Spawn { .. } | Request::Pending { .. } => {
                let message = "spawn and pending are not vault requests".to_string();
                vec![(Reply::Error { message }, Vec::new())]
            }
        }
    }

    fn lend(&self, pod: &str) -> Vec<(Reply, Vec<RawFd>)> {
        let mut out = Vec::new();
        for (container, kept) in self.pods.get(pod).into_iter().flatten() {
            let reply = Reply::Entry {
                container: container.clone(),
                names: kept.names.clone(),
            };
            out.push((reply, kept.fds.iter().map(|f| f.as_raw_fd()).collect()));
        }
        out.push((Reply::End, Vec::new()));
        out
    }

    /// How many fds are kept in all (for the agent's own accounting and tests).
    pub fn fd_count(&self) -> usize {
        self.pods
            .values()
            .flat_map(|p| p.values())
            .map(|k| k.fds.len())
            .sum()
    }
}

/// What a supervisor got back for one container.
#[derive(Debug)]
pub struct Lent {
    pub container: String,
    pub fds: Vec<(String, OwnedFd)>,
}

/// The supervisor's side: take copies of everything the agent keeps for `pod`.
pub fn take(sock: BorrowedFd<'_>, pod: &str) -> Result<Vec<Lent>, WireError> {
    send(sock, &Request::Take { pod: pod.into() }, &[])?;
    let mut out = Vec::new();
    loop {
        match recv::<Reply>(sock)? {
            (Reply::End, _) => return Ok(out),
            (Reply::Entry { container, names }, fds) if names.len() == fds.len() => {
                out.push(Lent {
                    container,
                    fds: names.into_iter().zip(fds).collect(),
                });
            }
            (Reply::Error { message }, _) => return Err(WireError::Protocol(message)),
            (other, _) => return Err(WireError::Protocol(format!("unexpected {other:?}"))),
        }
    }
}

/// The supervisor's side of one request that is answered with Ok or Error.
pub fn call(sock: BorrowedFd<'_>, req: &Request, fds: &[RawFd]) -> Result<(), WireError> {
    send(sock, req, fds)?;
    match recv::<Reply>(sock)? {
        (Reply::Ok, _) => Ok(()),
        (Reply::Error { message }, _) => Err(WireError::Protocol(message)),
        (other, _) => Err(WireError::Protocol(format!("unexpected {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair")
    }

    /// Serves requests from `sock` with `vault` until `n` requests were handled.
    fn serve(vault: &mut FdVault, sock: &OwnedFd, n: usize) {
        for _ in 0..n {
            let (req, fds) = recv::<Request>(sock.as_fd()).expect("request");
            for (reply, fds) in vault.handle(req, fds) {
                send(sock.as_fd(), &reply, &fds).expect("reply");
            }
        }
    }

    fn deposit(pod: &str, container: &str, names: &[&str]) -> Request {
        Request::Deposit {
            pod: pod.into(),
            container: container.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_pipe_deposited_by_one_supervisor_is_read_by_the_next() {
        let (agent, sup) = pair();
        let mut vault = FdVault::default();
        let (r, w) = nix::unistd::pipe().expect("pipe");
        send(
            sup.as_fd(),
            &deposit("default_web", "c1", &["stdout"]),
            &[r.as_raw_fd()],
        )
        .expect("deposit");
        serve(&mut vault, &agent, 1);
        assert_eq!(recv::<Reply>(sup.as_fd()).expect("ok").0, Reply::Ok);
        // The first supervisor is gone: its copy of the read end closes.
        drop(r);
        let mut writer = std::fs::File::from(w);
        writer
            .write_all(b"line 1\n")
            .expect("write with only the agent reading");
        drop(writer);
        send(
            sup.as_fd(),
            &Request::Take {
                pod: "default_web".into(),
            },
            &[],
        )
        .expect("take");
        serve(&mut vault, &agent, 1);
        let lent = collect(&sup);
        assert_eq!(lent.len(), 1);
        assert_eq!(lent[0].container, "c1");
        let (name, fd) = lent
            .into_iter()
            .next()
            .and_then(|l| l.fds.into_iter().next())
            .expect("fd");
        assert_eq!(name, "stdout");
        let mut text = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "line 1\n");
    }

    fn collect(sup: &OwnedFd) -> Vec<Lent> {
        let mut out = Vec::new();
        loop {
            match recv::<Reply>(sup.as_fd()).expect("reply") {
                (Reply::End, _) => return out,
                (Reply::Entry { container, names }, fds) => out.push(Lent {
                    container,
                    fds: names.into_iter().zip(fds).collect(),
                }),
                (other, _) => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn release_and_forget_drop_what_was_kept() {
        let mut vault = FdVault::default();
        let fd = || OwnedFd::from(std::fs::File::open("/dev/null").expect("null"));
        vault.handle(
            deposit("ns_a", "c1", &["stdout", "stderr"]),
            vec![fd(), fd()],
        );
        vault.handle(deposit("ns_a", "c2", &["pidfd"]), vec![fd()]);
        vault.handle(deposit("ns_b", "c3", &["pidfd"]), vec![fd()]);
        assert_eq!(vault.fd_count(), 4);
        // A restarted container replaces its old fds rather than adding to them.
        vault.handle(deposit("ns_a", "c1", &["stdout"]), vec![fd()]);
        assert_eq!(vault.fd_count(), 3);
        vault.handle(
            Request::Release {
                pod: "ns_a".into(),
                container: "c1".into(),
            },
            Vec::new(),
        );
        assert_eq!(vault.fd_count(), 2);
        vault.handle(Request::Forget { pod: "ns_a".into() }, Vec::new());
        assert_eq!(vault.fd_count(), 1);
        let replies = vault.handle(Request::Take { pod: "ns_a".into() }, Vec::new());
        assert_eq!(replies.len(), 1, "only End for a forgotten pod");
    }

    #[test]
    fn a_deposit_whose_names_do_not_match_its_fds_is_refused() {
        let mut vault = FdVault::default();
        let replies = vault.handle(deposit("ns_a", "c1", &["stdout", "stderr"]), Vec::new());
        assert!(matches!(replies[0].0, Reply::Error { .. }));
        assert_eq!(vault.fd_count(), 0);
    }

    #[test]
    fn call_reports_the_agents_error() {
        let (agent, sup) = pair();
        let t = std::thread::spawn(move || {
            let mut vault = FdVault::default();
            serve(&mut vault, &agent, 1);
        });
        let err = call(sup.as_fd(), &deposit("p", "c", &["x"]), &[]).expect_err("refused");
        assert!(err.to_string().contains("1 names for 0 fds"), "{err}");
        let _ = t.join();
    }
}
