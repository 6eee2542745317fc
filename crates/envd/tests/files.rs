//! `/files`, `/health`, `/envs`, `/init` and the access token, over real HTTP on loopback.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;

use bulkhead_envd::file_signature;
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "envd-secret-token";

fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XboundaryX";
    let mut body = Vec::new();
    for (field, filename, data) in parts {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").expect("write");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").expect("write");
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn multipart_upload_with_path_then_download() {
    let envd = start().await;
    let (ct, body) = multipart(&[("file", "ignored-when-path-given", b"hello")]);
    let res = envd
        .http
        .post(format!("{}/files?path=dir/a.txt", envd.base))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200);
    let written: Value = res.json().await.expect("json");
    let path = envd.home.join("dir/a.txt");
    assert_eq!(
        written,
        json!([{ "path": path.display().to_string(), "name": "a.txt", "type": "file" }])
    );
    let meta = std::fs::metadata(&path).expect("written");
    assert_eq!((meta.uid(), meta.gid()), (UID, UID));
    assert_eq!(
        std::fs::metadata(envd.home.join("dir")).expect("dir").uid(),
        UID
    );

    let res = envd
        .http
        .get(format!("{}/files?path=dir/a.txt", envd.base))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("inline; filename=\"a.txt\"")
    );
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), b"hello");
}

#[tokio::test]
async fn multipart_multi_file_uses_filenames_and_rejects_duplicates() {
    let envd = start().await;
    let abs = envd.home.join("abs.bin").display().to_string();
    let (ct, body) = multipart(&[
        ("file", &abs, b"1"),
        ("other", "x", b"ignored"),
        ("file", "rel/y.bin", b"22"),
    ]);
    let res = envd
        .http
        .post(format!("{}/files", envd.base))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200);
    let written: Value = res.json().await.expect("json");
    assert_eq!(written.as_array().map(Vec::len), Some(2));
    assert_eq!(
        std::fs::read(envd.home.join("rel/y.bin")).expect("y"),
        b"22"
    );
    assert!(!envd.home.join("x").exists());

    let (ct, body) = multipart(&[("file", "same", b"1"), ("file", "same", b"2")]);
    let res = envd
        .http
        .post(format!("{}/files", envd.base))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test]
async fn octet_stream_and_gzip_uploads_with_metadata() {
    let envd = start().await;
    let res = envd
        .http
        .post(format!("{}/files?path=raw.bin", envd.base))
        .header("content-type", "application/octet-stream")
        .header("x-metadata-Owner", "alice")
        .body(vec![7u8; 100_000])
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200);
    let written: Value = res.json().await.expect("json");
    assert_eq!(written[0]["metadata"], json!({ "owner": "alice" }));
    assert_eq!(
        std::fs::read(envd.home.join("raw.bin")).expect("raw"),
        vec![7u8; 100_000]
    );
    let (_, _, stat) = envd
        .unary("filesystem.Filesystem/Stat", json!({ "path": "raw.bin" }))
        .await;
    assert_eq!(stat["entry"]["metadata"], json!({ "owner": "alice" }));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"compressed text").expect("gzip");
    let res = envd
        .http
        .post(format!("{}/files?path=gz.txt", envd.base))
        .header("content-type", "application/octet-stream")
        .header("content-encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        std::fs::read_to_string(envd.home.join("gz.txt")).expect("gz"),
        "compressed text"
    );
    // Re-upload without metadata headers: old metadata is replaced (cleared).
    let res = envd
        .http
        .post(format!("{}/files?path=raw.bin", envd.base))
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .expect("upload");
    let written: Value = res.json().await.expect("json");
    assert!(written[0].get("metadata").is_none(), "{written}");

    let res = envd
        .http
        .post(format!("{}/files", envd.base))
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 400, "raw upload needs a path");
    let res = envd
        .http
        .post(format!("{}/files?path=/", envd.base))
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 400, "target is a directory");
    let latin1 =
        reqwest::header::HeaderValue::from_bytes(b"caf\xe9").expect("obs-text header value");
    let res = envd
        .http
        .post(format!("{}/files?path=m", envd.base))
        .header("content-type", "application/octet-stream")
        .header("x-metadata-k", latin1)
        .body("x")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 400, "non-ASCII metadata is refused");
}

