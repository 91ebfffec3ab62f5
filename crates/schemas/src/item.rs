//! Catalogue items.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::event::{FieldError, validate_id};

/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// At most this many genres and this many tags an item.
pub const MAX_LABELS: usize = 64;
/// Longest genre or tag, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;

/// At most this many custom properties an item.
pub const MAX_PROPERTIES: usize = 64;
/// Longest string property value, in bytes.
pub const MAX_PROPERTY_BYTES: usize = 1024;

/// A movie of the catalogue. Items that appear in events before the catalogue knows them are
/// recommended too, without a title.
///
/// An item is listed (recommended, similar, trending, found by search) only inside its licence
/// window `[available_from, available_until)` and while it is not `hidden`
/// ([`Item::available_at`]); outside them its events are still learned from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Item {
    pub item_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub genres: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// First moment the item may be listed, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<i64>,
    /// First moment the item may no longer be listed, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<i64>,
    /// Pulled from every list, kept for history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// Custom properties for filters, of the types the property schema declares.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, PropertyValue>,
}

/// The value of a custom property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<String>),
}

/// The type of a custom property, as the property schema declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    String,
    Number,
    Boolean,
    /// A list of strings.
    List,
}

impl PropertyType {
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyType::String => "string",
            PropertyType::Number => "number",
            PropertyType::Boolean => "boolean",
            PropertyType::List => "list",
        }
    }

    /// Whether `value` is of this type.
    pub fn admits(self, value: &PropertyValue) -> bool {
        matches!(
            (self, value),
            (PropertyType::String, PropertyValue::Text(_))
                | (PropertyType::Number, PropertyValue::Number(_))
                | (PropertyType::Boolean, PropertyValue::Bool(_))
                | (PropertyType::List, PropertyValue::List(_))
        )
    }
}

/// The catalogue's declared custom properties: name → type.
pub type PropertySchema = BTreeMap<String, PropertyType>;

/// The built-in item fields, which a property may not be named after.
pub const BUILT_IN_FIELDS: [&str; 9] = [
    "item_id",
    "title",
    "genres",
    "year",
    "tags",
    "available_from",
    "available_until",
    "hidden",
    "properties",
];

/// Checks a property name: 1 to 64 of `[a-z0-9_]`, starting with a letter, not a built-in
/// field's name.
pub fn validate_property_name(field: &str, name: &str) -> Result<(), FieldError> {
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(FieldError::new(
            field,
            "a property name is 1 to 64 of a-z, 0-9 and _, starting with a letter",
        ));
    }
    if BUILT_IN_FIELDS.contains(&name) {
        return Err(FieldError::new(
            field,
            format!("{name:?} is a built-in item field"),
        ));
    }
    Ok(())
}

