//! HTTPS on the server's one port: a certificate for `api.<domain>` and `*.<domain>` (the
//! operator's, or one issued by a local CA kept in the data directory), and the rustls
//! configuration that serves it with ALPN `h2` and `http/1.1`, as the SDKs offer both.

pub mod ca;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use ca::LocalCa;
pub use stream::{Stream, accept};

/// Setting up TLS failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read or written.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{} holds no PEM {what}", path.display())]
    Pem {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The certificate and key do not form a valid server configuration.
    #[error("invalid certificate or key")]
    Config(#[source] rustls::Error),
    /// Generating a certificate failed.
    #[error("generating a certificate")]
    Generate(#[source] rcgen::Error),
}

/// A certificate chain and its key, in PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// Leaf first, then intermediates.
    pub chain_pem: String,
    /// The leaf's private key.
    key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("chain_pem", &self.chain_pem)
            .finish_non_exhaustive()
    }
}

impl CertifiedKey {
    /// Reads an operator's certificate chain and key (PEM files, e.g. a wildcard certificate).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path, op| {
            std::fs::read_to_string(path).map_err(|source| TlsError::Io {
                op,
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(Self {
            chain_pem: read(cert, "reading the TLS certificate")?,
            key_pem: read(key, "reading the TLS key")?,
        })
    }

    pub(crate) fn new(chain_pem: String, key_pem: String) -> Self {
        Self { chain_pem, key_pem }
    }

    /// The rustls configuration serving this certificate (aws-lc-rs, TLS 1.2 and 1.3, ALPN
    /// `h2` then `http/1.1`). `origin` names the files in errors.
    pub fn server_config(&self, origin: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
                .filter_map(Result::ok)
                .collect();
        if chain.is_empty() {
            return Err(TlsError::Pem {
                what: "certificate",
                path: origin.to_path_buf(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|_| TlsError::Pem {
                what: "private key",
                path: origin.to_path_buf(),
            })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
