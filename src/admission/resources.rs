//! Resource fit and host ports: a pod's effective requests (containers summed, init
//! containers' maximum, sidecars counted throughout, plus overhead), checked against the
//! node's allocatable minus what the pods already on it request; hostPort conflicts.
use crate::manifest::quantity::{amount, InvalidQuantity};
use k8s_openapi::api::core::v1::{Container, Node, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// Requests by resource name: cpu in millicores, everything else in whole units.
pub type ResourceList = BTreeMap<String, i128>;

fn add(into: &mut ResourceList, from: &ResourceList) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

fn max_into(into: &mut ResourceList, from: &ResourceList) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(0);
        if *v > *e {
            *e = *v;
        }
    }
}

/// Parses a resource list; `path` names it in an error (built only then: this runs for
/// every pod on the node at every admission).
fn parse_list(
    list: Option<&BTreeMap<String, Quantity>>,
    path: &dyn Fn() -> String,
) -> Result<ResourceList, (String, InvalidQuantity)> {
    let mut out = ResourceList::new();
    for (k, q) in list.into_iter().flatten() {
        let v = amount(k, &q.0).map_err(|e| (format!("{}[{k}]", path()), e))?;
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// A container's requests, with limits standing in for missing requests as the API
/// server defaults them.
fn container_requests(
    c: &Container,
    path: &dyn Fn() -> String,
) -> Result<ResourceList, (String, InvalidQuantity)> {
    let res = c.resources.as_ref();
    let mut reqs = parse_list(res.and_then(|r| r.requests.as_ref()), &|| {
        format!("{}.resources.requests", path())
    })?;
    let limits = parse_list(res.and_then(|r| r.limits.as_ref()), &|| {
        format!("{}.resources.limits", path())
    })?;
    for (k, v) in limits {
        reqs.entry(k).or_insert(v);
    }
    Ok(reqs)
}

fn container_limits(
    c: &Container,
    path: &dyn Fn() -> String,
) -> Result<ResourceList, (String, InvalidQuantity)> {
    parse_list(
        c.resources.as_ref().and_then(|r| r.limits.as_ref()),
        &|| format!("{}.resources.limits", path()),
    )
}

type PerContainer =
    fn(&Container, &dyn Fn() -> String) -> Result<ResourceList, (String, InvalidQuantity)>;
type PodLevel = fn(&ResourceRequirements) -> Option<&BTreeMap<String, Quantity>>;

/// The pod's effective request (resourcehelper.PodRequests): max(sum of containers and
/// sidecars, each init container on top of the sidecars started before it) + overhead;
/// pod-level `spec.resources.requests` replace the per-container sum where given.
pub fn pod_requests(pod: &Pod) -> Result<ResourceList, (String, InvalidQuantity)> {
    pod_total(
        pod,
        container_requests,
        |r| r.requests.as_ref(),
        "spec.resources.requests",
    )
}

/// The pod's effective limits, summed the same way (what `describe node` shows).
pub fn pod_limits(pod: &Pod) -> Result<ResourceList, (String, InvalidQuantity)> {
    pod_total(
        pod,
        container_limits,
        |r| r.limits.as_ref(),
        "spec.resources.limits",
    )
}

fn pod_total(
    pod: &Pod,
    per_container: PerContainer,
    pod_level: PodLevel,
    pod_level_path: &str,
) -> Result<ResourceList, (String, InvalidQuantity)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(ResourceList::new());
    };
    let mut reqs = ResourceList::new();
    for (i, c) in spec.containers.iter().enumerate() {
        add(
            &mut reqs,
            &per_container(c, &|| format!("spec.containers[{i}]"))?,
        );
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let r = per_container(c, &|| format!("spec.initContainers[{i}]"))?;
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut reqs, &r);
            add(&mut sidecars, &r);
            max_into(&mut init_max, &sidecars);
        } else {
            let mut tmp = r;
            add(&mut tmp, &sidecars);
            max_into(&mut init_max, &tmp);
        }
    }
    max_into(&mut reqs, &init_max);
    let pod_level = parse_list(spec.resources.as_ref().and_then(pod_level), &|| {
        pod_level_path.to_string()
    })?;
    for (k, v) in pod_level {
        if k == "cpu" || k == "memory" || k.starts_with("hugepages-") {
            reqs.insert(k, v);
        }
    }
    add(
        &mut reqs,
        &parse_list(spec.overhead.as_ref(), &|| "spec.overhead".to_string())?,
    );
    Ok(reqs)
}

