//! Processor catch-up: state rebuilt from a filled log (docs/PERFORMANCE.md).
//!
//! `cargo run -p marquee-bench --bin catch_up -- --events 1000000 [--fluvio-endpoint HOST:PORT]
//! [--workers N] [--nodes N] [--encrypted] [--json FILE]`

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use marquee_bench::catch_up::{CatchUpOptions, catch_up, fluvio_bench_backend};
use marquee_ingest::LogBackend;
use marquee_stream_processor::ProcessorConfig;

#[derive(Debug, Parser)]
struct Args {
    /// Events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Synthetic users.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Synthetic items.
    #[arg(long, default_value_t = 20_000)]
    items: u64,
    /// Log partitions.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Most events read from one partition per batch [default: the processor's default].
    #[arg(long)]
    batch: Option<usize>,
    /// Processor loops, each owning a group of partitions (the node's wiring); 1 runs the
    /// single deterministic loop.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Nodes that split the partitions, in this process, sharing a change log (each runs
    /// `--workers` loops).
    #[arg(long, default_value_t = 1)]
    nodes: u32,
    /// Directory for the log and the state (a temporary one when absent).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use a new topic of the Fluvio cluster whose SC listens here (HOST:PORT) instead of the
    /// embedded log.
    #[arg(long)]
    fluvio_endpoint: Option<String>,
    /// Encrypt the log and the state at rest (a key made for the run).
    #[arg(long)]
    encrypted: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = tempfile::tempdir()?;
    let dir = args.dir.unwrap_or_else(|| scratch.path().to_path_buf());
    let report = catch_up(
        &dir,
        &CatchUpOptions {
            events: args.events,
            users: args.users,
            items: args.items,
            partitions: args.partitions,
            processor: ProcessorConfig {
                max_batch_events: args
                    .batch
                    .unwrap_or(ProcessorConfig::default().max_batch_events),
                workers: args.workers,
                ..ProcessorConfig::default()
            },
            log: args
                .fluvio_endpoint
                .as_deref()
                .map_or(LogBackend::Embedded, fluvio_bench_backend),
            nodes: args.nodes,
            encrypted: args.encrypted,
            ..CatchUpOptions::default()
        },
    )?;
    println!(
        "catch-up: {} events in {:.2} s = {:.0} events/s ({} batches; log filled in {:.1} s; state {:.1} MiB)",
        report.events,
        report.catch_up_seconds,
        report.events_per_second,
        report.batches,
        report.fill_seconds,
        report.state_bytes as f64 / (1024.0 * 1024.0)
    );
    if report.nodes > 1 {
        println!(
            "{} nodes: every node's items counted every event {:.3} s after the last commit; {} change records",
            report.nodes, report.changes_lag_seconds, report.change_records
        );
    } else {
        println!(
            "ceiling: the same {} batches ({:.1} MiB) written raw in {:.2} s = {:.0} events/s; catch-up reaches {:.0}% of it",
            report.batches,
            report.batch_bytes as f64 / (1024.0 * 1024.0),
            report.ceiling_seconds,
            report.ceiling_events_per_second,
            100.0 * report.events_per_second / report.ceiling_events_per_second
        );
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
