//! Container and pod resources → cgroup values with kubelet's arithmetic: cpu limit →
//! CFS quota over a 100 ms period, cpu request → shares, memory limit → limit.
use crate::manifest::qos::{qos_class, QosClass};
use crate::manifest::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources, LinuxResourcesBuilder,
};

/// The CFS period kubelet uses (100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// kubelet's MinShares / MaxShares.
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
const MIN_QUOTA_US: i64 = 1000;

/// cgroup values for one container or one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupResources {
    pub cpu_shares: u64,
    /// CFS quota (µs per period) when a cpu limit applies.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
}

impl CgroupResources {
    /// As OCI `linux.resources` (cgroup v2 runtimes convert shares to cpu.weight).
    pub fn to_oci(&self) -> LinuxResources {
        let mut cpu = LinuxCpuBuilder::default().shares(self.cpu_shares);
        if let (Some(q), Some(p)) = (self.cpu_quota, self.cpu_period) {
            cpu = cpu.quota(q).period(p);
        }
        let mut b = LinuxResourcesBuilder::default();
        if let Ok(cpu) = cpu.build() {
            b = b.cpu(cpu);
        }
        if let Some(limit) = self.memory_limit {
            if let Ok(mem) = LinuxMemoryBuilder::default().limit(limit).build() {
                b = b.memory(mem);
            }
        }
        b.build().unwrap_or_default()
    }
}

/// kubelet's MilliCPUToShares: 1 core = 1024 shares, at least 2.
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    let shares = u64::try_from(milli).unwrap_or(0) * 1024 / 1000;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// kubelet's MilliCPUToQuota: no limit → none; else at least 1 ms per period.
pub fn milli_cpu_to_quota(milli: i64, period: u64) -> Option<i64> {
    if milli <= 0 {
        return None;
    }
    let quota = milli.saturating_mul(i64::try_from(period).unwrap_or(i64::MAX)) / 1000;
    Some(quota.max(MIN_QUOTA_US))
}

fn quantity(c: &Container, part: &str, name: &str, milli: bool) -> i64 {
    let r = c.resources.as_ref();
    let map = match part {
        "limits" => r.and_then(|r| r.limits.as_ref()),
        _ => r.and_then(|r| r.requests.as_ref()),
    };
    map.and_then(|m| m.get(name))
        .and_then(|q| ParsedQuantity::parse(&q.0).ok())
        .and_then(|p| {
            if milli {
                p.milli().ok()
            } else {
                p.value().ok()
            }
        })
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(0)
}

/// One container's cgroup values (kubelet's generateLinuxContainerResources).
pub fn container_resources(c: &Container) -> CgroupResources {
    let cpu_req = quantity(c, "requests", "cpu", true);
    let cpu_lim = quantity(c, "limits", "cpu", true);
    let mem_lim = quantity(c, "limits", "memory", false);
    let shares_from = if cpu_req == 0 && cpu_lim != 0 {
        cpu_lim
    } else {
        cpu_req
    };
    let quota = milli_cpu_to_quota(cpu_lim, CPU_PERIOD_US);
    CgroupResources {
        cpu_shares: milli_cpu_to_shares(shares_from),
        cpu_quota: quota,
        cpu_period: quota.map(|_| CPU_PERIOD_US),
        memory_limit: (mem_lim > 0).then_some(mem_lim),
    }
}

/// Effective pod totals of `part` for `name`: regular containers and sidecars together,
/// or the largest init container (plus the sidecars started before it), whichever is more.
fn pod_total(pod: &Pod, part: &str, name: &str, milli: bool) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let mut sidecars = 0i64;
    let mut init_peak = 0i64;
    for c in spec.init_containers.iter().flatten() {
        let v = quantity(c, part, name, milli);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars += v;
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars + v);
        }
    }
    let regular: i64 = spec
        .containers
        .iter()
        .map(|c| quantity(c, part, name, milli))
        .sum();
    (regular + sidecars).max(init_peak)
}

/// The pod cgroup's values (kubelet's ResourceConfigForPod): shares from the summed
/// requests; quota and memory limit only when every container declares that limit.
pub fn pod_resources(pod: &Pod) -> CgroupResources {
    let cpu_req = pod_total(pod, "requests", "cpu", true);
    let cpu_lim = pod_total(pod, "limits", "cpu", true);
    let mem_lim = pod_total(pod, "limits", "memory", false);
    let all: Vec<&Container> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .collect();
    let cpu_declared = all.iter().all(|c| quantity(c, "limits", "cpu", true) > 0);
    let mem_declared = all
        .iter()
        .all(|c| quantity(c, "limits", "memory", false) > 0);
    let quota = milli_cpu_to_quota(cpu_lim, CPU_PERIOD_US);
    match qos_class(pod) {
        QosClass::BestEffort => CgroupResources {
            cpu_shares: MIN_SHARES,
            cpu_quota: None,
            cpu_period: None,
            memory_limit: None,
        },
        class => {
            let guaranteed = class == QosClass::Guaranteed;
            let q = if guaranteed || cpu_declared {
                quota
            } else {
                None
            };
            CgroupResources {
                cpu_shares: milli_cpu_to_shares(cpu_req),
                cpu_quota: q,
                cpu_period: q.map(|_| CPU_PERIOD_US),
                memory_limit: ((guaranteed || mem_declared) && mem_lim > 0).then_some(mem_lim),
            }
        }
    }
}

