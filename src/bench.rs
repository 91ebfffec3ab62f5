//! Load harnesses behind the benchmarks in `docs/PERFORMANCE.md` that are not criterion
//! micro-benchmarks.
//!
//! [`ingest`]: HTTP ingest of NDJSON batches, acknowledged durably, on a node started
//! in-process.
//!
//! [`freshness`]: from the 202 of a new user's first event to the first recommendations that
//! reflect it, on a node started in-process, with background ingest.
//!
//! [`catch_up`]: processor catch-up. A log is filled with a synthetic stream (not timed, not
//! synced), then a processor starts on an empty state, exactly as a node rebuilding its state
//! from the log does (same [`Engine`] wiring, same batch size as `serve`), and applies every
//! event; the figure is events applied per second of that phase, commits included.
//!
//! With `nodes` above 1, the partitions are split between that many nodes in one process, each
//! with its own state and processor loops, sharing their item changes through a change log (an
//! embedded one, or a topic beside the Fluvio event topic), as nodes on several machines do
//! (`docs/SCALING.md`). The figure is then events per second until every node's items count
//! every event; the seconds from the last node's last commit to that point are the change
//! log's lag at the end.
//!
//! The storage ceiling beside it: the write batches that phase committed, recorded, then
//! written as they are to a fresh state store (same column families and options) on the same
//! disk. Its events per second is what RocksDB alone allows for those records; the ratio of the
//! two is the share of the ceiling the processor reaches.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use marquee_ingest::{
    AnyChangeLog, AnyLog, ChangeLog, EmbeddedChangeLog, EmbeddedLog, EmbeddedLogConfig, EventLog,
    LogBackend,
};
use marquee_stream_processor::{Engine, Metrics, ModelConfig, ProcessorConfig};
use marquee_vector_store::{IndexConfig, StateStore, StoreConfig};
use serde::Serialize;

use crate::synthetic::{Synthetic, SyntheticConfig};

/// What a catch-up run is made of.
#[derive(Debug, Clone)]
pub struct CatchUpOptions {
    pub events: u64,
    pub users: u64,
    pub items: u64,
    pub partitions: u32,
    pub model: ModelConfig,
    pub processor: ProcessorConfig,
    pub seed: u64,
    /// The log filled and read: the embedded one under the run's directory (written without
    /// syncs: the fill is not what is measured), or a new topic of a Fluvio cluster.
    pub log: LogBackend,
    /// Nodes that split the partitions (1: one node applies them all).
    pub nodes: u32,
}

impl Default for CatchUpOptions {
    fn default() -> Self {
        CatchUpOptions {
            events: 1_000_000,
            users: 100_000,
            items: 20_000,
            partitions: 4,
            model: ModelConfig::default(),
            // One deterministic loop unless asked (`--workers`).
            processor: ProcessorConfig {
                workers: 1,
                ..ProcessorConfig::default()
            },
            seed: 42,
            log: LogBackend::Embedded,
            nodes: 1,
        }
    }
}

/// A Fluvio backend on a topic of its own for one benchmark run (`marquee-bench-<ms>`).
pub fn fluvio_bench_backend(endpoint: &str) -> LogBackend {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    LogBackend::Fluvio {
        endpoint: endpoint.to_owned(),
        topic: format!("marquee-bench-{millis}"),
        replication: 1,
    }
}

/// The figures of one catch-up run.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpReport {
    pub events: u64,
    pub users: u64,
    pub items: u64,
    pub partitions: u32,
    /// Seconds to fill the log (not part of the figure).
    pub fill_seconds: f64,
    /// Seconds from the processor's start on an empty state to the last commit.
    pub catch_up_seconds: f64,
    pub events_per_second: f64,
    /// Processor batches committed.
    pub batches: u64,
    /// Seconds to write the same batches raw to a fresh store.
    pub ceiling_seconds: f64,
    /// Events per second at that ceiling.
    pub ceiling_events_per_second: f64,
    /// Bytes of the committed batches.
    pub batch_bytes: u64,
    /// State size on disk after the run (SST files and write-ahead log).
    pub state_bytes: u64,
    /// Nodes that split the partitions.
    pub nodes: u32,
    /// With several nodes: seconds from the last node's last commit until every node's items
    /// counted every event (the change log's lag at the end of the run).
    pub changes_lag_seconds: f64,
    /// With several nodes: records in the change log after the run.
    pub change_records: u64,
}

