//! What directory work costs in requests: `ls -l` costs one listing plus, with stored
//! attributes, one HEAD per entry sent concurrently (readdirplus), and with uniform
//! attributes no request per entry at all; a create is one PUT and a remove one DELETE,
//! with the directory's times written in batches. Requests are counted by moto_server's
//! recorder, concurrency by the connections a proxy in front of it accepts.

// Fixture helpers outside #[test] fns panic on setup failure, as tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bulkhead_s3fs::{Attributes, Credentials, MountConfig, MountHandle, S3Mount};
use common::{Moto, Proxy, UnmountGuard, bucket_name};

const FILES: usize = 40;

fn mount(
    moto: &Moto,
    endpoint: &str,
    bucket: &str,
    dir: &Path,
    attributes: Attributes,
) -> MountHandle {
    mount_with(moto, endpoint, bucket, dir, attributes, |_| {})
}

/// [`mount`] with `tweak` applied to the config.
fn mount_with(
    moto: &Moto,
    endpoint: &str,
    bucket: &str,
    dir: &Path,
    attributes: Attributes,
    tweak: impl FnOnce(&mut MountConfig),
) -> MountHandle {
    let mut cfg = MountConfig {
        bucket: bucket.into(),
        endpoint: Some(endpoint.into()),
        credentials: Some(Credentials::new(&moto.key_id, &moto.secret, None)),
        attributes,
        file_mode: 0o640,
        dir_mode: 0o750,
        ..MountConfig::default()
    };
    tweak(&mut cfg);
    S3Mount::mount(cfg, dir).unwrap()
}

/// `ls -l` of `dir`: (mode string, name) per entry.
fn ls_l(dir: &Path) -> Vec<(String, String)> {
    let out = Command::new("ls").arg("-l").arg(dir).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[f.len() - 1].to_string())
        })
        .collect()
}

fn count(reqs: &[(String, String)], method: &str, needle: &str) -> usize {
    reqs.iter()
        .filter(|(m, u)| m == method && u.contains(needle))
        .count()
}

/// SEMANTICS "readdir": with stored attributes, `ls -l` shows each entry's stored mode
/// after one listing and one HEAD per entry, sent concurrently (not one after another).
#[test]
fn ls_l_with_stored_attributes_fetches_them_concurrently_once_each() {
    let moto = Moto::start();
    let bucket = bucket_name("lsl");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let m = mount(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Stored,
    );
    let d = dir.path().join("d");
    fs::create_dir(&d).unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    for i in 0..FILES {
        let f = d.join(format!("f{i:03}"));
        fs::write(&f, b"x").unwrap();
        let mode = if i % 2 == 0 { 0o600 } else { 0o644 };
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
    }
    m.unmount().unwrap();

    // A fresh mount behind a proxy that counts connections.
    let proxy = Proxy::start(moto.port);
    let m = mount(
        &moto,
        &proxy.endpoint(),
        &bucket,
        dir.path(),
        Attributes::Stored,
    );
    let before = proxy.connections();
    moto.record_start();
    let entries = ls_l(&d);
    let reqs = moto.record_stop();
    let opened = proxy.connections() - before;
    m.unmount().unwrap();

    assert_eq!(entries.len(), FILES + 1, "{entries:?}");
    for (mode, name) in &entries {
        let want = match name.as_str() {
            "sub" => "drwxr-xr-x",
            n if n.trim_start_matches('f').parse::<usize>().unwrap() % 2 == 0 => "-rw-------",
            _ => "-rw-r--r--",
        };
        assert_eq!(mode, want, "{name}");
    }
    // One per entry, and one of d's own marker (the lookup of d).
    let heads = count(&reqs, "HEAD", "/d/");
    assert_eq!(heads, FILES + 2, "one HEAD per entry: {reqs:#?}");
    assert_eq!(
        count(&reqs, "GET", "delimiter"),
        1,
        "one listing: {reqs:#?}"
    );
    assert!(
        reqs.len() <= FILES + 6,
        "no other request per entry: {reqs:#?}"
    );
    assert!(
        opened > 4,
        "the HEADs are sent concurrently (one connection each), not in series: {opened} connections"
    );
}

