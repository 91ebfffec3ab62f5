//! [`ingest`]: HTTP ingest of NDJSON batches, acknowledged durably, on a node started
//! in-process.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_ingest::LogBackend;
use marquee_node::NodeConfig;
use serde::Serialize;

use crate::shared::{quantile, start_node};

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

    let mut config = NodeConfig::new(dir, "127.0.0.1:0".parse().expect("an address"));
    config.auth = marquee_node::AuthMode::Off;
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
    node.shutdown().await?;
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
