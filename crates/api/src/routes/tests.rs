//! The router without a node: what it answers before any state is loaded, and what the guard
//! refuses, through `oneshot` requests (no socket, no RocksDB instance). The handlers that read
//! the state are tested against real nodes (`tests/integration`).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use marquee_stream_processor::Metrics;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::access::Access;
use crate::guard::{BEACON_ROUTE, Guard, Limits};
use crate::keys::{KeySet, Scope};

/// A router over a state with no services yet; with `auth`, `keys` are created first.
fn app(dir: &tempfile::TempDir, auth: bool, keys: &[Scope]) -> (axum::Router, Vec<String>) {
    let path = dir.path().join("keys.json");
    let mut set = KeySet::default();
    let created = keys
        .iter()
        .map(|scope| set.create("test", &[*scope], None).unwrap().0)
        .collect();
    set.save(&path).unwrap();
    let limits = Limits {
        max_uri_bytes: 512,
        max_header_bytes: 2048,
        max_body_bytes: 4096,
        ..Limits::default()
    };
    let state = AppState::new(
        Metrics::new(4),
        Guard::new(path, auth, limits),
        None,
        Vec::new(),
    );
    (router(state), created)
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[test]
fn every_route_declares_the_access_its_purpose_needs() {
    let document = document();
    let access = |method: Method, path: &str| document.access(&method, path);
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(access(Method::GET, open), Access::Open, "{open}");
    }
    assert_eq!(
        access(Method::POST, "/v1/events"),
        Access::Key(Scope::Ingest)
    );
    assert_eq!(
        access(Method::POST, BEACON_ROUTE),
        Access::Key(Scope::Ingest)
    );
    for read in [
        "/v1/users/{user_id}/recommendations",
        "/v1/items/{item_id}",
        "/v1/items/{item_id}/similar",
        "/v1/trending",
    ] {
        assert_eq!(
            access(Method::GET, read),
            Access::Key(Scope::Read),
            "{read}"
        );
    }
    // Each operator's route needs its part of `admin` (which grants them all).
    for (method, path, scope) in [
        (Method::PUT, "/v1/items/{item_id}", Scope::Catalogue),
        (Method::POST, "/v1/items", Scope::Catalogue),
        (Method::PUT, "/v1/admin/campaigns/{name}", Scope::Catalogue),
        (Method::GET, "/v1/users/{user_id}", Scope::Users),
        (Method::GET, "/v1/users/{user_id}/export", Scope::Users),
        (Method::DELETE, "/v1/users/{user_id}", Scope::Users),
        (Method::GET, "/v1/erasures/{id}", Scope::Users),
        (Method::GET, "/v1/exports/{id}", Scope::Users),
        (Method::POST, "/v1/admin/backups", Scope::Operations),
        (Method::GET, "/v1/admin/jobs", Scope::Operations),
        (Method::GET, "/v1/admin/jobs/{id}", Scope::Operations),
        (Method::POST, "/v1/admin/processor", Scope::Operations),
        (
            Method::PUT,
            "/v1/admin/experiments/{name}",
            Scope::Operations,
        ),
        (Method::POST, "/v1/admin/tokens", Scope::Tokens),
    ] {
        assert_eq!(
            access(method.clone(), path),
            Access::Key(scope),
            "{method} {path}"
        );
    }
    // A route the table does not hold needs the broadest scope: the map fails closed.
    assert_eq!(
        access(Method::GET, "/v1/unlisted"),
        Access::Key(Scope::Admin)
    );
    // Every operation states its access: none falls back to that default by omission.
    let spec: Value = serde_json::from_str(&document.json).unwrap();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            assert!(
                operation["security"].is_array(),
                "{method} {path} declares no security"
            );
        }
    }
}

