//! Pod address management: one file per leased address under `<data-dir>/ipam/<network>/`,
//! named by the address and holding the owner's pod dir; leases are taken under a lock
//! with O_EXCL ([`crate::lease_dir`]), so no two pods ever share an address, even across
//! processes.
use super::NetworkError;
use crate::lease_dir::{LeaseDir, LeaseError};
use crate::util::FileLock;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// An IPv4 subnet in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// Parses `a.b.c.d/n` (host bits are cleared); prefixes 8 to 30 are accepted.
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR form (a.b.c.d/n)"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("prefix length {prefix} is outside 8..30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Subnet {
            base: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    /// The gateway (the bridge's address): the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.base)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.base) & m == u32::from(other.base) & m
    }

    /// The first and last address a pod may get (after the gateway, before broadcast).
    fn pod_range(&self) -> (u32, u32) {
        let b = u32::from(self.base);
        (b + 2, (b | !self.mask()) - 1)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// The lease store of one network: a [`LeaseDir`] whose slots are addresses.
pub struct Ipam {
    leases: LeaseDir,
    subnet: Subnet,
}

impl From<LeaseError> for NetworkError {
    fn from(e: LeaseError) -> NetworkError {
        NetworkError::Ipam {
            path: e.path,
            source: e.source,
        }
    }
}

impl Ipam {
    pub fn new(dir: PathBuf, subnet: Subnet) -> Ipam {
        // 15: the longest dotted quad.
        Ipam {
            leases: LeaseDir::new(dir, 15),
            subnet,
        }
    }

    /// The directory holding the leases.
    pub fn dir(&self) -> &Path {
        self.leases.dir()
    }

    /// Takes the store's lock (also held while the node bridge is created).
    pub fn lock(&self) -> Result<FileLock, NetworkError> {
        Ok(self.leases.lock()?)
    }

    /// Leases a free address to `owner` (a pod dir). Continues after the last address
    /// handed out, as host-local does, so a released address is not reused at once; when
    /// the range is full, leases whose owner dir is gone (a crashed supervisor) are reclaimed.
    pub fn allocate(&self, owner: &Path) -> Result<Ipv4Addr, NetworkError> {
        let (first, last) = self.subnet.pod_range();
        let start = self
            .leases
            .last_reserved()
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|v| (first..=last).contains(v))
            .map(|v| if v == last { first } else { v + 1 })
            .unwrap_or(first);
        // Every address once, from `start` round to the one before it.
        let candidates = || {
            (start..=last)
                .chain(first..start)
                .map(|a| Ipv4Addr::from(a).to_string())
        };
        match self.leases.allocate(owner, candidates)? {
            Some(slot) => slot.parse().map_err(|_| NetworkError::IpamExhausted {
                subnet: self.subnet.to_string(),
            }),
            None => Err(NetworkError::IpamExhausted {
                subnet: self.subnet.to_string(),
            }),
        }
    }

    /// The leases as (address, owner).
    pub fn leases(&self) -> Vec<(Ipv4Addr, PathBuf)> {
        self.leases
            .leases()
            .into_iter()
            .filter_map(|(slot, owner)| Some((slot.parse().ok()?, owner)))
            .collect()
    }

    /// Drops leases whose owner pod dir no longer exists; returns how many.
    pub fn reclaim_stale(&self) -> Result<usize, NetworkError> {
        Ok(self.leases.reclaim_stale())
    }

    /// Releases `ip` if `owner` still holds it.
    pub fn release(&self, ip: Ipv4Addr, owner: &Path) -> Result<(), NetworkError> {
        Ok(self.leases.release(&ip.to_string(), owner)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_parse_and_range() {
        let s = Subnet::parse("10.88.3.7/16").unwrap();
        assert_eq!(s.to_string(), "10.88.0.0/16");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(
            s.pod_range(),
            (
                u32::from(Ipv4Addr::new(10, 88, 0, 2)),
                u32::from(Ipv4Addr::new(10, 88, 255, 254))
            )
        );
        assert!(s.contains(Ipv4Addr::new(10, 88, 200, 1)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert!(s.overlaps(&Subnet::parse("10.0.0.0/8").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.89.0.0/16").unwrap()));
        assert!(Subnet::parse("10.0.0.0/31").is_err());
        assert!(Subnet::parse("10.0.0.0").is_err());
    }

    #[test]
    fn leases_are_unique_rotate_and_reclaim_stale_owners() {
        let dir = std::env::temp_dir().join(format!("podrun-ipam-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let owner = dir.join("owner");
        std::fs::create_dir_all(&owner).unwrap();
        let ipam = Ipam::new(dir.join("ipam"), Subnet::parse("10.1.2.0/29").unwrap());
        // /29: .2 to .6 are for pods.
        let got: Vec<Ipv4Addr> = (0..5).map(|_| ipam.allocate(&owner).unwrap()).collect();
        assert_eq!(
            got.iter().map(|i| i.octets()[3]).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6]
        );
        assert!(matches!(
            ipam.allocate(&owner),
            Err(NetworkError::IpamExhausted { .. })
        ));
        ipam.release(got[1], &owner).unwrap();
        ipam.release(got[2], Path::new("/not/the/owner")).unwrap();
        assert_eq!(ipam.allocate(&owner).unwrap(), got[1]);
        // A lease whose owner dir vanished is reclaimed only when the range is full.
        let gone = dir.join("gone");
        ipam.release(got[4], &owner).unwrap();
        assert_eq!(ipam.allocate(&gone).unwrap(), got[4]);
        assert_eq!(ipam.allocate(&owner).unwrap(), got[4]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