fn directory_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => directory_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Fills a log under `dir` and rebuilds state from it; see the module docs.
pub fn catch_up(dir: &Path, options: &CatchUpOptions) -> Result<CatchUpReport> {
    let world = Synthetic::new(SyntheticConfig {
        seed: options.seed,
        users: options.users,
        items: options.items,
        events: options.events,
        ..SyntheticConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let log = match &options.log {
        LogBackend::Embedded => AnyLog::Embedded(
            EmbeddedLog::open(
                dir.join("log"),
                EmbeddedLogConfig {
                    partitions: options.partitions,
                    sync: false,
                    ..EmbeddedLogConfig::default()
                },
            )
            .context("opening the log")?,
        ),
        backend => runtime
            .block_on(AnyLog::open(backend, &dir.join("log"), options.partitions))
            .with_context(|| format!("opening the log ({})", backend.describe()))?,
    };
    let filling = Instant::now();
    let mut events = world.events();
    loop {
        let chunk: Vec<_> = (0..10_000).map_while(|_| events.next_event()).collect();
        if chunk.is_empty() {
            break;
        }
        runtime.block_on(log.append(chunk))?;
    }
    let fill_seconds = filling.elapsed().as_secs_f64();

    if options.nodes > 1 {
        return catch_up_nodes(dir, options, &runtime, log, fill_seconds);
    }
    let state_dir = dir.join("state");
    let store = StateStore::open(
        &state_dir,
        &StoreConfig {
            dimension: options.model.dimension,
            dedup_window: std::time::Duration::from_secs(7 * 24 * 3600),
            block_cache_bytes: 256 * 1024 * 1024,
        },
    )
    .context("opening the state")?;
    let metrics = Metrics::new(options.partitions);
    let Engine { mut processor, .. } = Engine::open(
        log.clone(),
        store.clone(),
        options.model.clone(),
        IndexConfig::default(),
        options.processor.clone(),
        metrics.clone(),
    )?;
    store.record_commits();
    let started = Instant::now();
    let mut applied = 0u64;
    if options.processor.workers <= 1 {
        loop {
            let consumed = processor.step()?;
            if consumed == 0 {
                break;
            }
            applied += consumed as u64;
        }
    } else {
        // The node's wiring: one loop per partition group, until every partition is applied.
        let ends = log.end_offsets()?;
        let handle = processor.handle();
        let cancel = tokio_util::sync::CancellationToken::new();
        let workers = processor.spawn_workers(options.processor.workers, cancel.clone());
        while handle.committed_offsets() != ends {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        cancel.cancel();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a processor worker panicked"))?;
        }
        applied = ends.iter().sum();
    }
    let catch_up_seconds = started.elapsed().as_secs_f64();
    check_applied(&[&metrics], applied)?;
    log.close();
    let recorded = store.take_recorded();
    let batches = recorded.len() as u64;
    let batch_bytes = recorded.iter().map(|data| data.len() as u64).sum();
    let state_bytes = directory_bytes(&state_dir);
    let ceiling = StateStore::open(
        dir.join("ceiling"),
        &StoreConfig {
            dimension: options.model.dimension,
            dedup_window: std::time::Duration::from_secs(7 * 24 * 3600),
            block_cache_bytes: 256 * 1024 * 1024,
        },
    )
    .context("opening the ceiling store")?;
    let writing = Instant::now();
    for data in &recorded {
        ceiling.write_raw(data)?;
    }
    let ceiling_seconds = writing.elapsed().as_secs_f64();
    Ok(CatchUpReport {
        events: applied,
        users: options.users,
        items: options.items,
        partitions: options.partitions,
        fill_seconds,
        catch_up_seconds,
        events_per_second: applied as f64 / catch_up_seconds,
        batches,
        ceiling_seconds,
        ceiling_events_per_second: applied as f64 / ceiling_seconds,
        batch_bytes,
        state_bytes,
        nodes: 1,
        changes_lag_seconds: 0.0,
        change_records: 0,
    })
}

/// Fails unless the processors counted `events` events, applied or skipped as duplicates: a
/// read that missed records (it happened, with Fluvio's default fetch size) reaches the end
/// offsets all the same.
fn check_applied(metrics: &[&Metrics], events: u64) -> Result<()> {
    let counted: u64 = metrics
        .iter()
        .flat_map(|metrics| {
            marquee_schemas::EventKind::ALL.iter().map(|kind| {
                metrics
                    .events_applied
                    .with_label_values(&[kind.as_str()])
                    .get()
                    + metrics
                        .events_duplicate
                        .with_label_values(&[kind.as_str()])
                        .get()
            })
        })
        .sum();
    anyhow::ensure!(
        counted == events,
        "the processors counted {counted} events of the {events} in the log"
    );
    Ok(())
}

/// [`catch_up`] with the partitions split between `options.nodes` nodes; see the module docs.
fn catch_up_nodes(
    dir: &Path,
    options: &CatchUpOptions,
    runtime: &tokio::runtime::Runtime,
    log: AnyLog,
    fill_seconds: f64,
) -> Result<CatchUpReport> {
    let changes = match &options.log {
        LogBackend::Embedded => {
            AnyChangeLog::Embedded(EmbeddedChangeLog::open(dir.join("changes"))?)
        }
        backend @ LogBackend::Fluvio { topic, .. } => runtime
            .block_on(AnyChangeLog::open(backend, &format!("{topic}-changes")))
            .context("opening the change log")?,
    };
    let ends = log.end_offsets()?;
    let events: u64 = ends.iter().sum();
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut nodes = Vec::new();
    let mut node_metrics = Vec::new();
    let started = Instant::now();
    for node in 0..options.nodes {
        let owned: Vec<u32> = (0..options.partitions)
            .filter(|partition| partition % options.nodes == node)
            .collect();
        let store = StateStore::open(
            dir.join(format!("state-{node}")),
            &StoreConfig {
                dimension: options.model.dimension,
                dedup_window: std::time::Duration::from_secs(7 * 24 * 3600),
                block_cache_bytes: 128 * 1024 * 1024,
            },
        )
        .context("opening a node's state")?;
        let metrics = Metrics::new(options.partitions);
        let Engine {
            items, processor, ..
        } = Engine::open(
            log.clone(),
            store,
            options.model.clone(),
            IndexConfig::default(),
            ProcessorConfig {
                partitions: Some(owned),
                ..options.processor.clone()
            },
            metrics.clone(),
        )?;
        let processor = processor.with_changes(changes.clone())?;
        let handle = processor.handle();
        let threads = processor.spawn_workers(options.processor.workers, cancel.clone());
        nodes.push((items, handle, threads));
        node_metrics.push(metrics);
    }
    let counted = |items: &marquee_vector_store::ItemTable| -> u64 {
        let table = items.read();
        table
            .numbers()
            .map(|number| table.event_count(number))
            .sum()
    };
    let mut applied_at = None;
    loop {
        if applied_at.is_none()
            && nodes
                .iter()
                .all(|(_, handle, _)| handle.lag_offsets(&ends) == ends)
        {
            applied_at = Some(started.elapsed().as_secs_f64());
        }
        if applied_at.is_some() && nodes.iter().all(|(items, _, _)| counted(items) == events) {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(1800) {
            cancel.cancel();
            anyhow::bail!(
                "after 30 min, the nodes' items count {:?} of {events} events",
                nodes
                    .iter()
                    .map(|(items, _, _)| counted(items))
                    .collect::<Vec<_>>()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let catch_up_seconds = started.elapsed().as_secs_f64();
    cancel.cancel();
    for (_, _, threads) in nodes {
        for thread in threads {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a processor thread panicked"))?;
        }
    }
    check_applied(&node_metrics.iter().collect::<Vec<_>>(), events)?;
    let change_records = changes.end_offset()?;
    log.close();
    let state_bytes = (0..options.nodes)
        .map(|node| directory_bytes(&dir.join(format!("state-{node}"))))
        .sum();
    Ok(CatchUpReport {
        events,
        users: options.users,
        items: options.items,
        partitions: options.partitions,
        fill_seconds,
        catch_up_seconds,
        events_per_second: events as f64 / catch_up_seconds,
        batches: 0,
        ceiling_seconds: f64::NAN,
        ceiling_events_per_second: f64::NAN,
        batch_bytes: 0,
        state_bytes,
        nodes: options.nodes,
        changes_lag_seconds: catch_up_seconds - applied_at.unwrap_or(catch_up_seconds),
        change_records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ingest_acknowledges_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let options = IngestOptions {
            events: 5_000,
            batch: 500,
            connections: 3,
            seed: 4,
            log: LogBackend::Embedded,
        };
        let report = ingest(dir.path(), &options).await.unwrap();
        assert_eq!(report.events, 5_000);
        assert!(report.p50_ms <= report.p99_ms);
        // Every acknowledged event is in the log.
        let log = EmbeddedLog::open(dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
        assert_eq!(log.end_offsets().unwrap().iter().sum::<u64>(), 5_000);
        log.close();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn freshness_measures_every_trial() {
        let dir = tempfile::tempdir().unwrap();
        let report = freshness(
            dir.path(),
            &FreshnessOptions {
                trials: 5,
                warmup_events: 20_000,
                background_rate: 1_000,
                users: 500,
                items: 300,
                seed: 3,
                index: IndexConfig::default(),
            },
        )
        .await
        .unwrap();
        assert_eq!(report.timeouts, 0);
        assert!(report.p50_ms.is_finite() && report.p50_ms <= report.p99_ms);
        assert!(report.polls_per_trial >= 1.0);
    }

    #[test]
    fn catch_up_on_two_nodes_counts_every_event_on_both() {
        let dir = tempfile::tempdir().unwrap();
        let report = catch_up(
            dir.path(),
            &CatchUpOptions {
                events: 3_000,
                users: 200,
                items: 300,
                nodes: 2,
                ..CatchUpOptions::default()
            },
        )
        .unwrap();
        // The run ends once both nodes' items count all 3,000 events.
        assert_eq!(report.events, 3_000);
        assert!(report.change_records >= 2, "both nodes shipped changes");
        assert!(report.changes_lag_seconds >= 0.0);
    }

    #[test]
    fn catch_up_applies_every_event_of_the_filled_log() {
        let dir = tempfile::tempdir().unwrap();
        let report = catch_up(
            dir.path(),
            &CatchUpOptions {
                events: 3_000,
                users: 200,
                items: 300,
                ..CatchUpOptions::default()
            },
        )
        .unwrap();
        assert_eq!(report.events, 3_000);
        assert!(report.batches >= 1);
        assert!(report.state_bytes > 0);
        assert!(report.batch_bytes > 0);
    }
}

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

/// Sums the samples of one metric family (all label sets) in a Prometheus text exposition.
fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Starts a node and waits until it is ready; returns it and its base URL.
async fn start_node(config: marquee_api::NodeConfig) -> Result<(marquee_api::RunningNode, String)> {
    let node = marquee_api::RunningNode::start(config)
        .await
        .context("starting the node")?;
    node.wait_ready()
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    let base = node.url();
    Ok((node, base))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at]
}

/// Freshness on a node started here: see `docs/PERFORMANCE.md`. Each trial takes X's top 20
/// similar items, posts a five-star rating of X by a brand-new user, and from its 202 polls
/// that user's recommendations until one of them appears, while background ingest runs.
pub async fn freshness(dir: &Path, options: &FreshnessOptions) -> Result<FreshnessReport> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    let mut config = marquee_api::NodeConfig::new(dir, "127.0.0.1:0".parse().expect("an address"));
    config.index = options.index.clone();
    let (node, base) = start_node(config).await?;
    let world = Synthetic::new(SyntheticConfig {
        seed: options.seed,
        users: options.users,
        items: options.items,
        events: u64::MAX,
        ..SyntheticConfig::default()
    });
    let client = crate::client::Client::new(&base)?;
    let items: Vec<_> = world.items().collect();
    client.put_items(&items).await?;
    let mut events = world.events();
    client
        .send_all_events(
            (0..options.warmup_events).map_while(|_| events.next_event()),
            options.warmup_events,
            "warm-up",
        )
        .await?;

    // The trials start on a caught-up processor.
    loop {
        let ready: serde_json::Value = reqwest::get(format!("{base}/readyz")).await?.json().await?;
        if ready["processor_lag_events"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Background ingest: batches of 100 every 100/rate seconds, new ids, timestamps now.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let background = {
        let stop = stop.clone();
        let sent = sent.clone();
        let client = crate::client::Client::new(&base)?;
        let mut stream: Vec<_> = (0..500_000).map_while(|_| events.next_event()).collect();
        let rate = options.background_rate.max(1);
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(100.0 / rate as f64);
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut at = 0usize;
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_millis() as i64)
                    .unwrap_or(0);
                let mut batch = Vec::with_capacity(100);
                for _ in 0..100 {
                    let mut event = stream[at % stream.len()].clone();
                    event.event_id = uuid::Uuid::now_v7().to_string();
                    event.timestamp = now;
                    batch.push(event);
                    at += 1;
                }
                if let Ok(answer) = client.send_events(&batch).await {
                    sent.fetch_add(answer.accepted as u64, Ordering::Relaxed);
                }
            }
            stream.clear();
        })
    };

    let http = reqwest::Client::new();
    let ids = |answer: &serde_json::Value| -> Vec<String> {
        answer["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["item_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let processor_figures = || async {
        let text = reqwest::get(format!("{base}/metrics"))
            .await?
            .text()
            .await?;
        anyhow::Ok((
            metric_sum(&text, "marquee_processor_batch_seconds_count"),
            metric_sum(&text, "marquee_processor_batch_seconds_sum"),
            metric_sum(&text, "marquee_processor_events_applied_total"),
        ))
    };
    let (batches_before, batch_seconds_before, applied_before) = processor_figures().await?;
    let mut latencies = Vec::with_capacity(options.trials);
    let mut timeouts = 0usize;
    let mut polls = 0u64;
    let started = Instant::now();
    let sent_before = sent.load(Ordering::Relaxed);
    let mut candidate = 0u64;
    for trial in 0..options.trials {
        // An item with a full top 20 (nearly every one after the warm-up).
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
            let similar = ids(&answer);
            if similar.len() == 20 {
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
            polls += 1;
            let answer: serde_json::Value = http.get(&url).send().await?.json().await?;
            if ids(&answer).iter().any(|id| similar.contains(id)) {
                latencies.push(acknowledged.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if acknowledged.elapsed() > Duration::from_secs(10) {
                timeouts += 1;
                break;
            }
        }
    }
    let background_achieved =
        (sent.load(Ordering::Relaxed) - sent_before) as f64 / started.elapsed().as_secs_f64();
    let (batches_after, batch_seconds_after, applied_after) = processor_figures().await?;
    let batches = batches_after - batches_before;
    stop.store(true, Ordering::Relaxed);
    background.await?;
    node.shutdown()
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
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

/// What an HTTP ingest run is made of.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub events: u64,
    /// Events per request (NDJSON).
    pub batch: usize,
    /// Requests in flight at once.
    pub connections: usize,
    pub seed: u64,
    /// The node's log.
    pub log: LogBackend,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            events: 1_000_000,
            batch: 1_000,
            connections: 8,
            seed: 42,
            log: LogBackend::Embedded,
        }
    }
}

/// The figures of one HTTP ingest run.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub events: u64,
    pub batch: usize,
    pub connections: usize,
    pub seconds: f64,
    pub events_per_second: f64,
    /// Request latency (POST to 202), milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The storage ceiling measured after the run (embedded log only): the same events as raw
    /// RocksDB write batches of `batch` records, synced, from `connections` threads, to a new
    /// log on the same disk ([`marquee_ingest::embedded::write_ceiling`]), in events/s.
    pub ceiling_events_per_second: Option<f64>,
}

/// HTTP ingest on a node started here with the `serve` defaults (the log syncs before each
/// 202; concurrent requests share a sync through group commit): `connections` clients post
/// NDJSON batches of synthetic events, encoded before the clock starts, until all are
/// acknowledged.
pub async fn ingest(dir: &Path, options: &IngestOptions) -> Result<IngestReport> {
    use std::sync::Arc;

    let mut config = marquee_api::NodeConfig::new(dir, "127.0.0.1:0".parse().expect("an address"));
    config.log = options.log.clone();
    let partitions = config.partitions;
    let (node, base) = start_node(config).await?;
    let world = Synthetic::new(SyntheticConfig {
        seed: options.seed,
        events: options.events,
        ..SyntheticConfig::default()
    });
    let mut events = world.events();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut batches = Vec::new();
    loop {
        let mut body = Vec::with_capacity(options.batch * 160);
        let mut batch = Vec::with_capacity(options.batch);
        while batch.len() < options.batch {
            let Some(event) = events.next_event() else {
                break;
            };
            serde_json::to_writer(&mut body, &event)?;
            body.push(b'\n');
            batch.push(event);
        }
        if batch.is_empty() {
            break;
        }
        bodies.push(body);
        batches.push(batch);
    }
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..options.connections.max(1) {
        let bodies = bodies.clone();
        let next = next.clone();
        let url = format!("{base}/v1/events");
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            loop {
                let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(at) else {
                    break;
                };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(response.status() == 202, "status {}", response.status());
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    node.shutdown()
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    latencies.sort_by(f64::total_cmp);
    let ceiling_events_per_second = match options.log {
        LogBackend::Embedded => {
            let seconds = marquee_ingest::embedded::write_ceiling(
                dir.join("ceiling-log"),
                partitions,
                &batches,
                options.connections,
            )?;
            let written = batches.iter().map(Vec::len).sum::<usize>();
            Some(written as f64 / seconds)
        }
        _ => None,
    };
    Ok(IngestReport {
        events: options.events,
        batch: options.batch,
        connections: options.connections,
        seconds,
        events_per_second: options.events as f64 / seconds,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        ceiling_events_per_second,
    })
}
