//! runc-compatible OCI runtime commands: create, start, state, kill, delete, run, list, ps,
//! exec, spec, features.
use super::GlobalOpts;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum OciCommand {
    /// Print the runtime-spec features this runtime supports (JSON).
    Features,
}

pub fn run(_g: &GlobalOpts, cmd: OciCommand) -> anyhow::Result<i32> {
    match cmd {
        OciCommand::Features => anyhow::bail!("features: not implemented yet"),
    }
}
