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
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_ingest::{
    AnyChangeLog, AnyLog, ChangeLog, EmbeddedChangeLog, EmbeddedLog, EmbeddedLogConfig, EventLog,
    LogBackend,
};
use marquee_stream_processor::{Engine, Metrics, ModelConfig, ProcessorConfig};
use marquee_vector_store::{IndexConfig, StateStore, StoreConfig};
use serde::Serialize;

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
    /// Encryption at rest of the log and the state (a key made for the run), on one node: what
    /// sealing every record and value costs the catch-up.
    pub encrypted: bool,
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
            encrypted: false,
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
    let cipher = if options.encrypted {
        anyhow::ensure!(
            options.nodes == 1 && options.log == LogBackend::Embedded,
            "--encrypted runs one node on the embedded log"
        );
        Some(marquee_schemas::Cipher::from_hex(
            &marquee_schemas::Cipher::generate_hex()?,
        )?)
    } else {
        None
    };
    let log = match &options.log {
        LogBackend::Embedded => AnyLog::Embedded(
            EmbeddedLog::open(
                dir.join("log"),
                EmbeddedLogConfig {
                    partitions: options.partitions,
                    sync: false,
                    cipher: cipher.clone(),
                    ..EmbeddedLogConfig::default()
                },
            )
            .context("opening the log")?,
        ),
        backend => runtime
            .block_on(AnyLog::open(
                backend,
                &dir.join("log"),
                options.partitions,
                None,
            ))
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
            dimension: options.model.stored_dimension(),
            dedup_window: std::time::Duration::from_secs(7 * 24 * 3600),
            block_cache_bytes: 256 * 1024 * 1024,
            cipher,
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
            dimension: options.model.stored_dimension(),
            dedup_window: std::time::Duration::from_secs(7 * 24 * 3600),
            block_cache_bytes: 256 * 1024 * 1024,
            cipher: None,
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
                dimension: options.model.stored_dimension(),
                dedup_window: std::time::Duration::from_secs(7 * 24 * 3600),
                block_cache_bytes: 128 * 1024 * 1024,
                cipher: None,
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
