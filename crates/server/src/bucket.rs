//! The bucket behind a sandbox's storage, as the server itself reaches it: `bulkhead
//! validate` reads a file a sandbox wrote straight from the bucket (not through the mount),
//! which proves the data reached S3. The keys are the server's and never leave it.

use std::time::Duration;

use bulkhead_s3fs::Credentials;
use bulkhead_s3fs::client::S3Client;

use crate::audit::Credential;

/// One bucket (or a prefix of it) and how to sign for it.
#[derive(Clone, Debug)]
pub struct BucketAccess {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix of the mount's root (no leading `/`; empty, or ending in `/`).
    pub key_prefix: String,
    /// Endpoint URL (`http(s)://host[:port]`).
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Keys; `None` = anonymous requests.
    pub credentials: Option<Credentials>,
}

/// Reading an object failed.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The client could not be built.
    #[error("cannot build an S3 client: {0}")]
    Client(String),
    /// The object is larger than a read-back may hold in memory.
    #[error("{key} is {size} bytes; reads through the server stop at {max}")]
    TooLarge {
        /// Key.
        key: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The request failed (refused keys, unreachable endpoint, ...).
    #[error("bucket {bucket} at {endpoint}: {message}")]
    Request {
        /// Bucket.
        bucket: String,
        /// Endpoint.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
}

impl BucketAccess {
    /// Normalises a prefix (`/a/b/` → `a/b/`, `` stays ``).
    pub fn normalise_prefix(prefix: &str) -> String {
        let p = prefix.trim_matches('/');
        if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }
    }

    /// The endpoint for `region` when none is given (AWS).
    pub fn aws_endpoint(region: &str) -> String {
        format!("https://s3.{region}.amazonaws.com")
    }

    /// The credentials, each part labelled with `whose` ("the server's storage", ...), for
    /// the leak scan.
    pub fn credentials_for_scan(&self, whose: &str) -> Vec<Credential> {
        self.credentials
            .iter()
            .flat_map(|c| c.parts_for_leak_scan())
            .filter_map(|(what, v)| Credential::new(format!("{whose} {what}"), v))
            .collect()
    }

    fn request_error(&self, e: impl std::fmt::Display) -> BucketError {
        BucketError::Request {
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            message: e.to_string(),
        }
    }

    /// The largest object [`BucketAccess::read`] returns (it is held in memory whole).
    pub const MAX_READ: u64 = 64 << 20;

    /// Reads object `key` (below the prefix) whole; `None` when it does not exist; objects
    /// over [`BucketAccess::MAX_READ`] are refused.
    ///
    /// # Errors
    /// [`BucketError`] when the bucket refuses or cannot be reached.
    pub async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, BucketError> {
        let client = S3Client::new(
            &self.endpoint,
            &self.bucket,
            &self.region,
            self.credentials.clone(),
            Duration::from_secs(30),
        )
        .map_err(|e| BucketError::Client(e.to_string()))?;
        let full = format!("{}{key}", self.key_prefix);
        let Some(meta) = client
            .head_object(&full)
            .await
            .map_err(|e| self.request_error(e))?
        else {
            return Ok(None);
        };
        if meta.size == 0 {
            return Ok(Some(Vec::new()));
        }
        if meta.size > Self::MAX_READ {
            return Err(BucketError::TooLarge {
                key: full,
                size: meta.size,
                max: Self::MAX_READ,
            });
        }
        let body = client
            .get_range(&full, 0, meta.size)
            .await
            .map_err(|e| self.request_error(e))?;
        Ok(Some(body.to_vec()))
    }
}
