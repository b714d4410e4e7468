//! `podrun get events`: the pods' events as core/v1 Event objects, printed as
//! `kubectl get events` prints them (k8s.io/kubernetes pkg/printers/internalversion
//! `printEvent`), listed from every pod's events.jsonl and from the events that deleted
//! pods left behind (kept for an hour, see supervisor::events), and watched by polling.
use super::pod::GetArgs;
use super::printers::{self, table};
use super::GlobalOpts;
use crate::supervisor::events::{self, AggregatedEvent};
use crate::supervisor::store::{self, PodStore};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How often `-w` looks at the event files (as `get pods -w`).
const WATCH_POLL: Duration = Duration::from_millis(500);

/// The names kubectl accepts for core/v1 events.
pub fn is_event_resource(r: &str) -> bool {
    matches!(r, "events" | "event" | "ev")
}

/// One aggregated event of one pod (or of the node: kind "Node", pod empty), before it
/// becomes an Event object.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub event: AggregatedEvent,
    pub kind: &'static str,
}

/// Which events to list: one namespace (None: all) and optionally one pod.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
}

fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// Every event under `root` matching `filter`, oldest last occurrence first (kubectl
/// users sort by .lastTimestamp; the apiserver's own order is by name).
pub fn collect(root: &Path, filter: Filter) -> Vec<PodEvent> {
    let wanted = |ns: &str, pod: &str| {
        filter.namespace.is_none_or(|n| n == ns) && filter.pod.is_none_or(|p| p == pod)
    };
    // (namespace, pod, uid, file): live pods first, then what deleted pods left.
    let mut sources = Vec::new();
    let mut live = HashSet::new();
    for r in PodStore::new(root).list() {
        let uid = r.pod.metadata.uid.clone().unwrap_or_default();
        live.insert(uid.clone());
        if !wanted(r.namespace(), r.name()) {
            continue;
        }
        // The retained name survives the pod's directory being removed mid-read.
        let kept = events::retained_path(root, r.namespace(), r.name(), &uid);
        let file = if !uid.is_empty() && kept.exists() {
            kept
        } else {
            r.dir.join(store::EVENTS_FILE)
        };
        sources.push((r.namespace().to_string(), r.name().to_string(), uid, file));
    }
    for f in events::list_retained(root) {
        if !live.contains(&f.uid) && wanted(&f.namespace, &f.name) {
            sources.push((f.namespace, f.name, f.uid, f.path));
        }
    }
    let mut out: Vec<PodEvent> = sources
        .into_iter()
        .flat_map(|(namespace, pod, uid, file)| {
            events::aggregate(&events::read_all(&file))
                .into_iter()
                .map(move |event| PodEvent {
                    namespace: namespace.clone(),
                    pod: pod.clone(),
                    uid: uid.clone(),
                    event,
                    kind: "Pod",
                })
        })
        .collect();
    // The node's own events (kubelet posts them in "default"), unless one pod's are asked.
    if filter.pod.is_none() && filter.namespace.is_none_or(|n| n == "default") {
        let node = events::aggregate(&events::read_all(&events::node_events_path(root)));
        out.extend(node.into_iter().map(|event| PodEvent {
            namespace: "default".into(),
            pod: String::new(),
            uid: String::new(),
            event,
            kind: "Node",
        }));
    }
    out.sort_by(|a, b| {
        let key = |e: &PodEvent| (parse_time(&e.event.last), parse_time(&e.event.first));
        key(a)
            .cmp(&key(b))
            .then_with(|| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)))
    });
    out
}

/// kubelet's event name: the object's name and the first occurrence in hex nanoseconds
/// (client-go tools/record: `fmt.Sprintf("%v.%x", ref.Name, t.UnixNano())`).
pub fn event_name(pod: &str, first: Option<&Timestamp>) -> String {
    let nanos = first.map(|t| t.as_nanosecond()).unwrap_or(0).max(0);
    format!("{pod}.{nanos:x}")
}

