//! OCI hooks: run each hook's program with the container state on stdin, its args and
//! env, killed after its timeout.
use super::error::{Result, RuntimeError};
use super::state::State;
use oci_spec::runtime::{Hook, Hooks, Spec};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The six hook points of the runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    fn select(self, h: &Hooks) -> &Option<Vec<Hook>> {
        #[allow(deprecated)]
        match self {
            HookKind::Prestart => h.prestart(),
            HookKind::CreateRuntime => h.create_runtime(),
            HookKind::CreateContainer => h.create_container(),
            HookKind::StartContainer => h.start_container(),
            HookKind::Poststart => h.poststart(),
            HookKind::Poststop => h.poststop(),
        }
    }
}

/// The hooks of one kind configured in `spec`.
pub fn hooks_of(spec: &Spec, kind: HookKind) -> &[Hook] {
    spec.hooks()
        .as_ref()
        .and_then(|h| kind.select(h).as_deref())
        .unwrap_or_default()
}

/// Runs every hook of `kind` in order. Before the container runs, the first failure
/// stops the run (and fails the operation); a failing poststart or poststop hook is
/// logged as a warning and the rest still run, as the runtime spec says.
pub fn run_hooks(spec: &Spec, kind: HookKind, state: &State) -> Result<()> {
    let hooks = hooks_of(spec, kind);
    if hooks.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    let fatal = !matches!(kind, HookKind::Poststart | HookKind::Poststop);
    for h in hooks {
        match run_hook(h, kind, &json) {
            Err(e) if !fatal => super::log::warn(&e.to_string()),
            r => r?,
        }
    }
    Ok(())
}

fn run_hook(h: &Hook, kind: HookKind, state_json: &[u8]) -> Result<()> {
    let fail = |msg: String| RuntimeError::Hook {
        kind: kind.name(),
        path: h.path().clone(),
        msg,
    };
    let mut cmd = Command::new(h.path());
    let args = h.args().as_deref().unwrap_or_default();
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
        cmd.args(&args[1..]);
    }
    cmd.env_clear();
    for kv in h.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin; that is not an error.
        let _ = stdin.write_all(state_json);
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {} s",
                h.timeout().unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        return Err(fail(format!("exited with {status}")));
    }
    Ok(())
}
