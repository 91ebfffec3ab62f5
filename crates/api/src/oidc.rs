//! Operators' identity through OpenID Connect: a company's single sign-on (and its MFA) guards
//! the console and the admin routes, beside API keys.
//!
//! With an `[oidc]` section, a request whose bearer credential is a JWT (three base64url parts;
//! API keys start `mq_`, viewer tokens `vt_`) is checked against the issuer:
//!
//! - **signature** with a key of the issuer's JWKS (`jwks_url`), chosen by the token's `kid`;
//!   the set is fetched at start and again when a token names a key it does not hold (at most
//!   every [`REFRESH_AT_MOST_EVERY`]: an issuer rotates its keys by publishing the new one
//!   first) or once it is [`MAX_AGE`] old. Asymmetric algorithms only (RS256/384/512,
//!   PS256/384/512, ES256, ES384, EdDSA), each with a key of its type and curve, verified by
//!   `aws-lc-rs` (the TLS stack's own crypto): a token that names `HS256` or `none` is
//!   refused, so a public key never becomes a shared secret;
//! - **claims**: `iss` equal to `issuer`, `aud` holding `audience`, `exp` in the future and
//!   `nbf` in the past (with `leeway_secs`), and a `sub`;
//! - **scopes** from the claim `scopes_claim` (`scope` by default: a space-separated string, or
//!   an array of strings), each with `scope_prefix` taken off (`marquee:admin` → `admin` under
//!   the prefix `marquee:`; values without the prefix are someone else's and ignored). The
//!   scopes are the API keys' (`admin`, `catalogue`, `users`, `operations`, `tokens`, `read`,
//!   `ingest`), and a route needs the same one as with a key.
//!
//! A refusal is 401 naming what failed (expired and when, wrong issuer, wrong audience, a
//! signature that does not verify, an unknown key), or 403 naming the scope the route needs.
//! The audit log records the subject as `oidc:SUB`. Each subject has its own rate limiter, at
//! the keys' default rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{
    self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use crate::error::ApiError;
use crate::keys::{Scope, describe_time};

/// The JWKS is fetched again for an unknown `kid` at most this often.
pub const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// The JWKS is fetched again when it is this old, whatever the tokens say.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// A JWKS request gives up after this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

fn default_scopes_claim() -> String {
    "scope".to_owned()
}

fn default_leeway_secs() -> u64 {
    30
}

/// The `[oidc]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer's identifier, as its tokens' `iss` holds it.
    pub issuer: String,
    /// Where the issuer publishes its signing keys (the `jwks_uri` of its discovery document).
    pub jwks_url: String,
    /// The audience tokens must be issued for (this API's client or resource id).
    pub audience: String,
    /// The claim holding the scopes.
    #[serde(default = "default_scopes_claim")]
    pub scopes_claim: String,
    /// Taken off each scope value; values without it are ignored.
    #[serde(default)]
    pub scope_prefix: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
}

impl OidcConfig {
    /// A message naming the first invalid field.
    pub fn validate(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("oidc.issuer: must name the issuer (its tokens' `iss`)".into());
        }
        if self.audience.trim().is_empty() {
            return Err("oidc.audience: must name the audience tokens are issued for".into());
        }
        match reqwest::Url::parse(&self.jwks_url) {
            Ok(url) if matches!(url.scheme(), "https" | "http") => {}
            _ => {
                return Err(format!(
                    "oidc.jwks_url: must be an http(s) URL, got {:?}",
                    self.jwks_url
                ));
            }
        }
        if self.scopes_claim.trim().is_empty() {
            return Err("oidc.scopes_claim: must name a claim".into());
        }
        if self.leeway_secs > 600 {
            return Err(format!(
                "oidc.leeway_secs: at most 600, got {}",
                self.leeway_secs
            ));
        }
        Ok(())
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub scopes: Vec<Scope>,
}

/// A key of the issuer's JWKS (RFC 7517), as far as verification reads it; other members
/// (`x5c`, `use`, …) are ignored.
#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// A token's header, as far as verification reads it.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

struct Fetched {
    keys: Vec<Jwk>,
    at: Option<Instant>,
}

/// The issuer's keys and the subjects' rate limiters.
pub struct Oidc {
    config: OidcConfig,
    client: reqwest::Client,
    jwks: ArcSwap<Fetched>,
    /// Serialises fetches, and holds when the last one was tried.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    quota: Quota,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .finish()
    }
}

/// Whether `credential` has the shape of a JWT (and so is not an API key or viewer token).
pub fn is_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.split('.').count() == 3
}

