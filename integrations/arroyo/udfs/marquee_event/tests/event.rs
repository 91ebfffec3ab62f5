use std::collections::BTreeMap;
use std::sync::Arc;

use arroyo_udf_plugin::arrow::array::{Array, BinaryArray, StringArray};
use marquee_event::{__run, marquee_event};
use marquee_schemas::{encode_record, Event, EventKind, LogRecord};
use serde_json::{json, Value};

fn event(kind: EventKind, value: Option<f32>) -> LogRecord {
    LogRecord {
        append_ms: 1_733_500_000_123,
        event: Event {
            event_id: format!("0193a1b2-{}", kind.as_str()),
            user_id: "viewer-é".into(),
            item_id: "m/318".into(),
            kind,
            value,
            timestamp: 1_733_500_000_000,
            context: BTreeMap::new(),
        },
    }
}

/// The record as Marquee's own encoder writes it to the log.
fn written(record: &LogRecord) -> Vec<u8> {
    encode_record(record).expect("the record encodes")
}

fn decoded(bytes: &[u8]) -> Value {
    serde_json::from_str(&marquee_event(bytes).expect("the record decodes")).unwrap()
}

#[test]
fn decodes_every_kind_the_node_writes() {
    let values = [
        None,
        None,
        Some(0.8),
        Some(4.5),
        None,
        None,
        None,
        None,
        None,
    ];
    assert_eq!(values.len(), EventKind::ALL.len(), "a value for every kind");
    for (kind, value) in EventKind::ALL.into_iter().zip(values) {
        let record = event(kind, value);
        let got = decoded(&written(&record));
        assert_eq!(
            got,
            json!({
                "event_id": record.event.event_id,
                "user_id": "viewer-é",
                "item_id": "m/318",
                "kind": kind.as_str(),
                "value": value.map(|v| f64::from(v * 10.0).round() / 10.0),
                "timestamp": 1_733_500_000_000i64,
                "append_ms": 1_733_500_000_123i64,
                "context": {},
            }),
            "{kind}"
        );
    }
}

#[test]
fn keeps_the_context() {
    let mut record = event(EventKind::Click, None);
    record.event.context = BTreeMap::from([
        ("surface".to_owned(), "home".to_owned()),
        ("genre".to_owned(), "Comedy".to_owned()),
    ]);
    let got = decoded(&written(&record));
    assert_eq!(
        got["context"],
        json!({"surface": "home", "genre": "Comedy"})
    );
}

#[test]
fn a_record_it_cannot_read_is_null() {
    let good = written(&event(EventKind::Like, None));
    assert_eq!(marquee_event(&[]), None, "empty");
    let mut other_version = good.clone();
    other_version[0] = 2;
    assert_eq!(
        marquee_event(&other_version),
        None,
        "another format version"
    );
    assert_eq!(marquee_event(&good[..good.len() - 1]), None, "truncated");
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(marquee_event(&trailing), None, "trailing bytes");
    // A length prefix near 2^64 (found by the node's fuzzing): an error, not an allocation.
    assert_eq!(
        marquee_event(&[1, 1, 253, 0, 1, 0, 0, 0, 251, 255, 128]),
        None
    );
}

#[test]
fn runs_through_the_ffi_entry_point() {
    let first = written(&event(EventKind::Rating, Some(3.5)));
    let second = written(&event(EventKind::Skip, None));
    let records = Arc::new(BinaryArray::from(vec![
        Some(first.as_slice()),
        None,
        Some(&[9u8, 9, 9][..]),
        Some(second.as_slice()),
    ]));
    let result = udf_test_support::call(__run, &[records]);
    let result = result.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(result.len(), 4);
    let first: Value = serde_json::from_str(result.value(0)).unwrap();
    assert_eq!(first["kind"], "rating");
    assert_eq!(first["value"], 3.5);
    assert!(result.is_null(1), "a NULL record gives NULL");
    assert!(result.is_null(2), "an unreadable record gives NULL");
    let second: Value = serde_json::from_str(result.value(3)).unwrap();
    assert_eq!(second["kind"], "skip");
    assert_eq!(second["value"], Value::Null);
}
