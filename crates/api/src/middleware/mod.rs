//! What wraps every route, outermost first: the request id and its span, CORS, the metrics,
//! the guard (size limits, load shedding, keys and scopes, rate limits, the timeout), a
//! request about another node's user forwarded to it, the audit log's record of an operator's
//! action, the 413 of a body declared over the
//! limit, and a panic turned into a 500 (the order is set in [`crate::routes::router`]).

pub mod audit;
pub mod body;
pub mod cors;
pub mod forward;
pub mod guard;
pub mod metrics;
