//! The catalogue: `PUT /v1/items/{item_id}`, `POST /v1/items`, `GET /v1/items/{item_id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use marquee_schemas::Item;
use marquee_schemas::json::item_from_json;
use marquee_stream_processor::catalogue::upsert_catalogue;
use serde::Serialize;

use crate::decode::{Rejection, body_format, decode_each, elements, json_body, read_body};
use crate::error::{ApiError, ErrorBody};
use crate::params::check_path_id;
use crate::state::{AppState, Services};

/// The answer to a bulk upsert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Upserted {
    pub upserted: usize,
    pub rejected: Vec<Rejection>,
}

/// An item as the node knows it: its catalogue fields and how many events it has.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub item_id: String,
    pub title: Option<String>,
    pub genres: Vec<String>,
    pub year: Option<i32>,
    pub tags: Vec<String>,
    /// Whether the catalogue holds the item (else it is known from events only).
    pub in_catalogue: bool,
    pub event_count: u64,
}

/// Stores catalogue entries durably, then publishes them to the item table.
async fn upsert_items(services: &Services, items: Vec<Item>) -> Result<(), ApiError> {
    let store = services.store.clone();
    let table = services.items.clone();
    let index = services.index.clone();
    let search = services.search.clone();
    tokio::task::spawn_blocking(move || {
        upsert_catalogue(&store, &table, &index, Some(&search), items)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(())
}

/// Create or replace one catalogue item
#[utoipa::path(
    put,
    path = "/v1/items/{item_id}",
    tag = "items",
    params(("item_id" = String, Path)),
    request_body = Item,
    responses(
        (status = 200, description = "Stored", body = Item),
        (status = 400, description = "Malformed body or id", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field failed validation", body = ErrorBody),
        (status = 503, description = "The catalogue cannot be written now", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn put_item(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Item>, ApiError> {
    let services = state.services()?;
    check_path_id("item_id", &item_id)?;
    let value = json_body(&headers, body, state.guard.limits().max_body_bytes)?;
    let item = item_from_json(&value, Some(&item_id)).map_err(|error| ApiError::Unprocessable {
        message: error.to_string(),
    })?;
    upsert_items(services, vec![item.clone()]).await?;
    Ok(Json(item))
}

/// Create or replace catalogue items in bulk (JSON array or NDJSON)
#[utoipa::path(
    post,
    path = "/v1/items",
    tag = "items",
    request_body(
        description = "A JSON object, a JSON array, or one JSON object a line (NDJSON)",
        content((Vec<Item> = "application/json"), (String = "application/x-ndjson"))
    ),
    responses(
        (status = 200, description = "The valid items are stored", body = Upserted),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Unsupported content type", body = ErrorBody),
        (status = 422, description = "No item was valid", body = Upserted),
        (status = 503, description = "The catalogue cannot be written now", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn post_items(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let format = body_format(&headers)?;
    let body = read_body(body, state.guard.limits().max_body_bytes)?;
    let elements = elements(format, &body)?;
    let (items, rejected) = decode_each(&elements, |value| item_from_json(value, None), |_| {});
    if items.is_empty() {
        let body = Upserted {
            upserted: 0,
            rejected,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
    }
    let upserted = items.len();
    upsert_items(services, items).await?;
    Ok(Json(Upserted { upserted, rejected }).into_response())
}

/// An item: catalogue fields and event count
#[utoipa::path(
    get,
    path = "/v1/items/{item_id}",
    tag = "items",
    params(("item_id" = String, Path)),
    responses(
        (status = 200, description = "The item", body = ItemView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
    ),
    security(("bearer" = ["read"]), ("apiKey" = ["read"]))
)]
pub async fn get_item(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> Result<Json<ItemView>, ApiError> {
    let services = state.services()?;
    check_path_id("item_id", &item_id)?;
    let table = services.items.read();
    let number = table
        .number(&item_id)
        .ok_or_else(|| ApiError::not_found(format!("item_id: no item {item_id:?}")))?;
    let catalogue = table.catalogue(number);
    Ok(Json(ItemView {
        title: catalogue.and_then(|item| item.title.clone()),
        genres: catalogue
            .map(|item| item.genres.clone())
            .unwrap_or_default(),
        year: catalogue.and_then(|item| item.year),
        tags: catalogue.map(|item| item.tags.clone()).unwrap_or_default(),
        in_catalogue: catalogue.is_some(),
        event_count: table.event_count(number),
        item_id,
    }))
}
