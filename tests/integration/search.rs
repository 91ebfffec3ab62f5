//! Catalogue search (`GET /v1/search`, `GET /v1/search/suggest`) on a real node: relevance on
//! MovieLens titles (skipped with a printed reason where `../shared/datasets/ml-latest-small`
//! is absent), an upsert searchable at once, the index kept across a restart and rebuilt when
//! deleted, a viewer's taste ordering tied results, and refusals naming the parameter.

use crate::common;

use std::io::Write;
use std::path::Path;

use common::*;
use marquee_datasets::movielens;
use serde_json::{Value, json};

/// The fixture: (query, the movie ids it means, what it tests).
fn fixture() -> Vec<(String, Vec<String>, String)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search_queries.tsv"),
    )
    .expect("the query fixture");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "query, expected, what: {line:?}");
            let expected = fields[1].split('|').map(str::to_owned).collect();
            (fields[0].to_owned(), expected, fields[2].to_owned())
        })
        .collect()
}

fn search_url(base: &str, query: &str, extra: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("{base}/v1/search")).unwrap();
    url.query_pairs_mut().append_pair("q", query);
    format!("{url}{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movielens_titles_are_found_despite_typos_prefixes_accents_and_years() {
    let Some(dataset_dir) = movielens::shared_small_dataset() else {
        let _ = writeln!(
            std::io::stderr(),
            "movielens_titles_are_found_despite_typos_prefixes_accents_and_years: SKIPPED, \
             ml-latest-small not found (expected ../shared/datasets/ml-latest-small or \
             MARQUEE_MOVIELENS_DIR)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    crate::movielens_import::run_import(&dataset_dir, &base).await;
    caught_up(&node).await;

    let queries = fixture();
    assert!(queries.len() >= 30, "at least 30 queries");
    let (mut at_1, mut at_5, mut suggested) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for (query, expected, what) in &queries {
        let (status, answer) = get_json(&search_url(&base, query, "&count=5")).await;
        assert_eq!(status, 200, "{query}: {answer}");
        let found = item_ids(&answer);
        let rank = found.iter().position(|id| expected.contains(id));
        match rank {
            Some(0) => {
                at_1 += 1;
                at_5 += 1;
            }
            Some(_) => at_5 += 1,
            None => {}
        }
        if rank != Some(0) {
            misses.push(format!(
                "{query:?} ({what}): {found:?}, expected {expected:?}"
            ));
        }
        let mut url = reqwest::Url::parse(&format!("{base}/v1/search/suggest")).unwrap();
        url.query_pairs_mut().append_pair("q", query);
        let (status, suggestions) = get_json(url.as_str()).await;
        assert_eq!(status, 200, "{query}: {suggestions}");
        let first = suggestions["suggestions"][0]["item_id"].as_str();
        if first.is_some_and(|id| expected.iter().any(|e| e == id)) {
            suggested += 1;
        }
    }
    let share = |hits: usize| hits as f64 / queries.len() as f64;
    let _ = writeln!(
        std::io::stderr(),
        "search relevance on ml-latest-small, {} queries: hit rate at 1 {:.3}, at 5 {:.3}; \
         suggestions first {:.3}\nnot first:\n  {}",
        queries.len(),
        share(at_1),
        share(at_5),
        share(suggested),
        misses.join("\n  ")
    );
    assert!(share(at_5) >= 0.9, "hit rate at 5 below 0.9: {misses:#?}");

    // Facets count every match, not only those returned.
    let (_, answer) = get_json(&search_url(&base, "star wars", "&count=2")).await;
    assert_eq!(answer["items"].as_array().unwrap().len(), 2);
    let total = answer["total"].as_u64().unwrap();
    assert!(total > 2, "{answer}");
    let sci_fi = answer["facets"]["genres"]
        .as_array()
        .unwrap()
        .iter()
        .find(|facet| facet["value"] == "Sci-Fi")
        .expect("a Sci-Fi facet");
    assert!(sci_fi["count"].as_u64().unwrap() > 2, "{answer}");
    let decades: u64 = answer["facets"]["decades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|facet| facet["count"].as_u64().unwrap())
        .sum();
    assert_eq!(decades, total, "every match has a year here: {answer}");

    // Filters: a genre and a year range.
    let (_, answer) = get_json(&search_url(
        &base,
        "king kong",
        "&year_from=1970&year_to=1999&genre=romance",
    ))
    .await;
    assert_eq!(item_ids(&answer), ["2367"], "{answer}");
    node.shutdown().await.unwrap();
}

async fn put_item(base: &str, item: &Value) {
    let id = item["item_id"].as_str().unwrap();
    let response = http()
        .put(format!("{base}/v1/items/{id}"))
        .json(item)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The suggestions' item ids for `query`.
async fn suggested(base: &str, query: &str) -> Vec<String> {
    let mut url = reqwest::Url::parse(&format!("{base}/v1/search/suggest")).unwrap();
    url.query_pairs_mut().append_pair("q", query);
    let (status, answer) = get_json(url.as_str()).await;
    assert_eq!(status, 200, "{answer}");
    answer["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|found| found["item_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn found(base: &str, query: &str) -> Vec<String> {
    let (status, answer) = get_json(&search_url(base, query, "")).await;
    assert_eq!(status, 200, "{answer}");
    item_ids(&answer)
}

/// The index's commit record: it changes with every commit, so an equal one means no rebuild.
fn index_meta(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("search/meta.json")).expect("the search index's meta.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_is_searchable_at_once_kept_across_restarts_and_rebuilt_when_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    put_item(
        &base,
        &json!({"item_id": "m1", "title": "Zyzzogeton Nights", "genres": ["Drama"], "year": 1997}),
    )
    .await;
    // Stronger than "within a second": the upsert's answer comes after the index's commit.
    assert_eq!(found(&base, "zyzzogeton").await, ["m1"]);
    assert_eq!(suggested(&base, "zyzzogeton ni").await, ["m1"]);
    put_item(
        &base,
        &json!({"item_id": "m1", "title": "Quoxical Mornings", "genres": ["Drama"]}),
    )
    .await;
    assert!(found(&base, "zyzzogeton").await.is_empty());
    assert_eq!(found(&base, "quoxical morn").await, ["m1"]);
    assert!(suggested(&base, "zyzzogeton").await.is_empty());
    assert_eq!(
        suggested(&base, "quoxcal morn").await,
        ["m1"],
        "a typo and a prefix"
    );
    let (status, _) = post_json(
        &format!("{base}/v1/items"),
        &json!([
            {"item_id": "m2", "title": "Quoxical Evenings"},
            {"item_id": "m3", "title": "Other Things", "tags": ["quoxical"]},
        ]),
    )
    .await;
    assert_eq!(status, 200);
    // The title match weighs more than the tag match.
    assert_eq!(found(&base, "quoxical").await[2], "m3");
    // Suggestions read titles only.
    let mut titles = suggested(&base, "quoxical").await;
    titles.sort();
    assert_eq!(titles, ["m1", "m2"]);
    node.shutdown().await.unwrap();

    let before = index_meta(dir.path());
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    assert_eq!(found(&base, "quoxical morn").await, ["m1"]);
    // The titles suggestions read are built from the catalogue at start.
    assert_eq!(suggested(&base, "quoxical eve").await, ["m2"]);
    assert_eq!(
        index_meta(dir.path()),
        before,
        "a restart rebuilt the index"
    );
    node.shutdown().await.unwrap();

    std::fs::remove_dir_all(dir.path().join("search")).unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    assert_eq!(found(&base, "quoxical morn").await, ["m1"]);
    let metrics = get_text(&format!("{base}/metrics")).await;
    assert_eq!(metric_sample(&metrics, "marquee_search_documents"), 3.0);
    assert!(
        metric_sample(
            &metrics,
            "marquee_search_duration_seconds_count{route=\"search\"}"
        ) >= 1.0
    );
    let _ = found(&base, "nothing matches this").await;
    let metrics = get_text(&format!("{base}/metrics")).await;
    assert_eq!(
        metric_sample(&metrics, "marquee_search_empty_total{route=\"search\"}"),
        1.0
    );
    // A deleted item leaves the suggestions.
    assert_eq!(suggested(&base, "quoxical eve").await, ["m2"]);
    let response = http()
        .delete(format!("{base}/v1/items/m2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    // Nothing holds both words now: the word that matches alone, as a search retries.
    assert_eq!(suggested(&base, "quoxical eve").await, ["m1"]);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_s_taste_orders_results_of_equal_relevance() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.model.solve_every_events = 200;
    let node = start(config).await;
    let base = node.url();
    let mut catalogue = Vec::new();
    for genre in ["Horror", "Comedy"] {
        for k in 0..8 {
            catalogue.push(json!({"item_id": format!("{genre}-{k}"), "genres": [genre]}));
        }
        catalogue.push(json!({
            "item_id": format!("carnival-{genre}"),
            "title": "Midnight Carnival",
            "genres": [genre],
        }));
    }
    let (status, _) = post_json(&format!("{base}/v1/items"), &Value::Array(catalogue)).await;
    assert_eq!(status, 200);
    // Fans of each genre watch its films and its carnival; two viewers watch a few of one.
    let mut events = Vec::new();
    let mut add = |user: String, item: String| {
        let n = events.len() as i64;
        events.push(json!({
            "user_id": user, "item_id": item, "kind": "like", "timestamp": 1_700_000_000_000i64 + n,
        }));
    };
    for genre in ["Horror", "Comedy"] {
        for fan in 0..30 {
            for k in 0..8 {
                add(format!("{genre}-fan-{fan}"), format!("{genre}-{k}"));
            }
            add(format!("{genre}-fan-{fan}"), format!("carnival-{genre}"));
        }
        for k in 0..3 {
            add(format!("{genre}-viewer"), format!("{genre}-{k}"));
        }
    }
    let (status, answer) = post_json(&format!("{base}/v1/events"), &Value::Array(events)).await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    eventually("a solve of the item vectors", || async {
        let metrics = get_text(&format!("{base}/metrics")).await;
        (metric_sample(&metrics, "marquee_factor_solves_total") >= 1.0).then_some(())
    })
    .await;

    for genre in ["Horror", "Comedy"] {
        let (status, answer) = get_json(&search_url(
            &base,
            "midnight carnival",
            &format!("&user_id={genre}-viewer"),
        ))
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["personalised"], true, "{answer}");
        let items = item_ids(&answer);
        assert_eq!(items.len(), 2, "{answer}");
        assert_eq!(items[0], format!("carnival-{genre}"), "{answer}");
        assert_eq!(
            answer["items"][0]["relevance"], answer["items"][1]["relevance"],
            "equal text relevance: {answer}"
        );
    }
    // A viewer the model does not know: not personalised, and says so.
    let (_, answer) = get_json(&search_url(&base, "midnight carnival", "&user_id=stranger")).await;
    assert_eq!(answer["personalised"], false, "{answer}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_search_input_is_refused_naming_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let long = "a".repeat(257);
    for (url, parameter) in [
        (format!("{base}/v1/search?q="), "q"),
        (format!("{base}/v1/search?q=%20%20"), "q"),
        (format!("{base}/v1/search"), "q"),
        (format!("{base}/v1/search?q={long}"), "q"),
        (format!("{base}/v1/search?q=toy&colour=red"), "colour"),
        (
            format!("{base}/v1/search?q=toy&year_from=2000&year_to=1990"),
            "year_from",
        ),
        (format!("{base}/v1/search?q=toy&year_to=later"), "year_to"),
        (format!("{base}/v1/search?q=toy&count=0"), "count"),
        (format!("{base}/v1/search?q=toy&user_id="), "user_id"),
        (format!("{base}/v1/search?q=toy&user_id=a%01b"), "user_id"),
        (format!("{base}/v1/search/suggest?q="), "q"),
        (format!("{base}/v1/search/suggest?q=toy&genre=x"), "genre"),
        (format!("{base}/v1/search/suggest?q=toy&count=21"), "count"),
    ] {
        let (status, answer) = get_json(&url).await;
        assert_eq!(status, 400, "{url}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{parameter}: ")),
            "{url}: {message}"
        );
    }
    // 256 bytes is allowed.
    let (status, answer) = get_json(&format!("{base}/v1/search?q={}", "a".repeat(256))).await;
    assert_eq!(status, 200, "{answer}");
    node.shutdown().await.unwrap();
}
