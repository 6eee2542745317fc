//! [`MountConfig`]: everything one mount needs, validated before anything is mounted.

use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::Credentials;
use crate::error::ConfigError;

/// S3's minimum part size (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Where the mode, owner and times an entry shows come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Attributes {
    /// Stored per object as `x-amz-meta-*` (s3fs-fuse's format): chmod, chown and utimes
    /// persist, and a listing fetches each entry's attributes (HEADs, `listing_concurrency`
    /// at a time). The mount's modes and owner stand in for objects without them.
    #[default]
    Stored,
    /// The mount's `file_mode`/`dir_mode`/`uid`/`gid` for every entry and `Last-Modified` as
    /// every time (goofys, mountpoint-s3): a listing needs no request per entry, objects are
    /// written without metadata, and chmod/chown to other values are refused.
    Uniform,
}

/// How a sequential reader's data is fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadStrategy {
    /// Concurrent ranged GETs of 8 MiB parts ahead of the reader (S3, MinIO and every server
    /// whose ranged GET reads only its range).
    #[default]
    Ranged,
    /// One streamed GET per sequential reader: for servers whose every ranged GET costs a
    /// read of the whole object (moto, LocalStack), where many parts cost many such reads.
    Streamed,
}

/// How one bucket (or prefix of it) is mounted. Built by the caller; this crate never reads
/// the environment or argv.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix that becomes the mount's root (e.g. `team/a`); empty for the whole bucket.
    pub prefix: String,
    /// Endpoint URL; `None` means AWS (`https://s3.<region>.amazonaws.com`).
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// Credentials; `None` sends unsigned (anonymous) requests.
    pub credentials: Option<Credentials>,
    /// How long a file's size and mtime are trusted without asking S3 again.
    pub stat_cache_ttl: Duration,
    /// How long "this name is a file / a directory / absent" is trusted.
    pub type_cache_ttl: Duration,
    /// Stored (per object) or uniform attributes.
    pub attributes: Attributes,
    /// HEADs in flight while a listing fetches stored attributes.
    pub listing_concurrency: usize,
    /// Permission bits of directories without stored ones (every directory when uniform).
    pub dir_mode: u16,
    /// Permission bits of files without stored ones (every file when uniform).
    pub file_mode: u16,
    /// Owner of entries without a stored one (every entry when uniform).
    pub uid: u32,
    /// Group of entries without a stored one (every entry when uniform).
    pub gid: u32,
    /// Let users other than the mounting one use the mount (FUSE `allow_other`).
    pub allow_other: bool,
    /// Refuse every change with `EROFS`.
    pub read_only: bool,
    /// Multipart part size; also the write buffer per open file.
    pub part_size: usize,
    /// Parts uploaded concurrently per open file (memory: `part_size` × this, per file).
    pub upload_concurrency: usize,
    /// How far a sequential reader's prefetch may run ahead of it, in bytes (rounded down to
    /// whole 8 MiB parts, at least one; each part is one ranged GET, all in flight at once).
    pub readahead: usize,
    /// What all prefetched parts ahead of their readers may hold together, in bytes; past it
    /// readers fetch only the parts they read.
    pub read_memory: usize,
    /// Ranged parts (the default) or one streamed GET per sequential reader.
    pub read_strategy: ReadStrategy,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// The longest one request may take, all retries included (copies and multipart
    /// completions: ten times this).
    pub operation_timeout: Duration,
    /// FUSE worker threads.
    pub fuse_threads: usize,
    /// Where staging files for in-place edits go; `None` = the system temp dir.
    pub staging_dir: Option<PathBuf>,
    /// Where the mount records its multipart uploads in progress, so that the next mount of
    /// the bucket aborts those a killed mount left; `None` = `<temp dir>/bulkhead-s3fs-<euid>`.
    pub state_dir: Option<PathBuf>,
}

