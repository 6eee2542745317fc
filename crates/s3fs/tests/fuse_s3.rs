//! The filesystem through a real FUSE mount against a real moto_server; every check of what
//! is in the bucket goes through boto3, not through our client.

// Fixture helpers outside #[test] fns panic on setup failure, as tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use bulkhead_s3fs::{Credentials, MountConfig, MountHandle, S3Mount};
use common::{Moto, UnmountGuard, bucket_name, is_mounted, pattern, sha256_hex};

const MIB: usize = 1024 * 1024;

/// Field order is drop order: unmount first, then the mountpoint dir, then the server.
struct Fixture {
    mount: Option<MountHandle>,
    _guard: UnmountGuard,
    dir: tempfile::TempDir,
    bucket: String,
    moto: Moto,
}

impl Fixture {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn config(moto: &Moto, bucket: &str, endpoint: &str) -> MountConfig {
    MountConfig {
        bucket: bucket.into(),
        endpoint: Some(endpoint.into()),
        credentials: Some(Credentials::new(&moto.key_id, &moto.secret, None)),
        part_size: 5 * MIB,
        ..MountConfig::default()
    }
}

fn mount_with(moto: Moto, bucket: String, tweak: impl FnOnce(&mut MountConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&moto, &bucket, &moto.endpoint.clone());
    tweak(&mut cfg);
    let guard = UnmountGuard(dir.path().to_path_buf());
    let mount = S3Mount::mount(cfg, dir.path()).expect("mount");
    assert!(is_mounted(dir.path()));
    Fixture {
        mount: Some(mount),
        _guard: guard,
        dir,
        bucket,
        moto,
    }
}

fn setup() -> Fixture {
    let moto = Moto::start();
    let bucket = bucket_name("t");
    moto.mkbucket(&bucket);
    mount_with(moto, bucket, |_| {})
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Closes a file and returns what close(2) said (std's drop ignores it).
fn close(f: File) -> Result<(), i32> {
    let fd = f.into_raw_fd();
    // SAFETY: `fd` was just taken out of the File, so it is open and owned here.
    let r = unsafe { libc::close(fd) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// SEMANTICS "Reads and writes": what is written reads back, and after close() returns
/// the object is in the bucket byte for byte.
#[test]
fn write_then_read_back_and_bucket_has_the_bytes_after_close() {
    let fx = setup();
    let data = pattern(300_000, 1);
    let mut f = File::create(fx.path("hello.bin")).unwrap();
    f.write_all(&data).unwrap();
    close(f).expect("close succeeds");
    assert_eq!(fx.moto.get(&fx.bucket, "hello.bin"), data);
    assert_eq!(fs::read(fx.path("hello.bin")).unwrap(), data);
    assert_eq!(fs::metadata(fx.path("hello.bin")).unwrap().len(), 300_000);
}

/// SEMANTICS "Reads and writes": large files stream as a multipart upload.
#[test]
fn file_of_256_mib_is_uploaded_as_multipart_and_reads_back() {
    let fx = setup();
    let chunk = pattern(MIB, 7);
    let mut hasher_input = Vec::with_capacity(256 * MIB);
    let mut f = File::create(fx.path("big.bin")).unwrap();
    for i in 0..=255u8 {
        let mut c = chunk.clone();
        c[0] = i;
        f.write_all(&c).unwrap();
        hasher_input.extend_from_slice(&c);
    }
    close(f).expect("close succeeds");
    let want = sha256_hex(&hasher_input);
    drop(hasher_input);
    let st = fx.moto.stat(&fx.bucket, "big.bin");
    assert_eq!(st["size"], 256 * MIB as u64);
    assert_eq!(st["sha256"], want.as_str());
    assert!(
        st["etag"].as_str().unwrap().contains('-'),
        "multipart ETag expected: {st}"
    );
    let back = fs::read(fx.path("big.bin")).unwrap();
    assert_eq!(sha256_hex(&back), want);
}

/// SEMANTICS "Directories": readdir pages through ListObjectsV2 (10 000 entries).
#[test]
fn directory_of_10000_entries_lists_completely() {
    let fx = setup();
    fx.moto.py(&["fill", &fx.bucket, "many/f", "10000"]);
    let mut names: Vec<String> = fs::read_dir(fx.path("many"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 10_000);
    assert_eq!(names[0], "f00000");
    assert_eq!(names[9999], "f09999");
}

/// SEMANTICS "Rename": the write-temp-then-rename pattern, also over an existing file.
#[test]
fn temp_file_then_rename_into_place() {
    let fx = setup();
    let dir = fx.path("executions/run-1/results");
    fs::create_dir_all(&dir).unwrap();
    for round in 0..2u64 {
        let tmp = dir.join(".report.json.tmp");
        let data = pattern(10_000 + round as usize, round + 3);
        let mut f = File::create(&tmp).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        close(f).unwrap();
        fs::rename(&tmp, dir.join("report.json")).unwrap();
        assert_eq!(
            fx.moto
                .get(&fx.bucket, "executions/run-1/results/report.json"),
            data
        );
        assert_eq!(fs::read(dir.join("report.json")).unwrap(), data);
        assert!(!tmp.exists());
    }
    let keys = fx.moto.keys(&fx.bucket, "executions/");
    assert!(
        !keys.iter().any(|k| k.contains(".tmp")),
        "temp file left: {keys:?}"
    );
}

/// SEMANTICS "Reads and writes": append goes through a staging file.
#[test]
fn append_adds_to_an_existing_object() {
    let fx = setup();
    fs::write(fx.path("log.txt"), b"first\n").unwrap();
    let mut f = OpenOptions::new()
        .append(true)
        .open(fx.path("log.txt"))
        .unwrap();
    f.write_all(b"second\n").unwrap();
    close(f).unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "log.txt"), b"first\nsecond\n");
}

/// SEMANTICS "append": appending to an object of 5 MiB or more copies it server-side into a
/// new upload: nothing of it is downloaded, readers on the mount see old and new bytes, an
/// edit in place of the appended file still works, and the bucket holds it all after close.
#[test]
fn append_to_a_large_object_copies_it_server_side() {
    let fx = setup();
    let old = pattern(12 * MIB + 7, 5);
    fs::write(fx.path("app.bin"), &old).unwrap();
    fx.moto.record_start();
    let mut f = OpenOptions::new()
        .append(true)
        .open(fx.path("app.bin"))
        .unwrap();
    f.write_all(b"one more line\n").unwrap();
    // Another reader on the mount sees the old bytes and the new line before the close.
    let seen = fs::read(fx.path("app.bin")).unwrap();
    assert_eq!(seen.len(), old.len() + 14);
    assert_eq!(&seen[..old.len()], &old[..]);
    assert_eq!(&seen[old.len()..], b"one more line\n");
    let reqs_before_read = fx.moto.record_stop();
    close(f).unwrap();
    assert!(
        reqs_before_read
            .iter()
            .any(|(m, u)| m == "PUT" && u.contains("app.bin") && u.contains("partNumber=1")),
        "the object is copied as part 1: {reqs_before_read:#?}"
    );
    let mut want = old.clone();
    want.extend_from_slice(b"one more line\n");
    assert_eq!(fx.moto.get(&fx.bucket, "app.bin"), want);

    // Append again without reading: no byte of the object comes down.
    fx.moto.record_start();
    let mut f = OpenOptions::new()
        .append(true)
        .open(fx.path("app.bin"))
        .unwrap();
    f.write_all(b"and another\n").unwrap();
    close(f).unwrap();
    let reqs = fx.moto.record_stop();
    assert!(
        !reqs
            .iter()
            .any(|(m, u)| m == "GET" && u.contains("app.bin")),
        "an append downloaded the object: {reqs:#?}"
    );
    want.extend_from_slice(b"and another\n");
    assert_eq!(fx.moto.get(&fx.bucket, "app.bin"), want);

    // An edit in place while an append is pending moves it all to local staging.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(fx.path("app.bin"))
        .unwrap();
    let end = want.len() as u64;
    f.write_all_at(b"tail", end).unwrap();
    f.write_all_at(b"HEAD", 0).unwrap();
    close(f).unwrap();
    want[..4].copy_from_slice(b"HEAD");
    want.extend_from_slice(b"tail");
    assert_eq!(fx.moto.get(&fx.bucket, "app.bin"), want);
}

/// SEMANTICS "Reads and writes": random writes into a (multipart-sized) file in place.
#[test]
fn in_place_edit_of_a_large_file() {
    let fx = setup();
    let mut data = pattern(12 * MIB, 11);
    fs::write(fx.path("db.bin"), &data).unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(fx.path("db.bin"))
        .unwrap();
    let patch = pattern(5000, 99);
    f.write_all_at(&patch, 6 * MIB as u64 + 3).unwrap();
    let mut head = [0u8; 16];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, data[..16]);
    close(f).unwrap();
    data[6 * MIB + 3..6 * MIB + 3 + 5000].copy_from_slice(&patch);
    let st = fx.moto.stat(&fx.bucket, "db.bin");
    assert_eq!(st["sha256"], sha256_hex(&data).as_str());
}

/// SEMANTICS "Reads and writes" (a read of a file open for writing; a random write after
/// a streamed start): the parts sent are read back from the spill file, which is written
/// beside their uploads, and an edit after several parts stages the file from it; the
/// bucket keeps the old object until the close.
#[test]
fn a_file_being_streamed_reads_back_and_takes_an_edit_from_its_spilled_parts() {
    let fx = setup();
    fs::write(fx.path("big.bin"), b"old").unwrap();
    // Seven full parts (5 MiB in these tests) and a tail.
    let mut data = pattern(7 * 5 * MIB + 12_345, 21);
    let w = File::create(fx.path("big.bin")).unwrap();
    for (i, c) in data.chunks(MIB).enumerate() {
        w.write_all_at(c, (i * MIB) as u64).unwrap();
    }
    let back = fs::read(fx.path("big.bin")).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(
        back == data,
        "a reader on the same mount sees every byte written"
    );
    assert_eq!(fx.moto.get(&fx.bucket, "big.bin"), b"old");
    let patch = pattern(10_000, 5);
    let at = 3 * 5 * MIB - 77;
    w.write_all_at(&patch, at as u64).unwrap();
    data[at..at + patch.len()].copy_from_slice(&patch);
    close(w).unwrap();
    let st = fx.moto.stat(&fx.bucket, "big.bin");
    assert_eq!(st["sha256"], sha256_hex(&data).as_str());
    assert!(
        fx.moto.uploads(&fx.bucket).is_empty(),
        "the streamed upload was aborted"
    );
}

/// SEMANTICS "Truncate".
#[test]
fn truncate_shrinks_grows_and_empties() {
    let fx = setup();
    fs::write(fx.path("t.txt"), b"0123456789").unwrap();
    OpenOptions::new()
        .write(true)
        .open(fx.path("t.txt"))
        .unwrap()
        .set_len(4)
        .unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "t.txt"), b"0123");
    let f = OpenOptions::new()
        .write(true)
        .open(fx.path("t.txt"))
        .unwrap();
    f.set_len(6).unwrap();
    close(f).unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "t.txt"), b"0123\0\0");
    let f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(fx.path("t.txt"))
        .unwrap();
    close(f).unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "t.txt"), b"");
}

