//! Registry pulls against Debian's docker-registry on 127.0.0.1, with images these tests write
//! and push with skopeo. Each test runs its own registry (and proxy or token service) on free
//! ports. The contract they check is the `registry` module's doc.

#[path = "common/registry_fixtures/mod.rs"]
mod fixtures;

use std::path::Path;
use std::sync::Mutex;

use bulkhead_builder::registry::{
    self, Auth, DOCKER_MANIFEST, OCI_MANIFEST, Progress, PullOptions, Pulled, Reference,
    RegistryError,
};
use bulkhead_builder::store::ImageStore;
use fixtures::image::{self, Layout};
use fixtures::proxy::Proxy;
use fixtures::server::{self, Registry, RegistryAuth, read, skopeo_digest, skopeo_push};
use fixtures::token::{self, TokenService};

const USER: &str = "builder";
const PASSWORD: &str = "s3cret-pass";

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn amd64(auth: Auth) -> PullOptions {
    PullOptions {
        auth,
        insecure: false,
        platform: ("linux".to_owned(), "amd64".to_owned()),
        ca_certificates: Vec::new(),
    }
}

fn basic(password: &str) -> Auth {
    Auth::Basic {
        username: USER.to_owned(),
        password: password.to_owned(),
    }
}

/// Pulls and returns the result with every progress event.
async fn pull(
    r: &Reference,
    opts: &PullOptions,
    cache: &Path,
) -> (Result<Pulled, RegistryError>, Vec<Progress>) {
    let events = Mutex::new(Vec::new());
    let record = |p: Progress| {
        if let Ok(mut e) = events.lock() {
            e.push(p);
        }
    };
    let result = registry::pull(r, opts, cache, &record).await;
    (result, events.into_inner().unwrap_or_default())
}

async fn pull_ok(r: &Reference, opts: &PullOptions, cache: &Path) -> (Pulled, Vec<Progress>) {
    match pull(r, opts, cache).await {
        (Ok(pulled), events) => (pulled, events),
        (Err(e), _) => panic!("pull {r} failed: {e} ({e:?})"),
    }
}

fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The layout is a valid OCI layout naming `manifest` (with `tag` as its ref name), and holds
/// the image's blobs byte for byte.
fn check_layout(pulled: &Pulled, image: &image::Image, tag: Option<&str>) {
    let dir = &pulled.layout;
    let oci_layout: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("oci-layout"))).expect("oci-layout json");
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("index.json"))).expect("index json");
    let entries = index["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["digest"], pulled.manifest_digest);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"].as_str(),
        tag
    );
    let manifest = read(&blob_path(dir, &pulled.manifest_digest));
    assert_eq!(image::sha256(&manifest), pulled.manifest_digest);
    assert_eq!(entries[0]["size"], manifest.len());
    assert_eq!(
        read(&blob_path(dir, &image.config.digest)),
        image.config.bytes
    );
    assert_eq!(
        read(&blob_path(dir, &image.layer.digest)),
        image.layer.bytes
    );
}

fn push(layout: &Layout, registry: &Registry, repo: &str, extra: &[&str]) -> String {
    let dest = format!("{}/{repo}:{}", registry.addr, layout.tag);
    skopeo_push(&layout.skopeo_src(), &dest, extra);
    dest
}

#[tokio::test]
async fn anonymous_pull_gives_the_layout_skopeo_sees_and_caches_its_blobs() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::single(1, "v1");
    let dest = push(&layout, &registry, "test/anon", &[]);
    let cache = tempfile::tempdir().expect("tempdir");
    let r = reference(&dest);

    let (pulled, events) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let image = &layout.images[0];
    assert_eq!(pulled.manifest_digest, skopeo_digest(&dest, &[]));
    assert_eq!(pulled.manifest_digest, image.manifest.digest);
    assert_eq!(pulled.manifest_media_type, OCI_MANIFEST);
    assert_eq!(pulled.index_digest, None);
    check_layout(&pulled, image, Some("v1"));
    assert_eq!(
        events.first(),
        Some(&Progress::Resolved {
            digest: image.manifest.digest.clone(),
            layers: 1,
            total_bytes: (image.config.bytes.len() + image.layer.bytes.len()) as u64,
        })
    );
    for digest in [&image.config.digest, &image.layer.digest] {
        assert!(events.contains(&Progress::BlobDone {
            digest: digest.clone(),
            cached: false
        }));
    }
    assert!(events.contains(&Progress::Blob {
        digest: image.layer.digest.clone(),
        done: image.layer.bytes.len() as u64,
        total: image.layer.bytes.len() as u64,
    }));

    // Again: nothing is downloaded, the layout is the same.
    let (again, events) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    assert_eq!(again.layout, pulled.layout);
    for digest in [&image.config.digest, &image.layer.digest] {
        assert!(events.contains(&Progress::BlobDone {
            digest: digest.clone(),
            cached: true
        }));
    }
    check_layout(&again, image, Some("v1"));
}

