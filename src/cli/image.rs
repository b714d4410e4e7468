//! Image commands: pull, import, images, rmi, image inspect/mount/unmount, login, logout.
use super::GlobalOpts;
use crate::image::{progress::human_size, ImageStore, ImportOptions, PullOptions, Reference};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry (OCI distribution API) into the local store.
    Pull(PullArgs),
    /// Import an OCI layout (dir or tar), a docker-archive tar, or a rootfs dir/tarball.
    Import(Box<ImportArgs>),
    /// List images in the local store.
    Images(ImagesArgs),
    /// Remove images (refused while a container uses them).
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Image subcommands: inspect, ls, rm, mount, unmount.
    #[command(subcommand)]
    Image(ImageSub),
    /// Log in to a registry: check the credentials, store them in the containers auth.json.
    Login(LoginArgs),
    /// Remove a registry's credentials from the containers auth.json.
    Logout(LogoutArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port], e.g. docker.io, 127.0.0.1:5000
    pub registry: String,
    #[arg(long, short)]
    pub username: Option<String>,
    /// Password on the command line (visible to other users; prefer --password-stdin).
    #[arg(long, short, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Auth file to write (default: $REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json).
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Allow plain HTTP and unverified TLS to the registry.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port]
    #[arg(required_unless_present = "all")]
    pub registry: Option<String>,
    /// Remove the credentials of every registry.
    #[arg(long, short)]
    pub all: bool,
    /// Auth file to change (default as for login).
    #[arg(long)]
    pub authfile: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ImageSub {
    /// Print images' manifest and config as JSON.
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images (same as `podrun images`).
    Ls(ImagesArgs),
    /// Remove images (same as `podrun rmi`).
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Pull an image (same as `podrun pull`).
    Pull(PullArgs),
    /// Import an image (same as `podrun import`).
    Import(Box<ImportArgs>),
    /// Prepare a writable rootfs for CONTAINER_ID from IMAGE; prints its path and mode.
    Mount { image: String, container_id: String },
    /// Unmount and remove the rootfs of CONTAINER_ID.
    Unmount { container_id: String },
    /// Remove dangling images (-a: every image no pod uses), the layers no image needs
    /// and the container overlays no pod owns.
    Prune {
        #[arg(long, short)]
        all: bool,
    },
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image reference, e.g. nginx:1.17.1, localhost:5000/app@sha256:…
    pub reference: String,
    /// Allow plain HTTP and unverified TLS to the registry.
    #[arg(long)]
    pub insecure: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// OCI layout dir/tar, docker-archive tar, or root filesystem dir/tarball.
    pub path: PathBuf,
    /// Name for the image (required for a root filesystem).
    #[arg(long, short)]
    pub tag: Option<String>,
    /// Default command: a JSON array or a shell string (run with /bin/sh -c).
    #[arg(long)]
    pub cmd: Option<String>,
    /// Entrypoint: a JSON array or a shell string.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", short)]
    pub env: Vec<String>,
    #[arg(long)]
    pub workdir: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    /// Exposed port, e.g. 80 or 53/udp (repeatable).
    #[arg(long)]
    pub expose: Vec<String>,
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only image IDs.
    #[arg(long, short)]
    pub quiet: bool,
    /// Output format: table (default) or json.
    #[arg(long, short = 'o', default_value = "table")]
    pub output: String,
}