/// SEMANTICS "Directories": markers, implicit directories, rmdir refusing non-empty ones,
/// directory rename, unlink.
#[test]
fn directories_markers_implicit_rmdir_and_rename() {
    let fx = setup();
    fx.moto.py(&["put", &fx.bucket, "imp/a/b.txt", "hi"]);
    assert!(fx.path("imp").is_dir());
    assert!(fx.path("imp/a").is_dir());
    assert_eq!(fs::read(fx.path("imp/a/b.txt")).unwrap(), b"hi");
    let e = fs::remove_dir(fx.path("imp/a")).unwrap_err();
    assert_eq!(errno(&e), libc::ENOTEMPTY);

    fs::create_dir(fx.path("d")).unwrap();
    assert!(fx.moto.keys(&fx.bucket, "d/").contains(&"d/".to_string()));
    assert_eq!(
        errno(&fs::create_dir(fx.path("d")).unwrap_err()),
        libc::EEXIST
    );
    fs::write(fx.path("d/x"), b"x").unwrap();
    fs::rename(fx.path("d"), fx.path("e")).unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "e/x"), b"x");
    assert!(fx.moto.keys(&fx.bucket, "d/").is_empty());
    fs::remove_file(fx.path("e/x")).unwrap();
    assert_eq!(
        errno(&fs::remove_file(fx.path("e/x")).unwrap_err()),
        libc::ENOENT
    );
    fs::remove_dir(fx.path("e")).unwrap();
    assert!(fx.moto.keys(&fx.bucket, "e").is_empty());
    assert!(!fx.path("e").exists());
}

