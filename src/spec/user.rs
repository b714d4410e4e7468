//! Which user a container runs as: securityContext (container over pod) or the image's
//! User (`uid[:gid]` or names looked up in the rootfs' /etc/passwd and /etc/group,
//! read without following links out of the rootfs), plus kubelet's runAsNonRoot check.
use super::fsutil::read_in_root;
use super::SpecError;
use k8s_openapi::api::core::v1::{Container, Pod};
use std::path::Path;

/// The process identity for the OCI spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The home directory from /etc/passwd, for HOME when the image sets none.
    pub home: Option<String>,
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn read_db(rootfs: &Path, file: &str) -> Result<String, SpecError> {
    match read_in_root(rootfs, file) {
        Ok(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Ok(None) => Ok(String::new()),
        Err(source) => Err(SpecError::Io {
            path: rootfs.join(file.trim_start_matches('/')),
            source,
        }),
    }
}

/// kubelet's format.Pod: `name_namespace(uid)`.
pub fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// runAsUser/runAsGroup/runAsNonRoot with the container's setting over the pod's.
pub fn effective_run_as(pod: &Pod, c: &Container) -> (Option<i64>, Option<i64>, Option<bool>) {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    (
        csc.and_then(|s| s.run_as_user)
            .or(psc.and_then(|s| s.run_as_user)),
        csc.and_then(|s| s.run_as_group)
            .or(psc.and_then(|s| s.run_as_group)),
        csc.and_then(|s| s.run_as_non_root)
            .or(psc.and_then(|s| s.run_as_non_root)),
    )
}

fn id32(v: i64, what: &str) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| SpecError::User {
        reason: format!("{what} {v} is out of range"),
    })
}

