//! Manifests: fetching one with its exact bytes and digest, telling an index (a list of
//! per-platform manifests) from an image manifest, and picking a platform.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RegistryError;
use super::client::Client;
use super::reference::validate_digest;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (schema 2).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A manifest is small; anything bigger is refused rather than buffered.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// A content descriptor as manifests and indexes hold them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

#[derive(Deserialize)]
struct IndexBody {
    manifests: Vec<Descriptor>,
}

/// An image manifest: the config blob and the layers, bottom first.
#[derive(Debug, Deserialize)]
pub(crate) struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// What a manifest request returned: its bytes as served (the digest covers exactly them).
pub(crate) struct Fetched {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// Its parsed contents.
pub(crate) enum Parsed {
    Index(Vec<Descriptor>),
    Image(ImageManifest),
}

/// `GET /v2/<repo>/manifests/<reference>` accepting the four schema-2 types.
///
/// The digest of the bytes is checked against `expected` (a pull by digest) and against the
/// registry's `Docker-Content-Digest` header when it sends one.
pub(crate) async fn fetch(
    client: &Client,
    reference: &str,
    display: &str,
    expected: Option<&str>,
) -> Result<Fetched, RegistryError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static(
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
        ),
    );
    let path = format!("/v2/{}/manifests/{reference}", client.repository);
    let response = client.get(&path, headers, display).await?;
    match response.status() {
        s if s.is_success() => {}
        StatusCode::NOT_FOUND => {
            return Err(RegistryError::NotFound {
                reference: display.to_owned(),
            });
        }
        s => return Err(client.status_error(s, display)),
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(CONTENT_TYPE.as_str())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let announced = header("docker-content-digest");
    let mut bytes = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| client.transfer_error(display, e))?;
        if bytes.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(invalid(display, "it is larger than 4 MiB"));
        }
        bytes.extend_from_slice(&chunk);
    }
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    for want in [expected.map(str::to_owned), announced]
        .into_iter()
        .flatten()
    {
        // An announced digest of another algorithm cannot be checked here; the bytes' own
        // sha256 is what the layout records.
        if want.starts_with("sha256:") && want != digest {
            return Err(RegistryError::ManifestDigestMismatch {
                reference: display.to_owned(),
                registry: client.registry.clone(),
                expected: want,
                actual: digest,
            });
        }
    }
    let media_type = media_type_of(&content_type, &bytes);
    Ok(Fetched {
        media_type,
        digest,
        bytes,
    })
}

/// The manifest's type: the `Content-Type` when it names one, else the body's `mediaType`,
/// else guessed from its shape (OCI allows both fields to be absent).
fn media_type_of(content_type: &str, bytes: &[u8]) -> String {
    if !content_type.is_empty() && content_type != "application/json" {
        return content_type.to_owned();
    }
    #[derive(Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(Shape {
            media_type: Some(t),
            ..
        }) => t,
        Ok(Shape {
            manifests: Some(_), ..
        }) => OCI_INDEX.to_owned(),
        Ok(Shape {
            layers: Some(_), ..
        }) => OCI_MANIFEST.to_owned(),
        _ => String::new(),
    }
}

/// Parses a fetched manifest of one of the four supported types and checks every digest it
/// names (they become file names).
pub(crate) fn parse(fetched: &Fetched, display: &str) -> Result<Parsed, RegistryError> {
    let check = |d: &Descriptor| {
        validate_digest(&d.digest).map_err(|reason| {
            invalid(
                display,
                &format!("it names digest {:?}: {reason}", d.digest),
            )
        })
    };
    match fetched.media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let body: IndexBody = serde_json::from_slice(&fetched.bytes)
                .map_err(|e| invalid(display, &e.to_string()))?;
            body.manifests.iter().try_for_each(check)?;
            Ok(Parsed::Index(body.manifests))
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let body: ImageManifest = serde_json::from_slice(&fetched.bytes)
                .map_err(|e| invalid(display, &e.to_string()))?;
            check(&body.config)?;
            body.layers.iter().try_for_each(check)?;
            // OCI allows an empty config media type in old manifests; treat it as an image.
            let config_type = body.config.media_type.as_str();
            if !matches!(config_type, OCI_CONFIG | DOCKER_CONFIG | "") {
                return Err(RegistryError::NotAnImage {
                    reference: display.to_owned(),
                    config_media_type: config_type.to_owned(),
                });
            }
            Ok(Parsed::Image(body))
        }
        other => Err(RegistryError::UnsupportedManifest {
            reference: display.to_owned(),
            media_type: other.to_owned(),
        }),
    }
}

