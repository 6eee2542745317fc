//! `GET /files`: stream a file, gzip-compressed when the client accepts it.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt, BufReader};
use tokio_util::io::ReaderStream;

use super::FilesQuery;
use super::auth::{authorize, files_user};
use super::error::FilesError;
use crate::identity;
use crate::paths;
use crate::state::SharedState;

/// Downloads `path`: 200 with the bytes, 404 if missing, 400 for a directory.
#[tracing::instrument(skip_all)]
pub async fn download(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(q): Query<FilesQuery>,
) -> Response {
    match download_inner(&state, &headers, &q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn download_inner(
    state: &SharedState,
    headers: &HeaderMap,
    q: &FilesQuery,
) -> Result<Response, FilesError> {
    authorize(state, headers, q, "read")?;
    let user = files_user(state, q)?;
    let path = paths::resolve(
        q.path.as_deref().unwrap_or(""),
        &user,
        state.settings().default_workdir.as_deref(),
    );
    // Opened as the user: the user's permissions apply and a symlink is followed as the
    // user's own `open` would; the bytes are then read from the descriptor.
    let (p, u) = (path.clone(), user.clone());
    let (file, meta) = tokio::task::spawn_blocking(
        move || -> Result<(std::fs::File, std::fs::Metadata), FilesError> {
            let _acting =
                identity::act_as(&u).map_err(|e| FilesError::io("act as user for", &p, e))?;
            let meta = std::fs::metadata(&p).map_err(|e| FilesError::io("stat", &p, e))?;
            if meta.is_dir() {
                return Err(FilesError::IsDirectory(p));
            }
            let file = std::fs::File::open(&p).map_err(|e| FilesError::io("open", &p, e))?;
            Ok((file, meta))
        },
    )
    .await
    .map_err(|e| FilesError::io("open", &path, std::io::Error::other(e)))??;
    let mut file = tokio::fs::File::from_std(file);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => match parse_range(r, meta.len()) {
            Some(range) => Some(range),
            None => {
                let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.len())) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(res);
            }
        },
        None => None,
    };
    let gzip = range.is_none() && accepts_gzip(headers);
    let body = if let Some((start, end)) = range {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| FilesError::io("seek", &path, e))?;
        Body::from_stream(ReaderStream::new(file.take(end - start + 1)))
    } else if gzip {
        let enc = async_compression::tokio::bufread::GzipEncoder::new(BufReader::new(file));
        Body::from_stream(ReaderStream::new(enc))
    } else {
        Body::from_stream(ReaderStream::new(file))
    };
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&name)),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let disposition = format!(
        "inline; filename=\"{}\"",
        name.replace(['"', '\\', '\r', '\n'], "_")
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some((start, end)) = range {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", meta.len())) {
            h.insert(header::CONTENT_RANGE, v);
        }
    } else if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    } else {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    }
    Ok(res)
}

/// A single `bytes=` range as inclusive (start, end) within `len`; `None` if unsatisfiable
/// or malformed. Multiple ranges are not supported (refused like unsatisfiable ones).
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let suffix: u64 = b.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.trim().split(';');
            let coding = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            coding.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" | "py" | "rs" | "sh" | "csv" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), Some((0, 4)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=8-100", 10), Some((8, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("zstd, GZIP;q=0.5"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
    }
}
