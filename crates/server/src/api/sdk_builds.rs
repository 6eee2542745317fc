//! E2B's template build endpoints, which `Template.build()` of the official SDKs calls
//! (spec section 2.7); the translation of its steps is [`crate::sdk_builds`].
//!
//! | endpoint | answer |
//! |---|---|
//! | `POST /v3/templates` | 202 `{templateID, buildID, public, names, tags, aliases}`; 400 for a bad name, 409 for another team's |
//! | `GET /templates/{id}/files/{hash}` | 201 `{present, url}`: `url` takes one `PUT` of the files' tar, no key needed |
//! | `PUT /bulkhead/v1/template-files/{token}` | 201; 404 for an unknown or used token |
//! | `POST /v2/templates/{id}/builds/{build}` | 202, the build runs; 400 for steps that do not fit, 404 for no such build, 409 once started |
//! | `GET /templates/{id}/builds/{build}/status` | 200 `{templateID, buildID, status, logs, logEntries, reason?}`, at most 100 entries from `logsOffset` |

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhead_builder::build::{BuildEvent, BuildRequest};
use bulkhead_builder::template_dir::TemplateDir;
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Team;
use super::templates::{blocking, templates};
use crate::manager::Manager;
use crate::sdk_builds::{self, Session, StartRequest, Status, dockerfile_of, e2b_toml};
use crate::state::AppState;
use crate::templates::{Templates, valid_name};

/// `POST /v3/templates`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenRequest {
    /// `name` or `name:tag`.
    #[serde(default)]
    name: Option<String>,
    /// The older SDKs' name.
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    cpu_count: Option<u32>,
    #[serde(default, rename = "memoryMB")]
    memory_mb: Option<u32>,
}

/// `POST /v3/templates`: opens a build of the name for the caller's team.
pub async fn open(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Json(req): Json<OpenRequest>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let full = req
        .name
        .or(req.alias)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("give the template a name".into()))?;
    let (name, tag) = match full.split_once(':') {
        Some((n, tag)) => (n.to_string(), Some(tag.to_string())),
        None => (full.clone(), None),
    };
    if !valid_name(&name) {
        return Err(ApiError::BadRequest(format!(
            "invalid template name {name:?}: use 1 to 64 lowercase letters, digits, '-' and '_'"
        )));
    }
    {
        let (t2, n2, team2) = (t.clone(), name.clone(), team.clone());
        blocking(move || t2.owner_for(&n2, Some(&team2))).await??;
    }
    let s = t
        .sdk_builds()
        .open(&name, team.as_str(), req.cpu_count, req.memory_mb)
        .ok_or_else(|| {
            ApiError::TooManyRequests("too many template builds are open: try again later".into())
        })?;
    s.log(
        "info",
        format!("build {} of template {name} requested", s.build_id),
    );
    let tags = req
        .tags
        .filter(|t| !t.is_empty())
        .or_else(|| tag.map(|t| vec![t]))
        .unwrap_or_else(|| vec!["default".into()]);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "templateID": name,
            "buildID": s.build_id,
            "public": false,
            "names": [name],
            "tags": tags,
            "aliases": [name],
        })),
    )
        .into_response())
}

/// `GET /templates/{id}/files/{hash}`: whether the server has these files, and where to
/// `PUT` them.
pub async fn file_link(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    headers: HeaderMap,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    if !sdk_builds::valid_hash(&hash) {
        return Err(ApiError::BadRequest(format!(
            "{hash:?} is not a files hash"
        )));
    }
    let s = t.sdk_builds().waiting(team.as_str(), &id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no build of template {id:?} is waiting for its files: POST /v3/templates first"
        ))
    })?;
    let path = sdk_builds::upload_path(t.builder().work_dir(), team.as_str(), &hash);
    let present = path.is_file();
    let token = t
        .sdk_builds()
        .upload_token(&s.build_id, &hash)
        .ok_or_else(|| ApiError::TooManyRequests("too many uploads are open".into()))?;
    // The upload comes back to this server by the address the client used (plain HTTP is
    // answered on a TLS port too).
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ']))
        .ok_or_else(|| ApiError::BadRequest("the request has no Host header".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "present": present,
            "url": format!("http://{host}/bulkhead/v1/template-files/{token}"),
        })),
    )
        .into_response())
}

