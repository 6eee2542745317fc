//! A local certificate authority for `bulkhead serve --domain D` without an operator's
//! certificate: its key and certificate persist in `<data-dir>/tls/` (so clients trust it
//! once), and every start issues a fresh leaf for `api.D`, `*.D` and `D`. Clients trust it
//! through `bundle.pem`: the system's roots plus this CA, for `SSL_CERT_FILE`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{CertifiedKey, TlsError};

/// The system's root bundle, copied into ours when present (Debian's path).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The local CA's files and the leaf it issued for this start.
#[derive(Debug)]
pub struct LocalCa {
    /// The CA certificate alone.
    pub ca_cert: PathBuf,
    /// System roots plus the CA: what `SSL_CERT_FILE` should name.
    pub bundle: PathBuf,
    /// The leaf for the domain, signed by the CA.
    pub leaf: CertifiedKey,
}

/// The CA's fixed parameters. The issuer is rebuilt from these and the stored key, so the
/// stored certificate never has to be parsed.
fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name
        .push(DnType::CommonName, "Bulkhead local CA");
    p.distinguished_name
        .push(DnType::OrganizationName, "Bulkhead");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_path_buf();
    move |source| TlsError::Io { op, path, source }
}

/// Writes `data` to `path` atomically (a temporary file renamed over it) with `mode`.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    f.write_all(data).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into place", path))
}

impl LocalCa {
    /// Loads the CA from `dir` (creating it on first use) and issues a leaf for `domain`.
    pub fn ensure(dir: &Path, domain: &str) -> Result<Self, TlsError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let key_path = dir.join("ca.key");
        let ca_cert = dir.join("ca.pem");
        let ca_key = match std::fs::read_to_string(&key_path) {
            Ok(pem) if ca_cert.exists() => KeyPair::from_pem(&pem).map_err(TlsError::Generate)?,
            _ => {
                let key = KeyPair::generate().map_err(TlsError::Generate)?;
                let cert = ca_params()?.self_signed(&key).map_err(TlsError::Generate)?;
                write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
                write_file(&ca_cert, cert.pem().as_bytes(), 0o644)?;
                tracing::info!(path = %ca_cert.display(), "local certificate authority created");
                key
            }
        };
        let ca_pem = std::fs::read_to_string(&ca_cert).map_err(io("reading", &ca_cert))?;
        let issuer = Issuer::new(ca_params()?, ca_key);

        let mut leaf = CertificateParams::new(vec![
            format!("api.{domain}"),
            format!("*.{domain}"),
            domain.to_string(),
        ])
        .map_err(TlsError::Generate)?;
        leaf.distinguished_name.push(DnType::CommonName, domain);
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().map_err(TlsError::Generate)?;
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .map_err(TlsError::Generate)?;

        let mut bundle_text = std::fs::read_to_string(SYSTEM_ROOTS).unwrap_or_default();
        if !bundle_text.is_empty() && !bundle_text.ends_with('\n') {
            bundle_text.push('\n');
        }
        bundle_text.push_str(&ca_pem);
        let bundle = dir.join("bundle.pem");
        write_file(&bundle, bundle_text.as_bytes(), 0o644)?;
        Ok(Self {
            ca_cert,
            bundle,
            leaf: CertifiedKey::new(
                format!("{}{}", leaf_cert.pem(), ca_pem),
                leaf_key.serialize_pem(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_persists_and_issues_a_usable_leaf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = LocalCa::ensure(dir.path(), "bulkhead.test").expect("create");
        let ca = std::fs::read_to_string(&first.ca_cert).expect("ca");
        let second = LocalCa::ensure(dir.path(), "bulkhead.test").expect("reload");
        assert_eq!(std::fs::read_to_string(&second.ca_cert).expect("ca"), ca);
        assert!(
            std::fs::read_to_string(&second.bundle)
                .expect("bundle")
                .ends_with(&ca)
        );
        second
            .leaf
            .server_config(dir.path())
            .expect("rustls accepts the leaf");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
