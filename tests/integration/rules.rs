//! The catalogue's rules on a real node with a manual clock: licence windows, hidden and
//! deleted items (across a restart and a replay), custom properties and their schema, filter
//! expressions (a property test against a reference evaluator of the test's own), saved
//! filters, paging without repeats, campaigns (boosts and pins in their windows) and the
//! per-genre limit.

use crate::common;

use std::collections::HashSet;

use common::*;
use marquee_schemas::Clock;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const GENRES: usize = 4;
const ITEMS_PER_GENRE: usize = 25;
const VIEWERS: usize = 160;
/// The manual clock's start (the rules read it; events keep the server's time).
const T0: i64 = 1_900_000_000_000;

fn item_id(genre: usize, k: usize) -> String {
    format!("g{genre}-m{k}")
}

/// The catalogue: genre `Genre{g}`, year 1980 + k, `regions` (fr for even k, de for odd,
/// both for multiples of 5), `rating` k % 10, `kids` for genre 0.
fn catalogue() -> Vec<Value> {
    (0..GENRES)
        .flat_map(|genre| {
            (0..ITEMS_PER_GENRE).map(move |k| {
                let regions = match (k % 5, k % 2) {
                    (0, _) => json!(["fr", "de"]),
                    (_, 0) => json!(["fr"]),
                    _ => json!(["de"]),
                };
                json!({
                    "item_id": item_id(genre, k),
                    "title": format!("Picture {genre} number {k}"),
                    "genres": [format!("Genre{genre}")],
                    "year": 1980 + k,
                    "tags": if k % 3 == 0 { json!(["classic"]) } else { json!([]) },
                    "properties": {"regions": regions, "rating": (k % 10) as f64, "kids": genre == 0}
                })
            })
        })
        .collect()
}

