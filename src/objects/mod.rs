//! Desired state: every object podrun was asked to keep (pods, ConfigMaps, Secrets,
//! Namespaces, and the kinds of [`kinds::KINDS`]), under the data dir so that it survives
//! a reboot, as a cluster keeps its objects in etcd. Runtime state stays under --root.
//!
//! Layout: `<data-dir>/objects/<resource>/<namespace>/<name>.json` (cluster-scoped
//! objects under the namespace directory `_cluster`), each written atomically;
//! `<data-dir>/objects/lock` serialises writers that read before they write.
pub mod apply;
pub mod configs;
pub mod kinds;
pub mod namespaces;
pub mod storage;

use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};

/// What went wrong with a stored object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0:?} is not a valid object name")]
    BadName(String),
}

/// One object's place: its resource (plural, as the API names it), namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: &str, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// A path component that stays one directory entry.
fn valid(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\0'])
}

/// The desired-state store under one data dir.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    dir: PathBuf,
}

impl ObjectStore {
    pub fn new(data_dir: &Path) -> ObjectStore {
        ObjectStore {
            dir: data_dir.join("objects"),
        }
    }

    fn path(&self, key: &ObjectKey) -> Result<PathBuf, ObjectError> {
        for part in [&key.resource, &key.namespace, &key.name] {
            if !valid(part) {
                return Err(ObjectError::BadName(part.clone()));
            }
        }
        let file = format!("{}.json", key.name);
        Ok(self.dir.join(&key.resource).join(&key.namespace).join(file))
    }

    /// Holds the store's lock: for a read-modify-write that must not interleave.
    pub fn lock(&self) -> Result<crate::util::FileLock, ObjectError> {
        let path = self.dir.join("lock");
        let io = |source| ObjectError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        crate::util::FileLock::exclusive(&path).map_err(io)
    }

    /// Stores `value` as the object at `key`, replacing what was there.
    pub fn put<T: Serialize>(&self, key: &ObjectKey, value: &T) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        let data = serde_json::to_vec_pretty(value).map_err(|source| ObjectError::Json {
            path: path.clone(),
            source,
        })?;
        let io = |source| ObjectError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        crate::util::write_atomic(&path, &data).map_err(io)
    }

    /// The object at `key`, None when there is none.
    pub fn get<T: DeserializeOwned>(&self, key: &ObjectKey) -> Result<Option<T>, ObjectError> {
        let path = self.path(key)?;
        read(&path)
    }

    /// Removes the object at `key`; false when there was none.
    pub fn delete(&self, key: &ObjectKey) -> Result<bool, ObjectError> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {
                // An emptied namespace directory goes too; a racing put recreates it.
                if let Some(parent) = path.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(ObjectError::Io { path, source }),
        }
    }

    /// Every object of `resource` (in `namespace`, or all), sorted by namespace and name;
    /// one that cannot be read is listed with its error, not dropped.
    pub fn list<T: DeserializeOwned>(
        &self,
        resource: &str,
        namespace: Option<&str>,
    ) -> Vec<(ObjectKey, Result<T, ObjectError>)> {
        let base = self.dir.join(resource);
        let namespaces: Vec<String> = match namespace {
            Some(ns) => vec![ns.to_string()],
            None => entries(&base),
        };
        let mut out = Vec::new();
        for ns in namespaces {
            for file in entries(&base.join(&ns)) {
                // Skips write_atomic's temporary files (".NAME.tmp.PID") and anything else.
                let Some(name) = file.strip_suffix(".json").filter(|n| !n.starts_with('.')) else {
                    continue;
                };
                let key = ObjectKey::new(resource, &ns, name);
                let path = base.join(&ns).join(&file);
                let value = read(&path).and_then(|v| {
                    v.ok_or_else(|| ObjectError::Io {
                        path: path.clone(),
                        source: std::io::ErrorKind::NotFound.into(),
                    })
                });
                out.push((key, value));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ObjectError> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| ObjectError::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ObjectError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The names in a directory (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn store(tag: &str) -> (ObjectStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("podrun-objects-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (ObjectStore::new(&dir), dir)
    }

    #[test]
    fn an_object_put_is_got_back_and_deleted() {
        let (s, dir) = store("put");
        let key = ObjectKey::new("pods", "default", "web");
        assert!(s.get::<Value>(&key).expect("get").is_none());
        s.put(&key, &json!({"kind": "Pod"})).expect("put");
        assert_eq!(
            s.get::<Value>(&key).expect("get"),
            Some(json!({"kind": "Pod"}))
        );
        assert!(dir.join("objects/pods/default/web.json").exists());
        assert!(s.delete(&key).expect("delete"));
        assert!(!s.delete(&key).expect("delete again"));
        assert!(s.get::<Value>(&key).expect("get").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn list_is_sorted_by_namespace_and_name_and_keeps_damaged_objects() {
        let (s, dir) = store("list");
        for (ns, name) in [("kube-system", "b"), ("default", "z"), ("default", "a")] {
            s.put(&ObjectKey::new("pods", ns, name), &json!({"n": name}))
                .expect("put");
        }
        std::fs::write(dir.join("objects/pods/default/bad.json"), "{").expect("write");
        std::fs::write(dir.join("objects/pods/default/.x.json.tmp.1"), "{").expect("write");
        let all = s.list::<Value>("pods", None);
        let names: Vec<String> = all
            .iter()
            .map(|(k, _)| format!("{}/{}", k.namespace, k.name))
            .collect();
        assert_eq!(
            names,
            ["default/a", "default/bad", "default/z", "kube-system/b"]
        );
        assert!(all[1]
            .1
            .as_ref()
            .is_err_and(|e| e.to_string().contains("bad.json")));
        assert_eq!(s.list::<Value>("pods", Some("kube-system")).len(), 1);
        assert!(s.list::<Value>("deployments", None).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn names_that_would_leave_their_directory_are_refused() {
        let (s, dir) = store("names");
        for bad in ["..", "a/b", "", "."] {
            let key = ObjectKey::new("pods", "default", bad);
            assert!(
                matches!(s.put(&key, &json!({})), Err(ObjectError::BadName(_))),
                "{bad:?}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
