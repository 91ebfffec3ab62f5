//! The guard every request passes before its handler: size limits, API keys and scopes, per-key
//! rate limits, the body read under its deadline, load shedding, and the request timeout, in
//! that order.
//!
//! - Size: a URI longer than `max_uri_bytes` is refused with 414, headers larger than
//!   `max_header_bytes` in all with 431 (hyper's own, larger, limits stay behind these); bodies are
//!   limited by the router (`max_body_bytes`, 413).
//! - Body: a request's body is read whole before it takes a permit, within
//!   `body_read_timeout_secs` (408 `body_timeout` past it), so a client that sends its body
//!   slowly holds no permit meanwhile.
//! - Load shedding: at most `max_concurrent_requests` requests of each scope's pool (`ingest`,
//!   `read`, `admin`: the scope the route needs) are served at once (the open routes have two
//!   pools of their own: `/metrics`, [`METRICS_CONCURRENCY`] scrapes, and the probes with the
//!   pages); the next one gets 503 with
//!   `Retry-After: 1` at once instead of waiting in a queue that would make every request late.
//!   A flood on the ingest key (which ships inside apps) leaves reads and operators answering.
//! - Keys: when auth is on, every route but the open ones (`/healthz`, `/readyz`, `/metrics`,
//!   `/openapi.json`) needs `Authorization: Bearer KEY` or `X-API-Key: KEY` of a key whose scopes
//!   allow the route ([`required_scope`]): 401 without a valid key, 403 with the wrong scope.
//!   The beacon route (`POST /v1/events/beacon`, for `navigator.sendBeacon`, which cannot set
//!   headers) takes its key from the `key` query parameter instead, and only a key whose one
//!   scope is `ingest`: a URL ends up in logs and browser history, so a key that can read or
//!   administer never travels in one. The
//!   keys file is re-read within a second of a change ([`Guard::reload_if_changed`]), so
//!   `marquee keys create` and `revoke` take effect on a running server.
//! - Rate: each key has a token bucket (GCRA, the `governor` crate) of its own rate, or the
//!   default, with a burst of `rate_burst_seconds` of it; an empty bucket gives 429 with
//!   `Retry-After`. Without auth there is no key to meter, and only the concurrency limit applies.
//! - Timeout: a request not answered within `request_timeout` gets 503 with code `timeout`. An
//!   event append already handed to the log still completes: a client that retries with the same
//!   `event_id`s is de-duplicated, so send ids (the SDKs do) where a retry must not count twice.
//!
//! Every refusal carries its reason to the metrics (`marquee_http_requests_rejected_total`).
//!
//! [`required_scope`]: crate::middleware::guard::required_scope

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, header};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::error::ApiError;
use crate::keys::{KeySet, Scope};

/// Whether requests need an API key: on unless a configuration turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Off when the node listens on a loopback address only, on otherwise: for a development
    /// machine. Behind a TLS proxy on the same host (which listens on loopback too) it is off,
    /// so it is never the default.
    Auto,
    #[default]
    On,
    Off,
}

impl AuthMode {
    /// Whether auth is on for a node listening on `listen`.
    pub fn enabled(self, listen: std::net::SocketAddr) -> bool {
        match self {
            AuthMode::Auto => !listen.ip().is_loopback(),
            AuthMode::On => true,
            AuthMode::Off => false,
        }
    }
}

/// The limits of the guard; every field is a `[limits]` key of the configuration file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests per second of a key without a rate of its own.
    pub rate_per_second: u32,
    /// A key may spend this many seconds of its rate at once.
    pub rate_burst_seconds: u32,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub request_timeout_secs: f64,
    /// A request's body must arrive whole within this many seconds of its head; it is read
    /// before the request takes a concurrency permit, so slow bodies hold none.
    pub body_read_timeout_secs: f64,
    /// Requests in progress at once per scope (`ingest`, `read`, `admin`: a pool each, so a
    /// flood on one key's scope leaves the others answering); past it, 503 at once.
    pub max_concurrent_requests: usize,
    /// A connection that sends no whole request head for this long (idle keep-alive included)
    /// is closed.
    pub header_read_timeout_secs: f64,
    /// Connections open at once; past it a new one is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Item ids the node does not know yet that one key may name in a minute (keys that may
    /// write the catalogue are not capped; 0: no cap). See [`crate::caps`].
    pub new_items_per_minute: u32,
    /// Events one key may send for one user in a minute (keys that may write the catalogue
    /// are not capped; 0: no cap).
    pub events_per_minute_per_user: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            rate_per_second: 1_000,
            rate_burst_seconds: 2,
            max_body_bytes: crate::decode::MAX_BODY_BYTES,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            request_timeout_secs: 10.0,
            body_read_timeout_secs: 10.0,
            max_concurrent_requests: 2_048,
            header_read_timeout_secs: 10.0,
            max_connections: 25_000,
            new_items_per_minute: 1_000,
            events_per_minute_per_user: 600,
        }
    }
}

