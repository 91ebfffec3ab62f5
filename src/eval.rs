//! The offline evaluator: `marquee eval`.
//!
//! Implements the two protocols of the project's evaluation document on a MovieLens release:
//!
//! - **Protocol T** (per-user temporal hold-out): each user's last `max(1, ⌊0.2·n⌋)` ratings are
//!   the test part; the training parts are streamed in event order; each test user (≥ 1 training
//!   event, ≥ 1 positive, rating ≥ 3.5, in the test part) gets one top-10 list that excludes
//!   their training items; recall@10 and NDCG@10 are averaged over test users. With
//!   `validation`, the same split is applied again to the training part, for tuning.
//! - **Protocol P** (prequential): a user's ratings sharing a timestamp form a step; before each
//!   step of a user with earlier events, one top-10 list is asked for; each positive of the step
//!   is a hit when its item is in it; then the whole step is applied. HR@10 over the stream and
//!   over its second half. With `first_half`, only the first half of the stream is replayed, for
//!   tuning.
//!
//! Order: by timestamp, ties in file order (the loader's stable sort). Ranking ties go to the
//! smaller item id compared as numbers: the catalogue is numbered in ascending id order before
//! any event, so item number order is id order.
//!
//! The `marquee` row drives the production code in-process: an embedded log (one partition, so
//! events are applied in stream order on one thread), the state store, the [`Processor`] and the
//! [`QueryEngine`] with the HNSW index, exactly as `serve` wires them. Two differences, neither
//! of which changes a result: the log does not sync its write-ahead log (the input is a file that
//! can be read again), and the index is rebuilt on the evaluator's thread when due (by changed
//! items, never by wall-clock time, and without threads, so a build is deterministic) instead of
//! by the background worker, and only when the ranking reads the index
//! ([`ModelConfig::embedding_weight`] > 0). The same command therefore prints the same numbers.
//!
//! The reference rows are computed here from the same split and the same filters: popularity
//! (count of training positives; Protocol P: of positives applied so far) and item-kNN (cosine
//! on binary positives; Protocol P: over co-occurrence counts maintained as the stream goes,
//! scored from the user's last [`STREAM_KNN_HISTORY`] positives).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use marquee_ingest::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use marquee_schemas::{Event, EventKind, Item};
use marquee_stream_processor::catalogue::upsert_catalogue;
use marquee_stream_processor::{
    Engine, Metrics, ModelConfig, Processor, ProcessorConfig, QueryEngine, RecommendationQuery,
};
use marquee_vector_store::{IndexConfig, StateStore, StoreConfig, VectorIndex};
use serde::Serialize;

use crate::movielens;
use crate::synthetic::{Synthetic, SyntheticConfig};

/// Cut-off of every list.
pub const K: usize = 10;
/// Ratings at or above this are positives.
pub const POSITIVE: f32 = 3.5;
/// Positives of a user the streaming item-kNN baseline scores from.
pub const STREAM_KNN_HISTORY: usize = 50;
/// Catalogue size above which the dense item-kNN baselines are skipped.
const KNN_MAX_ITEMS: usize = 20_000;
/// Events applied between two refreshes of the trending list.
const TRENDING_EVERY: usize = 1_000;
/// Events appended per log write when streaming a training part.
const APPEND_CHUNK: usize = 5_000;

/// Which protocol to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Protocol {
    T,
    P,
}

/// Where the ratings come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A MovieLens release directory.
    MovieLens(PathBuf),
    /// The synthetic stream of `marquee generate` (seed 42, 100,000 users, 20,000 items, 50
    /// clusters) with this many events. Every event is applied; only its ratings are
    /// evaluated. For measuring the evaluator's speed on a long stream.
    Synthetic(u64),
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub protocol: Protocol,
    pub data: Source,
    /// Protocol T: evaluate on the validation split of the training part (tuning).
    pub validation: bool,
    /// Protocol P: replay only the first half of the stream (tuning).
    pub first_half: bool,
    pub model: ModelConfig,
    pub index: IndexConfig,
    /// Skip the reference rows.
    pub skip_baselines: bool,
    /// Show progress bars on standard error.
    pub progress: bool,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    pub protocol: Protocol,
    pub dataset: String,
    /// `"T"`, `"T-validation"`, `"P"` or `"P-first-half"`.
    pub split: String,
    pub model: String,
    /// `recall@10` and `ndcg@10` (T), or `hr@10` and `hr@10_second_half` (P).
    pub metrics: Vec<(String, f64)>,
    /// Events the model consumed.
    pub events: usize,
    /// Test users (T) or evaluated positives (P).
    pub users: usize,
    pub evaluated: usize,
    pub seconds: f64,
}

