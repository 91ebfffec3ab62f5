//! Events in, recommendations out: the whole path on a real node over HTTP.

use crate::common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_ingest::{EventLog, LogBackend};
use serde_json::{Value, json};

fn small_world() -> Synthetic {
    Synthetic::new(SyntheticConfig {
        seed: 7,
        users: 600,
        items: 1200,
        clusters: 10,
        events: 80_000,
        ..SyntheticConfig::default()
    })
}

async fn load_world(node: &marquee_node::RunningNode, world: &Synthetic) {
    let client = marquee_client::Client::builder(node.url()).build().unwrap();
    let items: Vec<_> = world.items().collect();
    marquee_bench::shared::load(&client, &items, world.events())
        .await
        .unwrap();
    caught_up(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rated_item_leaves_the_list_and_a_taste_shows_up_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let world = small_world();
    load_world(&node, &world).await;
    let base = node.url();

    // The popular list (an unknown user) is not dominated by any one cluster. The trending
    // list is refreshed by the processor once it has caught up (at most once a second while it
    // is busy), so it may take a moment to fill.
    let popular = eventually("a full popular list", || async {
        let (status, popular) = get_json(&format!("{base}/v1/users/nobody/recommendations")).await;
        assert_eq!(status, 200);
        assert_eq!(popular["strategy"], "popular");
        (item_ids(&popular).len() == 10).then_some(popular)
    })
    .await;

    // A new viewer rates ten popular items of one cluster with five stars.
    let cluster = 3;
    let liked: Vec<String> = (0..10)
        .map(|rank| Synthetic::item_id(cluster as u64 + rank * world.config().clusters as u64))
        .collect();
    let events: Vec<Value> = liked
        .iter()
        .map(|item| json!({"user_id": "newcomer", "item_id": item, "kind": "rating", "value": 5.0}))
        .collect();
    let (status, answer) = post_json(&format!("{base}/v1/events"), &Value::Array(events)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 10);

    let in_cluster = |ids: &[String]| {
        ids.iter()
            .filter(|id| world.cluster_of_item_id(id) == Some(cluster))
            .count()
    };
    let popular_share = in_cluster(&item_ids(&popular));
    assert!(
        popular_share < 7,
        "popular list already {popular_share}/10 from the cluster"
    );

    let url = format!("{base}/v1/users/newcomer/recommendations");
    let list = eventually("a personalised list", || async {
        let (_, answer) = get_json(&url).await;
        (answer["strategy"] == "personalised").then(|| item_ids(&answer))
    })
    .await;
    assert_eq!(list.len(), 10);
    for item in &liked {
        assert!(
            !list.contains(item),
            "rated item {item} is still recommended"
        );
    }
    let share = in_cluster(&list);
    eprintln!("{share}/10 from the liked cluster; popular list {popular_share}/10");
    assert!(
        share >= 7,
        "only {share}/10 recommendations from the cluster the user likes: {list:?}"
    );

    // Rating one more item removes it from the very next list that reflects the event.
    let next = list[0].clone();
    let (status, _) = post_json(
        &format!("{base}/v1/events"),
        &json!({"user_id": "newcomer", "item_id": next, "kind": "rating", "value": 4.5}),
    )
    .await;
    assert_eq!(status, 202);
    eventually("the rated item to leave the list", || async {
        let (_, answer) = get_json(&url).await;
        (!item_ids(&answer).contains(&next)).then_some(())
    })
    .await;

    node.shutdown().await.unwrap();
}

/// Per-user facts that must survive a restart unchanged.
async fn user_facts(base: &str, users: &[String]) -> BTreeMap<String, (u64, Vec<String>)> {
    let mut facts = BTreeMap::new();
    for user in users {
        let (status, answer) = get_json(&format!("{base}/v1/users/{user}")).await;
        assert_eq!(status, 200, "{answer}");
        let seen = answer["seen_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        facts.insert(
            user.clone(),
            (answer["event_count"].as_u64().unwrap(), seen),
        );
    }
    facts
}

async fn recommendation_lists(base: &str, users: &[String]) -> Vec<Vec<String>> {
    let mut lists = Vec::new();
    for user in users {
        let (status, answer) = get_json(&format!("{base}/v1/users/{user}/recommendations")).await;
        assert_eq!(status, 200);
        lists.push(item_ids(&answer));
    }
    lists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_without_losing_or_repeating_anything() {
    restart_resumes_without_losing_or_repeating_anything(LogBackend::Embedded).await;
}

/// The same on a Fluvio topic: offsets in the state, events in the cluster, a producer that may
/// deliver twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fluvio_a_restart_resumes_without_losing_or_repeating_anything() {
    let Some(backend) = fluvio_backend("restart") else {
        return;
    };
    restart_resumes_without_losing_or_repeating_anything(backend).await;
}

async fn restart_resumes_without_losing_or_repeating_anything(log: LogBackend) {
    let config = |dir: &std::path::Path| {
        let mut config = test_config(dir);
        config.log = log.clone();
        config
    };
    let dir = tempfile::tempdir().unwrap();
    let world = Synthetic::new(SyntheticConfig {
        seed: 11,
        users: 300,
        items: 800,
        clusters: 8,
        events: 30_000,
        ..SyntheticConfig::default()
    });
    let users: Vec<String> = (0..60).map(Synthetic::user_id).collect();

    let node = start(config(dir.path())).await;
    load_world(&node, &world).await;
    let offsets_before = node.services().unwrap().processor.committed_offsets();
    let metrics = get_text(&format!("{}/metrics", node.url())).await;
    let applied = metric_total(&metrics, "marquee_processor_events_applied_total");
    let skipped = metric_total(&metrics, "marquee_processor_duplicate_events_total");
    let facts_before = user_facts(&node.url(), &users).await;
    let lists_before = recommendation_lists(&node.url(), &users).await;
    // The graph saved at stop is the one built after the last item arrived: wait for it, so
    // the count compared after the restart is the saved graph's.
    let items = world.config().items as usize;
    let index = node.services().unwrap().index.clone();
    let indexed_before = eventually("the index holds every item", || {
        let indexed = index.stats().indexed_items;
        async move { (indexed == items).then_some(indexed) }
    })
    .await;
    node.shutdown().await.unwrap();
    // A clean stop saves the index's graph; the next start loads it instead of building.
    assert!(dir.path().join("index").exists(), "no saved index");

    let node = start(config(dir.path())).await;
    let services = node.services().unwrap();
    let index = services.index.stats();
    assert_eq!(index.builds, 0, "the graph was built, not loaded");
    assert_eq!(index.indexed_items, indexed_before);
    assert!(
        !dir.path().join("index").exists(),
        "a loaded graph is deleted"
    );
    assert_eq!(services.processor.committed_offsets(), offsets_before);
    assert_eq!(services.log.end_offsets().unwrap(), offsets_before);
    let facts_after = user_facts(&node.url(), &users).await;
    assert_eq!(
        facts_before, facts_after,
        "per-user counts or seen items changed"
    );

    // Every event was applied once. The log may hold a record twice: Fluvio's producer is
    // at-least-once, and the client sends a batch again after a 503 (an append that timed out,
    // as on a replicated topic under load). Each extra record was skipped by its `event_id`.
    let records: u64 = offsets_before.iter().sum();
    assert_eq!(applied, world.config().events as f64, "events applied");
    assert_eq!(records as f64, applied + skipped, "records in the log");

    // The same graph answers; scores decay with time between the two reads, so lists may
    // still differ at the margin: the documented bound is a mean top-10 overlap of at least 0.9.
    let lists_after = recommendation_lists(&node.url(), &users).await;
    let overlap: f64 = lists_before
        .iter()
        .zip(&lists_after)
        .map(|(before, after)| {
            let before: HashSet<&String> = before.iter().collect();
            after.iter().filter(|id| before.contains(id)).count() as f64 / 10.0
        })
        .sum::<f64>()
        / users.len() as f64;
    assert!(
        overlap >= 0.9,
        "mean top-10 overlap after restart {overlap}"
    );

    // Sending the same events again changes nothing: their ids were applied already.
    let client = marquee_client::Client::builder(node.url()).build().unwrap();
    let again: Vec<_> = world.events().take(5000).collect();
    client.send_events(&again).await.unwrap();
    caught_up(&node).await;
    assert_eq!(user_facts(&node.url(), &users).await, facts_before);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_event_id_is_applied_once() {
    repeated_event_id_is_applied_once(LogBackend::Embedded).await;
}

/// Fluvio's producer is at-least-once: de-duplication by `event_id` is what makes it safe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fluvio_a_repeated_event_id_is_applied_once() {
    let Some(backend) = fluvio_backend("repeated") else {
        return;
    };
    repeated_event_id_is_applied_once(backend).await;
}

async fn repeated_event_id_is_applied_once(log: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.log = log;
    let node = start(config).await;
    let base = node.url();
    let event = json!({"event_id": "e-1", "user_id": "u1", "item_id": "m1", "kind": "like"});
    let (status, _) = post_json(&format!("{base}/v1/events"), &event).await;
    assert_eq!(status, 202);
    // Again on its own, and twice more inside one batch.
    let (status, _) = post_json(&format!("{base}/v1/events"), &event).await;
    assert_eq!(status, 202);
    let (status, _) = post_json(&format!("{base}/v1/events"), &json!([event, event])).await;
    assert_eq!(status, 202);
    let other = json!({"event_id": "e-2", "user_id": "u1", "item_id": "m2", "kind": "view"});
    post_json(&format!("{base}/v1/events"), &other).await;
    caught_up(&node).await;
    let (_, user) = get_json(&format!("{base}/v1/users/u1")).await;
    assert_eq!(user["event_count"], 2, "{user}");
    assert_eq!(user["seen_items"], json!(["m1", "m2"]));
    node.shutdown().await.unwrap();
}

/// Seen items stay excluded once they have left the history window: the list is built from the
/// last `history_len` events, and the items before them come from the `seen` column family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_seen_before_the_history_window_stay_out_of_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.model.history_len = 3;
    // Its items are never catalogued.
    config.processor.catalogue_only = false;
    let node = start(config).await;
    let base = node.url();
    let items: Vec<String> = (1..=8).map(|k| format!("s{k}")).collect();
    // A crowd watches s1..s8 in order, so each is a strong neighbour of the others.
    let mut events = Vec::new();
    let mut add = |user: &str, item: &str, at: usize| {
        events.push(json!({
            "event_id": format!("{user}-{item}"), "user_id": user, "item_id": item,
            "kind": "rating", "value": 5.0, "timestamp": 1_600_000_000_000i64 + at as i64 * 1000,
        }));
    };
    for viewer in 0..30 {
        for (at, item) in items.iter().enumerate() {
            add(&format!("crowd-{viewer}"), item, at);
        }
    }
    // The viewer rated s1..s6: s1..s3 have left a history of 3.
    for (at, item) in items[..6].iter().enumerate() {
        add("viewer", item, 100 + at);
    }
    let (status, answer) = post_json(&format!("{base}/v1/events"), &Value::Array(events)).await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;

    let url = format!("{base}/v1/users/viewer/recommendations?count=10");
    let (_, everything) = get_json(&format!("{url}&exclude_seen=false")).await;
    let everything = item_ids(&everything);
    assert!(
        everything
            .iter()
            .any(|item| ["s1", "s2", "s3"].contains(&item.as_str())),
        "without the filter, items from before the window rank: {everything:?}"
    );
    let (status, answer) = get_json(&url).await;
    assert_eq!(status, 200, "{answer}");
    let listed = item_ids(&answer);
    assert!(
        listed.iter().any(|item| item == "s7" || item == "s8"),
        "{listed:?}"
    );
    for item in &items[..6] {
        assert!(!listed.contains(item), "{item} was seen: {listed:?}");
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_named_problem_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let events_url = format!("{base}/v1/events");
    let log = &node.services().unwrap().log;
    let ends_before = log.end_offsets().unwrap();

    let (status, body) = post(&events_url, "application/json", "{\"user_id\": ").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "malformed_json");
    assert!(body["error"]["message"].as_str().unwrap().contains("body"));

    // A key named twice means two things to two readers: refused, whole body or NDJSON line.
    let twice = r#"{"user_id": "u1", "item_id": "m1", "kind": "view", "user_id": "u2"}"#;
    let (status, body) = post(&events_url, "application/json", twice).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_json");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(r#"duplicate key "user_id""#), "{message}");
    let (status, body) = post(&events_url, "application/x-ndjson", format!("{twice}\n")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["accepted"], 0, "{body}");
    let message = body["rejected"][0]["error"].as_str().unwrap();
    assert!(message.contains(r#"duplicate key "user_id""#), "{message}");

    let (status, body) = post_json(
        &events_url,
        &json!({"user_id": "u1", "item_id": "m1", "kind": "purchase"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["rejected"][0]["field"], "kind");
    assert!(
        body["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("purchase")
    );

    let (status, body) = post_json(
        &events_url,
        &json!({"user_id": "u1", "item_id": "m1", "kind": "rating", "value": 6.0}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["rejected"][0]["field"], "value");
    assert!(
        body["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("0.5 to 5.0")
    );

    let oversized = vec![b' '; 11 * 1024 * 1024];
    let (status, body) = post(&events_url, "application/json", oversized).await;
    assert_eq!(status, 413);
    assert!(body["error"]["message"].as_str().unwrap().contains("body"));

    let too_many = (0..10_001)
        .map(|i| format!("{{\"user_id\":\"u{i}\",\"item_id\":\"m1\",\"kind\":\"view\"}}\n"))
        .collect::<String>();
    let (status, body) = post(&events_url, "application/x-ndjson", too_many).await;
    assert_eq!(status, 413);
    assert!(body["error"]["message"].as_str().unwrap().contains("10000"));

    let (status, body) = post(&events_url, "text/csv", "user_id,item_id\n").await;
    assert_eq!(status, 415);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content-type")
    );

    let (status, body) = get_json(&format!("{base}/v1/users/u1/recommendations?count=1000")).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("count")
    );

    let (status, body) = get_json(&format!("{base}/v1/nowhere")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    let response = http().delete(&events_url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);

    assert_eq!(
        log.end_offsets().unwrap(),
        ends_before,
        "a refused request appended events"
    );

    // A mixed batch: the valid event is appended, the invalid one is reported by index.
    let ndjson = "{\"user_id\":\"u1\",\"item_id\":\"m1\",\"kind\":\"view\"}\nnot json\n";
    let (status, body) = post(&events_url, "application/x-ndjson", ndjson).await;
    assert_eq!(status, 202);
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"][0]["index"], 1);
    let appended: u64 =
        log.end_offsets().unwrap().iter().sum::<u64>() - ends_before.iter().sum::<u64>();
    assert_eq!(appended, 1);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_items_round_trip_and_every_route_is_documented() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let response = http()
        .put(format!("{base}/v1/items/m7"))
        .json(&json!({"title": "Heat", "genres": ["Crime", "Thriller"], "year": 1995}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, item) = get_json(&format!("{base}/v1/items/m7")).await;
    assert_eq!(status, 200);
    assert_eq!(item["title"], "Heat");
    assert_eq!(item["genres"], json!(["Crime", "Thriller"]));
    let (status, _) = get_json(&format!("{base}/v1/items/absent")).await;
    assert_eq!(status, 404);

    let (status, spec) = get_json(&format!("{base}/openapi.json")).await;
    assert_eq!(status, 200);
    // The document is generated from the route table: every route the router serves is in
    // it under its method, and nothing else is.
    let mut served: Vec<(String, String)> = marquee_api::routes::route_patterns()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_ascii_lowercase(), path))
        .collect();
    served.sort();
    let mut documented: Vec<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    assert_eq!(served, documented);
    for route in [
        ("post", "/v1/events"),
        ("get", "/v1/users/{user_id}/recommendations"),
    ] {
        assert!(
            served.contains(&(route.0.to_owned(), route.1.to_owned())),
            "{route:?} is not served"
        );
    }
    let (status, answer) = post_json(
        &format!("{base}/v1/events"),
        &json!({"user_id": "u1", "item_id": "m7", "kind": "like"}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    let metrics = get_text(&format!("{base}/metrics")).await;
    assert!(metrics.contains("marquee_http_request_duration_seconds"));
    let sum_of = |family: &str| -> f64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(&format!("{family}{{")))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let accepted = sum_of("marquee_ingest_events_accepted_total");
    let applied = sum_of("marquee_processor_events_applied_total");
    assert!(accepted > 0.0, "{metrics}");
    assert!(
        applied > 0.0 && applied <= accepted,
        "{applied} of {accepted}"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_processor_applies_nothing_until_resumed_and_then_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let admin = format!("{base}/v1/admin/processor");

    for (body, field) in [
        (json!({"paused": "yes"}), "paused"),
        (json!({}), "paused"),
        (json!({"paused": true, "reason": "x"}), "reason"),
    ] {
        let (status, answer) = post_json(&admin, &body).await;
        assert_eq!(status, 422, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message}");
    }

    let (status, answer) = post_json(&admin, &json!({"paused": true})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["paused"], true);
    let events: Vec<Value> = (0..20)
        .map(|n| {
            json!({"event_id": format!("p-{n}"), "user_id": "patient", "item_id": format!("m{n}"),
                   "kind": "rating", "value": 5})
        })
        .collect();
    let (status, answer) = post_json(&format!("{base}/v1/events"), &Value::Array(events)).await;
    assert_eq!(status, 202, "{answer}");

    // Accepted and durable, not applied: the lag says so and the user is still unknown.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, status_answer) = get_json(&admin).await;
    assert_eq!(status_answer["lag_events"], 20, "{status_answer}");
    let (status, _) = get_json(&format!("{base}/v1/users/patient")).await;
    assert_eq!(status, 404);

    let (status, answer) = post_json(&admin, &json!({"paused": false})).await;
    assert_eq!(status, 200, "{answer}");
    caught_up(&node).await;
    let (status, user) = get_json(&format!("{base}/v1/users/patient")).await;
    assert_eq!(status, 200, "{user}");
    let (_, status_answer) = get_json(&admin).await;
    assert_eq!(status_answer["lag_events"], 0);
    assert_eq!(status_answer["paused"], false);
    node.shutdown().await.unwrap();
}

/// A state keeps the dimension of its vectors: a node whose configuration names none opens a
/// state of another (rank 32, the default before 2026-12-07) at that state's own and serves it;
/// one whose configuration names another is refused, with a message naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_keeps_its_vector_dimension_unless_the_configuration_names_another() {
    let dir = tempfile::tempdir().unwrap();
    let world = Synthetic::new(SyntheticConfig {
        seed: 5,
        users: 100,
        items: 300,
        clusters: 5,
        events: 5_000,
        ..SyntheticConfig::default()
    });
    let users: Vec<String> = (0..20).map(Synthetic::user_id).collect();
    let mut older = test_config(dir.path());
    older.model.dimension = 32;
    older.model_dimension_set = true;
    let node = start(older).await;
    load_world(&node, &world).await;
    let facts_before = user_facts(&node.url(), &users).await;
    node.shutdown().await.unwrap();

    // The default configuration names no dimension (its default is 64): the state's 32 holds.
    let defaults = test_config(dir.path());
    assert_ne!(defaults.model.dimension, 32);
    assert!(!defaults.model_dimension_set);
    let node = start(defaults).await;
    let services = node.services().unwrap();
    assert_eq!(services.items.read().dimension(), 32);
    assert_eq!(user_facts(&node.url(), &users).await, facts_before);
    let lists = recommendation_lists(&node.url(), &users).await;
    assert!(lists.iter().all(|list| list.len() == 10), "{lists:?}");
    node.shutdown().await.unwrap();

    // A configuration that names 64 is refused: the state would need a rebuild.
    let mut named = test_config(dir.path());
    named.model.dimension = 64;
    named.model_dimension_set = true;
    let node = marquee_node::RunningNode::start(named).await.unwrap();
    assert!(node.wait_ready().await.is_err());
    let refused = node.shutdown().await.unwrap_err().to_string();
    assert!(
        refused.contains("dimension 32") && refused.contains("asks for 64"),
        "{refused}"
    );
}