/// The index entry for `os`/`arch`: an exact match without a variant preferred, then with
/// one (`arm64/v8`). Entries of platform `unknown` (build attestations) never match.
pub(crate) fn select_platform<'a>(
    manifests: &'a [Descriptor],
    (os, arch): (&str, &str),
    display: &str,
) -> Result<&'a Descriptor, RegistryError> {
    let matching = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == arch)
    };
    manifests
        .iter()
        .filter(matching)
        .min_by_key(|d| {
            d.platform
                .as_ref()
                .and_then(|p| p.variant.as_ref())
                .is_some()
        })
        .ok_or_else(|| {
            let available: Vec<String> = manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            RegistryError::NoPlatform {
                reference: display.to_owned(),
                wanted: format!("{os}/{arch}"),
                available: if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                },
            }
        })
}

fn invalid(display: &str, reason: &str) -> RegistryError {
    RegistryError::InvalidManifest {
        reference: display.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 1,
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_owned),
            }),
            annotations: None,
        }
    }

    #[test]
    fn platform_selection_prefers_no_variant_and_skips_attestations() {
        let list = vec![
            entry("unknown", "unknown", None, 0),
            entry("linux", "arm64", Some("v8"), 1),
            entry("linux", "amd64", None, 2),
            entry("linux", "arm", Some("v7"), 3),
        ];
        let pick = |arch| select_platform(&list, ("linux", arch), "x").map(|d| d.digest.clone());
        assert_eq!(pick("amd64").ok(), Some(list[2].digest.clone()));
        assert_eq!(pick("arm64").ok(), Some(list[1].digest.clone()));
        let err = pick("s390x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "x has no image for linux/s390x (it has: linux/arm64/v8, linux/amd64, linux/arm/v7)"
        );
    }

    #[test]
    fn media_type_falls_back_to_the_body() {
        assert_eq!(media_type_of(DOCKER_MANIFEST, b"{}"), DOCKER_MANIFEST);
        assert_eq!(
            media_type_of("application/json", br#"{"manifests":[]}"#),
            OCI_INDEX
        );
        assert_eq!(
            media_type_of(
                "",
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#
            ),
            "application/vnd.docker.distribution.manifest.v1+prettyjws"
        );
    }

    #[test]
    fn schema1_and_artifacts_are_refused() {
        let schema1 = Fetched {
            media_type: "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
            digest: String::new(),
            bytes: br#"{"schemaVersion":1,"fsLayers":[]}"#.to_vec(),
        };
        let err = parse(&schema1, "r").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "the manifest of r has unsupported type \"application/vnd.docker.distribution.manifest.v1+prettyjws\""
            )
        );
        let zero = format!("sha256:{}", "0".repeat(64));
        let helm = Fetched {
            media_type: OCI_MANIFEST.into(),
            digest: String::new(),
            bytes: format!(
                r#"{{"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{zero}","size":1}},"layers":[]}}"#
            )
            .into_bytes(),
        };
        assert!(matches!(
            parse(&helm, "r"),
            Err(RegistryError::NotAnImage { .. })
        ));
    }

    #[test]
    fn digests_that_are_not_file_names_are_refused() {
        let fetched = Fetched {
            media_type: OCI_MANIFEST.into(),
            digest: String::new(),
            bytes: br#"{"config":{"digest":"sha256:../../etc/passwd","size":1},"layers":[]}"#
                .to_vec(),
        };
        assert!(matches!(
            parse(&fetched, "x"),
            Err(RegistryError::InvalidManifest { .. })
        ));
    }
}
