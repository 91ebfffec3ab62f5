use std::sync::Arc;

use arroyo_udf_plugin::arrow::array::{Array, Float64Array, StringArray};
use marquee_event_weight::{__run, marquee_event_weight};

/// `(kind, value, weight)` rows of `fixtures/event_weights.tsv`, which a test of the node checks
/// against the node's own weighting.
fn table() -> Vec<(String, Option<f64>, f64)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/event_weights.tsv"
    );
    let text = std::fs::read_to_string(path).expect("the weight table is readable");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("kind\t"))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let value = (!fields[1].is_empty()).then(|| fields[1].parse().unwrap());
            (fields[0].to_owned(), value, fields[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn weighs_every_kind_as_the_node_does() {
    let table = table();
    assert!(
        table.len() >= 20,
        "the table has a row per kind and rating step"
    );
    for (kind, value, weight) in table {
        let got = marquee_event_weight(&kind, value).expect("a known kind has a weight");
        assert!(
            (got - weight).abs() < 1e-5,
            "{kind} {value:?}: {got} against {weight}"
        );
    }
}

#[test]
fn an_unknown_kind_or_a_missing_value_is_null() {
    assert_eq!(marquee_event_weight("purchase", None), None);
    assert_eq!(marquee_event_weight("Rating", Some(4.0)), None);
    assert_eq!(marquee_event_weight("rating", None), None);
    assert_eq!(marquee_event_weight("watch", None), None);
}

#[test]
fn runs_through_the_ffi_entry_point() {
    let kinds = Arc::new(StringArray::from(vec![
        Some("rating"),
        Some("like"),
        Some("watch"),
        None,
        Some("teleport"),
    ]));
    let values = Arc::new(Float64Array::from(vec![
        Some(5.0),
        None,
        Some(0.8),
        None,
        None,
    ]));
    let result = udf_test_support::call(__run, &[kinds, values]);
    let result = result.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(result.len(), 5);
    assert!((result.value(0) - 1.0).abs() < 1e-9);
    assert!((result.value(1) - 1.0).abs() < 1e-9);
    assert!((result.value(2) - 0.5).abs() < 1e-9);
    assert!(result.is_null(3), "a NULL kind gives NULL");
    assert!(result.is_null(4), "an unknown kind gives NULL");
}
