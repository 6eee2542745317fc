//! The FUSE adapter: each callback runs one [`S3Fs`] operation on the mount's runtime
//! (blocking this FUSE worker thread), maps its error to an errno once, and logs failures.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};
use tracing::Instrument;

use crate::client::meta::from_epoch;
use crate::error::FsError;
use crate::fs::inodes::Kind;
use crate::fs::{Attr, MetaChange, S3Fs};

/// The error and its sources, `: `-separated, for one log field.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// fuser's view of the filesystem.
pub(crate) struct FuseAdapter {
    fs: Arc<S3Fs>,
    rt: tokio::runtime::Handle,
    ttl: Duration,
}

impl FuseAdapter {
    pub(crate) fn new(fs: Arc<S3Fs>, rt: tokio::runtime::Handle) -> Self {
        let ttl = fs.cfg.stat_cache_ttl;
        Self { fs, rt, ttl }
    }

    fn run<T>(
        &self,
        op: &'static str,
        ino: u64,
        f: impl std::future::Future<Output = Result<T, FsError>>,
    ) -> Result<T, Errno> {
        let span = tracing::debug_span!("fuse", op, ino);
        self.rt
            .block_on(f.instrument(span))
            .map_err(|e| errno(op, ino, &e))
    }

    /// The attributes the kernel sees: what the object stores, else the mount's modes and
    /// owner and its Last-Modified.
    fn attr(&self, a: &Attr) -> FileAttr {
        let (kind, default_perm, nlink, size) = match a.kind {
            Kind::Dir => (FileType::Directory, self.fs.cfg.dir_mode, 2, 4096),
            Kind::File => (
                file_type(a.meta.file_type()),
                self.fs.cfg.file_mode,
                1,
                a.size,
            ),
        };
        let m = a.meta;
        let perm = m
            .mode
            .and_then(|v| u16::try_from(v & 0o7777).ok())
            .unwrap_or(default_perm);
        let mtime = m.mtime.map_or(a.mtime, from_epoch);
        FileAttr {
            ino: INodeNo(a.ino),
            size,
            blocks: size.div_ceil(512),
            atime: m.atime.map_or(mtime, from_epoch),
            mtime,
            ctime: m.ctime.map_or(mtime, from_epoch),
            crtime: mtime,
            kind,
            perm,
            nlink,
            uid: m.uid.unwrap_or(self.fs.cfg.uid),
            gid: m.gid.unwrap_or(self.fs.cfg.gid),
            rdev: m.rdev.unwrap_or(0),
            blksize: 4096,
            flags: 0,
        }
    }
}