/// The node's allocatable in the same units (unparseable entries count as zero).
pub fn node_allocatable(node: &Node) -> ResourceList {
    let mut out = ResourceList::new();
    for (k, q) in node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .into_iter()
        .flatten()
    {
        out.insert(k.clone(), amount(k, &q.0).unwrap_or(0));
    }
    out
}

/// One resource that does not fit (the scheduler's InsufficientResource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insufficient {
    pub resource: String,
    /// "Insufficient cpu", "Too many pods".
    pub reason: String,
    pub requested: i128,
    pub used: i128,
    pub capacity: i128,
}

/// noderesources.Fits: pod count first, then cpu, memory, ephemeral-storage and any other
/// requested resource, each only when the pod asks for some.
pub fn fits(
    pod_req: &ResourceList,
    existing_count: usize,
    used: &ResourceList,
    alloc: &ResourceList,
) -> Vec<Insufficient> {
    let mut out = Vec::new();
    let get = |l: &ResourceList, k: &str| l.get(k).copied().unwrap_or(0);
    let allowed_pods = get(alloc, "pods");
    if existing_count as i128 + 1 > allowed_pods {
        out.push(Insufficient {
            resource: "pods".into(),
            reason: "Too many pods".into(),
            requested: 1,
            used: existing_count as i128,
            capacity: allowed_pods,
        });
    }
    if pod_req.iter().all(|(k, v)| k == "pods" || *v == 0) {
        return out;
    }
    let mut check = |name: &str| {
        let req = get(pod_req, name);
        if req > 0 && req > get(alloc, name) - get(used, name) {
            out.push(Insufficient {
                resource: name.into(),
                reason: format!("Insufficient {name}"),
                requested: req,
                used: get(used, name),
                capacity: get(alloc, name),
            });
        }
    };
    for name in ["cpu", "memory", "ephemeral-storage"] {
        check(name);
    }
    // Scalar resources: extended (domain/name), hugepages, attachable volumes; other
    // names are not resources the scheduler accounts.
    for name in pod_req.keys() {
        if name.contains('/')
            || name.starts_with("hugepages-")
            || name.starts_with("attachable-volumes-")
        {
            check(name);
        }
    }
    out
}

/// Sum of the requests of `pods` (unparseable quantities, already refused at their own
/// admission, count as zero).
pub fn requested_by(pods: &[&Pod]) -> ResourceList {
    let mut out = ResourceList::new();
    for p in pods {
        if let Ok(r) = pod_requests(p) {
            add(&mut out, &r);
        }
    }
    out
}

/// A host port a pod binds: (host IP, protocol, port), with kubelet's defaults
/// (0.0.0.0, TCP; hostNetwork pods bind their container ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let host_network = spec.host_network.unwrap_or(false);
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut out = Vec::new();
    for c in spec.containers.iter().chain(sidecars) {
        for p in c.ports.iter().flatten() {
            let port = match p.host_port {
                Some(h) if h > 0 => h,
                _ if host_network => p.container_port,
                _ => continue,
            };
            if port <= 0 {
                continue;
            }
            let ip = p
                .host_ip
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("0.0.0.0");
            let protocol = p
                .protocol
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("TCP");
            out.push(HostPort {
                ip: ip.to_string(),
                protocol: protocol.to_string(),
                port,
            });
        }
    }
    out
}