/// SEMANTICS "Attributes" (uniform): `ls -l` costs the listing alone; every entry shows the
/// mount's modes; new objects carry no metadata; chmod to another mode and symlinks are
/// refused with EPERM.
/// SEMANTICS "Listings" (stored attributes): a listing of objects that have not changed
/// since their attributes were fetched sends no HEAD for them, after the caches' TTLs too;
/// an object another client changed (a copy onto itself with a new mode, as `chmod`
/// through s3fs does) is fetched again and shows the new mode.
#[test]
fn ls_l_again_with_stored_attributes_heads_only_what_changed() {
    let moto = Moto::start();
    let bucket = bucket_name("lsl2");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let m = mount(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Stored,
    );
    let d = dir.path().join("d");
    fs::create_dir(&d).unwrap();
    for i in 0..FILES {
        let f = d.join(format!("f{i:03}"));
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    }
    m.unmount().unwrap();
    // Attributes are remembered only from a HEAD at least 2 s after the object's last
    // change (Last-Modified has one-second resolution).
    std::thread::sleep(Duration::from_millis(2500));
    let m = mount(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Stored,
    );
    moto.record_start();
    let first = ls_l(&d);
    let reqs = moto.record_stop();
    assert_eq!(count(&reqs, "HEAD", "/d/f"), FILES, "{reqs:?}");
    assert!(
        first.iter().all(|(mode, _)| mode == "-rw-------"),
        "{first:?}"
    );

    moto.py(&[
        "set-meta",
        &bucket,
        "d/f003",
        "mode",
        &format!("{}", 0o100640),
    ]);
    // Past every TTL of the mount (1 s) and of the kernel, and 2 s past the change, so the
    // HEAD of the changed object is remembered too.
    std::thread::sleep(Duration::from_millis(2500));
    moto.record_start();
    let again = ls_l(&d);
    let reqs = moto.record_stop();
    assert_eq!(
        count(&reqs, "HEAD", "/d/f"),
        1,
        "only the changed object: {reqs:?}"
    );
    for (mode, name) in &again {
        let want = if name == "f003" {
            "-rw-r-----"
        } else {
            "-rw-------"
        };
        assert_eq!(mode, want, "{name}");
    }

    // Lookups after the TTLs (as `rm -rf` makes, one name after another) list the
    // directory again rather than asking about each name.
    std::thread::sleep(Duration::from_millis(1500));
    moto.record_start();
    for i in 0..FILES {
        let md = fs::symlink_metadata(d.join(format!("f{i:03}"))).unwrap();
        let want = if i == 3 { 0o640 } else { 0o600 };
        assert_eq!(md.mode() & 0o777, want, "f{i:03}");
    }
    let reqs = moto.record_stop();
    m.unmount().unwrap();
    assert_eq!(count(&reqs, "HEAD", "/d/f"), 0, "{reqs:?}");
    assert!(
        !reqs.iter().any(|(_, path)| path.contains("prefix=d/f")),
        "listings of d, none per name: {reqs:?}"
    );
}

