//! Node commands in kubectl's words: `label node`, `taint node` (get/describe node are
//! served through `get`/`describe` and call into this module).
use super::GlobalOpts;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Update the labels on this node: `label node NODE k=v [--overwrite]`, `k-`.
    Label,
}

pub fn run(_g: &GlobalOpts, cmd: NodeCommand) -> anyhow::Result<i32> {
    match cmd {
        NodeCommand::Label => anyhow::bail!("label: not implemented yet"),
    }
}