/// SEMANTICS "Errors": endpoint down gives EIO and a log line; the mount recovers.
#[test]
fn endpoint_down_gives_eio_and_a_log_line_then_recovers() {
    let logs = common::LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let moto = Moto::start();
    let bucket = bucket_name("down");
    moto.mkbucket(&bucket);
    moto.py(&["put", &bucket, "a.txt", "alpha"]);
    let proxy = common::Proxy::start(moto.port);
    let ep = proxy.endpoint();
    let fx = mount_with(moto, bucket, |c| {
        c.endpoint = Some(ep);
        c.stat_cache_ttl = Duration::ZERO;
        c.type_cache_ttl = Duration::ZERO;
        c.request_timeout = Duration::from_secs(5);
    });
    let mut pending = File::create(fx.path("w.txt")).unwrap();
    pending.write_all(b"not yet uploaded").unwrap();

    proxy.set_up(false);
    let e = fs::read(fx.path("a.txt")).unwrap_err();
    assert_eq!(errno(&e), libc::EIO, "{e}");
    let e = pending.sync_all().unwrap_err();
    assert_eq!(
        errno(&e),
        libc::EIO,
        "fsync must report the failed upload: {e}"
    );
    let log = logs.contents();
    assert!(log.contains("filesystem operation failed"), "log: {log}");
    assert!(log.contains("endpoint unreachable"), "log: {log}");

    proxy.set_up(true);
    assert_eq!(fs::read(fx.path("a.txt")).unwrap(), b"alpha");
    close(pending).expect("the retried upload succeeds once the endpoint is back");
    assert_eq!(fx.moto.get(&fx.bucket, "w.txt"), b"not yet uploaded");
}

