//! Per-event and per-query cost of the model, on the production processor and query engine.
//!
//! `cargo bench --profile dev -p marquee-bench --bench model` (the dev profile is the project's one build
//! profile; the default bench profile would compile RocksDB a second time). The state is a
//! synthetic world (20,000 users, 10,000 items, 200,000 events applied before measuring); each
//! processing sample applies the next 5,000 events of the same stream (new event ids) through
//! the log, the processor and a RocksDB commit, so the figure per element is the full per-event
//! cost. The "model" group applies the same stream through the model's update alone
//! ([`learn_event`] on an in-memory item table and user map, the pair additions added to the
//! lists, the maps hashed with foldhash as the processor's batch maps are), without the log, the de-duplication, the state store or the batch bookkeeping: what
//! the model itself costs per event. `cargo test --all-targets` runs each bench once, as a check
//! that it works.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use foldhash::{HashMap, HashMapExt};
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_eval::System;
use marquee_schemas::Event;
use marquee_stream_processor::factors::fold_in;
use marquee_stream_processor::model::{TargetItem, event_weight, learn_event};
use marquee_stream_processor::{ModelConfig, RecommendationQuery};
use marquee_vector_store::{IndexConfig, ItemTable, UserState};

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
fn warmed(world: &Synthetic) -> (System, marquee_datasets::synthetic::Events<'_>) {
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

/// The model's state in memory: the item table the processor publishes to, and the users.
struct Memory {
    model: ModelConfig,
    items: ItemTable,
    users: HashMap<String, UserState>,
}

impl Memory {
    fn new() -> Memory {
        let model = ModelConfig::default();
        Memory {
            items: ItemTable::new(model.dimension),
            model,
            users: HashMap::new(),
        }
    }

    /// What the processor does per batch besides storage: number each event's item and learn
    /// from it, then add the batch's pairs list by list.
    fn apply(&mut self, events: &[Event]) {
        let half_life_ms = self.model.popularity_half_life_ms();
        let mut table = self.items.write();
        let mut additions: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for event in events {
            let (number, _) = table.assign(&event.item_id);
            let weight = event_weight(event, &self.model.weights);
            if !self.users.contains_key(&event.user_id) {
                self.users
                    .insert(event.user_id.clone(), UserState::default());
            }
            let user = self.users.get_mut(&event.user_id).expect("inserted");
            let mut popularity = *table.popularity_mut(number);
            let mut mass = table.mass(number);
            let mut event_count = table.event_count(number);
            learn_event(
                &self.model,
                half_life_ms,
                event,
                weight,
                user,
                TargetItem {
                    number,
                    popularity: &mut popularity,
                    mass: &mut mass,
                    event_count: &mut event_count,
                },
                |from, to, pair_weight| {
                    if pair_weight > 0.0 {
                        additions.entry(from).or_default().push((to, pair_weight));
                    }
                },
            );
            *table.popularity_mut(number) = popularity;
            table.set_mass(number, mass);
            *table.event_count_mut(number) = event_count;
        }
        // The pairs fold into the vectors (against the vectors before the batch), then join
        // the lists, as a processor batch does.
        let mut additions: Vec<(u32, Vec<(u32, f32)>)> = additions.into_iter().collect();
        additions.sort_unstable_by_key(|(from, _)| *from);
        let mut changes = std::collections::HashMap::new();
        fold_in(&*table, &additions, &mut changes);
        for (number, change) in changes {
            let (source, target) = change.split_at(table.dimension());
            for (component, add) in table.source_vector_mut(number).iter_mut().zip(source) {
                *component += add;
            }
            for (component, add) in table.vector_mut(number).iter_mut().zip(target) {
                *component += add;
            }
        }
        for (from, list) in additions {
            table.neighbours_mut(from).add_all(&list);
        }
    }
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

    // The model alone, warmed on the same events.
    let mut memory = Memory::new();
    let mut stream = world.events();
    let mut take = |count: usize| -> Vec<Event> {
        (0..count)
            .map(|_| stream.next_event().expect("an endless stream"))
            .collect()
    };
    for _ in 0..WARM_EVENTS as usize / BATCH {
        memory.apply(&take(BATCH));
    }
    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("update per event, in memory (5,000 events)", |b| {
        b.iter_batched(
            || take(BATCH),
            |batch| memory.apply(&batch),
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
                    options: Default::default(),
                })
                .expect("answered")
        });
    });
    group.finish();
}

criterion_group!(benches, model);
criterion_main!(benches);
