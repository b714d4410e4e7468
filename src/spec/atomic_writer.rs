//! kubelet's AtomicWriter for configMap, secret, downwardAPI and projected volumes: the
//! files live in a timestamped directory `..<time>`, `..data` links to it, and each
//! top-level name links to `..data/<name>`. An update writes a new timestamped
//! directory and renames a new `..data` link over the old one, so a reader sees the old
//! set of files or the new one, never a mix.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One file of the volume: path relative to the volume, content, mode.
pub type File = (String, Vec<u8>, i32);

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> super::VolumeError {
    let path = path.to_path_buf();
    move |source| super::VolumeError::Io { op, path, source }
}

/// A relative path that stays inside the volume.
fn safe(rel: &str) -> bool {
    !rel.is_empty() && !rel.starts_with('/') && !rel.split('/').any(|c| c == ".." || c.is_empty())
}

/// What the volume holds now (through `..data`): path → (content, mode).
fn current(dir: &Path) -> Option<BTreeMap<String, (Vec<u8>, u32)>> {
    let data = dir.join(DATA);
    std::fs::symlink_metadata(&data).ok()?;
    let mut out = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let here = if rel.is_empty() {
            data.clone()
        } else {
            data.join(&rel)
        };
        for e in std::fs::read_dir(&here).ok()?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let sub = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                stack.push(sub);
            } else {
                let content = std::fs::read(e.path()).ok()?;
                out.insert(sub, (content, meta.permissions().mode() & 0o7777));
            }
        }
    }
    Some(out)
}

fn wanted(files: &[File]) -> BTreeMap<String, (Vec<u8>, u32)> {
    files
        .iter()
        .filter(|(rel, _, _)| safe(rel))
        .map(|(rel, data, mode)| {
            let m = u32::try_from(*mode).unwrap_or(0o644) & 0o7777;
            (rel.clone(), (data.clone(), m))
        })
        .collect()
}

/// The name of a new timestamped directory, as kubelet names it.
fn stamp() -> String {
    let now = crate::util::now();
    let nanos = now.subsec_nanosecond();
    format!("..{}.{nanos:09}", now.strftime("%Y_%m_%d_%H_%M_%S"))
}

/// Makes `dir` hold exactly `files`; false when it already did (nothing written).
pub fn write(dir: &Path, files: &[File]) -> Result<bool, super::VolumeError> {
    let want = wanted(files);
    if current(dir).as_ref() == Some(&want) {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let old_target = std::fs::read_link(dir.join(DATA)).ok();
    let mut name = stamp();
    while dir.join(&name).exists() {
        name.push('x');
    }
    let ts = dir.join(&name);
    std::fs::create_dir(&ts).map_err(io("create", &ts))?;
    std::fs::set_permissions(&ts, std::fs::Permissions::from_mode(0o755))
        .map_err(io("chmod", &ts))?;
    for (rel, (data, mode)) in &want {
        let path = ts.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::write(&path, data).map_err(io("write", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(io("chmod", &path))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&name, &tmp).map_err(io("link", &tmp))?;
    std::fs::rename(&tmp, dir.join(DATA)).map_err(io("rename", &tmp))?;
    let top: std::collections::BTreeSet<&str> = want
        .keys()
        .filter_map(|rel| rel.split('/').next())
        .collect();
    for t in &top {
        let link = dir.join(t);
        let target = format!("{DATA}/{t}");
        if std::fs::read_link(&link).is_ok_and(|l| l == Path::new(&target)) {
            continue;
        }
        // A file of the old layout (written in place) makes way for the link.
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&link).map_err(io("remove", &link))?,
            Ok(_) => std::fs::remove_file(&link).map_err(io("remove", &link))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&target, &link).map_err(io("link", &link))?;
    }
    remove_stale(dir, &top, old_target.as_deref(), &name);
    Ok(true)
}

/// Removes the previous timestamped directory and links to names no longer there.
fn remove_stale(dir: &Path, top: &std::collections::BTreeSet<&str>, old: Option<&Path>, new: &str) {
    if let Some(old) = old.filter(|o| *o != Path::new(new)) {
        let old_dir = dir.join(old);
        if old_dir.starts_with(dir) {
            let _ = std::fs::remove_dir_all(old_dir);
        }
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(name.as_str()) {
            continue;
        }
        let path = e.path();
        if std::fs::read_link(&path).is_ok_and(|l| l.starts_with(DATA)) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, data: &str) -> File {
        (rel.into(), data.as_bytes().to_vec(), 0o644)
    }

    #[test]
    fn an_update_swaps_the_data_link_and_drops_what_went() {
        let dir = std::env::temp_dir().join(format!("podrun-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(write(&dir, &[file("a", "1"), file("conf/b", "2")]).expect("write"));
        let first = std::fs::read_link(dir.join("..data")).expect("..data");
        assert_eq!(
            std::fs::read_link(dir.join("a")).expect("a"),
            Path::new("..data/a")
        );
        assert_eq!(std::fs::read_to_string(dir.join("conf/b")).expect("b"), "2");
        assert!(!write(&dir, &[file("a", "1"), file("conf/b", "2")]).expect("same"));

        assert!(write(&dir, &[file("a", "new")]).expect("update"));
        let second = std::fs::read_link(dir.join("..data")).expect("..data");
        assert_ne!(first, second);
        assert!(!dir.join(&first).exists(), "the old timestamped dir goes");
        assert_eq!(std::fs::read_to_string(dir.join("a")).expect("a"), "new");
        assert!(
            std::fs::symlink_metadata(dir.join("conf")).is_err(),
            "a key that went"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_of_the_old_layout_become_links() {
        let dir = std::env::temp_dir().join(format!("podrun-atomic-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("a"), "old").expect("old file");
        assert!(write(&dir, &[file("a", "1")]).expect("write"));
        assert_eq!(
            std::fs::read_link(dir.join("a")).expect("a"),
            Path::new("..data/a")
        );
        assert_eq!(std::fs::read_to_string(dir.join("a")).expect("a"), "1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
