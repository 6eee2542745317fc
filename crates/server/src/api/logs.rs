//! `GET /sandboxes/{id}/logs` (the E2B CLI's `e2b sandbox logs`) and `GET
//! /v2/sandboxes/{id}/logs`: the sandbox's log entries ([`crate::manager::sandbox_logs`]).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Team;
use super::body::SandboxId;
use crate::manager::SandboxBackend;
use crate::manager::sandbox_logs::{DEFAULT_LIMIT, LogEntry, LogQuery, precise};
use crate::state::AppState;

/// v1: `start` (milliseconds since the epoch), `limit` (default and at most 1,000); the
/// entries as `logs` (`timestamp`, `line`) and as `logEntries` (with level and fields).
pub async fn logs_v1<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = LogQuery {
        since_ms: millis(&q, "start")?,
        limit: limit(&q)?,
        ..LogQuery::default()
    };
    let entries = st.manager.logs(&team, &id, query).await?;
    let lines: Vec<Value> = entries
        .iter()
        .map(|e| json!({ "timestamp": precise(e.timestamp), "line": line(e) }))
        .collect();
    let structured: Vec<Value> = entries.iter().map(entry).collect();
    Ok(Json(json!({ "logs": lines, "logEntries": structured })))
}

/// v2: `cursor` (milliseconds), `limit`, `direction` (`forward`, the default, from the
/// cursor on; `backward`, newest first up to the cursor), `level` (the least level),
/// `search` (text in the message).
pub async fn logs_v2<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let cursor = millis(&q, "cursor")?;
    let backward = match q.get("direction").map(String::as_str) {
        None | Some("forward") => false,
        Some("backward") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "direction must be forward or backward, not {other:?}"
            )));
        }
    };
    let min_level = match q.get("level").map(String::as_str) {
        None => None,
        Some("debug") => Some("debug"),
        Some("info") => Some("info"),
        Some("warn") => Some("warn"),
        Some("error") => Some("error"),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "level must be debug, info, warn or error, not {other:?}"
            )));
        }
    };
    let query = LogQuery {
        since_ms: if backward { None } else { cursor },
        until_ms: if backward { cursor } else { None },
        limit: limit(&q)?,
        backward,
        min_level,
        search: q.get("search").filter(|s| !s.is_empty()).cloned(),
    };
    let entries = st.manager.logs(&team, &id, query).await?;
    Ok(Json(
        json!({ "logs": entries.iter().map(entry).collect::<Vec<_>>() }),
    ))
}

fn entry(e: &LogEntry) -> Value {
    json!({
        "timestamp": precise(e.timestamp),
        "level": e.level,
        "message": e.message,
        "fields": e.fields,
    })
}

/// The v1 `line`: the message and its fields, as a person reads a log line.
fn line(e: &LogEntry) -> String {
    let mut out = e.message.clone();
    for (k, v) in &e.fields {
        if k != "target" {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    out
}

fn millis(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    q.get(key)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "{key} must be a unix time in milliseconds, not {v:?}"
                ))
            })
        })
        .transpose()
}

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= DEFAULT_LIMIT => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "limit must be a number from 0 to {DEFAULT_LIMIT}, not {v:?}"
            ))),
        },
    }
}
