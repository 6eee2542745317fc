//! Capturing overlay upper dirs as layers, checked through real overlay mounts (run as root).

#![allow(clippy::unwrap_used)]

mod store_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bulkhead_builder::store::{CaptureOptions, ImageStore, StoreError};
use store_support::*;

const SHIFT: u32 = 100_000;

fn opts(shift: u32) -> CaptureOptions {
    CaptureOptions {
        uid_shift: shift,
        id_count: 65_536,
        ..CaptureOptions::default()
    }
}

/// Whiteouts' times are not part of a layer: drop them for comparisons.
fn without_whiteout_times(mut s: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    for n in s.values_mut() {
        if n.kind == 'c' && n.rdev == 0 {
            // Overlay shares one whiteout inode between its whiteouts.
            n.mtime = None;
            n.link_group = None;
        }
    }
    s
}

#[test]
fn whiteouts_and_opaque_dirs_round_trip_through_overlay() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let src = t.join("src");
    std::fs::create_dir(&src).unwrap();
    sh(&format!(
        "cd {}
        mkdir -p a b c/deep e
        printf 1 > a/file1; printf 2 > a/file2; printf x > b/x; printf y > c/deep/y
        printf old > keep; printf z > e/z; printf w > e/w",
        src.display()
    ));
    let s = ImageStore::open(&t.join("store")).unwrap();
    let base = s.import(&src, "base").unwrap().layers[0].clone();
    let lower = s.layer_dir(&base.diff_id);
    let upper = t.join("upper");
    let expected = {
        let ov = Overlay::mount(&[&lower], Some((&upper, &t.join("work"))), &t.join("m1"));
        sh(&format!(
            "cd {}
            rm a/file1; rm -rf b; printf new > keep; rm -rf c; mkdir c; printf n > c/new
            mkdir -p f/g; printf h > f/g/h; ln -s keep keep-link; chmod 0700 e; rm e/w
            printf hard > f/one; ln f/one f/two",
            ov.merged.display()
        ));
        snapshot(
            &ov.merged,
            Snap {
                dir_mtimes: true,
                links: false,
            },
        )
    };
    let layer = s.capture_upper(&upper, &opts(0)).unwrap().unwrap();
    assert_eq!(layer.diff_id, layer.digest);
    // Same file system: the upper dir became the layer.
    assert!(!upper.exists());
    let names: Vec<String> = tar_names(&s.blob_path(&layer.digest))
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    for want in ["a/.wh.file1", ".wh.b", "c/.wh..wh..opq", "e/.wh.w", "f/two"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let dir = s.layer_dir(&layer.diff_id);
    let top = snapshot(&dir, FULL);
    assert_eq!((top["a/file1"].kind, top["a/file1"].rdev), ('c', 0));
    assert_eq!(
        top["c"]
            .xattrs
            .get("trusted.overlay.opaque")
            .map(|v| &v[..]),
        Some(&b"y"[..])
    );
    assert!(!top.contains_key("c/.wh..wh..opq"));
    assert!(top.values().all(|n| {
        n.xattrs
            .keys()
            .all(|k| !k.starts_with("trusted.overlay.") || k == "trusted.overlay.opaque")
    }));
    // Stacked under nothing but the two layers, the merged view is what the sandbox saw.
    let got = {
        let ov = Overlay::mount(&[&dir, &lower], None, &t.join("m2"));
        snapshot(
            &ov.merged,
            Snap {
                dir_mtimes: true,
                links: false,
            },
        )
    };
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, w) in &expected {
        assert_eq!(&got[k], w, "{k}");
    }
    // The layer directory is exactly what its tarball unpacks to.
    let fresh = ImageStore::open(&t.join("fresh")).unwrap();
    let again = fresh
        .add_layer_tar(&s.blob_path(&layer.digest), None)
        .unwrap();
    assert_eq!(again.diff_id, layer.diff_id);
    assert_eq!(
        without_whiteout_times(snapshot(&fresh.layer_dir(&again.diff_id), FULL)),
        without_whiteout_times(top)
    );
}