/// SEMANTICS "Errors": ioctls are refused with ENOTTY (what `isatty`, sent by every Python
/// `open()`, expects of a regular file), without a log line per call.
#[test]
fn a_terminal_ioctl_is_refused_with_enotty_and_logs_nothing() {
    let logs = common::LogBuf::default();
    // `try_init` also routes the FUSE library's `log` records into the buffer.
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .try_init()
        .unwrap();
    let fx = setup();
    fs::write(fx.path("t.txt"), b"x").unwrap();
    for _ in 0..3 {
        let f = File::open(fx.path("t.txt")).unwrap();
        let mut tio = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: TCGETS writes at most one termios into the buffer it is given.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, tio.as_mut_ptr()) };
        assert_eq!(rc, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOTTY)
        );
    }
    let log = logs.contents();
    assert!(!log.contains("ioctl"), "log: {log}");
}

/// SEMANTICS "Errors": a server that accepts connections and never answers fails a call with
/// EIO once the operation timeout passed (retries included), not after every retry's read
/// timeout; the mount works again when the server does.
#[test]
fn a_hung_server_fails_calls_at_the_operation_timeout() {
    let moto = Moto::start();
    let bucket = bucket_name("hung");
    moto.mkbucket(&bucket);
    moto.py(&["put", &bucket, "a.txt", "alpha"]);
    let fx = mount_with(moto, bucket, |c| {
        c.stat_cache_ttl = Duration::ZERO;
        c.type_cache_ttl = Duration::ZERO;
        // Long enough that one read timeout per attempt would take minutes.
        c.request_timeout = Duration::from_secs(60);
        c.operation_timeout = Duration::from_secs(2);
    });
    fx.moto.pause();
    let t = std::time::Instant::now();
    let r = fs::read(fx.path("a.txt"));
    let took = t.elapsed();
    fx.moto.resume();
    assert_eq!(errno(&r.unwrap_err()), libc::EIO);
    // The lookup (HEAD and listing in parallel), then at most one more request: within a few
    // deadlines, far from 4 × 60 s.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(fs::read(fx.path("a.txt")).unwrap(), b"alpha");
}

