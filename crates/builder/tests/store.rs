//! The image store against real trees, real tarballs and real overlay mounts (run as root).

#![allow(clippy::unwrap_used)]

mod store_support;

use std::path::Path;

use bulkhead_builder::store::{Digest, ImageStore, StoreError};
use store_support::*;
use tar::EntryType;

type Entry = (tar::Header, Vec<u8>);

/// A source tree with every kind of file a layer must keep.
fn rich_tree(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    sh(&format!(
        "cd {d}
        mkdir -p usr/bin etc/empty var/lib/app 'with space'
        printf 'hello' > etc/greeting
        printf '#!/bin/sh\\necho hi\\n' > usr/bin/tool
        chmod 4755 usr/bin/tool
        printf 'x' > usr/bin/cap; chmod 0755 usr/bin/cap
        ln usr/bin/tool usr/bin/tool-again
        ln -s ../etc/greeting usr/greeting-link
        ln -s /nowhere/at/all dangling
        mknod dev-null c 1 3
        mknod blockdev b 7 0
        mkfifo fifo
        printf 'owned' > var/lib/app/data; chown 1000:1001 var/lib/app/data var/lib/app
        chmod 0700 var/lib/app
        chmod 1777 'with space'
        long=$(printf 'n%.0s' $(seq 1 120)); mkdir -p deep/$long; printf 'long' > deep/$long/$long
        ln -s $long/$long deep/longlink
        touch -h -d '2001-02-03 04:05:06' usr/greeting-link etc/greeting
        touch -d '2002-02-02 02:02:02' etc/empty etc",
        d = dir.display()
    ));
    // cap_net_bind_service+ep, as setcap writes it (VFS_CAP_REVISION_2).
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    set_xattr(&dir.join("usr/bin/cap"), "security.capability", &cap);
    set_xattr(&dir.join("etc/greeting"), "user.note", b"kept");
    set_xattr(&dir.join("etc"), "trusted.other", b"also kept");
}

fn store(tmp: &Path) -> ImageStore {
    ImageStore::open(&tmp.join("store")).unwrap()
}

#[test]
fn import_of_a_directory_unpacks_to_an_equal_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    rich_tree(&src);
    let s = store(tmp.path());
    let image = s.import(&src, "rich").unwrap();
    assert_eq!(image.name, "rich:latest");
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert_eq!(layer.diff_id, layer.digest);
    assert!(s.has_layer(&layer.diff_id));
    let got = snapshot(&s.layer_dir(&layer.diff_id), FULL);
    let want = snapshot(&src, FULL);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, w) in &want {
        assert_eq!(&got[k], w, "{k}");
    }
    // The comparison saw what matters.
    assert!(
        got["usr/bin/cap"]
            .xattrs
            .contains_key("security.capability")
    );
    assert_eq!(got["usr/bin/tool"].mode, 0o4755);
    assert_eq!(
        got["usr/bin/tool-again"].link_group.as_deref(),
        Some("usr/bin/tool")
    );
    assert_eq!(
        (got["var/lib/app/data"].uid, got["var/lib/app/data"].gid),
        (1000, 1001)
    );
    assert_eq!(got["dev-null"].kind, 'c');
    assert_eq!(got["etc"].xattrs["trusted.other"], b"also kept");
    // The same tree gives the same layer, reused, and the tree itself is untouched.
    assert_eq!(s.add_layer_dir(&src).unwrap(), *layer);
    assert_eq!(snapshot(&src, FULL), want);
    let again = s.import(&src, "rich:2").unwrap();
    assert_eq!(again.layers, image.layers);
    assert_eq!(s.image("rich").unwrap().unwrap(), image);
    // A digest finds its image. Both imports have the same manifest when they fall in the
    // same second (the config's creation time), and the first name by order answers then.
    let by_digest = s.image(image.manifest_digest.as_str()).unwrap().unwrap();
    assert_eq!(by_digest.manifest_digest, image.manifest_digest);
    let want = if again.manifest_digest == image.manifest_digest {
        "rich:2"
    } else {
        "rich:latest"
    };
    assert_eq!(by_digest.name, want);
    assert_eq!(s.images().unwrap().len(), 2);
    assert_eq!(listing(&s.root().join("tmp")), Vec::<String>::new());
}