#[tokio::test]
async fn download_gzip_404_and_directory() {
    let envd = start().await;
    std::fs::write(envd.home.join("t.txt"), "zip me").expect("write");
    let res = envd
        .http
        .get(format!("{}/files?path=t.txt", envd.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let raw = res.bytes().await.expect("bytes");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    assert_eq!(text, "zip me");

    let res = envd
        .http
        .get(format!("{}/files?path=/no/file", envd.base))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 404);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "code": 404, "message": "path '/no/file' does not exist" })
    );
    let res = envd
        .http
        .get(format!("{}/files?path=/", envd.base))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 400);
    let res = envd
        .http
        .get(format!("{}/files?path=t.txt&username=ghost", envd.base))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn access_token_guards_rpc_and_files_but_not_health() {
    let mut envd = start_with(|c| c.access_token = token(TOKEN)).await;
    let res = envd
        .http
        .get(format!("{}/health", envd.base))
        .send()
        .await
        .expect("health");
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );

    let (st, _, body) = envd
        .unary("filesystem.Filesystem/Stat", json!({ "path": "/" }))
        .await;
    assert_eq!(st, 200, "{body}");
    envd.token = None;
    let (st, ct, body) = envd
        .unary("filesystem.Filesystem/Stat", json!({ "path": "/" }))
        .await;
    assert_eq!(
        (st, ct.as_str(), body["code"].as_i64()),
        (401, "application/json; charset=utf-8", Some(401))
    );
    envd.token = Some("wrong".into());
    let (st, _, _) = envd.unary("process.Process/List", json!({})).await;
    assert_eq!(st, 401);
    let res = envd
        .http
        .get(format!("{}/files?path=/etc/hostname", envd.base))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 401);
    let res = envd
        .http
        .get(format!("{}/envs", envd.base))
        .send()
        .await
        .expect("envs");
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn signed_urls_are_accepted_and_bad_or_expired_ones_refused() {
    let envd = start_with(|c| c.access_token = token(TOKEN)).await;
    let path = envd.home.join("s.txt").display().to_string();
    std::fs::write(&path, "signed").expect("write");
    let sig = file_signature(&path, "read", "", TOKEN, None);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/files", envd.base),
        &[("path", path.as_str()), ("signature", sig.as_str())],
    )
    .expect("url");
    let res = envd.http.get(url.clone()).send().await.expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("text"), "signed");
    // A wrong token header is refused even with a valid signature.
    let res = envd
        .http
        .get(url)
        .header("x-access-token", "wrong")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 401);
    // Signed for read, used for write.
    let url = reqwest::Url::parse_with_params(
        &format!("{}/files", envd.base),
        &[("path", path.as_str()), ("signature", sig.as_str())],
    )
    .expect("url");
    let res = envd
        .http
        .post(url)
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 401);

    let exp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        + 60) as i64;
    let sig = file_signature("up.txt", "write", "user", TOKEN, Some(exp));
    let exp_s = exp.to_string();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/files", envd.base),
        &[
            ("path", "up.txt"),
            ("username", "user"),
            ("signature", sig.as_str()),
            ("signature_expiration", exp_s.as_str()),
        ],
    )
    .expect("url");
    let res = envd
        .http
        .post(url)
        .header("content-type", "application/octet-stream")
        .body("up")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        std::fs::read_to_string(envd.home.join("up.txt")).expect("up"),
        "up"
    );

    let past = exp - 3600;
    let sig = file_signature(&path, "read", "", TOKEN, Some(past));
    let past_s = past.to_string();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/files", envd.base),
        &[
            ("path", path.as_str()),
            ("signature", sig.as_str()),
            ("signature_expiration", past_s.as_str()),
        ],
    )
    .expect("url");
    let res = envd.http.get(url).send().await.expect("get");
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn init_sets_env_user_workdir_and_token() {
    let mut envd = start().await;
    let workdir = envd.root.path().join("work");
    std::fs::create_dir(&workdir).expect("mkdir");
    let body = json!({ "envVars": { "FROM_INIT": "yes" }, "accessToken": TOKEN, "defaultUser": "root", "defaultWorkdir": workdir });
    let res = envd
        .http
        .post(format!("{}/init", envd.base))
        .json(&body)
        .send()
        .await
        .expect("init");
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(
        res.headers()
            .get("x-envd-version")
            .and_then(|v| v.to_str().ok()),
        Some(bulkhead_envd::ENVD_VERSION)
    );
    let (st, _, _) = envd.unary("process.Process/List", json!({})).await;
    assert_eq!(st, 401, "the token from /init is now required");
    envd.token = Some(TOKEN.into());
    let (msgs, _) = envd
        .run("echo $FROM_INIT $(id -u) $(pwd)", json!({}), &[])
        .await
        .collect()
        .await;
    assert_eq!(
        output(&msgs, "stdout"),
        format!("yes 0 {}\n", workdir.display())
    );
    let res = envd
        .http
        .get(format!("{}/envs", envd.base))
        .header("x-access-token", TOKEN)
        .send()
        .await
        .expect("envs");
    assert_eq!(
        res.json::<Value>().await.expect("json"),
        json!({ "FROM_INIT": "yes" })
    );
    // Once a token is set, /init must prove it.
    let res = envd
        .http
        .post(format!("{}/init", envd.base))
        .json(&json!({ "defaultUser": "user" }))
        .send()
        .await
        .expect("init");
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn a_missing_default_user_is_a_clear_error_not_a_panic() {
    let envd = start_with(|c| c.default_user = "nosuchuser".into()).await;
    let (msgs, end) = envd.run("true", json!({}), &[]).await.collect().await;
    assert!(msgs.is_empty());
    assert_eq!(
        end["error"],
        json!({ "code": "unauthenticated", "message": "invalid username: 'nosuchuser'" })
    );
    let (st, _, body) = envd
        .unary("filesystem.Filesystem/ListDir", json!({ "path": "/" }))
        .await;
    assert_eq!(
        (st, body["message"].as_str()),
        (401, Some("invalid username: 'nosuchuser'"))
    );
    let res = envd
        .http
        .get(format!("{}/files?path=/etc/hostname", envd.base))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "code": 401, "message": "invalid username: 'nosuchuser'" })
    );
    // Naming an existing user still works.
    let (msgs, _) = envd
        .run(
            "id -u",
            json!({ "process": { "cwd": "/" } }),
            &[("authorization", &basic("root"))],
        )
        .await
        .collect()
        .await;
    assert_eq!(output(&msgs, "stdout"), "0\n");
}