async fn put(url: &str, body: &Value) -> (u16, Value) {
    let response = http()
        .put(url)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn delete(url: &str) -> u16 {
    http()
        .delete(url)
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

/// A node with the manual clock at `T0`, the properties declared, the catalogue, and viewers
/// who each watch a few items of their genre (and a few of all genres).
async fn seeded(dir: &std::path::Path, clock: &Clock) -> marquee_node::RunningNode {
    let mut config = test_config(dir);
    config.processor.clock = clock.clone();
    let node = start(config).await;
    let base = node.url();
    let (status, answer) = put(
        &format!("{base}/v1/admin/properties"),
        &json!({"properties": {"regions": "list", "rating": "number", "kids": "boolean"}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_json(&format!("{base}/v1/items"), &json!(catalogue())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["upserted"], GENRES * ITEMS_PER_GENRE, "{answer}");
    let mut rng = ChaCha8Rng::seed_from_u64(26);
    let mut events = Vec::new();
    for viewer in 0..VIEWERS {
        let genre = viewer % GENRES;
        for _ in 0..8 {
            let k = rng.random_range(0..ITEMS_PER_GENRE);
            events.push(
                json!({"user_id": format!("v{viewer}"), "item_id": item_id(genre, k),
                               "kind": "like"}),
            );
        }
        let other = rng.random_range(0..GENRES);
        events.push(json!({"user_id": format!("v{viewer}"),
                           "item_id": item_id(other, rng.random_range(0..ITEMS_PER_GENRE)),
                           "kind": "view"}));
    }
    let (status, answer) = post_json(&format!("{base}/v1/events"), &json!(events)).await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    node
}

/// Every list an item can appear in, for one item: whether `item` is in trending, in a new
/// viewer's recommendations, in a genre viewer's recommendations, in the items similar to a
/// neighbour of the same genre, and found by its title.
async fn places(base: &str, item: &str, genre: usize) -> Vec<(&'static str, bool)> {
    let has = |answer: &Value| item_ids(answer).iter().any(|id| id == item);
    let (_, trending) = get_json(&format!("{base}/v1/trending?count=100")).await;
    let (_, newcomer) = get_json(&format!(
        "{base}/v1/users/newcomer/recommendations?count=100"
    ))
    .await;
    let (_, viewer) = get_json(&format!(
        "{base}/v1/users/v{genre}/recommendations?count=100&exclude_seen=false"
    ))
    .await;
    let neighbour = if item == item_id(genre, 0) {
        item_id(genre, 1)
    } else {
        item_id(genre, 0)
    };
    let (_, similar) = get_json(&format!("{base}/v1/items/{neighbour}/similar?count=100")).await;
    let k: usize = item[item.find("-m").unwrap() + 2..].parse().unwrap();
    let (_, search) = get_json(&format!(
        "{base}/v1/search?q=picture+{genre}+number+{k}&count=5"
    ))
    .await;
    vec![
        ("trending", has(&trending)),
        ("recommendations of a newcomer", has(&newcomer)),
        ("recommendations of a viewer of its genre", has(&viewer)),
        ("similar items", has(&similar)),
        ("search", has(&search)),
    ]
}

fn assert_everywhere(places: &[(&str, bool)], expected: bool, what: &str) {
    for (place, found) in places {
        assert_eq!(*found, expected, "{what}: {place}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licence_windows_open_and_close_with_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let node = seeded(dir.path(), &clock).await;
    let base = node.url();
    // Two of the most watched items of genre 1: one whose window opens at T0 + 10 s, one whose
    // window closes then.
    let late = item_id(1, 2);
    let ending = item_id(1, 3);
    for (id, window) in [
        (
            &late,
            json!({"available_from": T0 + 10_000, "available_until": T0 + 20_000}),
        ),
        (&ending, json!({"available_until": T0 + 10_000})),
    ] {
        let mut item = catalogue()
            .into_iter()
            .find(|item| item["item_id"] == **id)
            .unwrap();
        item.as_object_mut()
            .unwrap()
            .extend(window.as_object().unwrap().clone());
        let (status, answer) = put(&format!("{base}/v1/items/{id}"), &item).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_everywhere(&places(&base, &late, 1).await, false, "before its window");
    assert_everywhere(&places(&base, &ending, 1).await, true, "inside its window");
    let (_, view) = get_json(&format!("{base}/v1/items/{late}")).await;
    assert_eq!(view["available"], false, "{view}");

    clock.set(T0 + 10_000);
    assert_everywhere(
        &places(&base, &late, 1).await,
        true,
        "from its window's start",
    );
    assert_everywhere(
        &places(&base, &ending, 1).await,
        false,
        "from its window's end",
    );

    clock.set(T0 + 20_000);
    assert_everywhere(&places(&base, &late, 1).await, false, "after its window");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_hidden_items_stay_out_across_a_restart_and_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let node = seeded(dir.path(), &clock).await;
    let base = node.url();
    let deleted = item_id(2, 4);
    let hidden = item_id(2, 5);
    assert_everywhere(
        &places(&base, &deleted, 2).await,
        true,
        "before the deletion",
    );
    assert_eq!(delete(&format!("{base}/v1/items/{deleted}")).await, 204);
    assert_eq!(delete(&format!("{base}/v1/items/never-seen")).await, 404);
    let mut item = catalogue()
        .into_iter()
        .find(|item| item["item_id"] == hidden)
        .unwrap();
    item["hidden"] = json!(true);
    let (status, answer) = put(&format!("{base}/v1/items/{hidden}"), &item).await;
    assert_eq!(status, 200, "{answer}");
    let check = |base: String, what: &'static str| {
        let (deleted, hidden) = (deleted.clone(), hidden.clone());
        async move {
            assert_everywhere(&places(&base, &deleted, 2).await, false, what);
            assert_everywhere(&places(&base, &hidden, 2).await, false, what);
            let (status, _) = get_json(&format!("{base}/v1/items/{deleted}")).await;
            assert_eq!(status, 404, "{what}: the deleted item's page");
            let (status, _) = get_json(&format!("{base}/v1/items/{deleted}/similar")).await;
            assert_eq!(status, 404, "{what}: the deleted item's similar items");
        }
    };
    check(base.clone(), "after the deletion").await;
    node.shutdown().await.unwrap();

    let mut config = test_config(dir.path());
    config.processor.clock = clock.clone();
    let node = start(config).await;
    check(node.url(), "after a restart").await;
    node.shutdown().await.unwrap();

    let rebuilt = tempfile::tempdir().unwrap();
    let rebuilt = rebuilt.path().join("state");
    crate::replay::replay(dir.path(), &rebuilt, &[]);
    let mut config = test_config(&rebuilt);
    config.processor.clock = clock.clone();
    let node = start(config).await;
    check(node.url(), "after a replay").await;
    // An upsert brings the deleted item back.
    let item = catalogue()
        .into_iter()
        .find(|item| item["item_id"] == deleted)
        .unwrap();
    let (status, _) = put(&format!("{}/v1/items/{deleted}", node.url()), &item).await;
    assert_eq!(status, 200);
    assert_everywhere(
        &places(&node.url(), &deleted, 2).await,
        true,
        "upserted again",
    );
    node.shutdown().await.unwrap();
}

/// A filter expression of the test's own: rendered as text for the node, evaluated here on the
/// catalogue's JSON, item by item.
#[derive(Debug, Clone)]
enum Expr {
    GenreHas(usize),
    TagHas(&'static str),
    Year(&'static str, i64),
    RegionHas(&'static str),
    Rating(&'static str, i64),
    Kids(bool),
    GenresIn(Vec<usize>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn random(rng: &mut ChaCha8Rng, depth: usize) -> Expr {
        let ops = ["<", "<=", ">", ">=", "=", "!="];
        match rng.random_range(0..if depth == 0 { 7 } else { 10 }) {
            0 => Expr::GenreHas(rng.random_range(0..GENRES)),
            1 => Expr::TagHas("classic"),
            2 => Expr::Year(ops[rng.random_range(0..6)], 1980 + rng.random_range(0..25)),
            3 => Expr::RegionHas(["fr", "de"][rng.random_range(0..2)]),
            4 => Expr::Rating(ops[rng.random_range(0..6)], rng.random_range(0..10)),
            5 => Expr::Kids(rng.random_bool(0.5)),
            6 => Expr::GenresIn(vec![
                rng.random_range(0..GENRES),
                rng.random_range(0..GENRES),
            ]),
            7 => Expr::Not(Box::new(Expr::random(rng, depth - 1))),
            8 => Expr::And(
                Box::new(Expr::random(rng, depth - 1)),
                Box::new(Expr::random(rng, depth - 1)),
            ),
            _ => Expr::Or(
                Box::new(Expr::random(rng, depth - 1)),
                Box::new(Expr::random(rng, depth - 1)),
            ),
        }
    }

    fn text(&self) -> String {
        match self {
            Expr::GenreHas(g) => format!("genres HAS \"genre{g}\""),
            Expr::TagHas(tag) => format!("tags has \"{tag}\""),
            Expr::Year(op, year) => format!("year {op} {year}"),
            Expr::RegionHas(region) => format!("regions HAS \"{region}\""),
            Expr::Rating(op, rating) => format!("rating {op} {rating}"),
            Expr::Kids(kids) => format!("kids = {kids}"),
            Expr::GenresIn(genres) => format!(
                "genres IN [{}]",
                genres
                    .iter()
                    .map(|g| format!("\"Genre{g}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Expr::Not(inner) => format!("NOT ({})", inner.text()),
            Expr::And(a, b) => format!("({}) AND ({})", a.text(), b.text()),
            Expr::Or(a, b) => format!("({}) or ({})", a.text(), b.text()),
        }
    }

    fn eval(&self, item: &Value) -> bool {
        let compare = |op: &str, left: f64, right: f64| match op {
            "<" => left < right,
            "<=" => left <= right,
            ">" => left > right,
            ">=" => left >= right,
            "=" => left == right,
            _ => left != right,
        };
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|v| v.as_str().unwrap().to_lowercase())
                        .collect()
                })
                .unwrap_or_default()
        };
        match self {
            Expr::GenreHas(g) => strings(&item["genres"]).contains(&format!("genre{g}")),
            Expr::TagHas(tag) => strings(&item["tags"]).contains(&(*tag).to_owned()),
            Expr::Year(op, year) => compare(op, item["year"].as_f64().unwrap(), *year as f64),
            Expr::RegionHas(region) => {
                strings(&item["properties"]["regions"]).contains(&(*region).to_owned())
            }
            Expr::Rating(op, rating) => compare(
                op,
                item["properties"]["rating"].as_f64().unwrap(),
                *rating as f64,
            ),
            Expr::Kids(kids) => item["properties"]["kids"].as_bool().unwrap() == *kids,
            Expr::GenresIn(genres) => genres
                .iter()
                .any(|g| strings(&item["genres"]).contains(&format!("genre{g}"))),
            Expr::Not(inner) => !inner.eval(item),
            Expr::And(a, b) => a.eval(item) && b.eval(item),
            Expr::Or(a, b) => a.eval(item) || b.eval(item),
        }
    }
}

fn filter_url(base: &str, path: &str, filter: &str, extra: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
    url.query_pairs_mut().append_pair("filter", filter);
    format!("{url}{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_keeps_the_rankings_order_of_what_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let node = seeded(dir.path(), &clock).await;
    let base = node.url();
    let by_id: std::collections::HashMap<String, Value> = catalogue()
        .into_iter()
        .map(|item| (item["item_id"].as_str().unwrap().to_owned(), item))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(637);
    let lists = [
        "/v1/users/v1/recommendations",
        "/v1/users/v6/recommendations",
        "/v1/users/newcomer/recommendations",
        "/v1/items/g3-m7/similar",
        "/v1/trending",
    ];
    let mut checked = 0;
    for case in 0..60 {
        let expr = Expr::random(&mut rng, 3);
        let path = lists[case % lists.len()];
        let (status, whole) = get_json(&format!("{base}{path}?count=100")).await;
        assert_eq!(status, 200, "{whole}");
        let kept: Vec<String> = item_ids(&whole)
            .into_iter()
            .filter(|id| expr.eval(&by_id[id]))
            .collect();
        let (status, filtered) =
            get_json(&filter_url(&base, path, &expr.text(), "&count=10")).await;
        assert_eq!(status, 200, "{} on {path}: {filtered}", expr.text());
        let filtered = item_ids(&filtered);
        for id in &filtered {
            assert!(expr.eval(&by_id[id]), "{} kept {id} on {path}", expr.text());
        }
        let n = kept.len().min(10);
        assert_eq!(
            filtered[..n.min(filtered.len())],
            kept[..n],
            "{} on {path}: the filtered list is the ranking's kept items, in order",
            expr.text()
        );
        if n == 10 {
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} cases had 10 kept items");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_saved_filters_and_request_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let node = seeded(dir.path(), &clock).await;
    let base = node.url();
    // The schema is enforced on upserts, naming the property.
    let (status, answer) = put(
        &format!("{base}/v1/items/x1"),
        &json!({"item_id": "x1", "properties": {"studio": "A24"}}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("properties.studio: is not declared"),
        "{answer}"
    );
    let (status, answer) = put(
        &format!("{base}/v1/items/x1"),
        &json!({"item_id": "x1", "properties": {"rating": "high"}}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"]["message"], "properties.rating: is declared number",
        "{answer}"
    );
    // `$region` reads the request's region.
    let (status, answer) = get_json(&filter_url(
        &base,
        "/v1/trending",
        "regions HAS $region",
        "&count=100&region=de",
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    let ids = item_ids(&answer);
    assert!(!ids.is_empty());
    for id in &ids {
        let k: usize = id[id.find("-m").unwrap() + 2..].parse().unwrap();
        assert!(
            !k.is_multiple_of(2) || k.is_multiple_of(5),
            "{id} is not available in de"
        );
    }
    // A saved filter, named with @, composes with the rest.
    let (status, answer) = put(
        &format!("{base}/v1/admin/filters/family"),
        &json!({"expression": "kids = true AND regions HAS $region", "description": "kids"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = get_json(&filter_url(
        &base,
        "/v1/users/v2/recommendations",
        "@family AND year >= 1990",
        "&count=20&region=fr",
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(!item_ids(&answer).is_empty());
    for item in answer["items"].as_array().unwrap() {
        assert_eq!(item["genres"][0], "Genre0", "{item}");
        assert!(item["year"].as_i64().unwrap() >= 1990, "{item}");
    }
    // Search takes the same filters.
    let (status, answer) = get_json(&filter_url(
        &base,
        "/v1/search",
        "@family",
        "&q=picture&count=20&region=de",
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(!item_ids(&answer).is_empty(), "{answer}");
    for id in item_ids(&answer) {
        let k: usize = id[id.find("-m").unwrap() + 2..].parse().unwrap();
        assert!(id.starts_with("g0-"), "{id} is not a kids' item");
        assert!(
            !k.is_multiple_of(2) || k.is_multiple_of(5),
            "{id} is not available in de"
        );
    }
    // Mistakes say where.
    for (filter, extra, expected) in [
        (
            "year >= ",
            "",
            "filter: at character 9: expected a value, found the end",
        ),
        (
            "year >= \"x\"",
            "",
            "filter: at character 9: year >= needs a number, found a string",
        ),
        (
            "studio = \"A24\"",
            "",
            "filter: at character 1: unknown field \"studio\"",
        ),
        (
            "genres = \"Drama\"",
            "",
            "filter: at character 8: genres is a list: use HAS or IN",
        ),
        (
            "regions HAS $region",
            "",
            "filter: at character 13: $region needs the request's region parameter",
        ),
        (
            "@nothing",
            "",
            "filter: at character 1: no saved filter \"nothing\"",
        ),
        (
            "(year > 1990",
            "",
            "filter: at character 13: expected \")\", found the end",
        ),
        (
            "year > 1990 year",
            "",
            "filter: at character 13: unexpected \"year\"",
        ),
    ] {
        let (status, answer) = get_json(&filter_url(&base, "/v1/trending", filter, extra)).await;
        assert_eq!(status, 400, "{filter}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{filter}: {message}");
    }
    let (status, answer) = put(
        &format!("{base}/v1/admin/filters/broken"),
        &json!({"expression": "year >> 3"}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("expression: at character 7"),
        "{answer}"
    );
    node.shutdown().await.unwrap();
}

/// Follows `next_page_token` for `pages` pages of 10 of `path`.
async fn pages(base: &str, path: &str, pages: usize) -> Vec<String> {
    let mut shown = Vec::new();
    let mut token: Option<String> = None;
    for page in 0..pages {
        let mut url = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
        url.query_pairs_mut().append_pair("count", "10");
        if let Some(token) = &token {
            url.query_pairs_mut().append_pair("page_token", token);
        }
        let (status, answer) = get_json(url.as_str()).await;
        assert_eq!(status, 200, "page {page}: {answer}");
        assert_eq!(item_ids(&answer).len(), 10, "page {page}: {answer}");
        shown.extend(item_ids(&answer));
        token = answer["next_page_token"].as_str().map(str::to_owned);
        assert!(
            token.is_some() || page == pages - 1,
            "page {page}: no token"
        );
    }
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_pages_of_ten_are_one_ranking_of_a_hundred() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let node = seeded(dir.path(), &clock).await;
    let base = node.url();
    // Similar items: what viewers of the item watched, fewer than 100 here.
    for (path, pages_of_ten) in [
        ("/v1/users/v3/recommendations?exclude_seen=false", 10),
        ("/v1/trending", 10),
        ("/v1/items/g0-m1/similar", 3),
    ] {
        let separator = if path.contains('?') { '&' } else { '?' };
        let whole_url = format!("{base}{path}{separator}count={}", 10 * pages_of_ten);
        // The ranking of 100 asked for before and after the pages: a background solve or index
        // build that lands meanwhile changes the model the pages rank with, so the pages are
        // compared with a ranking that held through them.
        let mut attempts = 0;
        let (whole, paged) = loop {
            let before = item_ids(&get_json(&whole_url).await.1);
            let paged = pages(&base, path, pages_of_ten).await;
            let after = item_ids(&get_json(&whole_url).await.1);
            attempts += 1;
            if before == after || attempts == 20 {
                assert_eq!(before, after, "{path}: the ranking kept moving");
                break (before, paged);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let distinct: HashSet<&String> = paged.iter().collect();
        assert_eq!(distinct.len(), 10 * pages_of_ten, "{path}: repeats");
        assert_eq!(paged, whole, "{path}: the pages are one ranking");
    }
    // A token belongs to its list.
    let (_, first) = get_json(&format!("{base}/v1/users/v3/recommendations")).await;
    let token = first["next_page_token"].as_str().unwrap();
    let (status, answer) = get_json(&format!(
        "{base}/v1/users/v4/recommendations?page_token={token}"
    ))
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "page_token: belongs to another list (another user, item, route or parameters)"
    );
    let (status, answer) = get_json(&format!("{base}/v1/trending?page_token=not-a-token")).await;
    assert_eq!(status, 400, "{answer}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_boost_and_pin_inside_their_windows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let node = seeded(dir.path(), &clock).await;
    let base = node.url();
    let premiere = item_id(3, 24);
    let (status, answer) = put(
        &format!("{base}/v1/admin/campaigns/premiere"),
        &json!({"items": [premiere], "position": 1, "starts_at": T0 + 1_000, "ends_at": T0 + 2_000}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["active"], false, "{answer}");
    let second = |answer: &Value| answer["items"][1].clone();
    for path in [
        "/v1/users/v0/recommendations",
        "/v1/trending",
        "/v1/items/g0-m1/similar",
    ] {
        let (_, before) = get_json(&format!("{base}{path}")).await;
        assert_ne!(
            second(&before)["item_id"],
            premiere.as_str(),
            "{path} before: {before}"
        );
    }
    clock.set(T0 + 1_000);
    for path in [
        "/v1/users/v0/recommendations",
        "/v1/trending",
        "/v1/items/g0-m1/similar",
    ] {
        let (_, during) = get_json(&format!("{base}{path}")).await;
        let pinned = second(&during);
        assert_eq!(
            pinned["item_id"],
            premiere.as_str(),
            "{path} during: {during}"
        );
        assert_eq!(pinned["campaign"], "premiere", "{pinned}");
        assert!(
            pinned["sources"]
                .as_array()
                .unwrap()
                .contains(&json!("pin"))
        );
    }
    clock.set(T0 + 2_000);
    let (_, after) = get_json(&format!("{base}/v1/users/v0/recommendations")).await;
    assert_ne!(
        second(&after)["item_id"],
        premiere.as_str(),
        "after: {after}"
    );

    // A boost by filter lifts genre 2 above everything genre 0's viewer has.
    let (_, before) = get_json(&format!("{base}/v1/users/v0/recommendations?count=10")).await;
    assert!(before["items"][0]["genres"][0] != "Genre2", "{before}");
    let (status, answer) = put(
        &format!("{base}/v1/admin/campaigns/genre2"),
        &json!({"filter": "genres HAS \"Genre2\"", "boost": 10.0}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, boosted) = get_json(&format!("{base}/v1/users/v0/recommendations?count=10")).await;
    let first = &boosted["items"][0];
    assert_eq!(first["genres"][0], "Genre2", "{boosted}");
    assert_eq!(first["campaign"], "genre2", "{first}");
    assert!(
        first["sources"]
            .as_array()
            .unwrap()
            .contains(&json!("boost"))
    );
    assert_eq!(
        delete(&format!("{base}/v1/admin/campaigns/genre2")).await,
        204
    );
    let (_, unboosted) = get_json(&format!("{base}/v1/users/v0/recommendations?count=10")).await;
    assert_eq!(item_ids(&unboosted), item_ids(&before));
    // Bad campaigns name the field.
    for (body, expected) in [
        (
            json!({"items": ["a"], "boost": 1.0, "position": 2}),
            "boost: give either",
        ),
        (json!({"boost": 1.0}), "items: name the campaign's items"),
        (
            json!({"items": ["a"], "boost": -1.0}),
            "boost: must be above 0",
        ),
        (
            json!({"filter": "year >", "boost": 1.0}),
            "filter: at character 7",
        ),
        (
            json!({"items": ["a"], "position": 1, "starts_at": 5, "ends_at": 5}),
            "ends_at: must be after",
        ),
    ] {
        let (status, answer) = put(&format!("{base}/v1/admin/campaigns/bad"), &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{body}: {message}");
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_genre_limit_spreads_a_list_over_genres() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let node = seeded(dir.path(), &clock).await;
    let base = node.url();
    let genres = |answer: &Value| -> Vec<String> {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["genres"][0].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, plain) = get_json(&format!("{base}/v1/users/v1/recommendations?count=8")).await;
    let (_, spread) = get_json(&format!(
        "{base}/v1/users/v1/recommendations?count=8&max_per_genre=2"
    ))
    .await;
    let plain = genres(&plain);
    let spread = genres(&spread);
    assert!(
        plain.iter().filter(|g| *g == "Genre1").count() > 2,
        "the plain list is mostly the viewer's genre: {plain:?}"
    );
    for genre in &spread {
        assert!(
            spread.iter().filter(|g| *g == genre).count() <= 2,
            "{spread:?}"
        );
    }
    assert_eq!(spread.len(), 8, "{spread:?}");
    let (status, answer) = get_json(&format!("{base}/v1/trending?max_per_genre=0")).await;
    assert_eq!(status, 400, "{answer}");
    node.shutdown().await.unwrap();
}