/// The core/v1 Event kubelet (or the scheduler) would have posted for `e`.
pub fn to_event(e: &PodEvent, node: &str) -> Event {
    let first = parse_time(&e.event.first);
    let last = parse_time(&e.event.last);
    let r = &e.event.record;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    // kubelet reports its node as the source host; the scheduler reports none.
    let host = (r.source == "kubelet").then(|| node.to_string());
    let object = if e.kind == "Node" { node } else { &e.pod };
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(object, first.as_ref())),
            namespace: Some(e.namespace.clone()),
            creation_timestamp: first.map(Time),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(e.kind.into()),
            name: Some(object.to_string()),
            namespace: (e.kind != "Node").then(|| e.namespace.clone()),
            uid: non_empty(&e.uid),
            field_path: non_empty(&r.field_path),
            ..Default::default()
        },
        reason: Some(r.reason.clone()),
        message: Some(r.message.clone()),
        type_: Some(r.type_.clone()),
        source: Some(EventSource {
            component: non_empty(&r.source),
            host: host.clone(),
        }),
        count: Some(e.event.count.min(i32::MAX as u32) as i32),
        first_timestamp: first.map(Time),
        last_timestamp: last.map(Time),
        reporting_component: Some(r.source.clone()),
        reporting_instance: host,
        ..Default::default()
    }
}

/// The table header of `kubectl get events` (`-o wide` adds five columns).
pub fn header(wide: bool, all_ns: bool) -> Vec<String> {
    let mut h = Vec::new();
    if all_ns {
        h.push("NAMESPACE");
    }
    h.extend(["LAST SEEN", "TYPE", "REASON", "OBJECT"]);
    if wide {
        h.extend(["SUBOBJECT", "SOURCE"]);
    }
    h.push("MESSAGE");
    if wide {
        h.extend(["FIRST SEEN", "COUNT", "NAME"]);
    }
    h.into_iter().map(String::from).collect()
}

/// One row as kubectl's printEvent computes it.
pub fn row(ev: &Event, wide: bool, all_ns: bool) -> Vec<String> {
    let first = printers::age(
        ev.first_timestamp
            .as_ref()
            .map(|t| &t.0)
            .or(ev.event_time.as_ref().map(|t| &t.0)),
    );
    let last = match &ev.last_timestamp {
        Some(t) => printers::age(Some(&t.0)),
        None => first.clone(),
    };
    let count = match ev.count {
        Some(c) if c > 0 => c,
        _ => 1,
    };
    let obj = &ev.involved_object;
    let kind = obj.kind.clone().unwrap_or_default().to_lowercase();
    let target = match obj.name.as_deref() {
        Some(n) if !n.is_empty() => format!("{kind}/{n}"),
        _ => kind,
    };
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let mut r = Vec::new();
    if all_ns {
        r.push(text(&ev.metadata.namespace));
    }
    r.extend([last, text(&ev.type_), text(&ev.reason), target]);
    if wide {
        let source = ev.source.clone().unwrap_or_default();
        let component = source
            .component
            .filter(|c| !c.is_empty())
            .or(ev.reporting_component.clone())
            .unwrap_or_default();
        let instance = source
            .host
            .filter(|h| !h.is_empty())
            .or(ev.reporting_instance.clone())
            .unwrap_or_default();
        r.push(text(&obj.field_path));
        r.push(if instance.is_empty() {
            component
        } else {
            format!("{component}, {instance}")
        });
    }
    r.push(text(&ev.message).trim().to_string());
    if wide {
        r.extend([first, count.to_string(), text(&ev.metadata.name)]);
    }
    r
}

/// This node's name for the events' source.host, without creating node.json.
fn node_name(data_dir: &Path) -> String {
    std::fs::read(crate::node::NodeStore::new(data_dir).path())
        .ok()
        .and_then(|b| serde_json::from_slice::<k8s_openapi::api::core::v1::Node>(&b).ok())
        .and_then(|n| n.metadata.name)
        .unwrap_or_else(crate::node::default_node_name)
}

fn list_value(items: &[Event]) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""}
    }))
}

/// An Event with apiVersion and kind, as kubectl prints a single object.
fn object_value(ev: &Event) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(ev)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), "v1".into());
        m.insert("kind".into(), "Event".into());
    }
    Ok(v)
}

