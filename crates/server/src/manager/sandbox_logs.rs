//! A sandbox's logs (E2B's `GET /sandboxes/{id}/logs` and `/v2/sandboxes/{id}/logs`): what
//! envd logged (one JSON object per line, `bulkhead envd --log-format json -v`: processes
//! started and ended, settings, warnings) and what the server noted about the sandbox (envd
//! died and was started again), kept in `envd.log` in the sandbox's state directory on the
//! host, capped at 1 MiB, out of the sandbox's reach.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use bulkhead_store::{TeamId, Timestamp};

use super::envd::ENVD_LOG;
use super::{Manager, ManagerError};
use crate::clock;

/// One log line, as E2B's `SandboxLogEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When it was logged.
    pub timestamp: Timestamp,
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message.
    pub message: String,
    /// Its other fields, as strings.
    pub fields: BTreeMap<String, String>,
}

/// Which entries a request wants.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only entries at or after this time (`start`/`cursor`, milliseconds since the epoch).
    pub since_ms: Option<i64>,
    /// Only entries at or before this time (`cursor` with `direction=backward`).
    pub until_ms: Option<i64>,
    /// At most this many (the newest first when `backward`).
    pub limit: usize,
    /// Newest first.
    pub backward: bool,
    /// At or above this level.
    pub min_level: Option<&'static str>,
    /// Only messages containing this text.
    pub search: Option<String>,
}

/// The default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 1000;

