#![allow(dead_code, reason = "each fuzz target uses one check")]
//! What each fuzz target checks, shared with `tests/fuzz_corpus.rs`, which replays the kept
//! corpus in the normal test suite. No `catch_unwind`: a panic is a finding.

use marquee_schemas::json::{BodyFormat, body_elements, event_from_json, item_from_json};
use marquee_schemas::{Event, Item, LogRecord, decode_record, encode_record};

/// The server clock the event decoder validates against.
const NOW_MS: i64 = 1_780_000_000_000;

/// A request body as JSON and as NDJSON: splitting, decoding and validating never panic, and an
/// accepted event or item re-encodes to JSON that decodes to the same value.
pub fn event_body(data: &[u8]) {
    for format in [BodyFormat::Json, BodyFormat::Ndjson] {
        let Ok(elements) = body_elements(format, data) else {
            continue;
        };
        for element in elements.iter().flatten() {
            if let Ok(event) = event_from_json(element, NOW_MS, || "assigned".to_owned()) {
                let encoded = serde_json::to_value(&event).expect("an event serialises");
                let again = event_from_json(&encoded, NOW_MS, || unreachable!("id present"));
                assert_eq!(again.as_ref(), Ok(&event), "{encoded}");
                let stored = encode_record(&event).expect("an event encodes");
                let stored_again = decode_record::<Event>(&stored).expect("a stored event decodes");
                assert_eq!(stored_again, event);
            }
            if let Ok(item) = item_from_json(element, None) {
                let encoded = serde_json::to_value(&item).expect("an item serialises");
                assert_eq!(item_from_json(&encoded, None).as_ref(), Ok(&item));
                let stored = encode_record(&item).expect("an item encodes");
                let stored_again = decode_record::<Item>(&stored).expect("a stored item decodes");
                assert_eq!(stored_again, item);
            }
        }
    }
}

/// A stored log value: decoding never panics, and what decodes re-encodes to a value that
/// decodes the same.
pub fn log_record(data: &[u8]) {
    if let Ok(record) = decode_record::<LogRecord>(data) {
        let bytes = encode_record(&record).expect("a decoded record encodes");
        let again = decode_record::<LogRecord>(&bytes).expect("a re-encoded record decodes");
        assert_eq!(again.append_ms, record.append_ms);
        assert_eq!(again.event.event_id, record.event.event_id);
        assert_eq!(again.event.context, record.event.context);
    }
}
