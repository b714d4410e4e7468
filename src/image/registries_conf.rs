//! containers-registries.conf(5) version 2, as podman and CRI-O read it:
//! `unqualified-search-registries`, `[[registry]]` prefix/location/insecure/blocked/
//! mirror-by-digest-only and `[[registry.mirror]]` location/insecure, from
//! `/etc/containers/registries.conf` (`$CONTAINERS_REGISTRIES_CONF` names another) and
//! the drop-ins `registries.conf.d/*.conf` beside it (`$PODRUN_REGISTRIES_CONF_D` names
//! another directory), read in name order, a later table replacing one of the same prefix.
//! Version 1 tables and `[aliases]` are not read.
use super::error::{io_err, ImageError, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const CONF_ENV: &str = "CONTAINERS_REGISTRIES_CONF";
pub const CONF_D_ENV: &str = "PODRUN_REGISTRIES_CONF_D";
pub const DEFAULT_CONF: &str = "/etc/containers/registries.conf";

/// One `[[registry]]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryTable {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub mirror_by_digest_only: bool,
    #[serde(default)]
    pub mirror: Vec<MirrorTable>,
    /// The file it came from, for messages.
    #[serde(skip)]
    pub file: PathBuf,
}

/// One `[[registry.mirror]]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MirrorTable {
    pub location: String,
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ConfFile {
    #[serde(default)]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RegistryTable>,
}

/// The merged registries.conf settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistriesConf {
    pub unqualified_search_registries: Option<Vec<String>>,
    pub registries: Vec<RegistryTable>,
}

impl RegistriesConf {
    /// Reads the main file and its drop-ins; absent files are no settings.
    pub fn load() -> Result<RegistriesConf> {
        let main = std::env::var_os(CONF_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONF));
        let dropins = std::env::var_os(CONF_D_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| main.with_file_name("registries.conf.d"));
        let mut files = vec![main];
        match std::fs::read_dir(&dropins) {
            Ok(rd) => {
                let mut more: Vec<PathBuf> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                    .collect();
                more.sort();
                files.extend(more);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::NotADirectory => {}
            Err(e) => return Err(io_err("read directory", &dropins)(e)),
        }
        let mut conf = RegistriesConf::default();
        for f in files {
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", &f)(e)),
            };
            conf.merge(parse(&text, &f)?);
        }
        Ok(conf)
    }

    fn merge(&mut self, other: RegistriesConf) {
        if other.unqualified_search_registries.is_some() {
            self.unqualified_search_registries = other.unqualified_search_registries;
        }
        for t in other.registries {
            self.registries.retain(|o| o.prefix != t.prefix);
            self.registries.push(t);
        }
    }

    /// The table whose prefix is the longest match of `name` (`registry/repository`).
    pub fn find(&self, name: &str) -> Option<&RegistryTable> {
        self.registries
            .iter()
            .filter(|t| prefix_matches(&t.prefix, name))
            .max_by_key(|t| t.prefix.len())
    }
}

/// Parses one registries.conf; errors name the file and say what is wrong.
pub fn parse(text: &str, file: &Path) -> Result<RegistriesConf> {
    let bad = |reason: String| ImageError::Invalid {
        what: file.display().to_string(),
        reason,
    };
    // Unknown top-level keys (aliases, short-name-mode, v1 tables) are other tools' business.
    let f: ConfFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut registries = Vec::new();
    for (i, mut t) in f.registry.into_iter().enumerate() {
        if t.prefix.is_empty() {
            t.prefix = t.location.clone();
        }
        if t.prefix.is_empty() {
            return Err(bad(format!(
                "[[registry]] #{}: neither prefix nor location is set",
                i + 1
            )));
        }
        if t.prefix.contains("://") || t.location.contains("://") {
            return Err(bad(format!(
                "[[registry]] prefix {:?}: prefix and location are host[:port][/namespace], without a scheme",
                t.prefix
            )));
        }
        if let Some(m) = t.mirror.iter().find(|m| m.location.is_empty()) {
            let _ = m;
            return Err(bad(format!(
                "[[registry.mirror]] of prefix {:?}: location is empty",
                t.prefix
            )));
        }
        t.file = file.to_path_buf();
        registries.push(t);
    }
    Ok(RegistriesConf {
        unqualified_search_registries: f.unqualified_search_registries,
        registries,
    })
}

/// `prefix` matches `name` when name starts with it and continues with a separator.
fn prefix_matches(prefix: &str, name: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match name.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => rest.starts_with('/'),
        None => false,
    }
}

/// `name` with `prefix` replaced by `location` (the remap of registries.conf).
pub fn rewrite(name: &str, prefix: &str, location: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let rest = name.strip_prefix(prefix).unwrap_or("");
    format!("{}{rest}", location.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_location_defaults_prefix() {
        let c = parse(
            r#"
unqualified-search-registries = ["example.com", "docker.io"]
short-name-mode = "enforcing"
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000"
insecure = true
[[registry]]
prefix = "docker.io/library/nginx"
location = "internal.example:5000/hub/nginx"
blocked = false
[aliases]
"x" = "docker.io/library/x"
"#,
            Path::new("r.conf"),
        )
        .unwrap();
        assert_eq!(
            c.unqualified_search_registries.as_deref(),
            Some(&["example.com".to_string(), "docker.io".to_string()][..])
        );
        let t = c.find("docker.io/library/busybox").unwrap();
        assert_eq!(t.prefix, "docker.io");
        assert_eq!(t.mirror[0].location, "127.0.0.1:5000");
        let t = c.find("docker.io/library/nginx").unwrap();
        assert_eq!(
            rewrite("docker.io/library/nginx", &t.prefix, &t.location),
            "internal.example:5000/hub/nginx"
        );
        assert!(c.find("docker.io/library/nginxx").unwrap().prefix == "docker.io");
        assert!(c.find("quay.io/x").is_none());
    }

    #[test]
    fn bad_files_are_named() {
        let e = parse("[[registry]]\ninsecure = true\n", Path::new("/x/r.conf"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/r.conf") && e.contains("neither prefix nor location"),
            "{e}"
        );
        let e = parse("[[registry]\n", Path::new("/x/r.conf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/r.conf"), "{e}");
        let e = parse(
            "[[registry]]\nlocation = \"http://a\"\n",
            Path::new("/x/r.conf"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("without a scheme"), "{e}");
    }
}
