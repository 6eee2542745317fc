//! A sandbox's egress policy, as E2B's create and update requests describe it.

use crate::cidr::{Cidr, normalise};

/// Egress rules of one sandbox, by destination address.
///
/// Decision order (E2B's): a destination in `allow_out` passes; else one in `deny_out` is
/// refused; else it passes. `internet: false` adds `0.0.0.0/0` to `deny_out`. The
/// always-denied ranges (server configuration) are checked before all of this and cannot be
/// opened by any policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `allow_internet_access`.
    pub internet: bool,
    /// Destinations allowed even when `deny_out` covers them.
    pub allow_out: Vec<Cidr>,
    /// Destinations refused.
    pub deny_out: Vec<Cidr>,
}

impl Default for Policy {
    /// Internet on, no rules.
    fn default() -> Self {
        Self {
            internet: true,
            allow_out: Vec::new(),
            deny_out: Vec::new(),
        }
    }
}

/// Why a policy request is refused; the message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Neither an IPv4 address, a CIDR nor a domain name.
    #[error("invalid {field} entry {value:?}: expected an IPv4 address, a CIDR or a domain name")]
    Invalid {
        /// `allowOut` or `denyOut`.
        field: &'static str,
        /// The entry as sent.
        value: String,
    },
    /// A domain where only addresses are accepted.
    #[error("invalid denyOut entry {0:?}: denyOut takes IP addresses and CIDRs only")]
    DomainInDeny(String),
    /// A domain in `allowOut` while `denyOut` does not cover everything (E2B refuses it too).
    #[error("allowOut entry {0:?} is a domain: domain rules require denyOut to contain 0.0.0.0/0")]
    DomainWithoutDenyAll(String),
    /// A domain rule, which this server does not enforce yet.
    #[error(
        "allowOut entry {0:?} is a domain: domain rules are not supported by this server; use IP addresses or CIDRs"
    )]
    DomainUnsupported(String),
}

fn looks_like_domain(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    s == "*"
        || (!name.is_empty()
            && name.len() <= 253
            && name.contains('.')
            && !name
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'/')
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

impl Policy {
    /// Parses E2B's fields. Refuses invalid entries, domains in `deny_out`, and (until domain
    /// rules are enforced) any domain in `allow_out`.
    pub fn parse(
        internet: bool,
        allow_out: &[String],
        deny_out: &[String],
    ) -> Result<Self, PolicyError> {
        let mut deny = Vec::new();
        for v in deny_out {
            match v.trim().parse::<Cidr>() {
                Ok(c) => deny.push(c),
                Err(_) if looks_like_domain(v.trim()) => {
                    return Err(PolicyError::DomainInDeny(v.clone()));
                }
                Err(_) => {
                    return Err(PolicyError::Invalid {
                        field: "denyOut",
                        value: v.clone(),
                    });
                }
            }
        }
        let mut allow = Vec::new();
        for v in allow_out {
            match v.trim().parse::<Cidr>() {
                Ok(c) => allow.push(c),
                Err(_) if looks_like_domain(v.trim()) => {
                    let denies_all = !internet || deny.iter().any(|c| c.prefix() == 0);
                    return Err(if denies_all {
                        PolicyError::DomainUnsupported(v.clone())
                    } else {
                        PolicyError::DomainWithoutDenyAll(v.clone())
                    });
                }
                Err(_) => {
                    return Err(PolicyError::Invalid {
                        field: "allowOut",
                        value: v.clone(),
                    });
                }
            }
        }
        Ok(Self {
            internet,
            allow_out: normalise(&allow),
            deny_out: normalise(&deny),
        })
    }

    /// The ranges refused for this sandbox, with `internet: false` as `0.0.0.0/0`.
    pub(crate) fn effective_deny(&self) -> Vec<Cidr> {
        if self.internet {
            self.deny_out.clone()
        } else {
            Cidr::new(std::net::Ipv4Addr::UNSPECIFIED, 0)
                .into_iter()
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn names_the_bad_value() {
        let e = Policy::parse(true, &[], &s(&["10.0.0.0/99"])).unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/99"), "{e}");
        let e = Policy::parse(true, &s(&["not a cidr"]), &[]).unwrap_err();
        assert!(e.to_string().contains("not a cidr"), "{e}");
        let e = Policy::parse(true, &[], &s(&["example.com"])).unwrap_err();
        assert_eq!(e, PolicyError::DomainInDeny("example.com".into()));
    }

    #[test]
    fn domains_follow_e2b_then_refuse() {
        let e = Policy::parse(true, &s(&["pypi.org"]), &[]).unwrap_err();
        assert_eq!(e, PolicyError::DomainWithoutDenyAll("pypi.org".into()));
        let e = Policy::parse(true, &s(&["*.pypi.org"]), &s(&["0.0.0.0/0"])).unwrap_err();
        assert_eq!(e, PolicyError::DomainUnsupported("*.pypi.org".into()));
    }

    #[test]
    fn internet_off_denies_all() {
        let p = Policy::parse(false, &s(&["198.51.100.0/24"]), &[]).unwrap();
        assert_eq!(p.effective_deny()[0].to_string(), "0.0.0.0/0");
        assert_eq!(p.allow_out.len(), 1);
    }
}
