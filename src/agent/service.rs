//! What a service manager expects of the agent: sd_notify(3) messages (READY=1,
//! STOPPING=1, STATUS=...) to $NOTIFY_SOCKET (a path, or '@' for an abstract socket),
//! and a pid file written atomically and removed on exit.
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

/// The environment variable systemd sets for Type=notify services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// A service-manager call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("sd_notify to {socket}: {source}")]
    Notify {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Sends sd_notify messages; does nothing when no socket was given (not under systemd).
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// A notifier for `socket` ($NOTIFY_SOCKET's value; None or empty: none).
    pub fn new(socket: Option<String>) -> Notifier {
        Notifier {
            socket: socket.filter(|s| !s.is_empty()),
        }
    }

    /// From $NOTIFY_SOCKET, removing it from the environment so the processes the agent
    /// starts do not talk to systemd in its name (sd_notify's unset_environment). Call
    /// it before any thread starts.
    pub fn take_from_env() -> Notifier {
        let socket = std::env::var(NOTIFY_SOCKET).ok();
        std::env::remove_var(NOTIFY_SOCKET);
        Notifier::new(socket)
    }

    /// Whether messages go anywhere.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `state` (newline-separated VAR=value assignments) as one datagram.
    pub fn notify(&self, state: &str) -> Result<(), ServiceError> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let err = |source| ServiceError::Notify {
            socket: socket.clone(),
            source,
        };
        let sock = UnixDatagram::unbound().map_err(err)?;
        let addr = match socket.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(socket),
        }
        .map_err(err)?;
        sock.send_to_addr(state.as_bytes(), &addr).map_err(err)?;
        Ok(())
    }

    /// READY=1, with a status line.
    pub fn ready(&self, status: &str) -> Result<(), ServiceError> {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// STOPPING=1: the agent is shutting down (its pods keep running).
    pub fn stopping(&self) -> Result<(), ServiceError> {
        self.notify("STOPPING=1")
    }

    /// STATUS=: what `systemctl status` shows.
    pub fn status(&self, status: &str) -> Result<(), ServiceError> {
        self.notify(&format!("STATUS={}", one_line(status)))
    }
}

/// A status is one line: a newline would start another assignment.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// The agent's pid file: written atomically (a temporary file renamed into place, so a
/// reader never sees it half-written) and removed when dropped if it still holds this
/// process's pid.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's pid to `path`.
    pub fn create(path: &Path) -> Result<PidFile, ServiceError> {
        PidFile::create_for(path, std::process::id())
    }

    fn create_for(path: &Path, pid: u32) -> Result<PidFile, ServiceError> {
        let err = |source| ServiceError::PidFile {
            path: path.to_path_buf(),
            source,
        };
        crate::util::write_atomic(path, format!("{pid}\n").as_bytes()).map_err(err)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Another agent may have taken the file over since: leave its pid alone.
        let ours =
            std::fs::read_to_string(&self.path).is_ok_and(|s| s.trim() == self.pid.to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("podrun-svc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_stopping_and_status_reach_a_path_socket() {
        let d = temp("notify");
        let path = d.join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(path.display().to_string()));
        assert!(n.enabled());
        n.ready("2 pods\nrunning").unwrap();
        assert_eq!(recv(&server), "READY=1\nSTATUS=2 pods running");
        n.status("restoring").unwrap();
        assert_eq!(recv(&server), "STATUS=restoring");
        n.stopping().unwrap();
        assert_eq!(recv(&server), "STOPPING=1");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_at_sign_is_an_abstract_socket() {
        let name = format!("podrun-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(Some(format!("@{name}"))).ready("up").unwrap();
        assert_eq!(recv(&server), "READY=1\nSTATUS=up");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_a_dead_socket_is_an_error_naming_it() {
        let n = Notifier::new(None);
        assert!(!n.enabled());
        n.ready("x").unwrap();
        assert!(!Notifier::new(Some(String::new())).enabled());
        let e = Notifier::new(Some("/nonexistent/notify".into()))
            .stopping()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("sd_notify to /nonexistent/notify: "), "{e}");
    }

    #[test]
    fn the_pid_file_is_written_whole_and_removed_on_drop() {
        let d = temp("pid");
        let path = d.join("podrun.pid");
        {
            let pf = PidFile::create(&path).unwrap();
            assert_eq!(pf.path(), path);
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text, format!("{}\n", std::process::id()));
            // No temporary file is left beside it.
            assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        }
        assert!(!path.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_pid_file_taken_over_by_another_agent_is_left_alone() {
        let d = temp("pid-other");
        let path = d.join("podrun.pid");
        let pf = PidFile::create_for(&path, 4_000_000).unwrap();
        let _other = PidFile::create(&path).unwrap();
        drop(pf);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        assert!(PidFile::create(&d.join("missing/dir/pid")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
