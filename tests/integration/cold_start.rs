//! Cold start: a viewer with one to three events, and an item with only metadata.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// Posts events `(user, item, stars)` with increasing timestamps from `start` (seconds).
async fn rate(base: &str, ratings: &[(String, String, f64)], start: i64) {
    let events: Vec<Value> = ratings
        .iter()
        .enumerate()
        .map(|(k, (user, item, stars))| {
            json!({
                "event_id": format!("{user}-{item}"),
                "user_id": user,
                "item_id": item,
                "kind": "rating",
                "value": stars,
                "timestamp": (start + k as i64) * 1000,
            })
        })
        .collect();
    for chunk in events.chunks(1000) {
        let (status, answer) =
            post_json(&format!("{base}/v1/events"), &Value::Array(chunk.to_vec())).await;
        assert_eq!(status, 202, "{answer}");
    }
}

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|k| format!("{prefix}{k}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_with_a_few_events_gets_what_follows_them_not_the_popular_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // Its items are never catalogued.
    config.processor.catalogue_only = false;
    let node = start(config).await;
    let base = node.url();
    let popular = ids("popular-", 10);
    let sequel = ids("sequel-", 5);

    // Sixty viewers love the popular films; twenty watch "pilot" and then its sequels.
    let mut ratings = Vec::new();
    for viewer in 0..60 {
        for item in &popular {
            ratings.push((format!("crowd-{viewer}"), item.clone(), 5.0));
        }
    }
    for viewer in 0..20 {
        ratings.push((format!("binger-{viewer}"), "pilot".to_owned(), 5.0));
        for item in &sequel {
            ratings.push((format!("binger-{viewer}"), item.clone(), 4.5));
        }
    }
    rate(&base, &ratings, 1_600_000_000).await;
    caught_up(&node).await;

    let (_, trending) = get_json(&format!("{base}/v1/trending?count=5")).await;
    let trending = item_ids(&trending);
    assert!(
        trending.iter().all(|item| popular.contains(item)),
        "{trending:?}"
    );

    // One event: the pilot. Its list starts with the sequels, not the popular films.
    rate(
        &base,
        &[("newcomer".into(), "pilot".into(), 5.0)],
        1_700_000_000,
    )
    .await;
    caught_up(&node).await;
    let (status, answer) = get_json(&format!(
        "{base}/v1/users/newcomer/recommendations?count=10"
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["strategy"], "personalised", "{answer}");
    let list = item_ids(&answer);
    let mut head: Vec<String> = list[..5].to_vec();
    head.sort();
    assert_eq!(
        head, sequel,
        "the first five should be the sequels: {list:?}"
    );
    assert!(!list.contains(&"pilot".to_owned()));

    // Three events: still built from them, and the watched sequels are gone.
    rate(
        &base,
        &[
            ("newcomer".into(), sequel[0].clone(), 5.0),
            ("newcomer".into(), sequel[1].clone(), 5.0),
        ],
        1_700_000_100,
    )
    .await;
    caught_up(&node).await;
    let (_, answer) = get_json(&format!("{base}/v1/users/newcomer/recommendations?count=3")).await;
    assert_eq!(answer["strategy"], "personalised");
    let mut list = item_ids(&answer);
    list.sort();
    assert_eq!(list, sequel[2..].to_vec(), "{answer}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_item_with_only_metadata_reaches_viewers_of_its_genre() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let space = ids("space-", 6);
    let romance = ids("romance-", 6);
    let mut catalogue: Vec<Value> = Vec::new();
    for item in &space {
        catalogue.push(json!({"item_id": item, "genres": ["Sci-Fi"], "tags": ["space"]}));
    }
    for item in &romance {
        catalogue.push(json!({"item_id": item, "genres": ["Romance"]}));
    }
    let (status, answer) = post_json(&format!("{base}/v1/items"), &Value::Array(catalogue)).await;
    assert!(status < 300, "{answer}");

    let mut ratings = Vec::new();
    for viewer in 0..30 {
        let (user, items) = if viewer % 2 == 0 {
            (format!("astronaut-{viewer}"), &space)
        } else {
            (format!("romantic-{viewer}"), &romance)
        };
        for item in items {
            ratings.push((user.clone(), item.clone(), 5.0));
        }
    }
    rate(&base, &ratings, 1_600_000_000).await;

    // Two new releases nobody has watched yet: only their metadata is known.
    for (item, genre, tags) in [
        ("new-space-epic", "Sci-Fi", json!(["space"])),
        ("new-love-story", "Romance", json!([])),
    ] {
        let (status, answer) = crate::common::http()
            .put(format!("{base}/v1/items/{item}"))
            .json(&json!({"genres": [genre], "tags": tags}))
            .send()
            .await
            .map(|response| (response.status().as_u16(), ()))
            .unwrap();
        assert!(status < 300, "{answer:?}");
    }
    rate(
        &base,
        &[
            ("stargazer".into(), space[0].clone(), 5.0),
            ("stargazer".into(), space[1].clone(), 5.0),
        ],
        1_600_100_000,
    )
    .await;
    caught_up(&node).await;

    let (status, answer) = get_json(&format!(
        "{base}/v1/users/stargazer/recommendations?count=10"
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    let list = item_ids(&answer);
    let epic = list.iter().position(|item| item == "new-space-epic");
    assert!(
        epic.is_some(),
        "the new space film is not recommended: {list:?}"
    );
    if let Some(love) = list.iter().position(|item| item == "new-love-story") {
        assert!(love > epic.unwrap(), "{list:?}");
    }

    // "More like this" on the new film: films of its genre, not the romances (from the
    // trending list, which the processor refreshes once it is idle).
    let url = format!("{base}/v1/items/new-space-epic/similar?count=5");
    let similar = eventually("five similar items", || async {
        let (status, answer) = get_json(&url).await;
        assert_eq!(status, 200, "{answer}");
        let similar = item_ids(&answer);
        (similar.len() == 5).then_some(similar)
    })
    .await;
    assert!(
        similar.iter().all(|item| space.contains(item)),
        "{similar:?}"
    );

    // A viewer whose only event is on the new film: nothing co-occurs with it yet, so the list
    // comes from its genre and tag alone, and says so.
    rate(
        &base,
        &[("early-adopter".into(), "new-space-epic".into(), 5.0)],
        1_600_200_000,
    )
    .await;
    caught_up(&node).await;
    let (status, answer) = get_json(&format!(
        "{base}/v1/users/early-adopter/recommendations?count=5"
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["strategy"], "cold_start", "{answer}");
    let list = item_ids(&answer);
    assert!(list.iter().all(|item| space.contains(item)), "{list:?}");

    node.shutdown().await.unwrap();
}
