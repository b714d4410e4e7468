//! `kubectl describe pod`: the pod's fields, containers, conditions, volumes,
//! tolerations and events, aligned as kubectl's tabwriter aligns them.
use super::printers;
use crate::supervisor::events;
use crate::supervisor::store::{self, PodRecord};
use k8s_openapi::api::core::v1::{Container, ContainerState, EnvVar, PodSpec, PodStatus, Volume};

/// Lines of a describe block: indent, label, value (empty: a heading line).
type Lines = Vec<(usize, String, String)>;

use super::node::describe_time;

/// Aligns `Label:\tvalue` lines as kubectl's tabwriter does: each run of lines that
/// carry a value is one block, values start 2 spaces after the block's longest label.
fn align(lines: &[(usize, String, String)]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].2.is_empty() {
            out.push_str(&format!("{}{}\n", " ".repeat(lines[i].0), lines[i].1));
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && !lines[i].2.is_empty() {
            i += 1;
        }
        let block = &lines[start..i];
        let width = block
            .iter()
            .map(|(ind, k, _)| ind + k.chars().count())
            .max()
            .unwrap_or(0);
        for (ind, k, v) in block {
            let gap = " ".repeat(width - (ind + k.chars().count()) + 2);
            out.push_str(&format!("{}{k}{gap}{v}\n", " ".repeat(*ind)));
        }
    }
    out
}

/// A port given by number or by name, as written.
fn port_text(port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

fn probe_text(p: &k8s_openapi::api::core::v1::Probe) -> String {
    let how = if let Some(e) = &p.exec {
        format!("exec [{}]", e.command.clone().unwrap_or_default().join(" "))
    } else if let Some(h) = &p.http_get {
        let port = port_text(&h.port);
        format!(
            "http-get {}://{}:{port}{}",
            h.scheme.as_deref().unwrap_or("HTTP").to_lowercase(),
            h.host.clone().unwrap_or_default(),
            h.path.clone().unwrap_or_default()
        )
    } else if let Some(t) = &p.tcp_socket {
        let port = port_text(&t.port);
        format!("tcp-socket {}:{port}", t.host.clone().unwrap_or_default())
    } else if let Some(gr) = &p.grpc {
        format!(
            "grpc <pod>:{} {}",
            gr.port,
            gr.service.clone().unwrap_or_default()
        )
    } else {
        "unknown".into()
    };
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    )
}

fn state_lines(out: &mut Vec<(usize, String, String)>, label: &str, st: Option<&ContainerState>) {
    let Some(st) = st else {
        out.push((4, format!("{label}:"), "Waiting".into()));
        return;
    };
    if let Some(r) = &st.running {
        out.push((4, format!("{label}:"), "Running".into()));
        if let Some(t) = &r.started_at {
            out.push((6, "Started:".into(), describe_time(&t.0)));
        }
    } else if let Some(w) = &st.waiting {
        out.push((4, format!("{label}:"), "Waiting".into()));
        if let Some(r) = &w.reason {
            out.push((6, "Reason:".into(), r.clone()));
        }
        if let Some(m) = w.message.as_ref().filter(|m| !m.is_empty()) {
            out.push((6, "Message:".into(), m.clone()));
        }
    } else if let Some(t) = &st.terminated {
        out.push((4, format!("{label}:"), "Terminated".into()));
        if let Some(r) = &t.reason {
            out.push((6, "Reason:".into(), r.clone()));
        }
        if let Some(m) = t.message.as_ref().filter(|m| !m.is_empty()) {
            out.push((6, "Message:".into(), m.clone()));
        }
        out.push((6, "Exit Code:".into(), t.exit_code.to_string()));
        if let Some(s) = t.signal.filter(|s| *s != 0) {
            out.push((6, "Signal:".into(), s.to_string()));
        }
        if let Some(s) = &t.started_at {
            out.push((6, "Started:".into(), describe_time(&s.0)));
        }
        if let Some(f) = &t.finished_at {
            out.push((6, "Finished:".into(), describe_time(&f.0)));
        }
    }
}

