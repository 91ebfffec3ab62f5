//! `marquee import movielens` against a running node, on the real ml-latest-small data.
//! Skipped (with a printed reason) where `../shared/datasets/ml-latest-small` is absent.

use crate::common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::*;
use marquee_datasets::movielens;

/// Runs `marquee import movielens DIR --url URL` and checks that it succeeded.
pub(crate) async fn run_import(dataset_dir: &Path, url: &str) {
    let dataset_dir = dataset_dir.to_path_buf();
    let url = url.to_owned();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_marquee"))
            .args(["import", "movielens"])
            .arg(&dataset_dir)
            .args(["--url", &url])
            .status()
            .expect("running marquee import")
    })
    .await
    .unwrap();
    assert!(status.success(), "import failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_ratings_drive_recommendations_that_skip_rated_movies() {
    let Some(dataset_dir) = movielens::shared_small_dataset() else {
        // Written to the process's stderr directly, past the test harness's output capture, so
        // the skip shows in a normal `cargo test` run.
        let _ = writeln!(
            std::io::stderr(),
            "imported_ratings_drive_recommendations_that_skip_rated_movies: SKIPPED, \
             ml-latest-small not found (expected ../shared/datasets/ml-latest-small or \
             MARQUEE_MOVIELENS_DIR)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();

    run_import(&dataset_dir, &base).await;
    caught_up(&node).await;

    let dataset = movielens::load(&dataset_dir).unwrap();
    let rated_by_user_1: HashSet<String> = dataset
        .ratings
        .iter()
        .filter(|event| event.user_id == "1")
        .map(|event| event.item_id.clone())
        .collect();
    assert!(!rated_by_user_1.is_empty());

    let (status, user) = get_json(&format!("{base}/v1/users/1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        user["event_count"].as_u64().unwrap() as usize,
        rated_by_user_1.len()
    );

    let (status, answer) = get_json(&format!("{base}/v1/users/1/recommendations?count=20")).await;
    assert_eq!(status, 200);
    assert_eq!(answer["strategy"], "personalised");
    let list = item_ids(&answer);
    assert_eq!(list.len(), 20, "{answer}");
    for item in &list {
        assert!(
            !rated_by_user_1.contains(item),
            "movie {item} was rated by user 1"
        );
    }
    assert!(
        answer["items"][0]["title"].is_string(),
        "catalogue titles are served"
    );

    // Importing again changes nothing: the importer's ids are deterministic.
    run_import(&dataset_dir, &base).await;
    caught_up(&node).await;
    let (_, again) = get_json(&format!("{base}/v1/users/1")).await;
    assert_eq!(again["event_count"], user["event_count"]);
    node.shutdown().await.unwrap();
}
