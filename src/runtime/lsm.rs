//! Linux security modules: an AppArmor profile is applied at exec where the host has
//! AppArmor; a label the host cannot honour (AppArmor or SELinux off) is an error, not
//! silently dropped.
use oci_spec::runtime::Spec;
use std::io::Write;

/// Whether the host enforces AppArmor (runc's test: securityfs shows it and the module
/// parameter says Y).
pub fn apparmor_enabled() -> bool {
    std::path::Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// Whether SELinux is on (selinuxfs mounted with its enforce file).
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Checks the labels in the config against the host: Err((field, message)).
pub fn validate(spec: &Spec) -> Result<(), (String, String)> {
    let set = |v: Option<&String>| v.is_some_and(|s| !s.is_empty());
    let process = spec.process().as_ref();
    let profile = process.and_then(|p| p.apparmor_profile().as_ref());
    if set(profile) && !apparmor_enabled() {
        return Err((
            "process.apparmorProfile".into(),
            format!(
                "apparmor profile {:?} is specified in config, but apparmor is disabled or not supported",
                profile.map(String::as_str).unwrap_or_default()
            ),
        ));
    }
    let selinux_fields = [
        (
            "process.selinuxLabel",
            process.and_then(|p| p.selinux_label().as_ref()),
        ),
        (
            "linux.mountLabel",
            spec.linux().as_ref().and_then(|l| l.mount_label().as_ref()),
        ),
    ];
    for (field, label) in selinux_fields {
        if !set(label) {
            continue;
        }
        let msg = if selinux_enabled() {
            "SELinux labels are not applied by podrun yet; remove the label or use runc"
        } else {
            "selinux label is specified in config, but selinux is disabled or not supported"
        };
        return Err((field.into(), msg.into()));
    }
    Ok(())
}

/// Asks AppArmor to confine the next exec of this thread with `profile` (libapparmor's
/// aa_change_onexec): the new interface first, then the old one. Call before
/// no_new_privs, as runc does.
pub fn apply_apparmor(profile: &str) -> Result<(), String> {
    if profile.is_empty() {
        return Ok(());
    }
    if !apparmor_enabled() {
        return Err(format!(
            "process.apparmorProfile: apparmor profile {profile:?} is specified in config, but apparmor is disabled or not supported"
        ));
    }
    let new = "/proc/thread-self/attr/apparmor/exec";
    let path = if std::path::Path::new(new).exists() {
        new
    } else {
        "/proc/thread-self/attr/exec"
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("exec {profile}").as_bytes()))
        .map_err(|e| format!("process.apparmorProfile {profile:?}: writing {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn labels_the_host_cannot_honour_name_their_field() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"selinuxLabel":"system_u:system_r:container_t:s0"}}"#,
        );
        if !selinux_enabled() {
            let (field, msg) = validate(&s).unwrap_err();
            assert_eq!(field, "process.selinuxLabel");
            assert_eq!(
                msg,
                "selinux label is specified in config, but selinux is disabled or not supported"
            );
        }
        let s = spec(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"apparmorProfile":"docker-default"}}"#,
        );
        if !apparmor_enabled() {
            let (field, msg) = validate(&s).unwrap_err();
            assert_eq!(field, "process.apparmorProfile");
            assert!(msg.contains("\"docker-default\""), "{msg}");
        }
        let s = spec(r#"{"ociVersion":"1.0.2","linux":{"mountLabel":"x"}}"#);
        assert_eq!(validate(&s).unwrap_err().0, "linux.mountLabel");
    }

    #[test]
    fn empty_labels_are_no_labels() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"apparmorProfile":"","selinuxLabel":""},"linux":{"mountLabel":""}}"#,
        );
        assert!(validate(&s).is_ok());
    }
}
