//! runc's `--systemd-cgroup`: linux.cgroupsPath is "slice:prefix:name" and the
//! container's cgroup is systemd's transient unit "prefix-name.scope" in that slice.
//!
//! runc asks systemd (StartTransientUnit over D-Bus) to create the scope. podrun does
//! not speak D-Bus yet: it creates the same cgroup through cgroupfs, at the path systemd
//! would give the unit, and says so. That is all a host without systemd can do anyway
//! (runc fails there); on a systemd host the scope is unknown to systemd.
use super::{log, Result, RuntimeError};
use std::path::Path;

/// The systemd unit a container's cgroup is, per runc's parsing of cgroupsPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The parent slice ("system.slice" when left empty, as runc's drivers default it).
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl Unit {
    /// runc's createCgroupConfig: no cgroupsPath → prefix "podrun" (runc: "runc") and the
    /// container id; otherwise exactly three ':'-separated parts.
    pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Unit> {
        let Some(p) = cgroups_path.filter(|p| !p.is_empty()) else {
            return Ok(Unit {
                slice: "system.slice".into(),
                prefix: "podrun".into(),
                name: id.into(),
            });
        };
        let parts: Vec<&str> = p.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(RuntimeError::Invalid(format!(
                "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {p:?} instead"
            )));
        };
        Ok(Unit {
            slice: if slice.is_empty() {
                "system.slice".into()
            } else {
                slice.into()
            },
            prefix: prefix.into(),
            name: name.into(),
        })
    }

    /// runc's getUnitName: a name ending in ".slice" is the unit itself, anything else
    /// becomes "<prefix>-<name>.scope".
    pub fn unit_name(&self) -> String {
        if self.name.ends_with(".slice") {
            self.name.clone()
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }

    /// The cgroupsPath in systemd form, which the cgroupfs code expands to the path
    /// systemd uses ("/a.slice/a-b.slice/prefix-name.scope").
    pub fn cgroups_path(&self) -> String {
        format!("{}:{}:{}", self.slice, self.prefix, self.name)
    }
}

/// sd_booted(3): systemd is PID 1 of this host when /run/systemd/system is a directory.
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The cgroupsPath to use under `--systemd-cgroup`, after saying how it is honoured.
pub fn resolve(cgroups_path: Option<&str>, id: &str) -> Result<String> {
    let unit = Unit::parse(cgroups_path, id)?;
    let path = unit.cgroups_path();
    let fs_path = super::cgroups::systemd_to_cgroupfs(&path).unwrap_or_default();
    if systemd_running() {
        log::warn(&format!(
            "--systemd-cgroup: the transient unit {} is not created over systemd's D-Bus API \
             (not implemented); its cgroup {fs_path} is made through cgroupfs",
            unit.unit_name()
        ));
    } else {
        log::warn(&format!(
            "--systemd-cgroup: systemd is not running (no /run/systemd/system); unit {} \
             falls back to cgroupfs at {fs_path}",
            unit.unit_name()
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cgroups_path_is_a_podrun_scope_in_system_slice() {
        let u = Unit::parse(None, "c1").unwrap();
        assert_eq!(u.unit_name(), "podrun-c1.scope");
        assert_eq!(u.cgroups_path(), "system.slice:podrun:c1");
        assert_eq!(
            super::super::cgroups::systemd_to_cgroupfs(&u.cgroups_path()).unwrap(),
            "/system.slice/podrun-c1.scope"
        );
    }

    #[test]
    fn slice_prefix_name_is_parsed_as_runc_parses_it() {
        // containerd's CRI with SystemdCgroup = true sends this form.
        let u = Unit::parse(
            Some("kubepods-besteffort-pod1.slice:cri-containerd:abc"),
            "x",
        )
        .unwrap();
        assert_eq!(u.slice, "kubepods-besteffort-pod1.slice");
        assert_eq!(u.unit_name(), "cri-containerd-abc.scope");
        assert_eq!(
            super::super::cgroups::systemd_to_cgroupfs(&u.cgroups_path()).unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
        );
        // An empty slice is system.slice; a name that is a slice is the unit itself.
        assert_eq!(
            Unit::parse(Some(":docker:1"), "x").unwrap().slice,
            "system.slice"
        );
        assert_eq!(
            Unit::parse(Some("machine.slice::sub.slice"), "x")
                .unwrap()
                .unit_name(),
            "sub.slice"
        );
    }

    #[test]
    fn other_forms_are_refused_in_runcs_words() {
        for p in ["/podrun/c1", "a.slice:b", "a:b:c:d"] {
            let e = Unit::parse(Some(p), "x").unwrap_err().to_string();
            assert!(
                e.contains("expected cgroupsPath to be of format \"slice:prefix:name\""),
                "{e}"
            );
        }
    }
}
