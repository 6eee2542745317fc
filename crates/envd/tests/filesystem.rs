//! `filesystem.Filesystem` over real HTTP on loopback, on a real temp directory.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const FS: &str = "filesystem.Filesystem";

async fn call(envd: &Envd, method: &str, msg: Value) -> (u16, Value) {
    let (st, ct, body) = envd.unary(&format!("{FS}/{method}"), msg).await;
    assert_eq!(ct, "application/json");
    (st, body)
}

#[tokio::test]
async fn stat_reports_entry_info_and_not_found() {
    let envd = start().await;
    std::fs::write(envd.home.join("a.txt"), "hello").expect("write");
    let (st, body) = call(&envd, "Stat", json!({ "path": "a.txt" })).await;
    assert_eq!(st, 200);
    let e = &body["entry"];
    assert_eq!(e["name"], "a.txt");
    assert_eq!(e["type"], "FILE_TYPE_FILE");
    assert_eq!(e["path"], envd.home.join("a.txt").display().to_string());
    assert_eq!(e["size"], "5");
    assert_eq!(e["owner"], "root");
    assert!(e["modifiedTime"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (st, body) = call(&envd, "Stat", json!({ "path": "/nope" })).await;
    assert_eq!(
        (st, body),
        (
            404,
            json!({ "code": "not_found", "message": "path '/nope' does not exist" })
        )
    );
}

#[tokio::test]
async fn make_dir_creates_parents_owned_by_the_user_and_reports_already_exists() {
    let envd = start().await;
    let (st, body) = call(&envd, "MakeDir", json!({ "path": "x/y/z" })).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["entry"]["type"], "FILE_TYPE_DIRECTORY");
    assert_eq!(body["entry"]["owner"], "user");
    for p in ["x", "x/y", "x/y/z"] {
        assert_eq!(
            std::fs::metadata(envd.home.join(p)).expect("dir").uid(),
            UID
        );
    }
    let (st, body) = call(&envd, "MakeDir", json!({ "path": "x/y/z" })).await;
    assert_eq!((st, body["code"].as_str()), (409, Some("already_exists")));
    std::fs::write(envd.home.join("f"), "").expect("write");
    let (st, body) = call(&envd, "MakeDir", json!({ "path": "f" })).await;
    assert_eq!((st, body["code"].as_str()), (400, Some("invalid_argument")));
}

#[tokio::test]
async fn list_dir_honours_depth_and_symlinks() {
    let envd = start().await;
    let h = &envd.home;
    std::fs::create_dir_all(h.join("d/sub/deeper")).expect("mkdir");
    std::fs::write(h.join("d/f.txt"), "1").expect("write");
    std::fs::write(h.join("d/sub/g.txt"), "22").expect("write");
    std::os::unix::fs::symlink(h.join("d/f.txt"), h.join("d/link")).expect("symlink");
    let names = |body: &Value| -> Vec<String> {
        let mut v: Vec<String> = body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["path"].as_str().unwrap_or("").to_owned())
            .collect();
        v.sort();
        v
    };
    let d = h.join("d").display().to_string();
    let (st, body) = call(&envd, "ListDir", json!({ "path": d, "depth": 0 })).await;
    assert_eq!(st, 200);
    assert_eq!(
        names(&body),
        vec![
            format!("{d}/f.txt"),
            format!("{d}/link"),
            format!("{d}/sub")
        ]
    );
    let link = body["entries"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "link").cloned())
        .expect("link");
    assert_eq!(
        (link["type"].as_str(), link["isSymlink"].as_bool()),
        (Some("FILE_TYPE_FILE"), Some(true))
    );
    assert_eq!(link["symlinkTarget"], format!("{d}/f.txt"));
    let (_, body) = call(&envd, "ListDir", json!({ "path": d, "depth": 2 })).await;
    assert_eq!(names(&body).len(), 5, "{body}");
    let (st, body) = call(&envd, "ListDir", json!({ "path": format!("{d}/f.txt") })).await;
    assert_eq!((st, body["code"].as_str()), (400, Some("invalid_argument")));
    let (st, body) = call(&envd, "ListDir", json!({ "path": "/missing/dir" })).await;
    assert_eq!((st, body["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn move_and_remove() {
    let envd = start().await;
    std::fs::write(envd.home.join("src.txt"), "data").expect("write");
    let (st, body) = call(
        &envd,
        "Move",
        json!({ "source": "src.txt", "destination": "new/dir/dst.txt" }),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["entry"]["name"], "dst.txt");
    assert_eq!(
        std::fs::read_to_string(envd.home.join("new/dir/dst.txt")).expect("moved"),
        "data"
    );
    let (st, body) = call(
        &envd,
        "Move",
        json!({ "source": "src.txt", "destination": "x" }),
    )
    .await;
    assert_eq!((st, body["code"].as_str()), (404, Some("not_found")));

    let (st, body) = call(&envd, "Remove", json!({ "path": "new" })).await;
    assert_eq!((st, body), (200, json!({})));
    assert!(!envd.home.join("new").exists());
    let (st, _) = call(&envd, "Remove", json!({ "path": "new" })).await;
    assert_eq!(st, 200, "removing a missing path is not an error");
}

#[tokio::test]
async fn watch_dir_streams_start_then_events() {
    let envd = start().await;
    std::fs::create_dir(envd.home.join("w")).expect("mkdir");
    let msg = json!({ "path": "w", "recursive": false, "includeEntry": true });
    let mut s = envd
        .stream(
            &format!("{FS}/WatchDir"),
            msg,
            &[
                ("keepalive-ping-interval", "50"),
                ("connect-timeout-ms", "60000"),
            ],
        )
        .await;
    assert_eq!(s.next().await.expect("start").json, json!({ "start": {} }));
    std::fs::write(envd.home.join("w/new.txt"), "x").expect("write");
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Value| e["type"] == "EVENT_TYPE_WRITE") {
        let m = s.next().await.expect("event");
        assert_eq!(m.flags, 0);
        seen.push(m.json["filesystem"].clone());
    }
    assert_eq!(seen[0]["name"], "new.txt");
    assert_eq!(seen[0]["type"], "EVENT_TYPE_CREATE");
    assert_eq!(seen[0]["entry"]["name"], "new.txt");
    std::fs::remove_file(envd.home.join("w/new.txt")).expect("rm");
    loop {
        let m = s.next().await.expect("event");
        if m.json["filesystem"]["type"] == "EVENT_TYPE_REMOVE" {
            break;
        }
    }

    let (msgs, end) = envd
        .stream(
            &format!("{FS}/WatchDir"),
            json!({ "path": "/no/such" }),
            &[],
        )
        .await
        .collect()
        .await;
    assert!(msgs.is_empty());
    assert_eq!(end["error"]["code"], "not_found");
}

#[tokio::test]
async fn polling_watcher_collects_events_until_removed() {
    let envd = start().await;
    std::fs::create_dir_all(envd.home.join("p/sub")).expect("mkdir");
    let (st, body) = call(
        &envd,
        "CreateWatcher",
        json!({ "path": "p", "recursive": true }),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let id = body["watcherId"].as_str().expect("watcherId").to_owned();
    std::fs::write(envd.home.join("p/sub/deep.txt"), "x").expect("write");
    std::fs::rename(
        envd.home.join("p/sub/deep.txt"),
        envd.home.join("p/moved.txt"),
    )
    .expect("rename");
    let mut events = Vec::new();
    for _ in 0..50 {
        let (st, body) = call(&envd, "GetWatcherEvents", json!({ "watcher_id": id })).await;
        assert_eq!(st, 200);
        events.extend(body["events"].as_array().cloned().unwrap_or_default());
        if events.iter().any(|e| e["type"] == "EVENT_TYPE_RENAME")
            && events.iter().any(|e| e["name"] == "moved.txt")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "sub/deep.txt" && e["type"] == "EVENT_TYPE_CREATE"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "sub/deep.txt" && e["type"] == "EVENT_TYPE_RENAME"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "moved.txt" && e["type"] == "EVENT_TYPE_CREATE"),
        "{events:?}"
    );
    let (st, body) = call(&envd, "GetWatcherEvents", json!({ "watcherId": id })).await;
    assert_eq!(
        (st, body),
        (200, json!({ "events": [] })),
        "events are cleared once read"
    );
    let (st, _) = call(&envd, "RemoveWatcher", json!({ "watcherId": id })).await;
    assert_eq!(st, 200);
    let (st, body) = call(&envd, "GetWatcherEvents", json!({ "watcherId": id })).await;
    assert_eq!((st, body["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument() {
    let envd = start().await;
    let res = envd
        .http
        .post(format!("{}/{FS}/Stat", envd.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], "invalid_argument");
}

#[tokio::test]
async fn polling_watcher_backlog_is_bounded() {
    let envd = start().await;
    let dir = envd.home.join("many");
    std::fs::create_dir(&dir).expect("mkdir");
    let (_, body) = call(&envd, "CreateWatcher", json!({ "path": "many" })).await;
    let id = body["watcherId"].as_str().expect("watcherId").to_owned();
    let max = bulkhead_envd::MAX_PENDING_WATCH_EVENTS;
    for i in 0..max + 50 {
        std::fs::File::create(dir.join(format!("f{i}"))).expect("create");
    }
    // Let inotify deliver everything to the watcher.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (st, body) = call(&envd, "GetWatcherEvents", json!({ "watcherId": id })).await;
    assert_eq!(st, 200);
    assert_eq!(body["events"].as_array().map(Vec::len), Some(max));
}