pub fn run(g: &GlobalOpts, cmd: ImageCommand) -> anyhow::Result<i32> {
    let store = ImageStore::open(&g.data_dir)
        .with_context(|| format!("opening image store in {}", g.data_dir.display()))?;
    match cmd {
        ImageCommand::Pull(a) | ImageCommand::Image(ImageSub::Pull(a)) => pull(&store, a),
        ImageCommand::Import(a) | ImageCommand::Image(ImageSub::Import(a)) => import(&store, a),
        ImageCommand::Images(a) | ImageCommand::Image(ImageSub::Ls(a)) => images(&store, a),
        ImageCommand::Rmi { images } | ImageCommand::Image(ImageSub::Rm { images }) => {
            rmi(&store, &images)
        }
        ImageCommand::Image(ImageSub::Inspect { images }) => inspect(&store, &images),
        ImageCommand::Image(ImageSub::Mount {
            image,
            container_id,
        }) => {
            let img = store
                .resolve(&image)?
                .ok_or_else(|| anyhow::anyhow!("image {image:?} not found in the local store"))?;
            let r = store.prepare_rootfs(&img, &container_id)?;
            match &r.fallback_reason {
                Some(why) => println!("{} {} ({why})", r.path.display(), r.mode.as_str()),
                None => println!("{} {}", r.path.display(), r.mode.as_str()),
            }
            Ok(0)
        }
        ImageCommand::Login(a) => login(&g.data_dir, a),
        ImageCommand::Logout(a) => logout(a),
        ImageCommand::Image(ImageSub::Prune { all }) => {
            let pruned = crate::housekeeping::images::prune(&store, &g.root, &g.data_dir, all)?;
            // podman's output: the IDs of the removed images.
            for img in &pruned.images {
                println!("{}", img.config_digest.trim_start_matches("sha256:"));
            }
            Ok(0)
        }
        ImageCommand::Image(ImageSub::Unmount { container_id }) => {
            store.release_rootfs(&container_id)?;
            Ok(0)
        }
    }
}

/// A registry as login names it: `https://index.docker.io/v1/` → docker.io.
fn login_registry(r: &str) -> String {
    let r = r
        .strip_prefix("https://")
        .or_else(|| r.strip_prefix("http://"))
        .unwrap_or(r)
        .trim_end_matches('/');
    let host = r.split('/').next().unwrap_or(r);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => host.to_string(),
    }
}

/// Reads one line from stdin, without echo when it is a terminal.
fn read_secret_line(prompt: Option<&str>) -> anyhow::Result<String> {
    use nix::sys::termios;
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    if let (Some(p), Some(t)) = (prompt, &saved) {
        eprint!("{p}");
        let _ = std::io::stderr().flush();
        let mut quiet = t.clone();
        quiet.local_flags.remove(termios::LocalFlags::ECHO);
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let (Some(_), Some(t)) = (prompt, &saved) {
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, t);
        eprintln!();
    }
    r.context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn login(data_dir: &std::path::Path, a: LoginArgs) -> anyhow::Result<i32> {
    use crate::image::{auth, registry::Credentials, RegistriesConfig};
    let registry = login_registry(&a.registry);
    let username = match a.username {
        Some(u) => u,
        None => {
            eprint!("Username: ");
            read_secret_line(None)?
        }
    };
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => read_secret_line(None)?,
        (None, false) => read_secret_line(Some("Password: "))?,
    };
    if username.is_empty() || password.is_empty() {
        eprintln!("Error: logging in to {registry}: username and password are both required");
        return Ok(125);
    }
    let creds = Credentials { username, password };
    let cfg = RegistriesConfig::load(data_dir)?;
    if let Err(e) = ImageStore::check_login(&registry, &creds, a.insecure, &cfg) {
        eprintln!("Error: logging in to {registry}: {e}");
        return Ok(125);
    }
    let path = a.authfile.unwrap_or_else(auth::primary_auth_file);
    auth::store_login(&path, &registry, &creds)?;
    println!("Login Succeeded!");
    Ok(0)
}

fn logout(a: LogoutArgs) -> anyhow::Result<i32> {
    use crate::image::auth;
    let path = a.authfile.unwrap_or_else(auth::primary_auth_file);
    if a.all {
        auth::remove_login(&path, None)?;
        println!("Removed login credentials for all registries");
        return Ok(0);
    }
    let registry = login_registry(a.registry.as_deref().unwrap_or(""));
    if auth::remove_login(&path, Some(&registry))? {
        println!("Removed login credentials for {registry}");
        Ok(0)
    } else {
        eprintln!("Error: not logged into {registry} (in {})", path.display());
        Ok(125)
    }
}

fn pull(store: &ImageStore, a: PullArgs) -> anyhow::Result<i32> {
    let opts = PullOptions {
        insecure: a.insecure,
        progress: !a.quiet,
        registries: None,
        ..Default::default()
    };
    let img = store.pull(&a.reference, &opts)?;
    println!("{}", img.reference);
    if !a.quiet {
        println!("Digest: {}", img.manifest_digest);
    }
    Ok(0)
}

