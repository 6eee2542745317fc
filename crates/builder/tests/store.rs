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
    // The same tree gives the same layer, reused.
    let again = s.import(&src, "rich:2").unwrap();
    assert_eq!(again.layers, image.layers);
    assert_eq!(s.image("rich").unwrap().unwrap(), image);
    assert_eq!(
        s.image(image.manifest_digest.as_str())
            .unwrap()
            .unwrap()
            .name,
        "rich:2"
    );
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
