//! The ranking's CPU cost per request, without HTTP: a node opened on a kept data directory
//! (for example the serving benchmark's `MARQUEE_BENCH_DATA`), then every user's
//! recommendations asked on one thread, `--rounds` times over, as the API asks them
//! (`count` 10, seen items excluded). Prints requests/s and the latency percentiles; builds are
//! compared on the same directory, alternated (docs/PERFORMANCE.md).
//!
//! `cargo run -p marquee-bench --bin query_cost -- --data-dir DIR --users 610 --first 1
//!  [--prefix u] [--rounds 20] [--config marquee.toml]`
//!
//! `--config` lays a node configuration file over the defaults (as `marquee serve --config`),
//! so settings such as `[index] ef_search` are compared on one state.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use marquee_node::{NodeConfig, Overrides, RunningNode, Settings};
use marquee_stream_processor::query::RecommendationQuery;

// The node's allocator, so that the costs are the node's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// A data directory no other node has open.
    #[arg(long)]
    data_dir: PathBuf,
    /// Users asked for: `{prefix}{first}` .. `{prefix}{first + users − 1}`.
    #[arg(long)]
    users: u64,
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// `u` for `marquee generate`'s users, empty for MovieLens ids.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Passes over every user; the first one more is a warm-up, not counted.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// A node configuration file laid over the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let listen = "127.0.0.1:0".parse().context("loopback address")?;
    let config = match &args.config {
        None => NodeConfig::new(&args.data_dir, listen),
        Some(path) => {
            let mut settings = Settings::from_file(path)?;
            settings.apply(Overrides {
                data_dir: Some(args.data_dir.clone()),
                listen: Some(listen),
                ..Overrides::default()
            });
            settings.resolve()?
        }
    };
    let node = RunningNode::start(config).await?;
    node.wait_ready().await?;
    let query = node
        .services()
        .context("services once ready")?
        .query
        .clone();
    let queries: Vec<RecommendationQuery> = (args.first..args.first + args.users)
        .map(|user| RecommendationQuery {
            user_id: format!("{}{user}", args.prefix),
            count: args.count,
            exclude_seen: true,
            genre: None,
            exclude: Vec::new(),
            options: Default::default(),
        })
        .collect();
    let report = tokio::task::spawn_blocking(move || -> Result<String> {
        let mut micros: Vec<f64> = Vec::with_capacity(queries.len() * args.rounds);
        let mut listed = 0usize;
        let mut total = 0.0f64;
        for round in 0..=args.rounds {
            for request in &queries {
                let started = Instant::now();
                let (_, list) = query.recommend(request)?;
                let took = started.elapsed().as_secs_f64();
                if round > 0 {
                    listed += list.len();
                    total += took;
                    micros.push(took * 1e6);
                }
            }
        }
        micros.sort_by(f64::total_cmp);
        let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
        Ok(format!(
            "{} requests on one thread: {:.0} requests/s, mean {:.1} µs, p50 {:.1} µs, \
             p99 {:.1} µs, max {:.1} µs; {:.2} items a list",
            micros.len(),
            micros.len() as f64 / total,
            total * 1e6 / micros.len() as f64,
            at(0.5),
            at(0.99),
            at(1.0),
            listed as f64 / micros.len() as f64,
        ))
    })
    .await??;
    println!("{report}");
    node.shutdown().await?;
    Ok(())
}
