//! The credential audit behind `bulkhead validate`: every credential the server knows for a
//! template (its storage keys, the server's storage keys) looked for by value in the
//! template's layers, its image config, its history and its last build log.
//!
//! Why by value and on the server: the seed's own check grepped a lower-cased `AKIA` and
//! could never fail. The values are only known here, so the scan runs here and answers with
//! the *place* of each hit and the *kind* of credential found, never the value.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One credential to look for. `Debug` hides the value.
#[derive(Clone)]
pub struct Credential {
    /// What it is, e.g. "the template's storage secret access key".
    pub label: String,
    value: Vec<u8>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}, redacted)", self.label)
    }
}

/// Shorter values are not looked for: they would match by chance (and no real key is that
/// short).
pub const MIN_CREDENTIAL_LEN: usize = 8;

impl Credential {
    /// A credential named `label`; `None` when the value is too short to search for.
    pub fn new(label: impl Into<String>, value: &str) -> Option<Self> {
        let value = value.trim();
        (value.len() >= MIN_CREDENTIAL_LEN).then(|| Self {
            label: label.into(),
            value: value.as_bytes().to_vec(),
        })
    }
}

/// A credential found somewhere it must not be.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Which credential (its label, never its value).
    pub credential: String,
    /// Where: `layer 3 (sha256:...): /etc/leak`, `image config`, `history step 4`, `build log
    /// line 12`.
    pub place: String,
}

/// What a layer scan covered.
#[derive(Debug, Default, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanStats {
    /// Regular files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Looks for each credential in `text` (one place).
pub fn scan_text(place: &str, text: &[u8], creds: &[Credential]) -> Vec<Finding> {
    creds
        .iter()
        .filter(|c| memchr::memmem::find(text, &c.value).is_some())
        .map(|c| Finding {
            credential: c.label.clone(),
            place: place.to_string(),
        })
        .collect()
}

