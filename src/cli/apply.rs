//! `podrun apply -f FILE|DIR|-` (kubectl apply, for the kinds podrun runs): prints
//! `pod/x created|unchanged|configured` (`configmap/x ...`), or the API server's
//! refusal; an object of a kind podrun does not run gets kubectl's error line, exit 1.
use super::pod::{ns_of, objects_in};
use super::GlobalOpts;
use crate::pod::apply::{apply, ApplyError};
use std::path::{Path, PathBuf};

/// Create or update pods from manifests, as `kubectl apply` does.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them, or `-` (stdin); may be repeated.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// With a directory: its sub-directories too.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Delete and re-create a pod that cannot be changed in place.
    #[arg(long)]
    pub force: bool,
}

pub fn run(g: &GlobalOpts, a: ApplyArgs) -> anyhow::Result<i32> {
    let ctx = crate::pod::PodContext {
        root: g.root.clone(),
        data_dir: g.data_dir.clone(),
    };
    let mut rc = 0;
    for file in expand(&a.files, a.recursive) {
        rc = rc.max(apply_file(&ctx, &file, &a)?);
    }
    Ok(rc)
}

/// Whether `delete -f ARG` names manifests (kubectl) rather than a container (runc).
pub fn is_manifest_arg(f: &str) -> bool {
    let p = Path::new(f);
    f == "-"
        || p.is_dir()
        || (p.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json")))
}

/// The manifests named: files as given, directories' .yaml/.yml/.json files (sorted), as
/// kubectl takes `-f DIR`.
pub fn expand(files: &[String], recursive: bool) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let p = Path::new(f);
        if f != "-" && p.is_dir() {
            collect(p, recursive, &mut out);
        } else {
            out.push(f.clone());
        }
    }
    out
}

fn collect(dir: &Path, recursive: bool, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                collect(&p, true, out);
            }
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(p.display().to_string());
        }
    }
}

fn apply_file(ctx: &crate::pod::PodContext, file: &str, a: &ApplyArgs) -> anyhow::Result<i32> {
    let (source, text) = match super::pod::read_manifest(Some(file)) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let ns = a.namespace.as_deref();
    let (wl_rc, rest) = super::workloads::apply_workloads(ctx, &text, ns, &source);
    let Some(rest) = rest else {
        return Ok(wl_rc);
    };
    let m = match super::pod::parse_manifest(source, &rest, ns) {
        Ok(m) => m,
        Err(code) => return Ok(code.max(wl_rc)),
    };
    if let Err(e) = crate::pod::preflight(ctx, &m.pods) {
        eprintln!("error: {e}");
        return Ok(1);
    }
    // What pods use (Namespaces, ConfigMaps, Secrets, claims) goes first.
    let mut rc = super::get_objects::apply_objects(ctx, &m);
    for pod in &m.pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = ns_of(pod);
        let objects = crate::objects::configs::pod_objects(ctx, pod, &objects_in(&m, &ns));
        match apply(ctx, pod, &objects, a.force) {
            Ok(done) => println!("pod/{name} {}", done.word()),
            Err(ApplyError::Forbidden(msg)) => {
                eprintln!("{msg}");
                rc = 1;
            }
            Err(e) => {
                eprintln!("error: {e}");
                rc = 1;
            }
        }
    }
    Ok(rc.max(wl_rc).max(super::get_objects::report_not_run(&m)))
}
