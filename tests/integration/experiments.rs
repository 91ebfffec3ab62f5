//! Experiments and flags on a real node: an A/B test over simulated viewers who click what
//! matches their taste (the personalised ranking against the popular list) and 200 A/A tests
//! over the same traffic (their false-positive rate), the same assignment on two nodes and
//! after a restart, flags (0%, 100%, an allow list, the kill switch), and bad input.

use crate::common;

use std::collections::HashMap;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const GENRES: usize = 8;
const ITEMS_PER_GENRE: usize = 30;
const VIEWERS: usize = 400;
const AA_TESTS: usize = 200;

fn taste(viewer: usize) -> usize {
    viewer % GENRES
}

fn genre_of(item_id: &str) -> usize {
    item_id[1..item_id.find('-').unwrap()].parse().unwrap()
}

/// A catalogue of 8 genres and viewers who each rated 6 films of their genre.
async fn seed(base: &str, rng: &mut ChaCha8Rng) {
    let items: Vec<Value> = (0..GENRES)
        .flat_map(|genre| {
            (0..ITEMS_PER_GENRE).map(move |k| {
                json!({"item_id": format!("g{genre}-m{k}"), "title": format!("Film {genre}/{k}"),
                       "genres": [format!("Genre{genre}")]})
            })
        })
        .collect();
    let (status, answer) = post_json(&format!("{base}/v1/items"), &json!(items)).await;
    assert_eq!(status, 200, "{answer}");
    let mut events = Vec::new();
    for viewer in 0..VIEWERS {
        for _ in 0..6 {
            let item = format!(
                "g{}-m{}",
                taste(viewer),
                rng.random_range(0..ITEMS_PER_GENRE)
            );
            events.push(
                json!({"user_id": format!("viewer-{viewer}"), "item_id": item,
                               "kind": "rating", "value": 5.0}),
            );
        }
    }
    let (status, answer) = post_json(&format!("{base}/v1/events"), &json!(events)).await;
    assert_eq!(status, 202, "{answer}");
}

async fn create(base: &str, body: Value) -> (u16, Value) {
    post_json(&format!("{base}/v1/admin/experiments"), &body).await
}

/// One round: every viewer gets a list, sees it all, and clicks each film of their genre with
/// probability 0.3 and any other with 0.02.
async fn round(base: &str, rng: &mut ChaCha8Rng) {
    let mut events = Vec::new();
    for viewer in 0..VIEWERS {
        let user = format!("viewer-{viewer}");
        let (status, list) =
            get_json(&format!("{base}/v1/users/{user}/recommendations?count=10")).await;
        assert_eq!(status, 200, "{list}");
        let id = list["recommendation_id"].as_str().unwrap().to_owned();
        let items = item_ids(&list);
        events.push(
            json!({"user_id": user, "kind": "impression", "recommendation_id": id,
                           "positions": (0..items.len()).collect::<Vec<_>>()}),
        );
        for (position, item) in items.iter().enumerate() {
            let chance = if genre_of(item) == taste(viewer) {
                0.3
            } else {
                0.02
            };
            if rng.random_bool(chance) {
                events.push(json!({"user_id": user, "item_id": item, "kind": "click",
                                   "recommendation_id": id, "position": position}));
            }
        }
    }
    let (status, answer) = post_json(&format!("{base}/v1/events"), &json!(events)).await;
    assert_eq!(status, 202, "{answer}");
}

