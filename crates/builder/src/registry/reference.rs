//! Image references with Docker's normalisation: `debian` is
//! `registry-1.docker.io/library/debian:latest`, `host:port/x/y:tag@sha256:...` names a
//! registry of its own. The grammar is distribution's `reference` package, restricted to
//! sha256 digests (the only algorithm registries serve).

use std::fmt;

use super::RegistryError;

/// The registry Docker Hub's short names resolve to.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A parsed image reference: where the image lives and which one it is.
///
/// `tag` is `Some("latest")` when the text named neither a tag nor a digest (Docker's rule);
/// a reference with only a digest has no tag. When both are given, the digest decides what is
/// pulled and the tag only names it in the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Host and optional port, e.g. `127.0.0.1:5000`, `registry-1.docker.io`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/debian`.
    pub repository: String,
    /// Tag, e.g. `bookworm`.
    pub tag: Option<String>,
    /// Manifest digest, e.g. `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `s` the way `docker pull` does.
    ///
    /// The first path component is a registry when it contains a `.` or a `:`, or is
    /// `localhost`; otherwise the image is on Docker Hub, where a name without `/` gets
    /// `library/`. `docker.io` and `index.docker.io` name Docker Hub too.
    ///
    /// # Errors
    /// [`RegistryError::InvalidReference`] when the text breaks the grammar (upper case in the
    /// repository, an empty component, a bad tag, a digest that is not `sha256:` + 64 hex).
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let invalid = |reason: &'static str| RegistryError::InvalidReference {
            reference: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        let (rest, digest) = match s.rsplit_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest).map_err(invalid)?;
                (rest, Some(digest.to_owned()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' after the last '/'; a ':' before that is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                validate_tag(tag).map_err(invalid)?;
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                validate_registry(first).map_err(invalid)?;
                let registry = match first {
                    "docker.io" | "index.docker.io" => DOCKER_HUB.to_owned(),
                    other => other.to_owned(),
                };
                let repository = if registry == DOCKER_HUB && !path.contains('/') {
                    format!("library/{path}")
                } else {
                    path.to_owned()
                };
                (registry, repository)
            }
            Some(_) => (DOCKER_HUB.to_owned(), name.to_owned()),
            None => (DOCKER_HUB.to_owned(), format!("library/{name}")),
        };
        validate_repository(&repository).map_err(invalid)?;
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What the registry's manifest endpoint is asked for: the digest when there is one
    /// (it names the exact image), else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// Whether the registry is on this machine (`localhost`, `127.0.0.0/8`, `[::1]`), where
    /// Docker talks plain HTTP unless told otherwise.
    pub fn is_loopback(&self) -> bool {
        let host = host_of(&self.registry);
        host == "localhost"
            || host == "::1"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Reference {
    /// The canonical form, which parses back to the same value:
    /// `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The host part of `host[:port]` or `[v6]:port`, brackets removed.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// `sha256:` followed by 64 lower-case hex digits; the only form used as a file name.
pub(crate) fn validate_digest(digest: &str) -> Result<(), &'static str> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err("a digest is algorithm:hex");
    };
    if algorithm != "sha256" {
        return Err("only sha256 digests are supported");
    }
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("a sha256 digest has 64 lower-case hex digits");
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !first_ok
        || tag.len() > 128
        || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(
            "a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        );
    }
    Ok(())
}

fn validate_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("an IPv6 registry address is [address]:port");
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the registry's IPv6 address does not parse");
        }
        (None, after.strip_prefix(':'))
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err("the registry host is not a host name or address");
        }
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err("the registry port is not a number up to 65535");
    }
    Ok(())
}

/// Path components of lower-case letters and digits, joined by `.`, `_`, `__` or dashes.
fn validate_repository(repository: &str) -> Result<(), &'static str> {
    if repository.len() > 255 {
        return Err("a repository name is at most 255 characters");
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum)
        {
            return Err(
                "each repository component starts and ends with a lower-case letter or digit",
            );
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(&bytes[i]) {
                i += 1;
                continue;
            }
            // A separator: '.', '_', '__' or a run of '-', followed by an alphanumeric.
            let start = i;
            while i < bytes.len() && !alnum(&bytes[i]) {
                i += 1;
            }
            match &component[start..i] {
                "." | "_" | "__" => {}
                sep if sep.bytes().all(|b| b == b'-') => {}
                _ => {
                    return Err(
                        "a repository uses only lower-case letters, digits, '.', '_' and '-'",
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let r = parse("debian");
        assert_eq!(r.registry, DOCKER_HUB);
        assert_eq!(r.repository, "library/debian");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "registry-1.docker.io/library/debian:latest");
        assert_eq!(parse("debian:bookworm").tag.as_deref(), Some("bookworm"));
        assert_eq!(parse("bitnami/redis").repository, "bitnami/redis");
        assert_eq!(parse("docker.io/debian").repository, "library/debian");
        assert_eq!(parse("index.docker.io/debian").registry, DOCKER_HUB);
        assert_eq!(parse("docker.io/bitnami/redis").repository, "bitnami/redis");
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        let r = parse(&format!("127.0.0.1:5000/x/y:v1.2@{D}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "x/y");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(parse(&r.to_string()), r);
        let by_digest = parse(&format!("localhost/x@{D}"));
        assert_eq!(by_digest.registry, "localhost");
        assert_eq!(by_digest.tag, None);
        let port_no_tag = parse("ghcr.io:443/o/r");
        assert_eq!(port_no_tag.registry, "ghcr.io:443");
        assert_eq!(port_no_tag.tag.as_deref(), Some("latest"));
        assert_eq!(parse("[::1]:5000/a").registry, "[::1]:5000");
    }

    #[test]
    fn loopback_registries_are_recognised() {
        assert!(parse("127.0.0.1:5000/a").is_loopback());
        assert!(parse("127.3.0.1/a").is_loopback());
        assert!(parse("localhost:5000/a").is_loopback());
        assert!(parse("[::1]:5000/a").is_loopback());
        assert!(!parse("debian").is_loopback());
        assert!(!parse("10.0.0.1:5000/a").is_loopback());
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Debian",
            "debian:",
            "debian:-x",
            "debian@sha256:abc",
            "debian@md5:0123",
            "a//b",
            "a/b/",
            "127.0.0.1:99999/x",
            "host.example/UPPER",
            "a--b_-c",
            &format!("debian@{}", D.to_uppercase().replace("SHA256", "sha256")),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Reference::parse("a--b").is_ok());
        assert!(Reference::parse("a__b.c-d").is_ok());
    }
}