fn structured(value: &serde_json::Value, output: &str) -> anyhow::Result<String> {
    Ok(if output == "json" {
        format!("{}\n", serde_json::to_string_pretty(value)?)
    } else {
        serde_yaml_ng::to_string(value)?
    })
}

/// Parses `--for pod/NAME`: Some(pod name), or None for a kind that has no events here.
fn parse_for(spec: &str) -> Result<Option<String>, String> {
    let Some((kind, name)) = spec
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
    else {
        return Err(format!(
            "error: --for must be in resource/name form, got {spec:?}"
        ));
    };
    Ok(super::pod::is_pod_resource(&kind.to_lowercase()).then(|| name.to_string()))
}

/// What the watch loop has printed of each event: its count and last occurrence.
type Printed = HashMap<String, (Option<i32>, Option<Time>)>;

/// Writes `events` in `output`; the table header only when `header` (the first output).
fn render(
    events: &[&Event],
    output: &str,
    all_ns: bool,
    header_row: bool,
) -> anyhow::Result<String> {
    Ok(match output {
        "json" | "yaml" => {
            let mut s = String::new();
            for (i, ev) in events.iter().enumerate() {
                if output == "yaml" && (i > 0 || !header_row) {
                    s.push_str("---\n");
                }
                s.push_str(&structured(&object_value(ev)?, output)?);
            }
            s
        }
        "name" => events
            .iter()
            .map(|e| format!("event/{}\n", e.metadata.name.as_deref().unwrap_or("")))
            .collect(),
        _ => {
            let wide = output == "wide";
            let mut rows = Vec::new();
            if header_row {
                rows.push(header(wide, all_ns));
            }
            rows.extend(events.iter().map(|e| row(e, wide, all_ns)));
            table(&rows)
        }
    })
}

/// `podrun get events [NAME...] [-n NS | -A] [--for pod/NAME] [-o FORMAT] [-w]`.
pub fn get(g: &GlobalOpts, a: &GetArgs, names: &[String]) -> anyhow::Result<i32> {
    let output = a.output.clone().unwrap_or_default();
    if !matches!(output.as_str(), "" | "wide" | "json" | "yaml" | "name") {
        eprintln!("error: unable to match a printer suitable for the output format {output:?}, allowed formats are: json,name,wide,yaml");
        return Ok(1);
    }
    let for_pod = match a.for_object.as_deref().map(parse_for) {
        None => None,
        Some(Ok(Some(p))) => Some(p),
        // Only pods have events on this host: another kind matches none.
        Some(Ok(None)) => Some(String::new()),
        Some(Err(e)) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let ns = a.namespace.as_deref().unwrap_or("default");
    let filter = Filter {
        namespace: (!a.all_namespaces).then_some(ns),
        pod: for_pod.as_deref(),
    };
    events::prune_retained(&g.root, events::EVENT_TTL);
    let node = node_name(&g.data_dir);
    let load = || -> Vec<Event> {
        collect(&g.root, filter)
            .iter()
            .map(|e| to_event(e, &node))
            .filter(|e| {
                names.is_empty() || names.iter().any(|n| Some(n) == e.metadata.name.as_ref())
            })
            .collect()
    };
    let watch = a.watch || a.watch_only;
    let items = load();
    let mut rc = 0;
    for n in names {
        if !items.iter().any(|e| e.metadata.name.as_ref() == Some(n)) {
            eprintln!("Error from server (NotFound): events {n:?} not found");
            rc = 1;
        }
    }
    if !watch {
        let text = match output.as_str() {
            "json" | "yaml" if names.len() == 1 && items.len() == 1 => {
                structured(&object_value(&items[0])?, &output)?
            }
            "json" | "yaml" => structured(&list_value(&items)?, &output)?,
            _ if items.is_empty() => {
                if names.is_empty() {
                    if a.all_namespaces {
                        eprintln!("No resources found");
                    } else {
                        eprintln!("No resources found in {ns} namespace.");
                    }
                }
                String::new()
            }
            _ => render(
                &items.iter().collect::<Vec<_>>(),
                &output,
                a.all_namespaces,
                true,
            )?,
        };
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(rc),
            r => r.map(|_| rc).map_err(Into::into),
        };
    }
    watch_loop(a, &output, items, load)
}