#[test]
fn ls_l_with_uniform_attributes_sends_no_request_per_entry() {
    let moto = Moto::start();
    let bucket = bucket_name("uni");
    moto.mkbucket(&bucket);
    moto.py(&["fill", &bucket, "d/f", &FILES.to_string()]);
    moto.py(&["put", &bucket, "d/sub/x", "x"]);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let m = mount(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Uniform,
    );
    let d = dir.path().join("d");

    moto.record_start();
    let entries = ls_l(&d);
    let reqs = moto.record_stop();
    assert_eq!(entries.len(), FILES + 1, "{entries:?}");
    for (mode, name) in &entries {
        let want = if name == "sub" {
            "drwxr-x---"
        } else {
            "-rw-r-----"
        };
        assert_eq!(mode, want, "{name}");
    }
    assert_eq!(
        count(&reqs, "HEAD", "/d/"),
        0,
        "no HEAD per entry: {reqs:#?}"
    );
    assert!(reqs.len() <= 3, "the listing alone: {reqs:#?}");

    let f = d.join("new");
    fs::write(&f, b"hello").unwrap();
    assert_eq!(moto.meta(&bucket, "d/new"), serde_json::json!({}));
    let err = fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let err = std::os::unix::fs::symlink("new", d.join("link")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    m.unmount().unwrap();
}

/// SEMANTICS "Consistency model" (directories): with stored attributes, N creates cost N
/// PUTs of the files and a few of the directory's marker, not one per create; the same for
/// removes; the directory shows its new times at once and stores them by the unmount.
#[test]
fn creates_and_removes_cost_one_request_each_and_directory_times_are_batched() {
    const N: usize = 60;
    let moto = Moto::start();
    let bucket = bucket_name("cre");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let m = mount(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Stored,
    );
    let d = dir.path().join("d");
    fs::create_dir(&d).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fs::File::open(&d)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(old))
        .unwrap();

    moto.record_start();
    for i in 0..N {
        fs::write(d.join(format!("f{i:03}")), b"data").unwrap();
    }
    let created = moto.record_stop();
    assert!(
        fs::metadata(&d).unwrap().modified().unwrap() > old,
        "new times at once"
    );
    let file_puts = count(&created, "PUT", "/d/f");
    let marker_puts = created
        .iter()
        .filter(|(m, u)| m == "PUT" && u.ends_with("/d/"))
        .count();
    assert_eq!(file_puts, N, "one PUT per file: {created:#?}");
    assert!(
        marker_puts < N / 2,
        "directory times are batched: {marker_puts} marker PUTs for {N} creates"
    );
    // The new names are looked up first: in a directory this mount made (whose content it
    // knows) no HEAD asks about them; a new listing once the type TTL passed instead.
    assert_eq!(
        count(&created, "HEAD", "/d/f"),
        0,
        "no lookup request per new name: {created:#?}"
    );
    let lists = created
        .iter()
        .filter(|(m, u)| m == "GET" && u.contains("list-type"))
        .count();
    assert!(lists <= N / 4, "{lists} listings for {N} creates");

    moto.record_start();
    for i in 0..N {
        fs::remove_file(d.join(format!("f{i:03}"))).unwrap();
    }
    let removed = moto.record_stop();
    assert_eq!(count(&removed, "DELETE", "/d/f"), N, "{removed:#?}");
    let marker_puts = removed
        .iter()
        .filter(|(m, u)| m == "PUT" && u.ends_with("/d/"))
        .count();
    assert!(
        marker_puts < N / 2,
        "{marker_puts} marker PUTs for {N} removes"
    );
    m.unmount().unwrap();
    let stored = moto.meta(&bucket, "d/");
    assert_ne!(
        stored["mtime"], "1000000000",
        "stored by the unmount: {stored}"
    );
}

/// SEMANTICS "read": a sequential reader is served by the prefetcher's parts, one ranged GET
/// per 8 MiB part, whatever order its reads arrive in (the kernel's readahead requests do
/// across FUSE threads); a reader that jumps around gets an exact ranged GET per read, and
/// no part is fetched for it.
#[test]
fn sequential_reads_take_one_get_per_part_and_random_reads_one_each() {
    // Five parts, the last one short.
    reads_cost(bulkhead_s3fs::ReadStrategy::Ranged, 5);
}

/// SEMANTICS "read" (`--read-strategy streamed`): a sequential reader is served by one
/// streamed GET, whatever order its reads arrive in; random reads stay exact ranged GETs.
#[test]
fn the_streamed_strategy_reads_sequentially_with_one_get() {
    reads_cost(bulkhead_s3fs::ReadStrategy::Streamed, 1);
}

