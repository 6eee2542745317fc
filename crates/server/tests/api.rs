//! The API's routing, authentication, bodies and error mapping, through `Router::oneshot`
//! over the in-memory backend: no listener, no sandboxes, no root. The same router over the
//! real manager is tested end to end in crates/bulkhead/tests/serve_api.rs and tests/sdk.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bulkhead_server::api::auth::{Authenticator, KeyCheckFailed};
use bulkhead_server::manager::TeamId;
use bulkhead_server::{AppState, api};
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "bk_team_a";
const OTHER_KEY: &str = "bk_team_b";

fn app_with(auth: Arc<dyn Authenticator>) -> Router {
    api::router::<common::Memory>().with_state(AppState {
        manager: Arc::new(common::Memory::new()),
        auth,
        domain: "example.test".into(),
        templates: None,
    })
}

fn app() -> Router {
    let keys: HashMap<String, TeamId> = [
        (KEY.to_string(), TeamId::new("team-a")),
        (OTHER_KEY.to_string(), TeamId::new("team-b")),
    ]
    .into();
    app_with(Arc::new(keys))
}

/// A response: status, headers, body as JSON (`Null` when empty or not JSON).
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Resp {
    /// Asserts an E2B error body: `{code: status, message: string}`.
    fn assert_error(&self, expect: StatusCode) -> &str {
        assert_eq!(self.status, expect, "{}", self.body);
        assert_eq!(
            self.body["code"].as_u64(),
            Some(u64::from(expect.as_u16())),
            "{}",
            self.body
        );
        self.body["message"].as_str().expect("a message")
    }
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// A request with team A's key.
async fn api(app: &Router, method: &str, path: &str, body: &str) -> Resp {
    send(app, method, path, &[("x-api-key", KEY)], body).await
}

async fn create(app: &Router, body: &str) -> Value {
    let r = api(app, "POST", "/v2/sandboxes", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

fn id_of(v: &Value) -> String {
    v["sandboxID"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401_with_an_e2b_body() {
    let app = app();
    assert_eq!(
        send(&app, "GET", "/health", &[], "").await.status,
        StatusCode::NO_CONTENT
    );
    for headers in [&[][..], &[("x-api-key", "wrong")], &[("x-api-key", "   ")]] {
        for (method, path) in [
            ("GET", "/v2/sandboxes"),
            ("POST", "/v2/sandboxes"),
            ("GET", "/sandboxes/mem0001"),
            ("DELETE", "/sandboxes/mem0001"),
        ] {
            let r = send(&app, method, path, headers, r#"{"templateID":"base"}"#).await;
            r.assert_error(StatusCode::UNAUTHORIZED);
        }
    }
}

struct Failing;

impl Authenticator for Failing {
    fn team_for(&self, _key: &str) -> Result<Option<TeamId>, KeyCheckFailed> {
        Err(KeyCheckFailed("database is locked".into()))
    }
}

#[tokio::test]
async fn keys_that_cannot_be_checked_are_503_not_401() {
    let app = app_with(Arc::new(Failing));
    let r = api(&app, "GET", "/v2/sandboxes", "").await;
    let message = r.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(!message.contains("locked"), "internals leaked: {message}");
}

#[tokio::test]
async fn unknown_and_foreign_sandboxes_are_404() {
    let app = app();
    let id = id_of(&create(&app, r#"{"templateID":"base"}"#).await);
    for sandbox in ["nosuch", id.as_str()] {
        for (method, path, body) in [
            ("GET", format!("/sandboxes/{sandbox}"), ""),
            ("DELETE", format!("/sandboxes/{sandbox}"), ""),
            (
                "POST",
                format!("/sandboxes/{sandbox}/timeout"),
                r#"{"timeout":5}"#,
            ),
            ("POST", format!("/v2/sandboxes/{sandbox}/connect"), "{}"),
            ("POST", format!("/sandboxes/{sandbox}/connect"), "{}"),
            ("POST", format!("/sandboxes/{sandbox}/resume"), "{}"),
            ("POST", format!("/sandboxes/{sandbox}/pause"), ""),
            ("POST", format!("/sandboxes/{sandbox}/refreshes"), "{}"),
            ("GET", format!("/sandboxes/{sandbox}/metrics"), ""),
        ] {
            // The unknown id with the owner's key, the real one with another team's key.
            let key = if sandbox == id { OTHER_KEY } else { KEY };
            let r = send(&app, method, &path, &[("x-api-key", key)], body).await;
            let message = r.assert_error(StatusCode::NOT_FOUND);
            assert!(message.contains(sandbox), "{method} {path}: {message}");
        }
    }
    // The owner still has it, and the other team's list is empty.
    assert_eq!(
        api(&app, "GET", &format!("/sandboxes/{id}"), "")
            .await
            .status,
        StatusCode::OK
    );
    let r = send(
        &app,
        "GET",
        "/v2/sandboxes",
        &[("x-api-key", OTHER_KEY)],
        "",
    )
    .await;
    assert_eq!(r.body, serde_json::json!([]));
    let r = api(&app, "POST", "/v2/sandboxes", r#"{"templateID":"nope"}"#).await;
    assert!(r.assert_error(StatusCode::NOT_FOUND).contains("nope"));
    api(&app, "GET", "/no/such/endpoint", "")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_bodies_fields_and_queries_are_400() {
    let app = app();
    let id = id_of(&create(&app, r#"{"templateID":"base"}"#).await);
    for body in [
        "{not json",
        "",
        "[]",
        r#"{"templateID":""}"#,
        r#"{"templateID":7}"#,
        r#"{"templateID":"base","timeout":0}"#,
        r#"{"templateID":"base","timeout":-1}"#,
        r#"{"templateID":"base","timeout":"soon"}"#,
        r#"{"templateID":"base","metadata":{"a":1}}"#,
        r#"{"templateID":"base","allow_internet_access":true}"#,
    ] {
        let r = api(&app, "POST", "/v2/sandboxes", body).await;
        r.assert_error(StatusCode::BAD_REQUEST);
    }
    for (path, body) in [
        (format!("/sandboxes/{id}/timeout"), r#"{"timeout":-1}"#),
        (format!("/sandboxes/{id}/timeout"), "{}"),
        (format!("/sandboxes/{id}/refreshes"), r#"{"duration":3601}"#),
        (format!("/sandboxes/{id}/refreshes"), r#"{"duration":-1}"#),
        (format!("/v2/sandboxes/{id}/connect"), r#"{"timeout":"x"}"#),
    ] {
        api(&app, "POST", &path, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    for query in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "order=sideways",
        "state=zombie",
        "startedAfter=yesterday",
        "metadata=novalue",
        "nextToken=%25%25%25",
        "nextToken=AAAA",
    ] {
        api(&app, "GET", &format!("/v2/sandboxes?{query}"), "")
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    api(&app, "GET", "/sandboxes/%FF%FE", "")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    api(&app, "PUT", "/v2/sandboxes", "")
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn create_get_list_and_kill_round_trip() {
    let app = app();
    let v = create(
        &app,
        r#"{"templateID":"python","timeout":60,"metadata":{"who":"me"},"envVars":{"A":"1"}}"#,
    )
    .await;
    let id = id_of(&v);
    assert_eq!(v["templateID"], "base");
    assert_eq!(v["alias"], "python");
    assert_eq!(v["domain"], "example.test");
    assert_eq!(v["clientID"], api::model::CLIENT_ID);
    assert_eq!(v["envdVersion"], api::model::ENVD_VERSION);
    let token = v["envdAccessToken"].as_str().unwrap();
    assert!(!token.is_empty());

    let d = api(&app, "GET", &format!("/sandboxes/{id}"), "").await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(d.body["sandboxID"], id.as_str());
    assert_eq!(d.body["envdAccessToken"], token);
    assert_eq!(d.body["state"], "running");
    assert_eq!(d.body["metadata"]["who"], "me");
    assert_eq!(d.body["cpuCount"], 2);
    assert_eq!(d.body["memoryMB"], 512);
    assert_eq!(d.body["diskSizeMB"], 1024);
    assert_eq!(d.body["allowInternetAccess"], false);
    let started = bulkhead_store::parse_rfc3339(d.body["startedAt"].as_str().unwrap()).unwrap();
    let end = bulkhead_store::parse_rfc3339(d.body["endAt"].as_str().unwrap()).unwrap();
    assert_eq!((end - started).num_seconds(), 60);

    for path in ["/v2/sandboxes", "/sandboxes"] {
        let l = api(&app, "GET", path, "").await;
        assert_eq!(l.status, StatusCode::OK);
        assert_eq!(l.body.as_array().unwrap().len(), 1, "{path}: {}", l.body);
        assert_eq!(l.body[0]["sandboxID"], id.as_str());
        assert!(
            l.body[0].get("envdAccessToken").is_none(),
            "lists carry no token"
        );
    }
    // The legacy create route answers the same way.
    let legacy = api(&app, "POST", "/sandboxes", r#"{"templateID":"base"}"#).await;
    assert_eq!(legacy.status, StatusCode::CREATED);

    let r = api(&app, "DELETE", &format!("/sandboxes/{id}"), "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api(&app, "DELETE", &format!("/sandboxes/{id}"), "")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    api(&app, "GET", &format!("/sandboxes/{id}"), "")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn timeout_pause_resume_connect_refresh_and_metrics() {
    let app = app();
    let id = id_of(&create(&app, r#"{"templateID":"base"}"#).await);
    let path = |p: &str| format!("/sandboxes/{id}{p}");
    let state = |r: &Resp| r.body["state"].as_str().unwrap().to_string();

    let r = api(&app, "POST", &path("/timeout"), r#"{"timeout":30}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api(&app, "POST", &path("/refreshes"), r#"{"duration":0}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api(&app, "POST", &path("/refreshes"), "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "an empty body is {{}}");

    // Connecting to a running sandbox: 200. The legacy resume refuses it: 409.
    let r = api(&app, "POST", &format!("/v2/sandboxes/{id}/connect"), "{}").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(id_of(&r.body), id);
    api(&app, "POST", &path("/resume"), "{}")
        .await
        .assert_error(StatusCode::CONFLICT);

    assert_eq!(
        api(&app, "POST", &path("/pause"), "").await.status,
        StatusCode::NO_CONTENT
    );
    api(&app, "POST", &path("/pause"), "")
        .await
        .assert_error(StatusCode::CONFLICT);
    assert_eq!(state(&api(&app, "GET", &path(""), "").await), "paused");
    let l = api(&app, "GET", "/v2/sandboxes?state=paused", "").await;
    assert_eq!(l.body.as_array().unwrap().len(), 1);
    let l = api(&app, "GET", "/sandboxes", "").await;
    assert_eq!(l.body, serde_json::json!([]), "legacy list: running only");

    // The legacy resume: 201 with the sandbox.
    let r = api(&app, "POST", &path("/resume"), r#"{"timeout":10}"#).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(state(&api(&app, "GET", &path(""), "").await), "running");

    // Connecting to a paused sandbox resumes it: 201.
    api(&app, "POST", &path("/pause"), "").await;
    let r = api(&app, "POST", &path("/connect"), r#"{"timeout":10}"#).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body["envdAccessToken"].as_str().is_some());

    let m = api(&app, "GET", &path("/metrics"), "").await;
    assert_eq!(m.status, StatusCode::OK);
    let sample = &m.body[0];
    assert_eq!(sample["cpuCount"], 2);
    assert_eq!(sample["memTotal"], 512u64 << 20);
    assert!(sample["timestampUnix"].as_i64().unwrap() > 0);

    // A window that ends before it starts, or a time that is not one: 400, never a 5xx.
    for bad in ["?start=10&end=5", "?start=yesterday", "?end=1.5"] {
        let r = api(&app, "GET", &format!("{}{bad}", path("/metrics")), "").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.body["code"], 400, "{bad}");
    }
    // Several sandboxes at once, keyed by id; unknown ids are left out.
    let r = api(
        &app,
        "GET",
        &format!("/sandboxes/metrics?sandbox_ids={id},nosuchsandbox"),
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let map = r.body["sandboxes"].as_object().unwrap();
    assert_eq!(map.len(), 1, "{}", r.body);
    assert_eq!(map[&id]["cpuCount"], 2);
    let r = api(&app, "GET", "/sandboxes/metrics", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no ids: {}", r.body);
}

/// Walks `GET /v2/sandboxes?{query}` page by page through `X-Next-Token`.
async fn walk(app: &Router, query: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v2/sandboxes?{query}&nextToken={t}"),
            None => format!("/v2/sandboxes?{query}"),
        };
        let r = api(app, "GET", &path, "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        all.extend(r.body.as_array().unwrap().iter().map(id_of));
        match r.headers.get("x-next-token") {
            Some(t) => token = Some(t.to_str().unwrap().to_string()),
            None => return all,
        }
    }
}

#[tokio::test]
async fn pagination_follows_the_cursor_in_both_orders() {
    let app = app();
    let mut made = HashSet::new();
    for i in 0..7 {
        let v = create(
            &app,
            &format!(
                r#"{{"templateID":"base","metadata":{{"n":"{}","app":"x/y z"}}}}"#,
                i % 2
            ),
        )
        .await;
        made.insert(id_of(&v));
    }
    let all = walk(&app, "limit=100").await;
    assert_eq!(all.len(), 7);
    for limit in 1..=7 {
        let desc = walk(&app, &format!("limit={limit}")).await;
        assert_eq!(desc, all, "limit {limit}");
        let mut asc = walk(&app, &format!("limit={limit}&order=asc")).await;
        asc.reverse();
        assert_eq!(asc, all, "limit {limit}, ascending");
    }
    assert_eq!(all.iter().cloned().collect::<HashSet<_>>(), made);
    // An exactly full page carries no token.
    let r = api(&app, "GET", "/v2/sandboxes?limit=7", "").await;
    assert!(r.headers.get("x-next-token").is_none());
    // The metadata filter as the SDKs encode {"n":"1","app":"x/y z"}.
    let ones = walk(&app, "metadata=n%3D1%26app%3Dx%252Fy%2520z&limit=2").await;
    assert_eq!(ones.len(), 3);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_sandbox() {
    let app = app();
    let create_with = |key: &'static str, team_key: &'static str| {
        let app = app.clone();
        async move {
            let headers = [("x-api-key", team_key), ("idempotency-key", key)];
            send(
                &app,
                "POST",
                "/v2/sandboxes",
                &headers,
                r#"{"templateID":"base"}"#,
            )
            .await
        }
    };
    let first = create_with("retry-1", KEY).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = create_with("retry-1", KEY).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(id_of(&again.body), id_of(&first.body));
    assert_eq!(again.body["envdAccessToken"], first.body["envdAccessToken"]);
    let other_key = create_with("retry-2", KEY).await;
    assert_ne!(id_of(&other_key.body), id_of(&first.body));
    let other_team = create_with("retry-1", OTHER_KEY).await;
    assert_ne!(id_of(&other_team.body), id_of(&first.body));
    for bad in ["Bad Key!", "UPPER", ""] {
        create_with(bad, KEY)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(walk(&app, "limit=100").await.len(), 2);
}

#[tokio::test]
async fn capacity_is_503_and_internal_failures_are_500_without_details() {
    let app = app();
    let r = api(&app, "POST", "/v2/sandboxes", r#"{"templateID":"full"}"#).await;
    let message = r.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("could not start a sandbox"), "{message}");
    assert!(r.headers.get("should-retry").is_none());

    let r = api(&app, "POST", "/v2/sandboxes", r#"{"templateID":"broken"}"#).await;
    assert_eq!(
        r.assert_error(StatusCode::INTERNAL_SERVER_ERROR),
        "internal server error"
    );
    assert_eq!(r.headers["should-retry"], "false");
}