/// Prints the current events (unless --watch-only), then every event that appears or
/// changes (count, last seen), one poll every half second, until killed or stdout closes.
fn watch_loop(
    a: &GetArgs,
    output: &str,
    mut items: Vec<Event>,
    load: impl Fn() -> Vec<Event>,
) -> anyhow::Result<i32> {
    let mut printed: Printed = HashMap::new();
    let mut header_done = false;
    let mut first = true;
    let mut out = std::io::stdout().lock();
    loop {
        let fresh: Vec<&Event> = items
            .iter()
            .filter(|e| {
                let key = e.metadata.name.clone().unwrap_or_default();
                let seen = (e.count, e.last_timestamp.clone());
                printed.insert(key, seen.clone()).as_ref() != Some(&seen)
            })
            .collect();
        // kubectl flushes its tab writer after the first list and then after every
        // watch event: the first table is aligned as one, later rows each on their own.
        let blocks: Vec<&[&Event]> = match (first, a.watch_only) {
            (true, true) => Vec::new(),
            (true, false) => vec![&fresh[..]],
            (false, _) => fresh.chunks(1).collect(),
        };
        for block in blocks.into_iter().filter(|b| !b.is_empty()) {
            let text = render(block, output, a.all_namespaces, !header_done)?;
            header_done = true;
            let written = out.write_all(text.as_bytes()).and_then(|_| out.flush());
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                r => r?,
            }
        }
        first = false;
        std::thread::sleep(WATCH_POLL);
        items = load();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::events::EventRecord;

    fn pod_event(reason: &str, count: u32, first: &str, last: &str) -> PodEvent {
        PodEvent {
            namespace: "dev".into(),
            pod: "web".into(),
            uid: "0b0c-uid".into(),
            kind: "Pod",
            event: AggregatedEvent {
                record: EventRecord {
                    type_: "Warning".into(),
                    reason: reason.into(),
                    message: "Back-off restarting failed container sh in pod web_dev(0b0c-uid) "
                        .into(),
                    source: "kubelet".into(),
                    field_path: "spec.containers{sh}".into(),
                    time: first.into(),
                },
                count,
                first: first.into(),
                last: last.into(),
            },
        }
    }

    #[test]
    fn event_object_matches_what_kubelet_posts() {
        let e = pod_event(
            "BackOff",
            3,
            "2026-01-01T00:00:01.5Z",
            "2026-01-01T00:00:09Z",
        );
        let v = object_value(&to_event(&e, "node1")).unwrap();
        assert_eq!(v["kind"], "Event");
        assert_eq!(v["metadata"]["name"], "web.1886725247622f00");
        assert_eq!(v["metadata"]["namespace"], "dev");
        assert_eq!(
            v["involvedObject"],
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "web",
                "namespace": "dev", "uid": "0b0c-uid", "fieldPath": "spec.containers{sh}"})
        );
        assert_eq!(v["count"], 3);
        assert_eq!(v["firstTimestamp"], "2026-01-01T00:00:01Z");
        assert_eq!(v["lastTimestamp"], "2026-01-01T00:00:09Z");
        assert_eq!(
            v["source"],
            serde_json::json!({"component": "kubelet", "host": "node1"})
        );
        assert_eq!(v["reportingComponent"], "kubelet");
        assert_eq!(v["reportingInstance"], "node1");
        assert_eq!(v["type"], "Warning");
        assert_eq!(v["reason"], "BackOff");
    }

    #[test]
    fn scheduler_events_have_no_source_host() {
        let mut e = pod_event(
            "Scheduled",
            1,
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:01Z",
        );
        e.event.record.source = "default-scheduler".into();
        e.event.record.field_path = String::new();
        let ev = to_event(&e, "node1");
        assert_eq!(ev.source.as_ref().and_then(|s| s.host.clone()), None);
        assert_eq!(ev.reporting_instance, None);
        assert_eq!(ev.involved_object.field_path, None);
        assert_eq!(row(&ev, true, false)[5], "default-scheduler");
    }

    #[test]
    fn table_has_kubectl_columns_and_ages() {
        let now = crate::util::now();
        let ago = |s: i64| (now - k8s_openapi::jiff::SignedDuration::from_secs(s)).to_string();
        let ev = to_event(
            &pod_event("BackOff", 4, &ago(50 * 3600), &ago(5 * 3600)),
            "node1",
        );
        let t = render(&[&ev], "", false, true).unwrap();
        assert_eq!(
            t,
            "LAST SEEN   TYPE      REASON    OBJECT    MESSAGE\n\
             5h          Warning   BackOff   pod/web   Back-off restarting failed container sh in pod web_dev(0b0c-uid)\n"
        );
        let t = render(&[&ev], "", true, true).unwrap();
        assert!(t.starts_with("NAMESPACE   LAST SEEN"), "{t}");
        assert!(
            t.lines().nth(1).unwrap().starts_with("dev         5h"),
            "{t}"
        );
        let w = row(&ev, true, false);
        assert_eq!(
            header(true, false),
            [
                "LAST SEEN",
                "TYPE",
                "REASON",
                "OBJECT",
                "SUBOBJECT",
                "SOURCE",
                "MESSAGE",
                "FIRST SEEN",
                "COUNT",
                "NAME"
            ]
        );
        assert_eq!(w[4], "spec.containers{sh}");
        assert_eq!(w[5], "kubelet, node1");
        assert_eq!((w[7].as_str(), w[8].as_str()), ("2d2h", "4"));
        assert!(w[9].starts_with("web."), "{w:?}");
        // Without a header (watch updates) a row stands alone.
        let t = render(&[&ev], "name", false, true).unwrap();
        assert_eq!(t, format!("event/{}\n", w[9]));
    }

    #[test]
    fn list_output_is_a_v1_list_of_events() {
        let ev = to_event(
            &pod_event("BackOff", 2, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"),
            "n",
        );
        let v: serde_json::Value =
            serde_json::from_str(&structured(&list_value(&[ev]).unwrap(), "json").unwrap())
                .unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["items"][0]["involvedObject"]["name"], "web");
        assert_eq!(v["items"][0]["count"], 2);
    }

    #[test]
    fn for_takes_pod_slash_name() {
        assert_eq!(parse_for("pod/web"), Ok(Some("web".into())));
        assert_eq!(parse_for("pods/web"), Ok(Some("web".into())));
        assert_eq!(parse_for("node/n1"), Ok(None));
        assert!(parse_for("web").is_err());
        assert!(parse_for("pod/").is_err());
    }

    #[test]
    fn collect_reads_live_and_deleted_pods_sorted_by_last_seen() {
        let root = std::env::temp_dir().join(format!(
            "podrun-cli-events-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let st = PodStore::new(&root);
        let dir = st.dir("dev", "live");
        std::fs::create_dir_all(&dir).unwrap();
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "live", "namespace": "dev", "uid": "u-live"},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap();
        store::write_json(&dir.join(store::POD_FILE), &pod).unwrap();
        events::link_for_retention(&root, &dir, "dev", "live", "u-live").unwrap();
        let gone = events::retained_path(&root, "dev", "gone", "u-gone");
        let other = events::retained_path(&root, "prod", "gone", "u-other");
        events::record(&gone, "Normal", "Killing", "kubelet", "", "Stopping").unwrap();
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        events::record(&other, "Normal", "Killing", "kubelet", "", "Stopping").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        events::record(
            &dir.join(store::EVENTS_FILE),
            "Normal",
            "Started",
            "kubelet",
            "",
            "Started",
        )
        .unwrap();
        let dev = collect(
            &root,
            Filter {
                namespace: Some("dev"),
                pod: None,
            },
        );
        let seen: Vec<(&str, &str)> = dev
            .iter()
            .map(|e| (e.pod.as_str(), e.event.record.reason.as_str()))
            .collect();
        assert_eq!(seen, [("gone", "Killing"), ("live", "Started")]);
        assert_eq!(dev[1].uid, "u-live");
        let all = collect(
            &root,
            Filter {
                namespace: None,
                pod: Some("gone"),
            },
        );
        assert_eq!(all.len(), 2);
        let _ = std::fs::remove_dir_all(&root);
    }
}
