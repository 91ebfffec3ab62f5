//! [`freshness`]: from the 202 of a new user's first event to the first recommendations that
//! reflect it, on a node started in-process, with background ingest.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_node::NodeConfig;
use marquee_schemas::{Event, Item};
use marquee_vector_store::IndexConfig;
use serde::Serialize;

use crate::shared::{load, metric_sum, quantile, start_node};

/// What a freshness run is made of.
#[derive(Debug, Clone)]
pub struct FreshnessOptions {
    /// Trials: one new user, one five-star rating, polled until the list reflects it.
    pub trials: usize,
    /// Events ingested before the trials (through HTTP, as the demo does).
    pub warmup_events: u64,
    /// Background ingest during the trials, events per second.
    pub background_rate: u64,
    pub users: u64,
    pub items: u64,
    pub seed: u64,
    /// The node's index settings (the defaults of `serve` unless changed).
    pub index: IndexConfig,
    /// What must appear is one of X's top-20 similar items that the index proposed (its
    /// `sources` name `index`), listed for the user with the index among its sources too.
    pub from_index: bool,
}

impl Default for FreshnessOptions {
    fn default() -> Self {
        FreshnessOptions {
            trials: 1_000,
            warmup_events: 200_000,
            background_rate: 10_000,
            users: 20_000,
            items: 5_000,
            seed: 42,
            index: IndexConfig::default(),
            from_index: false,
        }
    }
}

/// The figures of one freshness run, in milliseconds from the 202 to the first list that
/// holds one of the rated item's top-20 similar items.
#[derive(Debug, Clone, Serialize)]
pub struct FreshnessReport {
    pub trials: usize,
    /// Trials that saw no such list within 10 s.
    pub timeouts: usize,
    pub background_rate: u64,
    /// Background events acknowledged during the trials, per second.
    pub background_achieved: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Recommendation requests per trial, on average (the polling).
    pub polls_per_trial: f64,
    /// Processor batches during the trials, their mean size and duration (from `/metrics`).
    pub batches: f64,
    pub mean_batch_events: f64,
    pub mean_batch_ms: f64,
}

/// Freshness on a node started here: see `docs/PERFORMANCE.md`. Each trial takes X's top 20
/// similar items, posts a five-star rating of X by a brand-new user, and from its 202 polls
/// that user's recommendations until one of them appears, while background ingest runs.
pub async fn freshness(dir: &Path, options: &FreshnessOptions) -> Result<FreshnessReport> {
    let mut config = NodeConfig::new(dir, "127.0.0.1:0".parse().expect("an address"));
    config.auth = marquee_node::AuthMode::Off;
    config.index = options.index.clone();
    let (node, base) = start_node(config).await?;
    let world = Synthetic::new(SyntheticConfig {
        seed: options.seed,
        users: options.users,
        items: options.items,
        events: u64::MAX,
        ..SyntheticConfig::default()
    });
    let client = marquee_client::Client::builder(&base).build()?;
    let items: Vec<_> = world.items().collect();
    let mut events = world.events();
    load(
        &client,
        &items,
        (0..options.warmup_events).map_while(|_| events.next_event()),
    )
    .await?;
    wait_caught_up(&base).await?;

    let stream: Vec<_> = (0..500_000).map_while(|_| events.next_event()).collect();
    let background = Background::start(client, stream, options.background_rate);
    let (batches_before, batch_seconds_before, applied_before) = processor_figures(&base).await?;
    let started = Instant::now();
    let sent_before = background.sent();
    let trials = run_trials(&base, &items, options).await?;
    let background_achieved =
        (background.sent() - sent_before) as f64 / started.elapsed().as_secs_f64();
    let (batches_after, batch_seconds_after, applied_after) = processor_figures(&base).await?;
    let batches = batches_after - batches_before;
    background.stop().await?;
    node.shutdown().await?;
    let Trials {
        mut latencies,
        timeouts,
        polls,
    } = trials;
    latencies.sort_by(f64::total_cmp);
    Ok(FreshnessReport {
        trials: options.trials,
        timeouts,
        background_rate: options.background_rate,
        background_achieved,
        p50_ms: quantile(&latencies, 0.5),
        p90_ms: quantile(&latencies, 0.9),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        polls_per_trial: polls as f64 / options.trials.max(1) as f64,
        batches,
        mean_batch_events: (applied_after - applied_before) / batches.max(1.0),
        mean_batch_ms: 1000.0 * (batch_seconds_after - batch_seconds_before) / batches.max(1.0),
    })
}

