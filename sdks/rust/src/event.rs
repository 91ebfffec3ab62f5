//! Events as the server takes them (`POST /v1/events`). These types mirror the wire format of
//! `marquee-schemas` rather than reuse it: the SDK depends on no crate of the server, so that it
//! can be published and versioned on its own; `events_serialise_as_the_server_reads_them` and
//! the integration tests against the real server keep the two in step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a viewer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    View,
    Click,
    /// With the fraction watched, 0 to 1, as its value.
    Watch,
    /// With the stars, 0.5 to 5 in half steps, as its value.
    Rating,
    Like,
    Dislike,
    AddToWatchlist,
    Skip,
    /// A list was shown: names the list (`recommendation_id`) and the positions on screen; no
    /// item. Made by [`Event::impression`].
    Impression,
}

/// One event. [`Event::new`] gives it an `event_id` (a UUIDv7) and the current time, so that a
/// retried batch is recognised by the server and the event keeps the moment it happened, not
/// the moment it was delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub user_id: String,
    /// Empty for an impression, which names a list instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub item_id: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Free-form string pairs (at most 16), such as the page or the device.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// The list the event came from (a recommendation answer's `recommendation_id`), so the
    /// outcome counts for it, its experiment groups and its position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation_id: Option<String>,
    /// The item's position in that list, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// An impression's positions shown, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<u32>>,
}

impl Event {
    pub fn new(kind: EventKind, user_id: impl Into<String>, item_id: impl Into<String>) -> Event {
        Event {
            event_id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.into(),
            item_id: item_id.into(),
            kind,
            value: None,
            timestamp: now_ms(),
            context: BTreeMap::new(),
            recommendation_id: None,
            position: None,
            positions: None,
        }
    }

    /// An impression: the list `recommendation_id` was shown to `user_id`, the items at
    /// `positions` (from 0) on screen.
    pub fn impression(
        user_id: impl Into<String>,
        recommendation_id: impl Into<String>,
        positions: impl IntoIterator<Item = u32>,
    ) -> Event {
        let mut event = Event::new(EventKind::Impression, user_id, String::new());
        event.recommendation_id = Some(recommendation_id.into());
        event.positions = Some(positions.into_iter().collect());
        event
    }

    /// Names the list this event came from and the item's position in it (from 0): a click
    /// or a watch that follows a recommendation.
    pub fn from_list(mut self, recommendation_id: impl Into<String>, position: u32) -> Event {
        self.recommendation_id = Some(recommendation_id.into());
        self.position = Some(position);
        self
    }

    /// The value of a rating (stars) or a watch (fraction).
    pub fn with_value(mut self, value: f64) -> Event {
        self.value = Some(value);
        self
    }

    /// When it happened, in milliseconds since the Unix epoch (for historical events).
    pub fn at(mut self, timestamp_ms: i64) -> Event {
        self.timestamp = timestamp_ms;
        self
    }

    /// An `event_id` of the caller's (for events that already have an identity upstream).
    pub fn with_event_id(mut self, event_id: impl Into<String>) -> Event {
        self.event_id = event_id.into();
        self
    }

    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<String>) -> Event {
        self.context.insert(key.into(), value.into());
        self
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_as_the_server_reads_them() {
        let event = Event::new(EventKind::AddToWatchlist, "u1", "m1")
            .with_event_id("e1")
            .at(1_700_000_000_000)
            .with_context("page", "home");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event_id": "e1", "user_id": "u1", "item_id": "m1",
                "kind": "add_to_watchlist", "timestamp": 1_700_000_000_000_i64,
                "context": {"page": "home"}
            })
        );
        let rating = Event::new(EventKind::Rating, "u1", "m1").with_value(4.5);
        assert_eq!(serde_json::to_value(&rating).unwrap()["value"], 4.5);
    }

    #[test]
    fn new_events_get_distinct_time_ordered_ids() {
        let first = Event::new(EventKind::View, "u", "m");
        let second = Event::new(EventKind::View, "u", "m");
        assert_ne!(first.event_id, second.event_id);
        assert!(first.event_id < second.event_id, "UUIDv7 sorts by time");
        assert_eq!(
            uuid::Uuid::parse_str(&first.event_id)
                .unwrap()
                .get_version_num(),
            7
        );
    }
}
