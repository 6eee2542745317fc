//! Template endpoints: Bulkhead's build endpoint (the context and settings in, the build log
//! streamed back as NDJSON) and details, and E2B's list, alias lookup and delete that the SDK
//! and the E2B CLI read (spec section 2.7). A template a team builds is that team's, as on
//! E2B: only it lists, creates from, rebuilds and deletes it (another team's key is told it
//! does not exist, or for an alias lookup that it is taken). The server's own templates
//! (built at start from `--template-dir`, or root filesystems) are every team's.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bulkhead_builder::build::{BuildEvent, BuildRequest, Secret};
use bulkhead_builder::template_dir::TemplateDir;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Team;
use crate::manager::Manager;
use crate::state::AppState;
use crate::templates::{StoredTemplate, TemplateError, Templates};

/// The settings part of a build request (`params`); the context is the `context` part, a
/// tar (optionally gzip) of the template directory.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildParams {
    /// Template name.
    pub name: String,
    /// Build args, in order.
    #[serde(default)]
    pub args: Vec<(String, String)>,
    /// Secret values by id, base64.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Run every step.
    #[serde(default)]
    pub no_cache: bool,
    /// The Dockerfile, relative to the context, when not the one `e2b.toml` names.
    #[serde(default)]
    pub dockerfile: Option<String>,
}

pub(super) fn templates(st: &AppState<Manager>) -> Result<Arc<Templates>, ApiError> {
    st.templates
        .clone()
        .ok_or_else(|| ApiError::Unavailable("this server has no template builder".into()))
}

impl From<TemplateError> for ApiError {
    fn from(e: TemplateError) -> Self {
        match e {
            TemplateError::NotFound(_) => ApiError::NotFound(e.to_string()),
            TemplateError::InUse { .. } => ApiError::Conflict(e.to_string()),
            TemplateError::InvalidName(_) | TemplateError::Build(_) => {
                ApiError::BadRequest(e.to_string())
            }
            TemplateError::TakenByAnotherTeam(_) => ApiError::Conflict(e.to_string()),
            TemplateError::ServerTemplate(_) => ApiError::Forbidden(e.to_string()),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// `POST /bulkhead/v1/builds`: 200 with one JSON event per line, the last one
/// `{"type":"built",...}` or `{"type":"failed","message":...}`.
pub async fn build(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let mut params: Option<BuildParams> = None;
    // The context goes to a file in the builder's work directory as it arrives: a large
    // template directory is never held in the server's memory.
    let mut context: Option<bulkhead_builder::build::ContextUpload> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading the build request: {e}")))?
    {
        match field.name() {
            Some("params") => {
                let b = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("reading params: {e}")))?;
                params = Some(
                    serde_json::from_slice(&b)
                        .map_err(|e| ApiError::BadRequest(format!("invalid params: {e}")))?,
                );
            }
            Some("context") => {
                let upload = t.builder().context_upload_path();
                let mut file = tokio::fs::File::create(upload.path())
                    .await
                    .map_err(|e| ApiError::Internal(Box::new(e)))?;
                let mut field = field;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("reading the context: {e}")))?
                {
                    tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                        .await
                        .map_err(|e| ApiError::Internal(Box::new(e)))?;
                }
                tokio::io::AsyncWriteExt::flush(&mut file)
                    .await
                    .map_err(|e| ApiError::Internal(Box::new(e)))?;
                context = Some(upload);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected part {other:?}: send `params` and `context`"
                )));
            }
        }
    }
    let params = params.ok_or_else(|| ApiError::BadRequest("missing the params part".into()))?;
    let context = context.ok_or_else(|| ApiError::BadRequest("missing the context part".into()))?;
    let mut secrets = BTreeMap::new();
    for (id, b64) in params.secrets {
        let v = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| ApiError::BadRequest(format!("secret {id:?} is not base64")))?;
        secrets.insert(id, Secret::new(v));
    }
    let builder = t.builder().clone();
    let ctx_dir = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(context.path()).map_err(|e| e.to_string())?;
        builder.unpack_context_from(file).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(Box::new(e)))?
    .map_err(ApiError::BadRequest)?;
    let dockerfile = params.dockerfile.as_ref().map(|d| ctx_dir.path().join(d));
    let mut template = TemplateDir::load(ctx_dir.path(), dockerfile.as_deref())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Messages name the Dockerfile as the user's directory has it, not the server's copy.
    if let Some(d) = &params.dockerfile {
        template.dockerfile_name = d.clone();
    }
    // A name of another team's is refused before anything is built; what the team may build
    // FROM is read here too (records are files, read off the async threads).
    let template_bases = {
        let (t2, name, team2) = (t.clone(), params.name.clone(), team.clone());
        blocking(move || {
            t2.owner_for(&name, Some(&team2))
                .map(|_| t2.template_bases_for(&team2))
        })
        .await??
    };
    let req = BuildRequest {
        template,
        args: params.args,
        secrets,
        no_cache: params.no_cache,
        name: params.name,
        storage: t.storage(),
        limits: t.build_limits(),
        host_paths: t.is_operator(&team),
        template_bases,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let sink_tx = tx.clone();
    let events: bulkhead_builder::build::EventSink = Arc::new(move |e: BuildEvent| {
        let _ = sink_tx.send(serde_json::to_value(&e).unwrap_or(Value::Null));
    });
    tokio::spawn(async move {
        let _keep = ctx_dir;
        let last = match t.build(req, events, Some(&team)).await {
            Ok(rec) => json!({"type": "built", "template": summary(&rec)}),
            Err(e) => {
                tracing::info!(error = %e, "template build failed");
                json!({"type": "failed", "message": e.to_string()})
            }
        };
        let _ = tx.send(last);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line)), rx))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A template as the CLI shows it.
