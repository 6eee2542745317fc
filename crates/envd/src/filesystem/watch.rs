//! Directory watching: the `WatchDir` stream and the polling `CreateWatcher` /
//! `GetWatcherEvents` / `RemoveWatcher` trio, both on inotify (through `notify`).
//!
//! Event mapping (as fsnotify reports inotify): created or moved-in → CREATE, content written
//! → WRITE, removed → REMOVE, moved away (old name) → RENAME, attributes → CHMOD. Event names
//! are relative to the watched directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::entry::{EntryInfo, entry_info};
use super::error::FsError;
use crate::auth::rpc_user;
use crate::connect::stream::{self, StreamSink};
use crate::connect::unary::{StreamRequest, Unary};
use crate::connect::{Code, ConnectError, unary_ok};
use crate::identity;
use crate::paths;
use crate::state::SharedState;
use crate::users::{Names, User, UserDb};

/// `WatchDirRequest` / `CreateWatcherRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WatchRequest {
    /// Directory to watch.
    pub path: String,
    /// Watch subdirectories too.
    pub recursive: bool,
    /// Attach an `EntryInfo` to each event.
    #[serde(alias = "include_entry")]
    pub include_entry: bool,
    /// Allow watching NFS/SMB/FUSE mounts.
    #[serde(alias = "allow_network_mounts")]
    pub allow_network_mounts: bool,
}

/// `FilesystemEvent`.
#[derive(Debug, Clone, Serialize)]
pub struct FsEvent {
    /// Path relative to the watched directory.
    pub name: String,
    /// `EVENT_TYPE_*`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The entry, when asked for and still present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryInfo>,
}

/// Watcher id request (`GetWatcherEvents`, `RemoveWatcher`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WatcherIdRequest {
    /// The id from `CreateWatcher`.
    #[serde(alias = "watcher_id")]
    pub watcher_id: String,
}

struct Polling {
    _watcher: RecommendedWatcher,
    events: Arc<Mutex<Vec<FsEvent>>>,
}

/// Polling watchers by id.
#[derive(Default)]
pub struct WatcherTable {
    inner: Mutex<HashMap<String, Polling>>,
}

impl std::fmt::Debug for WatcherTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatcherTable").finish_non_exhaustive()
    }
}

/// Events a watcher holds for its reader (stream backlog, or events between two
/// `GetWatcherEvents` calls); beyond it new events are dropped so memory stays bounded.
pub const MAX_PENDING_EVENTS: usize = 10_000;

/// Filesystem magic numbers treated as network mounts.
const NETWORK_FS: &[i64] = &[
    0x6969,
    0x517B,
    0xFF53_4D42,
    0xFE53_4D42,
    0x6573_5546,
    0x00C3_6400,
];

/// Checks the path and starts an inotify watcher that calls `deliver` with each event.
/// The checks run as `user`, who must be able to read the directory as inotify requires of
/// the user's own process (notify adds the kernel watches from a thread of its own, with
/// envd's rights, so the directory is opened here first).
fn start_watcher(
    dir: PathBuf,
    user: &User,
    req: &WatchRequest,
    users: UserDb,
    deliver: impl Fn(FsEvent) + Send + 'static,
) -> Result<RecommendedWatcher, FsError> {
    {
        let _acting = identity::act_as(user).map_err(|e| FsError::io("act as", &dir, e))?;
        let meta = std::fs::metadata(&dir).map_err(|e| FsError::io("stat", &dir, e))?;
        if !meta.is_dir() {
            return Err(FsError::NotADirectory(dir));
        }
        std::fs::read_dir(&dir).map_err(|e| FsError::io("open directory", &dir, e))?;
    }
    if !req.allow_network_mounts {
        let fs =
            nix::sys::statfs::statfs(&dir).map_err(|e| FsError::io("statfs", &dir, e.into()))?;
        #[allow(clippy::unnecessary_cast)]
        if NETWORK_FS.contains(&(fs.filesystem_type().0 as i64)) {
            return Err(FsError::NetworkMount(dir));
        }
    }
    let include_entry = req.include_entry;
    // Owner names are read once per watcher, not once per event.
    let names = if include_entry {
        users.names()
    } else {
        Names::default()
    };
    let root = dir.clone();
    let watcher_user = user.clone();
    let recursive = req.recursive;
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        for (path, event_type) in classify(&ev) {
            // notify watches the subdirectories of a recursive watch with envd's rights: an
            // event is only the user's to see when the user could list where it happened
            // (and its entry is read as the user).
            let Ok(_acting) = identity::act_as(&watcher_user) else {
                continue;
            };
            if recursive
                && path
                    .parent()
                    .is_some_and(|parent| parent != root && std::fs::read_dir(parent).is_err())
            {
                continue;
            }
            let name = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            let entry = if include_entry {
                entry_info(path, &names).ok()
            } else {
                None
            };
            drop(_acting);
            deliver(FsEvent {
                name,
                event_type,
                entry,
            });
        }
    })
    .map_err(|e| FsError::io("watch", &dir, std::io::Error::other(e)))?;
    let mode = if req.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    watcher
        .watch(&dir, mode)
        .map_err(|e| FsError::io("watch", &dir, std::io::Error::other(e)))?;
    Ok(watcher)
}

