//! The endpoints behind `bulkhead validate`, which need what only the server has: the
//! credential audit of a template (the values are the server's, so it searches and answers
//! with places, never values) and a read of a sandbox's storage file straight from the
//! bucket (the keys are the server's).

use std::path::{Component, Path as FsPath, PathBuf};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use super::auth::Team;
use super::templates::blocking;
use crate::audit::{self, Finding};
use crate::manager::{Manager, StorageConfig, TemplateConfig};
use crate::state::AppState;
use crate::templates::INTERPRETER_LABEL;

/// The template `name` as team `team` may see it (another team's snapshot does not exist).
fn template_of(
    st: &AppState<Manager>,
    team: &bulkhead_store::TeamId,
    name: &str,
) -> Result<TemplateConfig, ApiError> {
    st.manager
        .template_config(name)
        .filter(|c| c.owner.as_ref().is_none_or(|o| o == team))
        .ok_or_else(|| ApiError::NotFound(format!("template {name:?} not found")))
}

fn storage_json(
    st: Option<&StorageConfig>,
    bucket: Option<&crate::bucket::BucketAccess>,
) -> serde_json::Value {
    match st {
        None => serde_json::Value::Null,
        Some(s) => json!({
            "path": s.target,
            "readOnly": s.read_only,
            "sandboxPrefix": s.sandbox_prefix,
            "kind": if bucket.is_some() { "bucket" } else { "directory" },
            "bucket": bucket.map(|b| b.bucket.clone()),
            "keyPrefix": bucket.map(|b| b.key_prefix.clone()),
            "endpoint": bucket.map(|b| b.endpoint.clone()),
        }),
    }
}

/// `POST /bulkhead/v1/templates/{name}/audit`: every credential the server knows for the
/// template, looked for by value in each layer, the image config, the history, the template
/// record and the last build log. 200 with what was scanned and the findings (empty = clean).
pub async fn audit(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let config = template_of(&st, &team, &name)?;
    let storage = st.manager.storage_of(&config);
    let templates = st.templates.clone();
    let body = blocking(move || -> Result<serde_json::Value, ApiError> {
        let rec = templates.as_ref().and_then(|t| t.get(&config.id));
        let creds = templates
            .as_ref()
            .map(|t| t.credentials_for(&config.id))
            .unwrap_or_default();
        let bucket = templates.as_ref().and_then(|t| t.bucket_for(&config.id));
        let mut findings: Vec<Finding> = Vec::new();
        let (mut files, mut bytes) = (0u64, 0u64);
        let n = config.layers.len();
        for (i, layer) in config.layers.iter().enumerate() {
            let label = format!("layer {}/{n} ({})", i + 1, layer_name(layer));
            match audit::scan_tree(&label, layer, &creds) {
                Ok((found, stats)) => {
                    files += stats.files;
                    bytes += stats.bytes;
                    findings.extend(found);
                }
                Err(e) => findings.push(Finding {
                    credential: format!("(not scanned: the layer cannot be read: {e})"),
                    place: label,
                }),
            }
        }
        let mut history = 0usize;
        let mut log_scanned = false;
        if let Some(rec) = &rec {
            let mut cfg = rec.built.config.clone();
            for (i, h) in std::mem::take(&mut cfg.history).iter().enumerate() {
                history += 1;
                let text = format!("{} {}", h.created_by, h.comment.as_deref().unwrap_or(""));
                findings.extend(audit::scan_text(
                    &format!("history step {}", i + 1),
                    text.as_bytes(),
                    &creds,
                ));
            }
            let cfg_json = serde_json::to_vec(&cfg).unwrap_or_default();
            findings.extend(audit::scan_text("image config", &cfg_json, &creds));
            let mut whole = rec.clone();
            whole.built.config.history.clear();
            let rec_json = serde_json::to_vec(&whole).unwrap_or_default();
            for f in audit::scan_text("template record", &rec_json, &creds) {
                if !findings.iter().any(|g| g.credential == f.credential && g.place == "image config") {
                    findings.push(f);
                }
            }
            if let Some(log) = templates.as_ref().and_then(|t| t.build_log(&rec.id)) {
                log_scanned = true;
                findings.extend(audit::scan_lines("build log", &log, &creds));
            }
        }
        Ok(json!({
            "templateID": config.id,
            "built": rec.is_some(),
            "codeInterpreter": config.code_interpreter
                || rec.as_ref().is_some_and(|r| r.built.config.labels.get(INTERPRETER_LABEL).map(String::as_str) == Some("true")),
            "storage": storage_json(storage.as_ref(), bucket.as_ref()),
            "credentials": creds.iter().map(|c| c.label.clone()).collect::<Vec<_>>(),
            "scanned": {
                "layers": n,
                "files": files,
                "bytes": bytes,
                "historySteps": history,
                "imageConfig": rec.is_some(),
                "buildLog": log_scanned,
            },
            "findings": findings,
        }))
    })
    .await??;
    Ok(Json(body).into_response())
}

