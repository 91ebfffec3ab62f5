//! Interaction events and their validation.

use std::collections::BTreeMap;
use std::fmt;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Longest accepted id (`event_id`, `user_id`, `item_id`), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// How far into the future a client timestamp may lie: clocks drift, but not by days.
pub const MAX_FUTURE_SKEW_MS: i64 = 24 * 60 * 60 * 1000;
/// `context` is a small map of request metadata, not a payload.
pub const MAX_CONTEXT_ENTRIES: usize = 16;
/// Longest context key or value, in bytes.
pub const MAX_CONTEXT_BYTES: usize = 256;

/// The context key under which an event names the list it came from: the
/// `recommendation_id` of a recommendation answer. Clients send it as the top-level field
/// `recommendation_id` (the JSON decoder moves it here); keeping it in the context leaves the
/// log's record format, and every reader of it, unchanged.
pub const RECOMMENDATION_ID_KEY: &str = "recommendation_id";
/// The context key of the position (0-based) the item had in that list.
pub const POSITION_KEY: &str = "position";
/// The context key of an impression's positions shown, comma-separated (`0,1,2`).
pub const POSITIONS_KEY: &str = "positions";
/// Highest accepted position in a list.
pub const MAX_POSITION: u32 = 9_999;
/// Most positions one impression may name.
pub const MAX_POSITIONS: usize = 100;

/// What a viewer did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    View,
    Click,
    Watch,
    Rating,
    Like,
    Dislike,
    AddToWatchlist,
    Skip,
    /// A list was shown: `recommendation_id` names it, `positions` what was on screen. It
    /// teaches the model nothing; experiments count it (declared last: the log's records
    /// encode a kind by its index).
    Impression,
}

impl EventKind {
    /// Every kind, in declaration order (metric label sets are initialised from this).
    pub const ALL: [EventKind; 9] = [
        EventKind::View,
        EventKind::Click,
        EventKind::Watch,
        EventKind::Rating,
        EventKind::Like,
        EventKind::Dislike,
        EventKind::AddToWatchlist,
        EventKind::Skip,
        EventKind::Impression,
    ];

    /// The wire name (`add_to_watchlist`), as used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::Watch => "watch",
            EventKind::Rating => "rating",
            EventKind::Like => "like",
            EventKind::Dislike => "dislike",
            EventKind::AddToWatchlist => "add_to_watchlist",
            EventKind::Skip => "skip",
            EventKind::Impression => "impression",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One interaction, as stored in the log. Every field is set: the server fills `event_id` and
/// `timestamp` when a client leaves them out, before the event is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Idempotency key: a repeated id for the same user is applied once (see the processor's
    /// de-duplication window).
    pub event_id: String,
    pub user_id: String,
    pub item_id: String,
    pub kind: EventKind,
    /// Rating in 0.5..=5.0 (half steps), watch fraction in 0..=1, absent for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f32>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Small string map: surface, position, request_id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

/// A validation failure that names the field it concerns (`value`, `context.surface`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field with a path, as in `events[3].value`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Checks an identifier: 1 to 128 bytes, no control characters, no invisible format characters
/// (zero-width, bidirectional controls, the byte-order mark: Unicode category Cf), and in
/// Unicode's composed form (NFC). The last two refuse look-alikes: `alice` and `alice` with a
/// zero-width space, or `é` written as `e` and a combining accent, would otherwise be two
/// users (or two items) that print the same.
pub fn validate_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_ID_BYTES} bytes, got {}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    if let Some((at, invisible)) = id.char_indices().find(|(_, c)| {
        unicode_properties::UnicodeGeneralCategory::general_category(*c)
            == unicode_properties::GeneralCategory::Format
    }) {
        return Err(FieldError::new(
            field,
            format!(
                "must not contain invisible formatting characters (zero-width, bidirectional), \
                 found U+{:04X} at byte {at}",
                u32::from(invisible)
            ),
        ));
    }
    if !unicode_normalization::is_nfc(id) {
        return Err(FieldError::new(
            field,
            "must be in Unicode's composed form (NFC): an accented letter as one character, \
             not a letter and a combining mark",
        ));
    }
    Ok(())
}

impl Event {
    /// The list this event came from, if the client said.
    pub fn recommendation_id(&self) -> Option<&str> {
        self.context.get(RECOMMENDATION_ID_KEY).map(String::as_str)
    }