/// Reads a 36 MiB object through a mount with `strategy`: sequentially in 1 MiB reads (with
/// neighbours swapped, as the kernel's readahead sends them across FUSE threads, a read
/// across a part boundary and the short tail), which must cost `sequential_gets` GETs; then
/// four reads far apart, one exact ranged GET each.
fn reads_cost(strategy: bulkhead_s3fs::ReadStrategy, sequential_gets: usize) {
    use std::os::unix::fs::FileExt;
    const MIB: usize = 1 << 20;
    let moto = Moto::start();
    let bucket = bucket_name("ooo");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let data = common::pattern(36 * MIB + 5, 3);
    let m = mount(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Stored,
    );
    fs::write(dir.path().join("ooo.bin"), &data).unwrap();
    m.unmount().unwrap();

    let m = mount_with(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Stored,
        |c| c.read_strategy = strategy,
    );
    let f = fs::File::open(dir.path().join("ooo.bin")).unwrap();
    moto.record_start();
    let mut buf = vec![0u8; MIB];
    let mut order: Vec<usize> = (0..36).map(|i| i * MIB).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    order.push(8 * MIB - 4096);
    for at in order {
        f.read_exact_at(&mut buf, at as u64).unwrap();
        assert_eq!(buf, data[at..at + MIB], "bytes at {at}");
    }
    let n = f.read_at(&mut buf, 36 * MIB as u64).unwrap();
    assert_eq!(&buf[..n], &data[36 * MIB..]);
    let reqs = moto.record_stop();
    drop(f);
    assert_eq!(
        count(&reqs, "GET", "/ooo.bin"),
        sequential_gets,
        "{reqs:#?}"
    );

    // Random reads: far apart, one exact ranged GET each, nothing fetched ahead.
    let f = fs::File::open(dir.path().join("ooo.bin")).unwrap();
    moto.record_start();
    let mut small = vec![0u8; 4096];
    let offsets = [20 * MIB, 3 * MIB, 30 * MIB + 7, 11 * MIB];
    for at in offsets {
        f.read_exact_at(&mut small, at as u64).unwrap();
        assert_eq!(small, data[at..at + 4096], "bytes at {at}");
    }
    let reqs = moto.record_stop();
    drop(f);
    m.unmount().unwrap();
    assert_eq!(count(&reqs, "GET", "/ooo.bin"), offsets.len(), "{reqs:#?}");
}

/// SEMANTICS "Inodes": the mount keeps an inode only while the kernel does. A listing of
/// 2,000 entries hands the kernel 2,000 inodes; when the kernel drops them from its caches
/// (FORGET, here forced by dropping the dentry and inode caches) the mount lets them go, and
/// the names still resolve (to new inode numbers).
#[test]
fn inodes_the_kernel_forgets_leave_the_mount() {
    use bulkhead_s3fs::stats::MountStats;
    const N: usize = 2000;
    let moto = Moto::start();
    let bucket = bucket_name("forget");
    moto.mkbucket(&bucket);
    moto.py(&["fill", &bucket, "d/f", &N.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let m = mount(
        &moto,
        &moto.endpoint,
        &bucket,
        dir.path(),
        Attributes::Uniform,
    );
    let d = dir.path().join("d");
    assert_eq!(ls_l(&d).len(), N);
    let held = MountStats::now().inodes;
    assert!(held >= N as u64, "{held} inodes after the listing");
    let before = fs::metadata(d.join("f00007")).unwrap().ino();
    // Only entries nothing uses can go: no open file, no cwd under the mount.
    let mut left = held;
    for _ in 0..20 {
        fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        left = MountStats::now().inodes;
        if left < 10 {
            break;
        }
    }
    assert!(
        left < 10,
        "{left} of {held} inodes still held after the kernel dropped them"
    );
    let after = fs::metadata(d.join("f00007")).unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(
        after.ino(),
        before,
        "a forgotten inode number is not handed out again"
    );
    m.unmount().unwrap();
}