fn summary(t: &StoredTemplate) -> Value {
    let b = &t.built;
    json!({
        "templateID": t.id,
        "name": b.name,
        "base": b.base,
        "layers": b.layers.len(),
        "sizeBytes": b.layers.iter().map(|l| l.size).sum::<u64>(),
        "service": b.service,
        "stepsRun": b.steps_run,
        "stepsCached": b.steps_cached,
        "manifestDigest": b.manifest_digest.to_string(),
    })
}

/// `GET /bulkhead/v1/templates/{name}`: everything kept about a template.
pub async fn detail(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let rec = blocking(move || {
        t.get(&name)
            .filter(|r| visible_to(r, &team))
            .ok_or(TemplateError::NotFound(name))
    })
    .await??;
    Ok(Json(rec).into_response())
}

/// Whether `team` may see the record: its owner's (a built template's team, a snapshot's)
/// or, for the server's own, every team.
fn visible_to(r: &StoredTemplate, team: &bulkhead_store::TeamId) -> bool {
    r.visible_to(team.as_str())
}

/// Runs `f` (reads and writes of template records, which are files) on a blocking thread.
pub(super) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

/// `GET /templates`: E2B's template list.
pub async fn list(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    let built = match st.templates.clone() {
        Some(t) => blocking(move || t.list()).await?,
        None => Vec::new(),
    };
    for c in st.manager.template_configs() {
        let rec = built.iter().find(|b| b.id == c.id);
        // Snapshots are listed by GET /snapshots, for their team only.
        if rec.is_some_and(|r| r.snapshot.is_some()) {
            continue;
        }
        // Another team's template is not shown.
        if rec.is_some_and(|r| !visible_to(r, &team)) {
            continue;
        }
        let mut names = vec![c.id.clone()];
        names.extend(c.aliases.iter().cloned());
        let (created, updated, builds) = rec
            .map(|r| (r.created_at.clone(), r.updated_at.clone(), r.build_count))
            .unwrap_or_default();
        out.push(json!({
            "templateID": c.id,
            "buildID": rec.map(|r| r.built.manifest_digest.to_string()).unwrap_or_default(),
            "cpuCount": c.limits.cpu_millis.map_or(1, |m| m.div_ceil(1000)),
            "memoryMB": c.limits.memory_bytes.map_or(0, |b| b >> 20),
            "diskSizeMB": c.limits.disk_bytes.map_or(0, |b| b >> 20),
            "public": rec.is_none_or(|r| r.owner().is_none()),
            "aliases": c.aliases,
            "names": names,
            "createdAt": created,
            "updatedAt": updated,
            "createdBy": Value::Null,
            "lastSpawnedAt": Value::Null,
            "spawnCount": 0,
            "buildCount": builds,
            "envdVersion": bulkhead_envd::ENVD_VERSION,
            "buildStatus": "ready",
        }));
    }
    Ok(Json(out).into_response())
}