    /// The item's position in that list, if the client said (and it is a valid one).
    pub fn position(&self) -> Option<u32> {
        self.context.get(POSITION_KEY)?.parse().ok()
    }

    /// An impression's positions shown (empty for other kinds, or when malformed).
    pub fn positions(&self) -> Vec<u32> {
        self.context
            .get(POSITIONS_KEY)
            .map(|text| parse_positions(text).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Checks every field against the rules of the event schema. `now_ms` is the server clock,
    /// used to refuse timestamps more than a day ahead.
    pub fn validate(&self, now_ms: i64) -> Result<(), FieldError> {
        validate_id("event_id", &self.event_id)?;
        validate_id("user_id", &self.user_id)?;
        validate_id("item_id", &self.item_id)?;
        validate_value(self.kind, self.value)?;
        self.validate_attribution()?;
        if self.timestamp < 0 {
            return Err(FieldError::new(
                "timestamp",
                "must be milliseconds since the Unix epoch (not negative)",
            ));
        }
        if self.timestamp > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
            return Err(FieldError::new(
                "timestamp",
                "must not be more than one day in the future",
            ));
        }
        if self.context.len() > MAX_CONTEXT_ENTRIES {
            return Err(FieldError::new(
                "context",
                format!("must have at most {MAX_CONTEXT_ENTRIES} entries"),
            ));
        }
        for (key, value) in &self.context {
            if key.is_empty() || key.len() > MAX_CONTEXT_BYTES || key.chars().any(char::is_control)
            {
                return Err(FieldError::new(
                    "context",
                    format!(
                        "keys must be 1 to {MAX_CONTEXT_BYTES} bytes without control characters"
                    ),
                ));
            }
            if value.len() > MAX_CONTEXT_BYTES {
                return Err(FieldError::new(
                    format!("context.{key}"),
                    format!("must be at most {MAX_CONTEXT_BYTES} bytes"),
                ));
            }
        }
        Ok(())
    }
}

impl Event {
    /// The attribution fields: a `recommendation_id` is an id; a `position` needs one; an
    /// impression has a `recommendation_id` (its `item_id`, as stored) and 1 to
    /// [`MAX_POSITIONS`] distinct positions, and no single `position`.
    fn validate_attribution(&self) -> Result<(), FieldError> {
        if let Some(id) = self.recommendation_id() {
            validate_id("recommendation_id", id)?;
        }
        if let Some(position) = self.context.get(POSITION_KEY) {
            if self.recommendation_id().is_none() {
                return Err(FieldError::new(
                    "position",
                    "needs the recommendation_id of the list it is a position in",
                ));
            }
            match position.parse::<u32>() {
                Ok(at) if at <= MAX_POSITION => {}
                _ => {
                    return Err(FieldError::new(
                        "position",
                        format!("must be a whole number from 0 to {MAX_POSITION}, got {position}"),
                    ));
                }
            }
        }
        let positions = self.context.get(POSITIONS_KEY);
        if self.kind != EventKind::Impression {
            if positions.is_some() {
                return Err(FieldError::new(
                    "positions",
                    format!(
                        "is for impressions only; a {} names one `position`",
                        self.kind
                    ),
                ));
            }
            return Ok(());
        }
        let Some(id) = self.recommendation_id() else {
            return Err(FieldError::new(
                "recommendation_id",
                "is required for an impression (the list that was shown)",
            ));
        };
        if self.item_id != id {
            return Err(FieldError::new(
                "item_id",
                "must be absent for an impression: recommendation_id names the list",
            ));
        }
        if self.context.contains_key(POSITION_KEY) {
            return Err(FieldError::new(
                "position",
                "an impression names the positions shown in `positions`",
            ));
        }
        let Some(positions) = positions else {
            return Err(FieldError::new(
                "positions",
                "is required for an impression (the positions shown, from 0)",
            ));
        };
        parse_positions(positions).map(|_| ())
    }
}

/// Parses an impression's positions as stored (`0,1,2`): 1 to [`MAX_POSITIONS`] distinct whole
/// numbers up to [`MAX_POSITION`].
pub fn parse_positions(text: &str) -> Result<Vec<u32>, FieldError> {
    let mut positions = Vec::new();
    for part in text.split(',') {
        match part.trim().parse::<u32>() {
            Ok(at) if at <= MAX_POSITION => positions.push(at),
            _ => {
                return Err(FieldError::new(
                    "positions",
                    format!("must be whole numbers from 0 to {MAX_POSITION}, got {part:?}"),
                ));
            }
        }
    }
    if positions.len() > MAX_POSITIONS {
        return Err(FieldError::new(
            "positions",
            format!(
                "must name at most {MAX_POSITIONS} positions, got {}",
                positions.len()
            ),
        ));
    }
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(FieldError::new("positions", "must not repeat a position"));
    }
    Ok(positions)
}

