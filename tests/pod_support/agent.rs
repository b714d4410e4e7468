//! A world of its own for node-agent tests, and `podrun serve` running on it.
use super::World;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::Child;

/// A world whose data dir is its own (desired state, overlays, leases) but whose images
/// are the shared fixture store's: an agent restores only this world's pods.
pub fn private_world(tag: &str) -> World {
    let mut w = World::new(tag);
    let data = w.root.parent().expect("base").join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    for d in ["images", "layers"] {
        std::os::unix::fs::symlink(w.data.join(d), data.join(d)).expect("link the image store");
    }
    w.data = data;
    w
}

/// `podrun serve` for one world, stopped (SIGTERM) when dropped.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn start(w: &World) -> Agent {
        let base = w.root.parent().expect("base").to_path_buf();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(base.join("agent.log"))
            .expect("agent log");
        let child = w
            .cmd()
            .arg("serve")
            .arg("--manifests")
            .arg(base.join("manifests"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("podrun serve");
        let sock = w.root.join("agent.sock");
        w.wait_for(10, "the agent's socket", || sock.exists().then_some(()));
        Agent { child }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A test may have stopped it (SIGSTOP): wake it so that it can end.
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = kill(self.pid(), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}