/// `["a","b"]` as JSON, else a shell string run by /bin/sh -c (Docker's shell form).
fn command_form(s: &str) -> anyhow::Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s).with_context(|| format!("parsing {s:?} as a JSON array"));
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), s.into()])
}

fn import(store: &ImageStore, a: Box<ImportArgs>) -> anyhow::Result<i32> {
    let opts = ImportOptions {
        tag: a.tag,
        cmd: a.cmd.as_deref().map(command_form).transpose()?,
        entrypoint: a.entrypoint.as_deref().map(command_form).transpose()?,
        env: a.env,
        workdir: a.workdir,
        user: a.user,
        exposed_ports: a.expose,
        stop_signal: a.stop_signal,
        progress: !a.quiet && crate::image::fsutil::stderr_is_tty(),
    };
    let imgs = store
        .import(&a.path, &opts)
        .with_context(|| format!("importing {}", a.path.display()))?;
    for i in imgs {
        println!(
            "{} sha256:{}",
            i.reference,
            &i.config_digest["sha256:".len()..]
        );
    }
    Ok(0)
}

/// REPOSITORY and TAG columns for a stored reference.
fn repo_tag(reference: &str) -> (String, String) {
    match Reference::parse(reference) {
        Ok(r) => (
            r.familiar_name(),
            r.tag.clone().unwrap_or_else(|| "<none>".into()),
        ),
        Err(_) => (reference.to_string(), "<none>".into()),
    }
}

/// "2 days ago" as Docker prints CREATED.
fn created_ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(crate::util::parse_rfc3339) else {
        return "N/A".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let s = (now - t).max(0);
    let (m, h) = (s / 60, s / 3600);
    let d = if s < 1 {
        "Less than a second".to_string()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{} days", h / 24)
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", h / 24 / 365)
    };
    format!("{d} ago")
}

fn images(store: &ImageStore, a: ImagesArgs) -> anyhow::Result<i32> {
    let list = store.list()?;
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &list {
            if seen.insert(i.short_id().to_string()) {
                println!("{}", i.short_id());
            }
        }
        return Ok(0);
    }
    if a.output == "json" {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for i in &list {
        let (repo, tag) = repo_tag(&i.reference);
        rows.push([
            repo,
            tag,
            i.short_id().to_string(),
            created_ago(i.created.as_deref()),
            human_size(i.size),
        ]);
    }
    print_table(&rows);
    Ok(0)
}

/// Columns padded to the widest cell plus three spaces (Docker's tabwriter layout).
fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<width$}", width = w[i] + 3));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn rmi(store: &ImageStore, images: &[String]) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in images {
        match store.remove(name) {
            Ok(img) => {
                println!("Untagged: {}", img.reference);
                println!("Deleted: {}", img.config_digest);
            }
            Err(e) => {
                eprintln!("podrun: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn inspect(store: &ImageStore, images: &[String]) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    let mut code = 0;
    for name in images {
        let Some(img) = store.resolve(name)? else {
            eprintln!("Error: No such image: {name}");
            code = 1;
            continue;
        };
        let cfg = store.config_json(&img)?;
        let (repo, _) = repo_tag(&img.reference);
        let tags: Vec<String> = store
            .list()?
            .into_iter()
            .filter(|i| i.manifest_digest == img.manifest_digest)
            .map(|i| i.reference)
            .collect();
        out.push(serde_json::json!({
            "Id": img.config_digest,
            "RepoTags": tags,
            "RepoDigests": [format!("{repo}@{}", img.manifest_digest)],
            "Created": img.created,
            "Size": img.size,
            "Architecture": cfg.get("architecture"),
            "Os": cfg.get("os"),
            "Config": cfg.get("config"),
            "RootFS": cfg.get("rootfs"),
            "Manifest": {
                "Digest": img.manifest_digest,
                "MediaType": img.manifest_media_type,
            },
            "Layers": img.layers,
            "UsedBy": store.users_of(&img.manifest_digest)?,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(code)
}
