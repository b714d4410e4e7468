//! kubectl-like pod commands: up, down, get, describe, logs, label, taint (exec and
//! `delete pod` arrive through the OCI commands of the same name and are routed here).
use super::GlobalOpts;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum PodCommand {
    /// Run the Pods (and ConfigMaps, Secrets) of a manifest on this host.
    Up,
}

pub fn run(_g: &GlobalOpts, cmd: PodCommand) -> anyhow::Result<i32> {
    match cmd {
        PodCommand::Up => anyhow::bail!("up: not implemented yet"),
    }
}

/// `podrun exec [-i] [-t] POD [-c C] [-n NS] -- CMD...`: routed here by the `exec`
/// command when its first argument names a pod rather than an OCI container.
pub fn exec_pod(
    _g: &GlobalOpts,
    pod: &str,
    _namespace: Option<&str>,
    _container: Option<&str>,
    _stdin: bool,
    _tty: bool,
    _cmd: &[String],
) -> anyhow::Result<i32> {
    anyhow::bail!("exec: no container or pod named {pod:?} (pods not implemented yet)")
}

/// `podrun delete pod NAME... [-n NS] [--grace-period N] [--force]`: routed here by the
/// `delete` command when its first argument is `pod`/`pods`/`po`.
pub fn delete_pod(
    _g: &GlobalOpts,
    _names: &[String],
    _namespace: Option<&str>,
    _grace_period: Option<i64>,
    _force: bool,
) -> anyhow::Result<i32> {
    anyhow::bail!("delete pod: not implemented yet")
}
