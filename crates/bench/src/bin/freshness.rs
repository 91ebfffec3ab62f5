//! Freshness: from the 202 of a new user's first event to the first recommendations that reflect
//! it, under background ingest (docs/PERFORMANCE.md).
//!
//! `cargo run -p marquee-bench --bin freshness -- --trials 1000 [--from-index] [--json FILE]`

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use marquee_bench::freshness::{FreshnessOptions, freshness};
use marquee_vector_store::IndexConfig;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000)]
    trials: usize,
    /// Events sent before the trials.
    #[arg(long, default_value_t = 200_000)]
    warmup_events: u64,
    /// Background ingest during the trials, events per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// The index rebuilds after this many changed items [default: the node's default].
    #[arg(long)]
    rebuild_after_changes: Option<usize>,
    /// What must appear is one of X's top-20 similar items proposed by the index, listed with
    /// the index among its sources.
    #[arg(long)]
    from_index: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let report = freshness(
        dir.path(),
        &FreshnessOptions {
            trials: args.trials,
            warmup_events: args.warmup_events,
            background_rate: args.rate,
            index: IndexConfig {
                rebuild_after_changes: args
                    .rebuild_after_changes
                    .unwrap_or(IndexConfig::default().rebuild_after_changes),
                ..IndexConfig::default()
            },
            from_index: args.from_index,
            ..FreshnessOptions::default()
        },
    )
    .await?;
    println!(
        "freshness over {} trials ({} timed out), background ingest {:.0} events/s (asked {}): \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.1} polls per trial; \
         {:.0} processor batches of {:.0} events, {:.2} ms each",
        report.trials,
        report.timeouts,
        report.background_achieved,
        report.background_rate,
        report.p50_ms,
        report.p90_ms,
        report.p99_ms,
        report.max_ms,
        report.polls_per_trial,
        report.batches,
        report.mean_batch_events,
        report.mean_batch_ms
    );
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