#[tokio::test]
async fn docker_schema2_manifests_are_pulled_as_served() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::single(2, "v2s2");
    let dest = push(&layout, &registry, "test/docker", &["--format", "v2s2"]);
    let cache = tempfile::tempdir().expect("tempdir");
    let (pulled, _) = pull_ok(&reference(&dest), &amd64(Auth::Anonymous), cache.path()).await;
    assert_eq!(pulled.manifest_media_type, DOCKER_MANIFEST);
    assert_eq!(pulled.manifest_digest, skopeo_digest(&dest, &[]));
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&blob_path(&pulled.layout, &pulled.manifest_digest)))
            .expect("manifest json");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest");
    // The layer is kept as served (gzip): the same bytes the test pushed.
    assert_eq!(layer, layout.images[0].layer.digest);
    assert_eq!(
        read(&blob_path(&pulled.layout, layer)),
        layout.images[0].layer.bytes
    );
}

#[tokio::test]
async fn a_pull_by_digest_gets_exactly_that_manifest() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::single(3, "v1");
    push(&layout, &registry, "test/digest", &[]);
    let image = &layout.images[0];
    let cache = tempfile::tempdir().expect("tempdir");
    let r = reference(&format!(
        "{}/test/digest@{}",
        registry.addr, image.manifest.digest
    ));
    assert_eq!(r.tag, None);
    let (pulled, _) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    assert_eq!(pulled.manifest_digest, image.manifest.digest);
    check_layout(&pulled, image, None);

    // A tag beside the digest only names the image in the layout.
    let r = reference(&format!(
        "{}/test/digest:named@{}",
        registry.addr, image.manifest.digest
    ));
    let (pulled, _) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    check_layout(&pulled, image, Some("named"));

    let unknown = image::single(4, "x").images.remove(0).manifest.digest;
    let r = reference(&format!("{}/test/digest@{unknown}", registry.addr));
    let (result, _) = pull(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let err = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err, format!("no image {r}"));
}

/// Manifest bytes that do not hash to the digest asked for (by digest) or announced (by tag,
/// in `Docker-Content-Digest`) are refused.
#[tokio::test]
async fn a_manifest_that_does_not_match_its_digest_is_refused() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::single(17, "v1");
    push(&layout, &registry, "test/tampered", &[]);
    let digest = &layout.images[0].manifest.digest;
    let proxy = Proxy::start_tampering(&registry.addr).await;
    let cache = tempfile::tempdir().expect("tempdir");
    for name in [
        "test/tampered:v1".to_owned(),
        format!("test/tampered@{digest}"),
    ] {
        let r = reference(&format!("{}/{name}", proxy.addr));
        let (result, _) = pull(&r, &amd64(Auth::Anonymous), cache.path()).await;
        match result {
            Err(RegistryError::ManifestDigestMismatch {
                expected, actual, ..
            }) => {
                assert_eq!(&expected, digest);
                assert_ne!(&actual, digest);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(!cache.path().join("layouts").exists());
}

#[tokio::test]
async fn a_multi_platform_index_resolves_to_the_wanted_platform() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::multi_platform(5, "multi");
    let dest = push(&layout, &registry, "test/multi", &["--all"]);
    let (arm, amd) = (&layout.images[0], &layout.images[1]);
    let index = layout.index.as_ref().expect("index");
    let cache = tempfile::tempdir().expect("tempdir");
    let r = reference(&dest);

    let (pulled, _) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    assert_eq!(pulled.manifest_digest, amd.manifest.digest);
    assert_eq!(pulled.index_digest.as_deref(), Some(index.digest.as_str()));
    check_layout(&pulled, amd, Some("multi"));
    assert!(!blob_path(&pulled.layout, &arm.layer.digest).exists());

    let mut opts = amd64(Auth::Anonymous);
    opts.platform.1 = "arm64".to_owned();
    let (pulled, _) = pull_ok(&r, &opts, cache.path()).await;
    assert_eq!(pulled.manifest_digest, arm.manifest.digest);
    check_layout(&pulled, arm, Some("multi"));

    opts.platform.1 = "s390x".to_owned();
    let (result, _) = pull(&r, &opts, cache.path()).await;
    let err = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        err,
        format!("{r} has no image for linux/s390x (it has: linux/arm64/v8, linux/amd64)")
    );
}

