//! A token service for docker-registry's `auth: token`: it answers `GET /token?service=&scope=`
//! with a JWT (ES256, its self-signed certificate in `x5c`) that grants the requested actions
//! to the one user whose Basic credentials it knows, and nothing to anyone else, the way
//! Docker Hub treats a private repository. Also the certificates of a TLS registry.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::SigningKey;
use serde_json::json;

pub const SERVICE: &str = "bulkhead-test-registry";
pub const ISSUER: &str = "bulkhead-test-tokens";

/// A running token service.
pub struct TokenService {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate the registry trusts (PEM).
    pub cert_pem: String,
}

struct Signer {
    key: rcgen::KeyPair,
    cert_der: Vec<u8>,
    username: String,
    password: String,
}

impl TokenService {
    /// Starts a service that grants `username`/`password` everything it asks for.
    pub async fn start(username: &str, password: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["bulkhead-test-tokens".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let signer = Arc::new(Signer {
            cert_der: cert.der().to_vec(),
            key,
            username: username.to_owned(),
            password: password.to_owned(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token service");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token))
            .with_state(signer);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            realm: format!("http://{addr}/token"),
            cert_pem: cert.pem(),
        }
    }
}

async fn token(
    State(signer): State<Arc<Signer>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let granted = match given {
        Some(pair) if pair == format!("{}:{}", signer.username, signer.password) => true,
        Some(_) => return StatusCode::UNAUTHORIZED.into_response(),
        None => false,
    };
    let access: Vec<serde_json::Value> = if granted {
        query
            .iter()
            .filter(|(k, _)| k == "scope")
            .filter_map(|(_, scope)| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&signer.cert_der)]});
    let claims = json!({
        "iss": ISSUER,
        "sub": if granted { signer.username.as_str() } else { "" },
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now - 10,
        "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let Ok(der) = signer.key.sign(signing_input.as_bytes()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(raw) = der_to_raw(&der) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw));
    axum::Json(json!({"token": jwt, "access_token": jwt, "expires_in": 300})).into_response()
}

/// An ASN.1 ECDSA signature (`SEQUENCE { INTEGER r, INTEGER s }`) as JWS wants it: r ‖ s,
/// 32 bytes each.
fn der_to_raw(der: &[u8]) -> Option<Vec<u8>> {
    let mut rest = der.strip_prefix(&[0x30])?;
    let (_, body) = read_len(rest)?;
    rest = body;
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        rest = rest.strip_prefix(&[0x02])?;
        let (len, body) = read_len(rest)?;
        let int = body.get(..len)?;
        let int = &int[int.iter().take_while(|b| **b == 0).count()..];
        if int.len() > 32 {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        rest = &body[len..];
    }
    Some(out)
}

fn read_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }
    let n = usize::from(first & 0x7f);
    let len = rest
        .get(..n)?
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((len, rest.get(n..)?))
}

/// A certificate authority and a server certificate it signed for 127.0.0.1:
/// (CA PEM, server certificate PEM, server key PEM).
pub fn loopback_tls() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "bulkhead test CA");
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_pem = ca.self_signed(&ca_key).expect("ca cert").pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_pem = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert").pem();
    (ca_pem, leaf_pem, leaf_key.serialize_pem())
}
