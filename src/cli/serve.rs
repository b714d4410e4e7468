//! `podrun serve`: the node agent in the foreground, as a service manager runs it.
use super::GlobalOpts;
use crate::agent::serve::{serve, ServeOptions};
use std::path::PathBuf;

/// Run the node agent: keep pods supervised across supervisor crashes.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Write the agent's pid to this file (removed on exit).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
}

pub fn run(g: &GlobalOpts, a: ServeArgs) -> anyhow::Result<i32> {
    serve(&ServeOptions {
        root: g.root.clone(),
        data_dir: g.data_dir.clone(),
        pid_file: a.pid_file,
    })?;
    Ok(0)
}
