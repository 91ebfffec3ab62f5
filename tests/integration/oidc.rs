//! Operators' OIDC tokens on a real node: an issuer's JWKS served from a local endpoint, tokens
//! signed with its key (ES256, generated for the test) taken with their scopes; expired,
//! wrongly signed, wrongly addressed and symmetric-algorithm tokens refused with a message
//! naming why; an erasure made with a token audited under the token's subject.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{start, test_config};
use marquee_api::guard::AuthMode;
use marquee_api::oidc::OidcConfig;
use serde_json::{Value, json};

const ISSUER: &str = "https://id.example.test/realms/staff";
const AUDIENCE: &str = "marquee-console";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT of `claims` signed by `key` under `kid`, with the header's `alg` as given.
fn token(key: &EcdsaKeyPair, kid: &str, alg: &str, claims: &Value) -> String {
    let header = b64(json!({"alg": alg, "typ": "JWT", "kid": kid})
        .to_string()
        .as_bytes());
    let payload = b64(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    let signature = key
        .sign(&SystemRandom::new(), signed.as_bytes())
        .expect("signing");
    format!("{signed}.{}", b64(signature.as_ref()))
}

/// The public JWK of `key` (an uncompressed P-256 point: 0x04, x, y).
fn jwk(key: &EcdsaKeyPair, kid: &str) -> Value {
    let point = key.public_key().as_ref();
    json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    })
}

fn claims(scope: &str, expires_in_secs: i64, audience: &str) -> Value {
    let now = common::now_ms() / 1000;
    json!({
        "iss": ISSUER, "aud": [audience, "account"], "sub": "alice@example.test",
        "iat": now, "nbf": now - 5, "exp": now + expires_in_secs, "scope": scope,
    })
}

async fn status_and_message(url: &str, method: reqwest::Method, bearer: &str) -> (u16, String) {
    let response = common::http()
        .request(method, url)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
    (status, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuers_tokens_are_taken_with_their_scopes_and_bad_ones_refused() {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let stranger = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let jwks = json!({"keys": [jwk(&key, "staff-1")]});
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let issuer = axum::Router::new().route(
        "/protocol/openid-connect/certs",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!(
        "http://{}/protocol/openid-connect/certs",
        listener.local_addr().unwrap()
    );
    let served = tokio::spawn(async move { axum::serve(listener, issuer).await });

    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.auth = AuthMode::On;
    config.oidc = Some(OidcConfig {
        issuer: ISSUER.into(),
        jwks_url,
        audience: AUDIENCE.into(),
        scopes_claim: "scope".into(),
        scope_prefix: "marquee:".into(),
        leeway_secs: 0,
    });
    let node = start(config).await;
    let base = node.url();
    let user = format!("{base}/v1/users/someone-unknown");
    let processor = format!("{base}/v1/admin/processor");

    // Scopes come from the claim, under the prefix; others' scopes are ignored.
    let users = token(
        &key,
        "staff-1",
        "ES256",
        &claims("openid marquee:users", 300, AUDIENCE),
    );
    let (status, message) = status_and_message(&user, reqwest::Method::GET, &users).await;
    assert_eq!(
        status, 404,
        "the token passes, the user is unknown: {message}"
    );
    let (status, message) = status_and_message(&processor, reqwest::Method::GET, &users).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("operations"), "{message}");
    let others = token(
        &key,
        "staff-1",
        "ES256",
        &claims("users admin", 300, AUDIENCE),
    );
    let (status, message) = status_and_message(&user, reqwest::Method::GET, &others).await;
    assert_eq!(
        status, 403,
        "scopes without the prefix grant nothing: {message}"
    );
    let admin = token(
        &key,
        "staff-1",
        "ES256",
        &claims("marquee:admin", 300, AUDIENCE),
    );
    let (status, message) = status_and_message(&processor, reqwest::Method::GET, &admin).await;
    assert_eq!(status, 200, "{message}");

    // Refusals, each naming why.
    let refused = [
        (
            token(
                &key,
                "staff-1",
                "ES256",
                &claims("marquee:admin", -60, AUDIENCE),
            ),
            "expired at",
        ),
        (
            token(
                &stranger,
                "staff-1",
                "ES256",
                &claims("marquee:admin", 300, AUDIENCE),
            ),
            "signature does not verify",
        ),
        (
            token(
                &key,
                "staff-1",
                "ES256",
                &claims("marquee:admin", 300, "another-app"),
            ),
            "audience",
        ),
        (
            token(
                &key,
                "staff-1",
                "HS256",
                &claims("marquee:admin", 300, AUDIENCE),
            ),
            "HS256",
        ),
        (
            token(
                &key,
                "retired-9",
                "ES256",
                &claims("marquee:admin", 300, AUDIENCE),
            ),
            "does not hold",
        ),
    ];
    for (bad, why) in &refused {
        let (status, message) = status_and_message(&processor, reqwest::Method::GET, bad).await;
        assert_eq!(status, 401, "{why}: {message}");
        assert!(message.contains(why), "{why}: {message}");
    }
    let mut forged = admin.clone();
    forged.insert_str(admin.find('.').unwrap() + 1, "eyJ");
    let (status, _) = status_and_message(&processor, reqwest::Method::GET, &forged).await;
    assert_eq!(status, 401, "a changed payload");
    assert!(
        fetches.load(Ordering::SeqCst) <= 2,
        "an unknown key fetches the JWKS again at most every 10 s, not per request"
    );

    // The audit log names the operator by subject.
    let erase = format!("{base}/v1/users/someone-unknown");
    let (status, message) = status_and_message(&erase, reqwest::Method::DELETE, &admin).await;
    assert_eq!(status, 404, "authorised, nobody to erase: {message}");
    let audited: String = std::fs::read_dir(dir.path().join("audit"))
        .unwrap()
        .map(|file| std::fs::read_to_string(file.unwrap().path()).unwrap())
        .collect();
    assert!(
        audited.contains("\"actor\":\"oidc:alice@example.test\""),
        "{audited}"
    );
    node.shutdown().await.unwrap();
    served.abort();
}