#[test]
fn import_of_the_busybox_rootfs_is_exact() {
    let src = Path::new("/var/cache/bulkhead/rootfs/busybox");
    assert!(
        src.is_dir(),
        "{} is missing: run scripts/build-rootfs.sh",
        src.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let image = s.import(src, "busybox").unwrap();
    let dir = s.layer_dir(&image.layers[0].diff_id);
    assert_eq!(snapshot(&dir, FULL), snapshot(src, FULL));
    // A tarball of the same tree imports to the same layer.
    let tarball = tmp.path().join("busybox.tar");
    std::fs::copy(s.blob_path(&image.layers[0].digest), &tarball).unwrap();
    let from_tar = s.import(&tarball, "busybox:tar").unwrap();
    assert_eq!(from_tar.layers[0].diff_id, image.layers[0].diff_id);
}

/// Measures the import of the Debian root filesystem (the real use); run by hand:
/// `cargo nextest run -p bulkhead-builder --run-ignored only -E 'test(debian)'`.
#[test]
#[ignore]
fn import_of_the_debian_rootfs() {
    let src = Path::new("/var/cache/bulkhead/rootfs/debian");
    assert!(src.is_dir(), "run scripts/build-rootfs.sh");
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let t = std::time::Instant::now();
    let image = s.import(src, "debian").unwrap();
    eprintln!(
        "debian import: {:.2} s, blob {} bytes",
        t.elapsed().as_secs_f64(),
        image.layers[0].size
    );
    let dir = s.layer_dir(&image.layers[0].diff_id);
    assert_eq!(snapshot(&dir, FULL), snapshot(src, FULL));
    // The same tree as a build step's upper dir on the store's file system.
    let upper = tmp.path().join("upper");
    sh(&format!("cp -a {} {}", src.display(), upper.display()));
    let opts = bulkhead_builder::store::CaptureOptions {
        uid_shift: 0,
        id_count: 65_536,
        ..Default::default()
    };
    let fresh = ImageStore::open(&tmp.path().join("fresh")).unwrap();
    let t = std::time::Instant::now();
    let captured = fresh.capture_upper(&upper, &opts).unwrap().unwrap();
    eprintln!("debian capture: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(captured.diff_id, image.layers[0].diff_id);
}

#[test]
fn tarball_entries_escaping_the_layer_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let target = outside.display().to_string();
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        (
            "dotdot",
            vec![(raw_header(b"../evil", EntryType::Regular, 1), b"x".to_vec())],
        ),
        (
            "nested dotdot",
            vec![(
                raw_header(b"a/../../evil", EntryType::Regular, 1),
                b"x".to_vec(),
            )],
        ),
        (
            "absolute",
            vec![(
                raw_header(format!("{target}/evil").as_bytes(), EntryType::Regular, 1),
                b"x".to_vec(),
            )],
        ),
        (
            "write through a symlink",
            vec![
                (
                    raw_link(b"link", EntryType::Symlink, target.as_bytes()),
                    Vec::new(),
                ),
                (
                    raw_header(b"link/evil", EntryType::Regular, 1),
                    b"x".to_vec(),
                ),
            ],
        ),
        (
            "directory through a symlink",
            vec![
                (
                    raw_link(b"link", EntryType::Symlink, target.as_bytes()),
                    Vec::new(),
                ),
                (
                    raw_header(b"link/sub/", EntryType::Directory, 0),
                    Vec::new(),
                ),
            ],
        ),
        (
            "whiteout of the parent",
            vec![(raw_header(b".wh...", EntryType::Regular, 0), Vec::new())],
        ),
        (
            "whiteout of the directory itself",
            vec![
                (raw_header(b"a/", EntryType::Directory, 0), Vec::new()),
                (raw_header(b"a/.wh..", EntryType::Regular, 0), Vec::new()),
            ],
        ),
        (
            "hard link out",
            vec![(
                raw_link(b"passwd", EntryType::Link, b"../../../../etc/passwd"),
                Vec::new(),
            )],
        ),
        (
            "hard link through a symlink",
            vec![
                (raw_link(b"link", EntryType::Symlink, b"/etc"), Vec::new()),
                (
                    raw_link(b"passwd", EntryType::Link, b"link/passwd"),
                    Vec::new(),
                ),
            ],
        ),
    ];
    for (what, entries) in cases {
        let tar = tmp.path().join("evil.tar");
        write_tar(&tar, &entries);
        let err = s.add_layer_tar(&tar, None).unwrap_err();
        assert!(
            matches!(err, StoreError::UnsafeEntry { .. }),
            "{what}: {err}"
        );
        assert_eq!(listing(&outside), Vec::<String>::new(), "{what}");
        assert_eq!(
            listing(&s.root().join("layers")),
            Vec::<String>::new(),
            "{what}"
        );
        assert_eq!(
            listing(&s.root().join("blobs/sha256")),
            Vec::<String>::new(),
            "{what}"
        );
        assert_eq!(
            listing(&s.root().join("tmp")),
            Vec::<String>::new(),
            "{what}"
        );
    }
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused_and_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let tar = tmp.path().join("layer.tar");
    write_tar(&tar, &[file_entry("a", b"a", 0o644)]);
    let wrong = Digest::of(b"something else");
    let err = s.add_layer_tar(&tar, Some(&wrong)).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert_eq!(listing(&s.root().join("layers")), Vec::<String>::new());
    assert_eq!(
        listing(&s.root().join("blobs/sha256")),
        Vec::<String>::new()
    );
    assert_eq!(listing(&s.root().join("tmp")), Vec::<String>::new());
    // The right digest works; plain and gzip blobs of one tarball share the layer.
    let right = Digest::parse(&sha256_file(&tar)).unwrap();
    let plain = s.add_layer_tar(&tar, Some(&right)).unwrap();
    assert_eq!(plain.digest, right);
    let gz = tmp.path().join("layer.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&tar).unwrap())).unwrap();
    let zipped = s.add_layer_tar(&gz, None).unwrap();
    assert_eq!(zipped.diff_id, plain.diff_id);
    assert_ne!(zipped.digest, plain.digest);
    assert_eq!(
        zipped.media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // Known now: given its digest, it is reused without unpacking.
    assert_eq!(s.add_layer_tar(&gz, Some(&zipped.digest)).unwrap(), zipped);
    // zstd, in one frame and in two (the tarball's halves compressed apart, concatenated):
    // the same layer again, and reused by digest.
    if std::process::Command::new("zstd")
        .arg("--version")
        .output()
        .is_ok()
    {
        let bytes = std::fs::read(&tar).unwrap();
        let zstd = |data: &[u8]| {
            let mut child = std::process::Command::new("zstd")
                .args(["-q", "-c"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), data).unwrap();
            drop(child.stdin.take());
            child.wait_with_output().unwrap().stdout
        };
        let one = tmp.path().join("layer.tar.zst");
        std::fs::write(&one, zstd(&bytes)).unwrap();
        let two = tmp.path().join("layer.two-frames.tar.zst");
        let (a, b) = bytes.split_at(bytes.len() / 2);
        std::fs::write(&two, [zstd(a), zstd(b)].concat()).unwrap();
        for path in [&one, &two] {
            let z = s.add_layer_tar(path, None).unwrap();
            assert_eq!(z.diff_id, plain.diff_id, "{}", path.display());
            assert_eq!(z.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
            assert_eq!(s.add_layer_tar(path, Some(&z.digest)).unwrap(), z);
        }
    }
}

#[test]
fn two_writers_of_one_layer_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    rich_tree(&src);
    let s = store(tmp.path());
    let blob = s.import(&src, "x").unwrap().layers[0].clone();
    let tar = tmp.path().join("copy.tar");
    std::fs::copy(s.blob_path(&blob.digest), &tar).unwrap();
    let fresh = ImageStore::open(&tmp.path().join("fresh")).unwrap();
    let infos: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|_| sc.spawn(|| fresh.add_layer_tar(&tar, None).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(infos.iter().all(|i| *i == blob));
    assert_eq!(
        snapshot(&fresh.layer_dir(&blob.diff_id), FULL),
        snapshot(&src, FULL)
    );
    assert_eq!(listing(&fresh.root().join("tmp")), Vec::<String>::new());
}

#[test]
fn gc_frees_what_nothing_references_and_keeps_keep() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let mut layers = Vec::new();
    for name in ["one", "two", "three"] {
        let tar = tmp.path().join(format!("{name}.tar"));
        write_tar(&tar, &[file_entry(name, name.as_bytes(), 0o644)]);
        let l = s.add_layer_tar(&tar, None).unwrap();
        s.put_image(name, &Default::default(), std::slice::from_ref(&l), None)
            .unwrap();
        layers.push(l);
    }
    assert!(s.remove_image("two").unwrap());
    assert!(s.remove_image("three:latest").unwrap());
    assert!(!s.remove_image("three").unwrap());
    let freed = s.gc(std::slice::from_ref(&layers[2].diff_id)).unwrap();
    assert!(freed > 0);
    assert!(s.has_layer(&layers[0].diff_id));
    assert!(!s.has_layer(&layers[1].diff_id));
    assert!(!s.has_blob(&layers[1].digest));
    assert!(s.has_layer(&layers[2].diff_id));
    assert!(s.image("one").unwrap().is_some());
    assert!(s.image("two").unwrap().is_none());
    // Nothing left to free.
    assert_eq!(s.gc(std::slice::from_ref(&layers[2].diff_id)).unwrap(), 0);
}

/// A gzip layer, its config and a manifest written into `dir` as an OCI image layout whose
/// index also lists a manifest for another platform (missing: picking it would fail).
/// Returns (diff_id, blob digest).
fn write_layout(dir: &Path, corrupt: bool) -> (String, String) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let tar = dir.join("layer.tmp");
    write_tar(
        &tar,
        &[
            dir_entry("etc/", 0o755),
            file_entry("etc/os-release", b"ID=test\n", 0o644),
        ],
    );
    let tar_bytes = std::fs::read(&tar).unwrap();
    std::fs::remove_file(&tar).unwrap();
    let diff_id = Digest::of(&tar_bytes).to_string();
    let gz = gzip(&tar_bytes);
    let (layer_digest, layer_size) = put(&gz);
    if corrupt {
        let path = dir
            .join("blobs/sha256")
            .join(&layer_digest["sha256:".len()..]);
        let mut bytes = gz.clone();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(path, bytes).unwrap();
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "A=b"], "Cmd": ["/bin/sh"], "WorkingDir": "/work",
            "User": "1000", "ExposedPorts": {"8080/tcp": {}}, "Labels": {"k": "v"},
            "StopSignal": "SIGTERM"
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs /"},
            {"created": "2024-01-01T00:00:01Z", "created_by": "CMD [\"/bin/sh\"]", "empty_layer": true}
        ]
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": Digest::of(b"not stored").to_string(), "size": 1,
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": manifest_digest, "size": manifest_size,
             "platform": {"architecture": "amd64", "os": "linux"}}
        ]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (diff_id, layer_digest)
}

