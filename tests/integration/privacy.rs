//! User data rights against a real node: the export holds everything stored about a user, and
//! an erasure removes it — from the API, from item counts and co-occurrence (compared with a
//! node that never saw the user), and from every byte on disk: right after a clean stop, every
//! key and value of every column family of both RocksDB instances is read through RocksDB, and
//! every other file of the data directory (write-ahead logs, RocksDB's own logs, manifests,
//! keys) is read raw, looking for the user id.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{caught_up, get_json, http, post, start, test_config};
use marquee_node::RunningNode;
use serde_json::{Value, json};

/// An id that occurs nowhere but in this user's events.
const VICTIM: &str = "erasable-7f3c91";

fn catalogue() -> Value {
    Value::Array(
        (0..30)
            .map(|n| json!({"item_id": format!("m{n}"), "title": format!("Movie {n}"), "genres": ["Drama"]}))
            .collect(),
    )
}

/// Events of three ordinary users, and (when `with_victim`) of the victim, interleaved.
fn events(with_victim: bool) -> String {
    let mut lines = Vec::new();
    for step in 0..12u32 {
        for user in 0..3u32 {
            let item = (user * 5 + step * 2) % 30;
            lines.push(json!({
                "event_id": format!("u{user}-{step}"),
                "user_id": format!("u{user}"),
                "item_id": format!("m{item}"),
                "kind": "rating",
                "value": 4.0,
                "timestamp": 1_700_000_000_000i64 + i64::from(step) * 60_000,
            }));
        }
        if with_victim {
            lines.push(json!({
                // The id is in the event ids too, so the de-duplication keys are checked.
                "event_id": format!("{VICTIM}-{step}"),
                "user_id": VICTIM,
                "item_id": format!("m{}", (step * 3) % 30),
                "kind": if step % 4 == 3 { "dislike" } else { "like" },
                "timestamp": 1_700_000_000_000i64 + i64::from(step) * 60_000 + 1,
            }));
        }
    }
    lines
        .iter()
        .map(|line| format!("{line}\n"))
        .collect::<String>()
}

