//! The codecs on the hot paths: an event from JSON (ingest), events as versioned bincode
//! records (the log), a user's state record (read and written per batch and per query), and a
//! co-occurrence list.
//!
//! `cargo bench --profile dev -p marquee-bench --bench codecs`; `cargo test --all-targets` runs each once.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_schemas::json::event_from_json;
use marquee_schemas::{Event, decode_record, encode_record};
use marquee_vector_store::{HistoryEntry, Neighbours, UserState};
use serde_json::Value;
use std::hint::black_box;

fn events(count: u64) -> Vec<Event> {
    let world = Synthetic::new(SyntheticConfig {
        seed: 3,
        users: 1000,
        items: 5000,
        clusters: 10,
        events: count,
        ..SyntheticConfig::default()
    });
    let mut stream = world.events();
    std::iter::from_fn(|| stream.next_event()).collect()
}

fn codecs(c: &mut Criterion) {
    let events = events(1000);
    let json: Vec<Value> = events
        .iter()
        .map(|event| serde_json::to_value(event).expect("an event serialises"))
        .collect();
    let records: Vec<Vec<u8>> = events
        .iter()
        .map(|event| encode_record(event).expect("encodes"))
        .collect();
    let body = serde_json::to_vec(&json).expect("a body serialises");
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(events.len() as u64));
    // The ingest path parses bodies with the strict parser (duplicate keys refused); beside
    // it, serde_json's own `Value`, what it replaced.
    group.bench_function("parse body, strict (1,000)", |b| {
        b.iter(|| black_box(marquee_schemas::json::strict::from_slice(&body).unwrap()));
    });
    group.bench_function("parse body, serde_json Value (1,000)", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(&body).unwrap()));
    });
    group.bench_function("from JSON, validated (1,000)", |b| {
        b.iter(|| {
            for value in &json {
                black_box(event_from_json(value, i64::MAX / 2, String::new).unwrap());
            }
        });
    });
    group.bench_function("encode record (1,000)", |b| {
        b.iter(|| {
            for event in &events {
                black_box(encode_record(event).unwrap());
            }
        });
    });
    group.bench_function("decode record (1,000)", |b| {
        b.iter(|| {
            for bytes in &records {
                black_box(decode_record::<Event>(bytes).unwrap());
            }
        });
    });
    group.finish();

    let user = UserState {
        event_count: 500,
        last_timestamp: 1_700_000_000_000,
        vector: vec![0.25; 32],
        history: (0..500)
            .map(|k| HistoryEntry {
                item: k * 37 % 100_000,
                weight: 0.5,
                timestamp: 1_700_000_000_000 + i64::from(k) * 1000,
            })
            .collect(),
    };
    let user_bytes = encode_record(&user).unwrap();
    let mut list = Neighbours::default();
    for k in 0..256u32 {
        list.add(k * 389 % 100_000, 1.0 + k as f32);
    }
    let list_bytes = list.encode();
    let mut group = c.benchmark_group("state");
    group.throughput(Throughput::Elements(1));
    group.bench_function("user record, 500 history entries: encode", |b| {
        b.iter(|| black_box(encode_record(&user).unwrap()));
    });
    group.bench_function("user record, 500 history entries: decode", |b| {
        b.iter(|| black_box(decode_record::<UserState>(&user_bytes).unwrap()));
    });
    group.bench_function("co-occurrence list, 256 entries: decode", |b| {
        b.iter(|| black_box(Neighbours::decode(&list_bytes).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
