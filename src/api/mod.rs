//! The Kubernetes API on this node: the part of the API server that podrun runs, served
//! by the agent over HTTPS so that the real kubectl (and its tools) work against it.
//!
//! It runs in its own thread with a single-threaded tokio runtime, beside the agent's
//! poll loop; it reads the same state `podrun get` reads (the pod store under --root,
//! the object store and node.json under the data dir): there is one source of truth.
//! Every client with a certificate from the node CA is cluster-admin (no RBAC yet).
pub mod certs;
pub mod discovery;
pub mod logs;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod table;
pub mod watch;
pub mod writes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What stops the API from serving.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Cert(String),
    #[error("TLS: {0}")]
    Tls(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ApiError {
    let what = what.into();
    move |source| ApiError::Io { what, source }
}

/// Where the API serves and what it reads.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub address: SocketAddr,
    /// The admin kubeconfig to write (0600).
    pub kubeconfig: PathBuf,
    pub node_name: String,
}

/// The API's options from the node configuration of a data dir.
pub fn options(root: &Path, data_dir: &Path) -> Result<ApiOptions, String> {
    let config = crate::node_config::load(data_dir).map_err(|e| e.to_string())?;
    let node_name = crate::node::NodeStore::new(data_dir)
        .load()
        .map(|n| crate::node::node_name(&n).to_string())
        .unwrap_or_else(|_| crate::node::default_node_name());
    Ok(ApiOptions {
        root: root.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        address: SocketAddr::new(config.api_address, config.api_port),
        kubeconfig: kubeconfig_path(config.admin_kubeconfig.as_deref(), data_dir),
        node_name,
    })
}

/// The admin kubeconfig's path: the configured one, else /etc/podrun/admin.kubeconfig
/// for the default data dir and `<data-dir>/admin.kubeconfig` for another (a private
/// agent, as the tests run, never writes into /etc).
pub fn kubeconfig_path(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    match configured {
        Some(p) => p.to_path_buf(),
        None if data_dir == Path::new("/var/lib/podrun") => {
            PathBuf::from(crate::node_config::DEFAULT_ADMIN_KUBECONFIG)
        }
        None => data_dir.join("admin.kubeconfig"),
    }
}

/// The server URL clients use for an address (a literal IP, bracketed for IPv6).
pub fn server_url(address: SocketAddr) -> String {
    format!("https://{address}")
}

/// Starts the API for the agent: credentials, kubeconfig, listener, then its thread.
/// Call it after the agent blocked its signals, so the thread inherits the mask.
pub fn start(opts: ApiOptions) -> Result<std::thread::JoinHandle<()>, ApiError> {
    let pki = certs::load_or_create(&opts.data_dir, &opts.node_name)?;
    let listener = std::net::TcpListener::bind(opts.address)
        .map_err(io(format!("listening on {}", opts.address)))?;
    listener
        .set_nonblocking(true)
        .map_err(io("the API listener"))?;
    let tls = server::tls_config(&pki)?;
    if let Some(dir) = opts.kubeconfig.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    }
    let text = certs::admin_kubeconfig(&pki, &server_url(opts.address));
    certs::write_private(&opts.kubeconfig, &text, 0o600)?;
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || server::run(listener, tls, opts))
        .map_err(io("starting the API thread"))
}

/// What `podrun serve` calls: starts the API, or says on stderr why it does not serve
/// (the agent keeps supervising pods either way).
pub fn start_for_agent(root: &Path, data_dir: &Path) -> Option<std::thread::JoinHandle<()>> {
    let opts = match options(root, data_dir) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("podrun serve: the Kubernetes API does not serve: {e}");
            return None;
        }
    };
    let (address, kubeconfig) = (opts.address, opts.kubeconfig.clone());
    match start(opts) {
        Ok(h) => {
            eprintln!(
                "podrun serve: Kubernetes API on {}, admin kubeconfig {}",
                server_url(address),
                kubeconfig.display()
            );
            Some(h)
        }
        Err(e) => {
            eprintln!("podrun serve: the Kubernetes API does not serve: {e}");
            None
        }
    }
}