impl Limits {
    /// A message naming the first invalid field.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_per_second == 0 || self.rate_burst_seconds == 0 {
            return Err(
                "limits.rate_per_second and limits.rate_burst_seconds: must be at least 1".into(),
            );
        }
        if self.max_body_bytes < 1024 || self.max_header_bytes < 1024 || self.max_uri_bytes < 256 {
            return Err(
                "limits.max_body_bytes and limits.max_header_bytes: at least 1024; limits.max_uri_bytes: at least 256"
                    .into(),
            );
        }
        // Durations past an hour are refused: no request needs one, and a huge one would
        // overflow the clock's arithmetic on every request.
        for (name, seconds) in [
            ("request_timeout_secs", self.request_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
        ] {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3_600.0) {
                return Err(format!(
                    "limits.{name}: must be a number of seconds above 0 and at most 3600, got {seconds}"
                ));
            }
        }
        if self.max_concurrent_requests == 0 {
            return Err("limits.max_concurrent_requests: must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("limits.max_connections: must be at least 1".into());
        }
        Ok(())
    }
}

/// Scrapes of `/metrics` rendered at once; past it, 503. Each renders every series, and the
/// figures behind them are read once for all scrapes under way.
pub const METRICS_CONCURRENCY: usize = 4;

/// Prometheus's route.
pub const METRICS_ROUTE: &str = "/metrics";

/// The beacon form of event ingest, whose key is a query parameter.
pub const BEACON_ROUTE: &str = "/v1/events/beacon";

/// A key set with one rate limiter per key.
struct Keys {
    set: KeySet,
    limiters: HashMap<String, Arc<DefaultDirectRateLimiter>>,
}

/// The state of the guard, shared by every request.
pub struct Guard {
    limits: Limits,
    pub(crate) auth: bool,
    path: PathBuf,
    keys: ArcSwap<Keys>,
    /// The keys file's (modification time, length) at the last load.
    seen: Mutex<Option<(SystemTime, u64)>>,
    /// The concurrency permits of each scope's requests: ingest, read, and the operators'
    /// (admin and its parts).
    pools: [Arc<Semaphore>; 3],
    /// The open routes' permits: `/metrics` ([`METRICS_CONCURRENCY`]), and the probes, the API
    /// description and the pages (`max_concurrent_requests`). A flood of scrapes leaves the
    /// probes answering, and neither takes a keyed route's permit.
    open_pools: [Arc<Semaphore>; 2],
    /// The key of viewer tokens (`<data-dir>/viewer.key`); `None` refuses every token.
    viewer_key: Option<[u8; 32]>,
    /// The OIDC issuer whose tokens are taken beside API keys ([`crate::oidc`]).
    oidc: Option<Arc<crate::oidc::Oidc>>,
    /// Per-key caps on new item ids and on events per user ([`crate::caps`]).
    caps: crate::caps::IngestCaps,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .finish()
    }
}

fn quota(rate: u32, burst_seconds: u32) -> Quota {
    let rate = NonZeroU32::new(rate.max(1)).expect("at least 1");
    let burst =
        NonZeroU32::new(rate.get().saturating_mul(burst_seconds.max(1))).expect("at least 1");
    Quota::per_second(rate).allow_burst(burst)
}

impl Guard {
    /// A guard reading its keys from `keys_file` (`<data-dir>/keys.json`).
    pub fn new(keys_file: PathBuf, auth: bool, limits: Limits) -> Guard {
        let caps = crate::caps::IngestCaps::new(
            limits.new_items_per_minute,
            limits.events_per_minute_per_user,
        );
        let guard = Guard {
            pools: std::array::from_fn(|_| {
                Arc::new(Semaphore::new(limits.max_concurrent_requests))
            }),
            open_pools: [
                Arc::new(Semaphore::new(METRICS_CONCURRENCY)),
                Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            ],
            limits,
            auth,
            path: keys_file,
            keys: ArcSwap::from_pointee(Keys {
                set: KeySet::default(),
                limiters: HashMap::new(),
            }),
            seen: Mutex::new(None),
            viewer_key: None,
            oidc: None,
            caps,
        };
        guard.reload_if_changed();
        if !auth {
            warn!(
                "AUTH IS OFF: whoever reaches this node can read every user's data, erase users, \
                 change the catalogue and take backups; turn it on (auth = \"on\", the default) \
                 and create keys with `marquee keys create` unless only you can reach it"
            );
        } else if guard.keys.load().set.is_empty() {
            warn!(
                keys_file = %guard.path.display(),
                "auth is on and there are no keys: every request but the probes will get 401; \
                 create one with `marquee keys create --scope admin`"
            );
        }
        guard
    }

