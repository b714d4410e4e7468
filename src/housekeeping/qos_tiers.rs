//! The QoS tier cgroups kubelet's QoS container manager keeps: `/kubepods/besteffort`
//! at the minimum cpu.shares (2; cgroup v2 cpu.weight 1), `/kubepods/burstable` at the
//! shares of its pods' summed cpu requests, recomputed whenever a pod cgroup comes or goes.
//!
//! The pods' requests are read back from the pod cgroups themselves (each holds
//! MilliCPUToShares of its pod's request): the tiers are the host's, shared by every
//! podrun state root, and the cgroups are the one record all of them agree on. The
//! recomputation holds an flock on the tier's directory, so pods starting and stopping
//! at once end on the right sum.
use crate::spec::resources::{milli_cpu_to_shares, MIN_SHARES};
use std::os::fd::AsRawFd;
use std::path::Path;

pub const BESTEFFORT: &str = "/kubepods/besteffort";
pub const BURSTABLE: &str = "/kubepods/burstable";

/// Why a tier could not be set.
#[derive(Debug, thiserror::Error)]
pub enum QosTierError {
    #[error("{tier}: {source}")]
    Cgroup {
        tier: &'static str,
        #[source]
        source: crate::runtime::cgroups::CgroupError,
    },
    #[error("{tier}: locking: {source}")]
    Lock {
        tier: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The millicores a pod cgroup's cpu.shares stand for: the one request whose
/// MilliCPUToShares it is (the map is one to one above the minimum; at the minimum,
/// none).
pub fn shares_to_milli(shares: u64) -> i64 {
    if shares <= MIN_SHARES {
        return 0;
    }
    i64::try_from((shares * 1000).div_ceil(1024)).unwrap_or(i64::MAX)
}

/// The inverse of runc's shares → cpu.weight conversion (cgroup v2), to the nearest
/// share the weight allows.
pub fn weight_to_shares(weight: u64) -> u64 {
    match weight {
        0 | 1 => MIN_SHARES,
        w if w >= 10_000 => 262_144,
        w => 2 + ((w - 1) * 262_142).div_ceil(9999),
    }
}

/// burstable's cpu.shares from its pods' cpu.shares, as kubelet computes it from their
/// requests: MilliCPUToShares of the summed millicores.
pub fn burstable_shares(pod_shares: &[u64]) -> u64 {
    milli_cpu_to_shares(pod_shares.iter().map(|s| shares_to_milli(*s)).sum())
}

/// Sets both tiers (after a pod cgroup was made or removed). A tier that does not exist
/// (no pod of that class) is left alone.
pub fn update() -> Result<(), QosTierError> {
    set_tier(BESTEFFORT, |_| MIN_SHARES)?;
    set_tier(BURSTABLE, burstable_shares)
}

fn cg_err(tier: &'static str) -> impl Fn(crate::runtime::cgroups::CgroupError) -> QosTierError {
    move |source| QosTierError::Cgroup { tier, source }
}

fn set_tier(tier: &'static str, shares: impl Fn(&[u64]) -> u64) -> Result<(), QosTierError> {
    let cg = crate::runtime::cgroups::open(tier).map_err(cg_err(tier))?;
    let Some(dir) = cg.controller_path("cpu").filter(|d| d.is_dir()) else {
        return Ok(());
    };
    let lock = std::fs::File::open(&dir).map_err(|source| QosTierError::Lock { tier, source })?;
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let source = std::io::Error::last_os_error();
        return Err(QosTierError::Lock { tier, source });
    }
    let value = shares(&pod_shares(&dir));
    let cpu = oci_spec::runtime::LinuxCpuBuilder::default()
        .shares(value)
        .build()
        .unwrap_or_default();
    let mut res = oci_spec::runtime::LinuxResources::default();
    res.set_cpu(Some(cpu));
    cg.set(&res).map_err(cg_err(tier))
}

/// The cpu.shares of the pod cgroups (`pod<uid>`) under a tier's cpu directory.
fn pod_shares(dir: &Path) -> Vec<u64> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pod"))
        .filter_map(|e| {
            let p = e.path();
            if let Ok(s) = std::fs::read_to_string(p.join("cpu.shares")) {
                return s.trim().parse().ok();
            }
            let w = std::fs::read_to_string(p.join("cpu.weight")).ok()?;
            w.trim().parse().ok().map(weight_to_shares)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_back_as_the_request_they_came_from() {
        for m in [3, 10, 100, 250, 333, 1000, 1500, 64_000] {
            assert_eq!(shares_to_milli(milli_cpu_to_shares(m)), m, "{m}m");
        }
        assert_eq!(shares_to_milli(2), 0);
    }

    #[test]
    fn burstable_is_the_shares_of_the_summed_requests() {
        // 100m + 250m + a pod requesting no cpu: MilliCPUToShares(350) = 358.
        let pods = [milli_cpu_to_shares(100), milli_cpu_to_shares(250), 2];
        assert_eq!(burstable_shares(&pods), 358);
        assert_eq!(burstable_shares(&[]), 2, "kubelet's minimum");
    }

    #[test]
    fn weights_map_back_near_their_shares() {
        use crate::runtime::cgroups::cpu_shares_to_weight;
        for s in [2u64, 102, 1024, 4096, 262_144] {
            let back = weight_to_shares(cpu_shares_to_weight(s));
            assert_eq!(cpu_shares_to_weight(back), cpu_shares_to_weight(s), "{s}");
        }
    }
}