#[tokio::test]
async fn probes_answer_and_data_routes_wait_for_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir, false, &[]);
    let (status, _, body) = send(&app, get("/healthz")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, headers, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let (status, _, body) = send(&app, get("/v1/trending")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready"))
    );
    let (status, _, body) = send(&app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["paths"]["/v1/events"]["post"].is_object(), "{body}");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir, false, &[]);
    let (status, _, body) = send(&app, get("/v2/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "no route for /v2/nothing");
    let request = Request::delete("/v1/trending").body(Body::empty()).unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn bodies_are_refused_by_content_type_and_size_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(&dir, false, &[]);
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from("a,b"))
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("content-type:")
    );
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "5000")
        .body(Body::from(vec![b' '; 5000]))
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["message"], "body: larger than 4096 bytes");
    let long = format!("/v1/trending?genre={}", "x".repeat(600));
    let (status, _, body) = send(&app, get(&long)).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("uri:")
    );
}

#[tokio::test]
async fn keys_are_checked_by_scope_and_refusals_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (app, keys) = app(&dir, true, &[Scope::Ingest, Scope::Read]);
    let (ingest, read) = (&keys[0], &keys[1]);
    let (status, headers, body) = send(&app, get("/v1/trending")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("authorization:")
    );
    let request = Request::get("/v1/trending")
        .header("x-api-key", ingest.as_str())
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this route needs read")
    );
    // The right scope passes the guard (and meets a node still loading).
    let request = Request::get("/v1/trending")
        .header(header::AUTHORIZATION, format!("Bearer {read}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Probes need no key; the refusals above are counted by reason.
    let (status, _, metrics) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("marquee_http_requests_rejected_total{reason=\"auth\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn each_scope_sheds_from_its_own_pool() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_concurrent_requests: 2,
        ..Limits::default()
    };
    let state = AppState::new(
        Metrics::new(4),
        Guard::new(dir.path().join("keys.json"), false, limits),
        None,
        Vec::new(),
    );
    let app = router(state.clone());
    let event = || {
        Request::post("/v1/events")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"user_id":"u","item_id":"m","kind":"view"}"#))
            .unwrap()
    };
    let code = |body: &Value| body["error"]["code"].as_str().unwrap_or("").to_owned();
    // Ingest's pool full (requests in progress): reads pass it (and meet a node still loading).
    let ingest = state.guard.pool(Scope::Ingest).clone();
    let held = ingest.acquire_many_owned(2).await.unwrap();
    let (status, _, body) = send(&app, event()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded".into())
    );
    let (status, _, body) = send(&app, get("/v1/trending")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready".into())
    );
    // Read's pool full too: reads are shed; once ingest's frees, events pass.
    let read = state.guard.pool(Scope::Read).clone();
    let _read_held = read.acquire_many_owned(2).await.unwrap();
    let (_, _, body) = send(&app, get("/v1/trending")).await;
    assert_eq!(code(&body), "overloaded");
    drop(held);
    let (_, _, body) = send(&app, event()).await;
    assert_eq!(code(&body), "not_ready");
    // The open routes have pools of their own: scrapes that hold all of theirs leave the
    // probes answering, and the other way round.
    let (status, _, _) = send(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let scrapes = state.guard.open_pool(Some("/metrics")).clone();
    let held = scrapes
        .acquire_many_owned(crate::guard::METRICS_CONCURRENCY as u32)
        .await
        .unwrap();
    let (_, _, body) = send(&app, get("/metrics")).await;
    assert_eq!(code(&body), "overloaded");
    let (status, _, _) = send(&app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    drop(held);
    let probes = state.guard.open_pool(Some("/healthz")).clone();
    let _probes_held = probes.acquire_many_owned(2).await.unwrap();
    let (_, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(code(&body), "overloaded");
    let (status, _, _) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_key_is_refused_naming_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let mut set = KeySet::default();
    let now = marquee_schemas::now_ms();
    let (expired, record) = set
        .create_expiring("old", &[Scope::Read], None, Some(now - 1))
        .unwrap();
    let (current, _) = set
        .create_expiring("new", &[Scope::Read], None, Some(now + 3_600_000))
        .unwrap();
    set.save(&path).unwrap();
    let state = AppState::new(
        Metrics::new(4),
        Guard::new(path, true, Limits::default()),
        None,
        Vec::new(),
    );
    let app = router(state);
    let with_key = |key: &str| {
        Request::get("/v1/trending")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = send(&app, with_key(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("key {} expired at 20", record.id)),
        "{message}"
    );
    // A key before its expiry passes the guard (and meets a node still loading).
    let (status, _, body) = send(&app, with_key(&current)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
