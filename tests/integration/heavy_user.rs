//! A user who has seen more items than a list reads of their seen set
//! (`marquee_stream_processor::query::SEEN_SCAN`) still never gets one of them again: the
//! seen items past the read are looked up among the list's, and the list is ranked without
//! them.

use crate::common;

use common::*;
use marquee_stream_processor::query::SEEN_SCAN;
use serde_json::{Value, json};

/// Items the seen set's read stops short of: they have the highest item numbers.
const PAST_THE_SCAN: usize = 300;
/// Items before them: more than the read takes once the history window's (500 by default,
/// kept in the user's row rather than the `seen` column family) are set aside.
const EARLY: usize = SEEN_SCAN + 600;

/// A like, a millisecond after the one before.
fn like(user: &str, item: String, clock: &mut u64) -> Value {
    *clock += 1;
    json!({"user_id": user, "item_id": item, "kind": "like", "timestamp": 1_700_000_000_000 + *clock})
}

async fn ingest(base: &str, events: &[Value]) {
    for chunk in events.chunks(2_000) {
        let (status, answer) = post_json(&format!("{base}/v1/events"), &json!(chunk)).await;
        assert_eq!(status, 202, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_the_seen_scan_never_sees_a_seen_item_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // Every item the events name is listed: no catalogue to load.
    config.processor.catalogue_only = false;
    let node = start(config).await;
    let base = node.url();
    let mut clock = 0;
    // Item numbers follow first appearance: `early-*` take the first EARLY numbers, `late-*`
    // the ones after them. Users' events are applied in parallel, so these go first.
    let mut numbering = Vec::new();
    for k in 0..EARLY {
        numbering.push(like("maker", format!("early-{k}"), &mut clock));
    }
    for k in 0..PAST_THE_SCAN {
        numbering.push(like("maker", format!("late-{k}"), &mut clock));
    }
    ingest(&base, &numbering).await;
    caught_up(&node).await;
    // The heavy user saw `late-*` first, then every `early-*`: the history window holds the
    // last `early-*`, and the seen set's read (item-number order) ends before `late-*`.
    let mut events = Vec::new();
    for k in 0..PAST_THE_SCAN {
        events.push(like("heavy", format!("late-{k}"), &mut clock));
    }
    for k in 0..EARLY {
        events.push(like("heavy", format!("early-{k}"), &mut clock));
    }
    // Viewers who liked one of the heavy user's last items go on to a `late-*` and a `fresh-*`:
    // both rank high for the heavy user, who has seen only the first.
    for viewer in 0..40 {
        let user = format!("viewer-{viewer}");
        for item in [
            format!("early-{}", EARLY - 1 - viewer % 10),
            format!("late-{viewer}"),
            format!("fresh-{viewer}"),
        ] {
            events.push(like(&user, item, &mut clock));
        }
    }
    ingest(&base, &events).await;
    caught_up(&node).await;

    let (status, export) = get_json(&format!("{base}/v1/users/heavy/export")).await;
    assert_eq!(status, 200, "{export}");
    let seen = export["seen"].as_array().unwrap().len();
    assert_eq!(seen, EARLY + PAST_THE_SCAN, "the heavy user's seen items");

    // Without the look-up, the `late-*` items the viewers went on to lead this list.
    for url in [
        format!("{base}/v1/users/heavy/recommendations?count=20"),
        format!("{base}/v1/users/heavy/recommendations?count=5&exclude=fresh-0,fresh-1"),
    ] {
        let (status, answer) = get_json(&url).await;
        assert_eq!(status, 200, "{answer}");
        let ids = item_ids(&answer);
        assert!(!ids.is_empty(), "{answer}");
        assert!(
            ids.iter().all(|id| id.starts_with("fresh-")),
            "only unseen items, got {ids:?}"
        );
    }
    // Asked to include them, the same user gets the `late-*` items back.
    let (status, answer) = get_json(&format!(
        "{base}/v1/users/heavy/recommendations?count=20&exclude_seen=false"
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    let ids = item_ids(&answer);
    assert!(ids.iter().any(|id| id.starts_with("late-")), "{ids:?}");
}
