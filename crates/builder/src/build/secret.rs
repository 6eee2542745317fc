//! Build secret values: held in memory only for the build, wiped when dropped, never
//! printed (`Debug` shows the length), and cut out of every line of the build log.

use std::fmt;

/// One secret's bytes (`--secret id=X,src=FILE|env=VAR`).
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes `bytes` as a secret value.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The value, for the one place that needs it (the step's tmpfs file or env var).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// What replaces a secret value in a log line.
pub const REDACTED: &str = "****";

/// Cuts secret values out of text. Values shorter than 4 bytes are not searched for (they
/// would hide ordinary text, and cannot be told from it anyway); the build warns about them.
pub struct Redactor {
    needles: Vec<Vec<u8>>,
}

impl Redactor {
    /// A redactor for `values` (longest first, so that a value containing another is cut
    /// whole).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut needles: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|v| v.len() >= 4)
            .flat_map(|v| {
                // A value read from a file often ends with a newline that the output lacks.
                let trimmed = v.trim_ascii_end().to_vec();
                [v.to_vec(), trimmed]
            })
            .filter(|v| v.len() >= 4)
            .collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    /// The longest value searched for (a streaming caller keeps that many bytes back).
    pub fn longest(&self) -> usize {
        self.needles.first().map_or(0, Vec::len)
    }

    /// `line` with every occurrence of a value replaced by [`REDACTED`].
    pub fn redact(&self, line: &[u8]) -> Vec<u8> {
        let mut out = line.to_vec();
        for n in &self.needles {
            out = replace_all(&out, n, REDACTED.as_bytes());
        }
        out
    }

    /// Whether `data` holds any value.
    pub fn found_in(&self, data: &[u8]) -> bool {
        self.needles.iter().any(|n| find(data, n).is_some())
    }

    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_out_and_debug_hides_them() {
        let s = Secret::new(b"hunter2-canary\n".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(15 bytes)");
        let r = Redactor::new([s.expose()]);
        assert_eq!(
            r.redact(b"token=hunter2-canary; again hunter2-canary"),
            b"token=****; again ****"
        );
        assert!(r.found_in(b"xxhunter2-canaryxx"));
        assert!(!r.found_in(b"hunter2"));
        assert_eq!(r.longest(), 15);
    }

    #[test]
    fn short_values_are_not_searched() {
        let r = Redactor::new([b"ab".as_slice()]);
        assert!(r.is_empty());
        assert_eq!(r.redact(b"abc"), b"abc");
    }
}
