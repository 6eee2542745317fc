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
    /// Names allowed on ports 80 (HTTP `Host`) and 443 (TLS SNI), through the egress proxy.
    /// Only with `deny_out` covering everything (E2B's rule).
    pub allow_domains: Vec<DomainRule>,
}

/// A domain in `allowOut`: `name`, `*.name` (its subdomains at any depth, not the name
/// itself) or `*` (every name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    name: String,
    subdomains: bool,
}

impl DomainRule {
    fn parse(s: &str) -> Self {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        match s.strip_prefix("*.") {
            Some(rest) => Self {
                name: rest.to_string(),
                subdomains: true,
            },
            None if s == "*" => Self {
                name: String::new(),
                subdomains: true,
            },
            None => Self {
                name: s,
                subdomains: false,
            },
        }
    }

    /// True when `host` (lowercase, no trailing dot) is covered.
    pub fn matches(&self, host: &str) -> bool {
        if !self.subdomains {
            return host == self.name;
        }
        self.name.is_empty()
            || host
                .strip_suffix(self.name.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
    }
}

impl std::fmt::Display for DomainRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.subdomains, self.name.is_empty()) {
            (true, true) => f.write_str("*"),
            (true, false) => write!(f, "*.{}", self.name),
            _ => f.write_str(&self.name),
        }
    }
}

impl Default for Policy {
    /// Internet on, no rules.
    fn default() -> Self {
        Self {
            internet: true,
            allow_out: Vec::new(),
            deny_out: Vec::new(),
            allow_domains: Vec::new(),
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
    /// A domain rule on a server that runs no egress proxy.
    #[error(
        "allowOut entry {0:?} is a domain: domain rules are not enabled on this server; use IP addresses or CIDRs"
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
    /// Parses E2B's fields. Refuses invalid entries, domains in `deny_out`, and a domain in
    /// `allow_out` unless `deny_out` covers everything (or the internet is off).
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
        let mut domains = Vec::new();
        for v in allow_out {
            match v.trim().parse::<Cidr>() {
                Ok(c) => allow.push(c),
                Err(_) if looks_like_domain(v.trim()) => {
                    let denies_all = !internet || deny.iter().any(|c| c.prefix() == 0);
                    if !denies_all {
                        return Err(PolicyError::DomainWithoutDenyAll(v.clone()));
                    }
                    domains.push(DomainRule::parse(v));
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
            allow_domains: domains,
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
    fn domains_follow_e2b() {
        let e = Policy::parse(true, &s(&["pypi.org"]), &[]).unwrap_err();
        assert_eq!(e, PolicyError::DomainWithoutDenyAll("pypi.org".into()));
        let p = Policy::parse(true, &s(&["*.pypi.org", "pypi.org"]), &s(&["0.0.0.0/0"])).unwrap();
        let (sub, apex) = (&p.allow_domains[0], &p.allow_domains[1]);
        assert!(sub.matches("files.pypi.org") && !sub.matches("pypi.org"));
        assert!(apex.matches("pypi.org") && !apex.matches("evilpypi.org"));
        assert!(!sub.matches("evilpypi.org") && sub.to_string() == "*.pypi.org");
    }

    #[test]
    fn internet_off_denies_all() {
        let p = Policy::parse(false, &s(&["198.51.100.0/24"]), &[]).unwrap();
        assert_eq!(p.effective_deny()[0].to_string(), "0.0.0.0/0");
        assert_eq!(p.allow_out.len(), 1);
    }
}
