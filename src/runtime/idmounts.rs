//! Idmapped bind mounts of config.json (`idmap`/`ridmap` options, mount-level
//! `uidMappings`/`gidMappings`), made by the runtime before the clone: setting
//! MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN over the filesystem's user namespace, which the
//! container init gives up when it enters its own. The init attaches the detached trees.
use super::error::{Result, RuntimeError};
use crate::idmap::{self, IdMap};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

fn to_maps(m: &[LinuxIdMapping]) -> Vec<IdMap> {
    m.iter()
        .map(|m| IdMap {
            inside: m.container_id(),
            outside: m.host_id(),
            count: m.size(),
        })
        .collect()
}

/// A uid map and a gid map.
type Maps = (Vec<IdMap>, Vec<IdMap>);

/// What an idmapped mount asks for: recursive or not, and its own mapping if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdmapRequest {
    pub recursive: bool,
    pub maps: Option<Maps>,
}

/// The idmap a mount asks for, if any (runtime-spec: `idmap`, `ridmap`, or mappings).
pub(crate) fn request_of(m: &Mount) -> Option<IdmapRequest> {
    let opts = m.options().as_deref().unwrap_or_default();
    let ridmap = opts.iter().any(|o| o == "ridmap");
    let idmap = opts.iter().any(|o| o == "idmap");
    let uid = m.uid_mappings().as_deref().filter(|v| !v.is_empty());
    let gid = m.gid_mappings().as_deref().filter(|v| !v.is_empty());
    if !idmap && !ridmap && uid.is_none() && gid.is_none() {
        return None;
    }
    Some(IdmapRequest {
        recursive: ridmap,
        maps: match (uid, gid) {
            (Some(u), Some(g)) => Some((to_maps(u), to_maps(g))),
            _ => None,
        },
    })
}

/// The container's own user namespace: where to open it (joined by path) and its maps
/// when known (new: linux.uidMappings; joined /proc/N/ns/user: N's maps).
struct ContainerUserns {
    path: Option<PathBuf>,
    maps: Option<Maps>,
}

fn container_userns(spec: &Spec) -> Option<ContainerUserns> {
    let linux = spec.linux().as_ref()?;
    let ns = linux
        .namespaces()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)?;
    match ns.path() {
        None => Some(ContainerUserns {
            path: None,
            maps: Some((
                to_maps(linux.uid_mappings().as_deref().unwrap_or_default()),
                to_maps(linux.gid_mappings().as_deref().unwrap_or_default()),
            )),
        }),
        Some(p) => {
            // /proc/N/ns/user: N's maps say what the namespace maps.
            let maps = p.parent().filter(|d| d.ends_with("ns")).and_then(|d| {
                let proc_dir = d.parent()?;
                let u = std::fs::read_to_string(proc_dir.join("uid_map")).ok()?;
                let g = std::fs::read_to_string(proc_dir.join("gid_map")).ok()?;
                Some((idmap::parse_map(&u), idmap::parse_map(&g)))
            });
            Some(ContainerUserns {
                path: Some(p.clone()),
                maps,
            })
        }
    }
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// Makes the detached idmapped tree of every mount that asks for one, by mount index.
/// In a user namespace every other bind is cloned here too: its init, no longer the
/// host's root, may not walk to the source (podrun's state dirs are root's alone).
pub(crate) fn prepare(spec: &Spec, config: &Path) -> Result<Vec<(usize, OwnedFd)>> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let own = container_userns(spec);
    let mut out = Vec::new();
    if own.is_some() {
        for (i, m) in mounts.iter().enumerate() {
            if request_of(m).is_some() || !is_bind(m) {
                continue;
            }
            let source = m.source().clone().unwrap_or_default();
            let rec = m
                .options()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o == "rbind");
            let tree = idmap::cloned_tree(&source, rec)
                .map_err(|e| RuntimeError::io("bind source", source.clone(), e))?;
            out.push((i, tree));
        }
    }
    let wanted: Vec<(usize, &Mount, IdmapRequest)> = mounts
        .iter()
        .enumerate()
        .filter_map(|(i, m)| request_of(m).map(|r| (i, m, r)))
        .collect();
    if wanted.is_empty() {
        return Ok(out);
    }
    let bad = |i: usize, msg: String| RuntimeError::Config {
        path: config.to_path_buf(),
        msg: format!("mounts[{i}]: {msg}"),
    };
    // One user namespace per distinct mapping, opened or made once.
    let mut made: Vec<(Maps, OwnedFd)> = Vec::new();
    let mut own_fd: Option<OwnedFd> = None;
    for (i, m, req) in wanted {
        let source = m.source().clone().unwrap_or_default();
        if req.maps.is_none() && own.is_none() {
            return Err(bad(
                i,
                "idmap without uidMappings/gidMappings needs a user namespace".into(),
            ));
        }
        // The container's own namespace when it is joined by path and the mapping is
        // its own (or unstated); else a namespace made for the mapping.
        let own_path = own.as_ref().and_then(|o| o.path.clone());
        let use_own = own_path.is_some()
            && (req.maps.is_none()
                || own.as_ref().and_then(|o| o.maps.as_ref()) == req.maps.as_ref());
        let userns: &OwnedFd = match own_path.filter(|_| use_own) {
            Some(p) => {
                if own_fd.is_none() {
                    let f = std::fs::File::open(&p)
                        .map_err(|e| RuntimeError::io("open user namespace", p.clone(), e))?;
                    own_fd = Some(f.into());
                }
                own_fd
                    .as_ref()
                    .ok_or_else(|| bad(i, "no user namespace".into()))?
            }
            None => {
                let maps = req
                    .maps
                    .clone()
                    .or_else(|| own.as_ref().and_then(|o| o.maps.clone()))
                    .ok_or_else(|| bad(i, "no mapping for the idmapped mount".into()))?;
                if !made.iter().any(|(k, _)| *k == maps) {
                    let fd = idmap::userns_with(&maps.0, &maps.1).map_err(|e| {
                        RuntimeError::io("make a user namespace for idmap", source.clone(), e)
                    })?;
                    made.push((maps.clone(), fd));
                }
                made.iter()
                    .find(|(k, _)| *k == maps)
                    .map(|(_, f)| f)
                    .ok_or_else(|| bad(i, "no user namespace".into()))?
            }
        };
        let tree = idmap::idmapped_tree(&source, userns.as_fd(), req.recursive)
            .map_err(|e| bad(i, idmap::idmap_error(&source, &e)))?;
        out.push((i, tree));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxIdMappingBuilder, MountBuilder};

    fn mount(opts: &[&str], maps: bool) -> Mount {
        let mut b = MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source("/srv")
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        if maps {
            let m = vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(131072u32)
                .size(65536u32)
                .build()
                .unwrap()];
            b = b.uid_mappings(m.clone()).gid_mappings(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn idmap_options_and_mappings_ask_for_an_idmapped_mount() {
        assert_eq!(request_of(&mount(&["rbind", "ro"], false)), None);
        let r = request_of(&mount(&["rbind", "idmap"], false)).unwrap();
        assert!(!r.recursive && r.maps.is_none());
        let r = request_of(&mount(&["rbind", "ridmap"], true)).unwrap();
        assert!(r.recursive);
        let m = r.maps.unwrap();
        assert_eq!(
            m.0,
            vec![IdMap {
                inside: 0,
                outside: 131072,
                count: 65536
            }]
        );
        // Mappings alone (no option) are an idmap too.
        assert!(request_of(&mount(&["rbind"], true)).is_some());
    }
}
