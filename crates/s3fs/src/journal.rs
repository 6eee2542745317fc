//! The upload journal: a local record of this mount's multipart uploads in progress, so
//! that the next mount of the same bucket and prefix aborts those a killed mount left
//! behind (S3 keeps, and bills, the parts of an upload nobody completes or aborts).
//!
//! One file per live mount, `<dir>/<scope>.<pid>.<nanos>.uploads`, locked (`flock`) for the
//! mount's life; `scope` is a hash of endpoint, bucket and prefix. Lines are `start HEXKEY
//! ID` and `end ID`. A mount starting up takes every journal of its scope whose lock is
//! free (its mount is dead), aborts the uploads started and not ended there, and removes
//! it. Another live mount's uploads are never touched.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use sha2::Digest;

use crate::client::S3Client;

/// This mount's journal.
pub(crate) struct Journal {
    file: Mutex<(Flock<File>, usize)>,
    path: PathBuf,
}

impl Journal {
    /// Aborts the uploads that dead mounts of this scope left (see the module docs), then
    /// opens this mount's journal in `dir`.
    ///
    /// # Errors
    /// When `dir` or the journal cannot be created or locked.
    pub(crate) async fn open(
        dir: &Path,
        scope_of: (&str, &str, &str),
        client: &S3Client,
    ) -> std::io::Result<Self> {
        let (endpoint, bucket, prefix) = scope_of;
        let digest = sha2::Sha256::digest(format!("{endpoint}\n{bucket}\n{prefix}").as_bytes());
        let scope = hex::encode(&digest[..8]);
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&format!("{scope}.")) && name.ends_with(".uploads") {
                recover(&entry.path(), client).await;
            }
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!("{scope}.{}.{nanos}.uploads", std::process::id()));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        Ok(Self {
            file: Mutex::new((file, 0)),
            path,
        })
    }

    /// Records that upload `id` of `key` started.
    pub(crate) fn started(&self, key: &str, id: &str) {
        self.write(&format!("start {} {id}\n", hex::encode(key)), 1);
    }

    /// Records that upload `id` was completed or aborted.
    pub(crate) fn ended(&self, id: &str) {
        self.write(&format!("end {id}\n"), -1);
    }

    fn write(&self, line: &str, delta: isize) {
        let mut g = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (file, open) = &mut *g;
        *open = open.saturating_add_signed(delta);
        // Nothing in progress: start the file afresh so it does not grow for ever.
        let r = if *open == 0 && delta < 0 {
            file.set_len(0)
        } else {
            file.write_all(line.as_bytes())
        };
        if let Err(e) = r {
            tracing::warn!(journal = %self.path.display(), error = %e, "upload journal not written");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Aborts what the journal at `path` left open, if its mount is dead; removes it when done.
async fn recover(path: &Path, client: &S3Client) {
    let Ok(file) = File::open(path) else { return };
    let Ok(file) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        return; // a live mount holds it
    };
    let mut open: HashMap<String, String> = HashMap::new();
    for line in BufReader::new(&*file).lines().map_while(Result::ok) {
        let mut f = line.splitn(3, ' ');
        match (f.next(), f.next(), f.next()) {
            (Some("start"), Some(key), Some(id)) => {
                let key = hex::decode(key)
                    .ok()
                    .and_then(|k| String::from_utf8(k).ok());
                if let Some(key) = key {
                    open.insert(id.to_string(), key);
                }
            }
            (Some("end"), Some(id), None) => {
                open.remove(id);
            }
            _ => {}
        }
    }
    let mut all = true;
    for (id, key) in &open {
        match client.abort_multipart(key, id).await {
            Ok(()) => tracing::info!(%key, "aborted a multipart upload a dead mount left"),
            Err(e) => {
                all = false;
                tracing::warn!(%key, error = %e, "cannot abort a multipart upload a dead mount left");
            }
        }
    }
    if all {
        let _ = std::fs::remove_file(path);
    }
}