#[test]
fn an_oci_layout_imports_with_its_config_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let (diff_id, digest) = write_layout(&layout, false);
    let s = store(tmp.path());
    let image = s.import(&layout, "layout").unwrap();
    let c = &image.config;
    assert_eq!(c.env, ["PATH=/bin", "A=b"]);
    assert_eq!(c.cmd.as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert_eq!(c.workdir.as_deref(), Some("/work"));
    assert_eq!(c.user.as_deref(), Some("1000"));
    assert_eq!(c.exposed_ports, ["8080/tcp"]);
    assert_eq!(c.labels["k"], "v");
    assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
    assert_eq!(c.history.len(), 2);
    assert_eq!(c.history[0].created_by, "ADD rootfs /");
    assert!(c.history[1].empty_layer && !c.history[0].empty_layer);
    assert_eq!(image.layers[0].diff_id.as_str(), diff_id);
    assert_eq!(image.layers[0].digest.as_str(), digest);
    let dir = s.layer_dir(&image.layers[0].diff_id);
    assert_eq!(
        std::fs::read(dir.join("etc/os-release")).unwrap(),
        b"ID=test\n"
    );
    // The stored config is a valid OCI config over the same diff_ids.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.blob_path(&image.config_digest)).unwrap()).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id);
    assert_eq!(
        config["config"]["ExposedPorts"]["8080/tcp"],
        serde_json::json!({})
    );
    assert_eq!(config["history"][1]["empty_layer"], true);
    // The same layout as a tarball.
    let tarball = tmp.path().join("layout.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tarball).unwrap());
    b.append_dir_all(".", &layout).unwrap();
    b.into_inner().unwrap();
    let from_tar = s.import(&tarball, "layout:tar").unwrap();
    assert_eq!(from_tar.layers, image.layers);
    assert_eq!(from_tar.config, image.config);
}

#[test]
fn a_corrupt_layout_blob_is_refused_and_no_image_named() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, true);
    let s = store(tmp.path());
    let err = s.import(&layout, "corrupt").unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(s.image("corrupt").unwrap().is_none());
    assert_eq!(listing(&s.root().join("layers")), Vec::<String>::new());
}