/// A layer's short name: a store layer's digest (`sha256:0123abcd…`), else its path.
fn layer_name(p: &FsPath) -> String {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
    match name {
        Some(n) if n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("sha256:{}", &n[..12])
        }
        _ => p.display().to_string(),
    }
}

/// `?path=` of a storage read.
#[derive(Debug, Deserialize)]
pub struct StoragePath {
    /// An absolute path inside the sandbox, below its storage mount.
    pub path: String,
}

/// The bucket key (below the mount's prefix) of `path` in a sandbox with storage `st`.
fn key_of(st: &StorageConfig, sandbox_id: &str, path: &str) -> Result<String, ApiError> {
    let p = PathBuf::from(path);
    let rel = p.strip_prefix(&st.target).map_err(|_| {
        ApiError::BadRequest(format!(
            "{path}: not below the sandbox's storage at {}",
            st.target.display()
        ))
    })?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(pre) = &st.sandbox_prefix {
        parts.extend(
            pre.replace("{sandbox_id}", sandbox_id)
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "{path}: give a plain path (no '..')"
                )));
            }
        }
    }
    if parts.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{path}: name a file, not the storage root"
        )));
    }
    Ok(parts.join("/"))
}

/// `GET /bulkhead/v1/sandboxes/{id}/storage?path=/opt/sentient/x`: the object behind that
/// file, read from the bucket by the server's S3 client (not through the mount). 200 with
/// the bytes; 404 when the bucket has no such object; 400 for one over 64 MiB; 409 when the
/// sandbox's storage is a local directory; 503 when the bucket refuses the server's keys or
/// cannot be reached.
pub async fn storage_object(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path(id): Path<String>,
    Query(q): Query<StoragePath>,
) -> Result<Response, ApiError> {
    let entry = st.manager.entry_of(&team, &id)?;
    let template_id = entry.record().template_id;
    let config = st
        .manager
        .template_config(&template_id)
        .ok_or_else(|| ApiError::NotFound(format!("template {template_id:?} is gone")))?;
    let storage = st
        .manager
        .storage_of(&config)
        .ok_or_else(|| ApiError::Conflict("this sandbox has no storage".into()))?;
    let key = key_of(&storage, &id, &q.path)?;
    let templates = st.templates.clone();
    let tid = config.id.clone();
    let bucket = blocking(move || templates.and_then(|t| t.bucket_for(&tid)))
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "the storage at {} is a local directory of the server, not a bucket",
                storage.target.display()
            ))
        })?;
    let full = format!("{}{key}", bucket.key_prefix);
    match bucket.read(&key).await {
        Ok(Some(bytes)) => Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::HeaderName::from_static("x-bulkhead-bucket-key"),
                    format!("{}/{full}", bucket.bucket),
                ),
            ],
            bytes,
        )
            .into_response()),
        Ok(None) => Err(ApiError::NotFound(format!(
            "no object {full} in bucket {}",
            bucket.bucket
        ))),
        Err(e @ crate::bucket::BucketError::TooLarge { .. }) => {
            Err(ApiError::BadRequest(e.to_string()))
        }
        Err(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// The routes (only for a real manager).
pub fn router() -> axum::Router<AppState<Manager>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/bulkhead/v1/templates/{name}/audit", post(audit))
        .route("/bulkhead/v1/sandboxes/{id}/storage", get(storage_object))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn st(prefix: Option<&str>) -> StorageConfig {
        StorageConfig {
            host_root: "/x".into(),
            target: "/opt/sentient".into(),
            read_only: false,
            sandbox_prefix: prefix.map(str::to_string),
        }
    }

    #[test]
    fn keys_follow_the_sandbox_prefix_and_refuse_escapes() {
        assert_eq!(
            key_of(&st(None), "sb1", "/opt/sentient/executions/a.txt").unwrap(),
            "executions/a.txt"
        );
        assert_eq!(
            key_of(
                &st(Some("executions/{sandbox_id}")),
                "sb1",
                "/opt/sentient/a"
            )
            .unwrap(),
            "executions/sb1/a"
        );
        for bad in [
            "/opt/sentient/../etc/passwd",
            "/etc/passwd",
            "/opt/sentient",
            "opt/sentient/a",
        ] {
            assert!(key_of(&st(None), "sb1", bad).is_err(), "{bad}");
        }
    }
}