fn unauthorized(message: impl std::fmt::Display) -> ApiError {
    ApiError::Unauthorized {
        message: format!("authorization: {message}"),
    }
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| unauthorized(format!("not a valid token (its {what} is not base64url)")))
}

/// How a key of the issuer checks a signature of the token's algorithm.
enum Verifier {
    /// RSA, from the key's modulus and exponent.
    Rsa(&'static RsaParameters),
    /// EC and Ed25519, from the key's public point.
    Point(&'static dyn VerificationAlgorithm),
}

/// The verifier of `alg` for a key of `jwk`'s type and curve; `None` when they do not go
/// together.
fn verifier(alg: &str, jwk: &Jwk) -> Option<Verifier> {
    let curve = jwk.crv.as_deref();
    Some(match (alg, jwk.kty.as_str()) {
        ("RS256", "RSA") => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        ("RS384", "RSA") => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        ("RS512", "RSA") => Verifier::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        ("PS256", "RSA") => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
        ("PS384", "RSA") => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
        ("PS512", "RSA") => Verifier::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
        ("ES256", "EC") if curve == Some("P-256") => {
            Verifier::Point(&signature::ECDSA_P256_SHA256_FIXED)
        }
        ("ES384", "EC") if curve == Some("P-384") => {
            Verifier::Point(&signature::ECDSA_P384_SHA384_FIXED)
        }
        ("EdDSA", "OKP") if curve == Some("Ed25519") => Verifier::Point(&signature::ED25519),
        _ => return None,
    })
}

/// Whether `signature` over `message` verifies under `jwk` with `alg`.
fn verifies(alg: &str, jwk: &Jwk, message: &[u8], signature: &[u8]) -> Result<bool, ApiError> {
    let kid = jwk.kid.as_deref().unwrap_or("(no kid)");
    let verifier = verifier(alg, jwk).ok_or_else(|| {
        unauthorized(format!(
            "token algorithm {alg} does not go with the issuer's key {kid:?} ({})",
            jwk.kty
        ))
    })?;
    let member = |value: &Option<String>, name: &str| {
        value
            .as_deref()
            .and_then(|text| URL_SAFE_NO_PAD.decode(text).ok())
            .ok_or_else(|| unauthorized(format!("the issuer's key {kid:?} lacks {name}")))
    };
    Ok(match verifier {
        Verifier::Rsa(parameters) => RsaPublicKeyComponents {
            n: member(&jwk.n, "n")?,
            e: member(&jwk.e, "e")?,
        }
        .verify(parameters, message, signature)
        .is_ok(),
        Verifier::Point(algorithm) => {
            let public = match jwk.kty.as_str() {
                // An uncompressed point: 0x04, x, y.
                "EC" => [vec![4u8], member(&jwk.x, "x")?, member(&jwk.y, "y")?].concat(),
                _ => member(&jwk.x, "x")?,
            };
            UnparsedPublicKey::new(algorithm, public)
                .verify(message, signature)
                .is_ok()
        }
    })
}

impl Oidc {
    /// An issuer's verifier; its keys are fetched by [`Oidc::refresh`] (at start) or by the
    /// first token.
    pub fn new(config: OidcConfig, quota: Quota) -> Oidc {
        Oidc {
            config,
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            jwks: ArcSwap::from_pointee(Fetched {
                keys: Vec::new(),
                at: None,
            }),
            fetching: tokio::sync::Mutex::new(None),
            quota,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Fetches the issuer's keys now; a failure keeps the keys held and says why.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut tried = self.fetching.lock().await;
        *tried = Some(Instant::now());
        self.fetch().await
    }

    async fn fetch(&self) -> Result<usize, String> {
        let url = &self.config.jwks_url;
        let answer = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| format!("oidc.jwks_url: fetching {url}: {error}"))?;
        let set: JwkSet = answer
            .json()
            .await
            .map_err(|error| format!("oidc.jwks_url: {url} did not answer a JWKS: {error}"))?;
        let count = set.keys.len();
        self.jwks.store(Arc::new(Fetched {
            keys: set.keys,
            at: Some(Instant::now()),
        }));
        Ok(count)
    }

    /// Fetches the keys again if the last try is older than `at_most_every`.
    async fn refresh_if_due(&self, at_most_every: Duration) {
        let mut tried = self.fetching.lock().await;
        if tried.is_some_and(|at| at.elapsed() < at_most_every) {
            return;
        }
        *tried = Some(Instant::now());
        if let Err(error) = self.fetch().await {
            warn!(%error, "the issuer's keys could not be fetched; the keys held stay in force");
        }
    }

    /// The key `kid` names (or the only key, for a token without `kid`).
    fn key(&self, kid: Option<&str>) -> Option<Jwk> {
        let fetched = self.jwks.load();
        match kid {
            Some(kid) => fetched
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .cloned(),
            None if fetched.keys.len() == 1 => fetched.keys.first().cloned(),
            None => None,
        }
    }

    /// Verifies `token` (see the module documentation): the signature first, then the claims.
    pub async fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unauthorized("not a valid token (a JWT has three parts)"));
        };
        let header: Header = serde_json::from_slice(&decode_part(header, "header")?)
            .map_err(|error| unauthorized(format!("not a valid token header ({error})")))?;
        let kid = header.kid.as_deref();
        if self.jwks.load().at.is_none_or(|at| at.elapsed() >= MAX_AGE) {
            self.refresh_if_due(REFRESH_AT_MOST_EVERY).await;
        }
        let jwk = match self.key(kid) {
            Some(jwk) => jwk,
            None => {
                self.refresh_if_due(REFRESH_AT_MOST_EVERY).await;
                self.key(kid).ok_or_else(|| {
                    unauthorized(format!(
                        "token signed by key {:?}, which the issuer's JWKS ({}) does not hold",
                        kid.unwrap_or("(no kid)"),
                        self.config.jwks_url
                    ))
                })?
            }
        };
        if jwk.alg.as_deref().is_some_and(|alg| alg != header.alg) {
            return Err(unauthorized(format!(
                "token algorithm {} is not its key's ({})",
                header.alg,
                jwk.alg.as_deref().unwrap_or_default()
            )));
        }
        let signed = &token[..header_and_payload_len(token)];
        let signature = decode_part(signature, "signature")?;
        if !verifies(&header.alg, &jwk, signed.as_bytes(), &signature)? {
            return Err(unauthorized(
                "token signature does not verify against the issuer's keys",
            ));
        }
        let claims: serde_json::Map<String, Value> =
            serde_json::from_slice(&decode_part(payload, "payload")?)
                .map_err(|error| unauthorized(format!("not a valid token payload ({error})")))?;
        self.check_claims(&claims)?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| unauthorized("token has no sub claim"))?
            .to_owned();
        Ok(Identity {
            scopes: self.scopes(&claims),
            subject,
        })
    }

    /// `iss`, `aud`, `exp` and `nbf` (with the leeway), each refusal naming the claim.
    fn check_claims(&self, claims: &serde_json::Map<String, Value>) -> Result<(), ApiError> {
        let config = &self.config;
        if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
            return Err(unauthorized(format!(
                "token issuer is not {}",
                config.issuer
            )));
        }
        let audience = match claims.get("aud") {
            Some(Value::String(one)) => one == &config.audience,
            Some(Value::Array(many)) => many.iter().any(|one| one == &config.audience),
            _ => false,
        };
        if !audience {
            return Err(unauthorized(format!(
                "token audience does not include {}",
                config.audience
            )));
        }
        let now = marquee_schemas::now_ms() / 1000;
        let leeway = config.leeway_secs as i64;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| unauthorized("token has no exp claim"))?;
        if now > exp.saturating_add(leeway) {
            return Err(unauthorized(format!(
                "token expired at {}; sign in again",
                describe_time(exp.saturating_mul(1000))
            )));
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && now.saturating_add(leeway) < nbf
        {
            return Err(unauthorized(format!(
                "token not valid before {}",
                describe_time(nbf.saturating_mul(1000))
            )));
        }
        Ok(())
    }

    /// The scopes `claims` grant under the configured claim and prefix.
    fn scopes(&self, claims: &serde_json::Map<String, Value>) -> Vec<Scope> {
        let values: Vec<&str> = match claims.get(&self.config.scopes_claim) {
            Some(Value::String(text)) => text.split_whitespace().collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut scopes: Vec<Scope> = values
            .into_iter()
            .filter_map(|value| value.strip_prefix(self.config.scope_prefix.as_str()))
            .filter_map(Scope::parse)
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// The rate limiter of `subject`.
    pub fn limiter(&self, subject: &str) -> Arc<DefaultDirectRateLimiter> {
        self.limiters
            .lock()
            .entry(subject.to_owned())
            .or_insert_with(|| Arc::new(RateLimiter::direct(self.quota)))
            .clone()
    }
}

/// The length of a token's signed part, `header.payload`.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}
