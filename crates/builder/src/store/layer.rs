//! Adding a layer tarball from elsewhere ([`ImageStore::add_layer_tar`]), and committing
//! blobs and unpacked layers into place.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::digest::{HashReader, HashWriter};
use super::pack::{PackOptions, Packed, pack};
use super::unpack::unpack;
use super::{
    Digest, ImageStore, LayerInfo, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD, StoreError, nofollow,
};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a layer tarball (or an archive) is compressed, told by its first bytes as registries
/// and `docker save` serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// Zstandard (one or more frames), as `skopeo --dest-compress-format zstd` and BuildKit's
    /// `compression=zstd` push them.
    Zstd,
}

impl Compression {
    /// Reads the magic of `path`.
    pub(crate) fn of(path: &Path) -> Result<Self, StoreError> {
        let mut file = File::open(path).map_err(StoreError::io("opening", path))?;
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            let n = file
                .read(&mut magic[got..])
                .map_err(StoreError::io("reading", path))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(if got >= 2 && magic[..2] == GZIP_MAGIC {
            Compression::Gzip
        } else if got == 4 && magic == ZSTD_MAGIC {
            Compression::Zstd
        } else {
            Compression::None
        })
    }

    /// A compression this store cannot decode, named by `path`'s magic (`bzip2`, `xz`).
    pub(crate) fn unsupported(path: &Path) -> Result<Option<&'static str>, StoreError> {
        let mut file = File::open(path).map_err(StoreError::io("opening", path))?;
        let mut magic = [0u8; 6];
        let n = file
            .read(&mut magic)
            .map_err(StoreError::io("reading", path))?;
        Ok(if n >= 3 && &magic[..3] == b"BZh" {
            Some("bzip2")
        } else if n == 6 && magic == [0xfd, b'7', b'z', b'X', b'Z', 0] {
            Some("xz")
        } else {
            None
        })
    }

    /// Whether `path` is a tar archive, plain or compressed this way: its first header
    /// carries the ustar magic (POSIX, GNU and pax archives all do).
    pub(crate) fn is_tar(self, path: &Path) -> Result<bool, StoreError> {
        let file = File::open(path).map_err(StoreError::io("opening", path))?;
        let mut reader = match self.decoder(file, path) {
            Ok(r) => r,
            Err(_) => return Ok(false),
        };
        let mut header = [0u8; 512];
        let mut got = 0;
        while got < header.len() {
            match reader.read(&mut header[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        Ok(got == header.len() && &header[257..262] == b"ustar")
    }

    /// The OCI media type of a layer blob compressed this way.
    pub(crate) fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_LAYER_TAR,
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
    }

    /// `reader` with the decompression in front of it.
    pub(crate) fn decoder<'a>(
        self,
        reader: impl Read + 'a,
        path: &Path,
    ) -> Result<Box<dyn Read + 'a>, StoreError> {
        let reader = BufReader::new(reader);
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(ZstdFrames::new(reader).map_err(|e| {
                StoreError::io("reading the zstd stream", path)(io::Error::other(e))
            })?),
        })
    }
}

/// A Zstandard stream of one or more frames: ruzstd's decoder reads one frame, and a
/// stream may hold several (concatenated `zstd` output, skippable frames between).
struct ZstdFrames<R: BufRead> {
    inner: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(reader: R) -> Result<Self, ruzstd::decoding::errors::FrameDecoderError> {
        Ok(Self {
            inner: Some(ruzstd::decoding::StreamingDecoder::new(reader)?),
        })
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(dec) = self.inner.as_mut() {
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done: another may follow on the same reader.
            let Some(dec) = self.inner.take() else {
                break;
            };
            let mut rest = dec.into_inner();
            if rest.fill_buf()?.is_empty() {
                break;
            }
            self.inner =
                Some(ruzstd::decoding::StreamingDecoder::new(rest).map_err(io::Error::other)?);
        }
        Ok(0)
    }
}

