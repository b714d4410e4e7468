//! QoS class of a pod and each container's oom_score_adj, with kubelet's rules.
use super::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::BTreeMap;

/// Kubernetes' pod QoS classes; `as_str` is what status.qosClass shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// The kubelet cgroup directory under /kubepods for this class ("" for Guaranteed).
    pub fn cgroup_parent(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "",
            QosClass::Burstable => "burstable",
            QosClass::BestEffort => "besteffort",
        }
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    })
}

fn milli(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> i128 {
    ParsedQuantity::parse(&q.0)
        .and_then(|p| p.milli())
        .unwrap_or(0)
}

/// kubelet's GetPodQOS over cpu and memory of every container (init ones included).
pub fn qos_class(pod: &Pod) -> QosClass {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for c in all_containers(pod) {
        let r = c.resources.as_ref();
        for (name, q) in r.and_then(|r| r.requests.as_ref()).into_iter().flatten() {
            let m = milli(q);
            if matches!(name.as_str(), "cpu" | "memory") && m > 0 {
                *requests.entry(name.as_str()).or_default() += m;
            }
        }
        let mut found = 0;
        for (name, q) in r.and_then(|r| r.limits.as_ref()).into_iter().flatten() {
            let m = milli(q);
            if matches!(name.as_str(), "cpu" | "memory") && m > 0 {
                found += 1;
                *limits.entry(name.as_str()).or_default() += m;
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

fn memory_request(c: &Container) -> i128 {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("memory"))
        .and_then(|q| ParsedQuantity::parse(&q.0).ok())
        .and_then(|p| p.value().ok())
        .unwrap_or(0)
        .max(0)
}

/// kubelet's oom_score_adj for a container (pkg/kubelet/qos/policy.go): Guaranteed -997,
/// BestEffort 1000, Burstable `1000 - 1000*memoryRequest/nodeMemoryCapacity` kept within
/// [3, 999] (kubelet's floor is `1000 + guaranteedOOMScoreAdj`; the kubernetes.io table
/// says 2), a sidecar no higher than the pod's smallest regular container.
pub fn oom_score_adj(pod: &Pod, container: &Container, node_memory_capacity: u64) -> i32 {
    match qos_class(pod) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let cap = i128::from(node_memory_capacity.max(1));
            let mut adj = 1000 - (1000 * memory_request(container)) / cap;
            let spec = pod.spec.as_ref();
            let is_sidecar = container.restart_policy.as_deref() == Some("Always")
                && spec
                    .and_then(|s| s.init_containers.as_ref())
                    .is_some_and(|ics| ics.iter().any(|c| c.name == container.name));
            if is_sidecar {
                let min_regular = spec
                    .map(|s| s.containers.iter().map(memory_request).min().unwrap_or(0))
                    .unwrap_or(0);
                adj = adj.min(1000 - (1000 * min_regular) / cap);
            }
            if adj < 3 {
                return 3;
            }
            if adj >= 1000 {
                return 999;
            }
            i32::try_from(adj).unwrap_or(999)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn pod(resources: &str) -> Pod {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    resources: {resources}\n");
        load(&text, &LoadOptions::default()).unwrap().pods.remove(0)
    }

    #[test]
    fn no_resources_is_best_effort() {
        let p = pod("{}");
        assert_eq!(qos_class(&p), QosClass::BestEffort);
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(oom_score_adj(&p, &c, 1 << 34), 1000);
    }

    #[test]
    fn equal_limits_and_requests_for_cpu_and_memory_is_guaranteed() {
        let p = pod("{limits: {cpu: '1', memory: 1Gi}}");
        assert_eq!(
            qos_class(&p),
            QosClass::Guaranteed,
            "requests default to limits"
        );
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(oom_score_adj(&p, &c, 1 << 34), -997);
    }

    #[test]
    fn anything_else_is_burstable_scored_by_memory_request() {
        let text = crate::manifest::tests::seed("pod-resources.yaml");
        let p = load(&text, &LoadOptions::default()).unwrap().pods.remove(0);
        assert_eq!(qos_class(&p), QosClass::Burstable);
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        // 10Mi of a 16 GiB node: 1000 - 10485760000/17179869184 = 1000 - 0 = 1000 → 999.
        assert_eq!(oom_score_adj(&p, &c, 16 << 30), 999);
        let p = pod("{requests: {memory: 8Gi}}");
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(oom_score_adj(&p, &c, 16 << 30), 500);
        let p = pod("{requests: {memory: 20Gi}}");
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(oom_score_adj(&p, &c, 16 << 30), 3, "kubelet's floor");
        let p = pod("{limits: {memory: 1Gi}}");
        assert_eq!(qos_class(&p), QosClass::Burstable, "cpu unlimited");
    }

    #[test]
    fn a_sidecar_is_no_easier_to_kill_than_the_app() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers:\n  - {name: side, image: i, restartPolicy: Always}\n  containers:\n  - {name: app, image: i, resources: {requests: {memory: 8Gi}}}\n";
        let p = load(text, &LoadOptions::default()).unwrap().pods.remove(0);
        let side = p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0].clone();
        assert_eq!(oom_score_adj(&p, &side, 16 << 30), 500);
    }

    #[test]
    fn cgroup_parent_per_class() {
        assert_eq!(QosClass::Guaranteed.cgroup_parent(), "");
        assert_eq!(QosClass::Burstable.cgroup_parent(), "burstable");
        assert_eq!(QosClass::BestEffort.cgroup_parent(), "besteffort");
    }
}
