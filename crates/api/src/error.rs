//! [`ApiError`]: every error the API returns, and its one mapping to HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::error;

/// An error answered to a client as `{"error": {"code": "…", "message": "…"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read (malformed JSON, a bad query parameter).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Nothing at this path, or no such user or item.
    #[error("{message}")]
    NotFound { message: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{message}")]
    PayloadTooLarge { message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    /// Every element of the request failed validation.
    #[error("{message}")]
    Unprocessable { message: String },
    /// No valid API key.
    #[error("{message}")]
    Unauthorized { message: String },
    /// A valid key without the scope the route needs.
    #[error("{message}")]
    Forbidden { message: String },
    /// The key's rate limit is spent.
    #[error("rate limit: too many requests for this key; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The concurrency limit is reached: shed at once rather than queued.
    #[error("overloaded: too many requests in progress; retry shortly")]
    Overloaded,
    /// The request was not answered within the request timeout.
    #[error("timeout: the request was not answered within {after:?}")]
    Timeout { after: std::time::Duration },
    /// The body did not arrive whole within the body timeout.
    #[error("body: not received whole within {after:?}")]
    BodyTimeout { after: std::time::Duration },
    #[error("{message}")]
    UriTooLong { message: String },
    #[error("{message}")]
    HeadersTooLarge { message: String },
    /// The node is still loading its state.
    #[error("the node is starting: state is still loading")]
    NotReady,
    /// A dependency (the log, the state store) cannot take the request now.
    #[error("{message}")]
    Unavailable { message: String },
    /// The user's partition is applied by another node (the partitions are split between
    /// nodes): `owner` is that node's address when the configuration names it.
    #[error("{message}")]
    Misdirected {
        message: String,
        owner: Option<String>,
    },
    /// A stored record that does not decode; the cause is logged, the metric counted.
    #[error("internal error: a stored record is corrupt (see the log)")]
    Corrupt { db: &'static str, cause: String },
    /// A bug or an unexpected failure; the cause is logged, not returned.
    #[error("internal error")]
    Internal { cause: String },
    /// The error of an operation that ran as a job ([`crate::jobs`]), answered as it was.
    #[error("{message}")]
    Replayed {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

/// The header of a 421 answer naming the node that serves the user.
pub const OWNER_HEADER: &str = "x-marquee-owner";

/// The database of a corrupt record a response met, set for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct CorruptRecord(pub &'static str);

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            message: message.into(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            cause: cause.to_string(),
        }
    }

    /// The HTTP status and the machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            ApiError::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Timeout { .. } => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiError::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Misdirected { .. } => (StatusCode::MISDIRECTED_REQUEST, "misdirected"),
            ApiError::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_record"),
            ApiError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Replayed { status, code, .. } => (*status, code),
        }
    }

    /// Why the request was refused, for `marquee_http_requests_rejected_total{reason}`; `None`
    /// for errors that are not a refusal of the request (not found, not ready, a failure).
    pub fn rejection_reason(&self) -> Option<&'static str> {
        match self {
            ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => Some("auth"),
            ApiError::RateLimited { .. } => Some("rate_limit"),
            ApiError::Overloaded => Some("overload"),
            ApiError::Timeout { .. } | ApiError::BodyTimeout { .. } => Some("timeout"),
            ApiError::PayloadTooLarge { .. }
            | ApiError::UriTooLong { .. }
            | ApiError::HeadersTooLarge { .. } => Some("size"),
            ApiError::BadRequest { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::UnsupportedMediaType { .. }
            | ApiError::Unprocessable { .. } => Some("validation"),
            ApiError::NotFound { .. }
            | ApiError::NotReady
            | ApiError::Unavailable { .. }
            | ApiError::Misdirected { .. }
            | ApiError::Corrupt { .. }
            | ApiError::Internal { .. }
            | ApiError::Replayed { .. } => None,
        }
    }
}

/// The reason a response refused its request, set by [`ApiError`]'s response for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct RejectionReason(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal { cause } = &self {
            error!(%cause, "internal error");
        }
        if let ApiError::Corrupt { db, cause } = &self {
            error!(%cause, db, "corrupt stored record");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                owner: match &self {
                    ApiError::Misdirected { owner, .. } => owner.clone(),
                    _ => None,
                },
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"marquee\""),
                );
            }
            ApiError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Misdirected {
                owner: Some(owner), ..
            } => {
                if let Ok(value) = HeaderValue::from_str(owner) {
                    headers.insert(OWNER_HEADER, value);
                }
            }
            ApiError::Overloaded | ApiError::NotReady => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            _ => {}
        }
        if let Some(reason) = self.rejection_reason() {
            response.extensions_mut().insert(RejectionReason(reason));
        }
        if let ApiError::Corrupt { db, .. } = &self {
            response.extensions_mut().insert(CorruptRecord(db));
        }
        response
    }
}

