//! The blob cache of registry pulls: resumed partial downloads, transfers broken mid-way,
//! corrupt partials, cached blobs and served bytes that fail their digest, manifests altered
//! in flight, and pulls sharing one cache.

#[path = "common/registry_fixtures/mod.rs"]
mod fixtures;

use bulkhead_builder::registry::{self, Auth, Progress, RegistryError};
use fixtures::image::{self, Layout};
use fixtures::proxy::Proxy;
use fixtures::pull::*;
use fixtures::server::{self, Registry, RegistryAuth, read};

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

/// `prune` frees what no kept layout links, leaves the kept image whole, and a later pull
/// fetches what it removed.
#[tokio::test]
async fn prune_frees_what_no_kept_layout_links() {
    if !server::tools_present() {
        return;
    }
    let registry = Registry::start(RegistryAuth::None);
    let (a, b) = (image::single(18, "a"), image::single(19, "b"));
    push(&a, &registry, "test/prune", &[]);
    push(&b, &registry, "test/prune", &[]);
    let cache = tempfile::tempdir().expect("tempdir");
    let opts = amd64(Auth::Anonymous);
    let ra = reference(&format!("{}/test/prune:a", registry.addr));
    let rb = reference(&format!("{}/test/prune:b", registry.addr));
    let (pulled_a, _) = pull_ok(&ra, &opts, cache.path()).await;
    let (pulled_b, _) = pull_ok(&rb, &opts, cache.path()).await;
    // A partial left by an interrupted pull goes too.
    let stale = cache
        .path()
        .join(format!("blobs/sha256/{}.partial", "ab".repeat(32)));
    std::fs::write(&stale, b"stale").expect("write partial");

    let freed = registry::prune(cache.path(), &[&pulled_a.manifest_digest]).expect("prune");
    let image_b = &b.images[0];
    let b_bytes = image_b.config.bytes.len() + image_b.layer.bytes.len();
    assert!(freed >= (b_bytes + 5) as u64, "freed {freed}");
    assert!(!pulled_b.layout.exists());
    assert!(!stale.exists());
    assert!(!blob_path(cache.path(), &image_b.layer.digest).exists());
    check_layout(&pulled_a, &a.images[0], Some("a"));
    assert!(blob_path(cache.path(), &a.images[0].layer.digest).exists());

    registry::prune(cache.path(), &[]).expect("prune all");
    assert!(!pulled_a.layout.exists());
    assert!(!blob_path(cache.path(), &a.images[0].layer.digest).exists());
    let (again, events) = pull_ok(&ra, &opts, cache.path()).await;
    assert!(events.contains(&Progress::BlobDone {
        digest: a.images[0].layer.digest.clone(),
        cached: false
    }));
    check_layout(&again, &a.images[0], Some("a"));
}