#[tokio::test]
async fn basic_auth_pulls_with_the_password_and_refuses_a_wrong_one() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::Htpasswd {
        username: USER.to_owned(),
        password: PASSWORD.to_owned(),
    });
    let layout = image::single(6, "v1");
    let creds = format!("{USER}:{PASSWORD}");
    let dest = push(&layout, &registry, "test/basic", &["--dest-creds", &creds]);
    let cache = tempfile::tempdir().expect("tempdir");
    let r = reference(&dest);

    let (pulled, _) = pull_ok(&r, &amd64(basic(PASSWORD)), cache.path()).await;
    check_layout(&pulled, &layout.images[0], Some("v1"));

    let fresh = tempfile::tempdir().expect("tempdir");
    let (result, _) = pull(&r, &amd64(basic("wrong")), fresh.path()).await;
    let err = result.expect_err("a wrong password is refused");
    assert!(
        matches!(err, RegistryError::CredentialsRefused { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the registry {} refused the credentials for test/basic",
            registry.addr
        )
    );
    assert!(!format!("{err:?}").contains("wrong"));

    let (result, _) = pull(&r, &amd64(Auth::Anonymous), fresh.path()).await;
    let err = result.expect_err("no credentials is refused");
    assert!(
        matches!(err, RegistryError::CredentialsRequired { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn bearer_tokens_from_the_token_service_are_used_and_refusals_named() {
    if !server::tools_present() {
        return;
    }
    let tokens = TokenService::start(USER, PASSWORD).await;
    let registry = Registry::start(RegistryAuth::Token {
        realm: tokens.realm.clone(),
        service: token::SERVICE.to_owned(),
        issuer: token::ISSUER.to_owned(),
        cert_pem: tokens.cert_pem.clone(),
    });
    let layout = image::single(7, "v1");
    let creds = format!("{USER}:{PASSWORD}");
    let src = layout.skopeo_src();
    let dest = format!("{}/test/bearer:v1", registry.addr);
    // skopeo blocks; the token service runs on this runtime.
    tokio::task::spawn_blocking(move || skopeo_push(&src, &dest, &["--dest-creds", &creds]))
        .await
        .expect("push");
    let cache = tempfile::tempdir().expect("tempdir");
    let r = reference(&format!("{}/test/bearer:v1", registry.addr));

    let (pulled, _) = pull_ok(&r, &amd64(basic(PASSWORD)), cache.path()).await;
    check_layout(&pulled, &layout.images[0], Some("v1"));
    // The registry verified the token this client presented.
    let log = registry.log_text();
    assert!(
        log.lines().any(|l| l.contains("authorized request")
            && l.contains("http.request.method=GET")
            && l.contains("/v2/test/bearer/manifests/v1")
            && l.contains("useragent=bulkhead/")),
        "registry log:\n{log}"
    );

    let fresh = tempfile::tempdir().expect("tempdir");
    let (result, _) = pull(&r, &amd64(basic("wrong")), fresh.path()).await;
    let err = result.expect_err("a wrong password is refused");
    assert_eq!(
        err.to_string(),
        format!(
            "the registry {} refused the credentials for test/bearer",
            registry.addr
        )
    );
    // Anonymous: the service hands out a token that grants nothing, and the registry says no.
    let (result, _) = pull(&r, &amd64(Auth::Anonymous), fresh.path()).await;
    let err = result.expect_err("an anonymous pull is refused");
    assert!(
        matches!(err, RegistryError::CredentialsRequired { .. }),
        "{err:?}; registry log:\n{}",
        registry.log_text()
    );
}

/// Pushes one image and returns what a resume test needs.
fn resume_fixture(seed: u64) -> (Registry, Layout, tempfile::TempDir) {
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::single(seed, "v1");
    push(&layout, &registry, "test/resume", &[]);
    let cache = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(cache.path().join("blobs/sha256")).expect("mkdir");
    (registry, layout, cache)
}

#[tokio::test]
async fn a_partial_download_is_resumed_with_a_range_request() {
    if !server::tools_present() {
        return;
    }
    let (registry, layout, cache) = resume_fixture(8);
    let layer = &layout.images[0].layer;
    let half = layer.bytes.len() / 2;
    let partial = cache.path().join(format!(
        "blobs/sha256/{}.partial",
        layer.digest.trim_start_matches("sha256:")
    ));
    std::fs::write(&partial, &layer.bytes[..half]).expect("write partial");
    let proxy = Proxy::start(&registry.addr).await;
    let r = reference(&format!("{}/test/resume:v1", proxy.addr));

    let (pulled, events) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let requests = proxy.blob_requests(&layer.digest);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].range.as_deref(),
        Some(&*format!("bytes={half}-"))
    );
    assert!(!partial.exists());
    check_layout(&pulled, &layout.images[0], Some("v1"));
    assert!(events.contains(&Progress::BlobDone {
        digest: layer.digest.clone(),
        cached: false
    }));
}

#[tokio::test]
async fn a_transfer_that_breaks_is_resumed_within_the_pull() {
    if !server::tools_present() {
        return;
    }
    let (registry, layout, cache) = resume_fixture(13);
    let layer = &layout.images[0].layer;
    let proxy = Proxy::start_cutting(&registry.addr, &layer.digest).await;
    let r = reference(&format!("{}/test/resume:v1", proxy.addr));

    let (pulled, _) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let requests = proxy.blob_requests(&layer.digest);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range, None);
    // The second asks for the rest: from wherever the broken transfer got to.
    let from: usize = requests[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resuming range in {requests:?}"));
    assert!(from > 0 && from <= layer.bytes.len() / 2, "{requests:?}");
    check_layout(&pulled, &layout.images[0], Some("v1"));
}

#[tokio::test]
async fn concurrent_pulls_share_the_cache() {
    if !server::tools_present() {
        return;
    }
    let (registry, layout, cache) = resume_fixture(14);
    let r = reference(&format!("{}/test/resume:v1", registry.addr));
    let opts = amd64(Auth::Anonymous);
    let (a, b) = tokio::join!(pull(&r, &opts, cache.path()), pull(&r, &opts, cache.path()));
    for (result, _) in [a, b] {
        let pulled = result.unwrap_or_else(|e| panic!("pull failed: {e}"));
        check_layout(&pulled, &layout.images[0], Some("v1"));
    }
}

#[tokio::test]
async fn a_corrupt_partial_fails_the_digest_check_and_is_downloaded_again() {
    if !server::tools_present() {
        return;
    }
    let (registry, layout, cache) = resume_fixture(9);
    let layer = &layout.images[0].layer;
    let half = layer.bytes.len() / 2;
    let partial = cache.path().join(format!(
        "blobs/sha256/{}.partial",
        layer.digest.trim_start_matches("sha256:")
    ));
    let wrong: Vec<u8> = layer.bytes[..half].iter().map(|b| !b).collect();
    std::fs::write(&partial, wrong).expect("write partial");
    let proxy = Proxy::start(&registry.addr).await;
    let r = reference(&format!("{}/test/resume:v1", proxy.addr));

    let (pulled, _) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let requests = proxy.blob_requests(&layer.digest);
    let ranges: Vec<Option<&str>> = requests.iter().map(|r| r.range.as_deref()).collect();
    assert_eq!(ranges, [Some(&*format!("bytes={half}-")), None]);
    check_layout(&pulled, &layout.images[0], Some("v1"));
    assert!(!partial.exists());
}

#[tokio::test]
async fn a_blob_the_registry_serves_wrong_is_refused() {
    if !server::tools_present() {
        return;
    }
    let (registry, layout, cache) = resume_fixture(10);
    let layer = &layout.images[0].layer;
    // The registry serves its storage as is: flip the stored layer's bytes.
    let stored = registry.blob_data(&layer.digest);
    let flipped: Vec<u8> = read(&stored).iter().map(|b| !b).collect();
    std::fs::write(&stored, flipped).expect("corrupt the stored blob");
    let r = reference(&format!("{}/test/resume:v1", registry.addr));

    let (result, _) = pull(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let err = result.expect_err("a corrupt blob is refused");
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "blob {} from {} does not match its digest: refusing it",
            layer.digest, registry.addr
        )
    );
    let hex = layer.digest.trim_start_matches("sha256:");
    let blobs = cache.path().join("blobs/sha256");
    assert!(!blobs.join(hex).exists());
    assert!(!blobs.join(format!("{hex}.partial")).exists());
    assert!(!cache.path().join("layouts").exists());
}

#[tokio::test]
async fn a_cached_blob_that_fails_its_check_is_downloaded_again() {
    if !server::tools_present() {
        return;
    }
    let (registry, layout, cache) = resume_fixture(11);
    let layer = &layout.images[0].layer;
    let r = reference(&format!("{}/test/resume:v1", registry.addr));
    pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let cached = blob_path(cache.path(), &layer.digest);
    std::fs::write(&cached, b"not the layer").expect("corrupt the cache");

    let (pulled, events) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
    assert!(events.contains(&Progress::BlobDone {
        digest: layer.digest.clone(),
        cached: false
    }));
    check_layout(&pulled, &layout.images[0], Some("v1"));
}

#[tokio::test]
async fn a_registry_that_is_down_is_named_with_its_address() {
    let port = server::free_port();
    let r = reference(&format!("127.0.0.1:{port}/test/down:v1"));
    let cache = tempfile::tempdir().expect("tempdir");
    let (result, _) = pull(&r, &amd64(Auth::Anonymous), cache.path()).await;
    let err = result.expect_err("nothing listens there");
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("registry 127.0.0.1:{port} is unreachable at http://127.0.0.1:{port}")
    );
}