/// An upper dir as a sandbox leaves it: owners are host ids `SHIFT + n`.
fn shifted_upper(upper: &Path) {
    std::fs::create_dir_all(upper).unwrap();
    sh(&format!(
        "cd {u}
        mkdir -p home/user etc
        printf data > home/user/file; printf conf > etc/app.conf
        cp /bin/true home/user/suid
        chown -R {user}:{user} home/user; chown {root}:{root} home etc etc/app.conf
        chmod 4755 home/user/suid",
        u = upper.display(),
        root = SHIFT,
        user = SHIFT + 1000
    ));
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    set_xattr(&upper.join("home/user/suid"), "security.capability", &cap);
}

fn check_shifted(s: &ImageStore, layer: &bulkhead_builder::store::LayerInfo) {
    let ids: BTreeMap<String, (u64, u64)> = tar_names(&s.blob_path(&layer.digest))
        .into_iter()
        .map(|(n, u, g)| (n.trim_end_matches('/').to_string(), (u, g)))
        .collect();
    assert_eq!(ids["home/user/file"], (1000, 1000));
    assert_eq!(ids["home"], (0, 0));
    let snap = snapshot(&s.layer_dir(&layer.diff_id), FULL);
    assert_eq!(
        (snap["home/user/file"].uid, snap["home/user/file"].gid),
        (1000, 1000)
    );
    assert_eq!((snap["etc/app.conf"].uid, snap["etc/app.conf"].gid), (0, 0));
    // chown's side effects undone: setuid bit and file capability kept.
    assert_eq!(snap["home/user/suid"].mode, 0o4755);
    assert!(
        snap["home/user/suid"]
            .xattrs
            .contains_key("security.capability")
    );
}

#[test]
fn owners_are_shifted_down_on_the_same_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&tmp.path().join("store")).unwrap();
    let upper = tmp.path().join("upper");
    shifted_upper(&upper);
    let layer = s.capture_upper(&upper, &opts(SHIFT)).unwrap().unwrap();
    check_shifted(&s, &layer);
}

#[test]
fn owners_are_shifted_down_from_another_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&tmp.path().join("store")).unwrap();
    let fs = Tmpfs::mount(&tmp.path().join("tmpfs"));
    let upper = fs.0.join("upper");
    shifted_upper(&upper);
    let layer = s.capture_upper(&upper, &opts(SHIFT)).unwrap().unwrap();
    check_shifted(&s, &layer);
    // Copied, not moved: the upper dir is still there.
    assert!(upper.join("home/user/file").is_file());
}

#[test]
fn an_owner_outside_the_sandbox_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&tmp.path().join("store")).unwrap();
    let upper = tmp.path().join("upper");
    shifted_upper(&upper);
    sh(&format!(
        "printf x > {0}/etc/intruder; chown 5:5 {0}/etc/intruder",
        upper.display()
    ));
    let err = s.capture_upper(&upper, &opts(SHIFT)).unwrap_err();
    match &err {
        StoreError::IdOutOfRange { path, id, .. } => {
            assert_eq!(path, &PathBuf::from("/etc/intruder"));
            assert_eq!(*id, 5);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("/etc/intruder"));
    // Nothing registered, the upper dir back where it was.
    assert_eq!(listing(&s.root().join("layers")), Vec::<String>::new());
    assert_eq!(
        listing(&s.root().join("blobs/sha256")),
        Vec::<String>::new()
    );
    assert_eq!(listing(&s.root().join("tmp")), Vec::<String>::new());
    assert!(upper.join("etc/intruder").is_file());
    let file = snapshot(&upper, FULL)["home/user/file"].clone();
    assert_eq!((file.uid, file.gid), (SHIFT + 1000, SHIFT + 1000));
}

