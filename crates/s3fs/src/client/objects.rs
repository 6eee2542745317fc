//! Single-object requests: HEAD, ranged GET, PUT, DELETE, server-side copy.

use std::time::SystemTime;

use bytes::Bytes;
use reqwest::Method;

use super::meta::Meta;
use super::{Req, S3Client, sigv4};
use crate::error::S3Error;

/// What HEAD tells about an object.
#[derive(Clone, Debug)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// Last-Modified.
    pub mtime: SystemTime,
    /// The POSIX attributes stored with it (none for objects of other S3 clients).
    pub meta: Meta,
    /// The ETag, without its quotes (empty when the server sent none).
    pub etag: String,
    /// Whether the server's clock (the response's `Date`) was at least [`SETTLED`] past
    /// Last-Modified: any later change of the object then carries a later Last-Modified,
    /// so an object listed with this ETag, size and Last-Modified still has this `meta`.
    pub settled: bool,
}

/// How far the server's `Date` must be past Last-Modified for [`ObjectMeta::settled`] (a
/// margin for the clocks of a distributed service's front ends).
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

impl S3Client {
    /// HEAD `key`. `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// Anything but a 404.
    pub async fn head_object(&self, key: &str) -> Result<Option<ObjectMeta>, S3Error> {
        match self.send(Req::new(Method::HEAD, Some(key))).await {
            Ok(resp) => {
                let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
                let size = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .ok_or(S3Error::Malformed {
                        what: "HEAD without content-length",
                    })?;
                let mtime = header("last-modified")
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .unwrap_or_else(SystemTime::now);
                let meta = Meta::from_headers(resp.headers());
                let etag = header("etag").unwrap_or("").trim_matches('"').to_string();
                let settled = header("date")
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .and_then(|date| date.duration_since(mtime).ok())
                    .is_some_and(|past| past >= SETTLED);
                Ok(Some(ObjectMeta {
                    size,
                    mtime,
                    meta,
                    etag,
                    settled,
                }))
            }
            Err(S3Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET bytes `[start, start + len)` of `key` (fewer at the end of the object).
    ///
    /// # Errors
    /// [`S3Error::NotFound`] when the object is gone; network and service errors.
    pub async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, S3Error> {
        self.get_range_into(key, start, len, Vec::new())
            .await
            .map(Bytes::from)
    }

    /// [`Self::get_range`] into `buf` (cleared first; its capacity is reused): the body is
    /// copied chunk by chunk into memory already faulted in, rather than collected into a
    /// new allocation per range. Returns the buffer, holding what the server sent.
    ///
    /// # Errors
    /// As [`Self::get_range`].
    pub async fn get_range_into(
        &self,
        key: &str,
        start: u64,
        len: u64,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, S3Error> {
        buf.clear();
        if len == 0 {
            return Ok(buf);
        }
        let mut req = Req::new(Method::GET, Some(key));
        req.headers
            .push(("range", format!("bytes={start}-{}", start + len - 1)));
        // The body's reading too is within the deadline: a server that sends the headers and
        // then stalls must not hold the read.
        self.within_deadline(async {
            let mut resp = match self.send(req).await {
                Ok(r) => r,
                // 416: the range starts at or past the end of the object.
                Err(S3Error::Service { status: 416, .. }) => return Ok(buf),
                Err(e) => return Err(e),
            };
            buf.reserve_exact(usize::try_from(len).unwrap_or(0));
            while let Some(chunk) = resp.chunk().await.map_err(S3Error::Network)? {
                // A server that ignores the range must not grow the buffer to the object.
                if (buf.len() + chunk.len()) as u64 > len {
                    return Err(S3Error::Malformed {
                        what: "a ranged GET answered with more than the range",
                    });
                }
                buf.extend_from_slice(&chunk);
            }
            crate::stats::downloaded(buf.len());
            Ok(buf)
        })
        .await
    }

    /// GET `key` from byte `start` to the end, as a response whose body is read as a stream.
    ///
    /// # Errors
    /// [`S3Error::NotFound`] when the object is gone; network and service errors.
    pub async fn get_from(&self, key: &str, start: u64) -> Result<reqwest::Response, S3Error> {
        let mut req = Req::new(Method::GET, Some(key));
        if start > 0 {
            req.headers.push(("range", format!("bytes={start}-")));
        }
        self.send(req).await
    }

    /// PUT `key` with `body` in one request.
    ///
    /// # Errors
    /// Network and service errors; on error the object is unchanged or absent.
    pub async fn put_object(&self, key: &str, body: Bytes) -> Result<(), S3Error> {
        self.put_object_meta(key, body, &Meta::default()).await
    }

    /// PUT `key` with `body` and the attributes `meta`, in one request.
    ///
    /// # Errors
    /// Network and service errors; on error the object is unchanged or absent.
    pub async fn put_object_meta(
        &self,
        key: &str,
        body: Bytes,
        meta: &Meta,
    ) -> Result<(), S3Error> {
        let mut req = Req::new(Method::PUT, Some(key));
        req.amz_headers.extend(meta.headers());
        req.body = Some(body);
        self.send(req).await.map(drop)
    }

    /// Replaces the attributes of `key` (a CopyObject onto itself with the `REPLACE`
    /// metadata directive); the content is unchanged.
    ///
    /// # Errors
    /// [`S3Error::NotFound`] when `key` does not exist; network and service errors.
    pub async fn replace_meta(&self, key: &str, meta: &Meta) -> Result<(), S3Error> {
        self.copy_with(key, key, Some(meta)).await
    }

    /// DELETE `key`; succeeds when it did not exist.
    ///
    /// # Errors
    /// Network and service errors.
    pub async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        match self.send(Req::new(Method::DELETE, Some(key))).await {
            Ok(_) | Err(S3Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Server-side copy of `from` to `to` (objects up to 5 GiB).
    ///
    /// # Errors
    /// [`S3Error::NotFound`] when `from` does not exist; network and service errors.
    pub async fn copy_object(&self, from: &str, to: &str) -> Result<(), S3Error> {
        self.copy_with(from, to, None).await
    }

    /// Server-side copy of `from` to `to` (objects up to 5 GiB) that stores `meta` instead
    /// of the source's metadata.
    ///
    /// # Errors
    /// [`S3Error::NotFound`] when `from` does not exist; network and service errors.
    pub async fn copy_object_meta(&self, from: &str, to: &str, meta: &Meta) -> Result<(), S3Error> {
        self.copy_with(from, to, Some(meta)).await
    }

    /// Copy keeping the source's metadata (`None`) or replacing it.
    async fn copy_with(&self, from: &str, to: &str, meta: Option<&Meta>) -> Result<(), S3Error> {
        let mut req = Req::new(Method::PUT, Some(to));
        req.amz_headers.push((
            "x-amz-copy-source".into(),
            format!("/{}/{}", self.bucket, sigv4::encode_key(from)),
        ));
        if let Some(meta) = meta {
            req.amz_headers
                .push(("x-amz-metadata-directive".into(), "REPLACE".into()));
            req.amz_headers.extend(meta.headers());
        }
        // A copy can fail after the 200 status line: the error is then in the body.
        self.send_for_body(req, true).await.map(drop)
    }
}
