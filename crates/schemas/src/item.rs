//! Catalogue items.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::event::{FieldError, validate_id};

/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// At most this many genres and this many tags an item.
pub const MAX_LABELS: usize = 64;
/// Longest genre or tag, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;

/// A movie of the catalogue. Items that appear in events before the catalogue knows them are
/// recommended too, without a title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
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
        validate_labels("tags", &self.tags)
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
