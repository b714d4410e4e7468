//! `podrun kubeconfig`: prints the admin kubeconfig the agent wrote for its API.
use super::GlobalOpts;

/// Print the admin kubeconfig of this node's Kubernetes API (written by `podrun serve`).
#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {}

pub fn run(g: &GlobalOpts, _a: KubeconfigArgs) -> anyhow::Result<i32> {
    let config = crate::node_config::load(&g.data_dir)?;
    let path = &crate::api::kubeconfig_path(config.admin_kubeconfig.as_deref(), &g.data_dir);
    match std::fs::read_to_string(path) {
        Ok(text) => {
            print!("{text}");
            Ok(0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "error: no admin kubeconfig at {}: `podrun serve` writes it when its API starts",
                path.display()
            );
            Ok(1)
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}
