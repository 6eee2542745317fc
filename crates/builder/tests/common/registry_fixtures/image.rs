//! Tiny OCI images the tests write themselves: one gzip layer of a few files (one of them
//! 96 KiB of seeded noise, so halves of the layer are distinct), a config with the layer's
//! diff_id, a manifest, and an OCI layout skopeo can push.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// A blob: its bytes and digest.
#[derive(Clone)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        let digest = sha256(&bytes);
        Self { bytes, digest }
    }
}

/// One platform's image.
pub struct Image {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
    pub arch: String,
}

/// An OCI layout on disk holding `tag`.
pub struct Layout {
    pub dir: PathBuf,
    pub tag: String,
    /// The images (one, or one per platform of the index).
    pub images: Vec<Image>,
    /// The index, when the layout holds a multi-platform image.
    pub index: Option<Blob>,
    _tmp: tempfile::TempDir,
}

impl Layout {
    /// `oci:DIR:TAG`, skopeo's name for it.
    pub fn skopeo_src(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Builds one image for `arch` with a gzip layer; `seed` makes its layer unique.
pub fn image(seed: u64, arch: &str) -> Image {
    image_compressed(seed, arch, false)
}

/// [`image`], with a zstd layer (as `zstd` writes it) when `zstd` is set.
pub fn image_compressed(seed: u64, arch: &str, zstd: bool) -> Image {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(
        root.join("hello.txt"),
        format!("hello from image {seed} ({arch})\n"),
    )
    .expect("write");
    std::fs::write(root.join("etc/os-release"), "ID=bulkhead-test\n").expect("write");
    std::fs::write(root.join("noise.bin"), noise(seed, 96 * 1024)).expect("write");
    let tar = tmp.path().join("layer.tar");
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
        ])
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed");
    let diff_id = sha256(&std::fs::read(&tar).expect("read tar"));
    let (tool, args, layer_type) = if zstd {
        (
            "zstd",
            ["-q", "-c"],
            "application/vnd.oci.image.layer.v1.tar+zstd",
        )
    } else {
        (
            "gzip",
            ["-n", "-c"],
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let gz = Command::new(tool)
        .args(args)
        .arg(&tar)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(gz.status.success(), "{tool} failed");
    let layer = Blob::new(gz.stdout);
    let config = Blob::new(
        json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": format!("fixture {seed}")}],
        })
        .to_string()
        .into_bytes(),
    );
    let manifest = Blob::new(
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.digest,
                "size": config.bytes.len(),
            },
            "layers": [{
                "mediaType": layer_type,
                "digest": layer.digest,
                "size": layer.bytes.len(),
            }],
        })
        .to_string()
        .into_bytes(),
    );
    Image {
        layer,
        config,
        manifest,
        arch: arch.to_owned(),
    }
}

fn write_blob(dir: &Path, blob: &Blob) {
    let path = dir
        .join("blobs/sha256")
        .join(blob.digest.trim_start_matches("sha256:"));
    std::fs::write(path, &blob.bytes).expect("write blob");
}

fn layout_dir(images: &[Image]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("layout");
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    for image in images {
        write_blob(&dir, &image.layer);
        write_blob(&dir, &image.config);
        write_blob(&dir, &image.manifest);
    }
    (tmp, dir)
}

fn descriptor(media_type: &str, blob: &Blob) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": blob.digest, "size": blob.bytes.len()})
}

/// A layout holding one linux/amd64 image as `tag`.
pub fn single(seed: u64, tag: &str) -> Layout {
    single_compressed(seed, tag, false)
}

/// [`single`], its layer zstd-compressed when `zstd` is set.
pub fn single_compressed(seed: u64, tag: &str, zstd: bool) -> Layout {
    let images = vec![image_compressed(seed, "amd64", zstd)];
    let (tmp, dir) = layout_dir(&images);
    let mut entry = descriptor(
        "application/vnd.oci.image.manifest.v1+json",
        &images[0].manifest,
    );
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = json!({"schemaVersion": 2, "manifests": [entry]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write index");
    Layout {
        dir,
        tag: tag.to_owned(),
        images,
        index: None,
        _tmp: tmp,
    }
}

/// A layout holding a multi-platform index (linux/arm64 first, then linux/amd64) as `tag`.
pub fn multi_platform(seed: u64, tag: &str) -> Layout {
    let images = vec![image(seed, "arm64"), image(seed + 1, "amd64")];
    let (tmp, dir) = layout_dir(&images);
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            let mut d = descriptor(
                "application/vnd.oci.image.manifest.v1+json",
                &image.manifest,
            );
            d["platform"] = match image.arch.as_str() {
                "arm64" => json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
                arch => json!({"os": "linux", "architecture": arch}),
            };
            d
        })
        .collect();
    let index_blob = Blob::new(
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string()
        .into_bytes(),
    );
    write_blob(&dir, &index_blob);
    let mut entry = descriptor("application/vnd.oci.image.index.v1+json", &index_blob);
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let top = json!({"schemaVersion": 2, "manifests": [entry]});
    std::fs::write(dir.join("index.json"), top.to_string()).expect("write index");
    Layout {
        dir,
        tag: tag.to_owned(),
        images,
        index: Some(index_blob),
        _tmp: tmp,
    }
}