#[test]
fn excluded_and_pruned_paths_are_not_in_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&tmp.path().join("store")).unwrap();
    let upper = tmp.path().join("upper");
    std::fs::create_dir(&upper).unwrap();
    sh(&format!(
        "cd {}
        mkdir -p etc run/secrets tmp proc dev opt/empty-but-mine
        : > etc/hosts; : > etc/hostname; printf 'nameserver 1.1.1.1' > etc/resolv.conf
        printf real > etc/real; printf junk > tmp/junk; mkdir -p run/secrets/id",
        upper.display()
    ));
    let mut o = opts(0);
    o.exclude = [
        "/etc/resolv.conf",
        "/tmp",
        "/proc",
        "/sys",
        "/dev",
        "/run/secrets",
    ]
    .map(PathBuf::from)
    .to_vec();
    o.prune_empty = [
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/run/secrets/id",
    ]
    .map(PathBuf::from)
    .to_vec();
    let layer = s.capture_upper(&upper, &o).unwrap().unwrap();
    let snap = snapshot(&s.layer_dir(&layer.diff_id), FULL);
    assert_eq!(
        snap.keys().map(String::as_str).collect::<Vec<_>>(),
        ["etc", "etc/real", "opt", "opt/empty-but-mine"]
    );
    let names: Vec<_> = tar_names(&s.blob_path(&layer.digest))
        .into_iter()
        .map(|(n, _, _)| n.trim_end_matches('/').to_string())
        .collect();
    assert_eq!(names, ["etc", "etc/real", "opt", "opt/empty-but-mine"]);

    // An upper dir holding only what is excluded is an empty layer, left where it was.
    let upper2 = tmp.path().join("upper2");
    sh(&format!(
        "mkdir -p {0}/tmp {0}/run/secrets; printf x > {0}/tmp/x",
        upper2.display()
    ));
    let mut o2 = o.clone();
    o2.prune_empty = vec![PathBuf::from("/run/secrets")];
    assert_eq!(s.capture_upper(&upper2, &o2).unwrap(), None);
    assert!(upper2.join("tmp/x").is_file());
    assert!(!upper2.join("run").exists());
}

#[test]
fn the_same_upper_dir_gives_the_same_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&tmp.path().join("store")).unwrap();
    let upper = tmp.path().join("upper");
    shifted_upper(&upper);
    sh(&format!(
        "cd {}
        mkdir -p gone opaque; mknod gone/file c 0 0; printf a > opaque/a; ln -s home/user link
        chown -h {shift}:{shift} gone opaque opaque/a link",
        upper.display(),
        shift = SHIFT
    ));
    set_xattr(&upper.join("opaque"), "trusted.overlay.opaque", b"y");
    set_xattr(
        &upper.join("etc"),
        "trusted.overlay.origin",
        b"\x00\x01junk",
    );
    set_xattr(&upper.join("etc"), "trusted.overlay.impure", b"y");
    let copy = tmp.path().join("copy");
    sh(&format!("cp -a {} {}", upper.display(), copy.display()));
    let one = s.capture_upper(&upper, &opts(SHIFT)).unwrap().unwrap();
    let two = s.capture_upper(&copy, &opts(SHIFT)).unwrap().unwrap();
    assert_eq!(one, two);
    let snap = snapshot(&s.layer_dir(&one.diff_id), FULL);
    assert_eq!(
        snap["etc"].xattrs.keys().collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    assert_eq!(snap["opaque"].xattrs["trusted.overlay.opaque"], b"y");
    let names: Vec<_> = tar_names(&s.blob_path(&one.digest))
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    assert!(names.contains(&"gone/.wh.file".to_string()));
    assert!(names.contains(&"opaque/.wh..wh..opq".to_string()));
    assert_eq!(listing(&s.root().join("tmp")), Vec::<String>::new());
}

#[test]
fn a_redirected_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&tmp.path().join("store")).unwrap();
    let upper = tmp.path().join("upper");
    std::fs::create_dir_all(upper.join("moved")).unwrap();
    set_xattr(&upper.join("moved"), "trusted.overlay.redirect", b"/old");
    let err = s.capture_upper(&upper, &opts(0)).unwrap_err();
    assert!(err.to_string().contains("/moved"), "{err}");
    assert!(err.to_string().contains("redirect_dir=off"), "{err}");
    assert!(upper.join("moved").is_dir());
    assert_eq!(listing(&s.root().join("layers")), Vec::<String>::new());
}