/// `PUT /bulkhead/v1/template-files/{token}`: the files of one COPY step, as the tar (or
/// tar.gz) the SDK makes. The token is the credential.
pub async fn upload(
    State(st): State<AppState<Manager>>,
    Path(token): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let (s, hash) = t
        .sdk_builds()
        .take_token(&token)
        .ok_or_else(|| ApiError::NotFound("no such upload".into()))?;
    let path = sdk_builds::upload_path(t.builder().work_dir(), &s.team, &hash);
    let internal = |e: std::io::Error| ApiError::Internal(Box::new(e));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(internal)?;
    }
    let tmp = path.with_extension(format!("part-{:08x}", rand::random::<u32>()));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(internal)?;
    let mut stream = body.into_data_stream();
    let copied: Result<(), ApiError> = async {
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| ApiError::BadRequest(format!("reading the upload: {e}")))?
        {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(internal)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(internal)?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = copied {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, &path).await.map_err(internal)?;
    s.log("info", format!("files {hash} uploaded"));
    Ok(StatusCode::CREATED.into_response())
}

/// The image a build starts from: a registry reference as given, or a template of this
/// server the team may use.
fn base_of(t: &Templates, team: &str, req: &StartRequest) -> Result<String, ApiError> {
    if req.from_image_registry.is_some() {
        return Err(ApiError::BadRequest(
            "fromImageRegistry (registry credentials) is not taken here: give the server access to the registry and name the image in fromImage".into(),
        ));
    }
    match (&req.from_image, &req.from_template) {
        (Some(img), None) if !img.is_empty() => Ok(img.clone()),
        (None, Some(name)) if !name.is_empty() => {
            let name = name.split_once(':').map_or(name.as_str(), |(n, _)| n);
            if t.get(name).is_some_and(|r| !r.visible_to(team)) {
                return Err(ApiError::NotFound(format!("template {name:?} not found")));
            }
            let built = format!("bulkhead-template/{name}:latest");
            if t.builder().store().image(&built).ok().flatten().is_some() {
                return Ok(built);
            }
            // A template served from a root filesystem (before it is built, or never).
            match t.config(name) {
                Some(c) if c.owner.is_none() && c.layers.len() == 1 => {
                    Ok(c.layers[0].display().to_string())
                }
                _ => Err(ApiError::NotFound(format!(
                    "template {name:?} not found (or not one a build can start from)"
                ))),
            }
        }
        _ => Err(ApiError::BadRequest(
            "give fromImage or fromTemplate (one of them)".into(),
        )),
    }
}

fn event_line(e: &BuildEvent) -> (&'static str, String) {
    match e {
        BuildEvent::Step {
            stage,
            index,
            total,
            text,
        } => ("info", format!("[{stage}] {index}/{total} {text}")),
        BuildEvent::Cached { index } => ("info", format!("step {index}: cached")),
        BuildEvent::Done { index, millis, .. } => {
            ("info", format!("step {index}: done in {millis} ms"))
        }
        BuildEvent::Output { line } => ("info", line.clone()),
        BuildEvent::Note { message } => ("info", message.clone()),
    }
}

