//! Request bodies into validated events and items.
//!
//! A body is read as a whole first: if it cannot be (wrong content type, malformed JSON, too
//! many elements) the request is refused and nothing is appended. Then each element is decoded
//! and validated on its own; an NDJSON line that does not parse is one rejected element.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use marquee_schemas::FieldError;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// Most elements one request may carry.
pub const MAX_ELEMENTS_PER_REQUEST: usize = 10_000;
/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`: one object or an array of objects.
    Json,
    /// `application/x-ndjson`: one object per line.
    Ndjson,
}

/// The format named by the `Content-Type` header.
pub fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType {
            message: "content-type: missing; send application/json or application/x-ndjson".into(),
        });
    };
    let media_type = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
            Ok(BodyFormat::Ndjson)
        }
        other => Err(ApiError::UnsupportedMediaType {
            message: format!(
                "content-type: {other:?} is not supported; send application/json or \
                 application/x-ndjson"
            ),
        }),
    }
}

/// One element of a body: a JSON value, or the reason its NDJSON line did not parse.
pub type Element = Result<Value, FieldError>;

/// Splits a body into its elements.
pub fn elements(format: BodyFormat, body: &[u8]) -> Result<Vec<Element>, ApiError> {
    let elements: Vec<Element> = match format {
        BodyFormat::Json => {
            let value: Value = serde_json::from_slice(body).map_err(|error| {
                ApiError::bad_request("malformed_json", format!("body: malformed JSON: {error}"))
            })?;
            match value {
                Value::Array(values) => values.into_iter().map(Ok).collect(),
                Value::Object(_) => vec![Ok(value)],
                _ => {
                    return Err(ApiError::bad_request(
                        "malformed_json",
                        "body: must be a JSON object or an array of objects",
                    ));
                }
            }
        }
        BodyFormat::Ndjson => {
            let text = std::str::from_utf8(body).map_err(|error| {
                ApiError::bad_request("malformed_ndjson", format!("body: not UTF-8: {error}"))
            })?;
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| {
                    serde_json::from_str::<Value>(line).map_err(|error| {
                        FieldError::new("line", format!("malformed JSON: {error}"))
                    })
                })
                .collect()
        }
    };
    if elements.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "body: contains no elements",
        ));
    }
    if elements.len() > MAX_ELEMENTS_PER_REQUEST {
        return Err(ApiError::PayloadTooLarge {
            message: format!(
                "body: {} elements, at most {MAX_ELEMENTS_PER_REQUEST} are accepted per request",
                elements.len()
            ),
        });
    }
    Ok(elements)
}

/// One refused element of a request.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// Position in the request (array index or NDJSON line among non-empty lines).
    pub index: usize,
    /// The field at fault.
    pub field: String,
    /// `field: what is wrong`.
    pub error: String,
}

impl Rejection {
    pub fn new(index: usize, error: &FieldError) -> Rejection {
        Rejection {
            index,
            field: error.field.clone(),
            error: error.to_string(),
        }
    }
}