/// SEMANTICS "stat": a file being written answers `stat` at once, even while its writer
/// waits for an upload slot (the server is hung): `stat` does not wait behind the write.
#[test]
fn stat_of_a_file_being_written_does_not_wait_for_its_uploads() {
    const PART: usize = 5 << 20;
    let moto = Moto::start();
    let bucket = bucket_name("statw");
    moto.mkbucket(&bucket);
    let fx = mount_with(moto, bucket, |c| {
        c.stat_cache_ttl = Duration::ZERO;
        c.type_cache_ttl = Duration::ZERO;
        c.part_size = PART;
        c.upload_concurrency = 1;
    });
    let path = fx.path("big.bin");
    let mut f = File::create(&path).unwrap();
    f.write_all(&vec![1u8; PART]).unwrap();
    fx.moto.pause();
    // The next part goes out and hangs; the one after waits for its slot, holding the file.
    let writer = std::thread::spawn(move || {
        f.write_all(&vec![2u8; 2 * PART]).unwrap();
        f
    });
    std::thread::sleep(Duration::from_secs(1));
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(fs::metadata(&p).map(|m| m.len()));
    });
    let shown = rx.recv_timeout(Duration::from_secs(10));
    fx.moto.resume();
    let size = shown
        .expect("stat returned while the writer waited for the hung server")
        .unwrap();
    // The kernel keeps its own size while a write(2) is under way and sets it when the call
    // returns, so what shows is at least what the finished write left.
    assert!(size >= PART as u64, "size {size}");
    let f = writer.join().unwrap();
    close(f).unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "big.bin").len(), 3 * PART);
}

/// SEMANTICS "close": a process that forks and execs while it writes a file closes its copy
/// of the descriptor in the child; that close commits nothing (no half file in the bucket, no
/// download of it for the next write), the writer's own close does.
#[test]
fn a_child_closing_its_copy_does_not_commit_the_file_being_written() {
    const PART: usize = 5 << 20;
    let moto = Moto::start();
    let bucket = bucket_name("fork");
    moto.mkbucket(&bucket);
    let fx = mount_with(moto, bucket, |c| c.part_size = PART);
    let mut f = File::create(fx.path("log.bin")).unwrap();
    // One part sent (its upload in progress) and a tail in memory.
    f.write_all(&vec![1u8; PART + 100]).unwrap();
    fx.moto.record_start();
    // The child's exec closes its copy (the descriptor is close-on-exec).
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
    assert!(
        fx.moto.keys(&fx.bucket, "").is_empty(),
        "a child's close published the half-written file"
    );
    f.write_all(&[2u8; 100]).unwrap();
    close(f).unwrap();
    let reqs = fx.moto.record_stop();
    assert!(
        !reqs
            .iter()
            .any(|(m, u)| m == "GET" && u.contains("log.bin")),
        "the writer's next write downloaded the object: {reqs:#?}"
    );
    let mut want = vec![1u8; PART + 100];
    want.extend_from_slice(&[2u8; 100]);
    assert_eq!(fx.moto.get(&fx.bucket, "log.bin"), want);
}

