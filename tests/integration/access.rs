//! Access control and limits against a real node: API keys and scopes (both headers), keys
//! created and revoked while the server runs, per-key rate limits with `Retry-After`, size
//! limits, load shedding, the request timeout, the metric of every refusal, and TLS.

use crate::common;

use std::time::Duration;

use common::{DEADLINE, eventually, get_text, http, start, test_config};
use marquee_api::guard::{AuthMode, Limits};
use marquee_api::keys::{KeySet, Scope, keys_path};
use marquee_ingest::EventLog;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rejected(metrics: &str, reason: &str) -> f64 {
    common::metric_sample(
        metrics,
        &format!("marquee_http_requests_rejected_total{{reason=\"{reason}\"}}"),
    )
}

async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_scopes_decide_who_may_do_what() {
    let dir = tempfile::tempdir().unwrap();
    let path = keys_path(dir.path());
    let mut keys = KeySet::default();
    let (ingest, _) = keys.create("app", &[Scope::Ingest], None).unwrap();
    let (read, _) = keys.create("backend", &[Scope::Read], None).unwrap();
    let (admin, _) = keys.create("ops", &[Scope::Admin], None).unwrap();
    keys.save(&path).unwrap();

    let mut config = test_config(dir.path());
    config.auth = AuthMode::On;
    let node = start(config).await;
    let base = node.url();
    let client = http();
    let event = json!({"user_id": "u1", "item_id": "m1", "kind": "like"});
    let recommendations = format!("{base}/v1/users/u1/recommendations");

    // No key: 401, a challenge, and a message naming what is missing.
    let (status, headers, body) = send(client.get(&recommendations)).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.contains_key("www-authenticate"));
    assert!(message(&body).starts_with("authorization:"), "{body}");
    // A made-up key: 401.
    let (status, _, _) = send(
        client
            .get(&recommendations)
            .bearer_auth("mq_00000000_deadbeef"),
    )
    .await;
    assert_eq!(status, 401);

    // The ingest key sends events (Bearer) and may not read: 403 naming the scopes.
    let (status, _, body) = send(
        client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&ingest)
            .json(&event),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) = send(client.get(&recommendations).bearer_auth(&ingest)).await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("needs read"), "{body}");

    // The read key reads (X-API-Key) and may not send events or write the catalogue.
    let (status, _, body) = send(client.get(&recommendations).header("x-api-key", &read)).await;
    assert_eq!(status, 200, "{body}");
    // Nor list the user's seen items: the list with them against the list without them would
    // tell what the user watched, which the users scope guards.
    let with_seen = format!("{recommendations}?exclude_seen=false");
    let (status, _, body) = send(client.get(&with_seen).bearer_auth(&read)).await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).starts_with("exclude_seen:"), "{body}");
    let (status, _, body) = send(client.get(&with_seen).bearer_auth(&admin)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = send(
        client
            .post(format!("{base}/v1/events"))
            .header("x-api-key", &read)
            .json(&event),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = send(
        client
            .put(format!("{base}/v1/items/m9"))
            .bearer_auth(&read)
            .json(&json!({"title": "Nine"})),
    )
    .await;
    assert_eq!(status, 403);

    // Admin may do all of it.
    for request in [
        client.get(&recommendations),
        client.post(format!("{base}/v1/events")).json(&event),
        client
            .put(format!("{base}/v1/items/m9"))
            .json(&json!({"title": "Nine"})),
        client.get(format!("{base}/v1/admin/processor")),
    ] {
        let (status, _, body) = send(request.bearer_auth(&admin)).await;
        assert!(status == 200 || status == 202, "{status} {body}");
    }

    // Probes and metrics stay open.
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let status = client.get(format!("{base}{open}")).send().await.unwrap();
        assert_eq!(status.status().as_u16(), 200, "{open}");
    }

    // A key created while the server runs works within seconds; a revoked one stops.
    let mut keys = KeySet::load(&path).unwrap();
    let (late, late_record) = keys.create("late", &[Scope::Read], None).unwrap();
    keys.save(&path).unwrap();
    eventually("the new key to be accepted", || {
        let request = client.get(&recommendations).bearer_auth(&late);
        async move { (send(request).await.0 == 200).then_some(()) }
    })
    .await;
    let mut keys = KeySet::load(&path).unwrap();
    keys.revoke(&late_record.id).unwrap();
    keys.save(&path).unwrap();
    eventually("the revoked key to be refused", || {
        let request = client.get(&recommendations).bearer_auth(&late);
        async move { (send(request).await.0 == 401).then_some(()) }
    })
    .await;

    let metrics = get_text(&format!("{base}/metrics")).await;
    assert!(rejected(&metrics, "auth") >= 5.0, "{metrics}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = KeySet::default();
    let (slow, _) = keys.create("slow", &[Scope::Read], Some(1)).unwrap();
    let (other, _) = keys.create("other", &[Scope::Read], None).unwrap();
    keys.save(&keys_path(dir.path())).unwrap();
    let mut config = test_config(dir.path());
    config.auth = AuthMode::On;
    config.limits = Limits {
        rate_burst_seconds: 2,
        ..Limits::default()
    };
    let node = start(config).await;
    let base = node.url();
    let client = http();
    let trending = format!("{base}/v1/trending");

    // A rate of 1/s with 2 s of burst: two requests pass, the third is refused.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let (status, headers, body) = send(client.get(&trending).bearer_auth(&slow)).await;
        if status == 429 {
            assert!(message(&body).contains("rate limit"), "{body}");
            retry_after = headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert!(matches!(retry_after, Some(1..=2)), "{retry_after:?}");
    // Another key has its own bucket.
    let (status, _, _) = send(client.get(&trending).bearer_auth(&other)).await;
    assert_eq!(status, 200);
    // After the wait the client was told, the key may ask again.
    tokio::time::sleep(Duration::from_secs(retry_after.unwrap())).await;
    let (status, _, _) = send(client.get(&trending).bearer_auth(&slow)).await;
    assert_eq!(status, 200);

    let metrics = get_text(&format!("{base}/metrics")).await;
    assert_eq!(rejected(&metrics, "rate_limit"), 1.0, "{metrics}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uris_headers_and_bodies_are_refused_with_the_limit_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits = Limits {
        max_body_bytes: 4096,
        max_header_bytes: 2048,
        max_uri_bytes: 512,
        ..Limits::default()
    };
    let node = start(config).await;
    let base = node.url();
    let client = http();

    let long_uri = format!("{base}/v1/trending?genre={}", "x".repeat(600));
    let (status, _, body) = send(client.get(&long_uri)).await;
    assert_eq!(status, 414, "{body}");
    assert!(message(&body).starts_with("uri:"), "{body}");

    let (status, _, body) = send(
        client
            .get(format!("{base}/v1/trending"))
            .header("x-padding", "y".repeat(3000)),
    )
    .await;
    assert_eq!(status, 431, "{body}");
    assert!(message(&body).starts_with("headers:"), "{body}");

    let events: String = (0..200)
        .map(|n| format!("{{\"user_id\":\"u{n}\",\"item_id\":\"m1\",\"kind\":\"view\"}}\n"))
        .collect();
    let (status, _, body) = send(
        client
            .post(format!("{base}/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(events),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(message(&body).contains("4096"), "{body}");
    // Nothing of the refused body reached the log.
    let ends = node.services().unwrap().log.end_offsets().unwrap();
    assert_eq!(ends.iter().sum::<u64>(), 0);

    let metrics = get_text(&format!("{base}/metrics")).await;
    assert_eq!(rejected(&metrics, "size"), 3.0, "{metrics}");
    node.shutdown().await.unwrap();
}

/// Opens a connection and sends the head of a POST (with `key`) whose body never completes.
async fn stalled_post(addr: std::net::SocketAddr, key: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         authorization: Bearer {key}\r\ncontent-length: 1000\r\n\r\n{{\"user_id\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_status(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !response.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .expect("a response before the deadline")
            .unwrap();
        assert!(read > 0, "connection closed without a response");
        response.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    (status, text)
}

/// The ingest key ships inside apps: whoever unpacks one can open connections that send a
/// request head and then the body byte by byte, or never. Those hold no concurrency permit
/// (the body is read before one is taken, and each scope has its own pool), so recommendations
/// and complete events go on being answered, and each slow body is cut off at the body
/// deadline with 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_on_the_ingest_key_hold_no_permit_and_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = KeySet::default();
    let (ingest, _) = keys.create("app", &[Scope::Ingest], None).unwrap();
    let (read, _) = keys.create("backend", &[Scope::Read], None).unwrap();
    keys.save(&keys_path(dir.path())).unwrap();
    let mut config = test_config(dir.path());
    config.auth = AuthMode::On;
    config.limits = Limits {
        max_concurrent_requests: 2,
        body_read_timeout_secs: 3.0,
        ..Limits::default()
    };
    let node = start(config).await;
    let base = node.url();
    let client = http();

    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(stalled_post(node.addr, &ingest).await);
    }
    // Twenty slow bodies against pools of two: reads and whole events are answered.
    for _ in 0..5 {
        let (status, _, body) = send(
            client
                .get(format!("{base}/v1/users/u1/recommendations"))
                .bearer_auth(&read),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, _, body) = send(
            client
                .post(format!("{base}/v1/events"))
                .bearer_auth(&ingest)
                .json(&json!({"user_id": "u1", "item_id": "m1", "kind": "view"})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    // Probes are never shed.
    let probe = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(probe.status().as_u16(), 200);

    // Each slow body is cut off at the body deadline with 408, naming the body.
    for stream in &mut stalled {
        let (status, text) = read_status(stream).await;
        assert_eq!(status, 408, "{text}");
    }
    let metrics = get_text(&format!("{base}/metrics")).await;
    assert_eq!(rejected(&metrics, "timeout"), 20.0, "{metrics}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_with_the_configured_certificate() {
    let curl = std::process::Command::new("curl").arg("--version").output();
    if curl.is_err() {
        eprintln!("skipped: curl is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let mut config = test_config(&dir.path().join("data"));
    config.tls = Some(marquee_node::TlsFiles {
        cert: cert.clone(),
        key,
    });
    let node = start(config).await;
    assert!(node.url().starts_with("https://"));
    let port = node.addr.port();

    let trusted = cert.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&trusted)
            .arg(format!("https://localhost:{port}/healthz"))
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("\"ok\""),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Without the certificate's authority, the client refuses the connection.
    let untrusted = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", &format!("https://localhost:{port}/healthz")])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!untrusted.status.success());
    node.shutdown().await.unwrap();

    // A missing certificate fails the start with the path in the message.
    let mut broken = test_config(&dir.path().join("data2"));
    broken.tls = Some(marquee_node::TlsFiles {
        cert: dir.path().join("absent.pem"),
        key: dir.path().join("absent-key.pem"),
    });
    let error = marquee_node::RunningNode::start(broken).await.unwrap_err();
    assert!(error.to_string().contains("absent.pem"), "{error}");
}

/// What a browser needs: CORS for the configured origins only (preflight and the headers on
/// refusals too), and the beacon form of ingest, whose key is a query parameter that only an
/// ingest-only key may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_cors_and_a_beacon_route_for_ingest_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = keys_path(dir.path());
    let mut keys = KeySet::default();
    let (ingest, _) = keys.create("web", &[Scope::Ingest], None).unwrap();
    let (both, _) = keys
        .create("too-broad", &[Scope::Ingest, Scope::Read], None)
        .unwrap();
    keys.save(&path).unwrap();
    let mut config = test_config(dir.path());
    config.auth = AuthMode::On;
    config.cors_origins = vec!["http://app.example".into()];
    let node = start(config).await;
    let base = node.url();
    let client = http();
    let origin = "http://app.example";

    // Preflight from the allowed origin: allowed, with the headers the SDK sends.
    let response = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/events"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], origin);
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    // Another origin gets no grant, so its browser blocks the call.
    let response = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/events"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    // A refusal carries the grant too, so the page can read its 401 and Retry-After.
    let response = client
        .get(format!("{base}/v1/trending"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["access-control-allow-origin"], origin);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");

    // The beacon: NDJSON under text/plain, the ingest key in the URL.
    let body = "{\"user_id\":\"b1\",\"item_id\":\"m1\",\"kind\":\"click\",\"event_id\":\"beacon-1\"}\n\
                {\"user_id\":\"b1\",\"item_id\":\"m2\",\"kind\":\"rating\",\"value\":9}\n";
    let beacon = |key: &str| {
        client
            .post(format!("{base}/v1/events/beacon?key={key}"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", origin)
            .body(body)
    };
    let (status, headers, answer) = send(beacon(&ingest)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(headers["access-control-allow-origin"], origin);
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["field"], "value", "{answer}");
    // A key that can also read is refused in a URL, naming why; no key at all is a 401.
    let (status, _, answer) = send(beacon(&both)).await;
    assert_eq!(status, 403, "{answer}");
    assert!(message(&answer).starts_with("key:"), "{answer}");
    assert!(message(&answer).contains("ingest"), "{answer}");
    let (status, _, answer) = send(
        client
            .post(format!("{base}/v1/events/beacon"))
            .header("content-type", "text/plain")
            .body(body),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert!(message(&answer).starts_with("key:"), "{answer}");
    // The query key is for the beacon only: the header routes do not read it.
    let (status, _, _) = send(
        client
            .post(format!("{base}/v1/events?key={ingest}"))
            .header("content-type", "application/x-ndjson")
            .body(body),
    )
    .await;
    assert_eq!(status, 401);
    // Other content types are refused by name.
    let (status, _, answer) = send(
        client
            .post(format!("{base}/v1/events/beacon?key={ingest}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=b"),
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    assert!(message(&answer).starts_with("content-type:"), "{answer}");

    // The beacon's event was appended (durably, before the 202) like any other.
    let entries = node
        .services()
        .expect("loaded")
        .log
        .user_entries("b1")
        .unwrap();
    let ids: Vec<&str> = entries
        .iter()
        .map(|entry| entry.event.event_id.as_str())
        .collect();
    assert_eq!(ids, ["beacon-1"]);
    node.shutdown().await.unwrap();
}

/// A page's viewer token: minted by an admin, it opens its own user's list and events and the
/// catalogue's reads, and nothing of anyone else's; expired, tampered and other-user tokens
/// are refused with a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_tokens_open_one_users_lists_and_events_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = keys_path(dir.path());
    let mut keys = KeySet::default();
    let (admin, _) = keys.create("ops", &[Scope::Admin], None).unwrap();
    keys.save(&path).unwrap();
    let mut config = test_config(dir.path());
    config.auth = AuthMode::On;
    let node = start(config).await;
    let base = node.url();
    let client = http();

    let mint = |body: Value| {
        client
            .post(format!("{base}/v1/admin/tokens"))
            .bearer_auth(&admin)
            .json(&body)
    };
    let (status, _, minted) = send(mint(json!({"user_id": "alice", "ttl_secs": 600}))).await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    // Only an admin mints, and a bad lifetime is named.
    let (status, _, _) = send(
        client
            .post(format!("{base}/v1/admin/tokens"))
            .bearer_auth(&token)
            .json(&json!({"user_id": "alice"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, body) = send(mint(json!({"user_id": "alice", "ttl_secs": 0}))).await;
    assert_eq!(status, 422);
    assert!(message(&body).starts_with("ttl_secs:"), "{body}");

    // Alice's own list, the catalogue, search, and her events: allowed.
    for path in [
        "/v1/users/alice/recommendations",
        "/v1/trending",
        "/v1/search?q=anything&user_id=alice",
    ] {
        let (status, _, body) = send(client.get(format!("{base}{path}")).bearer_auth(&token)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _, body) = send(
        client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&token)
            .json(
                &json!([{"user_id": "alice", "item_id": "m1", "kind": "like"},
                          {"user_id": "bob", "item_id": "m1", "kind": "like"}]),
            ),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"][0]["field"], "user_id", "{body}");

    // Bob's list, Alice's export, an admin route, search as Bob: 403 with what the token is.
    for (method, path) in [
        ("GET", "/v1/users/bob/recommendations"),
        ("GET", "/v1/users/alice/export"),
        ("DELETE", "/v1/users/alice"),
        ("GET", "/v1/admin/processor"),
        ("GET", "/v1/search?q=x&user_id=bob"),
    ] {
        let request = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(&token);
        let (status, _, body) = send(request).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(message(&body).starts_with("authorization:"), "{body}");
    }

    // Tampered (another user's name under Alice's signature) and expired: 401 saying so.
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.Ym9i.{}.{}", parts[0], parts[2], parts[3]);
    let (status, _, body) = send(
        client
            .get(format!("{base}/v1/users/bob/recommendations"))
            .bearer_auth(&forged),
    )
    .await;
    assert_eq!(status, 401);
    assert!(message(&body).contains("signature"), "{body}");
    let key: [u8; 32] = std::fs::read(dir.path().join("viewer.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let expired = marquee_api::viewer::mint(&key, "alice", 1_000);
    let (status, _, body) = send(
        client
            .get(format!("{base}/v1/users/alice/recommendations"))
            .bearer_auth(&expired),
    )
    .await;
    assert_eq!(status, 401);
    assert!(message(&body).contains("expired"), "{body}");
    // A token signed outside the node with its `viewer.key` (the format docs/OPERATIONS.md
    // gives) is accepted.
    let later = (common::now_ms() / 1000) as u64 + 60;
    let signed_by_host = marquee_api::viewer::mint(&key, "alice", later);
    let (status, _, _) = send(
        client
            .get(format!("{base}/v1/users/alice/recommendations"))
            .bearer_auth(&signed_by_host),
    )
    .await;
    assert_eq!(status, 200);
    node.shutdown().await.unwrap();
}