    /// The per-key caps on new item ids and events per user.
    pub fn caps(&self) -> &crate::caps::IngestCaps {
        &self.caps
    }

    /// The concurrency pool of an open route: `/metrics`'s own, or the others'.
    pub(crate) fn open_pool(&self, route: Option<&str>) -> &Arc<Semaphore> {
        &self.open_pools[usize::from(route != Some(METRICS_ROUTE))]
    }

    /// The concurrency pool of the requests that need `scope`.
    pub(crate) fn pool(&self, scope: Scope) -> &Arc<Semaphore> {
        &self.pools[match scope {
            Scope::Ingest => 0,
            Scope::Read => 1,
            Scope::Catalogue | Scope::Users | Scope::Operations | Scope::Tokens | Scope::Admin => 2,
        }]
    }

    pub fn auth_enabled(&self) -> bool {
        self.auth
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Re-reads the keys file if its modification time or length changed. A file that cannot be
    /// read or parsed keeps the keys in force (and is logged).
    pub fn reload_if_changed(&self) {
        let stamp = std::fs::metadata(&self.path).ok().map(|meta| {
            (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            )
        });
        let mut seen = self.seen.lock();
        if *seen == stamp && seen.is_some() {
            return;
        }
        match KeySet::load(&self.path) {
            Ok(set) => {
                let old = self.keys.load();
                let limiters = set
                    .records()
                    .into_iter()
                    .map(|record| {
                        let unchanged = old.set.records().into_iter().any(|before| {
                            before.id == record.id
                                && before.rate_per_second == record.rate_per_second
                        });
                        let limiter = match (unchanged, old.limiters.get(&record.id)) {
                            (true, Some(limiter)) => limiter.clone(),
                            _ => Arc::new(RateLimiter::direct(quota(
                                record
                                    .rate_per_second
                                    .unwrap_or(self.limits.rate_per_second),
                                self.limits.rate_burst_seconds,
                            ))),
                        };
                        (record.id.clone(), limiter)
                    })
                    .collect();
                if seen.is_some() {
                    info!(keys = set.records().len(), "keys file reloaded");
                }
                self.keys.store(Arc::new(Keys { set, limiters }));
                *seen = stamp;
            }
            Err(error) => {
                warn!(%error, "the keys file cannot be read; the keys in force are kept");
                *seen = stamp;
            }
        }
    }

    /// Checks the key of a request that needs `scope`; returns the key's rate limiter.
    /// A guard that also takes viewer tokens signed with `key` ([`crate::viewer`]).
    pub fn with_viewer_key(mut self, key: [u8; 32]) -> Guard {
        self.viewer_key = Some(key);
        self
    }

    /// A guard that also takes the OIDC tokens of `config`'s issuer ([`crate::oidc`]).
    pub fn with_oidc(mut self, config: crate::oidc::OidcConfig) -> Guard {
        let quota = quota(self.limits.rate_per_second, self.limits.rate_burst_seconds);
        self.oidc = Some(Arc::new(crate::oidc::Oidc::new(config, quota)));
        self
    }

    /// The OIDC issuer this node takes tokens of, if any.
    pub fn oidc(&self) -> Option<&Arc<crate::oidc::Oidc>> {
        self.oidc.as_ref()
    }

    /// Checks an OIDC token of a request that needs `scope`; returns the subject's rate limiter
    /// and the subject.
    pub(crate) async fn authorise_token(
        &self,
        oidc: &crate::oidc::Oidc,
        token: &str,
        scope: Scope,
    ) -> Result<(Arc<DefaultDirectRateLimiter>, String, Vec<Scope>), ApiError> {
        let identity = oidc.verify(token).await?;
        if !scope.granted_by(&identity.scopes) {
            let held: Vec<&str> = identity.scopes.iter().map(|scope| scope.as_str()).collect();
            return Err(ApiError::Forbidden {
                message: format!(
                    "authorization: the token of {} grants {}; this route needs {scope}",
                    identity.subject,
                    if held.is_empty() {
                        "no scope of this API".to_owned()
                    } else {
                        format!("scope {}", held.join(","))
                    }
                ),
            });
        }
        Ok((
            oidc.limiter(&identity.subject),
            identity.subject,
            identity.scopes,
        ))
    }

    /// The key viewer tokens are signed with, if this node takes them.
    pub fn viewer_key(&self) -> Option<&[u8; 32]> {
        self.viewer_key.as_ref()
    }

    /// The user of a viewer token (401 when it is expired, tampered with, or this node takes
    /// no tokens).
    pub(crate) fn viewer(&self, token: &str) -> Result<String, ApiError> {
        let key = self
            .viewer_key
            .as_ref()
            .ok_or_else(|| ApiError::Unauthorized {
                message: "authorization: this node takes no viewer tokens".into(),
            })?;
        let now_secs = (marquee_schemas::now_ms() / 1000).max(0) as u64;
        crate::viewer::verify(key, token, now_secs)
    }

    pub(crate) fn authorise(
        &self,
        presented: Presented<'_>,
        scope: Scope,
    ) -> Result<(Arc<DefaultDirectRateLimiter>, String, Vec<Scope>), ApiError> {
        let (field, key) = match presented {
            Presented::Header(key) => ("authorization", key),
            Presented::Query(key) => ("key", key),
        };
        let key = key.ok_or_else(|| ApiError::Unauthorized {
            message: match presented {
                Presented::Header(_) => "authorization: missing API key; send `Authorization: Bearer KEY` or `X-API-Key: KEY`".into(),
                Presented::Query(_) => "key: missing API key; the beacon route takes an ingest key as the `key` query parameter".into(),
            },
        })?;
        let keys = self.keys.load();
        let record = keys.set.verify(key).ok_or_else(|| ApiError::Unauthorized {
            message: format!("{field}: unknown or revoked API key"),
        })?;
        if record.expired(marquee_schemas::now_ms()) {
            return Err(ApiError::Unauthorized {
                message: format!(
                    "{field}: key {} expired at {}; create a new one",
                    record.id,
                    crate::keys::describe_time(record.expires_ms.unwrap_or_default())
                ),
            });
        }
        if matches!(presented, Presented::Query(_))
            && !record.scopes.iter().all(|held| *held == Scope::Ingest)
        {
            return Err(ApiError::Forbidden {
                message: format!(
                    "key: key {} can do more than ingest; only a key whose one scope is ingest \
                     may be sent in a URL (create one with `marquee keys create --scope ingest`)",
                    record.id
                ),
            });
        }
        if !record.allows(scope) {
            let held: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
            return Err(ApiError::Forbidden {
                message: format!(
                    "authorization: key {} has scope {}; this route needs {scope}",
                    record.id,
                    held.join(",")
                ),
            });
        }
        let limiter = keys
            .limiters
            .get(&record.id)
            .cloned()
            .expect("a limiter per key");
        Ok((limiter, record.id.clone(), record.scopes.clone()))
    }
}

/// The scopes the request's key or token holds (absent with auth off, and for viewer tokens,
/// whose routes are their own user's): a handler whose parameter reveals more than its route's
/// scope reads it (`exclude_seen=false` shows a user's seen items, which `users` guards).
#[derive(Debug, Clone)]
pub struct Granted(pub Vec<Scope>);

impl Granted {
    pub fn allows(&self, scope: Scope) -> bool {
        scope.granted_by(&self.0)
    }
}

/// Where a request's key came from, and the key if there was one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Presented<'a> {
    Header(Option<&'a str>),
    Query(Option<&'a str>),
}

/// The `key` query parameter of a beacon request, percent-decoded.
pub(crate) fn query_key(uri: &axum::http::Uri) -> Option<String> {
    query_param(uri, "key")
}

/// A query parameter, percent-decoded.
pub(crate) fn query_param(uri: &axum::http::Uri, name: &str) -> Option<String> {
    let axum::extract::Query(params) =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri).ok()?;
    params.get(name).cloned()
}

/// The key of a request: `Authorization: Bearer KEY`, else `X-API-Key: KEY`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, key) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| key.trim());
    }
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

/// Re-reads the keys file every second until `cancel`.
pub async fn watch_keys(guard: Arc<Guard>, cancel: tokio_util::sync::CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {
                ticks += 1;
                let guard = guard.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    guard.reload_if_changed();
                    // The caps' buckets of idle keys and users, once a minute.
                    if ticks.is_multiple_of(60) {
                        guard.caps.forget_idle();
                    }
                })
                .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert("x-api-key", "mq_a_b".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("mq_a_b"));
        headers.insert(header::AUTHORIZATION, "Bearer mq_c_d".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("mq_c_d"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&headers), None);
    }

    #[test]
    fn auth_is_on_by_default_off_loopback() {
        let loopback: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(!AuthMode::Auto.enabled(loopback));
        assert!(AuthMode::Auto.enabled(any));
        assert!(AuthMode::On.enabled(loopback));
        assert!(!AuthMode::Off.enabled(any));
    }
}