/// SEMANTICS "Read-only mounts": every change is refused with EROFS.
#[test]
fn read_only_mount_refuses_writes_with_erofs() {
    let moto = Moto::start();
    let bucket = bucket_name("ro");
    moto.mkbucket(&bucket);
    moto.py(&["put", &bucket, "keep.txt", "data"]);
    let fx = mount_with(moto, bucket, |c| c.read_only = true);
    assert_eq!(fs::read(fx.path("keep.txt")).unwrap(), b"data");
    let refused = [
        File::create(fx.path("new.txt")).map(drop),
        OpenOptions::new()
            .append(true)
            .open(fx.path("keep.txt"))
            .map(drop),
        fs::create_dir(fx.path("d")),
        fs::remove_file(fx.path("keep.txt")),
        fs::rename(fx.path("keep.txt"), fx.path("k2")),
    ];
    for r in refused {
        assert_eq!(errno(&r.unwrap_err()), libc::EROFS);
    }
    assert_eq!(fx.moto.get(&fx.bucket, "keep.txt"), b"data");
}

/// SEMANTICS "Mounting": unmount works while a file is open (lazily) and leaves nothing.
#[test]
fn unmount_with_an_open_file_detaches() {
    let mut fx = setup();
    fs::write(fx.path("f"), b"1").unwrap();
    let mut open = File::open(fx.path("f")).unwrap();
    let mount = fx.mount.take().unwrap();
    mount.unmount().unwrap();
    assert!(!is_mounted(fx.dir.path()));
    let mut s = String::new();
    let _ = open.read_to_string(&mut s);
    let _ = open.seek(SeekFrom::Start(0));
}

/// SEMANTICS "Operations" (read): random and backwards reads get exactly the right bytes,
/// also after a sequential stream started.
#[test]
fn random_and_sequential_reads_return_the_right_bytes() {
    let fx = setup();
    let data = pattern(20 * MIB + 12_345, 21);
    fx.moto.py(&["put", &fx.bucket, "seed", "x"]);
    fs::write(fx.path("r.bin"), &data).unwrap();
    let f = File::open(fx.path("r.bin")).unwrap();
    let mut buf = vec![0u8; 300_000];
    for &off in &[0usize, 131_072, 19 * MIB, 5, 7 * MIB + 3, 20 * MIB, 1 << 20] {
        let n = f.read_at(&mut buf, off as u64).unwrap();
        let want = &data[off..(off + buf.len()).min(data.len())];
        assert_eq!(&buf[..n], want, "at offset {off}");
    }
    assert_eq!(f.read_at(&mut buf, data.len() as u64).unwrap(), 0);
}

/// SEMANTICS "Operations" (rename of a file): renaming a file that is still open for
/// writing commits what was written, and later writes go to the new name.
#[test]
fn rename_while_open_for_writing_keeps_writing_to_the_new_name() {
    let fx = setup();
    let mut f = File::create(fx.path("draft.tmp")).unwrap();
    f.write_all(b"part one;").unwrap();
    fs::rename(fx.path("draft.tmp"), fx.path("final.txt")).unwrap();
    f.write_all(b"part two").unwrap();
    close(f).unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "final.txt"), b"part one;part two");
    assert!(fx.moto.stat(&fx.bucket, "draft.tmp").is_null());
}

/// SEMANTICS "unlink": removing a file that is still open for writing deletes the object,
/// and closing the file afterwards does not bring it back (as on a local filesystem).
#[test]
fn unlink_of_an_open_file_is_not_undone_by_its_close() {
    let fx = setup();
    let mut f = File::create(fx.path("gone.txt")).unwrap();
    f.write_all(b"first").unwrap();
    f.sync_all().unwrap();
    assert_eq!(fx.moto.get(&fx.bucket, "gone.txt"), b"first");
    fs::remove_file(fx.path("gone.txt")).unwrap();
    f.write_all(b" and more").unwrap();
    close(f).expect("close succeeds");
    assert!(fx.moto.stat(&fx.bucket, "gone.txt").is_null());
    assert!(!fx.path("gone.txt").exists());
}
