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

/// kubelet's oom_score_adj for a container: Guaranteed -997, BestEffort 1000, Burstable
/// `1000 - 1000*memoryRequest/nodeMemoryCapacity` kept within [2, 999] so it stays between both.
pub fn oom_score_adj(pod: &Pod, container: &Container, node_memory_capacity: u64) -> i32 {
    match qos_class(pod) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("memory"))
                .and_then(|q| ParsedQuantity::parse(&q.0).ok())
                .and_then(|p| p.value().ok())
                .unwrap_or(0)
                .max(0);
            let cap = i128::from(node_memory_capacity.max(1));
            let adj = 1000 - (1000 * request) / cap;
            // clamp() keeps it in range even for requests beyond the node's memory.
            i32::try_from(adj.clamp(2, 999)).unwrap_or(2)
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
        assert_eq!(oom_score_adj(&p, &c, 16 << 30), 2);
        let p = pod("{limits: {memory: 1Gi}}");
        assert_eq!(qos_class(&p), QosClass::Burstable, "cpu unlimited");
    }

    #[test]
    fn cgroup_parent_per_class() {
        assert_eq!(QosClass::Guaranteed.cgroup_parent(), "");
        assert_eq!(QosClass::Burstable.cgroup_parent(), "burstable");
        assert_eq!(QosClass::BestEffort.cgroup_parent(), "besteffort");
    }
}
