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
    /// The static pod manifest directory (default: the node configuration's
    /// staticPodPath, /etc/podrun/manifests).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
}

pub fn run(g: &GlobalOpts, a: ServeArgs) -> anyhow::Result<i32> {
    let manifests = match a.manifests {
        Some(dir) => dir,
        None => crate::node_config::load(&g.data_dir)?.static_pod_path,
    };
    serve(&ServeOptions {
        root: g.root.clone(),
        data_dir: g.data_dir.clone(),
        pid_file: a.pid_file,
        manifests,
    })?;
    Ok(0)
}
