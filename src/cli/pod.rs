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