#[tokio::test]
async fn a_missing_image_is_named() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::single(12, "v1");
    push(&layout, &registry, "test/present", &[]);
    let cache = tempfile::tempdir().expect("tempdir");
    for missing in ["test/present:v2", "test/absent:v1"] {
        let r = reference(&format!("{}/{missing}", registry.addr));
        let (result, _) = pull(&r, &amd64(Auth::Anonymous), cache.path()).await;
        let err = result.expect_err("no such image");
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("no image {}/{missing}", registry.addr)
        );
    }
}

/// What a pull hands over is what the image store imports: the OCI and the Docker schema-2
/// variant both, their layers unpacked with the fixture's files. The store writes a manifest
/// of its own, so the registry's digest (the exact base) travels in the image's `source`.
#[tokio::test]
async fn a_pulled_layout_imports_into_the_image_store() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let layout = image::single(15, "v1");
    let oci = push(&layout, &registry, "test/oci", &[]);
    let docker = push(&layout, &registry, "test/docker", &["--format", "v2s2"]);
    let cache = tempfile::tempdir().expect("tempdir");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(store_dir.path()).expect("open the store");
    for (dest, name) in [(oci, "pulled-oci:v1"), (docker, "pulled-docker:v1")] {
        let r = reference(&dest);
        let (pulled, _) = pull_ok(&r, &amd64(Auth::Anonymous), cache.path()).await;
        let source = format!("{}@{}", pulled.reference, pulled.manifest_digest);
        let imported = store
            .import_as(&pulled.layout, name, source.clone())
            .unwrap_or_else(|e| panic!("import of {dest}: {e}"));
        assert_eq!(imported.source.as_deref(), Some(source.as_str()));
        assert_eq!(imported.layers.len(), 1);
        let dir = store.layer_dir(&imported.layers[0].diff_id);
        let hello = std::fs::read_to_string(dir.join("hello.txt")).expect("unpacked file");
        assert_eq!(hello, "hello from image 15 (amd64)\n");
    }
}