#[test]
fn a_docker_archive_imports_with_its_layers_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let l1 = tmp.path().join("l1.tar");
    write_tar(
        &l1,
        &[
            dir_entry("app/", 0o755),
            file_entry("app/old", b"old", 0o644),
            file_entry("app/kept", b"kept", 0o600),
        ],
    );
    let l2 = tmp.path().join("l2.tar");
    write_tar(
        &l2,
        &[
            dir_entry("app/", 0o755),
            file_entry("app/.wh.old", b"", 0o644),
            file_entry("app/new", b"new", 0o755),
        ],
    );
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["X=1"], "Entrypoint": ["/app/new"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_file(&l1), sha256_file(&l2)]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": "COPY old kept /app/"},
            {"created": "2024-01-01T00:00:01Z", "created_by": "RUN rm /app/old && touch /app/new"}
        ]
    });
    let manifest = serde_json::json!([
        {"Config": "abc.json", "RepoTags": ["x:1"], "Layers": ["1/layer.tar", "2/layer.tar"]}
    ]);
    let archive = tmp.path().join("saved.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, bytes).unwrap();
    };
    add("1/layer.tar", &std::fs::read(&l1).unwrap());
    add("2/layer.tar", &std::fs::read(&l2).unwrap());
    add("abc.json", &serde_json::to_vec(&config).unwrap());
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap();
    let s = store(tmp.path());
    let image = s.import(&archive, "saved").unwrap();
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[1].diff_id.to_string(), sha256_file(&l2));
    assert_eq!(image.config.env, ["X=1"]);
    assert_eq!(
        image.config.history[1].created_by,
        "RUN rm /app/old && touch /app/new"
    );
    let dirs = s.layer_dirs(&image);
    assert_eq!(dirs[1], s.layer_dir(&image.layers[1].diff_id));
    let top = snapshot(&dirs[1], FULL);
    assert_eq!((top["app/old"].kind, top["app/old"].rdev), ('c', 0));
    assert!(!top.contains_key("app/.wh.old"));
    assert_eq!(listing(&s.root().join("tmp")), Vec::<String>::new());
    // `docker save | gzip` imports the same.
    let zipped = tmp.path().join("saved.tar.gz");
    std::fs::write(&zipped, gzip(&std::fs::read(&archive).unwrap())).unwrap();
    let again = s.import(&zipped, "saved:gz").unwrap();
    assert_eq!(again.layers, image.layers);
    assert_eq!(again.config, image.config);
}