/// HostPortInfo.CheckConflict: same protocol and port, and either side binds 0.0.0.0 or
/// both bind the same IP.
pub fn port_conflict(want: &[HostPort], used: &[HostPort]) -> bool {
    want.iter().any(|w| {
        used.iter().any(|u| {
            u.port == w.port
                && u.protocol == w.protocol
                && (w.ip == "0.0.0.0" || u.ip == "0.0.0.0" || u.ip == w.ip)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, ResourceRequirements};

    fn c(
        name: &str,
        req: &[(&str, &str)],
        lim: &[(&str, &str)],
        restart: Option<&str>,
    ) -> Container {
        let m = |v: &[(&str, &str)]| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                claims: None,
            }),
            restart_policy: restart.map(String::from),
            ..Default::default()
        }
    }
    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                init_containers: Some(init),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn effective_request_rules() {
        // Sum of containers vs max of init containers.
        let p = pod(
            vec![
                c("a", &[("cpu", "250m"), ("memory", "64Mi")], &[], None),
                c("b", &[("cpu", "250m")], &[], None),
            ],
            vec![
                c("i1", &[("cpu", "1"), ("memory", "10Mi")], &[], None),
                c("i2", &[("memory", "100Mi")], &[], None),
            ],
        );
        let r = pod_requests(&p).unwrap();
        assert_eq!(r["cpu"], 1000);
        assert_eq!(r["memory"], 100 << 20);
        // Limits stand in for missing requests.
        let p = pod(
            vec![c("a", &[], &[("memory", "1Gi"), ("cpu", "2")], None)],
            vec![],
        );
        let r = pod_requests(&p).unwrap();
        assert_eq!((r["cpu"], r["memory"]), (2000, 1 << 30));
        // A sidecar runs beside everything after it.
        let p = pod(
            vec![c("main", &[("cpu", "100m")], &[], None)],
            vec![
                c("side", &[("cpu", "200m")], &[], Some("Always")),
                c("init", &[("cpu", "500m")], &[], None),
            ],
        );
        assert_eq!(
            pod_requests(&p).unwrap()["cpu"],
            700,
            "init 500m on top of the 200m sidecar"
        );
        // Overhead is added.
        let mut p = pod(vec![c("a", &[("cpu", "100m")], &[], None)], vec![]);
        p.spec.as_mut().unwrap().overhead =
            Some([("cpu".to_string(), Quantity("50m".into()))].into());
        assert_eq!(pod_requests(&p).unwrap()["cpu"], 150);
        // A bad quantity names its field.
        let p = pod(vec![c("a", &[("memory", "lots")], &[], None)], vec![]);
        assert_eq!(
            pod_requests(&p).unwrap_err().0,
            "spec.containers[0].resources.requests[memory]"
        );
    }

    #[test]
    fn fit_reasons_in_scheduler_order() {
        let alloc: ResourceList = [("cpu", 2000), ("memory", 1000), ("pods", 2)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let used: ResourceList = [("cpu".to_string(), 1500), ("memory".to_string(), 100)].into();
        let req: ResourceList = [
            ("cpu".to_string(), 600),
            ("memory".to_string(), 900),
            ("example.com/gpu".to_string(), 1),
        ]
        .into();
        let got: Vec<String> = fits(&req, 2, &used, &alloc)
            .into_iter()
            .map(|i| i.reason)
            .collect();
        assert_eq!(
            got,
            [
                "Too many pods",
                "Insufficient cpu",
                "Insufficient example.com/gpu"
            ]
        );
        // Exactly full still fits; a pod asking nothing only counts against pods.
        let req: ResourceList = [("cpu".to_string(), 500), ("memory".to_string(), 900)].into();
        assert!(fits(&req, 1, &used, &alloc).is_empty());
        assert!(fits(&ResourceList::new(), 1, &used, &alloc).is_empty());
    }

    #[test]
    fn host_port_conflicts() {
        let port = |ip: &str, proto: &str, p: i32| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port: p,
        };
        let used = vec![port("0.0.0.0", "TCP", 8080), port("10.0.0.1", "UDP", 53)];
        assert!(port_conflict(&[port("127.0.0.1", "TCP", 8080)], &used));
        assert!(!port_conflict(&[port("0.0.0.0", "UDP", 8080)], &used));
        assert!(port_conflict(&[port("0.0.0.0", "UDP", 53)], &used));
        assert!(!port_conflict(&[port("10.0.0.2", "UDP", 53)], &used));
        let mut p = pod(vec![Container::default()], vec![]);
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![
            ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                ..Default::default()
            },
            ContainerPort {
                container_port: 81,
                ..Default::default()
            },
        ]);
        assert_eq!(host_ports(&p), vec![port("0.0.0.0", "TCP", 8080)]);
        p.spec.as_mut().unwrap().host_network = Some(true);
        assert_eq!(
            host_ports(&p).len(),
            2,
            "hostNetwork binds every container port"
        );
    }
}
