//! What can go wrong, for queries and for delivery.

use std::time::Duration;

use serde::Deserialize;

use crate::event::Event;

/// A failed query or catalogue call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: its status, code and message (which names the field
    /// at fault for a bad request).
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// From `Retry-After`, on 429 and 503.
        retry_after: Option<Duration>,
    },
    /// No answer: the server is unreachable, the connection broke, or the request timed out.
    #[error("network: {0}")]
    Network(#[from] reqwest::Error),
    /// An answer this version of the SDK cannot read.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A configuration the client cannot work with (such as a base URL that is not one).
    #[error("{0}")]
    Config(String),
}

/// Something the delivery of tracked events reports to the error callback.
#[derive(Debug, Clone)]
pub enum DeliveryError {
    /// The server refused this event (validation): it is not retried.
    Rejected {
        event: Box<Event>,
        /// The field at fault.
        field: String,
        /// The server's message, `field: what is wrong`.
        message: String,
    },
    /// The server refused a whole batch (401, 403, 400, 413, 415…): not retried.
    BatchRefused {
        status: u16,
        code: String,
        message: String,
        events: usize,
    },
    /// A batch failed for a reason that may pass and will be sent again after `delay`.
    Retrying {
        attempt: u32,
        delay: Duration,
        cause: String,
    },
    /// The queue was full: this many of the oldest queued events were dropped.
    Dropped { count: u64 },
    /// `close` (or the drain after the last handle was dropped) ran out of time with this many
    /// events unacknowledged; a batch in flight may still have reached the server.
    Undelivered { count: u64 },
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryError::Rejected { event, message, .. } => {
                write!(f, "event {} refused: {message}", event.event_id)
            }
            DeliveryError::BatchRefused {
                status,
                code,
                message,
                events,
            } => write!(f, "batch of {events} refused: {status} {code}: {message}"),
            DeliveryError::Retrying {
                attempt,
                delay,
                cause,
            } => write!(
                f,
                "attempt {attempt} failed ({cause}); retrying in {delay:?}"
            ),
            DeliveryError::Dropped { count } => {
                write!(f, "queue full: dropped the {count} oldest events")
            }
            DeliveryError::Undelivered { count } => {
                write!(f, "closed with {count} events undelivered")
            }
        }
    }
}

/// A `Retry-After` header in seconds (the form the server sends).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The server's error body, `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

impl ApiErrorBody {
    /// Reads an error body; one that is not the server's keeps its text as the message.
    pub fn parse(text: &str) -> ApiErrorBody {
        #[derive(Deserialize)]
        struct Wrapper {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        match serde_json::from_str::<Wrapper>(text) {
            Ok(Wrapper { error }) => ApiErrorBody {
                code: error.code,
                message: error.message,
            },
            Err(_) => ApiErrorBody {
                code: "unknown".into(),
                message: text.chars().take(500).collect(),
            },
        }
    }
}
