//! Filtering and cursor pagination of the sandbox list (`GET /v2/sandboxes`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::clock::{self, Timestamp};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Entry, SandboxStatus};
use crate::error::ApiError;

/// Parsed query.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// All pairs must match.
    pub metadata: BTreeMap<String, String>,
    /// Allowed states; empty = all.
    pub states: Vec<SandboxStatus>,
    /// Template id or alias.
    pub template: Option<String>,
    /// Only sandboxes started after this instant.
    pub started_after: Option<Timestamp>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    /// Page size, 1..=100.
    pub limit: usize,
    /// Cursor from a previous page.
    pub next_token: Option<String>,
}

/// One page.
#[derive(Debug)]
pub struct ListPage {
    /// The sandboxes.
    pub items: Vec<Arc<Entry>>,
    /// Cursor for the next page, when there is one.
    pub next_token: Option<String>,
}

fn cursor_key(e: &Entry) -> (i128, String) {
    (clock::nanos(e.started_at), e.id.clone())
}

fn encode(key: &(i128, String)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}__{}", key.0, key.1))
}

fn decode(token: &str) -> Result<(i128, String), ApiError> {
    let bad = || ApiError::BadRequest("invalid nextToken".into());
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (ts, id) = text.split_once("__").ok_or_else(bad)?;
    Ok((ts.parse().map_err(|_| bad())?, id.to_string()))
}

/// Applies the query to `entries`.
pub(crate) fn page(mut entries: Vec<Arc<Entry>>, q: &ListQuery) -> Result<ListPage, ApiError> {
    let after = q.next_token.as_deref().map(decode).transpose()?;
    entries.retain(|e| {
        q.metadata.iter().all(|(k, v)| e.metadata.get(k) == Some(v))
            && (q.states.is_empty() || q.states.contains(&e.status()))
            && q.template
                .as_ref()
                .is_none_or(|t| &e.template_id == t || e.alias.as_ref() == Some(t))
            && q.started_after.is_none_or(|s| e.started_at > s)
    });
    entries.sort_by_key(|e| cursor_key(e));
    if !q.ascending {
        entries.reverse();
    }
    if let Some(after) = after {
        entries.retain(|e| {
            if q.ascending {
                cursor_key(e) > after
            } else {
                cursor_key(e) < after
            }
        });
    }
    let limit = q.limit.clamp(1, 100);
    let next_token = (entries.len() > limit).then(|| encode(&cursor_key(&entries[limit - 1])));
    entries.truncate(limit);
    Ok(ListPage {
        items: entries,
        next_token,
    })
}

/// Parses the `metadata` query value the way the reference server does: unescape the whole
/// string once, split on `&` and `=`, unescape key and value again.
pub fn parse_metadata_filter(raw: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid metadata filter {raw:?}"));
    let once = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad())?;
    let mut out = BTreeMap::new();
    for pair in once.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        let k = percent_encoding::percent_decode_str(k)
            .decode_utf8()
            .map_err(|_| bad())?;
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| bad())?;
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

/// Parses `state=running,paused`.
pub fn parse_states(raw: &str) -> Result<Vec<SandboxStatus>, ApiError> {
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "running" => Ok(SandboxStatus::Running),
            "paused" => Ok(SandboxStatus::Paused),
            other => Err(ApiError::BadRequest(format!(
                "invalid state {other:?}: use running or paused"
            ))),
        })
        .collect()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(raw: &str) -> Result<Timestamp, ApiError> {
    clock::parse(raw)
        .ok_or(())
        .map_err(|_| ApiError::BadRequest(format!("invalid timestamp {raw:?}: use RFC 3339")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_filter_decodes_twice() {
        let m = parse_metadata_filter("user=a%2520b&app=x%252Fy").unwrap();
        assert_eq!(m.get("user").map(String::as_str), Some("a b"));
        assert_eq!(m.get("app").map(String::as_str), Some("x/y"));
        let m = parse_metadata_filter("user=a%2520b&app=x%2Fy").unwrap();
        assert_eq!(m.get("app").map(String::as_str), Some("x/y"));
        assert!(parse_metadata_filter("novalue").is_err());
    }

    #[test]
    fn states_and_cursors() {
        assert_eq!(parse_states("running,paused").unwrap().len(), 2);
        assert!(parse_states("dead").is_err());
        let key = (1_700_000_000_000_000_000i128, "abc".to_string());
        assert_eq!(decode(&encode(&key)).unwrap(), key);
        assert!(decode("!!!").is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("no-separator")).is_err());
    }
}
