//! The HTTP edge of Marquee: only this crate knows HTTP and JSON wire types.
//!
//! - [`routes`]: the route table — each handler's path, method, access and answers are in its
//!   `#[utoipa::path]` attribute; the router, the OpenAPI document, the guard's access map and
//!   the metrics' route labels are read from it.
//! - [`handlers`]: one file per resource (events, items, lists, users, admin, probes), with the
//!   wire types of its answers.
//! - [`access`]: what each route asks of a request, read from the generated document.
//! - [`guard`]: the guard's state — limits, API keys and their rate limiters, the concurrency
//!   permits — and [`metrics`], the edge's metrics.
//! - [`middleware`]: what wraps every route — the guard (size limits, load shedding, API keys
//!   and scopes, per-key rate limits, the timeout), request metrics, CORS, the 413 of oversized
//!   bodies.
//! - [`state`]: [`AppState`] and [`Services`], what handlers read.
//! - [`decode`] and [`params`]: request bodies (JSON object, JSON array, NDJSON) into validated
//!   events and items; query parameters and path ids, each refusal naming the field.
//! - [`error`]: [`ApiError`] and its one exhaustive mapping to HTTP statuses and JSON bodies,
//!   including the mapping of every lower crate's error.
//! - [`caps`]: per-key caps on new item ids and on events per user, for keys that ship in apps.
//! - [`keys`]: the keys file (hashed API keys and their scopes) that `marquee keys` edits.
//! - [`oidc`]: operators' OIDC bearer tokens (JWTs verified against the issuer's JWKS, scopes
//!   from a claim), taken beside API keys.
//! - [`viewer`]: viewer tokens — signed, short-lived, bound to one user, for pages that must
//!   not hold a key — and what they open.
//!
//! Invariant: a 202 from `POST /v1/events` means the accepted events are durable in the log.
//! Starting and stopping a node (and wiring its parts) is `marquee_node`'s.

pub mod access;
pub mod audit;
pub mod caps;
pub mod decode;
pub mod error;
pub mod guard;
pub mod handlers;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod middleware;
pub mod oidc;
pub mod params;
pub mod routes;
pub mod state;
pub mod viewer;

pub use error::ApiError;
pub use metrics::HttpMetrics;
pub use routes::router;
pub use state::{AppState, Services};