async fn loaded_node(dir: &Path, with_victim: bool) -> RunningNode {
    let node = start(test_config(dir)).await;
    let base = node.url();
    let (status, answer) = post(
        &format!("{base}/v1/items"),
        "application/json",
        catalogue().to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        &format!("{base}/v1/events"),
        "application/x-ndjson",
        events(with_victim),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    node
}

/// Per item: event count, and its co-occurrence list by item id.
fn item_figures(node: &RunningNode) -> BTreeMap<String, (u64, Vec<(String, f32)>)> {
    let table = node.services().unwrap().items.read();
    table
        .numbers()
        .map(|number| {
            let id = table.id(number).unwrap().to_string();
            let mut pairs: Vec<(String, f32)> = table
                .neighbours(number)
                .entries()
                .iter()
                .map(|&(to, weight)| (table.id(to).unwrap().to_string(), weight))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            (id, (table.event_count(number), pairs))
        })
        .collect()
}

/// Every file under `dir`.
pub(crate) fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every key and value of every column family of the RocksDB instance at `path` containing
/// `needle`, as `column family: key`.
fn rocksdb_hits(path: &Path, needle: &[u8]) -> Vec<String> {
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    // Merge operands (the co-occurrence lists' and the item deltas') are read through a merge
    // operator; this one concatenates them, which keeps every byte the search looks for.
    let options = || {
        let mut options = rocksdb::Options::default();
        options.set_merge_operator_associative("concatenate", |_, existing, operands| {
            let mut merged = existing.map(<[u8]>::to_vec).unwrap_or_default();
            for operand in operands {
                merged.extend_from_slice(operand);
            }
            Some(merged)
        });
        options
    };
    let descriptors = names
        .iter()
        .map(|name| rocksdb::ColumnFamilyDescriptor::new(name, options()));
    let db =
        rocksdb::DB::open_cf_descriptors_read_only(&options(), path, descriptors, false).unwrap();
    let mut hits = Vec::new();
    let mut rows = 0;
    for name in &names {
        let cf = db.cf_handle(name).unwrap();
        for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (key, value) = item.unwrap();
            rows += 1;
            if contains(&key, needle) || contains(&value, needle) {
                hits.push(format!("{name}: {}", String::from_utf8_lossy(&key)));
            }
        }
    }
    assert!(rows > 0, "{} holds no rows at all", path.display());
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_leaves_no_trace_in_the_api_the_counts_or_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = loaded_node(&data, true).await;
    let base = node.url();

    // The export holds the events as sent, the state, the seen items and the applied ids.
    let (status, export) = get_json(&format!("{base}/v1/users/{VICTIM}/export")).await;
    assert_eq!(status, 200, "{export}");
    let exported = export["events"].as_array().unwrap();
    assert_eq!(exported.len(), 12);
    assert!(
        exported
            .iter()
            .all(|entry| entry["event"]["user_id"] == VICTIM)
    );
    assert_eq!(export["state"]["event_count"], 12);
    assert_eq!(export["seen"].as_array().unwrap().len(), 10);
    assert_eq!(export["applied_events"].as_array().unwrap().len(), 12);
    let (status, _) = get_json(&format!("{base}/v1/users/nobody/export")).await;
    assert_eq!(status, 404);

    // Erase.
    let delete = http()
        .delete(format!("{base}/v1/users/{VICTIM}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status().as_u16(), 200);
    let erased: Value = delete.json().await.unwrap();
    assert_eq!(erased["erased"]["log_events"], 12, "{erased}");
    assert_eq!(erased["erased"]["applied_events"], 12, "{erased}");
    assert_eq!(erased["erased"]["log_erased"], true, "{erased}");

    // Gone from the API.
    for path in ["", "/export"] {
        let (status, body) = get_json(&format!("{base}/v1/users/{VICTIM}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let again = http()
        .delete(format!("{base}/v1/users/{VICTIM}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 404);
    let (_, list) = get_json(&format!("{base}/v1/users/{VICTIM}/recommendations")).await;
    assert_eq!(list["strategy"], "popular", "{list}");

    // Counts and co-occurrence equal those of a node that never saw the user.
    let control_dir = tempfile::tempdir().unwrap();
    let control = loaded_node(control_dir.path(), false).await;
    let erased_figures = item_figures(&node);
    let control_figures = item_figures(&control);
    assert_eq!(
        erased_figures.keys().collect::<Vec<_>>(),
        control_figures.keys().collect::<Vec<_>>()
    );
    for (item, (count, pairs)) in &erased_figures {
        let (control_count, control_pairs) = &control_figures[item];
        assert_eq!(count, control_count, "{item}: event count");
        let ids: Vec<&String> = pairs.iter().map(|pair| &pair.0).collect();
        let control_ids: Vec<&String> = control_pairs.iter().map(|pair| &pair.0).collect();
        assert_eq!(ids, control_ids, "{item}: co-occurring items");
        for (pair, control_pair) in pairs.iter().zip(control_pairs) {
            assert!(
                (pair.1 - control_pair.1).abs() < 1e-4,
                "{item}–{}: {} against {}",
                pair.0,
                pair.1,
                control_pair.1
            );
        }
    }
    control.shutdown().await.unwrap();
    // The other users are untouched.
    let (status, other) = get_json(&format!("{base}/v1/users/u1")).await;
    assert_eq!((status, &other["event_count"]), (200, &json!(12)));
    node.shutdown().await.unwrap();

    // On disk, right after the clean stop (no compaction asked for, no restart: either would
    // rewrite the files): every row of both instances, read without writing, and every other
    // file. The MANIFEST names the first and last key of every file, so it held the id as the
    // boundary of files the erasure's compaction had deleted, until the state rolled it.
    let needle = VICTIM.as_bytes();
    for db in ["log", "state"] {
        let hits = rocksdb_hits(&data.join(db), needle);
        assert!(hits.is_empty(), "{db}: {hits:?}");
    }
    let mut checked = 0;
    for file in files(&data) {
        if file.extension().is_some_and(|extension| extension == "sst") {
            continue; // read through RocksDB above
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(!contains(&bytes, needle), "{} holds the id", file.display());
        checked += 1;
    }
    assert!(checked > 5, "only {checked} files checked");
    // The check can fail: the other users' ids are still there.
    assert!(!rocksdb_hits(&data.join("state"), b"u1\0").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_not_yet_applied_are_erased_too_and_a_paused_processor_still_erases() {
    let dir = tempfile::tempdir().unwrap();
    let node = loaded_node(dir.path(), true).await;
    let base = node.url();
    let admin = format!("{base}/v1/admin/processor");
    let (status, _) = common::post_json(&admin, &json!({"paused": true})).await;
    assert_eq!(status, 200);
    // Sent while paused: in the log, not applied.
    let late = json!({"event_id": "late-1", "user_id": VICTIM, "item_id": "m29", "kind": "like"});
    let (status, _) = common::post_json(&format!("{base}/v1/events"), &late).await;
    assert_eq!(status, 202);
    let delete = http()
        .delete(format!("{base}/v1/users/{VICTIM}"))
        .send()
        .await
        .unwrap();
    let erased: Value = delete.json().await.unwrap();
    assert_eq!(erased["erased"]["log_events"], 13, "{erased}");
    assert_eq!(erased["erased"]["applied_events"], 12, "{erased}");
    let before = item_figures(&node)["m29"].0;
    let (status, _) = common::post_json(&admin, &json!({"paused": false})).await;
    assert_eq!(status, 200);
    caught_up(&node).await;
    // The processor moved past the erased event without applying it.
    let (status, _) = get_json(&format!("{base}/v1/users/{VICTIM}")).await;
    assert_eq!(status, 404);
    assert_eq!(item_figures(&node)["m29"].0, before);

    // A backfill of the erased user's history is refused, naming the field; a new event is a
    // new start.
    let old = json!({"event_id": "old-1", "user_id": VICTIM, "item_id": "m1", "kind": "like",
                     "timestamp": 1_700_000_000_000i64});
    let (status, answer) = common::post_json(&format!("{base}/v1/events"), &old).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["rejected"][0]["field"], "user_id", "{answer}");
    let new = json!({"event_id": "new-1", "user_id": VICTIM, "item_id": "m1", "kind": "like"});
    let (status, answer) = common::post_json(&format!("{base}/v1/events"), &new).await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    let (status, user) = get_json(&format!("{base}/v1/users/{VICTIM}")).await;
    assert_eq!((status, &user["event_count"]), (200, &json!(1)));
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pseudonymisation_raw_user_ids_never_reach_the_disk() {
    const RAW: &str = "alice-raw-91f02d";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = test_config(&data);
    config.pseudonymise_user_ids = true;
    let node = start(config).await;
    let base = node.url();
    let body: String = (0..5)
        .map(|n| {
            format!(
                "{}\n",
                // Event ids and context are stored as sent: they must not carry the user id.
                json!({"event_id": format!("e{n}"), "user_id": RAW, "item_id": format!("m{n}"), "kind": "like"})
            )
        })
        .collect();
    let (status, answer) = post(&format!("{base}/v1/events"), "application/x-ndjson", body).await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;

    // Callers keep using the raw id.
    let (status, user) = get_json(&format!("{base}/v1/users/{RAW}")).await;
    assert_eq!(
        (status, &user["user_id"], &user["event_count"]),
        (200, &json!(RAW), &json!(5))
    );
    let (status, export) = get_json(&format!("{base}/v1/users/{RAW}/export")).await;
    assert_eq!(status, 200);
    let stored = export["events"][0]["event"]["user_id"].as_str().unwrap();
    assert!(stored.starts_with("p_") && stored.len() == 34, "{stored}");
    node.shutdown().await.unwrap();

    // The raw id is in no row and no file.
    let needle = RAW.as_bytes();
    for db in ["log", "state"] {
        let hits = rocksdb_hits(&data.join(db), needle);
        assert!(hits.is_empty(), "{db}: {hits:?}");
    }
    // The check can fail: the pseudonym is there.
    assert!(!rocksdb_hits(&data.join("state"), stored.as_bytes()).is_empty());
    for file in files(&data) {
        if file.extension().is_some_and(|extension| extension == "sst") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, needle),
            "{} holds the raw id",
            file.display()
        );
    }

    // The same key after a restart: the user is still found by the raw id.
    let mut config = test_config(&data);
    config.pseudonymise_user_ids = true;
    let node = start(config).await;
    let (status, user) = get_json(&format!("{}/v1/users/{RAW}", node.url())).await;
    assert_eq!((status, &user["event_count"]), (200, &json!(5)));
    node.shutdown().await.unwrap();
}

/// Data files are the node's account's only: the real binary, started from a shell whose
/// umask lets anyone read (022, the usual default), writes its data directory 0700 and every
/// file below it without a group or other bit, and so does a backup.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_backups_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    // The umask the child inherits: the usual default, which would leave files 0644.
    #[cfg(target_os = "linux")]
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = common::Server::start(&data, common::free_port());
    server.ready().await;
    let base = server.url.clone();
    let (status, answer) = common::post_json(&format!("{base}/v1/items"), &catalogue()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        &format!("{base}/v1/events"),
        "application/x-ndjson",
        events(true),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) =
        common::post_json(&format!("{base}/v1/admin/backups"), &json!({"dir": "b1"})).await;
    assert_eq!(status, 201, "{answer}");
    server.stop();

    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let mut checked = 0;
    let mut stack = vec![data.clone()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        if metadata.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        }
        let mode = metadata.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
        checked += 1;
    }
    assert!(
        data.join("backups/b1/state").is_dir(),
        "the backup is inside the data directory"
    );
    assert!(checked > 20, "only {checked} paths");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_runs_as_a_job_that_names_the_user_by_hash_only() {
    let dir = tempfile::tempdir().unwrap();
    let node = loaded_node(dir.path(), true).await;
    let base = node.url();
    let job = common::start_job(http().delete(format!("{base}/v1/users/{VICTIM}"))).await;
    let location = job["url"].as_str().unwrap();
    assert!(location.starts_with("/v1/erasures/"), "{location}");
    assert_eq!(job["kind"], "erasure");
    let target = job["target"].as_str().unwrap();
    assert_eq!(
        target.len(),
        32,
        "the keyed hash, as the audit log names users: {job}"
    );
    let ended = common::finished_job(&base, location).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["result"]["log_events"], 12, "{ended}");
    // The erasure took: the user is gone. Nothing the jobs show holds the id.
    let (status, _) = get_json(&format!("{base}/v1/users/{VICTIM}/export")).await;
    assert_eq!(status, 404);
    let (_, jobs) = get_json(&format!("{base}/v1/admin/jobs")).await;
    assert!(!jobs.to_string().contains(VICTIM), "{jobs}");
    // Erased again: nothing stored, the error a waiting request gets, without the id.
    let response = http()
        .delete(format!("{base}/v1/users/{VICTIM}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let (_, jobs) = get_json(&format!("{base}/v1/admin/jobs")).await;
    assert_eq!(jobs[0]["status"], "failed", "{jobs}");
    assert!(!jobs.to_string().contains(VICTIM), "{jobs}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_runs_as_a_job_whose_data_only_its_route_shows_until_the_user_is_erased() {
    let dir = tempfile::tempdir().unwrap();
    let node = loaded_node(dir.path(), true).await;
    let base = node.url();
    let job = common::start_job(http().get(format!("{base}/v1/users/{VICTIM}/export"))).await;
    let location = job["url"].as_str().unwrap().to_owned();
    assert!(location.starts_with("/v1/exports/"), "{location}");
    assert_eq!(job["kind"], "export");
    assert_eq!(job["target"].as_str().unwrap().len(), 32, "{job}");
    let ended = common::finished_job(&base, &location).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    let export = &ended["result"];
    assert_eq!(export["events"].as_array().unwrap().len(), 12, "{ended}");
    // The same as a waiting request's export.
    let (status, waited) = get_json(&format!("{base}/v1/users/{VICTIM}/export")).await;
    assert_eq!(status, 200, "{waited}");
    assert_eq!(waited["events"], export["events"]);
    assert_eq!(waited["seen"], export["seen"]);
    // Operators see how the export went, not what it holds.
    let id = job["id"].as_str().unwrap();
    let (_, jobs) = get_json(&format!("{base}/v1/admin/jobs")).await;
    assert!(!jobs.to_string().contains(VICTIM), "{jobs}");
    let (status, listed) = get_json(&format!("{base}/v1/admin/jobs/{id}")).await;
    assert_eq!((status, &listed["status"]), (200, &json!("succeeded")));
    assert!(listed.get("result").is_none(), "{listed}");
    // An export of nobody fails as a waiting request would.
    let nobody =
        common::start_job(http().get(format!("{base}/v1/users/nobody-at-all/export"))).await;
    let failed = common::finished_job(&base, nobody["url"].as_str().unwrap()).await;
    assert_eq!(failed["error"]["status"], 404, "{failed}");
    // Once the user is erased, the export's data is gone from memory too.
    let response = http()
        .delete(format!("{base}/v1/users/{VICTIM}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, gone) = get_json(&format!("{base}{location}")).await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["status"], "failed", "{gone}");
    assert_eq!(gone["error"]["status"], 410, "{gone}");
    assert!(gone.get("result").is_none(), "{gone}");
    assert!(!gone.to_string().contains(VICTIM), "{gone}");
    node.shutdown().await.unwrap();
}
