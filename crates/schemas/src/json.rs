//! Field-by-field decoding of JSON values into [`Event`]s and [`Item`]s.
//!
//! serde's derived decoders stop at the first problem with a message that often lacks the field
//! name; a client posting a batch needs to know which field of which event was wrong. These
//! decoders check every field by hand, refuse unknown fields, and return a [`FieldError`] that
//! names the field. The result is then validated with the schema rules. Bodies are parsed by
//! [`strict`], which refuses an object naming a key twice.

pub mod strict;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::event::{
    Event, EventKind, FieldError, POSITION_KEY, POSITIONS_KEY, RECOMMENDATION_ID_KEY,
};
use crate::item::{Item, PropertyValue};

const EVENT_FIELDS: [&str; 10] = [
    "event_id",
    "user_id",
    "item_id",
    "kind",
    "value",
    "timestamp",
    "context",
    "recommendation_id",
    "position",
    "positions",
];
const ITEM_FIELDS: [&str; 9] = crate::item::BUILT_IN_FIELDS;

/// Most elements one request body may carry.
pub const MAX_ELEMENTS_PER_BODY: usize = 10_000;

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object, or an array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// One element of a body: a JSON value, or the reason its NDJSON line did not parse.
pub type Element = Result<Value, FieldError>;

/// Why a whole body was refused (nothing of it is used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not readable as a whole: `code` is machine-readable, `message` names the problem.
    Malformed { code: &'static str, message: String },
    /// More than [`MAX_ELEMENTS_PER_BODY`] elements.
    TooManyElements { count: usize },
}

/// Splits a body into its elements. A JSON body that does not parse, or NDJSON that is not
/// UTF-8, refuses the whole body; an NDJSON line that does not parse is one failed element.
pub fn body_elements(format: BodyFormat, body: &[u8]) -> Result<Vec<Element>, BodyError> {
    let elements: Vec<Element> = match format {
        BodyFormat::Json => {
            let value: Value = strict::from_slice(body).map_err(|error| BodyError::Malformed {
                code: "malformed_json",
                message: format!("body: malformed JSON: {error}"),
            })?;
            match value {
                Value::Array(values) => values.into_iter().map(Ok).collect(),
                Value::Object(_) => vec![Ok(value)],
                _ => {
                    return Err(BodyError::Malformed {
                        code: "malformed_json",
                        message: "body: must be a JSON object or an array of objects".into(),
                    });
                }
            }
        }
        BodyFormat::Ndjson => {
            let text = std::str::from_utf8(body).map_err(|error| BodyError::Malformed {
                code: "malformed_ndjson",
                message: format!("body: not UTF-8: {error}"),
            })?;
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| {
                    strict::from_str(line).map_err(|error| {
                        FieldError::new("line", format!("malformed JSON: {error}"))
                    })
                })
                .collect()
        }
    };
    if elements.is_empty() {
        return Err(BodyError::Malformed {
            code: "empty_body",
            message: "body: contains no elements".into(),
        });
    }
    if elements.len() > MAX_ELEMENTS_PER_BODY {
        return Err(BodyError::TooManyElements {
            count: elements.len(),
        });
    }
    Ok(elements)
}

/// Decodes and validates one event. `now_ms` fills an absent timestamp and bounds a present one;
/// `new_event_id` is called only when the client sent no `event_id`.
pub fn event_from_json(
    value: &Value,
    now_ms: i64,
    new_event_id: impl FnOnce() -> String,
) -> Result<Event, FieldError> {
    let object = as_object(value, "event")?;
    reject_unknown_fields(object, &EVENT_FIELDS)?;
    let kind_name = required_string(object, "kind")?;
    let kind = EventKind::parse(kind_name).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
        FieldError::new(
            "kind",
            format!(
                "unknown kind {kind_name:?}, expected one of {}",
                known.join(", ")
            ),
        )
    })?;
    let mut context = optional_string_map(object, "context")?;
    attribution_into_context(object, &mut context)?;
    let item_id = if kind == EventKind::Impression {
        // An impression is about a list, not an item: stored under the list's id.
        if present(object, "item_id").is_some() {
            return Err(FieldError::new(
                "item_id",
                "must be absent for an impression: recommendation_id names the list",
            ));
        }
        context.get(RECOMMENDATION_ID_KEY).cloned().ok_or_else(|| {
            FieldError::new(
                "recommendation_id",
                "is required for an impression (the list that was shown)",
            )
        })?
    } else {
        required_string(object, "item_id")?.to_owned()
    };
    let event = Event {
        event_id: match optional_string(object, "event_id")? {
            Some(id) => id.to_owned(),
            None => new_event_id(),
        },
        user_id: required_string(object, "user_id")?.to_owned(),
        item_id,
        kind,
        value: optional_number(object, "value")?.map(|number| number as f32),
        timestamp: optional_integer(object, "timestamp")?.unwrap_or(now_ms),
        context,
    };
    event.validate(now_ms)?;
    Ok(event)
}