impl Default for MountConfig {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            credentials: None,
            stat_cache_ttl: Duration::from_secs(1),
            type_cache_ttl: Duration::from_secs(1),
            attributes: Attributes::Stored,
            listing_concurrency: 32,
            dir_mode: 0o755,
            file_mode: 0o644,
            uid: 0,
            gid: 0,
            allow_other: false,
            read_only: false,
            part_size: 8 * 1024 * 1024,
            upload_concurrency: 8,
            readahead: 64 * 1024 * 1024,
            read_memory: 128 * 1024 * 1024,
            read_strategy: ReadStrategy::Ranged,
            request_timeout: Duration::from_secs(60),
            operation_timeout: crate::client::DEFAULT_OPERATION_TIMEOUT,
            fuse_threads: 8,
            staging_dir: None,
            state_dir: None,
        }
    }
}

impl MountConfig {
    /// Checks every field; returns the first problem.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.bucket;
        let ok_bucket = (3..=63).contains(&b.len())
            && b.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !b.starts_with(['-', '.'])
            && !b.ends_with(['-', '.']);
        if !ok_bucket {
            return Err(ConfigError::Bucket(b.clone()));
        }
        if let Some(e) = &self.endpoint {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.trim_end_matches('/').contains('/')) {
                return Err(ConfigError::Endpoint(e.clone()));
            }
        }
        if self.part_size < MIN_PART_SIZE || self.part_size > 512 * 1024 * 1024 {
            return Err(ConfigError::Range {
                name: "part_size",
                rule: "between 5 MiB and 512 MiB",
            });
        }
        if self.upload_concurrency == 0 || self.upload_concurrency > 64 {
            return Err(ConfigError::Range {
                name: "upload_concurrency",
                rule: "between 1 and 64",
            });
        }
        if self.readahead < 128 * 1024 || self.readahead > 256 * 1024 * 1024 {
            return Err(ConfigError::Range {
                name: "readahead",
                rule: "between 128 KiB and 256 MiB",
            });
        }
        if self.read_memory < 8 * 1024 * 1024 || self.read_memory > 16 * 1024 * 1024 * 1024 {
            return Err(ConfigError::Range {
                name: "read_memory",
                rule: "between 8 MiB and 16 GiB",
            });
        }
        if self.listing_concurrency == 0 || self.listing_concurrency > 256 {
            return Err(ConfigError::Range {
                name: "listing_concurrency",
                rule: "between 1 and 256",
            });
        }
        if self.fuse_threads == 0 || self.fuse_threads > 256 {
            return Err(ConfigError::Range {
                name: "fuse_threads",
                rule: "between 1 and 256",
            });
        }
        if self.dir_mode > 0o7777 || self.file_mode > 0o7777 {
            return Err(ConfigError::Range {
                name: "dir_mode/file_mode",
                rule: "at most 0o7777",
            });
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::Range {
                name: "request_timeout",
                rule: "greater than zero",
            });
        }
        if self.operation_timeout.is_zero() {
            return Err(ConfigError::Range {
                name: "operation_timeout",
                rule: "greater than zero",
            });
        }
        Ok(())
    }

    /// Whether attributes are uniform (nothing is read from or written to object metadata).
    pub fn uniform(&self) -> bool {
        self.attributes == Attributes::Uniform
    }

    /// The endpoint URL in use.
    pub fn endpoint_url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region))
    }

    /// The prefix as a key prefix: no leading `/`, one trailing `/` unless empty.
    pub fn key_prefix(&self) -> String {
        let p = self.prefix.trim_matches('/');
        if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_values() {
        let mut c = MountConfig {
            bucket: "my-bucket".into(),
            ..MountConfig::default()
        };
        assert!(c.validate().is_ok());
        c.endpoint = Some("ftp://x".into());
        assert!(matches!(c.validate(), Err(ConfigError::Endpoint(_))));
        c.endpoint = Some("http://127.0.0.1:9000".into());
        assert!(c.validate().is_ok());
        c.part_size = 1024;
        assert!(c.validate().is_err());
        c.part_size = MIN_PART_SIZE;
        c.bucket = "Bad_Bucket".into();
        assert!(matches!(c.validate(), Err(ConfigError::Bucket(_))));
    }

    #[test]
    fn prefix_is_normalized() {
        let mut c = MountConfig::default();
        assert_eq!(c.key_prefix(), "");
        c.prefix = "/a/b/".into();
        assert_eq!(c.key_prefix(), "a/b/");
    }
}
