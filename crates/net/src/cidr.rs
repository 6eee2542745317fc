//! IPv4 networks in CIDR notation.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: a base address (host bits zero) and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

/// Why a string is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IPv4 address or CIDR {0:?}")]
pub struct CidrError(pub String);

impl Cidr {
    /// `addr/prefix`; host bits of `addr` are cleared. `None` when `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Self {
            base: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network mask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    /// The first address.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// The last address.
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base | !mask(self.prefix))
    }

    /// Number of addresses.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `n`-th address, if inside.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.base + n as u32))
    }

    /// True when `addr` is inside.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.base
    }

    /// True when the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.first()) || other.contains(self.first())
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `a.b.c.d` (a /32) or `a.b.c.d/n` (host bits are cleared, as Go's `ParseCIDR` does).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (a, p.parse::<u8>().map_err(|_| bad())?)
            }
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        Cidr::new(addr, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.first(), self.prefix)
    }
}

/// `nets` without duplicates or networks inside others, in address order: the form interval
/// sets accept (they refuse overlapping elements).
pub fn normalise(nets: &[Cidr]) -> Vec<Cidr> {
    let mut sorted = nets.to_vec();
    sorted.sort_by_key(|n| (n.base, n.prefix));
    let mut out: Vec<Cidr> = Vec::new();
    for n in sorted {
        if out.last().is_some_and(|l| l.overlaps(&n)) {
            continue; // sorted by base then prefix: the earlier one contains this one
        }
        out.push(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let n: Cidr = "10.213.0.0/16".parse().unwrap();
        assert_eq!(n.last(), Ipv4Addr::new(10, 213, 255, 255));
        assert_eq!("1.2.3.4".parse::<Cidr>().unwrap().prefix(), 32);
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().size(), 1 << 32);
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in ["10.0.0.0/33", "example.com", "1.2.3/24", "1.2.3.4/", "::1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn normalise_drops_contained() {
        let v: Vec<Cidr> = [
            "198.51.100.7",
            "198.51.100.0/24",
            "10.0.0.0/8",
            "10.1.0.0/16",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let n = normalise(&v);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].to_string(), "10.0.0.0/8");
        assert_eq!(n[1].to_string(), "198.51.100.0/24");
    }
}