/// An event as a client sends it (the inverse of [`event_from_json`]): the attribution fields
/// at the top level rather than in the context, and an impression without an `item_id`.
pub fn event_to_json(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("event_id".into(), event.event_id.clone().into());
    object.insert("user_id".into(), event.user_id.clone().into());
    if event.kind != EventKind::Impression {
        object.insert("item_id".into(), event.item_id.clone().into());
    }
    object.insert("kind".into(), event.kind.as_str().into());
    if let Some(value) = event.value {
        // Through the shortest decimal form, so 0.8 stays 0.8.
        let value: f64 = value.to_string().parse().unwrap_or(f64::from(value));
        object.insert("value".into(), value.into());
    }
    object.insert("timestamp".into(), event.timestamp.into());
    let mut context = Map::new();
    for (key, value) in &event.context {
        match key.as_str() {
            RECOMMENDATION_ID_KEY => {
                object.insert(key.clone(), value.clone().into());
            }
            POSITION_KEY if event.position().is_some() => {
                object.insert(key.clone(), event.position().into());
            }
            POSITIONS_KEY if event.kind == EventKind::Impression => {
                object.insert(key.clone(), event.positions().into());
            }
            _ => {
                context.insert(key.clone(), value.clone().into());
            }
        }
    }
    if !context.is_empty() {
        object.insert("context".into(), Value::Object(context));
    }
    Value::Object(object)
}

/// Moves the top-level attribution fields (`recommendation_id`, `position`, `positions`) into
/// the context, where the log keeps them; one given both ways must agree.
fn attribution_into_context(
    object: &Map<String, Value>,
    context: &mut BTreeMap<String, String>,
) -> Result<(), FieldError> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    if let Some(id) = optional_string(object, RECOMMENDATION_ID_KEY)? {
        fields.push((RECOMMENDATION_ID_KEY, id.to_owned()));
    }
    if let Some(position) = optional_integer(object, POSITION_KEY)? {
        fields.push((POSITION_KEY, position.to_string()));
    }
    match present(object, POSITIONS_KEY) {
        None => {}
        Some(Value::Array(values)) => {
            let mut shown = Vec::with_capacity(values.len());
            for (index, value) in values.iter().enumerate() {
                match value.as_u64() {
                    Some(at) => shown.push(at.to_string()),
                    None => {
                        return Err(FieldError::new(
                            format!("positions[{index}]"),
                            format!("must be a whole number from 0, got {value}"),
                        ));
                    }
                }
            }
            if shown.is_empty() {
                return Err(FieldError::new(
                    "positions",
                    "must name at least one position",
                ));
            }
            fields.push((POSITIONS_KEY, shown.join(",")));
        }
        Some(other) => {
            return Err(FieldError::new(
                "positions",
                format!(
                    "must be an array of whole numbers, got {}",
                    type_name(other)
                ),
            ));
        }
    }
    for (key, value) in fields {
        match context.get(key) {
            Some(existing) if *existing != value => {
                return Err(FieldError::new(
                    format!("context.{key}"),
                    format!("differs from the top-level {key} ({existing:?} against {value:?})"),
                ));
            }
            _ => {
                context.insert(key.to_owned(), value);
            }
        }
    }
    Ok(())
}

