//! Per-key caps on what an app's key may write: new item ids, and events per user.
//!
//! The ingest key ships inside apps, so whoever unpacks one can send events on any item id for
//! any user id. `catalogue_only` keeps made-up items out of every list; these caps bound what
//! such a key can put into the state and the log at all:
//!
//! - **new items**: at most `new_items_per_minute` item ids a minute that the node does not
//!   know yet (no event and no catalogue entry), per key;
//! - **events per user**: at most `events_per_minute_per_user` events a minute for one user id,
//!   per key (a viewer sends a few a minute; a script replaying one user thousands of times is
//!   not a viewer).
//!
//! Each cap is a token bucket per key (per key and user), refilled over the minute, whose burst
//! is the whole minute's allowance. An event over a cap is refused on its own with a message
//! naming the field (`item_id` or `user_id`) and when to retry; the others of the request go
//! in. Keys that may write the catalogue (`catalogue`, `admin`) — the backends that import
//! history — are not capped; nor is a node with auth off. 0 turns a cap off.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use marquee_schemas::FieldError;

/// The caps of one node (see the module documentation).
pub struct IngestCaps {
    new_items: Option<(u32, DefaultKeyedRateLimiter<String>)>,
    user_events: Option<(u32, DefaultKeyedRateLimiter<(String, String)>)>,
}

impl std::fmt::Debug for IngestCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestCaps")
            .field(
                "new_items_per_minute",
                &self.new_items.as_ref().map(|cap| cap.0),
            )
            .field(
                "events_per_minute_per_user",
                &self.user_events.as_ref().map(|cap| cap.0),
            )
            .finish()
    }
}

fn per_minute(count: u32) -> Option<Quota> {
    NonZeroU32::new(count).map(Quota::per_minute)
}

fn retry_after(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl IngestCaps {
    /// Caps of `new_items_per_minute` new item ids per key and `events_per_minute_per_user`
    /// events per user and key; 0 turns one off.
    pub fn new(new_items_per_minute: u32, events_per_minute_per_user: u32) -> IngestCaps {
        IngestCaps {
            new_items: per_minute(new_items_per_minute)
                .map(|quota| (new_items_per_minute, RateLimiter::keyed(quota))),
            user_events: per_minute(events_per_minute_per_user)
                .map(|quota| (events_per_minute_per_user, RateLimiter::keyed(quota))),
        }
    }

    /// Admits one event of `key` for `user`, or refuses it naming `user_id`.
    fn admit_event(&self, key: &str, user: &str) -> Result<(), FieldError> {
        let Some((cap, limiter)) = &self.user_events else {
            return Ok(());
        };
        limiter
            .check_key(&(key.to_owned(), user.to_owned()))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                FieldError::new(
                    "user_id",
                    format!(
                        "this key sent more than {cap} events a minute for this user; retry \
                         in {} s, or send history with a catalogue or admin key",
                        retry_after(wait)
                    ),
                )
            })
    }

    /// Admits an item id of `key` that the node does not know yet, or refuses it naming
    /// `item_id`.
    fn admit_new_item(&self, key: &str) -> Result<(), FieldError> {
        let Some((cap, limiter)) = &self.new_items else {
            return Ok(());
        };
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            FieldError::new(
                "item_id",
                format!(
                    "this key named more than {cap} new item ids a minute; retry in {} s, or \
                     add the items to the catalogue first (POST /v1/items)",
                    retry_after(wait)
                ),
            )
        })
    }

    /// Admits one event of `key` for `user` that names an item id the node does not know yet
    /// when `new_item`; refuses it naming the field whose cap it is past.
    pub fn admit(&self, key: &str, user: &str, new_item: bool) -> Result<(), FieldError> {
        self.admit_event(key, user)?;
        if new_item {
            self.admit_new_item(key)?;
        }
        Ok(())
    }

    /// Drops the buckets that are full again (idle keys and users), so memory follows the
    /// active ones. Run now and then (the guard's key watcher does, every minute).
    pub fn forget_idle(&self) {
        if let Some((_, limiter)) = &self.new_items {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some((_, limiter)) = &self.user_events {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_counts_per_key_and_names_its_field() {
        let caps = IngestCaps::new(2, 3);
        for _ in 0..3 {
            caps.admit_event("k1", "u1").unwrap();
        }
        let refused = caps.admit_event("k1", "u1").unwrap_err();
        assert_eq!(refused.field, "user_id");
        assert!(refused.message.contains("3 events a minute"), "{refused}");
        caps.admit_event("k1", "u2").unwrap();
        caps.admit_event("k2", "u1").unwrap();

        caps.admit_new_item("k1").unwrap();
        caps.admit_new_item("k1").unwrap();
        let refused = caps.admit_new_item("k1").unwrap_err();
        assert_eq!(refused.field, "item_id");
        caps.admit_new_item("k2").unwrap();
        caps.forget_idle();

        let off = IngestCaps::new(0, 0);
        for _ in 0..100 {
            off.admit_event("k", "u").unwrap();
            off.admit_new_item("k").unwrap();
        }
    }
}