#[test]
fn later_entries_replace_earlier_ones_without_following_them() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut late_dir = dir_entry("late/", 0o700);
    late_dir.0.set_mtime(1_500_000_000);
    late_dir.0.set_cksum();
    let tar = tmp.path().join("dups.tar");
    write_tar(
        &tar,
        &[
            dir_entry("was-dir/", 0o755),
            file_entry("was-dir/child", b"c", 0o644),
            file_entry("was-dir", b"now a file", 0o600),
            (
                raw_link(
                    b"was-link",
                    EntryType::Symlink,
                    outside.display().to_string().as_bytes(),
                ),
                Vec::new(),
            ),
            dir_entry("was-link/", 0o755),
            file_entry("was-link/inside", b"i", 0o644),
            file_entry("late/child", b"x", 0o644),
            late_dir,
            file_entry("twice", b"first", 0o644),
            file_entry("twice", b"second", 0o640),
        ],
    );
    let layer = s.add_layer_tar(&tar, None).unwrap();
    let snap = snapshot(&s.layer_dir(&layer.diff_id), FULL);
    assert_eq!((snap["was-dir"].kind, snap["was-dir"].mode), ('f', 0o600));
    assert!(!snap.contains_key("was-dir/child"));
    assert_eq!(snap["was-link"].kind, 'd');
    assert!(snap.contains_key("was-link/inside"));
    assert_eq!(listing(&outside), Vec::<String>::new());
    // A directory's entry after its children still sets its mode and mtime.
    assert_eq!(snap["late"].mode, 0o700);
    assert_eq!(snap["late"].mtime, Some(1_500_000_000));
    assert_eq!(
        std::fs::read(s.layer_dir(&layer.diff_id).join("twice")).unwrap(),
        b"second"
    );
    assert_eq!(snap["twice"].mode, 0o640);
}

