//! `POST /files`: multipart (one part per file, field `file`) or a raw body to `path`, either
//! optionally gzip-encoded (`Content-Encoding: gzip`). The file is opened and its parents are
//! created as the user ([`crate::identity`]): the user's permissions apply, a symlink is
//! followed as the user's own `open` would, new files and directories are the user's, existing
//! files are truncated and keep their owner; `X-Metadata-*` headers replace previous metadata.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWriteExt, BufReader};
use tokio_util::io::{ReaderStream, StreamReader};

use super::FilesQuery;
use super::auth::{authorize, files_user};
use super::error::FilesError;
use crate::filesystem::entry::{METADATA_XATTR_PREFIX, read_metadata};
use crate::filesystem::ops;
use crate::identity;
use crate::paths;
use crate::state::SharedState;
use crate::sys;
use crate::users::User;

/// One written file in the response array.
#[derive(Debug, Serialize)]
pub struct WrittenFile {
    /// Resolved absolute path.
    pub path: String,
    /// Base name.
    pub name: String,
    /// Always `"file"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The file's metadata after the write.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Uploads one or more files.
#[tracing::instrument(skip_all)]
pub async fn upload(
    State(state): State<SharedState>,
    Query(q): Query<FilesQuery>,
    req: Request,
) -> Response {
    match upload_inner(&state, q, req).await {
        Ok(files) => {
            let body = serde_json::to_string(&files).unwrap_or_else(|_| "[]".to_owned());
            let mut res = (StatusCode::OK, body).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => e.into_response(),
    }
}

async fn upload_inner(
    state: &SharedState,
    q: FilesQuery,
    req: Request,
) -> Result<Vec<WrittenFile>, FilesError> {
    let headers = req.headers().clone();
    authorize(state, &headers, &q, "write")?;
    let user = files_user(state, &q)?;
    let metadata = parse_metadata(&headers)?;
    let workdir = state.settings().default_workdir;
    // `Content-Encoding: gzip` applies to the whole body, multipart or raw.
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let req = if gzip {
        let (parts, body) = req.into_parts();
        let raw = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
        let decoded = async_compression::tokio::bufread::GzipDecoder::new(BufReader::new(raw));
        Request::from_parts(parts, Body::from_stream(ReaderStream::new(decoded)))
    } else {
        req
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();

    if ct.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| FilesError::BadRequest(format!("invalid multipart body: {e}")))?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| FilesError::BadRequest(format!("invalid multipart body: {e}")))?
        {
            if field.name() != Some("file") {
                continue;
            }
            let target = q
                .path
                .clone()
                .or_else(|| field.file_name().map(str::to_owned))
                .unwrap_or_default();
            if target.is_empty() {
                return Err(FilesError::BadRequest(
                    "no path given for uploaded file".to_owned(),
                ));
            }
            let path = paths::resolve(&target, &user, workdir.as_deref());
            if !seen.insert(path.clone()) {
                return Err(FilesError::BadRequest(format!(
                    "path '{}' is given more than once",
                    path.display()
                )));
            }
            let reader = StreamReader::new(field.map_err(std::io::Error::other));
            out.push(write_file(&path, reader, &user, &metadata).await?);
        }
        if out.is_empty() {
            return Err(FilesError::BadRequest(
                "multipart body has no 'file' part".to_owned(),
            ));
        }
        return Ok(out);
    }

    let Some(target) = q.path.clone().filter(|p| !p.is_empty()) else {
        return Err(FilesError::BadRequest(
            "the path query parameter is required for raw uploads".to_owned(),
        ));
    };
    let path = paths::resolve(&target, &user, workdir.as_deref());
    let body =
        StreamReader::new(Body::into_data_stream(req.into_body()).map_err(std::io::Error::other));
    Ok(vec![write_file(&path, body, &user, &metadata).await?])
}

async fn write_file(
    path: &Path,
    mut data: impl AsyncRead + Unpin,
    user: &User,
    metadata: &BTreeMap<String, String>,
) -> Result<WrittenFile, FilesError> {
    let (p, u) = (path.to_owned(), user.clone());
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, FilesError> {
        let _acting = identity::act_as(&u).map_err(|e| FilesError::io("act as user for", &p, e))?;
        if std::fs::metadata(&p).is_ok_and(|m| m.is_dir()) {
            return Err(FilesError::IsDirectory(p));
        }
        if let Some(parent) = p.parent() {
            ops::create_dirs(parent)?;
        }
        std::fs::File::create(&p).map_err(|e| FilesError::io("create", &p, e))
    })
    .await
    .map_err(|e| FilesError::io("create", path, std::io::Error::other(e)))??;
    let mut file = tokio::fs::File::from_std(file);
    tokio::io::copy(&mut data, &mut file).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData
            || e.kind() == std::io::ErrorKind::UnexpectedEof
        {
            FilesError::BadRequest(format!("invalid upload body: {e}"))
        } else {
            FilesError::io("write", path, e)
        }
    })?;
    file.flush()
        .await
        .map_err(|e| FilesError::io("write", path, e))?;
    drop(file);
    let (p, u, m) = (path.to_owned(), user.clone(), metadata.clone());
    let final_meta =
        tokio::task::spawn_blocking(move || -> Result<BTreeMap<String, String>, FilesError> {
            let _acting =
                identity::act_as(&u).map_err(|e| FilesError::io("act as user for", &p, e))?;
            replace_metadata(&p, &m)?;
            Ok(read_metadata(&p))
        })
        .await
        .map_err(|e| FilesError::io("finish write", path, std::io::Error::other(e)))??;
    Ok(WrittenFile {
        path: path.display().to_string(),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kind: "file",
        metadata: final_meta,
    })
}

/// Removes all `user.e2b.*` attributes, then sets `metadata`. Without new metadata, failures
/// (a filesystem without user xattrs) are ignored.
fn replace_metadata(path: &Path, metadata: &BTreeMap<String, String>) -> Result<(), FilesError> {
    if let Ok(names) = sys::list_xattrs(path) {
        for n in names
            .iter()
            .filter(|n| n.starts_with(METADATA_XATTR_PREFIX))
        {
            let _ = sys::remove_xattr(path, n);
        }
    }
    for (k, v) in metadata {
        sys::set_xattr(path, &format!("{METADATA_XATTR_PREFIX}{k}"), v.as_bytes())
            .map_err(|e| FilesError::io("set metadata", path, e))?;
    }
    Ok(())
}

/// `X-Metadata-<Key>: <value>` headers: keys lowercased, printable ASCII only, key ≤ 246
/// bytes, total ≤ 4096 bytes.
fn parse_metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, FilesError> {
    let mut out = BTreeMap::new();
    let mut total = 0usize;
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix("x-metadata-") else {
            continue;
        };
        let value = value
            .to_str()
            .ok()
            .filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)));
        let Some(value) = value else {
            return Err(FilesError::BadRequest(format!(
                "metadata '{key}' must be printable ASCII"
            )));
        };
        if key.is_empty() || key.len() > 246 {
            return Err(FilesError::BadRequest(format!(
                "metadata key '{key}' must be 1 to 246 bytes"
            )));
        }
        total += key.len() + value.len();
        out.insert(key.to_owned(), value.to_owned());
    }
    if total > 4096 {
        return Err(FilesError::BadRequest(
            "metadata exceeds 4096 bytes".to_owned(),
        ));
    }
    Ok(out)
}
