//! What a pull can fail with, each variant one a user acts on differently. No variant carries a
//! credential or a token: they live only in request headers.

use std::path::PathBuf;

/// A failed pull (or a reference that does not parse).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The text is not an image reference.
    #[error("{reference:?} is not an image reference: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No connection could be made (refused, DNS, TLS handshake, timeout).
    #[error("registry {registry} is unreachable at {address}")]
    Unreachable {
        /// The registry as named in the reference.
        registry: String,
        /// The URL that was tried (scheme, host, port).
        address: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// A CA certificate given for the registry does not parse.
    #[error("a CA certificate given for registry {registry} does not parse: {reason}")]
    InvalidCertificate {
        /// The registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A connection broke, or a body could not be read, during a transfer.
    #[error("transfer of {what} from {registry} failed")]
    Transfer {
        /// The registry.
        registry: String,
        /// What was being fetched (a manifest reference or a blob digest).
        what: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The registry (or its token service) answered 401/403 to the given credentials.
    #[error("the registry {registry} refused the credentials for {repository}")]
    CredentialsRefused {
        /// The registry.
        registry: String,
        /// The repository asked for.
        repository: String,
    },
    /// The registry wants credentials and none were given.
    #[error("the registry {registry} needs credentials for {repository} and none were given")]
    CredentialsRequired {
        /// The registry.
        registry: String,
        /// The repository asked for.
        repository: String,
    },
    /// The token service named by the registry's challenge failed or answered nonsense.
    #[error("the token service {realm} of registry {registry} failed: {reason}")]
    TokenService {
        /// The challenge's realm URL.
        realm: String,
        /// The registry.
        registry: String,
        /// What went wrong (status, unparsable answer); never the token.
        reason: String,
    },
    /// The registry has no such repository, tag or digest.
    #[error("no image {reference}")]
    NotFound {
        /// The reference, canonical form.
        reference: String,
    },
    /// A blob named by the manifest is missing from the registry.
    #[error("registry {registry} has no blob {digest} named by {reference}")]
    BlobNotFound {
        /// The registry.
        registry: String,
        /// The blob.
        digest: String,
        /// The image whose manifest named it.
        reference: String,
    },
    /// A blob's bytes do not hash to its digest (or have the wrong size).
    #[error("blob {digest} from {registry} does not match its digest: refusing it")]
    DigestMismatch {
        /// The digest the manifest promised.
        digest: String,
        /// The registry that served it.
        registry: String,
    },
    /// A manifest's bytes do not hash to the digest asked for or announced.
    #[error(
        "the manifest of {reference} from {registry} hashes to {actual}, not {expected}: refusing it"
    )]
    ManifestDigestMismatch {
        /// The image.
        reference: String,
        /// The registry.
        registry: String,
        /// The digest asked for, or announced in `Docker-Content-Digest`.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The manifest is of a kind this client does not pull (Docker schema 1, an artifact).
    #[error("the manifest of {reference} has unsupported type {media_type:?}")]
    UnsupportedManifest {
        /// The image.
        reference: String,
        /// Its media type (empty when none was given).
        media_type: String,
    },
    /// The manifest is an artifact (a Helm chart, a signature), not a container image.
    #[error("{reference} is not a container image: its config is {config_media_type:?}")]
    NotAnImage {
        /// The image.
        reference: String,
        /// The media type of the manifest's config.
        config_media_type: String,
    },
    /// The manifest is not valid JSON of its type, or names an invalid digest.
    #[error("the manifest of {reference} is invalid: {reason}")]
    InvalidManifest {
        /// The image.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A multi-platform image has no manifest for the wanted platform.
    #[error("{reference} has no image for {wanted} (it has: {available})")]
    NoPlatform {
        /// The image.
        reference: String,
        /// `os/arch` asked for.
        wanted: String,
        /// The platforms the index lists, comma-separated.
        available: String,
    },
    /// The registry answered with a status this client has no meaning for.
    #[error("registry {registry} answered {status} to {what}")]
    Status {
        /// The registry.
        registry: String,
        /// The HTTP status code.
        status: u16,
        /// What was asked for.
        what: String,
    },
    /// The local cache directory could not be read or written.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done ("write", "rename into", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