/// kubelet's cgroup path for a container: `/kubepods[/burstable|/besteffort]/pod<uid>/<id>`.
pub fn container_cgroup_path(pod: &Pod, container_id: &str) -> String {
    format!("{}/{container_id}", pod_cgroup_path(pod))
}

/// kubelet's pod cgroup: `/kubepods/pod<uid>` (Guaranteed) or under its QoS class.
pub fn pod_cgroup_path(pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    match qos_class(pod).cgroup_parent() {
        "" => format!("/kubepods/pod{uid}"),
        class => format!("/kubepods/{class}/pod{uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, LoadOptions};

    fn pod(text: &str) -> Pod {
        load(text, &LoadOptions::default()).unwrap().pods.remove(0)
    }

    fn one(resources: &str) -> Pod {
        pod(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    resources: {resources}\n"))
    }

    #[test]
    fn pod_resources_seed_gives_two_cores_ten_gi_and_one_core_of_shares() {
        let p = pod(&crate::manifest::tests::seed("pod-resources.yaml"));
        let r = container_resources(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(r.cpu_quota, Some(200_000), "2 cores over a 100 ms period");
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.memory_limit, Some(10 * 1024 * 1024 * 1024));
        assert_eq!(r.cpu_shares, 1024, "1 core requested");
        let oci = r.to_oci();
        let cpu = oci.cpu().as_ref().unwrap();
        assert_eq!(cpu.quota(), Some(200_000));
        assert_eq!(cpu.shares(), Some(1024));
        assert_eq!(oci.memory().as_ref().unwrap().limit(), Some(10 << 30));
    }

    #[test]
    fn shares_and_quota_arithmetic() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, CPU_PERIOD_US), None);
        assert_eq!(milli_cpu_to_quota(500, CPU_PERIOD_US), Some(50_000));
        assert_eq!(
            milli_cpu_to_quota(5, CPU_PERIOD_US),
            Some(1000),
            "at least 1 ms"
        );
    }

    #[test]
    fn no_resources_means_minimum_shares_and_no_limits() {
        let p = one("{}");
        let r = container_resources(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(
            r,
            CgroupResources {
                cpu_shares: 2,
                cpu_quota: None,
                cpu_period: None,
                memory_limit: None
            }
        );
        assert_eq!(pod_resources(&p), r);
        assert!(pod_cgroup_path(&p).starts_with("/kubepods/besteffort/pod"));
    }

    #[test]
    fn pod_sums_limits_only_when_every_container_declares_them() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: i, resources: {limits: {cpu: 500m, memory: 1Gi}}}\n  - {name: b, image: i, resources: {limits: {cpu: 1500m, memory: 1Gi}}}\n";
        let p = pod(text);
        let r = pod_resources(&p);
        assert_eq!(r.cpu_shares, 2048);
        assert_eq!(r.cpu_quota, Some(200_000));
        assert_eq!(r.memory_limit, Some(2 << 30));
        let uid = p.metadata.uid.clone().unwrap();
        assert_eq!(
            pod_cgroup_path(&p),
            format!("/kubepods/pod{uid}"),
            "Guaranteed sits directly under kubepods"
        );
        assert_eq!(
            container_cgroup_path(&p, "abc"),
            format!("/kubepods/pod{uid}/abc")
        );

        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: i, resources: {limits: {cpu: 500m}}}\n  - {name: b, image: i, resources: {requests: {cpu: 250m, memory: 1Gi}}}\n";
        let p = pod(text);
        let r = pod_resources(&p);
        assert_eq!(r.cpu_shares, 768, "500m + 250m requested");
        assert_eq!(r.cpu_quota, None, "b has no cpu limit");
        assert_eq!(r.memory_limit, None);
        assert!(pod_cgroup_path(&p).starts_with("/kubepods/burstable/pod"));
    }

    #[test]
    fn init_containers_count_by_their_peak() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers:\n  - {name: big, image: i, resources: {requests: {cpu: '2'}}}\n  - {name: side, image: i, restartPolicy: Always, resources: {requests: {cpu: 100m}}}\n  containers:\n  - {name: a, image: i, resources: {requests: {cpu: 500m}}}\n";
        let r = pod_resources(&pod(text));
        assert_eq!(
            r.cpu_shares, 2048,
            "the 2-core init container outweighs 600m running"
        );
    }
}
