//! HTTPS for `bulkhead serve --domain D`: the operator's certificate, or a local CA's, and
//! the `export` lines for connecting through the domain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bulkhead_server::tls::{CertifiedKey, LocalCa};
use bulkhead_store::DataDir;
use tokio_rustls::rustls::ServerConfig;

use super::serve::Args;

/// The domain's default, which serves plain HTTP only.
const PLAIN_DOMAIN: &str = "localhost";

/// TLS as configured for this start.
pub struct Tls {
    /// What the listener serves.
    pub config: Arc<ServerConfig>,
    /// The bundle clients must trust and the CA alone, when the certificate comes from the
    /// local CA.
    local_ca: Option<(PathBuf, PathBuf)>,
}

/// TLS when the domain is not `localhost` or a certificate is given; `None` otherwise.
pub fn setup(args: &Args, layout: &DataDir) -> anyhow::Result<Option<Tls>> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let config = CertifiedKey::from_files(cert, key)?.server_config(cert)?;
        return Ok(Some(Tls {
            config,
            local_ca: None,
        }));
    }
    if args.domain == PLAIN_DOMAIN {
        return Ok(None);
    }
    anyhow::ensure!(
        args.domain.split('.').filter(|l| !l.is_empty()).count() >= 2,
        "--domain {:?} needs at least two labels (e.g. sandboxes.example): TLS clients refuse a wildcard directly under a top-level domain",
        args.domain
    );
    let dir = layout.root().join("tls");
    let ca = LocalCa::ensure(&dir, &args.domain)?;
    let config = ca.leaf.server_config(&ca.ca_cert)?;
    Ok(Some(Tls {
        config,
        local_ca: Some((ca.bundle, ca.ca_cert)),
    }))
}

impl Tls {
    /// Prints the second way to connect: E2B_DOMAIN (and the local CA to trust).
    pub fn print_exports(&self, domain: &str, addr: SocketAddr) {
        println!(
            "# or, for every SDK release: https://api.{domain} and https://<port>-<sandbox id>.{domain} (DNS for both to this host)"
        );
        if addr.port() != 443 {
            println!(
                "# the SDKs use port 443 with E2B_DOMAIN: listen on :443 or forward 443 to {}",
                addr.port()
            );
        }
        println!("export E2B_DOMAIN={domain}");
        if let Some((bundle, ca)) = &self.local_ca {
            // Python (httpx, ssl) reads SSL_CERT_FILE; Node adds NODE_EXTRA_CA_CERTS.
            println!("export SSL_CERT_FILE={}", bundle.display());
            println!("export NODE_EXTRA_CA_CERTS={}", ca.display());
        }
    }
}
