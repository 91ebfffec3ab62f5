/*
[dependencies]
bincode = { version = "=2.0.1", default-features = false, features = ["std", "derive"] }
serde_json = "1"
*/

//! `marquee_event(record BYTEA) -> TEXT`: one record of Marquee's event log (a Fluvio source
//! in `raw_bytes` format, `value` column) as a JSON object:
//!
//! ```json
//! {"event_id": "…", "user_id": "…", "item_id": "…", "kind": "rating", "value": 4.5,
//!  "timestamp": 1733500000000, "append_ms": 1733500000123, "context": {"surface": "home"}}
//! ```
//!
//! `value` is `null` for kinds without one, `timestamp` is the client's time and `append_ms`
//! the node's, both milliseconds since the Unix epoch. Read fields with Arroyo's
//! `extract_json_string` / `extract_json`. A record this build cannot read (another format
//! version, or bytes that do not decode) gives NULL: filter on `IS NOT NULL` and count the
//! rest, rather than stopping the pipeline on one bad record.
//!
//! The record format (Marquee's `marquee_schemas::codec`): one format-version byte (1), then
//! the bincode 2 "standard" encoding of `LogRecord { append_ms: i64, event: Event }`. The
//! types below mirror Marquee's field for field; the tests decode what Marquee's own encoder
//! wrote, so a change on either side fails them.

use arroyo_udf_plugin::udf;
use bincode::Decode;

/// The format version this UDF reads.
const FORMAT_VERSION: u8 = 1;
/// Marquee's bound on one record, applied while decoding: a corrupt length cannot allocate more.
const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Decode)]
struct LogRecord {
    append_ms: i64,
    event: Event,
}

#[derive(Decode)]
struct Event {
    event_id: String,
    user_id: String,
    item_id: String,
    kind: EventKind,
    value: Option<f32>,
    timestamp: i64,
    context: std::collections::BTreeMap<String, String>,
}

/// In Marquee's declaration order: bincode writes the variant's index.
#[derive(Decode, Clone, Copy)]
enum EventKind {
    View,
    Click,
    Watch,
    Rating,
    Like,
    Dislike,
    AddToWatchlist,
    Skip,
    Impression,
}

impl EventKind {
    fn as_str(self) -> &'static str {
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
}

fn decode(record: &[u8]) -> Option<LogRecord> {
    let (&version, body) = record.split_first()?;
    if version != FORMAT_VERSION {
        return None;
    }
    let config = bincode::config::standard().with_limit::<MAX_RECORD_BYTES>();
    let (decoded, read) = bincode::decode_from_slice(body, config).ok()?;
    (read == body.len()).then_some(decoded)
}

#[udf]
pub fn marquee_event(record: &[u8]) -> Option<String> {
    let LogRecord { append_ms, event } = decode(record)?;
    let json = serde_json::json!({
        "event_id": event.event_id,
        "user_id": event.user_id,
        "item_id": event.item_id,
        "kind": event.kind.as_str(),
        // Through its shortest decimal form, so 0.8 stays 0.8 and not 0.800000011920929.
        "value": event.value.and_then(|value| value.to_string().parse::<f64>().ok()),
        "timestamp": event.timestamp,
        "append_ms": append_ms,
        "context": event.context,
    });
    Some(json.to_string())
}