/// One rating, with the item as a catalogue index.
#[derive(Debug, Clone)]
struct Rating {
    user: u32,
    item: u32,
    value: f32,
    timestamp: i64,
    event: Event,
}

/// A data set prepared for both protocols.
struct Prepared {
    name: String,
    /// Catalogue in ascending numeric id order; index = item number in every model.
    catalogue: Vec<Item>,
    /// Ratings in event order.
    ratings: Vec<Rating>,
    users: usize,
}

fn numeric_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn prepare(dir: &Path) -> Result<Prepared> {
    let dataset = movielens::load(dir)?;
    let mut catalogue = dataset.items;
    let known: HashSet<String> = catalogue.iter().map(|item| item.item_id.clone()).collect();
    let mut missing: Vec<String> = dataset
        .ratings
        .iter()
        .filter(|event| !known.contains(&event.item_id))
        .map(|event| event.item_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    missing.sort_by(|a, b| numeric_order(a, b));
    catalogue.extend(missing.into_iter().map(|item_id| Item {
        item_id,
        title: None,
        genres: Vec::new(),
        year: None,
        tags: Vec::new(),
    }));
    catalogue.sort_by(|a, b| numeric_order(&a.item_id, &b.item_id));
    let index: HashMap<&str, u32> = catalogue
        .iter()
        .enumerate()
        .map(|(at, item)| (item.item_id.as_str(), at as u32))
        .collect();
    let mut user_numbers: HashMap<String, u32> = HashMap::new();
    let ratings = dataset
        .ratings
        .into_iter()
        .map(|event| {
            let next = user_numbers.len() as u32;
            let user = *user_numbers.entry(event.user_id.clone()).or_insert(next);
            Rating {
                user,
                item: index[event.item_id.as_str()],
                value: event.value.unwrap_or(0.0),
                timestamp: event.timestamp,
                event,
            }
        })
        .collect();
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Prepared {
        name,
        catalogue,
        ratings,
        users: user_numbers.len(),
    })
}

fn prepare_synthetic(events: u64) -> Prepared {
    let world = Synthetic::new(SyntheticConfig {
        seed: 42,
        users: 100_000,
        items: 20_000,
        clusters: 50,
        events,
        ..SyntheticConfig::default()
    });
    let catalogue: Vec<Item> = world.items().collect();
    let index: HashMap<String, u32> = catalogue
        .iter()
        .enumerate()
        .map(|(at, item)| (item.item_id.clone(), at as u32))
        .collect();
    let mut user_numbers: HashMap<String, u32> = HashMap::new();
    let mut stream = world.events();
    let mut ratings = Vec::with_capacity(events as usize);
    while let Some(event) = stream.next_event() {
        let next = user_numbers.len() as u32;
        let user = *user_numbers.entry(event.user_id.clone()).or_insert(next);
        ratings.push(Rating {
            user,
            item: index[&event.item_id],
            value: match event.kind {
                EventKind::Rating => event.value.unwrap_or(0.0),
                _ => 0.0,
            },
            timestamp: event.timestamp,
            event,
        });
    }
    Prepared {
        name: format!("synthetic-{events}"),
        catalogue,
        ratings,
        users: user_numbers.len(),
    }
}

