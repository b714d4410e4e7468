//! Command-line surface: global flags, the subcommand tree, and error reporting.
//!
//! Each area owns its own file: `oci` (runc-compatible lifecycle), `image` (store, pull,
//! import), `pod` (kubectl-like pod commands), `events` (`get events`). This file only
//! wires them together.
pub mod apply;
pub mod completion;
pub mod describe_pod;
pub mod events;
pub mod get_objects;
pub mod image;
pub mod kubeconfig;
pub mod node;
pub mod oci;
pub mod pod;
pub mod printers;
pub mod serve;
pub mod top;
pub mod tty;
pub mod workloads;
pub mod workloads_rollout;

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Flags accepted before any subcommand, as runc accepts them.
#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Root directory for container state (runc's --root).
    #[arg(
        long,
        global = true,
        env = "PODRUN_ROOT",
        default_value = "/run/podrun"
    )]
    pub root: PathBuf,
    /// Persistent data: image store, unpacked layers, container overlays, node.json.
    #[arg(
        long = "data-dir",
        global = true,
        env = "PODRUN_DATA_DIR",
        default_value = "/var/lib/podrun"
    )]
    pub data_dir: PathBuf,
    /// Write runtime logs to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Verbose logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// The node configuration file (KubeletConfiguration), default
    /// /etc/podrun/config.yaml, else <data-dir>/config.yaml; when named it must exist.
    #[arg(long, global = true, env = "PODRUN_NODE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// runc's: cgroupsPath is "slice:prefix:name" and the cgroup systemd's transient scope
    /// (over D-Bus where systemd runs, else cgroupfs at its path; see runtime::systemd).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
}

/// The environment variables podrun reads (`--help` lists them; the README too).
pub const ENVIRONMENT_HELP: &str = "\
Environment:
  PODRUN_ROOT                state directory (--root), default /run/podrun
  PODRUN_DATA_DIR            data directory (--data-dir), default /var/lib/podrun
  PODRUN_POD_LOG_DIR         pod logs, default /var/log/pods
  PODRUN_NODE_CONFIG         node configuration file (--config), default
                             /etc/podrun/config.yaml, else <data-dir>/config.yaml
  PODRUN_NODE_NAME           node name, default the host name
  PODRUN_NETWORK             bridge | cni | none (overrides <data-dir>/network.json)
  PODRUN_BRIDGE              bridge name, default podrun0
  PODRUN_POD_CIDR            pod subnet, default 10.88.0.0/16
  PODRUN_CNI_CONF_DIR        CNI configs, default /etc/cni/net.d
  PODRUN_ROOTFS_MODE         copy: copy image layers instead of an overlay mount
  PODRUN_DEVICES_BPF         1: device rules as eBPF on a hybrid host's cgroup2 too
  PODRUN_CRIU                criu program for checkpoint/restore, default criu
  PODRUN_REGISTRIES_CONFIG   registries.json, default <data-dir>/ then /etc/podrun/
  CONTAINERS_REGISTRIES_CONF registries.conf, default /etc/containers/registries.conf
  PODRUN_REGISTRIES_CONF_D   drop-ins, default registries.conf.d beside registries.conf
  REGISTRY_AUTH_FILE         auth file login writes and pulls read first
  XDG_RUNTIME_DIR, XDG_CONFIG_HOME, DOCKER_CONFIG, HOME
                             where the other auth files are (see README)
  PODRUN_PROBE_TRACE         file to trace every probe run to (benchmarks)";

#[derive(Parser, Debug)]
#[command(
    name = "podrun",
    version,
    about = "Run Kubernetes pods on this host; a runc-compatible OCI runtime",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Oci(oci::OciCommand),
    #[command(flatten)]
    Image(image::ImageCommand),
    #[command(flatten)]
    Pod(pod::PodCommand),
    #[command(flatten)]
    Node(node::NodeCommand),
    /// Run the node agent (foreground): supervises the pods' supervisors.
    Serve(serve::ServeArgs),
    /// Create or update pods from manifests, as `kubectl apply` does.
    Apply(apply::ApplyArgs),
    /// CPU and memory of pods and the node, as `kubectl top` shows them.
    Top(top::TopArgs),
    /// Print the admin kubeconfig of this node's Kubernetes API.
    Kubeconfig(kubeconfig::KubeconfigArgs),
    #[command(flatten)]
    Docs(completion::DocsCommand),
    #[command(flatten)]
    Workloads(workloads::WorkloadCommand),
}

/// Runs one parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    // State and data are root's alone (0700). Failure here (not root, read-only fs) is
    // left for the command itself to report where it matters.
    let g = &cli.global;
    if let Some(config) = &g.config {
        // Through the environment, so the supervisors podrun starts read the same file.
        // Single-threaded here, before any command runs.
        let config = std::path::absolute(config).unwrap_or_else(|_| config.clone());
        std::env::set_var(crate::node_config::ENV, config);
    }
    if let Command::Docs(c) = cli.command {
        return completion::run(c);
    }
    let _ = crate::util::ensure_private_dir(&g.root, g.root == Path::new("/run/podrun"));
    if !matches!(cli.command, Command::Oci(_)) {
        let default = Path::new("/var/lib/podrun");
        let _ = crate::util::ensure_private_dir(&g.data_dir, g.data_dir == default);
    }
    match cli.command {
        Command::Oci(c) => oci::run(&cli.global, c),
        Command::Image(c) => image::run(&cli.global, c),
        Command::Pod(c) => pod::run(&cli.global, c),
        Command::Node(c) => node::run(&cli.global, c),
        Command::Serve(a) => serve::run(&cli.global, a),
        Command::Apply(a) => apply::run(&cli.global, a),
        Command::Top(a) => top::run(&cli.global, a),
        Command::Kubeconfig(a) => kubeconfig::run(&cli.global, a),
        Command::Docs(c) => completion::run(c),
        Command::Workloads(c) => workloads::run(&cli.global, c),
    }
}

/// Prints an error as one clear line (the whole context chain) on stderr.
pub fn report_error(err: &anyhow::Error) {
    let mut line = format!("{err}");
    for cause in err.chain().skip(1) {
        line.push_str(": ");
        line.push_str(&cause.to_string());
    }
    eprintln!("podrun: {line}");
}
