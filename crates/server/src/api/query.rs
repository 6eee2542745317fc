//! The query string of the sandbox list: `metadata`, `state`, `template`, `startedAfter`,
//! `order`, `limit`, `nextToken`.

use std::collections::{BTreeMap, HashMap};

use bulkhead_store::SandboxStatus;

use super::ApiError;
use crate::clock::{self, Timestamp};
use crate::manager::{ListQuery, MAX_PAGE};

/// `GET /v2/sandboxes`: every filter; `limit` 1..=100 (default 100), `order` asc or desc
/// (default desc).
///
/// # Errors
/// [`ApiError::BadRequest`] naming the first value that does not parse.
pub(crate) fn list(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    Ok(ListQuery {
        metadata: metadata(q)?,
        states: q
            .get("state")
            .map(|s| states(s))
            .transpose()?
            .unwrap_or_default(),
        template: q.get("template").cloned(),
        started_after: q.get("startedAfter").map(|s| time(s)).transpose()?,
        ascending: match q.get("order").map(String::as_str) {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(o) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid order {o:?}: use asc or desc"
                )));
            }
        },
        limit: match q.get("limit") {
            None => MAX_PAGE,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "invalid limit {l:?}: use 1 to 100"
                    )));
                }
            },
        },
        next_token: q.get("nextToken").filter(|t| !t.is_empty()).cloned(),
    })
}

/// Legacy `GET /sandboxes`: running sandboxes only, filtered by `metadata`, one page.
///
/// # Errors
/// [`ApiError::BadRequest`] for a malformed `metadata`.
pub(crate) fn legacy_list(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    Ok(ListQuery {
        metadata: metadata(q)?,
        states: vec![SandboxStatus::Running],
        ..Default::default()
    })
}

fn metadata(q: &HashMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    Ok(q.get("metadata")
        .map(|m| metadata_filter(m))
        .transpose()?
        .unwrap_or_default())
}

/// Parses the `metadata` query value the way the reference server does: unescape the whole
/// string once, split on `&` and `=`, unescape key and value again.
fn metadata_filter(raw: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid metadata filter {raw:?}"));
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad())
    };
    let once = unescape(raw)?;
    let mut out = BTreeMap::new();
    for pair in once.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        out.insert(unescape(k)?, unescape(v)?);
    }
    Ok(out)
}

/// Parses `state=running,paused`.
fn states(raw: &str) -> Result<Vec<SandboxStatus>, ApiError> {
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            SandboxStatus::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!("invalid state {s:?}: use running or paused"))
            })
        })
        .collect()
}

/// Parses an RFC 3339 timestamp.
fn time(raw: &str) -> Result<Timestamp, ApiError> {
    clock::parse(raw)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid timestamp {raw:?}: use RFC 3339")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_filter_decodes_twice() {
        let m = metadata_filter("user=a%2520b&app=x%252Fy").unwrap();
        assert_eq!(m.get("user").map(String::as_str), Some("a b"));
        assert_eq!(m.get("app").map(String::as_str), Some("x/y"));
        let m = metadata_filter("user=a%2520b&app=x%2Fy").unwrap();
        assert_eq!(m.get("app").map(String::as_str), Some("x/y"));
        assert!(metadata_filter("novalue").is_err());
    }

    #[test]
    fn states_orders_and_limits() {
        assert_eq!(states("running,paused").unwrap().len(), 2);
        assert!(states("dead").is_err());
        let q = |pairs: &[(&str, &str)]| {
            list(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let d = q(&[]).unwrap();
        assert_eq!((d.limit, d.ascending, d.next_token), (100, false, None));
        assert!(q(&[("order", "asc")]).unwrap().ascending);
        for bad in [
            ("order", "sideways"),
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "-5"),
            ("startedAfter", "yesterday"),
            ("metadata", "%"),
        ] {
            assert!(q(&[bad]).is_err(), "{bad:?}");
        }
        assert_eq!(q(&[("nextToken", "")]).unwrap().next_token, None);
    }
}