/// Runs the protocol and returns one row per model: the reference rows first, then `marquee`.
pub fn run(options: &EvalOptions) -> Result<Vec<ModelResult>> {
    let data = match &options.data {
        Source::MovieLens(dir) => prepare(dir)
            .with_context(|| format!("reading MovieLens data from {}", dir.display()))?,
        Source::Synthetic(events) => prepare_synthetic(*events),
    };
    if data.ratings.is_empty() {
        bail!("the data holds no ratings");
    }
    match options.protocol {
        Protocol::T => protocol_t(&data, options),
        Protocol::P => protocol_p(&data, options),
    }
}

fn progress(options: &EvalOptions, length: usize, label: &str) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:32}] {pos}/{len} {per_sec} {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// The top `K` of `scores` (indexed by item), skipping `seen`; ties go to the smaller index.
fn top_k(scores: &[f32], seen: &HashSet<u32>) -> Vec<u32> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(K + 1);
    for (item, &score) in scores.iter().enumerate() {
        let item = item as u32;
        if seen.contains(&item) {
            continue;
        }
        if best.len() == K && score <= best[K - 1].1 {
            continue;
        }
        let at = best.partition_point(|&(_, other)| other >= score);
        best.insert(at, (item, score));
        best.truncate(K);
    }
    best.into_iter().map(|(item, _)| item).collect()
}

// ---------------------------------------------------------------------------------------------
// Protocol T

struct SplitT {
    /// Training ratings in event order.
    training: Vec<Rating>,
    /// Per test user: training items, relevant items.
    test_users: Vec<(u32, HashSet<u32>, HashSet<u32>)>,
}

fn split_t(data: &Prepared, validation: bool) -> SplitT {
    let mut per_user: Vec<Vec<usize>> = vec![Vec::new(); data.users];
    for (position, rating) in data.ratings.iter().enumerate() {
        per_user[rating.user as usize].push(position);
    }
    let mut in_training = vec![false; data.ratings.len()];
    let mut test_users = Vec::new();
    for (user, positions) in per_user.iter().enumerate() {
        let cut = |n: usize| n - (n / 5).max(1).min(n);
        let mut training_end = cut(positions.len());
        let mut test = &positions[training_end..];
        if validation {
            let inner = cut(training_end);
            test = &positions[inner..training_end];
            training_end = inner;
        }
        let training = &positions[..training_end];
        for &position in training {
            in_training[position] = true;
        }
        let relevant: HashSet<u32> = test
            .iter()
            .map(|&position| &data.ratings[position])
            .filter(|rating| rating.value >= POSITIVE)
            .map(|rating| rating.item)
            .collect();
        if !training.is_empty() && !relevant.is_empty() {
            let seen = training
                .iter()
                .map(|&position| data.ratings[position].item)
                .collect();
            test_users.push((user as u32, seen, relevant));
        }
    }
    let training = data
        .ratings
        .iter()
        .zip(&in_training)
        .filter(|(_, keep)| **keep)
        .map(|(rating, _)| rating.clone())
        .collect();
    SplitT {
        training,
        test_users,
    }
}

/// Recall@K and NDCG@K of one list.
fn recall_ndcg(list: &[u32], relevant: &HashSet<u32>) -> (f64, f64) {
    let ideal_hits = relevant.len().min(K);
    let mut hits = 0usize;
    let mut dcg = 0.0;
    for (position, item) in list.iter().take(K).enumerate() {
        if relevant.contains(item) {
            hits += 1;
            dcg += 1.0 / ((position + 2) as f64).log2();
        }
    }
    let idcg: f64 = (0..ideal_hits)
        .map(|position| 1.0 / ((position + 2) as f64).log2())
        .sum();
    (hits as f64 / ideal_hits as f64, dcg / idcg)
}