/// The body of every error answer (the schema of the OpenAPI document).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code, a message naming the field at fault where there is one,
/// and for a misdirected request the node that serves the user.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

// The mappings below are the only place a lower crate's error becomes an answer: a record that
// does not decode is a 500 `corrupt_record` (counted); a dependency that cannot take the
// request now (storage trouble such as a full disk, a closed or unreachable log, a stopped
// processor) is a 503 `unavailable` whose message names the cause, the same on every route; a
// bad setting or anything else is a logged 500 `internal` whose cause never reaches the client.

impl From<marquee_stream_processor::Error> for ApiError {
    fn from(error: marquee_stream_processor::Error) -> ApiError {
        use marquee_stream_processor::Error;
        match error {
            Error::Log(error) => error.into(),
            Error::State(error) => error.into(),
            Error::Stopped => ApiError::Unavailable {
                message: format!("{}; retry", Error::Stopped),
            },
            error @ Error::Search { .. } => ApiError::Unavailable {
                message: format!("{error}; retry later"),
            },
            Error::Invalid(error) => ApiError::Unprocessable {
                message: error.to_string(),
            },
            Error::NotFound(message) => ApiError::not_found(message),
            // The erasure journal could not be written (a full disk): nothing was erased yet.
            error @ Error::Journal(marquee_stream_processor::journal::JournalError::Io {
                ..
            }) => ApiError::Unavailable {
                message: format!("{error}; retry later"),
            },
            error @ (Error::Config(_)
            | Error::Journal(_)
            | Error::Io { .. }
            | Error::SecretKey { .. }
            | Error::MissingStateKey { .. }) => ApiError::internal(error),
        }
    }
}

impl From<marquee_vector_store::Error> for ApiError {
    fn from(error: marquee_vector_store::Error) -> ApiError {
        use marquee_vector_store::Error;
        match error {
            Error::CorruptRecord { .. }
            | Error::CorruptKey { .. }
            | Error::CorruptNeighbours { .. }
            | Error::Sealed { .. } => ApiError::Corrupt {
                db: "state",
                cause: error.to_string(),
            },
            Error::Storage(_) => ApiError::Unavailable {
                message: format!("{error}; retry later"),
            },
            Error::Encode { .. }
            | Error::DimensionMismatch { .. }
            | Error::SavedIndex { .. }
            | Error::ReadFile { .. }
            | Error::EncryptedState { .. }
            | Error::PlainState { .. }
            | Error::WrongEncryptionKey { .. } => ApiError::internal(error),
        }
    }
}

impl From<marquee_ingest::Error> for ApiError {
    fn from(error: marquee_ingest::Error) -> ApiError {
        use marquee_ingest::Error;
        match error {
            Error::CorruptRecord { .. } | Error::Sealed { .. } => ApiError::Corrupt {
                db: "log",
                cause: error.to_string(),
            },
            Error::Storage(_) | Error::Closed | Error::Unavailable(_) => ApiError::Unavailable {
                message: format!("{error}; retry later"),
            },
            Error::Encode(_)
            | Error::PartitionCountMismatch { .. }
            | Error::NoSuchPartition { .. }
            | Error::Unsupported(_)
            | Error::NotFound(_)
            | Error::Encryption { .. } => ApiError::internal(error),
        }
    }
}

impl From<marquee_stream_processor::backup::BackupError> for ApiError {
    fn from(error: marquee_stream_processor::backup::BackupError) -> ApiError {
        use marquee_stream_processor::backup::BackupError;
        match error {
            BackupError::NotEmpty(_)
            | BackupError::NotAbsolute(_)
            | BackupError::NotABackup(_)
            | BackupError::TargetInUse(_) => ApiError::Unprocessable {
                message: error.to_string(),
            },
            BackupError::Io { .. } | BackupError::Checkpoint(_) | BackupError::Journal(_) => {
                ApiError::Unavailable {
                    message: format!("backup failed: {error}"),
                }
            }
        }
    }
}