impl Item {
    /// Checks every field; messages name the field (`genres[2]`).
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_id("item_id", &self.item_id)?;
        if let Some(title) = &self.title
            && title.len() > MAX_TITLE_BYTES
        {
            return Err(FieldError::new(
                "title",
                format!("must be at most {MAX_TITLE_BYTES} bytes"),
            ));
        }
        if let Some(year) = self.year
            && !(1800..=3000).contains(&year)
        {
            return Err(FieldError::new(
                "year",
                format!("must be between 1800 and 3000, got {year}"),
            ));
        }
        validate_labels("genres", &self.genres)?;
        validate_labels("tags", &self.tags)?;
        if let (Some(from), Some(until)) = (self.available_from, self.available_until)
            && until <= from
        {
            return Err(FieldError::new(
                "available_until",
                format!("must be after available_from ({from}), got {until}"),
            ));
        }
        if self.properties.len() > MAX_PROPERTIES {
            return Err(FieldError::new(
                "properties",
                format!("must have at most {MAX_PROPERTIES} entries"),
            ));
        }
        for (name, value) in &self.properties {
            let field = format!("properties.{name}");
            validate_property_name(&field, name)?;
            match value {
                PropertyValue::Number(number) if !number.is_finite() => {
                    return Err(FieldError::new(field, "must be a finite number"));
                }
                PropertyValue::Text(text) if text.len() > MAX_PROPERTY_BYTES => {
                    return Err(FieldError::new(
                        field,
                        format!("must be at most {MAX_PROPERTY_BYTES} bytes"),
                    ));
                }
                PropertyValue::List(list) => validate_labels(&field, list)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks the custom properties against the declared `schema`: every property declared,
    /// of its declared type. Messages name the property (`properties.regions`).
    pub fn validate_properties(&self, schema: &PropertySchema) -> Result<(), FieldError> {
        for (name, value) in &self.properties {
            let field = format!("properties.{name}");
            match schema.get(name) {
                None => {
                    return Err(FieldError::new(
                        field,
                        "is not declared (PUT /v1/admin/properties declares it)",
                    ));
                }
                Some(kind) if !kind.admits(value) => {
                    return Err(FieldError::new(
                        field,
                        format!("is declared {}", kind.as_str()),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether the item may be listed at `now` (milliseconds since the epoch): not hidden, and
    /// inside its licence window.
    pub fn available_at(&self, now: i64) -> bool {
        !self.hidden
            && self.available_from.is_none_or(|from| from <= now)
            && self.available_until.is_none_or(|until| now < until)
    }

    /// Whether the item carries `genre`, compared without regard to ASCII case.
    pub fn has_genre(&self, genre: &str) -> bool {
        self.genres.iter().any(|g| g.eq_ignore_ascii_case(genre))
    }
}

fn validate_labels(field: &str, labels: &[String]) -> Result<(), FieldError> {
    if labels.len() > MAX_LABELS {
        return Err(FieldError::new(
            field,
            format!("must have at most {MAX_LABELS} entries"),
        ));
    }
    for (index, label) in labels.iter().enumerate() {
        if label.is_empty() || label.len() > MAX_LABEL_BYTES || label.chars().any(char::is_control)
        {
            return Err(FieldError::new(
                format!("{field}[{index}]"),
                format!("must be 1 to {MAX_LABEL_BYTES} bytes without control characters"),
            ));
        }
    }
    Ok(())
}

/// A catalogue entry as the layout before licence windows and properties stored it.
#[derive(Decode)]
struct ItemV1 {
    item_id: String,
    title: Option<String>,
    genres: Vec<String>,
    year: Option<i32>,
    tags: Vec<String>,
}

/// Decodes a stored catalogue entry written by this build or by one before licence windows
/// and properties (whose records end after `tags`).
pub fn decode_item(bytes: &[u8]) -> Result<Item, crate::CodecError> {
    crate::decode_record::<Item>(bytes).or_else(|error| {
        let old: ItemV1 = crate::decode_record(bytes).map_err(|_| error)?;
        Ok(Item {
            item_id: old.item_id,
            title: old.title,
            genres: old.genres,
            year: old.year,
            tags: old.tags,
            ..Item::default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_stored_before_windows_and_properties_still_decodes() {
        #[derive(bincode::Encode)]
        struct Old {
            item_id: String,
            title: Option<String>,
            genres: Vec<String>,
            year: Option<i32>,
            tags: Vec<String>,
        }
        let bytes = crate::encode_record(&Old {
            item_id: "m1".into(),
            title: Some("Heat".into()),
            genres: vec!["Crime".into()],
            year: Some(1995),
            tags: vec![],
        })
        .unwrap();
        let item = decode_item(&bytes).unwrap();
        assert_eq!(item.title.as_deref(), Some("Heat"));
        assert!(item.available_at(0) && item.properties.is_empty());
        let new = Item {
            item_id: "m2".into(),
            hidden: true,
            properties: [("regions".into(), PropertyValue::List(vec!["fr".into()]))].into(),
            ..Item::default()
        };
        assert_eq!(
            decode_item(&crate::encode_record(&new).unwrap()).unwrap(),
            new
        );
        assert!(decode_item(&[1, 0xff]).is_err());
    }

    #[test]
    fn the_window_is_half_open_and_hidden_wins() {
        let item = Item {
            item_id: "m".into(),
            available_from: Some(100),
            available_until: Some(200),
            ..Item::default()
        };
        assert!(!item.available_at(99));
        assert!(item.available_at(100));
        assert!(item.available_at(199));
        assert!(!item.available_at(200));
        let hidden = Item {
            hidden: true,
            ..item
        };
        assert!(!hidden.available_at(150));
    }

    #[test]
    fn properties_are_checked_against_the_schema_by_name() {
        let schema: PropertySchema = [("regions".to_owned(), PropertyType::List)].into();
        let mut item = Item {
            item_id: "m".into(),
            properties: [("regions".into(), PropertyValue::Text("fr".into()))].into(),
            ..Item::default()
        };
        let error = item.validate_properties(&schema).unwrap_err();
        assert_eq!(error.to_string(), "properties.regions: is declared list");
        item.properties = [("studio".into(), PropertyValue::Text("x".into()))].into();
        let error = item.validate_properties(&schema).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("properties.studio: is not declared")
        );
        let error = validate_property_name("properties.year", "year").unwrap_err();
        assert!(error.to_string().contains("built-in"));
    }
}