fn protocol_t(data: &Prepared, options: &EvalOptions) -> Result<Vec<ModelResult>> {
    let split = split_t(data, options.validation);
    let split_name = if options.validation {
        "T-validation"
    } else {
        "T"
    };
    let items = data.catalogue.len();
    let report = |model: &str, lists: Vec<Vec<u32>>, seconds: f64| {
        let mut recall = 0.0;
        let mut ndcg = 0.0;
        for (list, (_, _, relevant)) in lists.iter().zip(&split.test_users) {
            let (r, n) = recall_ndcg(list, relevant);
            recall += r;
            ndcg += n;
        }
        let users = split.test_users.len().max(1) as f64;
        ModelResult {
            protocol: Protocol::T,
            dataset: data.name.clone(),
            split: split_name.into(),
            model: model.into(),
            metrics: vec![
                ("recall@10".into(), recall / users),
                ("ndcg@10".into(), ndcg / users),
            ],
            events: split.training.len(),
            users: split.test_users.len(),
            evaluated: split.test_users.len(),
            seconds,
        }
    };
    let mut results = Vec::new();
    if !options.skip_baselines {
        let started = Instant::now();
        let mut counts = vec![0.0f32; items];
        for rating in split.training.iter().filter(|r| r.value >= POSITIVE) {
            counts[rating.item as usize] += 1.0;
        }
        let lists = split
            .test_users
            .iter()
            .map(|(_, seen, _)| top_k(&counts, seen))
            .collect();
        results.push(report("popularity", lists, started.elapsed().as_secs_f64()));

        if items <= KNN_MAX_ITEMS {
            let started = Instant::now();
            let mut positives: Vec<Vec<u32>> = vec![Vec::new(); data.users];
            for rating in split.training.iter().filter(|r| r.value >= POSITIVE) {
                positives[rating.user as usize].push(rating.item);
            }
            for list in &mut positives {
                list.sort_unstable();
                list.dedup();
            }
            let mut knn = CoCounts::new(items);
            for list in &positives {
                for &a in list {
                    knn.count[a as usize] += 1.0;
                    for &b in list {
                        if a != b {
                            knn.pairs[a as usize * items + b as usize] += 1.0;
                        }
                    }
                }
            }
            let lists = split
                .test_users
                .iter()
                .map(|(user, seen, _)| knn.recommend(&positives[*user as usize], seen))
                .collect();
            results.push(report(
                "item-kNN (cosine)",
                lists,
                started.elapsed().as_secs_f64(),
            ));
        } else {
            eprintln!("item-kNN skipped: the dense baseline handles at most {KNN_MAX_ITEMS} items");
        }
    }

    let started = Instant::now();
    let mut system = System::open(data, options)?;
    let bar = progress(options, split.training.len(), "marquee: training");
    for chunk in split.training.chunks(APPEND_CHUNK) {
        system.apply(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    system.processor.refresh_trending();
    system.before_queries();
    let bar = progress(options, split.test_users.len(), "marquee: queries");
    let mut lists = Vec::with_capacity(split.test_users.len());
    for (user, _, _) in &split.test_users {
        lists.push(system.recommend(*user)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    results.push(report("marquee", lists, started.elapsed().as_secs_f64()));
    Ok(results)
}

/// Dense co-occurrence counts for the item-kNN baselines.
struct CoCounts {
    items: usize,
    count: Vec<f32>,
    pairs: Vec<f32>,
}

impl CoCounts {
    fn new(items: usize) -> CoCounts {
        CoCounts {
            items,
            count: vec![0.0; items],
            pairs: vec![0.0; items * items],
        }
    }

    /// Sum of cosine similarities to `history`, top K outside `seen`.
    fn recommend(&self, history: &[u32], seen: &HashSet<u32>) -> Vec<u32> {
        let mut scores = vec![0.0f32; self.items];
        let norms: Vec<f32> = self.count.iter().map(|count| count.sqrt()).collect();
        for &a in history {
            if self.count[a as usize] == 0.0 {
                continue;
            }
            let row = &self.pairs[a as usize * self.items..(a as usize + 1) * self.items];
            let scale = 1.0 / norms[a as usize];
            for ((score, &pair), &norm) in scores.iter_mut().zip(row).zip(&norms) {
                if pair > 0.0 {
                    *score += pair * scale / norm;
                }
            }
        }
        top_k(&scores, seen)
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol P

/// Positions of each step's ratings, in stream order.
fn steps(ratings: &[Rating]) -> Vec<Vec<usize>> {
    let mut steps = Vec::new();
    let mut start = 0;
    while start < ratings.len() {
        let mut end = start;
        while end < ratings.len() && ratings[end].timestamp == ratings[start].timestamp {
            end += 1;
        }
        let mut by_user: Vec<(u32, Vec<usize>)> = Vec::new();
        for (position, rating) in ratings.iter().enumerate().take(end).skip(start) {
            let user = rating.user;
            match by_user.iter_mut().find(|(other, _)| *other == user) {
                Some((_, positions)) => positions.push(position),
                None => by_user.push((user, vec![position])),
            }
        }
        steps.extend(by_user.into_iter().map(|(_, positions)| positions));
        start = end;
    }
    steps
}

/// Hit counters of Protocol P.
#[derive(Default)]
struct Hits {
    hits: usize,
    evaluated: usize,
    second_hits: usize,
    second_evaluated: usize,
}

impl Hits {
    fn score(&mut self, list: &[u32], step: &[usize], ratings: &[Rating], half: usize) {
        for &position in step {
            let rating = &ratings[position];
            if rating.value < POSITIVE {
                continue;
            }
            let hit = list.contains(&rating.item);
            self.evaluated += 1;
            self.hits += usize::from(hit);
            if position >= half {
                self.second_evaluated += 1;
                self.second_hits += usize::from(hit);
            }
        }
    }
}

fn protocol_p(data: &Prepared, options: &EvalOptions) -> Result<Vec<ModelResult>> {
    let total = data.ratings.len();
    let half = total / 2;
    let ratings = if options.first_half {
        &data.ratings[..half]
    } else {
        &data.ratings[..]
    };
    let steps = steps(ratings);
    let items = data.catalogue.len();
    let split_name = if options.first_half {
        "P-first-half"
    } else {
        "P"
    };
    let report = |model: &str, hits: &Hits, seconds: f64| {
        let ratio = |hits: usize, of: usize| hits as f64 / of.max(1) as f64;
        ModelResult {
            protocol: Protocol::P,
            dataset: data.name.clone(),
            split: split_name.into(),
            model: model.into(),
            metrics: if options.first_half {
                // The first half has no second half to report.
                vec![("hr@10".into(), ratio(hits.hits, hits.evaluated))]
            } else {
                vec![
                    ("hr@10".into(), ratio(hits.hits, hits.evaluated)),
                    (
                        "hr@10_second_half".into(),
                        ratio(hits.second_hits, hits.second_evaluated),
                    ),
                ]
            },
            events: ratings.len(),
            users: data.users,
            evaluated: hits.evaluated,
            seconds,
        }
    };
    let mut results = Vec::new();
    if !options.skip_baselines {
        let started = Instant::now();
        let mut counts = vec![0.0f32; items];
        let mut seen: Vec<HashSet<u32>> = vec![HashSet::new(); data.users];
        let mut hits = Hits::default();
        for step in &steps {
            let user = ratings[step[0]].user as usize;
            if !seen[user].is_empty() {
                hits.score(&top_k(&counts, &seen[user]), step, ratings, half);
            }
            for &position in step {
                let rating = &ratings[position];
                seen[user].insert(rating.item);
                if rating.value >= POSITIVE {
                    counts[rating.item as usize] += 1.0;
                }
            }
        }
        results.push(report(
            "popularity so far",
            &hits,
            started.elapsed().as_secs_f64(),
        ));

        if items <= KNN_MAX_ITEMS {
            let started = Instant::now();
            let mut knn = CoCounts::new(items);
            let mut seen: Vec<HashSet<u32>> = vec![HashSet::new(); data.users];
            let mut positives: Vec<Vec<u32>> = vec![Vec::new(); data.users];
            let mut hits = Hits::default();
            let bar = progress(options, steps.len(), "item-kNN: steps");
            for step in &steps {
                let user = ratings[step[0]].user as usize;
                if !seen[user].is_empty() {
                    let history = &positives[user];
                    let recent = &history[history.len().saturating_sub(STREAM_KNN_HISTORY)..];
                    hits.score(&knn.recommend(recent, &seen[user]), step, ratings, half);
                }
                for &position in step {
                    let rating = &ratings[position];
                    seen[user].insert(rating.item);
                    if rating.value >= POSITIVE && !positives[user].contains(&rating.item) {
                        let item = rating.item as usize;
                        knn.count[item] += 1.0;
                        for &other in &positives[user] {
                            knn.pairs[item * items + other as usize] += 1.0;
                            knn.pairs[other as usize * items + item] += 1.0;
                        }
                        positives[user].push(rating.item);
                    }
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            results.push(report(
                "item-kNN (stream co-occurrence)",
                &hits,
                started.elapsed().as_secs_f64(),
            ));
        } else {
            eprintln!("item-kNN skipped: the dense baseline handles at most {KNN_MAX_ITEMS} items");
        }
    }

    let started = Instant::now();
    let mut system = System::open(data, options)?;
    let mut known: HashSet<u32> = HashSet::new();
    let mut hits = Hits::default();
    let bar = progress(options, steps.len(), "marquee: steps");
    let mut step_ratings = Vec::new();
    for step in &steps {
        let user = ratings[step[0]].user;
        if known.contains(&user) {
            system.before_queries();
            let list = system.recommend(user)?;
            hits.score(&list, step, ratings, half);
        }
        step_ratings.clear();
        step_ratings.extend(step.iter().map(|&position| ratings[position].clone()));
        system.apply(&step_ratings)?;
        known.insert(user);
        bar.inc(1);
    }
    bar.finish_and_clear();
    results.push(report("marquee", &hits, started.elapsed().as_secs_f64()));
    Ok(results)
}

// ---------------------------------------------------------------------------------------------
// The production system, in-process

/// The production processor and query engine wired as `serve` wires them, on a scratch data
/// directory, driven from the caller's thread (see the module docs). Also used by the benches.
pub struct System {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    log: EmbeddedLog,
    index: VectorIndex,
    processor: Processor<EmbeddedLog>,
    query: QueryEngine,
    uses_index: bool,
    /// Events applied since the trending list was last refreshed.
    since_refresh: usize,
    /// Catalogue index per item id.
    numbers: HashMap<String, u32>,
    /// User id per evaluator user number.
    user_ids: HashMap<u32, String>,
}

impl System {
    fn open(data: &Prepared, options: &EvalOptions) -> Result<System> {
        let mut system = System::with_catalogue(
            data.catalogue.clone(),
            options.model.clone(),
            options.index.clone(),
        )?;
        system.user_ids = data
            .ratings
            .iter()
            .map(|rating| (rating.user, rating.event.user_id.clone()))
            .collect();
        Ok(system)
    }

    /// A fresh system whose catalogue is `catalogue`, numbered in that order.
    pub fn with_catalogue(
        catalogue: Vec<Item>,
        model: ModelConfig,
        index: IndexConfig,
    ) -> Result<System> {
        let dir = tempfile::Builder::new()
            .prefix("marquee-eval-")
            .tempdir()
            .context("creating a scratch data directory")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the evaluator's runtime")?;
        let log = EmbeddedLog::open(
            dir.path().join("log"),
            EmbeddedLogConfig {
                partitions: 1,
                sync: false,
                ..EmbeddedLogConfig::default()
            },
        )?;
        let store = StateStore::open(
            dir.path().join("state"),
            &StoreConfig {
                dimension: model.dimension,
                dedup_window: std::time::Duration::from_secs(365 * 24 * 3600),
                block_cache_bytes: 64 * 1024 * 1024,
            },
        )?;
        let numbers = catalogue
            .iter()
            .enumerate()
            .map(|(at, item)| (item.item_id.clone(), at as u32))
            .collect();
        let uses_index = model.embedding_weight > 0.0;
        let Engine {
            items,
            index,
            processor,
            query,
        } = Engine::open(
            log.clone(),
            store.clone(),
            model,
            IndexConfig {
                parallel_build: false,
                rebuild_interval: std::time::Duration::MAX,
                rest_after_build: 0.0,
                ..index
            },
            ProcessorConfig {
                max_batch_events: APPEND_CHUNK,
                ..ProcessorConfig::default()
            },
            Metrics::new(1),
        )?;
        upsert_catalogue(&store, &items, catalogue)?;
        Ok(System {
            _dir: dir,
            runtime,
            log,
            index,
            processor,
            query,
            uses_index,
            since_refresh: 0,
            numbers,
            user_ids: HashMap::new(),
        })
    }

    /// Appends `ratings` to the log and applies everything appended.
    fn apply(&mut self, ratings: &[Rating]) -> Result<()> {
        self.apply_events(ratings.iter().map(|rating| rating.event.clone()).collect())
    }

    /// Appends `events` to the log and applies everything appended, in order.
    pub fn apply_events(&mut self, events: Vec<Event>) -> Result<()> {
        self.since_refresh += events.len();
        self.runtime.block_on(self.log.append(events))?;
        while self.processor.step()? > 0 {}
        // The server refreshes at most once a second of wall-clock time; here every
        // TRENDING_EVERY events, so that runs repeat exactly.
        if self.since_refresh >= TRENDING_EVERY {
            self.processor.refresh_trending();
            self.since_refresh = 0;
        }
        Ok(())
    }

    /// The query engine over this system's state.
    pub fn query(&self) -> &QueryEngine {
        &self.query
    }

    /// What the index worker would have done by now.
    fn before_queries(&mut self) {
        if self.uses_index && self.index.rebuild_due() {
            self.index.rebuild_now();
        }
    }

    fn recommend(&self, user: u32) -> Result<Vec<u32>> {
        let (_, list) = self.query.recommend(&RecommendationQuery {
            user_id: self.user_ids[&user].clone(),
            count: K,
            exclude_seen: true,
            genre: None,
            exclude: Vec::new(),
        })?;
        Ok(list
            .iter()
            .filter_map(|recommendation| self.numbers.get(&recommendation.item_id).copied())
            .collect())
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.log.close();
    }
}

/// The report table.
pub fn table(results: &[ModelResult]) -> String {
    let Some(first) = results.first() else {
        return String::new();
    };
    let metric_names: Vec<&str> = first
        .metrics
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    let mut out = format!(
        "Protocol {} ({}, {})\n",
        first.split, first.dataset, "K = 10"
    );
    out.push_str(&format!("{:<32}", "model"));
    for name in &metric_names {
        out.push_str(&format!(" {name:>18}"));
    }
    out.push_str(&format!(
        " {:>10} {:>10} {:>9}\n",
        "events", "evaluated", "seconds"
    ));
    for result in results {
        out.push_str(&format!("{:<32}", result.model));
        for (_, value) in &result.metrics {
            out.push_str(&format!(" {value:>18.4}"));
        }
        out.push_str(&format!(
            " {:>10} {:>10} {:>9.1}\n",
            result.events, result.evaluated, result.seconds
        ));
    }
    out
}

/// The JSON report: one object per model.
pub fn json(results: &[ModelResult]) -> serde_json::Value {
    serde_json::Value::Array(
        results
            .iter()
            .map(|result| {
                let metrics: serde_json::Map<String, serde_json::Value> = result
                    .metrics
                    .iter()
                    .map(|(name, value)| (name.clone(), serde_json::json!(value)))
                    .collect();
                serde_json::json!({
                    "protocol": result.protocol,
                    "split": result.split,
                    "dataset": result.dataset,
                    "model": result.model,
                    "metrics": metrics,
                    "events": result.events,
                    "users": result.users,
                    "evaluated": result.evaluated,
                    "seconds": result.seconds,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_the_smaller_item_and_skips_seen() {
        let scores = [1.0, 3.0, 3.0, 0.0, 2.0, 3.0];
        let seen = HashSet::from([2]);
        let mut list = top_k(&scores, &seen);
        list.truncate(4);
        assert_eq!(list, vec![1, 5, 4, 0]);
    }

    #[test]
    fn recall_and_ndcg_follow_the_protocol() {
        let relevant = HashSet::from([7, 9]);
        let (recall, ndcg) = recall_ndcg(&[1, 7, 2], &relevant);
        assert_eq!(recall, 0.5);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg - (1.0 / 3f64.log2()) / ideal).abs() < 1e-12);
    }
}