/// HTTPS, the transport of every registry off this machine: verified against the given CA,
/// and a registry whose certificate no trusted CA signed is refused as unreachable.
#[tokio::test]
async fn https_registries_are_verified_against_the_given_ca() {
    if !server::tools_present() {
        return;
    }
    let (ca, cert, key) = token::loopback_tls();
    let registry = Registry::start_tls(RegistryAuth::None, (&cert, &key));
    let layout = image::single(16, "v1");
    let dest = push(&layout, &registry, "test/tls", &[]);
    let r = reference(&dest);
    let cache = tempfile::tempdir().expect("tempdir");

    let mut opts = amd64(Auth::Anonymous);
    opts.ca_certificates = vec![ca];
    let (pulled, _) = pull_ok(&r, &opts, cache.path()).await;
    check_layout(&pulled, &layout.images[0], Some("v1"));

    let (other_ca, _, _) = token::loopback_tls();
    opts.ca_certificates = vec![other_ca];
    let (result, _) = pull(&r, &opts, cache.path()).await;
    let err = result.expect_err("an untrusted certificate is refused");
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("registry {0} is unreachable at https://{0}", registry.addr)
    );

    opts.ca_certificates = vec!["not a certificate".to_owned()];
    let (result, _) = pull(&r, &opts, cache.path()).await;
    assert!(
        matches!(result, Err(RegistryError::InvalidCertificate { .. })),
        "{result:?}"
    );
}
