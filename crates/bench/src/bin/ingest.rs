//! HTTP ingest: NDJSON batches acknowledged durably (docs/PERFORMANCE.md).
//!
//! `cargo run -p marquee-bench --bin ingest -- --events 1000000 --batch 1000 --connections 8`

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use marquee_bench::catch_up::fluvio_bench_backend;
use marquee_bench::ingest::{IngestOptions, ingest};
use marquee_ingest::LogBackend;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per request.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Use a new topic of the Fluvio cluster whose SC listens here (HOST:PORT) instead of the
    /// embedded log.
    #[arg(long)]
    fluvio_endpoint: Option<String>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let report = ingest(
        dir.path(),
        &IngestOptions {
            events: args.events,
            batch: args.batch,
            connections: args.connections,
            log: args
                .fluvio_endpoint
                .as_deref()
                .map_or(LogBackend::Embedded, fluvio_bench_backend),
            ..IngestOptions::default()
        },
    )
    .await?;
    println!(
        "ingest: {} events in batches of {} over {} connections in {:.2} s = {:.0} events/s \
         (request p50 {:.1} ms, p99 {:.1} ms)",
        report.events,
        report.batch,
        report.connections,
        report.seconds,
        report.events_per_second,
        report.p50_ms,
        report.p99_ms
    );
    if let Some(ceiling) = report.ceiling_events_per_second {
        println!(
            "ceiling: the same batches as raw synced RocksDB writes from {} threads = {:.0} \
             events/s; ingest / ceiling = {:.2}",
            report.connections,
            ceiling,
            report.events_per_second / ceiling
        );
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