/// `POST /v2/templates/{id}/builds/{build}`: the steps; the build runs in the background.
pub async fn start(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path((id, build_id)): Path<(String, String)>,
    Json(req): Json<StartRequest>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let s = t
        .sdk_builds()
        .get(team.as_str(), &id, &build_id)
        .ok_or_else(|| ApiError::NotFound(format!("no build {build_id:?} of {id:?}")))?;
    if !s.is_waiting() {
        return Err(ApiError::Conflict(format!(
            "build {build_id:?} has already started"
        )));
    }
    // Template records and the image store are files: read them off the async threads.
    let (t2, team2, req2) = (t.clone(), team.clone(), req.clone());
    let (base, template_bases) = blocking(move || {
        base_of(&t2, team2.as_str(), &req2).map(|b| (b, t2.template_bases_for(&team2)))
    })
    .await??;
    let dockerfile = dockerfile_of(&base, &req.steps).map_err(ApiError::BadRequest)?;
    let toml = e2b_toml(&id, &req, s.cpu_count, s.memory_mb);
    let no_cache = req.force.unwrap_or(false) || req.steps.iter().any(|s| s.force == Some(true));
    // Only COPY steps bring files (dockerfile_of checked each of their hashes).
    let hashes: Vec<String> = req
        .steps
        .iter()
        .filter(|s| s.kind.eq_ignore_ascii_case("COPY"))
        .filter_map(|s| s.files_hash.clone())
        .filter(|h| sdk_builds::valid_hash(h))
        .collect();
    t.sdk_builds().end_uploads(&s.build_id);
    // The context: the generated files and each COPY step's files under files/<hash>/.
    let (t2, team2) = (t.clone(), team.as_str().to_string());
    let ctx = blocking(move || -> Result<_, String> {
        let b = t2.builder();
        let ctx = b.new_context_dir().map_err(|e| e.to_string())?;
        std::fs::write(ctx.path().join("e2b.Dockerfile"), &dockerfile)
            .and_then(|()| std::fs::write(ctx.path().join("e2b.toml"), &toml))
            .map_err(|e| e.to_string())?;
        for h in &hashes {
            let src = sdk_builds::upload_path(b.work_dir(), &team2, h);
            let file = std::fs::File::open(&src)
                .map_err(|_| format!("the files of hash {h} were not uploaded"))?;
            let dest = ctx.path().join("files").join(h);
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
            bulkhead_builder::build::unpack_into(file, &dest).map_err(|e| e.to_string())?;
        }
        let template = TemplateDir::load(ctx.path(), None).map_err(|e| e.to_string())?;
        Ok((ctx, template))
    })
    .await?;
    let (ctx, template) = match ctx {
        Ok(v) => v,
        Err(message) => {
            s.log("error", message.clone());
            s.set_status(Status::Error, Some(message.clone()));
            return Err(ApiError::BadRequest(message));
        }
    };
    let build = BuildRequest {
        template,
        args: Vec::new(),
        secrets: Default::default(),
        no_cache,
        name: id.clone(),
        storage: t.storage(),
        limits: t.build_limits(),
        host_paths: t.is_operator(&team),
        template_bases,
    };
    s.set_status(Status::Building, None);
    s.log("info", format!("building {id} from {base}"));
    let sink_session = Arc::clone(&s);
    let events: bulkhead_builder::build::EventSink = Arc::new(move |e: BuildEvent| {
        let (level, line) = event_line(&e);
        sink_session.log(level, line);
    });
    tokio::spawn(async move {
        let _keep = ctx;
        match t.build(build, events, Some(&team)).await {
            Ok(_) => {
                s.log("info", format!("template {} built", s.template_id));
                s.set_status(Status::Ready, None);
            }
            Err(e) => {
                let message = e.to_string();
                s.log("error", message.clone());
                s.set_status(Status::Error, Some(message));
            }
        }
    });
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /templates/{id}/builds/{build}/status`.
pub async fn status(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Path((id, build_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let s: Arc<Session> = t
        .sdk_builds()
        .get(team.as_str(), &id, &build_id)
        .ok_or_else(|| ApiError::NotFound(format!("no build {build_id:?} of {id:?}")))?;
    let number = |k: &str, default: usize| -> Result<usize, ApiError> {
        q.get(k).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("{k} must be a number, not {v:?}")))
        })
    };
    let offset = number("logsOffset", 0)?;
    let limit = number("limit", 100)?.min(100);
    let (status, lines, reason) = s.view(offset, limit);
    let wanted = |level: &str| match q.get("level").map(String::as_str) {
        Some("error") => level == "error",
        Some("warn") => level == "error" || level == "warn",
        _ => true,
    };
    let entries: Vec<Value> = lines
        .iter()
        .filter(|l| wanted(l.level))
        .map(|l| json!({"timestamp": l.timestamp, "message": l.message, "level": l.level}))
        .collect();
    let mut body = json!({
        "templateID": id,
        "buildID": build_id,
        "status": status.word(),
        "logs": lines.iter().map(|l| l.message.clone()).collect::<Vec<_>>(),
        "logEntries": entries,
    });
    if let Some(message) = reason {
        body["reason"] = json!({ "message": message });
    }
    Ok(Json(body).into_response())
}

/// The routes (only for a real manager).
pub fn router() -> axum::Router<AppState<Manager>> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/v3/templates", post(open))
        .route("/templates/{id}/files/{hash}", get(file_link))
        .route(
            "/bulkhead/v1/template-files/{token}",
            put(upload).layer(axum::extract::DefaultBodyLimit::max(4 << 30)),
        )
        .route("/v2/templates/{id}/builds/{build}", post(start))
        .route("/templates/{id}/builds/{build}/status", get(status))
}
