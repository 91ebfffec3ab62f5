//! The Rust SDK (`sdks/rust`) against a real `marquee serve` started by each test: batching by
//! size and by linger, idempotent retries across a server restart mid-stream (nothing lost,
//! nothing applied twice), back-off on 429 as `Retry-After` says, validation errors surfaced
//! and not retried, flush on close, the drop-oldest queue bound, and the typed queries.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, eventually, free_port, get_json, get_text, metric_sample};
use marquee_api::keys::{KeySet, Scope, keys_path};
use marquee_client::{
    Client, DeliveryError, Event, EventKind, Item, RecommendationOptions, SearchOptions,
    TrendingOptions,
};
use serde_json::Value;

/// Every delivery problem the client reported.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<DeliveryError>>>);

impl Reports {
    fn callback(&self) -> impl Fn(&DeliveryError) + Send + Sync + 'static {
        let reports = self.0.clone();
        move |problem: &DeliveryError| reports.lock().unwrap().push(problem.clone())
    }

    fn all(&self) -> Vec<DeliveryError> {
        self.0.lock().unwrap().clone()
    }
}

async fn started(data_dir: &Path, extra: &[&str]) -> Server {
    let mut server = Server::start_with(data_dir, free_port(), extra);
    server.ready().await;
    server
}

/// Successful `POST /v1/events` requests the server has answered.
async fn event_requests(url: &str) -> f64 {
    metric_sample(
        &get_text(&format!("{url}/metrics")).await,
        "marquee_http_request_duration_seconds_count{route=\"/v1/events\",status=\"2xx\"}",
    )
}

