//! The FUSE adapter: each callback runs one [`S3Fs`] operation on the mount's runtime
//! (blocking this FUSE worker thread), maps its error to an errno once, and logs failures.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use tracing::Instrument;

use crate::error::FsError;
use crate::fs::inodes::Kind;
use crate::fs::{Attr, S3Fs};

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

    fn attr(&self, a: &Attr) -> FileAttr {
        let (kind, perm, nlink, size) = match a.kind {
            Kind::Dir => (FileType::Directory, self.fs.cfg.dir_mode, 2, 4096),
            Kind::File => (FileType::RegularFile, self.fs.cfg.file_mode, 1, a.size),
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size,
            blocks: size.div_ceil(512),
            atime: a.mtime,
            mtime: a.mtime,
            ctime: a.mtime,
            crtime: a.mtime,
            kind,
            perm,
            nlink,
            uid: self.fs.cfg.uid,
            gid: self.fs.cfg.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
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
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.run("lookup", parent.0, self.fs.lookup(parent.0, name)) {
            Ok(a) => reply.entry(&self.ttl, &self.attr(&a), Generation(0)),
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
        let r = self.run("setattr", ino.0, async {
            let changes_meta = mode.is_some()
                || uid.is_some()
                || gid.is_some()
                || atime.is_some()
                || mtime.is_some();
            if changes_meta || size.is_some() {
                fs.check_writable()?;
            }
            if let Some(size) = size {
                fs.set_size(ino.0, size).await?;
            }
            // Mode, owner and times are accepted but not stored: every entry shows the
            // mount's modes and owner (see the semantics table).
            fs.getattr(ino.0).await
        });
        match r {
            Ok(a) => reply.attr(&self.ttl, &self.attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let fs = &self.fs;
        let r = self.run("mknod", parent.0, async {
            if mode & libc::S_IFMT != libc::S_IFREG && mode & libc::S_IFMT != 0 {
                fs.check_writable()?;
                return Err(FsError::Unsupported);
            }
            let (attr, fh) = fs.create(parent.0, name).await?;
            let r = fs.flush(fh).await;
            fs.release(fh).await;
            r.map(|()| attr)
        });
        match r {
            Ok(a) => reply.entry(&self.ttl, &self.attr(&a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.run("mkdir", parent.0, self.fs.mkdir(parent.0, name)) {
            Ok(a) => reply.entry(&self.ttl, &self.attr(&a), Generation(0)),
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
        _req: &Request,
        parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let r: Result<(), Errno> = self.run("symlink", parent.0, async {
            self.fs.check_writable()?;
            Err(FsError::Unsupported)
        });
        reply.error(r.err().unwrap_or(Errno::EPERM));
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
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.run("write", ino.0, self.fs.write(fh.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.run("flush", ino.0, self.fs.flush(fh.0)) {
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
        match self.run("fsync", ino.0, self.fs.flush(fh.0)) {
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
        match self.run("readdir", ino.0, self.fs.readdir(ino.0, fh.0, offset)) {
            Ok(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    let kind = match e.kind {
                        Kind::Dir => FileType::Directory,
                        Kind::File => FileType::RegularFile,
                    };
                    if reply.add(INodeNo(e.ino), offset + i as u64 + 1, kind, &e.name) {
                        break;
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
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.run("create", parent.0, self.fs.create(parent.0, name)) {
            Ok((a, fh)) => reply.created(
                &self.ttl,
                &self.attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}
