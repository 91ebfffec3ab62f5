//! [`ApiError`]: every error the API returns, and its one mapping to HTTP.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
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
    /// The node is still loading its state.
    #[error("the node is starting: state is still loading")]
    NotReady,
    /// A dependency (the log, the state store) cannot take the request now.
    #[error("{message}")]
    Unavailable { message: String },
    /// A bug or an unexpected failure; the cause is logged, not returned.
    #[error("internal error")]
    Internal { cause: String },
}

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
            ApiError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal { cause } = &self {
            error!(%cause, "internal error");
        }
        let body = json!({"error": {"code": code, "message": self.to_string()}});
        (status, Json(body)).into_response()
    }
}

impl From<marquee_stream_processor::Error> for ApiError {
    fn from(error: marquee_stream_processor::Error) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<marquee_vector_store::Error> for ApiError {
    fn from(error: marquee_vector_store::Error) -> ApiError {
        ApiError::internal(error)
    }
}