#[test]
fn open_removes_what_dead_writers_left_in_tmp() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    drop(ImageStore::open(&root).unwrap());
    // A pid past pid_max never runs; a name without a pid is nobody's.
    let dead = root.join("tmp/4999999-0-0-layer");
    std::fs::create_dir_all(dead.join("usr/bin")).unwrap();
    std::fs::write(root.join("tmp/junk"), b"x").unwrap();
    let mine = root.join(format!("tmp/{}-9-9-blob", std::process::id()));
    std::fs::write(&mine, b"in progress").unwrap();
    let s = ImageStore::open(&root).unwrap();
    assert_eq!(
        listing(&s.root().join("tmp")),
        [mine.file_name().unwrap().to_string_lossy().into_owned()]
    );
    use std::os::unix::fs::PermissionsExt;
    for dir in ["blobs", "layers", "images", "tmp"] {
        let mode = std::fs::metadata(root.join(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{dir}");
    }
}

#[test]
fn a_gnu_sparse_file_unpacks_with_its_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let tar = tmp.path().join("sparse.tar");
    sh(&format!(
        "mkdir -p {s}; truncate -s 1M {s}/holes; printf end | dd of={s}/holes bs=1 seek=1048000 conv=notrunc status=none
        tar -C {s} --sparse --format=gnu -cf {t} .",
        s = src.display(),
        t = tar.display()
    ));
    let s = store(tmp.path());
    let layer = s.add_layer_tar(&tar, None).unwrap();
    let got = std::fs::read(s.layer_dir(&layer.diff_id).join("holes")).unwrap();
    assert_eq!(got, std::fs::read(src.join("holes")).unwrap());
}

/// A layer committed but not yet synced is marked pending; writing an image syncs and clears
/// the marks; a mark left by a writer that died takes its layer away at the next open (its
/// files may be half on disk), and a live writer's mark is left alone.
#[test]
fn unsynced_layers_of_a_dead_writer_are_dropped_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let tar = tmp.path().join("layer.tar");
    write_tar(&tar, &[file_entry("a", b"a", 0o644)]);
    let l = s.add_layer_tar(&tar, None).unwrap();
    let pending = s.root().join("pending");
    let hex = l.diff_id.hex().to_string();
    let me = std::process::id();
    assert_eq!(
        listing(&pending),
        vec![format!("{hex}.{me}"), format!("blob-{hex}.{me}")]
    );
    s.sync_pending().unwrap();
    assert_eq!(listing(&pending), Vec::<String>::new());
    // Adding what is already there marks nothing: a failed build that reproduced a layer
    // must not leave a mark that would take the layer away at the next open.
    s.add_layer_tar(&tar, None).unwrap();
    assert_eq!(listing(&pending), Vec::<String>::new());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    // A mark of a live writer (this process, this boot) is kept across an open.
    std::fs::write(pending.join(format!("{hex}.{me}")), &boot).unwrap();
    let s = store(tmp.path());
    assert!(s.has_layer(&l.diff_id));
    // The same pid in an earlier boot says nothing: its layer goes, as a dead writer's does.
    std::fs::write(pending.join(format!("{hex}.{me}")), "another-boot").unwrap();
    std::fs::write(pending.join(format!("blob-{hex}.999999999")), &boot).unwrap();
    let s = store(tmp.path());
    assert!(!s.has_layer(&l.diff_id));
    assert!(!s.blob_path(&l.digest).exists());
    assert_eq!(listing(&pending), Vec::<String>::new());
}
