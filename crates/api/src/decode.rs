//! Request bodies into validated events and items.
//!
//! A body is read as a whole first: if it cannot be (wrong content type, malformed JSON, too
//! many elements) the request is refused and nothing is appended. Then each element is decoded
//! and validated on its own; an NDJSON line that does not parse is one rejected element.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use marquee_schemas::FieldError;
use marquee_schemas::json::{BodyError, MAX_ELEMENTS_PER_BODY, body_elements};
use serde::Serialize;

use crate::error::ApiError;

/// Most elements one request may carry.
pub const MAX_ELEMENTS_PER_REQUEST: usize = MAX_ELEMENTS_PER_BODY;
/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

pub use marquee_schemas::json::BodyFormat;

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

/// The format of a beacon body: `navigator.sendBeacon` sends a string as
/// `text/plain;charset=UTF-8`, which is read as NDJSON (a JSON array is recognised by its
/// leading `[` only under `application/json`); the JSON types are accepted too.
pub fn beacon_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let is_text = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("text/plain"));
    if is_text {
        return Ok(BodyFormat::Ndjson);
    }
    body_format(headers).map_err(|_| ApiError::UnsupportedMediaType {
        message: "content-type: send text/plain (NDJSON, as navigator.sendBeacon does), \
                  application/x-ndjson or application/json"
            .into(),
    })
}

/// One element of a body: a JSON value, or the reason its NDJSON line did not parse.
pub type Element = marquee_schemas::json::Element;

/// Splits a body into its elements (`marquee_schemas::json::body_elements`), refusing a body
/// that cannot be read as a whole.
pub fn elements(format: BodyFormat, body: &[u8]) -> Result<Vec<Element>, ApiError> {
    body_elements(format, body).map_err(|error| match error {
        BodyError::Malformed { code, message } => ApiError::bad_request(code, message),
        BodyError::TooManyElements { count } => ApiError::PayloadTooLarge {
            message: format!(
                "body: {count} elements, at most {MAX_ELEMENTS_PER_REQUEST} are accepted per request"
            ),
        },
    })
}

/// One refused element of a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// Reads a whole body, mapping axum's refusal (a body over the limit, a broken stream).
pub fn read_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                message: format!("body: larger than {limit} bytes"),
            }
        } else {
            ApiError::bad_request("unreadable_body", format!("body: {rejection}"))
        }
    })
}

/// A body that must be one JSON document (`application/json`).
pub fn json_body(
    headers: &HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<serde_json::Value, ApiError> {
    if body_format(headers)? != BodyFormat::Json {
        return Err(ApiError::UnsupportedMediaType {
            message: "content-type: send application/json".into(),
        });
    }
    let body = read_body(body, limit)?;
    marquee_schemas::json::strict::from_slice(&body).map_err(|error| {
        ApiError::bad_request("malformed_json", format!("body: malformed JSON: {error}"))
    })
}

/// A JSON body decoded into `T`, naming the field at fault (`variants[1].share: …`, or `body:`
/// for the whole) in a 422.
pub fn typed_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let value = json_body(headers, body, limit)?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        ApiError::Unprocessable {
            message: if path == "." {
                format!("body: {inner}")
            } else {
                format!("{path}: {inner}")
            },
        }
    })
}

/// The members of a JSON object body that must hold only `fields`: `example` shows the
/// expected shape in the refusal of a body that is not an object.
pub fn object_of<'v>(
    value: &'v serde_json::Value,
    fields: &[&str],
    example: &str,
) -> Result<&'v serde_json::Map<String, serde_json::Value>, ApiError> {
    let object = value.as_object().ok_or_else(|| ApiError::Unprocessable {
        message: format!("body: expected an object such as {example}"),
    })?;
    if let Some(unknown) = object.keys().find(|key| !fields.contains(&key.as_str())) {
        let expected: Vec<String> = fields.iter().map(|field| format!("\"{field}\"")).collect();
        return Err(ApiError::Unprocessable {
            message: format!(
                "{unknown}: unknown field (expected only {})",
                expected.join(", ")
            ),
        });
    }
    Ok(object)
}

/// Decodes each element on its own: the valid ones, and a rejection (reported to `on_reject`
/// too) for each invalid one.
pub fn decode_each<T>(
    elements: &[Element],
    mut decode: impl FnMut(&serde_json::Value) -> Result<T, FieldError>,
    mut on_reject: impl FnMut(&Element),
) -> (Vec<T>, Vec<Rejection>) {
    let mut decoded = Vec::with_capacity(elements.len());
    let mut rejected = Vec::new();
    for (index, element) in elements.iter().enumerate() {
        match element.as_ref().map_err(Clone::clone).and_then(&mut decode) {
            Ok(value) => decoded.push(value),
            Err(error) => {
                on_reject(element);
                rejected.push(Rejection::new(index, &error));
            }
        }
    }
    (decoded, rejected)
}