/// Decodes and validates one catalogue item. `path_item_id`, when given (a `PUT` to
/// `/v1/items/{item_id}`), fills an absent `item_id` and must equal a present one.
pub fn item_from_json(value: &Value, path_item_id: Option<&str>) -> Result<Item, FieldError> {
    let object = as_object(value, "item")?;
    reject_unknown_fields(object, &ITEM_FIELDS)?;
    let item_id = match (optional_string(object, "item_id")?, path_item_id) {
        (Some(body_id), Some(path_id)) if body_id != path_id => {
            return Err(FieldError::new(
                "item_id",
                format!("{body_id:?} differs from the item id in the path, {path_id:?}"),
            ));
        }
        (Some(body_id), _) => body_id.to_owned(),
        (None, Some(path_id)) => path_id.to_owned(),
        (None, None) => return Err(FieldError::new("item_id", "is required")),
    };
    let year = optional_integer(object, "year")?
        .map(|year| i32::try_from(year).map_err(|_| FieldError::new("year", "is out of range")))
        .transpose()?;
    let item = Item {
        item_id,
        title: optional_string(object, "title")?.map(str::to_owned),
        genres: optional_string_list(object, "genres")?,
        year,
        tags: optional_string_list(object, "tags")?,
        available_from: optional_integer(object, "available_from")?,
        available_until: optional_integer(object, "available_until")?,
        hidden: optional_bool(object, "hidden")?.unwrap_or(false),
        properties: properties(object)?,
    };
    item.validate()?;
    Ok(item)
}

/// An item's `properties`: an object of strings, numbers, booleans and arrays of strings.
fn properties(object: &Map<String, Value>) -> Result<BTreeMap<String, PropertyValue>, FieldError> {
    let entries = match present(object, "properties") {
        None => return Ok(BTreeMap::new()),
        Some(Value::Object(entries)) => entries,
        Some(other) => {
            return Err(FieldError::new(
                "properties",
                format!("must be an object, got {}", type_name(other)),
            ));
        }
    };
    entries
        .iter()
        .map(|(name, value)| {
            let field = format!("properties.{name}");
            let value = match value {
                Value::Bool(flag) => PropertyValue::Bool(*flag),
                Value::Number(number) => PropertyValue::Number(number.as_f64().unwrap_or(f64::NAN)),
                Value::String(text) => PropertyValue::Text(text.clone()),
                Value::Array(_) => {
                    let wrapped: Map<String, Value> =
                        [(field.clone(), value.clone())].into_iter().collect();
                    PropertyValue::List(optional_string_list(&wrapped, &field)?)
                }
                other => {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "must be a string, a number, a boolean or an array of strings, got {}",
                            type_name(other)
                        ),
                    ));
                }
            };
            Ok((name.clone(), value))
        })
        .collect()
}

fn optional_bool(object: &Map<String, Value>, field: &str) -> Result<Option<bool>, FieldError> {
    match present(object, field) {
        None => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be true or false, got {}", type_name(other)),
        )),
    }
}

fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, FieldError> {
    value.as_object().ok_or_else(|| {
        FieldError::new(
            what,
            format!("must be a JSON object, got {}", type_name(value)),
        )
    })
}

fn reject_unknown_fields(object: &Map<String, Value>, known: &[&str]) -> Result<(), FieldError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(FieldError::new(
            unknown.as_str(),
            format!("unknown field, expected one of {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A field that is absent or `null` counts as absent.
fn present<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|value| !value.is_null())
}

fn required_string<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    optional_string(object, field)?.ok_or_else(|| FieldError::new(field, "is required"))
}

fn optional_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, FieldError> {
    match present(object, field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be a string, got {}", type_name(other)),
        )),
    }
}

fn optional_number(object: &Map<String, Value>, field: &str) -> Result<Option<f64>, FieldError> {
    match present(object, field) {
        None => Ok(None),
        Some(Value::Number(number)) => Ok(number.as_f64()),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be a number, got {}", type_name(other)),
        )),
    }
}

fn optional_integer(object: &Map<String, Value>, field: &str) -> Result<Option<i64>, FieldError> {
    match present(object, field) {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| FieldError::new(field, format!("must be a whole number, got {number}"))),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be a whole number, got {}", type_name(other)),
        )),
    }
}

fn optional_string_list(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Vec<String>, FieldError> {
    match present(object, field) {
        None => Ok(Vec::new()),
        Some(Value::Array(values)) => values
            .iter()
            .enumerate()
            .map(|(index, value)| match value {
                Value::String(text) => Ok(text.clone()),
                other => Err(FieldError::new(
                    format!("{field}[{index}]"),
                    format!("must be a string, got {}", type_name(other)),
                )),
            })
            .collect(),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be an array of strings, got {}", type_name(other)),
        )),
    }
}