fn group<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["name"] == name)
        .unwrap_or_else(|| panic!("no group {name} in {results}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_personalised_ranking_beats_the_popular_list_and_a_a_tests_stay_calibrated() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    seed(&base, &mut rng).await;
    caught_up(&node).await;

    let (status, answer) = create(
        &base,
        json!({"name": "ranking", "status": "running",
        "variants": [{"name": "personalised", "share": 0.5},
                     {"name": "popular", "share": 0.5, "config": {"strategy": "popular"}}]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    for test in 0..AA_TESTS {
        let (status, answer) = create(&base, json!({"name": format!("aa-{test}"),
            "status": "running", "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}))
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    for _ in 0..3 {
        round(&base, &mut rng).await;
        caught_up(&node).await;
    }

    let (status, results) = get_json(&format!("{base}/v1/admin/experiments/ranking/results")).await;
    assert_eq!(status, 200, "{results}");
    let personalised = group(&results, "personalised");
    let popular = group(&results, "popular");
    let ctr = |group: &Value| {
        group["click_through"]["estimate"]["value"]
            .as_f64()
            .unwrap()
    };
    let comparison = &popular["click_through"]["vs_control"];
    let p_value = comparison["p_value"].as_f64().unwrap();
    eprintln!(
        "A/B: personalised CTR {:.4} ({} users, {} lists), popular CTR {:.4} ({} users), \
         difference {:.4} [{:.4}, {:.4}], p = {p_value:.2e}",
        ctr(personalised),
        personalised["users"],
        personalised["impressions"],
        ctr(popular),
        popular["users"],
        comparison["difference"]["value"].as_f64().unwrap(),
        comparison["difference"]["low"].as_f64().unwrap(),
        comparison["difference"]["high"].as_f64().unwrap(),
    );
    assert!(ctr(personalised) > ctr(popular), "{results}");
    assert!(p_value < 0.01, "{results}");
    assert_eq!(
        personalised["users"].as_u64().unwrap() + popular["users"].as_u64().unwrap(),
        VIEWERS as u64
    );
    assert_eq!(
        personalised["impressions"].as_u64().unwrap() + popular["impressions"].as_u64().unwrap(),
        3 * VIEWERS as u64
    );
    assert_eq!(results["sample_ratio"]["mismatch"], false, "{results}");
    let positions: u64 = personalised["click_positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|count| count.as_u64().unwrap())
        .sum();
    assert_eq!(positions, personalised["clicked"].as_u64().unwrap());

    let mut significant = 0;
    for test in 0..AA_TESTS {
        let (status, results) =
            get_json(&format!("{base}/v1/admin/experiments/aa-{test}/results")).await;
        assert_eq!(status, 200, "{results}");
        let p = group(&results, "b")["click_through"]["vs_control"]["p_value"]
            .as_f64()
            .unwrap();
        significant += usize::from(p < 0.05);
    }
    let rate = significant as f64 / AA_TESTS as f64;
    eprintln!("A/A: {significant} of {AA_TESTS} tests significant at p < 0.05 (rate {rate:.3})");
    // A calibrated test is significant 5% of the time; 200 tests put 95% of outcomes within
    // about ±3 points of that.
    assert!((0.01..=0.10).contains(&rate), "false-positive rate {rate}");

    // Attribution is state: a restart keeps it exactly.
    node.shutdown().await.unwrap();
    let node = start(test_config(dir.path())).await;
    let (_, after) = get_json(&format!(
        "{}/v1/admin/experiments/ranking/results",
        node.url()
    ))
    .await;
    assert_eq!(after, results, "the results after a restart");
    node.shutdown().await.unwrap();

    // And a replay rebuilds them from the log's impressions and clicks.
    let rebuilt = dir.path().join("rebuilt");
    crate::replay::replay(dir.path(), &rebuilt, &[]);
    std::fs::rename(dir.path().join("state"), dir.path().join("old-state")).unwrap();
    std::fs::rename(rebuilt.join("state"), dir.path().join("state")).unwrap();
    let node = start(test_config(dir.path())).await;
    let (_, replayed) = get_json(&format!(
        "{}/v1/admin/experiments/ranking/results",
        node.url()
    ))
    .await;
    assert_eq!(replayed, results, "the results after a replay");
    node.shutdown().await.unwrap();
}

async fn assignments(base: &str, users: usize) -> HashMap<String, Value> {
    let mut found = HashMap::new();
    for user in 0..users {
        let id = format!("user-{user}");
        let (status, answer) = get_json(&format!("{base}/v1/users/{id}/assignments")).await;
        assert_eq!(status, 200, "{answer}");
        found.insert(id, answer);
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_a_restart_assign_every_user_alike() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = start(test_config(one.path())).await;
    let second = start(test_config(two.path())).await;
    let definition = json!({"name": "e1", "status": "running", "holdout": 0.2,
        "variants": [{"name": "a", "share": 0.4}, {"name": "b", "share": 0.4}]});
    for node in [&first, &second] {
        let (status, answer) = create(&node.url(), definition.clone()).await;
        assert_eq!(status, 201, "{answer}");
    }
    let on_first = assignments(&first.url(), 300).await;
    assert_eq!(on_first, assignments(&second.url(), 300).await);
    let groups: std::collections::HashSet<String> = on_first
        .values()
        .map(|answer| answer["experiments"]["e1"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(groups.len(), 3, "a, b and the holdout: {groups:?}");
    first.shutdown().await.unwrap();
    let first = start(test_config(one.path())).await;
    assert_eq!(on_first, assignments(&first.url(), 300).await);
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_roll_out_by_percentage_allow_list_and_kill_switch() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let (status, _) = post_json(
        &format!("{base}/v1/items"),
        &json!([{"item_id": "m1", "genres": ["Drama"]}, {"item_id": "m2", "genres": ["Drama"]},
                {"item_id": "m3", "genres": ["Drama"]}]),
    )
    .await;
    assert_eq!(status, 200);
    let mut events = Vec::new();
    for user in 0..20 {
        events.push(json!({"user_id": format!("u{user}"), "item_id": "m1", "kind": "like"}));
        events.push(json!({"user_id": format!("u{user}"), "item_id": "m2", "kind": "like"}));
    }
    assert_eq!(
        post_json(&format!("{base}/v1/events"), &json!(events))
            .await
            .0,
        202
    );
    caught_up(&node).await;
    let strategy = |user: &'static str| {
        let base = base.clone();
        async move {
            let (_, list) = get_json(&format!("{base}/v1/users/{user}/recommendations")).await;
            (
                list["strategy"].as_str().unwrap().to_owned(),
                list["flags"].clone(),
            )
        }
    };
    // Not the popular list (the user's likes rank the rest) until a flag says so.
    assert_ne!(strategy("u1").await.0, "popular");

    let flag = |percent: f64, enabled: bool| {
        json!({"name": "popular-lists", "rollout_percent": percent, "enabled": enabled,
               "allow": ["u1"], "config": {"strategy": "popular"}})
    };
    let (status, answer) = post_json(&format!("{base}/v1/admin/flags"), &flag(0.0, true)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        strategy("u1").await,
        ("popular".into(), json!(["popular-lists"]))
    );
    let (u2, u2_flags) = strategy("u2").await;
    assert_ne!(u2, "popular");
    assert_eq!(u2_flags, json!([]));

    let put = |body: Value| {
        let base = base.clone();
        async move {
            http()
                .put(format!("{base}/v1/admin/flags/popular-lists"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(put(flag(100.0, true)).await, 200);
    assert_eq!(strategy("u2").await.0, "popular");
    for user in 0..20 {
        let (_, answer) = get_json(&format!("{base}/v1/users/u{user}/assignments")).await;
        assert_eq!(answer["flags"]["popular-lists"], true, "{answer}");
    }
    // The kill switch: off for everyone, the allow list too, from the next request.
    assert_eq!(put(flag(100.0, false)).await, 200);
    let (u1, u1_flags) = strategy("u1").await;
    assert_ne!(u1, "popular");
    assert_eq!(u1_flags, json!([]));
    assert_ne!(strategy("u2").await.0, "popular");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_refused_naming_the_field_and_unknown_lists_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let (status, _) = create(
        &base,
        json!({"name": "e1", "variants": [{"name": "a", "share": 1.0}]}),
    )
    .await;
    assert_eq!(status, 201);
    let refused = [
        (
            json!({"name": "e2", "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.3}]}),
            "variants:",
        ),
        (
            json!({"name": "e2", "variants": [{"name": "a", "share": 0.5}, {"name": "b", "shar": 0.5}]}),
            "variants[1].shar:",
        ),
        (
            json!({"name": "e1", "variants": [{"name": "a", "share": 1.0}]}),
            "name:",
        ),
        (
            json!({"name": "e2", "variants": [{"name": "a", "share": 1.0, "config": {"pair_history": 0}}]}),
            "variants[0].config.pair_history:",
        ),
        (
            json!({"name": "e2", "variants": [{"name": "a", "share": 1.0}], "control": "z"}),
            "control:",
        ),
        (
            json!({"name": "e2", "variants": [{"name": "holdout", "share": 1.0}]}),
            "variants[0].name:",
        ),
        (json!({"name": "e2"}), "body: missing field `variants`"),
    ];
    for (body, field) in refused {
        let (status, answer) = create(&base, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let (status, _) = get_json(&format!("{base}/v1/admin/experiments/nope/results")).await;
    assert_eq!(status, 404);

    // An impression of a list no node served is accepted, and counted as unattributed.
    let (status, answer) = post_json(
        &format!("{base}/v1/events"),
        &json!([{"user_id": "u1", "kind": "impression", "recommendation_id": "r-made-up",
                 "positions": [0, 1]}]),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    // Another user's list is as unknown.
    let (_, list) = get_json(&format!("{base}/v1/users/u2/recommendations")).await;
    let (status, _) = post_json(
        &format!("{base}/v1/events"),
        &json!([{"user_id": "u1", "kind": "impression",
                 "recommendation_id": list["recommendation_id"], "positions": [0]}]),
    )
    .await;
    assert_eq!(status, 202);
    caught_up(&node).await;
    let metrics = get_text(&format!("{base}/metrics")).await;
    assert_eq!(
        metric_sample(
            &metrics,
            "marquee_unattributed_events_total{kind=\"impression\",reason=\"unknown_list\"}"
        ),
        2.0
    );
    let (status, user) = get_json(&format!("{base}/v1/users/u1")).await;
    assert_eq!(
        status, 404,
        "an impression teaches the model nothing: {user}"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_leaves_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let (status, _) = create(
        &base,
        json!({"name": "e1", "status": "running", "variants": [{"name": "a", "share": 1.0}]}),
    )
    .await;
    assert_eq!(status, 201);
    for user in ["u1", "u2"] {
        let (_, list) = get_json(&format!("{base}/v1/users/{user}/recommendations")).await;
        let (status, _) = post_json(
            &format!("{base}/v1/events"),
            &json!([{"user_id": user, "kind": "impression",
                     "recommendation_id": list["recommendation_id"], "positions": [0]},
                    {"user_id": user, "item_id": "m1", "kind": "like"}]),
        )
        .await;
        assert_eq!(status, 202);
    }
    caught_up(&node).await;
    let users = || async {
        let (_, results) = get_json(&format!("{base}/v1/admin/experiments/e1/results")).await;
        group(&results, "a")["users"].as_u64().unwrap()
    };
    assert_eq!(users().await, 2);
    let status = http()
        .delete(format!("{base}/v1/users/u1"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(users().await, 1);
    node.shutdown().await.unwrap();
}