fn container_block(
    out: &mut Vec<(usize, String, String)>,
    c: &k8s_openapi::api::core::v1::Container,
    cs: Option<&k8s_openapi::api::core::v1::ContainerStatus>,
) {
    out.push((2, format!("{}:", c.name), String::new()));
    if let Some(cs) = cs {
        out.push((
            4,
            "Container ID:".into(),
            cs.container_id.clone().unwrap_or_default(),
        ));
    }
    out.push((4, "Image:".into(), c.image.clone().unwrap_or_default()));
    if let Some(cs) = cs {
        out.push((4, "Image ID:".into(), cs.image_id.clone()));
    }
    port_lines(out, c);
    if let Some(cmd) = &c.command {
        out.push((4, "Command:".into(), String::new()));
        for a in cmd {
            out.push((6, a.clone(), String::new()));
        }
    }
    if let Some(args) = &c.args {
        out.push((4, "Args:".into(), String::new()));
        for a in args {
            out.push((6, a.clone(), String::new()));
        }
    }
    // As kubectl: no state lines for a container no kubelet has reported on (an
    // unscheduled pod).
    if let Some(cs) = cs {
        state_lines(out, "State", cs.state.as_ref());
        if let Some(ls) = cs.last_state.as_ref().filter(|l| l.terminated.is_some()) {
            state_lines(out, "Last State", Some(ls));
        }
        out.push((
            4,
            "Ready:".into(),
            if cs.ready { "True" } else { "False" }.into(),
        ));
        out.push((4, "Restart Count:".into(), cs.restart_count.to_string()));
    }
    if let Some(res) = &c.resources {
        for (title, map) in [("Limits:", &res.limits), ("Requests:", &res.requests)] {
            if let Some(m) = map.as_ref().filter(|m| !m.is_empty()) {
                out.push((4, title.into(), String::new()));
                for (k, v) in m {
                    out.push((6, format!("{k}:"), v.0.clone()));
                }
            }
        }
    }
    for (title, p) in [
        ("Liveness:", &c.liveness_probe),
        ("Readiness:", &c.readiness_probe),
        ("Startup:", &c.startup_probe),
    ] {
        if let Some(p) = p {
            out.push((4, title.into(), probe_text(p)));
        }
    }
    env_lines(out, c);
    mount_lines(out, c);
}

/// The Port and Host Port lines of a container.
fn port_lines(out: &mut Lines, c: &Container) {
    let ports = c.ports.clone().unwrap_or_default();
    if ports.is_empty() {
        out.push((4, "Port:".into(), "<none>".into()));
        out.push((4, "Host Port:".into(), "<none>".into()));
    } else {
        let p: Vec<String> = ports
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.container_port,
                    p.protocol.as_deref().unwrap_or("TCP")
                )
            })
            .collect();
        let hp: Vec<String> = ports
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.host_port.unwrap_or(0),
                    p.protocol.as_deref().unwrap_or("TCP")
                )
            })
            .collect();
        out.push((
            4,
            if p.len() > 1 { "Ports:" } else { "Port:" }.into(),
            p.join(", "),
        ));
        out.push((
            4,
            if hp.len() > 1 {
                "Host Ports:"
            } else {
                "Host Port:"
            }
            .into(),
            hp.join(", "),
        ));
    }
}

