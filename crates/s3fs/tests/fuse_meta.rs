//! Stored attributes (docs/SEMANTICS.md, "Attributes"): mode, owner and times live in the
//! object's `x-amz-meta-*` headers, in s3fs-fuse's format, and survive a remount; objects of
//! other S3 clients keep the mount's defaults. Every check of the bucket goes through boto3.

// Fixture helpers outside #[test] fns panic on setup failure, as tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulkhead_s3fs::{Credentials, MountConfig, MountHandle, S3Mount};
use common::{Moto, UnmountGuard, bucket_name, is_mounted};

fn mount(moto: &Moto, bucket: &str, dir: &Path) -> (MountHandle, UnmountGuard) {
    let cfg = MountConfig {
        bucket: bucket.into(),
        endpoint: Some(moto.endpoint.clone()),
        credentials: Some(Credentials::new(&moto.key_id, &moto.secret, None)),
        dir_mode: 0o777,
        file_mode: 0o666,
        uid: 4321,
        gid: 8765,
        ..MountConfig::default()
    };
    let guard = UnmountGuard(dir.to_path_buf());
    let m = S3Mount::mount(cfg, dir).expect("mount");
    assert!(is_mounted(dir));
    (m, guard)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn chmod_chown_utimes_are_stored_in_metadata_and_survive_a_remount() {
    let moto = Moto::start();
    let bucket = bucket_name("meta");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let (m, guard) = mount(&moto, &bucket, dir.path());
    let f = dir.path().join("f");
    let d = dir.path().join("d");
    fs::write(&f, b"content").unwrap();
    fs::create_dir(&d).unwrap();
    // A new entry belongs to its creator, with the type in the stored mode.
    let me = nix::unistd::getuid().as_raw();
    let meta = moto.meta(&bucket, "f");
    assert_eq!(meta["uid"], me.to_string(), "{meta}");
    assert_eq!(
        meta["mode"].as_str().unwrap().parse::<u32>().unwrap() & libc::S_IFMT,
        libc::S_IFREG
    );

    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o2750)).unwrap();
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
    let when = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::open(&f)
        .unwrap()
        .set_times(FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
    assert_eq!(mode(&f), 0o640);
    assert_eq!(fs::metadata(&f).unwrap().uid(), 1234);

    // In S3, in s3fs-fuse's format: decimal st_mode, epoch seconds; the data is untouched.
    let meta = moto.meta(&bucket, "f");
    assert_eq!(meta["mode"], (libc::S_IFREG | 0o640).to_string(), "{meta}");
    assert_eq!(meta["uid"], "1234");
    assert_eq!(meta["gid"], "5678");
    assert_eq!(meta["mtime"], "1000000000");
    assert_eq!(moto.get(&bucket, "f"), b"content");
    let dmeta = moto.meta(&bucket, "d/");
    assert_eq!(
        dmeta["mode"],
        (libc::S_IFDIR | 0o2750).to_string(),
        "{dmeta}"
    );

    // Rewriting the file keeps mode and owner and moves mtime to now.
    fs::write(&f, b"new content").unwrap();
    let meta = moto.meta(&bucket, "f");
    assert_eq!(meta["mode"], (libc::S_IFREG | 0o640).to_string(), "{meta}");
    assert_eq!(meta["uid"], "1234");
    let st = fs::metadata(&f).unwrap();
    assert!(st.modified().unwrap() > SystemTime::now() - Duration::from_secs(60));
    File::open(&f)
        .unwrap()
        .set_times(FileTimes::new().set_modified(when))
        .unwrap();

    // An object of another client: the mount's modes, owner, and Last-Modified.
    moto.py(&["put", &bucket, "plain", "x"]);
    let plain = fs::metadata(dir.path().join("plain")).unwrap();
    assert_eq!(plain.permissions().mode() & 0o7777, 0o666);
    assert_eq!((plain.uid(), plain.gid()), (4321, 8765));
    assert!(plain.modified().unwrap() > SystemTime::now() - Duration::from_secs(60));
    // The mount root has no object to store attributes on.
    let root = fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700));
    assert_eq!(root.unwrap_err().raw_os_error(), Some(libc::EPERM));
    let st = nix::sys::statvfs::statvfs(dir.path()).unwrap();
    assert!(st.blocks() > 0, "statfs answers");

    m.unmount().unwrap();
    drop(guard);
    let dir2 = tempfile::tempdir().unwrap();
    let (m2, _guard2) = mount(&moto, &bucket, dir2.path());
    // A listing first: its entries must not stand in for the stored attributes.
    assert_eq!(fs::read_dir(dir2.path()).unwrap().count(), 3);
    let f = dir2.path().join("f");
    let st = fs::metadata(&f).unwrap();
    assert_eq!(st.permissions().mode() & 0o7777, 0o640);
    assert_eq!((st.uid(), st.gid()), (1234, 5678));
    assert_eq!(st.modified().unwrap(), when);
    assert_eq!(mode(&dir2.path().join("d")), 0o2750);
    assert_eq!(fs::read(&f).unwrap(), b"new content");
    m2.unmount().unwrap();
}

