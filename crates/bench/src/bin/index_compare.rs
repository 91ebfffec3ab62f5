//! The index benchmark's Rust side (docs/PERFORMANCE-JOURNAL.md, "The index"); `scripts/bench/index.sh`
//! runs it and then `hnswlib` on the data it writes.
//!
//! `cargo run -p marquee-bench --bin index_compare -- --data-dir DIR [--users 1000000]
//!  [--queries 2000] [--m 8,16,32] [--ef 10,40,128] [--ef-construction 100] [--out DIR]
//!  [--json FILE]`

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use marquee_bench::index::{IndexBenchOptions, load_input, run};

#[derive(Debug, Parser)]
struct Args {
    /// A node's data directory (a running node is not disturbed).
    #[arg(long)]
    data_dir: PathBuf,
    /// User ids are u0 .. u{users − 1}, as `marquee generate` makes them.
    #[arg(long, default_value_t = 1_000_000)]
    users: u64,
    /// User vectors to query with.
    #[arg(long, default_value_t = 2000)]
    queries: usize,
    /// `M` values, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = IndexBenchOptions::default().max_connections)]
    m: Vec<usize>,
    /// `ef` values, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = IndexBenchOptions::default().ef_search)]
    ef: Vec<usize>,
    /// Candidate list while building, for every `M`.
    #[arg(long, default_value_t = IndexBenchOptions::default().ef_construction)]
    ef_construction: usize,
    /// Write the vectors, queries and exact answers here, for hnswlib.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let input = load_input(&args.data_dir, args.users, args.queries, 7)?;
    let options = IndexBenchOptions {
        max_connections: args.m,
        ef_search: args.ef,
        ef_construction: args.ef_construction,
    };
    let report = run(&input, &options, args.out.as_deref())?;
    println!(
        "{} items, {} dimensions (searched space), {} queries; exact search {:.1} s",
        report.items, report.dimension, report.queries, report.exact_seconds
    );
    println!("| library | M | ef | recall@10 | queries/s (1 thread) | build, s (2 threads) |");
    println!("|---|---|---|---|---|---|");
    for row in &report.rows {
        println!(
            "| {} | {} | {} | {:.4} | {:.0} | {:.1} |",
            row.library,
            row.max_connections,
            row.ef_search,
            row.recall_at_10,
            row.queries_per_second,
            row.build_seconds
        );
    }
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
