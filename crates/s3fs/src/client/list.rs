//! ListObjectsV2 with a delimiter, one page per call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;

use super::{Req, S3Client, walk_xml};
use crate::error::S3Error;

/// One object in a listing.
#[derive(Clone, Debug)]
pub struct ListedObject {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last-Modified.
    pub mtime: SystemTime,
    /// The ETag, without its quotes (empty when the server sent none).
    pub etag: String,
}

/// One page of ListObjectsV2.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// Objects directly under the prefix.
    pub objects: Vec<ListedObject>,
    /// Common prefixes (sub-"directories"), each ending with the delimiter.
    pub prefixes: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageCursor>,
}

/// How to ask for the next page.
#[derive(Clone, Debug)]
pub enum PageCursor {
    /// The continuation token S3 returned.
    Token(String),
    /// No token came back although the listing was truncated (some servers): continue
    /// after the last key or prefix seen.
    StartAfter(String),
}

impl S3Client {
    /// Lists one page under `prefix`, grouping by `delimiter` when given.
    ///
    /// # Errors
    /// [`S3Error::NoSuchBucket`], access and network errors.
    pub async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        cursor: Option<&PageCursor>,
        max_keys: u32,
    ) -> Result<ListPage, S3Error> {
        let mut req = Req::new(Method::GET, None);
        req.query.push(("list-type".into(), "2".into()));
        req.query.push(("prefix".into(), prefix.into()));
        req.query.push(("max-keys".into(), max_keys.to_string()));
        if let Some(d) = delimiter {
            req.query.push(("delimiter".into(), d.into()));
        }
        match cursor {
            Some(PageCursor::Token(t)) => req.query.push(("continuation-token".into(), t.clone())),
            Some(PageCursor::StartAfter(k)) => req.query.push(("start-after".into(), k.clone())),
            None => {}
        }
        let body = self.send_for_body(req, false).await?;
        parse_list(&body)
    }
}

fn parse_list(body: &[u8]) -> Result<ListPage, S3Error> {
    let mut page = ListPage::default();
    let mut truncated = false;
    let mut token = None;
    let mut current: Option<ListedObject> = None;
    walk_xml(body, |path, text| {
        let n = path.len();
        let parent = if n >= 2 { path[n - 2].as_str() } else { "" };
        let leaf = path.last().map_or("", String::as_str);
        match (parent, leaf) {
            ("Contents", field) => {
                let o = current.get_or_insert_with(|| ListedObject {
                    key: String::new(),
                    size: 0,
                    mtime: UNIX_EPOCH,
                    etag: String::new(),
                });
                match field {
                    // Key comes first in every Contents element S3 sends.
                    "Key" => {
                        if !o.key.is_empty() {
                            page.objects.push(std::mem::replace(
                                o,
                                ListedObject {
                                    key: String::new(),
                                    size: 0,
                                    mtime: UNIX_EPOCH,
                                    etag: String::new(),
                                },
                            ));
                        }
                        o.key = text.to_string();
                    }
                    "Size" => o.size = text.trim().parse().unwrap_or(0),
                    "LastModified" => o.mtime = parse_iso8601(text),
                    "ETag" => o.etag = text.trim().trim_matches('"').to_string(),
                    _ => {}
                }
            }
            ("CommonPrefixes", "Prefix") => page.prefixes.push(text.to_string()),
            ("ListBucketResult", "IsTruncated") => truncated = text.trim() == "true",
            ("ListBucketResult", "NextContinuationToken") => token = Some(text.to_string()),
            _ => {}
        }
    })?;
    if let Some(o) = current.filter(|o| !o.key.is_empty()) {
        page.objects.push(o);
    }
    if truncated {
        page.next = match token.filter(|t| !t.is_empty()) {
            Some(t) => Some(PageCursor::Token(t)),
            None => {
                let last = page
                    .objects
                    .iter()
                    .map(|o| o.key.as_str())
                    .chain(page.prefixes.iter().map(String::as_str))
                    .max()
                    .map(str::to_string);
                // A truncated page with nothing in it cannot be continued safely.
                Some(PageCursor::StartAfter(last.ok_or(S3Error::Malformed {
                    what: "truncated listing with no entries",
                })?))
            }
        };
    }
    Ok(page)
}

/// `2026-11-27T16:22:15.000Z` to a time (the epoch when unparseable).
fn parse_iso8601(s: &str) -> SystemTime {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(se)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return UNIX_EPOCH;
    };
    // Days from civil (inverse of sigv4::civil_from_days).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs).map_or(UNIX_EPOCH, |s| UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing_page() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><Prefix>d/</Prefix><KeyCount>3</KeyCount><IsTruncated>true</IsTruncated>
<Contents><Key>d/a&amp;b</Key><LastModified>2015-08-30T12:36:00.000Z</LastModified><Size>12</Size></Contents>
<Contents><Key>d/c</Key><LastModified>2015-08-30T12:36:00.000Z</LastModified><Size>0</Size></Contents>
<CommonPrefixes><Prefix>d/sub/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let page = parse_list(body).unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "d/a&b");
        assert_eq!(page.objects[0].size, 12);
        assert_eq!(
            page.objects[0].mtime,
            UNIX_EPOCH + Duration::from_secs(1_440_938_160)
        );
        assert_eq!(page.prefixes, vec!["d/sub/".to_string()]);
        assert!(matches!(page.next, Some(PageCursor::StartAfter(ref k)) if k == "d/sub/"));
    }
}