#[test]
fn symlinks_and_fifos_are_objects_with_their_type_in_the_mode_and_parents_get_new_times() {
    use std::os::unix::fs::FileTypeExt;
    let moto = Moto::start();
    let bucket = bucket_name("special");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let (m, _guard) = mount(&moto, &bucket, dir.path());
    let d = dir.path().join("d");
    fs::create_dir(&d).unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::open(&d)
        .unwrap()
        .set_times(FileTimes::new().set_modified(old))
        .unwrap();

    std::os::unix::fs::symlink("../target/file", d.join("link")).unwrap();
    assert_eq!(
        fs::read_link(d.join("link")).unwrap(),
        Path::new("../target/file")
    );
    assert!(
        fs::symlink_metadata(d.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // In S3: the target as the body, S_IFLNK in the mode.
    assert_eq!(moto.get(&bucket, "d/link"), b"../target/file");
    let meta = moto.meta(&bucket, "d/link");
    assert_eq!(meta["mode"], (libc::S_IFLNK | 0o777).to_string(), "{meta}");

    nix::unistd::mkfifo(
        &d.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let st = fs::symlink_metadata(d.join("fifo")).unwrap();
    assert!(st.file_type().is_fifo());
    assert_eq!(st.permissions().mode() & 0o7777, 0o640 & !current_umask());
    assert_eq!(moto.get(&bucket, "d/fifo"), b"");
    let meta = moto.meta(&bucket, "d/fifo");
    let stored: u32 = meta["mode"].as_str().unwrap().parse().unwrap();
    assert_eq!(stored & libc::S_IFMT, libc::S_IFIFO, "{meta}");

    // Creating entries moved the directory's times to now (in S3 by the unmount at the
    // latest: see the end).
    let dst = fs::metadata(&d).unwrap();
    assert!(dst.modified().unwrap() > SystemTime::now() - Duration::from_secs(60));

    // A rename keeps the type and the target; unlink removes the object.
    fs::rename(d.join("link"), dir.path().join("moved")).unwrap();
    assert_eq!(
        fs::read_link(dir.path().join("moved")).unwrap(),
        Path::new("../target/file")
    );
    fs::remove_file(d.join("fifo")).unwrap();
    assert!(moto.meta(&bucket, "d/fifo").is_null());
    m.unmount().unwrap();
    let dmeta = moto.meta(&bucket, "d/");
    assert_ne!(dmeta["mtime"], "1000000000", "{dmeta}");
}

/// pjdfstest's `open::open_trunc` raced the last release: a file only emptied is committed
/// when its last descriptor is released, which the kernel sends after `close` returned. A
/// duplicate of the descriptor holds that release back here (each `close` of a duplicate is
/// a flush, the release comes with the last), so the `stat` in between is deterministic.
#[test]
fn a_stat_after_o_trunc_shows_new_times_before_the_last_release_commits() {
    use std::os::unix::fs::OpenOptionsExt;
    let moto = Moto::start();
    let bucket = bucket_name("trunc");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let (m, _guard) = mount(&moto, &bucket, dir.path());
    let f = dir.path().join("f");
    fs::write(&f, b"data").unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::open(&f)
        .unwrap()
        .set_times(FileTimes::new().set_modified(old))
        .unwrap();
    assert_eq!(fs::metadata(&f).unwrap().modified().unwrap(), old);

    let trunc = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TRUNC)
        .open(&f)
        .unwrap();
    let dup = trunc.try_clone().unwrap();
    drop(trunc);
    // Past the kernel's attribute cache (the mount's default 1 s): the stat asks the mount,
    // which still has the writer.
    std::thread::sleep(Duration::from_millis(1300));
    let st = fs::metadata(&f).unwrap();
    assert_eq!(st.len(), 0);
    let recent = SystemTime::now() - Duration::from_secs(60);
    assert!(st.modified().unwrap() > recent, "mtime {:?}", st.modified());
    assert!(st.ctime() > recent.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64);
    drop(dup);
    m.unmount().unwrap();
    assert_eq!(moto.get(&bucket, "f"), b"");
}

/// The process umask (read by setting it and putting it back).
fn current_umask() -> u32 {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(old);
    old.bits()
}
