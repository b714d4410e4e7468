//! `linux.cgroupsPath` → one directory per hierarchy, with runc's cgroupfs semantics.
use super::layout::Mount;
use super::{CgroupError, Result};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A cleaned cgroupsPath: relative to the hierarchy root (absolute) or to the caller's
/// own cgroup (relative); never contains "..", "." or empty components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inner {
    pub absolute: bool,
    pub rel: String,
}

fn invalid(path: &str, reason: &str) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// Normalises a cgroupsPath as runc's CleanPath does: "." and "//" vanish, ".." cannot
/// climb above the start (so "../../x" is "x").
pub(crate) fn clean(cgroups_path: &str) -> Result<Inner> {
    if cgroups_path.is_empty() {
        return Err(invalid(
            cgroups_path,
            "empty (the runtime chooses a default, e.g. /podrun/<id>)",
        ));
    }
    if cgroups_path.contains('\0') {
        return Err(invalid(cgroups_path, "contains a NUL byte"));
    }
    let expanded;
    let p = if !cgroups_path.starts_with('/') && cgroups_path.contains(':') {
        expanded = systemd_to_cgroupfs(cgroups_path)?;
        expanded.as_str()
    } else {
        cgroups_path
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let absolute = p.starts_with('/');
    if parts.is_empty() && !absolute {
        return Err(invalid(cgroups_path, "names no cgroup"));
    }
    Ok(Inner {
        absolute,
        rel: parts.join("/"),
    })
}

/// Converts systemd's "slice:prefix:name" to the cgroupfs path systemd would create:
/// "kubepods-burstable.slice:cri:abc" → "/kubepods.slice/kubepods-burstable.slice/cri-abc.scope".
/// An empty slice means system.slice; a name ending in ".slice" is used as is.
pub fn systemd_to_cgroupfs(cgroups_path: &str) -> Result<String> {
    let parts: Vec<&str> = cgroups_path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(
            cgroups_path,
            "systemd form must be slice:prefix:name",
        ));
    };
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        return Err(invalid(
            cgroups_path,
            "systemd unit name must be non-empty, without '/'",
        ));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(slice).map_err(|r| invalid(cgroups_path, r))?;
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(&unit);
    Ok(path)
}

/// "a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" is the root.
fn expand_slice(slice: &str) -> std::result::Result<String, &'static str> {
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err("slice must end in .slice");
    };
    if slice.contains('/') {
        return Err("slice must not contain '/'");
    }
    if base == "-" {
        return Ok("/".into());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err("malformed slice name");
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for comp in base.split('-') {
        prefix.push_str(comp);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
        prefix.push('-');
    }
    Ok(out)
}

/// Lines of /proc/self/cgroup as (controllers field, path), read once.
fn own_cgroups() -> Result<&'static Vec<(String, String)>> {
    static OWN: OnceLock<std::result::Result<Vec<(String, String)>, String>> = OnceLock::new();
    OWN.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
        Ok(parse_proc_cgroup(&text))
    })
    .as_ref()
    .map_err(|e| CgroupError::Io {
        path: "/proc/self/cgroup".into(),
        msg: e.clone(),
    })
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            Some((ctrls.to_string(), path.to_string()))
        })
        .collect()
}

/// The caller's cgroup in the hierarchy whose /proc/self/cgroup key is `key` ("" for
/// cgroup2), relative to what `mount` shows of that hierarchy.
fn own_in(mount: &Mount, key: &str, own: &[(String, String)]) -> Result<String> {
    let set = |k: &str| {
        let mut v: Vec<String> = k.split(',').map(str::to_string).collect();
        v.sort();
        v
    };
    let want = set(key);
    let Some((_, p)) = own.iter().find(|(k, _)| set(k) == want) else {
        return Err(CgroupError::Io {
            path: "/proc/self/cgroup".into(),
            msg: format!("no line for hierarchy {key:?}"),
        });
    };
    let p = match mount.root.as_str() {
        "/" => p.as_str(),
        root => p.strip_prefix(root).unwrap_or(p),
    };
    Ok(p.trim_start_matches('/').to_string())
}

fn join(base: PathBuf, parts: &[&str]) -> PathBuf {
    let mut out = base;
    for p in parts {
        if !p.is_empty() {
            out.push(p);
        }
    }
    out
}

/// The directory of `inner` in a v1 hierarchy (or hybrid's cgroup2 one, key ""):
/// absolute from the mount point, relative under the caller's own cgroup.
pub(crate) fn resolve_v1(mount: &Mount, key: &str, inner: &Inner) -> Result<PathBuf> {
    resolve_v1_with(mount, key, inner, own_cgroups)
}

