//! Per-event and per-query cost of the model, on the production processor and query engine.
//!
//! `cargo bench --profile dev --bench model` (the dev profile is the project's one build
//! profile; the default bench profile would compile RocksDB a second time). The state is a
//! synthetic world (20,000 users, 10,000 items, 200,000 events applied before measuring); each
//! processing sample applies the next 5,000 events of the same stream (new event ids) through
//! the log, the processor and a RocksDB commit, so the figure per element is the full per-event
//! cost. `cargo test --all-targets` runs each bench once, as a check that it works.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use marquee::eval::System;
use marquee::synthetic::{Synthetic, SyntheticConfig};
use marquee_stream_processor::{ModelConfig, RecommendationQuery};
use marquee_vector_store::IndexConfig;

const WARM_EVENTS: u64 = 200_000;
const BATCH: usize = 5_000;

fn world() -> Synthetic {
    Synthetic::new(SyntheticConfig {
        seed: 5,
        users: 20_000,
        items: 10_000,
        clusters: 20,
        events: u64::MAX,
        ..SyntheticConfig::default()
    })
}

/// A system with the world's first `WARM_EVENTS` events applied, and the stream that follows.
fn warmed(world: &Synthetic) -> (System, marquee::synthetic::Events<'_>) {
    let mut system = System::with_catalogue(
        world.items().collect(),
        ModelConfig::default(),
        IndexConfig::default(),
    )
    .expect("a scratch system");
    let mut events = world.events();
    let mut warm = WARM_EVENTS as usize;
    while warm > 0 {
        let chunk: Vec<_> = (0..warm.min(BATCH))
            .map(|_| events.next_event().expect("an endless stream"))
            .collect();
        warm -= chunk.len();
        system.apply_events(chunk).expect("applied");
    }
    (system, events)
}

fn model(c: &mut Criterion) {
    let world = world();
    // Queries run on a state of their own, so their figure does not depend on how many batches
    // the processor bench happened to apply before them.
    let (query_system, _) = warmed(&world);
    let (mut system, mut events) = warmed(&world);
    let mut next = |count: usize| -> Vec<_> {
        (0..count)
            .map(|_| events.next_event().expect("an endless stream"))
            .collect()
    };

    let mut group = c.benchmark_group("processor");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.bench_function("apply 5,000 events", |b| {
        b.iter_batched(
            || next(BATCH),
            |batch| system.apply_events(batch).expect("applied"),
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("query");
    let mut user = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("recommend 10", |b| {
        b.iter(|| {
            user = (user + 7919) % world.config().users;
            query_system
                .query()
                .recommend(&RecommendationQuery {
                    user_id: Synthetic::user_id(user),
                    count: 10,
                    exclude_seen: true,
                    genre: None,
                    exclude: Vec::new(),
                })
                .expect("answered")
        });
    });
    group.finish();
}

criterion_group!(benches, model);
criterion_main!(benches);