/// Waits until the processor applied everything appended.
async fn wait_caught_up(base: &str) -> Result<()> {
    loop {
        let ready: serde_json::Value = reqwest::get(format!("{base}/readyz")).await?.json().await?;
        if ready["processor_lag_events"] == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Processor batches, their total seconds and the events applied, from `/metrics`.
async fn processor_figures(base: &str) -> Result<(f64, f64, f64)> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    Ok((
        metric_sum(&text, "marquee_processor_batch_seconds_count"),
        metric_sum(&text, "marquee_processor_batch_seconds_sum"),
        metric_sum(&text, "marquee_processor_events_applied_total"),
    ))
}

/// Background ingest: batches of 100 every 100/rate seconds, new ids, timestamps now.
struct Background {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    fn start(client: marquee_client::Client, mut stream: Vec<Event>, rate: u64) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stopping, counting) = (stop.clone(), sent.clone());
        let task = tokio::spawn(async move {
            let period = Duration::from_secs_f64(100.0 / rate.max(1) as f64);
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut at = 0usize;
            while !stopping.load(Ordering::Relaxed) {
                ticker.tick().await;
                let now = marquee_schemas::now_ms();
                let mut batch = Vec::with_capacity(100);
                for _ in 0..100 {
                    let mut event = stream[at % stream.len()].clone();
                    event.event_id = uuid::Uuid::now_v7().to_string();
                    event.timestamp = now;
                    batch.push(event);
                    at += 1;
                }
                if let Ok(answer) = client.send_events(&batch).await {
                    counting.fetch_add(answer.accepted, Ordering::Relaxed);
                }
            }
            stream.clear();
        });
        Background { stop, sent, task }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    async fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// What the trials measured.
struct Trials {
    latencies: Vec<f64>,
    timeouts: usize,
    polls: u64,
}

/// The ids of a list's items; with `from_index`, only those whose sources name the index.
fn item_ids(answer: &serde_json::Value, from_index: bool) -> Vec<String> {
    let indexed = |item: &serde_json::Value| {
        !from_index
            || item["sources"]
                .as_array()
                .is_some_and(|sources| sources.iter().any(|source| source == "index"))
    };
    answer["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|item| indexed(item))
                .filter_map(|item| item["item_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The trials (see [`freshness`]).
async fn run_trials(base: &str, items: &[Item], options: &FreshnessOptions) -> Result<Trials> {
    let http = reqwest::Client::new();
    let mut trials = Trials {
        latencies: Vec::with_capacity(options.trials),
        timeouts: 0,
        polls: 0,
    };
    let mut candidate = 0u64;
    for trial in 0..options.trials {
        // An item with a full top 20 (nearly every one after the warm-up), of which the index
        // proposed at least one when that is what must appear.
        let (item, similar) = loop {
            candidate += 1;
            let item = items[((candidate * 7_919) % items.len() as u64) as usize]
                .item_id
                .clone();
            let answer: serde_json::Value = http
                .get(format!("{base}/v1/items/{item}/similar?count=20"))
                .send()
                .await?
                .json()
                .await?;
            let similar = item_ids(&answer, options.from_index);
            if item_ids(&answer, false).len() == 20 && !similar.is_empty() {
                break (item, similar);
            }
        };
        let user = format!("fresh-{}-{trial}", options.seed);
        let event =
            serde_json::json!({"user_id": user, "item_id": item, "kind": "rating", "value": 5});
        let response = http
            .post(format!("{base}/v1/events"))
            .json(&event)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 202, "the rating was not accepted");
        let acknowledged = Instant::now();
        let url = format!("{base}/v1/users/{user}/recommendations?count=10");
        loop {
            trials.polls += 1;
            let answer: serde_json::Value = http.get(&url).send().await?.json().await?;
            if item_ids(&answer, options.from_index)
                .iter()
                .any(|id| similar.contains(id))
            {
                trials
                    .latencies
                    .push(acknowledged.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if acknowledged.elapsed() > Duration::from_secs(10) {
                trials.timeouts += 1;
                break;
            }
        }
    }
    Ok(trials)
}