fn resolve_v1_with<'a>(
    mount: &Mount,
    key: &str,
    inner: &Inner,
    own: impl FnOnce() -> Result<&'a Vec<(String, String)>>,
) -> Result<PathBuf> {
    if inner.absolute {
        return Ok(join(mount.mountpoint.clone(), &[&inner.rel]));
    }
    let own = own_in(mount, key, own()?)?;
    Ok(join(mount.mountpoint.clone(), &[&own, &inner.rel]))
}

/// The directory of `inner` in a pure v2 host: absolute from the mount point, relative
/// under the parent of the caller's cgroup (the caller's own cgroup has processes, so
/// it cannot delegate controllers to a child; runc does the same).
pub(crate) fn resolve_v2(mount: &Mount, inner: &Inner) -> Result<PathBuf> {
    resolve_v2_with(mount, inner, own_cgroups)
}

fn resolve_v2_with<'a>(
    mount: &Mount,
    inner: &Inner,
    own: impl FnOnce() -> Result<&'a Vec<(String, String)>>,
) -> Result<PathBuf> {
    if inner.absolute {
        return Ok(join(mount.mountpoint.clone(), &[&inner.rel]));
    }
    let own = own_in(mount, "", own()?)?;
    let parent = own.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    Ok(join(mount.mountpoint.clone(), &[parent, &inner.rel]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(mp: &str, root: &str) -> Mount {
        Mount {
            mountpoint: mp.into(),
            root: root.into(),
        }
    }

    #[test]
    fn cleans_like_runc() {
        let c = clean("/kubepods//burstable/./pod1/").unwrap();
        assert_eq!(
            (c.absolute, c.rel.as_str()),
            (true, "kubepods/burstable/pod1")
        );
        let c = clean("../../etc/x").unwrap();
        assert_eq!((c.absolute, c.rel.as_str()), (false, "etc/x"));
        let c = clean("/../..").unwrap();
        assert_eq!((c.absolute, c.rel.as_str()), (true, ""));
        assert!(clean("").is_err());
        assert!(clean("..").is_err());
    }

    #[test]
    fn systemd_paths_expand_like_systemd() {
        assert_eq!(
            systemd_to_cgroupfs("kubepods-burstable-pod12.slice:cri-containerd:abc").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-abc.scope"
        );
        assert_eq!(
            systemd_to_cgroupfs(":podrun:c1").unwrap(),
            "/system.slice/podrun-c1.scope"
        );
        assert_eq!(systemd_to_cgroupfs("-.slice:p:x").unwrap(), "/p-x.scope");
        assert_eq!(
            systemd_to_cgroupfs("machine.slice::sub.slice").unwrap(),
            "/machine.slice/sub.slice"
        );
        let c = clean("user.slice:podrun:c2").unwrap();
        assert_eq!(
            (c.absolute, c.rel.as_str()),
            (true, "user.slice/podrun-c2.scope")
        );
        assert!(systemd_to_cgroupfs("a--b.slice:p:x").is_err());
        assert!(systemd_to_cgroupfs("notaslice:p:x").is_err());
        assert!(systemd_to_cgroupfs("a.slice:x").is_err());
    }

    #[test]
    fn absolute_paths_hang_off_each_mount() {
        let inner = clean("/podrun/c1").unwrap();
        let m = mount("/sys/fs/cgroup/memory", "/");
        assert_eq!(
            resolve_v1(&m, "memory", &inner).unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/podrun/c1")
        );
        let m = mount("/sys/fs/cgroup", "/");
        assert_eq!(
            resolve_v2(&m, &inner).unwrap(),
            PathBuf::from("/sys/fs/cgroup/podrun/c1")
        );
    }

    #[test]
    fn relative_paths_follow_the_callers_cgroup() {
        let own = parse_proc_cgroup("4:memory:/process_api/ab\n1:cpu:/\n0::/user.slice/s.scope\n");
        let m = mount("/sys/fs/cgroup/memory", "/");
        assert_eq!(own_in(&m, "memory", &own).unwrap(), "process_api/ab");
        assert_eq!(own_in(&m, "cpu", &own).unwrap(), "");
        let ns = mount("/sys/fs/cgroup/memory", "/process_api");
        assert_eq!(own_in(&ns, "memory", &own).unwrap(), "ab");
        assert!(own_in(&m, "pids", &own).is_err());

        let inner = clean("podrun/c1").unwrap();
        assert_eq!(
            resolve_v1_with(&m, "memory", &inner, || Ok(&own)).unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/ab/podrun/c1")
        );
        let v2 = mount("/sys/fs/cgroup", "/");
        assert_eq!(
            resolve_v2_with(&v2, &inner, || Ok(&own)).unwrap(),
            PathBuf::from("/sys/fs/cgroup/user.slice/podrun/c1")
        );
        let top = parse_proc_cgroup("0::/\n");
        assert_eq!(
            resolve_v2_with(&v2, &inner, || Ok(&top)).unwrap(),
            PathBuf::from("/sys/fs/cgroup/podrun/c1")
        );
    }
}
