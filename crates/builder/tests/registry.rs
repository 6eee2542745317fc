//! Registry pulls against Debian's docker-registry on 127.0.0.1, with images these tests write
//! and push with skopeo: manifests of each kind, platforms, digests, the layout handed to the
//! image store, and the errors for a registry that is down or an image that is not there.
//! Each test runs its own registry on free ports. The contract is the `registry` module's doc.

#[path = "common/registry_fixtures/mod.rs"]
mod fixtures;

use bulkhead_builder::registry::{Auth, DOCKER_MANIFEST, OCI_MANIFEST, Progress, RegistryError};
use bulkhead_builder::store::ImageStore;
use fixtures::image;
use fixtures::pull::*;
use fixtures::server::{self, Registry, RegistryAuth, read, skopeo_digest};

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
    // zstd layers, as BuildKit's `compression=zstd` pushes them (skopeo keeps them as given).
    let zstd_layout = image::single_compressed(15, "v1", true);
    let zstd = push(&zstd_layout, &registry, "test/zstd", &[]);
    let cache = tempfile::tempdir().expect("tempdir");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(store_dir.path()).expect("open the store");
    for (dest, name) in [
        (oci, "pulled-oci:v1"),
        (docker, "pulled-docker:v1"),
        (zstd, "pulled-zstd:v1"),
    ] {
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
        if name.starts_with("pulled-zstd") {
            assert_eq!(
                imported.layers[0].media_type,
                "application/vnd.oci.image.layer.v1.tar+zstd"
            );
        }
    }
}