/// Looks for each credential in `text` line by line, naming the line (a build log).
pub fn scan_lines(what: &str, text: &str, creds: &[Credential]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for f in scan_text(&format!("{what} line {}", n + 1), line.as_bytes(), creds) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// Walks layer directory `root` (an unpacked layer: whiteouts are device nodes and are
/// skipped; symbolic links are not followed, their targets are checked as text) and looks
/// for each credential in every regular file, in file names and in link targets. Files are
/// read in chunks that overlap by the longest credential, so a value across a chunk border
/// is found. Other file systems mounted below `root` are not entered.
///
/// # Errors
/// When `root` itself cannot be read; an unreadable file below it is a finding of its own
/// (a scan that skipped it could not say the layer is clean).
pub fn scan_tree(
    label: &str,
    root: &Path,
    creds: &[Credential],
) -> std::io::Result<(Vec<Finding>, ScanStats)> {
    use std::os::unix::fs::MetadataExt as _;
    let dev = std::fs::symlink_metadata(root)?.dev();
    let overlap = creds.iter().map(|c| c.value.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    let mut stats = ScanStats::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let push = |out: &mut Vec<Finding>, f: Finding| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if dir == root => return Err(e),
            Err(e) => {
                push(
                    &mut out,
                    unreadable(label, root, &dir, &e, "a directory that cannot be read"),
                );
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let shown = shown_path(root, &path);
            let place = format!("{label}: {shown}");
            for f in scan_text(
                &format!("{place} (its name)"),
                entry.file_name().as_encoded_bytes(),
                creds,
            ) {
                push(&mut out, f);
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                if meta.dev() == dev {
                    stack.push(path);
                }
            } else if ft.is_symlink() {
                if let Ok(target) = std::fs::read_link(&path) {
                    for f in scan_text(
                        &format!("{place} (link target)"),
                        target.as_os_str().as_encoded_bytes(),
                        creds,
                    ) {
                        push(&mut out, f);
                    }
                }
            } else if ft.is_file() {
                match scan_file(&path, creds, overlap, &mut buf) {
                    Ok((hits, n)) => {
                        stats.files += 1;
                        stats.bytes += n;
                        for c in hits {
                            push(
                                &mut out,
                                Finding {
                                    credential: c,
                                    place: place.clone(),
                                },
                            );
                        }
                    }
                    Err(e) => push(
                        &mut out,
                        unreadable(label, root, &path, &e, "a file that cannot be read"),
                    ),
                }
            }
        }
    }
    Ok((out, stats))
}

fn shown_path(root: &Path, path: &Path) -> String {
    format!(
        "/{}",
        path.strip_prefix(root).unwrap_or(path).to_string_lossy()
    )
}

fn unreadable(label: &str, root: &Path, path: &Path, e: &std::io::Error, what: &str) -> Finding {
    Finding {
        credential: format!("(not scanned: {what}: {e})"),
        place: format!("{label}: {}", shown_path(root, path)),
    }
}

/// The labels of the credentials found in one file, and the bytes read.
fn scan_file(
    path: &Path,
    creds: &[Credential],
    overlap: usize,
    buf: &mut [u8],
) -> std::io::Result<(Vec<String>, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut found: Vec<String> = Vec::new();
    let mut kept = 0usize; // bytes at the start of `buf` carried over from the last chunk
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf[kept..])?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let window = &buf[..kept + n];
        for c in creds {
            if !found.contains(&c.label) && memchr::memmem::find(window, &c.value).is_some() {
                found.push(c.label.clone());
            }
        }
        if found.len() == creds.len() {
            break;
        }
        let keep = overlap.saturating_sub(1).min(window.len());
        let start = window.len() - keep;
        buf.copy_within(start..kept + n, 0);
        kept = keep;
    }
    Ok((found, total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn creds() -> Vec<Credential> {
        vec![
            Credential::new("secret", "s3cr3t-VALUE-0123456789").unwrap(),
            Credential::new("id", "AKIAEXAMPLE12345").unwrap(),
        ]
    }

    #[test]
    fn short_values_are_not_searched() {
        assert!(Credential::new("x", "abc").is_none());
        assert!(format!("{:?}", creds()[0]).contains("redacted"));
        assert!(!format!("{:?}", creds()[0]).contains("s3cr3t"));
    }

    #[test]
    fn finds_values_in_files_names_links_and_across_chunk_borders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/deep")).unwrap();
        std::fs::write(root.join("etc/clean"), b"nothing here").unwrap();
        // The secret straddles the 1 MiB chunk border.
        let mut big = vec![b'x'; (1 << 20) - 5];
        big.extend_from_slice(b"s3cr3t-VALUE-0123456789");
        big.extend_from_slice(&[b'y'; 100]);
        std::fs::write(root.join("etc/deep/big"), &big).unwrap();
        std::fs::write(root.join("AKIAEXAMPLE12345.txt"), b"").unwrap();
        std::os::unix::fs::symlink("/s3cr3t-VALUE-0123456789", root.join("link")).unwrap();
        let (found, stats) = scan_tree("layer 1", root, &creds()).unwrap();
        let places: Vec<_> = found
            .iter()
            .map(|f| (f.credential.as_str(), f.place.as_str()))
            .collect();
        assert!(
            places.contains(&("secret", "layer 1: /etc/deep/big")),
            "{places:?}"
        );
        assert!(places.contains(&("id", "layer 1: /AKIAEXAMPLE12345.txt (its name)")));
        assert!(places.contains(&("secret", "layer 1: /link (link target)")));
        assert_eq!(found.len(), 3, "{places:?}");
        assert_eq!(stats.files, 3);
        assert_eq!(stats.bytes, big.len() as u64 + 12);
    }

    #[test]
    fn lines_are_named() {
        let log = "step 1\necho s3cr3t-VALUE-0123456789\nok\n";
        assert_eq!(
            scan_lines("build log", log, &creds()),
            vec![Finding {
                credential: "secret".into(),
                place: "build log line 2".into()
            }]
        );
    }
}