impl Manager {
    /// The team's sandbox `id`'s log entries that `query` selects, oldest first (newest
    /// first when backward).
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`] for no sandbox of the team's.
    pub async fn sandbox_logs(
        &self,
        team: &TeamId,
        id: &str,
        query: LogQuery,
    ) -> Result<Vec<LogEntry>, ManagerError> {
        let entry = self.owned(team, id)?;
        let path = entry.sandbox().state_dir().join(ENVD_LOG);
        let entries = tokio::task::spawn_blocking(move || read_log(&path)).await?;
        Ok(select(entries, &query))
    }
}

/// Appends a line of the server's own about the sandbox (`level` as E2B names levels).
pub(crate) fn note(state_dir: &Path, level: &str, message: &str) {
    let line = serde_json::json!({
        "timestamp": precise(clock::now()),
        "level": level.to_ascii_uppercase(),
        "message": message,
        "source": "bulkhead",
    });
    let path = state_dir.join(ENVD_LOG);
    // Notes obey the log's cap too (a sandbox whose envd dies over and over must not grow
    // the host's file without end).
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > super::envd::LOG_CAP + 64 * 1024) {
        return;
    }
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        tracing::debug!(error = %e, "could not add a line to a sandbox's log");
    }
}

/// RFC 3339 to the microsecond, as tracing writes its timestamps.
pub(crate) fn precise(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn read_log(path: &Path) -> Vec<LogEntry> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    let fallback = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(Timestamp::from)
        .unwrap_or_else(|_| clock::now());
    let mut last = None;
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let e = parse_line(l, last.unwrap_or(fallback));
            last = Some(e.timestamp);
            e
        })
        .collect()
}

/// One line of the log: a JSON object from tracing (`timestamp`, `level`, `message`, fields,
/// `spans`), or anything else (a panic's text, the truncation notice) as an `info` line at
/// the time of the line before it.
pub(crate) fn parse_line(line: &str, previous: Timestamp) -> LogEntry {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return LogEntry {
            timestamp: previous,
            level: "info",
            message: line.to_owned(),
            fields: BTreeMap::new(),
        };
    };
    let timestamp = obj
        .remove("timestamp")
        .and_then(|v| v.as_str().and_then(clock::parse))
        .unwrap_or(previous);
    let level = match obj
        .remove("level")
        .and_then(|v| v.as_str().map(str::to_ascii_lowercase))
        .as_deref()
    {
        Some("error") => "error",
        Some("warn") => "warn",
        Some("debug" | "trace") => "debug",
        _ => "info",
    };
    let message = match obj.remove("message") {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    obj.remove("spans");
    let fields = obj
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    LogEntry {
        timestamp,
        level,
        message,
        fields,
    }
}

fn rank(level: &str) -> u8 {
    match level {
        "debug" => 0,
        "info" => 1,
        "warn" => 2,
        _ => 3,
    }
}

fn select(entries: Vec<LogEntry>, q: &LogQuery) -> Vec<LogEntry> {
    let limit = if q.limit == 0 {
        DEFAULT_LIMIT
    } else {
        q.limit.min(DEFAULT_LIMIT)
    };
    let keep = |e: &LogEntry| {
        let ms = e.timestamp.timestamp_millis();
        q.since_ms.is_none_or(|s| ms >= s)
            && q.until_ms.is_none_or(|u| ms <= u)
            && q.min_level.is_none_or(|l| rank(e.level) >= rank(l))
            && q.search.as_deref().is_none_or(|s| e.message.contains(s))
    };
    let matching = entries.into_iter().filter(keep);
    if q.backward {
        let mut all: Vec<LogEntry> = matching.collect();
        all.reverse();
        all.truncate(limit);
        all
    } else {
        matching.take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_json_lines_and_other_text_both_become_entries() {
        let before = clock::parse("2026-12-02T10:00:00Z").expect("time");
        let e = parse_line(
            r#"{"timestamp":"2026-12-02T11:50:00.123456Z","level":"INFO","message":"process started","pid":42,"user":"user","target":"bulkhead_envd::process::spawn","spans":[{"name":"start"}]}"#,
            before,
        );
        assert_eq!(e.level, "info");
        assert_eq!(e.message, "process started");
        assert_eq!(e.timestamp.timestamp_millis() % 1000, 123);
        assert_eq!(e.fields.get("pid").map(String::as_str), Some("42"));
        assert_eq!(e.fields.get("user").map(String::as_str), Some("user"));
        assert!(!e.fields.contains_key("spans"));
        let p = parse_line("thread 'main' panicked at ...", before);
        assert_eq!((p.level, p.timestamp), ("info", before));
    }

    #[test]
    fn the_query_selects_by_time_level_text_and_direction() {
        let t = |s: &str| clock::parse(s).expect("time");
        let mk = |ts: &str, level: &'static str, m: &str| LogEntry {
            timestamp: t(ts),
            level,
            message: m.into(),
            fields: BTreeMap::new(),
        };
        let all = vec![
            mk("2026-12-02T10:00:00Z", "info", "a"),
            mk("2026-12-02T10:00:01Z", "warn", "b"),
            mk("2026-12-02T10:00:02Z", "error", "c b"),
        ];
        let ms = t("2026-12-02T10:00:01Z").timestamp_millis();
        let msg = |v: Vec<LogEntry>| v.into_iter().map(|e| e.message).collect::<Vec<_>>();
        let q = |f: &dyn Fn(&mut LogQuery)| {
            let mut q = LogQuery::default();
            f(&mut q);
            q
        };
        assert_eq!(msg(select(all.clone(), &q(&|_| {}))), ["a", "b", "c b"]);
        assert_eq!(
            msg(select(all.clone(), &q(&|q| q.since_ms = Some(ms)))),
            ["b", "c b"]
        );
        assert_eq!(
            msg(select(all.clone(), &q(&|q| q.min_level = Some("warn")))),
            ["b", "c b"]
        );
        assert_eq!(
            msg(select(all.clone(), &q(&|q| q.search = Some("b".into())))),
            ["b", "c b"]
        );
        assert_eq!(
            msg(select(
                all.clone(),
                &q(&|q| {
                    q.backward = true;
                    q.limit = 2;
                })
            )),
            ["c b", "b"]
        );
        assert_eq!(
            msg(select(
                all,
                &q(&|q| {
                    q.backward = true;
                    q.until_ms = Some(ms);
                })
            )),
            ["b", "a"]
        );
    }
}