#[tokio::test]
async fn metrics_report_resources() {
    let envd = start().await;
    let res = envd
        .http
        .get(format!("{}/metrics", envd.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status().as_u16(), 200);
    let m: Value = res.json().await.expect("json");
    for k in [
        "ts",
        "cpu_count",
        "cpu_used_pct",
        "mem_total",
        "mem_used",
        "mem_cache",
        "mem_total_mib",
        "mem_used_mib",
        "disk_used",
        "disk_total",
    ] {
        assert!(m[k].is_number(), "{k} missing in {m}");
    }
    assert!(
        m["cpu_count"].as_u64() >= Some(1)
            && m["mem_total"].as_u64() > Some(0)
            && m["disk_total"].as_u64() > Some(0),
        "{m}"
    );
}

#[tokio::test]
async fn client_runs_commands_and_checks_health() {
    use bulkhead_envd::client::{EnvdClient, RunOptions};
    let envd = start_with(|c| c.access_token = token(TOKEN)).await;
    let client = EnvdClient::new(&envd.base, token(TOKEN));
    assert!(client.health().await.expect("health"));
    let out = client
        .run("echo out; echo err >&2; exit 2", &RunOptions::default())
        .await
        .expect("run");
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 2)
    );
    assert_eq!(out.error.as_deref(), Some("exit status 2"));
    let opts = RunOptions {
        user: Some("root".into()),
        cwd: Some("/".into()),
        ..Default::default()
    };
    let out = client.run("id -u; pwd", &opts).await.expect("run");
    assert_eq!(out.stdout, b"0\n/\n");
    let bad = EnvdClient::new(&envd.base, None);
    assert!(bad.run("true", &RunOptions::default()).await.is_err());
}
