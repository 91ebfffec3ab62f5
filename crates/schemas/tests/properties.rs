//! Properties of the schemas: every stored record round-trips through its codec, no byte string
//! makes a decoder panic, and anything validation accepts re-encodes to JSON that decodes to the
//! same value (so what the log stores is exactly what the client meant).

use std::collections::BTreeMap;

use marquee_schemas::json::{event_from_json, item_from_json};
use marquee_schemas::{Event, EventKind, Item, decode_record, encode_record};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Map, Value, json};

/// The server clock of the validation properties.
const NOW: i64 = 1_780_000_000_000;

fn kind() -> impl Strategy<Value = EventKind> {
    proptest::sample::select(EventKind::ALL.to_vec())
}

fn any_event() -> impl Strategy<Value = Event> {
    (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        kind(),
        proptest::option::of(any::<f32>().prop_filter("comparable", |value| !value.is_nan())),
        any::<i64>(),
        btree_map(any::<String>(), any::<String>(), 0..4),
    )
        .prop_map(
            |(event_id, user_id, item_id, kind, value, timestamp, context)| Event {
                event_id,
                user_id,
                item_id,
                kind,
                value,
                timestamp,
                context,
            },
        )
}

fn any_item() -> impl Strategy<Value = Item> {
    (
        any::<String>(),
        proptest::option::of(any::<String>()),
        vec(any::<String>(), 0..5),
        proptest::option::of(any::<i32>()),
        vec(any::<String>(), 0..5),
    )
        .prop_map(|(item_id, title, genres, year, tags)| Item {
            item_id,
            title,
            genres,
            year,
            tags,
            ..Item::default()
        })
}

/// Ids that are often valid and sometimes not (empty, too long, control characters).
fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        24 => "[a-zA-Z0-9_.:-]{1,24}".prop_map(Value::from),
        1 => Just(Value::from("")),
        1 => "[a-z]{129,140}".prop_map(Value::from),
        1 => "[a-z]{1,4}\u{0}[a-z]{0,4}".prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1..=10u32).prop_map(|half_steps| json!(f64::from(half_steps) / 2.0)),
        (0.0..=1.0f64).prop_map(|fraction| json!(fraction)),
        any::<f64>()
            .prop_filter("finite", |value| value.is_finite())
            .prop_map(|value| json!(value)),
        any::<i64>().prop_map(|value| json!(value)),
        Just(Value::from("4.5")),
    ]
}

/// JSON objects shaped like events, valid or not in every field.
fn event_json() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(id()),
        id(),
        id(),
        prop_oneof![
            8 => kind().prop_map(|kind| Value::from(kind.as_str())),
            1 => "[a-z_]{1,12}".prop_map(Value::from),
        ],
        proptest::option::weighted(0.4, number()),
        proptest::option::of(prop_oneof![
            (0..NOW + 2 * 86_400_000).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(json!(1.5)),
        ]),
        proptest::option::of(btree_map("[a-z]{0,6}", "[a-z ]{0,8}", 0..4)),
        proptest::bool::weighted(0.02),
    )
        .prop_map(
            |(event_id, user_id, item_id, kind, value, timestamp, context, unknown)| {
                let mut object = Map::new();
                if let Some(event_id) = event_id {
                    object.insert("event_id".into(), event_id);
                }
                object.insert("user_id".into(), user_id);
                object.insert("item_id".into(), item_id);
                object.insert("kind".into(), kind);
                if let Some(value) = value {
                    object.insert("value".into(), value);
                }
                if let Some(timestamp) = timestamp {
                    object.insert("timestamp".into(), timestamp);
                }
                if let Some(context) = context {
                    let context: BTreeMap<String, Value> = context
                        .into_iter()
                        .map(|(key, value)| (key, Value::from(value)))
                        .collect();
                    object.insert("context".into(), json!(context));
                }
                if unknown {
                    object.insert("user".into(), json!("typo"));
                }
                Value::Object(object)
            },
        )
}

fn item_json() -> impl Strategy<Value = Value> {
    (
        id(),
        proptest::option::of("[ -~]{0,40}"),
        proptest::option::of(vec("[A-Za-z -]{0,12}", 0..4)),
        proptest::option::of(prop_oneof![any::<i64>(), 1900..2030i64]),
        proptest::option::of(vec(any::<String>(), 0..3)),
    )
        .prop_map(|(item_id, title, genres, year, tags)| {
            let mut object = Map::new();
            object.insert("item_id".into(), item_id);
            if let Some(title) = title {
                object.insert("title".into(), json!(title));
            }
            if let Some(genres) = genres {
                object.insert("genres".into(), json!(genres));
            }
            if let Some(year) = year {
                object.insert("year".into(), json!(year));
            }
            if let Some(tags) = tags {
                object.insert("tags".into(), json!(tags));
            }
            Value::Object(object)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn event_records_round_trip(event in any_event()) {
        let bytes = encode_record(&event).unwrap();
        prop_assert_eq!(decode_record::<Event>(&bytes).unwrap(), event);
    }

    #[test]
    fn item_records_round_trip(item in any_item()) {
        let bytes = encode_record(&item).unwrap();
        prop_assert_eq!(decode_record::<Item>(&bytes).unwrap(), item);
    }

    #[test]
    fn no_byte_string_makes_a_decoder_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_record::<Event>(&bytes);
        let _ = decode_record::<Item>(&bytes);
    }

    #[test]
    fn a_truncated_record_is_an_error(event in any_event(), cut in 1usize..64) {
        let bytes = encode_record(&event).unwrap();
        let kept = bytes.len().saturating_sub(cut);
        prop_assert!(decode_record::<Event>(&bytes[..kept]).is_err());
    }

    #[test]
    fn an_accepted_event_re_encodes_to_the_same_event(value in event_json()) {
        if let Ok(event) = event_from_json(&value, NOW, || "assigned".to_owned()) {
            let encoded = serde_json::to_value(&event).unwrap();
            let again = event_from_json(&encoded, NOW, || unreachable!("the id is present"));
            prop_assert_eq!(again, Ok(event));
        }
    }

    #[test]
    fn an_accepted_item_re_encodes_to_the_same_item(value in item_json()) {
        if let Ok(item) = item_from_json(&value, None) {
            let encoded = serde_json::to_value(&item).unwrap();
            prop_assert_eq!(item_from_json(&encoded, None), Ok(item));
        }
    }
}

/// The generators reach both sides of validation (so the properties above test something).
#[test]
fn the_generators_produce_valid_and_invalid_input() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..400 {
        let value = event_json().new_tree(&mut runner).unwrap().current();
        match event_from_json(&value, NOW, || "assigned".to_owned()) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        accepted > 40 && refused > 40,
        "{accepted} accepted, {refused} refused"
    );
}
