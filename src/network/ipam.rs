//! Pod address management: one file per leased address under `<data-dir>/ipam/<network>/`,
//! named by the address and holding the owner's pod dir; leases are taken under a lock
//! with O_EXCL, so no two pods ever share an address, even across processes.
use super::NetworkError;
use crate::util::FileLock;
use std::io::Write;
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

/// The lease store of one network.
pub struct Ipam {
    dir: PathBuf,
    subnet: Subnet,
}

impl Ipam {
    pub fn new(dir: PathBuf, subnet: Subnet) -> Ipam {
        Ipam { dir, subnet }
    }

    /// The directory holding the leases.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, path: &Path, e: std::io::Error) -> NetworkError {
        NetworkError::Ipam {
            path: path.to_path_buf(),
            source: e,
        }
    }

    /// Takes the store's lock (also held while the node bridge is created).
    pub fn lock(&self) -> Result<FileLock, NetworkError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.err(&self.dir, e))?;
        let p = self.dir.join("lock");
        FileLock::exclusive(&p).map_err(|e| self.err(&p, e))
    }

    /// Leases a free address to `owner` (a pod dir). Continues after the last address
    /// handed out, as host-local does, so a released address is not reused at once; when
    /// the range is full, leases whose owner dir is gone (a crashed supervisor) are reclaimed.
    pub fn allocate(&self, owner: &Path) -> Result<Ipv4Addr, NetworkError> {
        let _lock = self.lock()?;
        let (first, last) = self.subnet.pod_range();
        let last_file = self.dir.join("last_reserved");
        let start = std::fs::read_to_string(&last_file)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|v| (first..=last).contains(v))
            .map(|v| if v == last { first } else { v + 1 })
            .unwrap_or(first);
        for pass in 0..2 {
            let mut cand = start;
            loop {
                let ip = Ipv4Addr::from(cand);
                if self.try_lease(ip, owner)? {
                    // Rewritten in place, never truncated: ext4 flushes a file that is
                    // truncated and rewritten on close (auto_da_alloc), costing milliseconds.
                    if let Ok(f) = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&last_file)
                    {
                        use std::os::unix::fs::FileExt;
                        let _ = f.write_all_at(format!("{:<15}\n", ip).as_bytes(), 0);
                    }
                    return Ok(ip);
                }
                cand = if cand == last { first } else { cand + 1 };
                if cand == start {
                    break;
                }
            }
            if pass == 0 && self.reclaim_stale()? == 0 {
                break;
            }
        }
        Err(NetworkError::IpamExhausted {
            subnet: self.subnet.to_string(),
        })
    }

    fn try_lease(&self, ip: Ipv4Addr, owner: &Path) -> Result<bool, NetworkError> {
        let p = self.dir.join(ip.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(mut f) => {
                if let Err(e) = f.write_all(owner.as_os_str().as_encoded_bytes()) {
                    let _ = std::fs::remove_file(&p);
                    return Err(self.err(&p, e));
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.err(&p, e)),
        }
    }

    /// The leases as (address, owner).
    pub fn leases(&self) -> Vec<(Ipv4Addr, PathBuf)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                let owner = std::fs::read(e.path()).ok()?;
                Some((
                    ip,
                    PathBuf::from(String::from_utf8_lossy(&owner).into_owned()),
                ))
            })
            .collect()
    }

    /// Drops leases whose owner pod dir no longer exists; returns how many.
    pub fn reclaim_stale(&self) -> Result<usize, NetworkError> {
        let mut n = 0;
        for (ip, owner) in self.leases() {
            if !owner.as_os_str().is_empty() && !owner.exists() {
                let p = self.dir.join(ip.to_string());
                if std::fs::remove_file(&p).is_ok() {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Releases `ip` if `owner` still holds it.
    pub fn release(&self, ip: Ipv4Addr, owner: &Path) -> Result<(), NetworkError> {
        let _lock = self.lock()?;
        let p = self.dir.join(ip.to_string());
        match std::fs::read(&p) {
            Ok(o) if o == owner.as_os_str().as_encoded_bytes() => {
                std::fs::remove_file(&p).map_err(|e| self.err(&p, e))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(&p, e)),
        }
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