/// The (path, event type) pairs of one notify event.
fn classify(ev: &notify::Event) -> Vec<(&Path, &'static str)> {
    let t = match ev.kind {
        EventKind::Create(_) => "EVENT_TYPE_CREATE",
        EventKind::Remove(_) => "EVENT_TYPE_REMOVE",
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any | ModifyKind::Other) => {
            "EVENT_TYPE_WRITE"
        }
        EventKind::Modify(ModifyKind::Metadata(_)) => "EVENT_TYPE_CHMOD",
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => "EVENT_TYPE_RENAME",
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => "EVENT_TYPE_CREATE",
        // `Both` repeats a From/To pair already reported; `Any` is an unpaired move.
        EventKind::Modify(ModifyKind::Name(RenameMode::Any | RenameMode::Other)) => {
            "EVENT_TYPE_RENAME"
        }
        _ => return Vec::new(),
    };
    ev.paths.iter().map(|p| (p.as_path(), t)).collect()
}

fn resolve_dir(
    state: &SharedState,
    headers: &HeaderMap,
    path: &str,
) -> Result<(PathBuf, User), ConnectError> {
    let user = rpc_user(state, headers)?;
    let dir = paths::resolve(path, &user, state.settings().default_workdir.as_deref());
    Ok((dir, user))
}

/// `WatchDir`: `{"start":{}}`, then events and keepalives until the client leaves or the
/// `Connect-Timeout-Ms` deadline passes.
#[tracing::instrument(skip_all)]
pub async fn watch_dir(
    State(state): State<SharedState>,
    headers: HeaderMap,
    StreamRequest(req): StreamRequest<WatchRequest>,
) -> Response {
    let (tx, rx) = mpsc::channel(MAX_PENDING_EVENTS);
    let started = req.and_then(|req| {
        let (dir, user) = resolve_dir(&state, &headers, &req.path)?;
        let watcher = start_watcher(dir, &user, &req, state.users.clone(), move |e| {
            if tx.try_send(e).is_err() {
                tracing::warn!("watch stream is not keeping up: event dropped");
            }
        })?;
        Ok(watcher)
    });
    let watcher = match started {
        Ok(w) => w,
        Err(e) => return stream::error_response(e),
    };
    let keepalive = stream::keepalive_interval(&headers, state.config.default_keepalive);
    let deadline = stream::timeout(&headers).map(|d| Instant::now() + d);
    let (sink, res) = stream::channel();
    tokio::spawn(async move {
        forward(sink, rx, keepalive, deadline).await;
        drop(watcher);
    });
    res
}

async fn forward(
    sink: StreamSink,
    mut rx: mpsc::Receiver<FsEvent>,
    keepalive: Duration,
    deadline: Option<Instant>,
) {
    if sink
        .send(&serde_json::json!({ "start": {} }))
        .await
        .is_err()
    {
        return;
    }
    let ka = tokio::time::sleep(keepalive);
    tokio::pin!(ka);
    let until = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else {
                    sink.finish(Err(ConnectError::new(Code::Internal, "watcher stopped"))).await;
                    return;
                };
                if sink.send(&serde_json::json!({ "filesystem": ev })).await.is_err() {
                    return;
                }
                ka.as_mut().reset(Instant::now() + keepalive);
            }
            () = &mut ka => {
                if sink.send(&serde_json::json!({ "keepalive": {} })).await.is_err() {
                    return;
                }
                ka.as_mut().reset(Instant::now() + keepalive);
            }
            () = &mut until => {
                sink.finish(Err(ConnectError::new(Code::DeadlineExceeded, "watch deadline exceeded"))).await;
                return;
            }
            () = sink.closed() => return,
        }
    }
}

fn reply(r: Result<serde_json::Value, ConnectError>) -> Response {
    match r {
        Ok(v) => unary_ok(&v),
        Err(e) => e.into_response(),
    }
}

/// `CreateWatcher`: start a polling watcher, return its id.
#[tracing::instrument(skip_all)]
pub async fn create_watcher(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Unary(req): Unary<WatchRequest>,
) -> Response {
    reply((|| {
        let (dir, user) = resolve_dir(&state, &headers, &req.path)?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let watcher = start_watcher(dir, &user, &req, state.users.clone(), move |e| {
            let mut events = sink.lock().unwrap_or_else(|p| p.into_inner());
            if events.len() < MAX_PENDING_EVENTS {
                events.push(e);
            }
        })?;
        let id = new_watcher_id();
        state.watchers.lock().insert(
            id.clone(),
            Polling {
                _watcher: watcher,
                events,
            },
        );
        Ok(serde_json::json!({ "watcherId": id }))
    })())
}

/// `GetWatcherEvents`: the events since the last call.
pub async fn get_watcher_events(
    State(state): State<SharedState>,
    Unary(req): Unary<WatcherIdRequest>,
) -> Response {
    reply((|| {
        let table = state.watchers.lock();
        let w = table
            .get(&req.watcher_id)
            .ok_or_else(|| FsError::WatcherNotFound(req.watcher_id.clone()))?;
        let events: Vec<FsEvent> =
            std::mem::take(&mut *w.events.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(serde_json::json!({ "events": events }))
    })())
}

/// `RemoveWatcher`: stop it.
pub async fn remove_watcher(
    State(state): State<SharedState>,
    Unary(req): Unary<WatcherIdRequest>,
) -> Response {
    reply((|| {
        state
            .watchers
            .lock()
            .remove(&req.watcher_id)
            .ok_or_else(|| FsError::WatcherNotFound(req.watcher_id.clone()))?;
        Ok(serde_json::json!({}))
    })())
}

impl WatcherTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Polling>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn new_watcher_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "w{:x}{:x}",
        nanos & 0xffff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
