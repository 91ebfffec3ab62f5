//! Made-up items: the ingest key may ship inside an app, so whoever holds it can send events
//! on any item id. In catalogue-only mode (a node's default), those events are kept and
//! learned from, but an item no catalogue holds is never listed — not trending, not
//! recommended, not similar — until it is catalogued; with the mode off, every item is listed.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// What an attacker sends: markup, in case a page renders ids as HTML.
const MADE_UP: &str = "<img src=x onerror=alert(1)>";
const CATALOGUED: usize = 12;
/// Made-up ids that are later catalogued: `later-0 … later-4`.
const LATER: usize = 5;

fn catalogued(id: &str) -> bool {
    id.starts_with('c') && id[1..].parse::<usize>().is_ok_and(|k| k < CATALOGUED)
}

/// A node (`catalogue_only` as given) with `c0 … c11` catalogued, 40 viewers of them, and 300
/// users who each like the made-up item, one of `later-*` and `c0`.
async fn attacked(dir: &std::path::Path, catalogue_only: bool) -> marquee_node::RunningNode {
    let mut config = test_config(dir);
    config.processor.catalogue_only = catalogue_only;
    let node = start(config).await;
    let base = node.url();
    if catalogue_only {
        let items: Vec<Value> = (0..CATALOGUED)
            .map(|k| json!({"item_id": format!("c{k}"), "title": format!("Film {k}"), "genres": ["Drama"]}))
            .collect();
        let (status, answer) = post_json(&format!("{base}/v1/items"), &json!(items)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let mut events = Vec::new();
    for viewer in 0..40 {
        for step in 0..3 {
            events.push(json!({"user_id": format!("v{viewer}"),
                               "item_id": format!("c{}", (viewer + step) % CATALOGUED),
                               "kind": "like"}));
        }
    }
    for attacker in 0..300 {
        for item in [
            MADE_UP.to_owned(),
            format!("later-{}", attacker % LATER),
            "c0".to_owned(),
        ] {
            events
                .push(json!({"user_id": format!("a{attacker}"), "item_id": item, "kind": "like"}));
        }
    }
    let (status, answer) = post_json(&format!("{base}/v1/events"), &json!(events)).await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    node
}

/// The trending list once it holds `wanted` (it is refreshed after the events are applied).
async fn trending_with(base: &str, wanted: &str) -> Vec<String> {
    eventually(&format!("{wanted} trending"), || async {
        let (status, answer) = get_json(&format!("{base}/v1/trending?count=50")).await;
        assert_eq!(status, 200, "{answer}");
        let ids = item_ids(&answer);
        ids.iter().any(|id| id == wanted).then_some(ids)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_items_are_learned_from_but_listed_only_once_catalogued() {
    let dir = tempfile::tempdir().unwrap();
    let node = attacked(dir.path(), true).await;
    let base = node.url();

    // The made-up item is by far the most liked, and in no list.
    let trending = trending_with(&base, "c0").await;
    assert!(trending.iter().all(|id| catalogued(id)), "{trending:?}");
    assert_eq!(trending.len(), CATALOGUED, "{trending:?}");
    let lists = [
        "/v1/users/a0/recommendations?count=50".to_owned(),
        "/v1/users/v0/recommendations?count=50".to_owned(),
        "/v1/users/newcomer/recommendations?count=50".to_owned(),
        "/v1/items/c0/similar?count=50".to_owned(),
        "/v1/items/later-0/similar?count=50".to_owned(),
    ];
    for list in &lists {
        let (status, answer) = get_json(&format!("{base}{list}")).await;
        assert_eq!(status, 200, "{list}: {answer}");
        let ids = item_ids(&answer);
        assert!(!ids.is_empty(), "{list}: {answer}");
        assert!(ids.iter().all(|id| catalogued(id)), "{list}: {ids:?}");
    }

    // Cataloguing one makes it listed from then on, with what its events taught: it trends
    // without another event, and it is among c0's neighbours.
    let (status, answer) = post_json(
        &format!("{base}/v1/items"),
        &json!([{"item_id": "later-0", "title": "A later film", "genres": ["Drama"]}]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let trending = trending_with(&base, "later-0").await;
    assert!(
        trending.iter().all(|id| id == "later-0" || catalogued(id)),
        "{trending:?}"
    );
    let (_, similar) = get_json(&format!("{base}/v1/items/c0/similar?count=50")).await;
    let similar = item_ids(&similar);
    assert!(similar.iter().any(|id| id == "later-0"), "{similar:?}");
    assert!(
        similar.iter().all(|id| id == "later-0" || catalogued(id)),
        "{similar:?}"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_catalogue_only_off_every_item_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let node = attacked(dir.path(), false).await;
    trending_with(&node.url(), MADE_UP).await;
    node.shutdown().await.unwrap();
}

/// The caps of an app's key: with auth on, an ingest key may name only so many new item ids a
/// minute and send only so many events a minute for one user; each event past a cap is refused
/// naming its field, the others go in, and a key that may write the catalogue is not capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_key_is_capped_on_new_items_and_on_events_per_user() {
    use marquee_api::keys::{KeySet, Scope, keys_path};
    let dir = tempfile::tempdir().unwrap();
    let mut keys = KeySet::default();
    let (app, _) = keys.create("app", &[Scope::Ingest], None).unwrap();
    let (importer, _) = keys
        .create("importer", &[Scope::Ingest, Scope::Catalogue], None)
        .unwrap();
    keys.save(&keys_path(dir.path())).unwrap();
    let mut config = test_config(dir.path());
    config.auth = marquee_api::guard::AuthMode::On;
    config.limits.new_items_per_minute = 5;
    config.limits.events_per_minute_per_user = 10;
    let node = start(config).await;
    let events = format!("{}/v1/events", node.url());
    let send = |key: String, body: Vec<Value>| {
        let events = events.clone();
        async move {
            let response = http()
                .post(events)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, answer) = post_json(
        &format!("{}/v1/items", node.url()),
        &json!([{"item_id": "known", "title": "Known"}]),
    )
    .await;
    assert_eq!(status, 401, "the catalogue needs a key: {answer}");
    let response = http()
        .post(format!("{}/v1/items", node.url()))
        .bearer_auth(&importer)
        .json(&json!([{"item_id": "known", "title": "Known"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // One user, 14 events on a catalogued item: 10 go in, 4 are refused naming user_id.
    let burst: Vec<Value> = (0..14)
        .map(|n| json!({"user_id": "script", "item_id": "known", "kind": "view", "event_id": format!("s{n}")}))
        .collect();
    let (status, answer) = send(app.clone(), burst).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 10, "{answer}");
    let refused = answer["rejected"].as_array().unwrap();
    assert_eq!(refused.len(), 4, "{answer}");
    assert!(
        refused
            .iter()
            .all(|rejection| rejection["field"] == "user_id"),
        "{answer}"
    );

    // Eight new item ids from eight users: five go in, three are refused naming item_id;
    // the same id twice in a request counts once.
    let mut made_up: Vec<Value> = (0..8)
        .map(|n| json!({"user_id": format!("v{n}"), "item_id": format!("new-{n}"), "kind": "like"}))
        .collect();
    made_up.insert(
        1,
        json!({"user_id": "w", "item_id": "new-0", "kind": "like"}),
    );
    let (status, answer) = send(app.clone(), made_up.clone()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 6, "{answer}");
    let refused = answer["rejected"].as_array().unwrap();
    assert_eq!(refused.len(), 3, "{answer}");
    assert!(
        refused
            .iter()
            .all(|rejection| rejection["field"] == "item_id"),
        "{answer}"
    );
    let metrics = get_text(&format!("{}/metrics", node.url())).await;
    assert_eq!(
        metric_sample(
            &metrics,
            r#"marquee_ingest_events_rejected_total{kind="view",reason="capped"}"#
        ),
        4.0
    );

    // A key that may write the catalogue is not capped.
    let (status, answer) = send(importer, made_up).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 9, "{answer}");
    node.shutdown().await.unwrap();
}
