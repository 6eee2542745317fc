//! envd acts as the request's user: the attacks of a sandbox's own code on envd's root rights
//! (a planted symlink, a read of root's files, a listing of a private directory) fail for
//! `user` and work for `root`, as they would for those users' own processes.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use serde_json::json;

fn files_url(envd: &Envd, path: &std::path::Path, user: Option<&str>) -> String {
    let mut url = format!("{}/files?path={}", envd.base, path.display());
    if let Some(u) = user {
        url.push_str(&format!("&username={u}"));
    }
    url
}

fn root_only_file(envd: &Envd, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    let path = envd.root.path().join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[tokio::test]
async fn a_symlink_planted_by_the_user_does_not_let_a_write_replace_roots_file() {
    let envd = start().await;
    // The user's code: `ln -s /etc/passwd ~/report.txt` (here a root file of the fixture).
    let target = root_only_file(&envd, "passwd-like", "root:x:0:0\n", 0o644);
    let link = envd.home.join("report.txt");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(UID), Some(UID)).expect("lchown");

    // The client's ordinary write of the report, as the default user.
    let res = envd
        .http
        .post(files_url(&envd, &link, None))
        .header("content-type", "application/octet-stream")
        .body("pwned\n")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 403, "{:?}", res.text().await);
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "root:x:0:0\n"
    );

    // The same through a symlinked directory, with a new file below it.
    let private = envd.root.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::os::unix::fs::symlink(&private, envd.home.join("out")).expect("symlink");
    let res = envd
        .http
        .post(files_url(&envd, &envd.home.join("out/new.txt"), None))
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 403);
    assert!(!private.join("new.txt").exists());

    // Root may, as root's own process may.
    let res = envd
        .http
        .post(files_url(&envd, &link, Some("root")))
        .header("content-type", "application/octet-stream")
        .body("by root\n")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        std::fs::read_to_string(&target).expect("target"),
        "by root\n"
    );
}

#[tokio::test]
async fn reads_and_listings_have_the_users_permissions() {
    let envd = start().await;
    let secret = root_only_file(&envd, "secret", "s3cr3t", 0o600);
    let res = envd
        .http
        .get(files_url(&envd, &secret, None))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status().as_u16(), 403);
    let body = res.text().await.expect("body");
    assert!(!body.contains("s3cr3t"), "{body}");
    let res = envd
        .http
        .get(files_url(&envd, &secret, Some("root")))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "s3cr3t");

    // A private directory: listing and creating in it are refused, stat of it is allowed.
    let private = envd.root.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(private.join("inside"), "x").expect("write");
    let p = private.display().to_string();
    let (status, _, body) = envd
        .unary(
            "filesystem.Filesystem/ListDir",
            json!({ "path": p, "depth": 1 }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let (status, _, body) = envd
        .unary(
            "filesystem.Filesystem/MakeDir",
            json!({ "path": format!("{p}/sub") }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let (status, _, body) = envd
        .unary(
            "filesystem.Filesystem/Remove",
            json!({ "path": format!("{p}/inside") }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
    assert!(private.join("inside").exists());
    let (status, _, _) = envd
        .unary("filesystem.Filesystem/Stat", json!({ "path": p }))
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = envd
        .unary_with(
            "filesystem.Filesystem/ListDir",
            json!({ "path": p, "depth": 1 }),
            &[("authorization", &basic("root"))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(1));

    // Watching needs the right to read the directory, as inotify does.
    let (status, _, body) = envd
        .unary("filesystem.Filesystem/CreateWatcher", json!({ "path": p }))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("permission_denied"))
    );
}

#[tokio::test]
async fn what_the_user_creates_is_the_users_and_groups_apply() {
    let envd = start().await;
    // A directory of group `extra` (1234, of which `user` is a member), group-writable.
    let shared = envd.root.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::os::unix::fs::chown(&shared, Some(0), Some(1234)).expect("chown");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let file = shared.join("deep/er/f.txt");
    let res = envd
        .http
        .post(files_url(&envd, &file, None))
        .header("content-type", "application/octet-stream")
        .header("x-metadata-kind", "report")
        .body("data")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200, "{:?}", res.text().await);
    for p in [shared.join("deep"), shared.join("deep/er"), file.clone()] {
        let m = std::fs::metadata(&p).expect("created");
        assert_eq!((m.uid(), m.gid()), (UID, UID), "{}", p.display());
    }
    // A root-owned file the user may write keeps its owner, as `echo > file` would.
    let open = root_only_file(&envd, "world-writable", "old", 0o666);
    let res = envd
        .http
        .post(files_url(&envd, &open, None))
        .header("content-type", "application/octet-stream")
        .body("new")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(std::fs::metadata(&open).expect("meta").uid(), 0);
    assert_eq!(std::fs::read_to_string(&open).expect("read"), "new");
}

#[tokio::test]
async fn threads_get_envds_identity_back_after_acting_as_the_user() {
    let envd = start().await;
    let private = envd.root.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let p = private.display().to_string();
    // Interleave user and root calls, many at once, so pooled threads serve both.
    let mut calls = Vec::new();
    for i in 0..64 {
        let (envd_ref, p) = (&envd, p.clone());
        calls.push(async move {
            if i % 2 == 0 {
                let (s, _, _) = envd_ref
                    .unary_with(
                        "filesystem.Filesystem/ListDir",
                        json!({ "path": p, "depth": 1 }),
                        &[("authorization", &basic("root"))],
                    )
                    .await;
                (i, s, 200)
            } else {
                let (s, _, _) = envd_ref
                    .unary(
                        "filesystem.Filesystem/ListDir",
                        json!({ "path": p, "depth": 1 }),
                    )
                    .await;
                (i, s, 403)
            }
        });
    }
    for (i, got, want) in futures_util::future::join_all(calls).await {
        assert_eq!(got, want, "call {i}");
    }
    // envd's own identity is untouched: root's call after all of them still works.
    let (s, _, _) = envd
        .unary_with(
            "filesystem.Filesystem/ListDir",
            json!({ "path": p, "depth": 1 }),
            &[("authorization", &basic("root"))],
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_recursive_watch_shows_only_what_the_user_could_list() {
    let envd = start().await;
    let private = envd.root.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let (status, _, body) = envd
        .unary(
            "filesystem.Filesystem/CreateWatcher",
            json!({ "path": envd.root.path().display().to_string(), "recursive": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["watcherId"].as_str().expect("id").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    std::fs::write(private.join("root-secret-name"), "x").expect("write");
    std::fs::write(envd.home.join("visible-name"), "y").expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, _, body) = envd
        .unary(
            "filesystem.Filesystem/GetWatcherEvents",
            json!({ "watcherId": id }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    assert!(text.contains("visible-name"), "{text}");
    assert!(!text.contains("root-secret-name"), "{text}");
}
