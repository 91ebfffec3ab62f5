//! Tests of the state store.

use super::keys::OFFSETS_CF;
use super::*;
use crate::records::{HistoryEntry, SeenEntry, UserState};
use marquee_schemas::{Cipher, encode_record};

fn test_config() -> StoreConfig {
    StoreConfig {
        dimension: 2,
        dedup_window: std::time::Duration::from_secs(3600),
        block_cache_bytes: 1 << 20,
        cipher: None,
    }
}

#[test]
fn a_user_record_round_trips_with_its_packed_history() {
    let state = UserState {
        event_count: 3,
        last_timestamp: -5,
        vector: vec![0.5, -1.25],
        history: vec![
            HistoryEntry {
                item: 7,
                weight: -0.75,
                timestamp: 1_700_000_000_123,
            },
            HistoryEntry {
                item: u32::MAX,
                weight: 1.0,
                timestamp: i64::MIN,
            },
        ],
    };
    let bytes = encode_record(&state).unwrap();
    assert_eq!(decode_record::<UserState>(&bytes).unwrap(), state);
    // A history that is not a whole number of entries is an error, not a shorter history:
    // one entry's 16 bytes, cut to 15, with the length prefix (one byte) saying 15.
    let mut cut = UserState::default();
    cut.history.push(state.history[0]);
    let mut bytes = encode_record(&cut).unwrap();
    bytes.pop();
    let length_at = bytes.len() - 16;
    assert_eq!(bytes[length_at], 16);
    bytes[length_at] = 15;
    let error = decode_record::<UserState>(&bytes).unwrap_err().to_string();
    assert!(error.contains("whole number of entries"), "{error}");
}

#[test]
fn the_files_read_ahead_are_those_of_the_users_and_seen_column_families() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path(), &test_config()).unwrap();
    assert!(
        store.query_files().unwrap().is_empty(),
        "nothing flushed yet"
    );
    let mut batch = store.batch();
    for n in 0..1000u64 {
        let state = UserState {
            event_count: n,
            ..UserState::default()
        };
        batch.put_user(&format!("u{n}"), &state).unwrap();
    }
    batch.put_offset(0, 1000);
    store.commit(batch).unwrap();
    store.flush_all().unwrap();
    let files = store.inner.db.live_files().unwrap();
    let users_bytes: usize = files
        .iter()
        .filter(|file| file.column_family_name == USERS_CF)
        .map(|file| file.size)
        .sum();
    assert!(users_bytes > 0);
    assert!(
        files
            .iter()
            .any(|file| file.column_family_name == OFFSETS_CF),
        "a flushed column family the queries do not read"
    );
    let query_files = store.query_files().unwrap();
    assert_eq!(warm_files(&query_files).unwrap(), users_bytes as u64);
}

#[test]
fn batched_reads_answer_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path(), &test_config()).unwrap();
    let user = |count: u64| UserState {
        event_count: count,
        ..UserState::default()
    };
    let seen = |interactions: u32| SeenEntry {
        interactions,
        last_weight: 1.0,
        last_timestamp: 0,
    };
    let mut batch = store.batch();
    batch.put_user("carol", &user(3)).unwrap();
    batch.put_user("alice", &user(1)).unwrap();
    batch.add_seen("carol", 9, &seen(2)).unwrap();
    batch.add_seen("alice", 4, &seen(5)).unwrap();
    batch.mark_applied("carol", "e2");
    batch.mark_applied("alice", "e1");
    store.commit(batch).unwrap();

    let users = store.users(&["carol", "zed", "alice"]).unwrap();
    let counts: Vec<Option<u64>> = users
        .iter()
        .map(|state| state.as_ref().map(|state| state.event_count))
        .collect();
    assert_eq!(counts, vec![Some(3), None, Some(1)]);
    let entries = store
        .seen_entries(&[("carol", 4), ("carol", 9), ("alice", 4)])
        .unwrap();
    let interactions: Vec<Option<u32>> = entries
        .iter()
        .map(|entry| entry.map(|entry| entry.interactions))
        .collect();
    assert_eq!(interactions, vec![None, Some(2), Some(5)]);

    // A later batch adds to the stored entry without reading it.
    let mut batch = store.batch();
    let later = SeenEntry {
        interactions: 3,
        last_weight: -0.5,
        last_timestamp: 9,
    };
    batch.add_seen("carol", 9, &later).unwrap();
    store.commit(batch).unwrap();
    assert_eq!(
        store.seen_entries(&[("carol", 9)]).unwrap(),
        vec![Some(SeenEntry {
            interactions: 5,
            ..later
        })]
    );
    assert_eq!(
        store.seen_items("carol").unwrap(),
        vec![(
            9,
            SeenEntry {
                interactions: 5,
                ..later
            }
        )]
    );
    assert_eq!(
        store
            .applied(&[("carol", "e2"), ("alice", "e2"), ("alice", "e1")])
            .unwrap(),
        vec![true, false, true]
    );
}

