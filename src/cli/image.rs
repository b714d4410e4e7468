//! Image commands: pull, import, images, rmi, image inspect.
use super::GlobalOpts;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images in the local store.
    Images,
}

pub fn run(_g: &GlobalOpts, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Images => anyhow::bail!("images: not implemented yet"),
    }
}