/// Resolves the user of `container` over the image's `User` and the rootfs' user database.
pub fn resolve_user(
    rootfs: &Path,
    pod: &Pod,
    container: &Container,
    image_user: &str,
) -> Result<ResolvedUser, SpecError> {
    let (run_as_user, run_as_group, run_as_non_root) = effective_run_as(pod, container);
    let (img_u, img_g) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    if run_as_non_root == Some(true) {
        let desc = pod_desc(pod);
        match run_as_user {
            Some(0) => {
                return Err(SpecError::RunAsNonRoot {
                    message: format!(
                    "container's runAsUser breaks non-root policy (pod: {desc:?}, container: {})",
                    container.name
                ),
                })
            }
            Some(_) => {}
            None => {
                if img_u.is_empty() || img_u.parse::<u32>() == Ok(0) {
                    return Err(SpecError::RunAsNonRoot {
                        message: format!("container has runAsNonRoot and image will run as root (pod: {desc:?}, container: {})", container.name),
                    });
                }
                if img_u.parse::<u32>().is_err() {
                    return Err(SpecError::RunAsNonRoot {
                        message: format!("container has runAsNonRoot and image has non-numeric user ({img_u}), cannot verify user is non-root (pod: {desc:?}, container: {})", container.name),
                    });
                }
            }
        }
    }
    let passwd = parse_passwd(&read_db(rootfs, "/etc/passwd")?);
    let groups = parse_group(&read_db(rootfs, "/etc/group")?);

    let (uid, entry) = match run_as_user {
        Some(u) => {
            let uid = id32(u, "runAsUser")?;
            (uid, passwd.iter().find(|p| p.uid == uid))
        }
        None if img_u.is_empty() => (0, passwd.iter().find(|p| p.uid == 0)),
        None => match img_u.parse::<u32>() {
            Ok(uid) => (uid, passwd.iter().find(|p| p.uid == uid)),
            Err(_) => {
                let e = passwd
                    .iter()
                    .find(|p| p.name == img_u)
                    .ok_or_else(|| SpecError::User {
                        reason: format!(
                            "unable to find user {img_u}: no matching entries in passwd file"
                        ),
                    })?;
                (e.uid, Some(e))
            }
        },
    };
    let mut gid = entry.map(|e| e.gid).unwrap_or(0);
    // The image's group applies only to the image's user.
    if run_as_user.is_none() {
        if let Some(g) = img_g.filter(|g| !g.is_empty()) {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    groups
                        .iter()
                        .find(|e| e.name == g)
                        .ok_or_else(|| SpecError::User {
                            reason: format!(
                                "unable to find group {g}: no matching entries in group file"
                            ),
                        })?
                        .gid
                }
            };
        }
    }
    if let Some(g) = run_as_group {
        gid = id32(g, "runAsGroup")?;
    }
    // Groups listing the user as a member (containerd's WithAdditionalGIDs), then the
    // pod's supplementalGroups and fsGroup (kubelet).
    let mut additional = Vec::new();
    if let Some(e) = entry {
        for g in &groups {
            if g.name != e.name && g.members.contains(&e.name) {
                additional.push(g.gid);
            }
        }
    }
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    for g in psc
        .and_then(|s| s.supplemental_groups.clone())
        .into_iter()
        .flatten()
    {
        additional.push(id32(g, "supplementalGroups")?);
    }
    if let Some(fs) = psc.and_then(|s| s.fs_group) {
        additional.push(id32(fs, "fsGroup")?);
    }
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn rootfs() -> tempdir::Dir {
        let d = tempdir::Dir::new("user");
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nnginx:x:101:nginx\nwww:x:33:nginx,other\nnogroup:x:65534:\n",
        )
        .unwrap();
        d
    }

    fn pod(sc: &str, csc: &str) -> Pod {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  securityContext: {sc}\n  containers:\n  - name: c\n    image: i\n    securityContext: {csc}\n");
        load(&text, &LoadOptions::default()).unwrap().pods.remove(0)
    }

    fn resolve(p: &Pod, image_user: &str, root: &Path) -> Result<ResolvedUser, SpecError> {
        resolve_user(root, p, &p.spec.as_ref().unwrap().containers[0], image_user)
    }

    #[test]
    fn image_user_forms() {
        let r = rootfs();
        let p = pod("{}", "{}");
        let u = resolve(&p, "", r.path()).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_deref()), (0, 0, Some("/root")));
        let u = resolve(&p, "nginx", r.path()).unwrap();
        assert_eq!((u.uid, u.gid), (101, 101));
        assert_eq!(
            u.additional_gids,
            [33],
            "member of www, not of its own group"
        );
        let u = resolve(&p, "1000", r.path()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 0), "unknown uid: gid 0");
        let u = resolve(&p, "1000:2000", r.path()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 2000));
        let u = resolve(&p, "nobody:www", r.path()).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 33));
        let e = resolve(&p, "ghost", r.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
    }

    #[test]
    fn security_context_overrides_the_image_container_over_pod() {
        let r = rootfs();
        let p = pod(
            "{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000], fsGroup: 2000}",
            "{}",
        );
        let u = resolve(&p, "nginx", r.path()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 3000));
        assert_eq!(u.additional_gids, [4000, 2000]);
        let p = pod("{runAsUser: 1000}", "{runAsUser: 101}");
        let u = resolve(&p, "", r.path()).unwrap();
        assert_eq!(
            (u.uid, u.gid),
            (101, 101),
            "container wins; gid from passwd"
        );
    }

    #[test]
    fn run_as_non_root_refuses_root_with_kubelets_message() {
        let r = rootfs();
        let p = pod("{runAsNonRoot: true}", "{}");
        let e = resolve(&p, "", r.path()).unwrap_err().to_string();
        let uid = p.metadata.uid.clone().unwrap();
        assert_eq!(e, format!("container has runAsNonRoot and image will run as root (pod: \"p_default({uid})\", container: c)"));
        assert!(resolve(&p, "0:0", r.path()).is_err());
        assert!(resolve(&p, "101", r.path()).is_ok());
        let e = resolve(&p, "nginx", r.path()).unwrap_err().to_string();
        assert!(
            e.contains("image has non-numeric user (nginx), cannot verify user is non-root"),
            "{e}"
        );
        let p = pod("{runAsNonRoot: true}", "{runAsUser: 0}");
        let e = resolve(&p, "101", r.path()).unwrap_err().to_string();
        assert!(
            e.starts_with("container's runAsUser breaks non-root policy"),
            "{e}"
        );
        let p = pod("{runAsNonRoot: true}", "{runAsUser: 1000}");
        assert!(resolve(&p, "", r.path()).is_ok());
    }

    #[test]
    fn passwd_symlinked_out_of_the_rootfs_is_read_inside_it() {
        let r = rootfs();
        std::fs::remove_file(r.path().join("etc/passwd")).unwrap();
        // An absolute link resolves inside the rootfs, never to the host's /etc/passwd.
        // Followed naively this would leave the rootfs; inside it, it names etc/users.
        std::os::unix::fs::symlink(
            "../../../../../../../../etc/users",
            r.path().join("etc/passwd"),
        )
        .unwrap();
        std::fs::write(r.path().join("etc/users"), "app:x:500:500::/app:/bin/sh\n").unwrap();
        let p = pod("{}", "{}");
        let u = resolve(&p, "app", r.path()).unwrap();
        assert_eq!(u.uid, 500);
        assert!(
            resolve(&p, "daemon", r.path()).is_err(),
            "host users are not visible"
        );
    }

    /// A temporary directory removed on drop (no extra crate).
    pub(crate) mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new(tag: &str) -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "podrun-spec-{tag}-{}-{}",
                    std::process::id(),
                    crate::manifest::defaults::new_uid()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