/// The value rules per kind: ratings in half steps from 0.5 to 5.0, watch fractions in 0..=1,
/// no value for the other kinds.
pub fn validate_value(kind: EventKind, value: Option<f32>) -> Result<(), FieldError> {
    match (kind, value) {
        (EventKind::Rating, None) => Err(FieldError::new(
            "value",
            "is required for a rating (0.5 to 5.0 in steps of 0.5)",
        )),
        (EventKind::Rating, Some(rating)) => {
            let doubled = rating * 2.0;
            if !(0.5..=5.0).contains(&rating) || doubled.fract() != 0.0 {
                return Err(FieldError::new(
                    "value",
                    format!("rating must be 0.5 to 5.0 in steps of 0.5, got {rating}"),
                ));
            }
            Ok(())
        }
        (EventKind::Watch, None) => Err(FieldError::new(
            "value",
            "is required for a watch (fraction watched, 0 to 1)",
        )),
        (EventKind::Watch, Some(fraction)) => {
            if !(0.0..=1.0).contains(&fraction) {
                return Err(FieldError::new(
                    "value",
                    format!("watch fraction must be between 0 and 1, got {fraction}"),
                ));
            }
            Ok(())
        }
        (_, None) => Ok(()),
        (other, Some(_)) => Err(FieldError::new(
            "value",
            format!("must be absent for a {other} event"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(value: f32) -> Event {
        Event {
            event_id: "e1".into(),
            user_id: "u1".into(),
            item_id: "m1".into(),
            kind: EventKind::Rating,
            value: Some(value),
            timestamp: 1_000,
            context: BTreeMap::new(),
        }
    }

    #[test]
    fn look_alike_ids_are_refused_with_what_was_found() {
        for plain in ["alice", "Amélie", "user 42", "日本語", "m/318"] {
            assert!(validate_id("user_id", plain).is_ok(), "{plain}");
        }
        let zero_width = validate_id("user_id", "ali\u{200B}ce").unwrap_err();
        assert_eq!(zero_width.field, "user_id");
        assert!(
            zero_width.message.contains("U+200B at byte 3"),
            "{zero_width}"
        );
        for invisible in [
            "\u{202E}evil",
            "bom\u{FEFF}",
            "soft\u{AD}hyphen",
            "a\u{2066}b",
        ] {
            assert!(validate_id("item_id", invisible).is_err(), "{invisible:?}");
        }
        // `é` as `e` and a combining acute accent prints as the composed `é`.
        let decomposed = validate_id("item_id", "Ame\u{301}lie").unwrap_err();
        assert!(decomposed.message.contains("NFC"), "{decomposed}");
    }

    #[test]
    fn ratings_take_half_steps_only() {
        assert!(rating(0.5).validate(2_000).is_ok());
        assert!(rating(5.0).validate(2_000).is_ok());
        assert_eq!(rating(4.25).validate(2_000).unwrap_err().field, "value");
        assert_eq!(rating(0.0).validate(2_000).unwrap_err().field, "value");
        assert_eq!(rating(5.5).validate(2_000).unwrap_err().field, "value");
    }

    #[test]
    fn ids_are_bounded_and_printable() {
        assert!(validate_id("user_id", &"x".repeat(128)).is_ok());
        assert!(validate_id("user_id", &"x".repeat(129)).is_err());
        assert!(validate_id("user_id", "").is_err());
        assert!(validate_id("user_id", "a\nb").is_err());
    }

    #[test]
    fn far_future_timestamps_are_refused() {
        let mut event = rating(3.0);
        event.timestamp = 2_000 + MAX_FUTURE_SKEW_MS + 1;
        assert_eq!(event.validate(2_000).unwrap_err().field, "timestamp");
    }

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("purchase"), None);
    }
}