impl ImageStore {
    /// Stores a layer tarball (plain, gzip or zstd, told by its magic) and unpacks it.
    ///
    /// With `expected`, the blob's digest must equal it, or nothing is stored
    /// ([`StoreError::DigestMismatch`]). A blob already stored with its layer unpacked is
    /// reused without reading `tar` again (when `expected` names it) or unpacking again.
    /// Afterwards the blob is at [`ImageStore::blob_path`] and the layer at
    /// [`ImageStore::layer_dir`]. Unsafe entries are refused ([`StoreError::UnsafeEntry`]),
    /// leaving nothing behind.
    #[tracing::instrument(level = "debug", skip_all, fields(path = %tar.display()))]
    pub fn add_layer_tar(
        &self,
        tar: &Path,
        expected: Option<&Digest>,
    ) -> Result<LayerInfo, StoreError> {
        let compression = Compression::of(tar)?;
        let media_type = compression.layer_media_type();
        if let Some(d) = expected
            && let Some(info) = self.known_layer(d, media_type)?
        {
            return Ok(info);
        }
        // The blob: copied into tmp/ while hashed.
        let tmp_blob = self.tmp_path("blob");
        let copied = self.copy_hashed(tar, &tmp_blob);
        let (digest, size) = match copied {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_blob);
                return Err(e);
            }
        };
        if let Some(expected) = expected
            && expected != &digest
        {
            let _ = std::fs::remove_file(&tmp_blob);
            return Err(StoreError::DigestMismatch {
                path: tar.to_path_buf(),
                expected: expected.clone(),
                actual: digest,
            });
        }
        let result = self.unpack_blob(&tmp_blob, compression, &digest);
        let diff_id = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_blob);
                return Err(e);
            }
        };
        self.commit_blob(&tmp_blob, &digest)?;
        if compression != Compression::None {
            self.write_diffid(&digest, &diff_id)?;
        }
        tracing::debug!(%diff_id, size, "layer stored");
        Ok(LayerInfo {
            diff_id,
            digest,
            size,
            media_type: media_type.to_string(),
        })
    }

    /// The layer of blob `d` when both are already in the store.
    fn known_layer(&self, d: &Digest, media_type: &str) -> Result<Option<LayerInfo>, StoreError> {
        let blob = self.blob_path(d);
        let Ok(meta) = blob.metadata() else {
            return Ok(None);
        };
        let diff_id = if media_type != MEDIA_TYPE_LAYER_TAR {
            match std::fs::read_to_string(self.diffid_path(d)) {
                Ok(s) => Digest::parse(s.trim())?,
                Err(_) => return Ok(None),
            }
        } else {
            d.clone()
        };
        if !self.has_layer(&diff_id) {
            return Ok(None);
        }
        Ok(Some(LayerInfo {
            diff_id,
            digest: d.clone(),
            size: meta.len(),
            media_type: media_type.to_string(),
        }))
    }

    fn copy_hashed(&self, src: &Path, dst: &Path) -> Result<(Digest, u64), StoreError> {
        let input = File::open(src).map_err(StoreError::io("opening", src))?;
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(StoreError::io("creating", dst))?;
        let mut writer = HashWriter::new(BufWriter::new(out));
        io::copy(&mut BufReader::new(input), &mut writer)
            .map_err(StoreError::io("copying the blob", src))?;
        let (digest, size, out) = writer.finish();
        let file = out
            .into_inner()
            .map_err(|e| StoreError::io("writing", dst)(e.into_error()))?;
        file.sync_all().map_err(StoreError::io("syncing", dst))?;
        Ok((digest, size))
    }

    /// Unpacks the blob at `blob` (unless its layer is already there) and returns its diff_id.
    pub(super) fn unpack_blob(
        &self,
        blob: &Path,
        compression: Compression,
        digest: &Digest,
    ) -> Result<Digest, StoreError> {
        if compression == Compression::None && self.has_layer(digest) {
            return Ok(digest.clone());
        }
        let file = File::open(blob).map_err(StoreError::io("opening", blob))?;
        let reader = compression.decoder(file, blob)?;
        let dir = self.tmp_path("layer");
        self.make_layer_root(&dir)?;
        let unpacked = unpack(HashReader::new(reader), &dir)
            .and_then(|r| r.finish().map_err(StoreError::io("reading", blob)));
        let diff_id = match unpacked {
            Ok((diff_id, _)) => diff_id,
            Err(e) => {
                let _ = nofollow::remove_any(&dir);
                return Err(e);
            }
        };
        self.commit_layer(&dir, &diff_id)?;
        Ok(diff_id)
    }

    fn make_layer_root(&self, dir: &Path) -> Result<(), StoreError> {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dir)
            .map_err(StoreError::io("creating", dir))?;
        // The mode must not depend on the umask: the layer root is the sandbox's `/`.
        nofollow::chmod(dir, 0o755).map_err(StoreError::io("setting the mode of", dir))
    }

    /// Renames a complete blob into place, marked pending like a layer until
    /// [`ImageStore::sync_pending`]; an equal one already there is kept.
    pub(super) fn commit_blob(&self, tmp: &Path, digest: &Digest) -> Result<(), StoreError> {
        let dst = self.blob_path(digest);
        // The same digest is the same bytes: one already in place (and maybe on disk long
        // since) stays, and nothing new needs a mark.
        if dst.is_file() {
            let _ = std::fs::remove_file(tmp);
            return Ok(());
        }
        self.mark_pending(&format!("blob-{}", digest.hex()))?;
        std::fs::rename(tmp, &dst).map_err(|e| {
            let _ = std::fs::remove_file(tmp);
            StoreError::io("storing the blob", &dst)(e)
        })
    }

    /// Renames a complete unpacked layer into place, marked pending until the next
    /// [`ImageStore::sync_pending`] (one flush per build rather than one per step: the
    /// flush cost about half a second a step, most of a RUN step's overhead). When another
    /// writer put the same layer there first, ours is dropped and theirs kept.
    pub(super) fn commit_layer(&self, tmp: &Path, diff_id: &Digest) -> Result<(), StoreError> {
        let dst = self.layer_dir(diff_id);
        let marker = self.mark_pending(diff_id.hex())?;
        match std::fs::rename(tmp, &dst) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = nofollow::remove_any(tmp);
                // Nothing of ours went into place: the layer there is another writer's (with
                // its own mark, if it is not yet on disk).
                let _ = std::fs::remove_file(&marker);
                if dst.is_dir() {
                    Ok(())
                } else {
                    Err(StoreError::io("storing the layer", &dst)(e))
                }
            }
        }
    }

    fn write_diffid(&self, blob: &Digest, diff_id: &Digest) -> Result<(), StoreError> {
        let tmp = self.tmp_path("diffid");
        let dst = self.diffid_path(blob);
        std::fs::write(&tmp, diff_id.as_str()).map_err(StoreError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &dst).map_err(StoreError::io("storing", &dst))
    }

    /// Packs `src` into a new blob file at `dst`: its digest, size, entry count and fixes.
    pub(crate) fn pack_to(
        &self,
        src: &Path,
        opts: &PackOptions<'_>,
        dst: &Path,
    ) -> Result<(Digest, u64, Packed<()>), StoreError> {
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(StoreError::io("creating", dst))?;
        let packed = pack(src, opts, HashWriter::new(BufWriter::new(out)))?;
        let (digest, size, out) = packed.out.finish();
        let mut file = out
            .into_inner()
            .map_err(|e| StoreError::io("writing", dst)(e.into_error()))?;
        // Not synced here: the blob is committed pending, flushed with the build's layers.
        file.flush().map_err(StoreError::io("writing", dst))?;
        let rest = Packed {
            out: (),
            entries: packed.entries,
            fixes: packed.fixes,
        };
        Ok((digest, size, rest))
    }
}
