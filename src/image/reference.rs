//! Image references parsed and normalised as Docker and Kubernetes do
//! (`nginx` → `docker.io/library/nginx:latest`).
use std::fmt;

/// The registry Docker Hub names are resolved against.
pub const DOCKER_HUB: &str = "docker.io";

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: &'static str,
}

/// A fully normalised image reference: registry, repository, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), e.g. `docker.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/nginx`.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Digest (`sha256:<64 hex>`) when the reference pins one.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `input` the way `docker pull` does.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let err = |reason| ReferenceError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        if input.len() > 4096 {
            return Err(err("too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(err)?;
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/', so `host:5000/x` is no tag.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                validate_tag(t).map_err(err)?;
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(err("empty repository name"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        validate_registry(&registry).map_err(err)?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(err)?;
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository` without tag or digest, e.g. `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The shortest form Docker prints in REPOSITORY columns (`nginx`, `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// True for registries Docker talks plain HTTP to by default.
    pub fn is_loopback_registry(&self) -> bool {
        let host = host_of(&self.registry);
        host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.")
    }
}

/// The host part of `host[:port]` (IPv6 in brackets kept whole).
pub fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry
            .find(']')
            .map(|i| &registry[..=i])
            .unwrap_or(registry);
    }
    registry.split(':').next().unwrap_or(registry)
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Checks `sha256:<64 lowercase hex>` (the only algorithm the store accepts).
pub fn validate_digest(d: &str) -> Result<(), &'static str> {
    let hex = d
        .strip_prefix("sha256:")
        .ok_or("digest must start with sha256:")?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("digest must be sha256: and 64 lowercase hex digits");
    }
    Ok(())
}

fn validate_tag(t: &str) -> Result<(), &'static str> {
    let ok_first = t
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok_first
        || t.len() > 128
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return Err("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    }
    Ok(())
}

fn validate_registry(r: &str) -> Result<(), &'static str> {
    if r.is_empty()
        || !r.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
    {
        return Err("invalid registry host");
    }
    let after_host = r.rsplit_once(']').map(|(_, p)| p).unwrap_or(r);
    if let Some((_, port)) = after_host.split_once(':') {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("registry port must be numeric");
        }
    }
    Ok(())
}

fn validate_repository(repo: &str) -> Result<(), &'static str> {
    for comp in repo.split('/') {
        let b = comp.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
            return Err(
                "repository components must be lowercase alphanumerics with . _ - separators",
            );
        }
        if !b
            .iter()
            .all(|c| alnum(c) || matches!(c, b'.' | b'_' | b'-'))
        {
            return Err(
                "repository components must be lowercase alphanumerics with . _ - separators",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.17.1"), "docker.io/library/nginx:1.17.1");
        assert_eq!(
            norm("library/busybox:1.30"),
            "docker.io/library/busybox:1.30"
        );
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("localhost/x:1"), "localhost/x:1");
        assert_eq!(norm("127.0.0.1:5000/a/b:v2"), "127.0.0.1:5000/a/b:v2");
        assert_eq!(norm("quay.io/coreos/etcd"), "quay.io/coreos/etcd:latest");
        let r = Reference::parse("localhost:5000/x").unwrap();
        assert!(r.is_loopback_registry());
        assert!(!Reference::parse("nginx").unwrap().is_loopback_registry());
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("nginx@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.to_string(), format!("docker.io/library/nginx@{d}"));
        let r = Reference::parse(&format!("nginx:1.17@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.17"));
        assert!(Reference::parse("nginx@sha256:abc").is_err());
        assert!(Reference::parse("nginx@md5:abc").is_err());
    }

    #[test]
    fn invalid_references_are_rejected() {
        assert!(Reference::parse("").is_err());
        assert!(Reference::parse("Nginx").is_err());
        assert!(Reference::parse("nginx:").is_err());
        assert!(Reference::parse("nginx:bad/tag").is_err());
        assert!(Reference::parse("a//b").is_err());
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar_name();
        assert_eq!(f("nginx"), "nginx");
        assert_eq!(f("user/app"), "user/app");
        assert_eq!(f("localhost:5000/x"), "localhost:5000/x");
    }
}