fn optional_string_map(
    object: &Map<String, Value>,
    field: &str,
) -> Result<BTreeMap<String, String>, FieldError> {
    match present(object, field) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                other => Err(FieldError::new(
                    format!("{field}.{key}"),
                    format!("must be a string, got {}", type_name(other)),
                )),
            })
            .collect(),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be an object of strings, got {}", type_name(other)),
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(value: Value) -> Result<Event, FieldError> {
        event_from_json(&value, 1_700_000_000_000, || "generated".to_owned())
    }

    #[test]
    fn fills_absent_id_and_timestamp() {
        let event = decode(json!({"user_id": "u1", "item_id": "m1", "kind": "view"})).unwrap();
        assert_eq!(event.event_id, "generated");
        assert_eq!(event.timestamp, 1_700_000_000_000);
        assert_eq!(event.value, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "buy"}),
                "kind",
            ),
            (json!({"user_id": "u1", "item_id": "m1"}), "kind"),
            (json!({"item_id": "m1", "kind": "view"}), "user_id"),
            (
                json!({"user_id": 7, "item_id": "m1", "kind": "view"}),
                "user_id",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "rating", "value": 7}),
                "value",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "view", "colour": "red"}),
                "colour",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "view", "timestamp": 1.5}),
                "timestamp",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "view", "context": {"a": 1}}),
                "context.a",
            ),
            (json!([1, 2]), "event"),
        ];
        for (value, field) in cases {
            let error = decode(value.clone()).unwrap_err();
            assert_eq!(error.field, field, "{value}: {error}");
        }
    }

    #[test]
    fn attribution_fields_are_kept_in_the_context() {
        let click = decode(json!({"user_id": "u1", "item_id": "m1", "kind": "click",
            "recommendation_id": "r1", "position": 3}))
        .unwrap();
        assert_eq!(click.recommendation_id(), Some("r1"));
        assert_eq!(click.position(), Some(3));
        let shown = decode(json!({"user_id": "u1", "kind": "impression",
            "recommendation_id": "r1", "positions": [0, 1, 2]}))
        .unwrap();
        assert_eq!(shown.item_id, "r1");
        assert_eq!(shown.positions(), vec![0, 1, 2]);
        // Written back as sent, and read again to the same event.
        for event in [&click, &shown] {
            let json = event_to_json(event);
            assert!(json.get("context").is_none(), "{json}");
            assert_eq!(&decode(json).unwrap(), event);
        }
        assert!(event_to_json(&shown).get("item_id").is_none());
        let cases = [
            (
                json!({"user_id": "u1", "kind": "impression", "positions": [0]}),
                "recommendation_id",
            ),
            (
                json!({"user_id": "u1", "kind": "impression", "recommendation_id": "r1"}),
                "positions",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "impression",
                "recommendation_id": "r1", "positions": [0]}),
                "item_id",
            ),
            (
                json!({"user_id": "u1", "kind": "impression", "recommendation_id": "r1",
                "positions": [0, 0]}),
                "positions",
            ),
            (
                json!({"user_id": "u1", "kind": "impression", "recommendation_id": "r1",
                "positions": [-1]}),
                "positions[0]",
            ),
            (
                json!({"user_id": "u1", "kind": "impression", "recommendation_id": "r1",
                "positions": []}),
                "positions",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "click", "position": 2}),
                "position",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "click",
                "recommendation_id": "r1", "position": 10_000}),
                "position",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "click",
                "recommendation_id": "r1", "positions": [1]}),
                "positions",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "click", "recommendation_id": "r1",
                "context": {"recommendation_id": "r2"}}),
                "context.recommendation_id",
            ),
            (
                json!({"user_id": "u1", "item_id": "m1", "kind": "click",
                "recommendation_id": ""}),
                "recommendation_id",
            ),
        ];
        for (value, field) in cases {
            let error = decode(value.clone()).unwrap_err();
            assert_eq!(error.field, field, "{value}: {error}");
        }
    }

    #[test]
    fn items_take_their_id_from_the_path() {
        let item = item_from_json(
            &json!({"title": "Heat", "genres": ["Crime"], "year": 1995}),
            Some("m7"),
        )
        .unwrap();
        assert_eq!(item.item_id, "m7");
        let mismatch = item_from_json(&json!({"item_id": "m8"}), Some("m7")).unwrap_err();
        assert_eq!(mismatch.field, "item_id");
        let bad_genre =
            item_from_json(&json!({"item_id": "m8", "genres": ["ok", 3]}), None).unwrap_err();
        assert_eq!(bad_genre.field, "genres[1]");
    }
}
