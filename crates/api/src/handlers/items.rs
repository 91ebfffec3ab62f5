//! The catalogue: `PUT /v1/items/{item_id}`, `POST /v1/items`, `GET /v1/items/{item_id}`,
//! `DELETE /v1/items/{item_id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use marquee_schemas::json::item_from_json;
use marquee_schemas::{FieldError, Item, PropertySchema, PropertyValue};
use marquee_stream_processor::catalogue::{delete_item as delete_catalogue_item, upsert_catalogue};
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_from: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_until: Option<i64>,
    pub hidden: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, PropertyValue>,
    /// Whether the catalogue holds the item (else it is known from events only).
    pub in_catalogue: bool,
    /// Whether lists may hold it now: not hidden, inside its licence window.
    pub available: bool,
    pub event_count: u64,
}

/// An item decoded from JSON and checked against the declared properties.
fn item_of(
    value: &serde_json::Value,
    path_item_id: Option<&str>,
    schema: &PropertySchema,
) -> Result<Item, FieldError> {
    let item = item_from_json(value, path_item_id)?;
    item.validate_properties(schema)?;
    Ok(item)
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
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
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
    let schema = services.query.rules().current();
    let item = item_of(&value, Some(&item_id), &schema.schema).map_err(|error| {
        ApiError::Unprocessable {
            message: error.to_string(),
        }
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
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
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
    let schema = services.query.rules().current();
    let (items, rejected) = decode_each(
        &elements,
        |value| item_of(value, None, &schema.schema),
        |_| {},
    );
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
    let now = services.query.rules().clock().now_ms();
    let table = services.items.read();
    let number = table
        .number(&item_id)
        .filter(|number| !table.is_deleted(*number))
        .ok_or_else(|| ApiError::not_found(format!("item_id: no item {item_id:?}")))?;
    let entry = table.catalogue(number).map(|item| item.as_ref().clone());
    let available = table.listable(number, now);
    let event_count = table.event_count(number);
    let in_catalogue = entry.is_some();
    let entry = entry.unwrap_or_default();
    Ok(Json(ItemView {
        title: entry.title,
        genres: entry.genres,
        year: entry.year,
        tags: entry.tags,
        available_from: entry.available_from,
        available_until: entry.available_until,
        hidden: entry.hidden,
        properties: entry.properties,
        in_catalogue,
        available,
        event_count,
        item_id,
    }))
}

/// Delete an item
///
/// Its catalogue entry goes, and it leaves every list, similar-items answer, search and the
/// index's answers from the next request on, after a restart and a replay too; its events stay
/// in the log and in the model. An upsert brings it back.
#[utoipa::path(
    delete,
    path = "/v1/items/{item_id}",
    tag = "items",
    params(("item_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn delete_item(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let services = state.services()?;
    check_path_id("item_id", &item_id)?;
    let rules = services.query.rules().clone();
    let items = services.items.clone();
    let search = services.search.clone();
    let id = item_id.clone();
    let deleted = tokio::task::spawn_blocking(move || {
        delete_catalogue_item(&rules, &items, Some(&search), &id)
    })
    .await
    .map_err(ApiError::internal)??;
    if !deleted {
        return Err(ApiError::not_found(format!("item_id: no item {item_id:?}")));
    }
    tracing::info!(item_id, "item deleted");
    Ok(StatusCode::NO_CONTENT)
}
