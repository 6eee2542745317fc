//! POSIX attributes stored as user metadata on an object, in the headers s3fs-fuse uses
//! (`x-amz-meta-mode`, `-uid`, `-gid`, `-atime`, `-mtime`, `-ctime`), so a bucket stays
//! readable and writable by both. Every field is optional: an object written by another S3
//! client has none, and the mount's defaults stand in for what is missing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The attributes an object carries. `mode` is the full `st_mode` (type and permission bits)
/// in decimal, as s3fs-fuse writes it; times are epoch seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `st_mode`, type bits included.
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Access time, epoch seconds.
    pub atime: Option<i64>,
    /// Modification time, epoch seconds.
    pub mtime: Option<i64>,
    /// Status change time, epoch seconds.
    pub ctime: Option<i64>,
    /// Device number of a device node.
    pub rdev: Option<u32>,
}

const MODE: &str = "x-amz-meta-mode";
const UID: &str = "x-amz-meta-uid";
const GID: &str = "x-amz-meta-gid";
const ATIME: &str = "x-amz-meta-atime";
const MTIME: &str = "x-amz-meta-mtime";
const CTIME: &str = "x-amz-meta-ctime";
const RDEV: &str = "x-amz-meta-rdev";

/// Epoch seconds of `t` (negative before 1970).
pub fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The time `secs` after (or before) the epoch.
pub fn from_epoch(secs: i64) -> SystemTime {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

/// Parses `secs` or `secs.fraction` (the fraction is dropped).
fn parse_secs(v: &str) -> Option<i64> {
    v.split('.').next()?.trim().parse().ok()
}

impl Meta {
    /// The file type bits of the stored mode (`S_IFLNK`, `S_IFIFO`, ...), 0 when unknown.
    pub fn file_type(&self) -> u32 {
        self.mode.map_or(0, |m| m & libc::S_IFMT)
    }

    /// Whether the object carries any attribute at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The attributes found in a response's headers; unparsable values count as absent.
    pub fn from_headers(h: &reqwest::header::HeaderMap) -> Self {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u32>().ok());
        let secs = |name: &str| get(name).and_then(parse_secs);
        Self {
            mode: num(MODE),
            uid: num(UID),
            gid: num(GID),
            atime: secs(ATIME),
            mtime: secs(MTIME),
            ctime: secs(CTIME),
            rdev: num(RDEV),
        }
    }

    /// The request headers that store these attributes (only the fields that are set).
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((name.to_string(), v));
            }
        };
        add(MODE, self.mode.map(|v| v.to_string()));
        add(UID, self.uid.map(|v| v.to_string()));
        add(GID, self.gid.map(|v| v.to_string()));
        add(ATIME, self.atime.map(|v| v.to_string()));
        add(MTIME, self.mtime.map(|v| v.to_string()));
        add(CTIME, self.ctime.map(|v| v.to_string()));
        add(RDEV, self.rdev.map(|v| v.to_string()));
        out
    }

    /// After a change of attributes or name at `now`: the stored ctime (if any) moves to
    /// `now`.
    #[must_use]
    pub fn changed(mut self, now: i64) -> Self {
        if self.ctime.is_some() {
            self.ctime = Some(now);
        }
        self
    }

    /// After a change of content at `now`: the stored mtime and ctime (when the object
    /// stores times at all) move to `now`.
    #[must_use]
    pub fn touched(mut self, now: i64) -> Self {
        if self.mtime.is_some() {
            self.mtime = Some(now);
        }
        if self.ctime.is_some() {
            self.ctime = Some(now);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_missing_fields_stay_absent() {
        let m = Meta {
            mode: Some(0o100_644),
            uid: Some(1000),
            gid: None,
            atime: None,
            mtime: Some(1_700_000_000),
            ctime: Some(-5),
            rdev: None,
        };
        let mut h = reqwest::header::HeaderMap::new();
        for (k, v) in m.headers() {
            h.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        assert_eq!(Meta::from_headers(&h), m);
        assert_eq!(
            h.get(MODE).unwrap(),
            "33188",
            "decimal, as s3fs-fuse writes it"
        );
        assert_eq!(parse_secs("12.5"), Some(12));
        assert!(Meta::default().is_empty());
        assert_eq!(epoch_secs(from_epoch(-7)), -7);
    }
}