#[test]
fn seen_items_join_the_column_family_and_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config();
    let store = StateStore::open(dir.path(), &config).unwrap();
    assert!(store.seen_outside_history(), "a new state takes the layout");
    let past = |item: u32, weight: f32, timestamp: i64| HistoryEntry {
        item,
        weight,
        timestamp,
    };
    // Three events: item 9 at time 5 left the window; 4 and 9 again are in it.
    let state = UserState {
        event_count: 3,
        history: vec![past(4, 1.0, 10), past(9, 0.5, 20)],
        ..UserState::default()
    };
    let mut batch = store.batch();
    batch.put_user("carol", &state).unwrap();
    let left = SeenEntry {
        interactions: 1,
        last_weight: -1.0,
        last_timestamp: 5,
    };
    batch.add_seen("carol", 9, &left).unwrap();
    store.commit(batch).unwrap();
    let entry = |interactions: u32, last_weight: f32, last_timestamp: i64| SeenEntry {
        interactions,
        last_weight,
        last_timestamp,
    };
    let joined = vec![(4, entry(1, 1.0, 10)), (9, entry(2, 0.5, 20))];
    assert_eq!(store.seen_items("carol").unwrap(), joined);
    assert_eq!(store.seen_with("carol", Some(&state)).unwrap(), joined);

    // Every event in the window: the history alone, the column family not read.
    let whole = UserState {
        event_count: 2,
        ..state.clone()
    };
    assert_eq!(
        store.seen_with("carol", Some(&whole)).unwrap(),
        vec![(4, entry(1, 1.0, 10)), (9, entry(1, 0.5, 20))]
    );

    // A state of the older layout holds every interaction in the column family, which
    // is then read alone.
    store.inner.db.delete(SEEN_LAYOUT_KEY).unwrap();
    drop(store);
    let store = StateStore::open(dir.path(), &config).unwrap();
    assert!(
        !store.seen_outside_history(),
        "an existing state keeps its layout"
    );
    assert_eq!(store.seen_items("carol").unwrap(), vec![(9, left)]);
}

/// Every file of the state at `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|entry| {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            bytes.windows(needle.len()).any(|window| window == needle)
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_encrypted_state_merges_compacts_and_reads_back_with_no_id_in_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        cipher: Some(Cipher::from_hex(&"5a".repeat(32)).unwrap()),
        ..test_config()
    };
    let store = StateStore::open(dir.path(), &config).unwrap();
    let seen = SeenEntry {
        interactions: 1,
        last_weight: 1.0,
        last_timestamp: 7,
    };
    let delta = crate::delta::ItemDelta {
        item_id: "m3".into(),
        vector: vec![0.5, 0.25],
        popularity: 1.0,
        popularity_at: 10,
        half_life_ms: 1e9,
        event_count: 1,
        mass: 1.0,
    };
    // Two batches, so that `seen`, `items` and `neighbours` each hold two merge operands.
    for _ in 0..2 {
        let mut batch = store.batch();
        batch
            .put_user(
                "carol-4921",
                &UserState {
                    event_count: 5,
                    ..UserState::default()
                },
            )
            .unwrap();
        batch.add_seen("carol-4921", 9, &seen).unwrap();
        batch.merge_item(3, &delta).unwrap();
        batch.add_neighbours(3, &[(4, 1.0)]);
        batch.mark_applied("carol-4921", "carol-4921-event");
        store.commit(batch).unwrap();
    }
    // Merged through RocksDB's compaction (the operands opened, the result sealed), then read.
    store.compact_all().unwrap();
    assert_eq!(store.user("carol-4921").unwrap().unwrap().event_count, 5);
    let merged = store.seen_items("carol-4921").unwrap();
    assert_eq!(
        merged,
        vec![(
            9,
            SeenEntry {
                interactions: 2,
                ..seen
            }
        )]
    );
    let items = store.load_items().unwrap();
    assert_eq!((items[0].0, items[0].1.event_count), (3, 2));
    assert_eq!(store.load_neighbours().unwrap()[0].1.len(), 1);
    let applied = store.applied_events("carol-4921").unwrap();
    assert_eq!(applied[0].0, "carol-4921-event");
    assert_eq!(
        store
            .applied(&[("carol-4921", "carol-4921-event")])
            .unwrap(),
        [true]
    );
    let mut ids = Vec::new();
    store
        .for_each_user_id(|id| {
            ids.push(id.to_owned());
            true
        })
        .unwrap();
    assert_eq!(ids, ["carol-4921"]);
    drop(store);
    assert!(files_holding(dir.path(), b"carol-4921").is_empty());

    // Opened again with the key it works; without it, or with another, it is refused.
    let reopened = StateStore::open(dir.path(), &config).unwrap();
    assert!(reopened.user("carol-4921").unwrap().is_some());
    drop(reopened);
    let error = StateStore::open(dir.path(), &test_config()).unwrap_err();
    assert!(matches!(error, Error::EncryptedState { .. }), "{error}");
    let other = StoreConfig {
        cipher: Some(Cipher::from_hex(&"a5".repeat(32)).unwrap()),
        ..test_config()
    };
    let error = StateStore::open(dir.path(), &other).unwrap_err();
    assert!(matches!(error, Error::WrongEncryptionKey { .. }), "{error}");
}
