//! runc's `--systemd-cgroup`: linux.cgroupsPath is "slice:prefix:name" and the
//! container's cgroup is systemd's transient unit "prefix-name.scope" in that slice.
//!
//! As runc, podrun asks systemd for the scope (StartTransientUnit over D-Bus, on the
//! manager's private socket) with Delegate=true, the init's pid and the resource
//! properties, once the init is ready in the cgroup podrun made at the unit's path
//! (systemd adopts that cgroup). Without systemd (no /run/systemd/system) the cgroup
//! is only made through cgroupfs at that path, and podrun says so.
use super::dbus::{self, Arg, Value};
use super::{log, Result, RuntimeError};
use oci_spec::runtime::LinuxResources;
use std::path::Path;
use std::time::Duration;

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
    if !systemd_running() {
        log::warn(&format!(
            "--systemd-cgroup: systemd is not running (no /run/systemd/system); unit {} \
             falls back to cgroupfs at {fs_path}",
            unit.unit_name()
        ));
    }
    Ok(path)
}

/// systemd's private D-Bus socket (root only; no bus daemon needed).
const PRIVATE_SOCKET: &str = "/run/systemd/private";
const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

fn dbus_err(unit: &str, e: dbus::DbusError) -> RuntimeError {
    RuntimeError::Invalid(format!("systemd: starting transient unit {unit}: {e}"))
}

/// runc's unit properties for the resources systemd manages itself (cgroup v2 names):
/// without them systemd would reset what podrun wrote through cgroupfs.
pub fn resource_properties(res: Option<&LinuxResources>) -> Vec<(String, Value)> {
    let mut props = Vec::new();
    let Some(r) = res else {
        return props;
    };
    let mut add = |k: &str, v: u64| props.push((k.to_string(), Value::U64(v)));
    if let Some(m) = r.memory() {
        let limit = m.limit().filter(|l| *l > 0);
        if let Some(l) = limit {
            add("MemoryMax", l as u64);
        }
        // OCI's swap is memory+swap; systemd's MemorySwapMax is the swap alone.
        if let (Some(l), Some(sw)) = (limit, m.swap().filter(|s| *s > 0)) {
            add("MemorySwapMax", (sw - l).max(0) as u64);
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(sh) = c.shares().filter(|s| *s > 0) {
            add("CPUWeight", super::cgroups::cpu_shares_to_weight(sh));
        }
        if let Some(q) = c.quota().filter(|q| *q > 0) {
            let period = c.period().filter(|p| *p > 0).unwrap_or(100_000);
            // runc: quota per second, rounded up to systemd's 10ms granularity.
            let per_sec = (q as u64 * 1_000_000).div_ceil(period);
            add("CPUQuotaPerSecUSec", per_sec.div_ceil(10_000) * 10_000);
        }
    }
    if let Some(p) = r.pids().filter(|p| p.limit() > 0) {
        add("TasksMax", p.limit() as u64);
    }
    props
}

/// A connection to the manager, subscribed to its job signals. systemd 252 sometimes
/// drops a private connection at its first call (it logs "Connection reset by peer"
/// and never answers): that attempt times out quickly and a new connection is made.
fn subscribed_connection(signals: &mut Vec<dbus::Message>) -> dbus::Result<dbus::Conn> {
    let mut last = None;
    for _ in 0..4 {
        let attempt = dbus::Conn::connect(Path::new(PRIVATE_SOCKET), Duration::from_secs(2))
            .and_then(|mut c| {
                c.call(DEST, MANAGER_PATH, MANAGER, "Subscribe", &[], signals)?;
                c.set_timeout(Duration::from_secs(30))?;
                Ok(c)
            });
        match attempt {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| dbus::DbusError::Protocol("no connection".into())))
}

/// Starts the transient scope `unit` for `pid` (already in the cgroup at the unit's
/// path) and waits for its start job, as runc does. Only where systemd runs.
pub fn start_scope(unit: &Unit, id: &str, pid: i32, res: Option<&LinuxResources>) -> Result<()> {
    let name = unit.unit_name();
    let mut signals = Vec::new();
    let mut conn = subscribed_connection(&mut signals).map_err(|e| dbus_err(&name, e))?;
    let mut props = vec![
        (
            "Description".to_string(),
            Value::Str(format!("podrun container {id}")),
        ),
        ("PIDs".to_string(), Value::ArrayU32(vec![pid as u32])),
        ("Delegate".to_string(), Value::Bool(true)),
        ("DefaultDependencies".to_string(), Value::Bool(false)),
    ];
    if name.ends_with(".scope") {
        props.push(("Slice".to_string(), Value::Str(unit.slice.clone())));
    }
    props.extend(resource_properties(res));
    let reply = conn
        .call(
            DEST,
            MANAGER_PATH,
            MANAGER,
            "StartTransientUnit",
            &[
                Arg::Val(Value::Str(name.clone())),
                Arg::Val(Value::Str("replace".into())),
                Arg::Props(&props),
                Arg::NoAux,
            ],
            &mut signals,
        )
        .map_err(|e| dbus_err(&name, e))?;
    let Some(Value::ObjPath(job)) = reply.args.first().cloned() else {
        return Err(dbus_err(
            &name,
            dbus::DbusError::Protocol("no job in the reply".into()),
        ));
    };
    // JobRemoved(u id, o job, s unit, s result): "done" is success.
    loop {
        let m = match signals.pop() {
            Some(m) => m,
            None => conn.read().map_err(|e| dbus_err(&name, e))?,
        };
        if m.kind != dbus::SIGNAL || m.member.as_deref() != Some("JobRemoved") {
            continue;
        }
        if m.args.get(1) != Some(&Value::ObjPath(job.clone())) {
            continue;
        }
        return match m.args.get(3) {
            Some(Value::Str(r)) if r == "done" => Ok(()),
            other => Err(RuntimeError::Invalid(format!(
                "systemd: starting transient unit {name}: job result {other:?}"
            ))),
        };
    }
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