/// `GET /templates/aliases/{alias}`: 200 with the template it names, 404 when free.
pub async fn alias(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path(alias): Path<String>,
) -> Result<Response, ApiError> {
    let c = st
        .manager
        .template_config(&alias)
        .ok_or_else(|| ApiError::NotFound(format!("template alias {alias:?} not found")))?;
    // Another team's: taken, as E2B answers (403), without saying more.
    if c.owner.as_ref().is_some_and(|o| o != &team) {
        return Err(ApiError::Forbidden(format!(
            "template alias {alias:?} is taken by another team"
        )));
    }
    Ok(Json(json!({"templateID": c.id, "public": c.owner.is_none()})).into_response())
}

/// `?force=true` on a delete.
#[derive(Debug, Deserialize)]
pub struct RemoveQuery {
    /// Remove even while sandboxes use it.
    #[serde(default)]
    pub force: bool,
}

/// `DELETE /templates/{id}`: 204; 409 while sandboxes use it (unless `force`).
pub async fn remove(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let freed = blocking(move || {
        // A snapshot is its team's: another team's key is told it does not exist.
        if t.get(&id).is_some_and(|r| !visible_to(&r, &team)) {
            return Err(TemplateError::NotFound(id));
        }
        // The server's own templates are every team's to use and the operator's to remove.
        if t.get(&id).is_some_and(|r| r.owner().is_none()) && !t.is_operator(&team) {
            return Err(TemplateError::ServerTemplate(id));
        }
        t.remove(&id, q.force)
    })
    .await??;
    tracing::info!(freed_bytes = freed, "template removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The template routes (only for a real manager).
pub fn router() -> axum::Router<AppState<Manager>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/bulkhead/v1/builds",
            post(build).layer(axum::extract::DefaultBodyLimit::max(4 << 30)),
        )
        .route("/bulkhead/v1/templates/{name}", get(detail))
        .route("/templates", get(list))
        .route("/templates/aliases/{alias}", get(alias))
        .route("/templates/{id}", axum::routing::delete(remove))
}

/// The image store is the server's: its images include every team's built templates, and
/// an import reads a host path as root. Only the operator's team uses these endpoints.
fn operator_only(t: &Templates, team: &bulkhead_store::TeamId) -> Result<(), ApiError> {
    if t.is_operator(team) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the image store is the operator's: use a key of the server's default team".into(),
        ))
    }
}

/// `POST /bulkhead/v1/images/import` body: a path on the server's host and a name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// A root filesystem directory or tarball, an OCI layout, or a docker archive.
    pub path: String,
    /// `name[:tag]` it is stored under.
    pub name: String,
}

fn image_json(i: &bulkhead_builder::store::Image) -> Value {
    json!({
        "name": i.name,
        "manifestDigest": i.manifest_digest.to_string(),
        "layers": i.layers.len(),
        "sizeBytes": i.layers.iter().map(|l| l.size).sum::<u64>(),
        "source": i.source,
    })
}

/// `POST /bulkhead/v1/images/import`: 201 with the image.
pub async fn import_image(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Json(req): Json<ImportRequest>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    operator_only(&t, &team)?;
    let path = std::path::PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(ApiError::BadRequest(format!(
            "{}: give an absolute path on the server's host",
            req.path
        )));
    }
    let img = blocking(move || t.builder().store().import(&path, &req.name))
        .await?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(image_json(&img))).into_response())
}

/// `GET /bulkhead/v1/images`.
pub async fn list_images(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    operator_only(&t, &team)?;
    let images = t
        .builder()
        .store()
        .images()
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(Json(images.iter().map(image_json).collect::<Vec<_>>()).into_response())
}

/// `DELETE /bulkhead/v1/images/{name}`: 204, or 404. Layers that templates use stay.
pub async fn remove_image(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    operator_only(&t, &team)?;
    let removed = blocking(move || t.remove_image(&name)).await??;
    if removed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no such image".into()))
    }
}

/// The image routes.
pub fn image_router() -> axum::Router<AppState<Manager>> {
    use axum::routing::{delete, get, post};
    axum::Router::new()
        .route("/bulkhead/v1/images/import", post(import_image))
        .route("/bulkhead/v1/images", get(list_images))
        .route("/bulkhead/v1/images/{*name}", delete(remove_image))
}