/// The FUSE type of a non-directory object from its stored type bits (regular when none).
fn file_type(ty: u32) -> FileType {
    match ty {
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

/// Maps an error to its errno, logging real failures (not "not found") with the chain.
fn errno(op: &'static str, ino: u64, e: &FsError) -> Errno {
    if e.is_failure() {
        tracing::error!(op, ino, error = %chain(e), "filesystem operation failed");
    } else {
        tracing::debug!(op, ino, error = %e, "filesystem operation refused");
    }
    Errno::from_i32(e.errno())
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Bigger requests mean fewer round trips; the kernel clamps what it cannot do.
        let _ = config.set_max_write(1 << 20);
        if let Err(max) = config.set_max_readahead(1 << 20) {
            // The kernel offers its block-device readahead (128 KiB unless raised); ask for
            // as much as it allows.
            let _ = config.set_max_readahead(max);
            tracing::debug!(max, "kernel readahead is capped below 1 MiB");
        }
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC);
        // Listings hand the kernel each entry's attributes: no lookup per entry for `ls -l`.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_DO_READDIRPLUS);
        Ok(())
    }

    /// The session ends (unmounted): directory times still pending are written.
    fn destroy(&mut self) {
        let fs = self.fs.clone();
        let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.rt.block_on(async {
                fs.release_all().await;
                fs.flush_dir_times().await;
            });
        }));
        if flushed.is_err() {
            tracing::warn!(
                "open files and directory times not stored: the runtime was already stopped"
            );
        }
    }

    /// The kernel dropped an inode from its cache: it leaves the inode table.
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.run("lookup", parent.0, self.fs.lookup(parent.0, name)) {
            Ok(a) => {
                self.fs.looked_up(&a, parent.0, name);
                reply.entry(&self.ttl, &self.attr(&a), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.run("getattr", ino.0, self.fs.getattr(ino.0)) {
            Ok(a) => reply.attr(&self.ttl, &self.attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = &self.fs;
        let time = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        let change = MetaChange {
            mode,
            uid,
            gid,
            atime: atime.map(time),
            mtime: mtime.map(time),
        };
        let r = self.run("setattr", ino.0, async {
            if !change.is_empty() || size.is_some() {
                fs.check_writable()?;
            }
            if let Some(size) = size {
                fs.set_size(ino.0, size).await?;
            }
            // The kernel checked the caller may make these changes (default_permissions).
            if !change.is_empty() {
                fs.set_meta(ino.0, change).await?;
            }
            fs.getattr(ino.0).await
        });
        match r {
            Ok(a) => reply.attr(&self.ttl, &self.attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let fs = &self.fs;
        let r = self.run("mknod", parent.0, async {
            if mode & libc::S_IFMT != libc::S_IFREG && mode & libc::S_IFMT != 0 {
                let (uid, gid) = (req.uid(), req.gid());
                return fs.mknod_special(parent.0, name, mode, rdev, uid, gid).await;
            }
            let meta = fs.new_meta(Kind::File, mode, req.uid(), req.gid());
            let (attr, fh) = fs.create(parent.0, name, meta).await?;
            let r = fs.fsync(fh).await;
            fs.release(fh).await;
            r.map(|()| attr)
        });
        match r {
            Ok(a) => {
                self.fs.looked_up(&a, parent.0, name);
                reply.entry(&self.ttl, &self.attr(&a), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let meta = self.fs.new_meta(Kind::Dir, mode, req.uid(), req.gid());
        match self.run("mkdir", parent.0, self.fs.mkdir(parent.0, name, meta)) {
            Ok(a) => {
                self.fs.looked_up(&a, parent.0, name);
                reply.entry(&self.ttl, &self.attr(&a), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.run("unlink", parent.0, self.fs.unlink(parent.0, name)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.run("rmdir", parent.0, self.fs.rmdir(parent.0, name)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        use std::os::unix::ffi::OsStrExt;
        let target = target.as_os_str().as_bytes();
        let f = self
            .fs
            .symlink(parent.0, link_name, target, req.uid(), req.gid());
        match self.run("symlink", parent.0, f) {
            Ok(a) => {
                self.fs.looked_up(&a, parent.0, link_name);
                reply.entry(&self.ttl, &self.attr(&a), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.run("readlink", ino.0, self.fs.readlink(ino.0)) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r: Result<(), Errno> = self.run("link", ino.0, async {
            self.fs.check_writable()?;
            Err(FsError::Unsupported)
        });
        reply.error(r.err().unwrap_or(Errno::EPERM));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let fs = &self.fs;
        let r = self.run("rename", parent.0, async {
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                fs.check_writable()?;
                return Err(FsError::Invalid);
            }
            let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
            fs.rename(parent.0, name, newparent.0, newname, noreplace)
                .await
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.run("open", ino.0, self.fs.open(ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.run("read", ino.0, self.fs.read(ino.0, fh.0, offset, size)) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.run("write", ino.0, self.fs.write(fh.0, offset, data, req.pid())) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.run("flush", ino.0, self.fs.flush(fh.0, req.pid())) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = &self.fs;
        let _ = self.run("release", ino.0, async {
            fs.release(fh.0).await;
            Ok(())
        });
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.run("fsync", ino.0, self.fs.fsync(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno("opendir", ino.0, &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.run(
            "readdir",
            ino.0,
            self.fs.readdir(ino.0, fh.0, offset, false),
        ) {
            Ok(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    let kind = self.attr(&e.attr).kind;
                    if reply.add(INodeNo(e.attr.ino), offset + i as u64 + 1, kind, &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    /// readdir with each entry's attributes, so that `ls -l` needs no lookup per entry.
    fn readdirplus(
        &self,
        _req: &Request,
        dir: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let f = self.fs.readdir(dir.0, fh.0, offset, true);
        match self.run("readdirplus", dir.0, f) {
            Ok(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    let attr = self.attr(&e.attr);
                    let at = offset + i as u64 + 1;
                    let ino = INodeNo(e.attr.ino);
                    if reply.add(ino, at, &e.name, &self.ttl, &attr, Generation(0)) {
                        break;
                    }
                    // The kernel takes a reference on every entry but `.` and `..`.
                    if e.name != "." && e.name != ".." {
                        self.fs.looked_up(&e.attr, dir.0, OsStr::new(&e.name));
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.take_handle(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    /// No ioctls: ENOTTY, what a disk filesystem answers for the terminal ioctl that every
    /// Python `open()` sends (`isatty`). The kernel does not remember the answer, so the
    /// library's default (a warning per call) filled the log with one line per open.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // S3 has no capacity: report a large, constant amount (1 PiB in 4 KiB blocks).
        const BLOCKS: u64 = 1 << 38;
        const FILES: u64 = 1 << 30;
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, FILES, FILES, 4096, 255, 4096);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        // No extended attributes on S3; ENOSYS makes the kernel stop asking.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let meta = self.fs.new_meta(Kind::File, mode, req.uid(), req.gid());
        match self.run("create", parent.0, self.fs.create(parent.0, name, meta)) {
            Ok((a, fh)) => {
                self.fs.looked_up(&a, parent.0, name);
                reply.created(
                    &self.ttl,
                    &self.attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                );
            }
            Err(e) => reply.error(e),
        }
    }
}
