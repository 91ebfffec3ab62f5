//! Campaigns: an operator's push of some items into the lists for a while — a boost (the
//! items' scores raised by a share of the list's best) or a pin (the first eligible item at a
//! fixed position).

use bincode::{Decode, Encode};
use marquee_schemas::{FieldError, validate_id};

/// Most item ids one campaign names.
pub const MAX_CAMPAIGN_ITEMS: usize = 1000;
/// The deepest position a pin may take (positions count from 0).
pub const MAX_PIN_POSITION: usize = 99;

/// What a campaign does to the items it names.
#[derive(Debug, Clone, Copy, PartialEq, Encode, Decode)]
pub enum Action {
    /// Adds `weight` × the list's best score to each named item's score (an item named by id
    /// that no part proposed enters with that score); 1 ties it with the best.
    Boost { weight: f32 },
    /// Puts the first eligible named item (in the order of `items`, or the ranking's order for
    /// a filter) at `position`, from 0.
    Pin { position: usize },
}

/// A campaign, as stored.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Campaign {
    pub name: String,
    pub description: String,
    /// The items by id; empty when `filter` names them.
    pub items: Vec<String>,
    /// A filter expression that names the items (among each list's candidates).
    pub filter: Option<String>,
    pub action: Action,
    /// In effect from (milliseconds since the epoch; none: from now).
    pub starts_at: Option<i64>,
    /// In effect until, exclusive (none: until deleted).
    pub ends_at: Option<i64>,
}

impl Campaign {
    /// Whether the campaign is in effect at `now`.
    pub fn active_at(&self, now: i64) -> bool {
        self.starts_at.is_none_or(|start| start <= now) && self.ends_at.is_none_or(|end| now < end)
    }

    /// Checks the rules a campaign keeps, naming the field; the filter is checked by the
    /// caller, who has the schema.
    pub fn validate(&self) -> Result<(), FieldError> {
        crate::experiments::definition::validate_name("name", &self.name)?;
        match (&self.filter, self.items.is_empty()) {
            (Some(_), false) => {
                return Err(FieldError::new(
                    "items",
                    "give either items or filter, not both",
                ));
            }
            (None, true) => {
                return Err(FieldError::new(
                    "items",
                    "name the campaign's items (items) or an expression (filter)",
                ));
            }
            _ => {}
        }
        if self.items.len() > MAX_CAMPAIGN_ITEMS {
            return Err(FieldError::new(
                "items",
                format!("must have at most {MAX_CAMPAIGN_ITEMS} entries"),
            ));
        }
        for (index, item) in self.items.iter().enumerate() {
            validate_id(&format!("items[{index}]"), item)?;
        }
        match self.action {
            Action::Boost { weight }
                if !(weight.is_finite() && weight > 0.0 && weight <= 100.0) =>
            {
                return Err(FieldError::new(
                    "boost",
                    format!("must be above 0 and at most 100, got {weight}"),
                ));
            }
            Action::Pin { position } if position > MAX_PIN_POSITION => {
                return Err(FieldError::new(
                    "position",
                    format!("must be 0 to {MAX_PIN_POSITION}, got {position}"),
                ));
            }
            _ => {}
        }
        if let (Some(start), Some(end)) = (self.starts_at, self.ends_at)
            && end <= start
        {
            return Err(FieldError::new(
                "ends_at",
                format!("must be after starts_at ({start}), got {end}"),
            ));
        }
        Ok(())
    }
}