/// The ids of the events the processor applied for `user`, and its event count.
async fn applied(url: &str, user: &str, admin_key: Option<&str>) -> (BTreeSet<String>, u64) {
    let mut request = common::http().get(format!("{url}/v1/users/{user}/export"));
    if let Some(key) = admin_key {
        request = request.bearer_auth(key);
    }
    let export: Value = request.send().await.unwrap().json().await.unwrap();
    let ids = export["applied_events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|event| event["event_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (ids, export["state"]["event_count"].as_u64().unwrap_or(0))
}

async fn caught_up(url: &str, admin_key: Option<&str>) {
    eventually("the processor to catch up", || async {
        let mut request = common::http().get(format!("{url}/v1/admin/processor"));
        if let Some(key) = admin_key {
            request = request.bearer_auth(key);
        }
        let status: Value = request.send().await.ok()?.json().await.ok()?;
        (status["lag_events"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_in_full_batches_or_after_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let server = started(dir.path(), &[]).await;
    let before = event_requests(&server.url).await;

    // 500 events, batches of 100, a linger far longer than the test: five full batches.
    let client = Client::builder(&server.url)
        .batch_size(100)
        .linger(Duration::from_secs(3600))
        .build()
        .unwrap();
    for n in 0..500 {
        client
            .view(&format!("u{}", n % 7), &format!("m{n}"))
            .unwrap();
    }
    eventually("five full batches delivered", || async {
        (client.stats().delivered == 500).then_some(())
    })
    .await;
    assert_eq!(event_requests(&server.url).await - before, 5.0);
    assert_eq!(client.stats().pending, 0);

    // Three events do not fill a batch: the linger sends them, together, without a flush.
    let lingering = Client::builder(&server.url)
        .batch_size(100)
        .linger(Duration::from_millis(300))
        .build()
        .unwrap();
    for item in ["a", "b", "c"] {
        lingering.click("linger-user", item).unwrap();
    }
    eventually("the lingering batch delivered", || async {
        (lingering.stats().delivered == 3).then_some(())
    })
    .await;
    assert_eq!(event_requests(&server.url).await - before, 6.0);
    caught_up(&server.url, None).await;
    let (ids, count) = applied(&server.url, "linger-user", None).await;
    assert_eq!((ids.len(), count), (3, 3));
    client.close(Duration::from_secs(5)).await.unwrap();
    lingering.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_stream_loses_nothing_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(dir.path(), port);
    server.ready().await;
    let url = server.url.clone();
    let reports = Reports::default();
    let client = Client::builder(&url)
        .batch_size(50)
        .linger(Duration::from_millis(20))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .on_error(reports.callback())
        .build()
        .unwrap();

    // 3,000 events over 20 users at about 3,000/s; the server is killed (SIGKILL) a third of
    // the way in, while batches are being sent, and started again a second later.
    let users: Vec<String> = (0..20).map(|n| format!("viewer-{n}")).collect();
    let mut tracked: Vec<Event> = Vec::new();
    for n in 0..3_000 {
        let event = Event::new(
            EventKind::Rating,
            users[n % users.len()].clone(),
            format!("m{}", n % 211),
        )
        .with_value(1.0 + (n % 9) as f64 / 2.0);
        tracked.push(event.clone());
        client.track(event).unwrap();
        if n % 30 == 29 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if n == 1_000 {
            server.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            server = Server::start(dir.path(), port);
        }
    }
    server.ready().await;
    client.flush(Duration::from_secs(60)).await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.delivered, 3_000, "{stats:?}");
    assert_eq!((stats.rejected, stats.dropped), (0, 0), "{stats:?}");
    assert!(stats.retries >= 1, "the restart was not felt: {stats:?}");
    assert!(
        reports
            .all()
            .iter()
            .all(|problem| matches!(problem, DeliveryError::Retrying { .. })),
        "{:?}",
        reports.all()
    );

    caught_up(&url, None).await;
    for user in &users {
        let expected: BTreeSet<String> = tracked
            .iter()
            .filter(|event| &event.user_id == user)
            .map(|event| event.event_id.clone())
            .collect();
        let (ids, count) = applied(&url, user, None).await;
        assert_eq!(
            ids, expected,
            "{user}: applied ids differ from the tracked ones"
        );
        assert_eq!(
            count,
            expected.len() as u64,
            "{user}: an event counted twice"
        );
    }
    client.close(Duration::from_secs(5)).await.unwrap();
    server.stop();
}

/// A keys file with an admin key and an ingest key limited to `rate` requests per second.
fn keys(dir: &Path, rate: u32) -> (String, String) {
    let mut keys = KeySet::default();
    let (admin, _) = keys.create("ops", &[Scope::Admin], None).unwrap();
    let (ingest, _) = keys.create("app", &[Scope::Ingest], Some(rate)).unwrap();
    keys.save(&keys_path(dir)).unwrap();
    (admin, ingest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_client_waits_as_retry_after_says_and_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, ingest) = keys(dir.path(), 2);
    let config = dir.path().join("marquee.toml");
    std::fs::write(&config, "[limits]\nrate_burst_seconds = 1\n").unwrap();
    let server = started(
        dir.path(),
        &["--auth", "on", "--config", config.to_str().unwrap()],
    )
    .await;
    let reports = Reports::default();
    // One event per request at a key allowed 2 requests/s: 429s are certain.
    let client = Client::builder(&server.url)
        .api_key(&ingest)
        .batch_size(1)
        .linger(Duration::ZERO)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .on_error(reports.callback())
        .build()
        .unwrap();
    for n in 0..10 {
        client.like("limited", &format!("m{n}")).unwrap();
    }
    client.flush(Duration::from_secs(60)).await.unwrap();
    assert_eq!(client.stats().delivered, 10);

    let waits: Vec<(String, Duration)> = reports
        .all()
        .into_iter()
        .filter_map(|problem| match problem {
            DeliveryError::Retrying { cause, delay, .. } => Some((cause, delay)),
            _ => None,
        })
        .collect();
    assert!(!waits.is_empty(), "no 429 was met");
    for (cause, delay) in &waits {
        assert!(cause.starts_with("429 rate_limited"), "{cause}");
        // The server says `Retry-After: 1`; the backoff alone would have waited ≤ 20 ms.
        assert!(
            *delay >= Duration::from_secs(1),
            "{cause}: waited only {delay:?}"
        );
    }
    // Every 429 the server sent is one the client reported and waited out: no hidden retries.
    let metrics = get_text(&format!("{}/metrics", server.url)).await;
    let limited = metric_sample(
        &metrics,
        "marquee_http_requests_rejected_total{reason=\"rate_limit\"}",
    );
    assert_eq!(limited, waits.len() as f64);
    assert_eq!(client.stats().retries, waits.len() as u64);

    caught_up(&server.url, Some(&admin)).await;
    let (ids, count) = applied(&server.url, "limited", Some(&admin)).await;
    assert_eq!((ids.len(), count), (10, 10));
    client.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_reach_the_callback_with_the_servers_message_and_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, ingest) = keys(dir.path(), 1_000);
    let server = started(dir.path(), &["--auth", "on"]).await;
    let reports = Reports::default();
    let client = Client::builder(&server.url)
        .api_key(&ingest)
        .on_error(reports.callback())
        .build()
        .unwrap();
    client.rate("careful", "m1", 7.0).unwrap(); // stars out of range
    client.view("careful", "m2").unwrap();
    client.flush(Duration::from_secs(10)).await.unwrap();
    let stats = client.stats();
    assert_eq!(
        (stats.delivered, stats.rejected, stats.retries),
        (1, 1, 0),
        "{stats:?}"
    );
    match reports.all().as_slice() {
        [
            DeliveryError::Rejected {
                event,
                field,
                message,
            },
        ] => {
            assert_eq!(event.item_id, "m1");
            assert_eq!(field, "value");
            assert!(message.starts_with("value:"), "{message}");
        }
        other => panic!("expected one rejection, got {other:?}"),
    }

    // A key the server does not know: the whole batch is refused once, with the reason.
    let refused = Reports::default();
    let unknown = Client::builder(&server.url)
        .api_key("mq_00000000_0000")
        .on_error(refused.callback())
        .build()
        .unwrap();
    unknown.view("careful", "m3").unwrap();
    unknown.flush(Duration::from_secs(10)).await.unwrap();
    match refused.all().as_slice() {
        [
            DeliveryError::BatchRefused {
                status,
                message,
                events,
                ..
            },
        ] => {
            assert_eq!((*status, *events), (401, 1));
            assert!(message.starts_with("authorization:"), "{message}");
        }
        other => panic!("expected one refused batch, got {other:?}"),
    }
    assert_eq!(unknown.stats().retries, 0);

    // Queries with a key that may not read: the server's 403 as a typed error.
    let error = client
        .recommendations("careful", &RecommendationOptions::default())
        .await
        .unwrap_err();
    match error {
        marquee_client::Error::Api {
            status, message, ..
        } => {
            assert_eq!(status, 403);
            assert!(message.contains("needs read"), "{message}");
        }
        other => panic!("expected a 403, got {other}"),
    }
    caught_up(&server.url, Some(&admin)).await;
    let (ids, _) = applied(&server.url, "careful", Some(&admin)).await;
    assert_eq!(ids.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delivers_the_queue_and_then_refuses_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = started(dir.path(), &[]).await;
    // A linger of an hour: only the close sends these.
    let client = Client::builder(&server.url)
        .linger(Duration::from_secs(3600))
        .build()
        .unwrap();
    for n in 0..50 {
        client.watch("closing", &format!("m{n}"), 0.5).unwrap();
    }
    assert_eq!(client.stats().delivered, 0);
    client.close(Duration::from_secs(10)).await.unwrap();
    assert_eq!(client.stats().delivered, 50);
    assert!(client.view("closing", "late").is_err());
    caught_up(&server.url, None).await;
    let (ids, count) = applied(&server.url, "closing", None).await;
    assert_eq!((ids.len(), count), (50, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_server_the_queue_stays_bounded_by_dropping_the_oldest() {
    // Nothing listens on this port.
    let url = format!("http://127.0.0.1:{}", free_port());
    let reports = Reports::default();
    let client = Client::builder(&url)
        .batch_size(5)
        .queue_capacity(10)
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .on_error(reports.callback())
        .build()
        .unwrap();
    for n in 0..25 {
        client.view("offline", &format!("m{n}")).unwrap();
    }
    let stats = client.stats();
    // At most the queue and one batch in flight are held; everything else was dropped.
    assert!(stats.pending <= 15, "{stats:?}");
    assert_eq!(stats.dropped + stats.pending, 25, "{stats:?}");
    eventually("a retry against the absent server", || async {
        (client.stats().retries > 0).then_some(())
    })
    .await;
    // The callback hears of every drop (from the sender task, between attempts).
    eventually("every drop reported", || async {
        let reported: u64 = reports
            .all()
            .iter()
            .map(|problem| match problem {
                DeliveryError::Dropped { count } => *count,
                _ => 0,
            })
            .sum();
        (reported == stats.dropped).then_some(())
    })
    .await;
    // Closing gives up at its deadline and says how many were lost.
    let error = client.close(Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(error.pending, stats.pending);
    assert_eq!(client.stats().pending, 0);
    // Queries fail at once with a network error.
    let error = client
        .trending(&TrendingOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, marquee_client::Error::Network(_)),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_queries_and_catalogue_upserts() {
    let dir = tempfile::tempdir().unwrap();
    let server = started(dir.path(), &[]).await;
    let client = Client::builder(&server.url)
        .linger(Duration::from_millis(5))
        .build()
        .unwrap();
    let genre = |id: &str, genre: &str| Item {
        item_id: id.into(),
        title: Some(format!("Film {id}")),
        genres: vec![genre.into()],
        year: Some(1999),
        ..Item::default()
    };
    let items: Vec<Item> = (0..12)
        .map(|n| {
            genre(
                &format!("f{n}"),
                if n % 2 == 0 { "Drama" } else { "Comedy" },
            )
        })
        .collect();
    let upserted = client.upsert_items(&items).await.unwrap();
    assert_eq!((upserted.upserted, upserted.rejected.len()), (12, 0));
    assert_eq!(client.item("f3").await.unwrap(), items[3]);

    // Viewers who watch everything, so every film has neighbours; then one new viewer, whose
    // id needs percent-encoding, with a single rating.
    for viewer in 0..6 {
        for item in &items {
            client
                .rate(&format!("fan-{viewer}"), &item.item_id, 4.0)
                .unwrap();
        }
    }
    let newcomer = "new viewer/ü";
    client.rate(newcomer, "f0", 5.0).unwrap();
    client.flush(Duration::from_secs(10)).await.unwrap();
    caught_up(&server.url, None).await;

    let (status, _) = common::post_json(
        &format!("{}/v1/admin/experiments", server.url),
        &serde_json::json!({"name": "e1", "status": "running",
                            "variants": [{"name": "a", "share": 1.0}]}),
    )
    .await;
    assert_eq!(status, 201);
    let picks = eventually("recommendations for the newcomer", || async {
        let picks = client
            .recommendations(newcomer, &RecommendationOptions::default().count(5))
            .await
            .ok()?;
        (!picks.items.is_empty()).then_some(picks)
    })
    .await;
    assert_eq!(picks.user_id, newcomer);
    assert!(
        picks.items.iter().all(|pick| pick.item_id != "f0"),
        "seen items are left out"
    );
    assert!(picks.items.len() <= 5);
    assert_eq!(picks.experiments["e1"], "a");

    // The list shown, then a click on its second item: both name the list.
    client
        .impression(
            newcomer,
            &picks.recommendation_id,
            0..picks.items.len() as u32,
        )
        .unwrap();
    client
        .track(
            Event::new(EventKind::Click, newcomer, &picks.items[1].item_id)
                .from_list(&picks.recommendation_id, 1),
        )
        .unwrap();
    client.flush(Duration::from_secs(10)).await.unwrap();
    caught_up(&server.url, None).await;
    let (_, results) = get_json(&format!("{}/v1/admin/experiments/e1/results", server.url)).await;
    let group = &results["groups"][0];
    assert_eq!(
        (
            &group["impressions"],
            &group["clicked"],
            &group["click_positions"][1]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{results}"
    );

    let comedies = client
        .recommendations(
            newcomer,
            &RecommendationOptions::default()
                .genre("comedy")
                .exclude(["f1", "f3"]),
        )
        .await
        .unwrap();
    assert!(!comedies.items.is_empty());
    for pick in &comedies.items {
        assert_eq!(pick.genres, ["Comedy"], "{pick:?}");
        assert!(pick.item_id != "f1" && pick.item_id != "f3", "{pick:?}");
    }

    // A filter, then the next page of the same ranking with no repeat; a deleted item leaves.
    let first = client
        .recommendations(
            newcomer,
            &RecommendationOptions::default()
                .count(2)
                .filter("genres HAS \"Drama\" AND NOT item_id IN [\"f0\"]"),
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2, "{first:?}");
    assert!(first.items.iter().all(|item| item.genres == ["Drama"]));
    let token = first.next_page_token.clone().expect("a next page");
    let second = client
        .recommendations(
            newcomer,
            &RecommendationOptions::default()
                .count(2)
                .filter("genres HAS \"Drama\" AND NOT item_id IN [\"f0\"]")
                .page_token(token),
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2, "{second:?}");
    for item in &second.items {
        assert!(item.genres == ["Drama"] && item.item_id != "f0", "{item:?}");
        assert!(
            first
                .items
                .iter()
                .all(|shown| shown.item_id != item.item_id)
        );
    }
    let gone = &second.items[0].item_id;
    client.delete_item(gone).await.unwrap();
    let after = client
        .recommendations(newcomer, &RecommendationOptions::default().count(20))
        .await
        .unwrap();
    assert!(after.items.iter().all(|item| &item.item_id != gone));
    assert!(matches!(
        client.delete_item("no-such-item").await,
        Err(marquee_client::Error::Api { status: 404, .. })
    ));

    let similar = client.similar("f0", Some(3)).await.unwrap();
    assert!(!similar.is_empty() && similar.len() <= 3);
    assert!(similar.iter().all(|item| item.item_id != "f0"));
    let trending = client
        .trending(&TrendingOptions {
            count: Some(4),
            genre: Some("Drama".into()),
        })
        .await
        .unwrap();
    assert_eq!(trending.len(), 4);
    assert!(trending.iter().all(|item| item.genres == ["Drama"]));

    // Search: a typo, a genre filter and the facets; suggestions as a title is typed.
    let found = client
        .search(
            "filmm f7",
            &SearchOptions::default()
                .genre("comedy")
                .years(Some(1990), None),
        )
        .await
        .unwrap();
    assert_eq!(found.items[0].item_id, "f7", "{found:?}");
    assert!(found.items.iter().all(|item| item.genres == ["Comedy"]));
    assert_eq!(found.facets.genres[0].value, "Comedy");
    assert_eq!(found.facets.decades[0].value, 1990);
    assert!(!found.personalised);
    let suggestions = client.suggest("film f1", Some(3)).await.unwrap();
    assert_eq!(suggestions.len(), 3, "{suggestions:?}");
    assert!(
        suggestions
            .iter()
            .all(|s| s.title.as_deref().unwrap().starts_with("Film f1"))
    );

    // The server's validation message comes back as the error.
    let error = client
        .recommendations(newcomer, &RecommendationOptions::default().count(1_000))
        .await
        .unwrap_err();
    match error {
        marquee_client::Error::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((status, code.as_str()), (400, "invalid_parameter"));
            assert!(message.starts_with("count:"), "{message}");
        }
        other => panic!("expected a 400, got {other}"),
    }
    let (status, _) = get_json(&format!("{}/v1/items/f0", server.url)).await;
    assert_eq!(status, 200);
    client.close(Duration::from_secs(5)).await.unwrap();
}
