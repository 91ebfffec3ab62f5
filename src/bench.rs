//! Load harnesses behind the benchmarks in `docs/PERFORMANCE.md` that are not criterion
//! micro-benchmarks.
//!
//! [`catch_up`]: processor catch-up. A log is filled with a synthetic stream (not timed, not
//! synced), then a processor starts on an empty state, exactly as a node rebuilding its state
//! from the log does (same [`Engine`] wiring, same batch size as `serve`), and applies every
//! event; the figure is events applied per second of that phase, commits included.
//!
//! The storage ceiling beside it: the write batches that phase committed, recorded, then
//! written as they are to a fresh state store (same column families and options) on the same
//! disk. Its events per second is what RocksDB alone allows for those records; the ratio of the
//! two is the share of the ceiling the processor reaches.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use marquee_ingest::{EmbeddedLog, EmbeddedLogConfig, EventLog};
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
}

impl Default for CatchUpOptions {
    fn default() -> Self {
        CatchUpOptions {
            events: 1_000_000,
            users: 100_000,
            items: 20_000,
            partitions: 4,
            model: ModelConfig::default(),
            processor: ProcessorConfig::default(),
            seed: 42,
        }
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
    let log = EmbeddedLog::open(
        dir.join("log"),
        EmbeddedLogConfig {
            partitions: options.partitions,
            sync: false,
            ..EmbeddedLogConfig::default()
        },
    )
    .context("opening the log")?;
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
    let Engine { mut processor, .. } = Engine::open(
        log.clone(),
        store.clone(),
        options.model.clone(),
        IndexConfig::default(),
        options.processor.clone(),
        Metrics::new(options.partitions),
    )?;
    store.record_commits();
    let started = Instant::now();
    let mut batches = 0u64;
    let mut applied = 0u64;
    loop {
        let consumed = processor.step()?;
        if consumed == 0 {
            break;
        }
        applied += consumed as u64;
        batches += 1;
    }
    let catch_up_seconds = started.elapsed().as_secs_f64();
    drop(processor);
    log.close();
    let recorded = store.take_recorded();
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
