//! Multipart upload: create, upload parts, complete, abort.

use bytes::Bytes;
use reqwest::Method;

use super::meta::Meta;
use super::{Req, S3Client, xml_text};
use crate::error::S3Error;

impl S3Client {
    /// Starts a multipart upload of `key` (with the attributes `meta`) and returns its upload id.
    ///
    /// # Errors
    /// Network, access and service errors.
    pub async fn create_multipart(&self, key: &str, meta: &Meta) -> Result<String, S3Error> {
        let mut req = Req::new(Method::POST, Some(key));
        req.amz_headers.extend(meta.headers());
        req.query.push(("uploads".into(), String::new()));
        let body = self.send_for_body(req, false).await?;
        xml_text(&body, "UploadId").ok_or(S3Error::Malformed {
            what: "CreateMultipartUpload without UploadId",
        })
    }

    /// Uploads part `number` (1-based) and returns its ETag.
    ///
    /// # Errors
    /// Network, access and service errors.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, S3Error> {
        let mut req = Req::new(Method::PUT, Some(key));
        req.query.push(("partNumber".into(), number.to_string()));
        req.query.push(("uploadId".into(), upload_id.into()));
        req.body = Some(body);
        let resp = self.send(req).await?;
        resp.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(S3Error::Malformed {
                what: "UploadPart without ETag",
            })
    }

    /// Makes part `number` of the upload a server-side copy of bytes `start..end` of the
    /// object `source` (no data goes through this client) and returns the part's ETag.
    ///
    /// # Errors
    /// [`S3Error::NotFound`] when `source` is gone; a service error when the range is no
    /// longer inside it or the server does not copy parts; network errors.
    pub async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        source: &str,
        start: u64,
        end: u64,
    ) -> Result<String, S3Error> {
        let mut req = Req::new(Method::PUT, Some(key));
        req.query.push(("partNumber".into(), number.to_string()));
        req.query.push(("uploadId".into(), upload_id.into()));
        req.amz_headers.push((
            "x-amz-copy-source".into(),
            format!("/{}/{}", self.bucket, super::sigv4::encode_key(source)),
        ));
        req.amz_headers.push((
            "x-amz-copy-source-range".into(),
            format!("bytes={start}-{}", end - 1),
        ));
        let body = self.send_for_body(req, true).await?;
        xml_text(&body, "ETag").ok_or(S3Error::Malformed {
            what: "UploadPartCopy without ETag",
        })
    }

    /// Completes the upload from `(number, etag)` pairs in order; only then does the object
    /// exist (or get replaced).
    ///
    /// # Errors
    /// Network, access and service errors, including an error reported in a 200 body.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), S3Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            let etag = etag.replace('&', "&amp;").replace('"', "&quot;");
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut req = Req::new(Method::POST, Some(key));
        req.query.push(("uploadId".into(), upload_id.into()));
        req.body = Some(Bytes::from(xml));
        self.send_for_body(req, true).await.map(drop)
    }

    /// Aborts the upload, discarding its parts. Best effort: errors are only logged by the
    /// caller.
    ///
    /// # Errors
    /// Network and service errors.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let mut req = Req::new(Method::DELETE, Some(key));
        req.query.push(("uploadId".into(), upload_id.into()));
        match self.send(req).await {
            Ok(_) | Err(S3Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