/// What `describe` shows for where an env var's value comes from.
fn env_source(e: &EnvVar) -> String {
    match (&e.value, &e.value_from) {
        (Some(v), _) => v.clone(),
        (None, Some(vf)) => {
            if let Some(k) = &vf.secret_key_ref {
                format!("<set to the key '{}' in secret '{}'>", k.key, k.name)
            } else if let Some(k) = &vf.config_map_key_ref {
                format!("<set to the key '{}' of config map '{}'>", k.key, k.name)
            } else if let Some(f) = &vf.field_ref {
                format!(
                    " ({}:{})",
                    f.api_version.as_deref().unwrap_or("v1"),
                    f.field_path
                )
            } else if let Some(r) = &vf.resource_field_ref {
                format!(
                    "{} ({})",
                    r.resource,
                    r.container_name.clone().unwrap_or_default()
                )
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

/// The Environment lines of a container.
fn env_lines(out: &mut Lines, c: &Container) {
    let env = c.env.clone().unwrap_or_default();
    if env.is_empty() && c.env_from.is_none() {
        out.push((4, "Environment:".into(), "<none>".into()));
    } else {
        out.push((4, "Environment:".into(), String::new()));
        for e in env {
            out.push((6, format!("{}:", e.name), env_source(&e)));
        }
    }
}

/// The Mounts lines of a container.
fn mount_lines(out: &mut Lines, c: &Container) {
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    if mounts.is_empty() {
        out.push((4, "Mounts:".into(), "<none>".into()));
    } else {
        out.push((4, "Mounts:".into(), String::new()));
        for m in mounts {
            let ro = if m.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            };
            let sub = m
                .sub_path
                .as_ref()
                .map(|s| format!(",path={s:?}"))
                .unwrap_or_default();
            out.push((
                6,
                format!("{} from {} ({ro}{sub})", m.mount_path, m.name),
                String::new(),
            ));
        }
    }
}

/// A describe map field: `<none>`, or one `k<sep>v` per line under the title.
fn push_map(
    l: &mut Vec<(usize, String, String)>,
    title: &str,
    map: &std::collections::BTreeMap<String, String>,
    sep: &str,
) {
    if map.is_empty() {
        l.push((0, title.into(), "<none>".into()));
    }
    for (i, (k, v)) in map.iter().enumerate() {
        let key = if i == 0 {
            title.to_string()
        } else {
            String::new()
        };
        l.push((0, key, format!("{k}{sep}{v}")));
    }
}

/// `kubectl describe pod` layout.
pub fn describe_pod(r: &PodRecord) -> String {
    let pod = &r.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let st = pod.status.clone().unwrap_or_default();
    let mut l = header_lines(r, &spec, &st);
    let find = |list: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>, name: &str| {
        list.as_ref()
            .and_then(|v| v.iter().find(|s| s.name == name).cloned())
    };
    if let Some(inits) = spec.init_containers.as_ref().filter(|v| !v.is_empty()) {
        l.push((0, "Init Containers:".into(), String::new()));
        for c in inits {
            container_block(
                &mut l,
                c,
                find(&st.init_container_statuses, &c.name).as_ref(),
            );
        }
    }
    l.push((0, "Containers:".into(), String::new()));
    for c in &spec.containers {
        container_block(&mut l, c, find(&st.container_statuses, &c.name).as_ref());
    }
    let mut out = align(&l);
    let conds = st.conditions.clone().unwrap_or_default();
    out.push_str("Conditions:\n");
    let mut rows = vec![vec!["  Type".to_string(), "Status".to_string()]];
    for c in &conds {
        rows.push(vec![format!("  {}", c.type_), c.status.clone()]);
    }
    out.push_str(&printers::table_pad(&rows, 2));
    out.push_str(&volumes_text(&spec));
    out.push_str(&scheduling_text(&spec, &st));
    out.push_str(&events_text(r));
    out
}

/// Name to IPs: the pod's own fields.
fn header_lines(r: &PodRecord, spec: &PodSpec, st: &PodStatus) -> Lines {
    let pod = &r.pod;
    let mut l: Vec<(usize, String, String)> = vec![(0, "Name:".into(), r.name().into())];
    l.push((0, "Namespace:".into(), r.namespace().into()));
    l.push((
        0,
        "Priority:".into(),
        spec.priority.unwrap_or(0).to_string(),
    ));
    l.push((
        0,
        "Service Account:".into(),
        spec.service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
    ));
    let node = match &spec.node_name {
        Some(n) => format!("{n}/{}", st.host_ip.clone().unwrap_or_default()),
        None => "<none>".into(),
    };
    l.push((0, "Node:".into(), node));
    if let Some(t) = &st.start_time {
        l.push((0, "Start Time:".into(), describe_time(&t.0)));
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    push_map(&mut l, "Labels:", &labels, "=");
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    push_map(&mut l, "Annotations:", &ann, ": ");
    let status_word = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        st.phase.clone().unwrap_or_else(|| "Pending".into())
    };
    l.push((0, "Status:".into(), status_word));
    if let Some(reason) = &st.reason {
        l.push((0, "Reason:".into(), reason.clone()));
    }
    if let Some(msg) = &st.message {
        l.push((0, "Message:".into(), msg.clone()));
    }
    l.push((0, "IP:".into(), st.pod_ip.clone().unwrap_or_default()));
    match &st.pod_ips {
        Some(ips) if !ips.is_empty() => {
            l.push((0, "IPs:".into(), String::new()));
            for ip in ips {
                l.push((2, "IP:".into(), ip.ip.clone()));
            }
        }
        _ => l.push((0, "IPs:".into(), "<none>".into())),
    }
    l
}

/// The Volumes section.
fn volumes_text(spec: &PodSpec) -> String {
    let mut out = String::new();
    let vols = spec.volumes.clone().unwrap_or_default();
    if vols.is_empty() {
        out.push_str("Volumes:                     <none>\n");
    } else {
        out.push_str("Volumes:\n");
        let mut v: Vec<(usize, String, String)> = Vec::new();
        for vol in &vols {
            volume_lines(&mut v, vol);
        }
        out.push_str(&align(&v));
    }
    out
}

/// One volume's lines: its name, type and the type's fields.
fn volume_lines(v: &mut Lines, vol: &Volume) {
    v.push((2, format!("{}:", vol.name), String::new()));
    if let Some(h) = &vol.host_path {
        v.push((
            4,
            "Type:".into(),
            "HostPath (bare host directory volume)".to_string(),
        ));
        v.push((4, "Path:".into(), h.path.clone()));
        v.push((
            4,
            "HostPathType:".into(),
            h.type_.clone().unwrap_or_default(),
        ));
    } else if let Some(e) = &vol.empty_dir {
        v.push((
            4,
            "Type:".into(),
            "EmptyDir (a temporary directory that shares a pod's lifetime)".into(),
        ));
        v.push((4, "Medium:".into(), e.medium.clone().unwrap_or_default()));
        v.push((
            4,
            "SizeLimit:".into(),
            e.size_limit
                .as_ref()
                .map(|q| q.0.clone())
                .unwrap_or_else(|| "<unset>".into()),
        ));
    } else if let Some(cm) = &vol.config_map {
        v.push((
            4,
            "Type:".into(),
            "ConfigMap (a volume populated by a ConfigMap)".into(),
        ));
        v.push((4, "Name:".into(), cm.name.clone()));
        v.push((
            4,
            "Optional:".into(),
            cm.optional.unwrap_or(false).to_string(),
        ));
    } else if let Some(s) = &vol.secret {
        v.push((
            4,
            "Type:".into(),
            "Secret (a volume populated by a Secret)".into(),
        ));
        v.push((
            4,
            "SecretName:".into(),
            s.secret_name.clone().unwrap_or_default(),
        ));
        v.push((
            4,
            "Optional:".into(),
            s.optional.unwrap_or(false).to_string(),
        ));
    } else if vol.downward_api.is_some() {
        v.push((
            4,
            "Type:".into(),
            "DownwardAPI (a volume populated by information about the pod)".into(),
        ));
    } else if vol.projected.is_some() {
        v.push((
            4,
            "Type:".into(),
            "Projected (a volume that contains injected data from multiple sources)".into(),
        ));
    }
}

/// QoS Class, Node-Selectors and Tolerations.
fn scheduling_text(spec: &PodSpec, st: &PodStatus) -> String {
    let mut out = String::new();
    let mut tail: Vec<(usize, String, String)> = Vec::new();
    tail.push((
        0,
        "QoS Class:".into(),
        st.qos_class.clone().unwrap_or_default(),
    ));
    let sel = spec.node_selector.clone().unwrap_or_default();
    tail.push((
        0,
        "Node-Selectors:".into(),
        if sel.is_empty() {
            "<none>".into()
        } else {
            sel.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        },
    ));
    let tols = spec.tolerations.clone().unwrap_or_default();
    if tols.is_empty() {
        tail.push((0, "Tolerations:".into(), "<none>".into()));
    } else {
        for (i, t) in tols.iter().enumerate() {
            let mut s = t.key.clone().unwrap_or_default();
            if let Some(v) = t.value.as_ref().filter(|v| !v.is_empty()) {
                s.push_str(&format!("={v}"));
            }
            if let Some(e) = t.effect.as_ref().filter(|e| !e.is_empty()) {
                s.push_str(&format!(":{e}"));
            }
            if t.operator.as_deref() == Some("Exists") {
                s.push_str(" op=Exists");
            }
            if let Some(secs) = t.toleration_seconds {
                s.push_str(&format!(" for {secs}s"));
            }
            tail.push((
                0,
                if i == 0 {
                    "Tolerations:".into()
                } else {
                    String::new()
                },
                s,
            ));
        }
    }
    // kubectl aligns these three with the "Volumes:" column width used above.
    out.push_str(&align(&tail));
    out
}

/// The Events table (or `<none>`).
fn events_text(r: &PodRecord) -> String {
    let mut out = String::new();
    let evs = events::aggregate(&events::read_all(&r.dir.join(store::EVENTS_FILE)));
    if evs.is_empty() {
        out.push_str("Events:                      <none>\n");
    } else {
        out.push_str("Events:\n");
        let mut rows = vec![
            vec![
                "  Type".to_string(),
                "Reason".into(),
                "Age".into(),
                "From".into(),
                "Message".into(),
            ],
            vec![
                "  ----".to_string(),
                "------".into(),
                "----".into(),
                "----".into(),
                "-------".into(),
            ],
        ];
        for e in evs {
            let last = e.last.parse::<k8s_openapi::jiff::Timestamp>().ok();
            let first = e.first.parse::<k8s_openapi::jiff::Timestamp>().ok();
            let age = if e.count > 1 {
                format!(
                    "{} (x{} over {})",
                    printers::age(last.as_ref()),
                    e.count,
                    printers::age(first.as_ref())
                )
            } else {
                printers::age(last.as_ref())
            };
            rows.push(vec![
                format!("  {}", e.record.type_),
                e.record.reason.clone(),
                age,
                e.record.source.clone(),
                e.record.message.clone(),
            ]);
        }
        out.push_str(&printers::table_pad(&rows, 2));
    }
    out
}
