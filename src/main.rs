//! `marquee`: serve, demo, import, evaluate, back up and operate a Marquee node. Each command is
//! a file of `commands/`; the node itself is `marquee_node`'s.

mod args;
mod commands;
mod logging;
mod progress;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use commands::backfill::{BackfillArgs, BackfillSource};

use crate::args::{NodeArgs, SyntheticArgs};
use crate::logging::LogFormat;

/// mimalloc instead of glibc's allocator: a query allocates its candidate lists and response,
/// and under load glibc's `malloc`, `free` and their consolidation took 15% of a serving node's
/// CPU (`docs/PERFORMANCE.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "marquee", version, about = "Real-time movie recommendations")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as JSON or text; `auto` writes JSON unless standard error is a terminal.
    #[arg(
        long,
        global = true,
        env = "MARQUEE_LOG_FORMAT",
        value_enum,
        default_value = "auto"
    )]
    log_format: LogFormat,
    /// Export traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318).
    #[arg(long, global = true, env = "MARQUEE_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: ingest, processor and API.
    Serve {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Run a node with a generated catalogue and a live stream of synthetic viewers.
    Demo {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        synthetic: SyntheticArgs,
        /// Events sent before the live stream starts (deterministic ids: a restart re-sends
        /// them and changes nothing).
        #[arg(long, default_value_t = 150_000)]
        warmup_events: u64,
        /// Live events per second after the warm-up.
        #[arg(long, default_value_t = 50)]
        rate: u64,
    },
    /// Send a data set to a running node through its ingest API.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Measure recommendation quality on a MovieLens release (docs/QUALITY.md).
    Eval(commands::eval::EvalArgs),
    /// Take an online, consistent backup of a running node into DIR (on the node's machine).
    Backup {
        /// A new (absent or empty) directory inside the node's `backup_root`: a name such as
        /// `2026-12-07`, or an absolute path under it.
        dir: PathBuf,
        #[command(flatten)]
        node: NodeUrl,
    },
    /// Send historical events to a running node with their original timestamps: an NDJSON
    /// file, or `backfill movielens DIR`; resumable, optionally rate-limited.
    #[command(args_conflicts_with_subcommands = true)]
    Backfill {
        /// An NDJSON file of events, each with its `timestamp`.
        file: Option<PathBuf>,
        #[command(subcommand)]
        source: Option<BackfillSource>,
        #[command(flatten)]
        options: BackfillArgs,
    },
    /// Send the events other systems write to a topic (Fluvio, or an NDJSON file followed as it
    /// grows) to a running node, at least once, each applied once (docs/INTEGRATIONS.md).
    Intake(commands::intake::IntakeArgs),
    /// Rebuild the state from the log into a new data directory, beside a node that keeps
    /// serving (docs/OPERATIONS.md says how to switch to it).
    Replay(commands::replay::ReplayArgs),
    /// Restore a backup into a data directory that holds no log and no state (node stopped).
    Restore {
        /// The backup directory (holds manifest.json).
        backup: PathBuf,
        /// The data directory to restore into.
        #[arg(long, env = "MARQUEE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// A directory whose journals of erasures and revoked keys are merged in as well (a
        /// newer backup, or the old data directory); repeatable. The data directory's own and
        /// the backup's always are.
        #[arg(long = "journals", value_name = "DIR")]
        journals: Vec<PathBuf>,
    },
    /// Create, list and revoke API keys (the keys file of a data directory; a running server
    /// picks changes up within a second).
    Keys {
        #[command(subcommand)]
        action: commands::keys::KeysAction,
        /// Data directory holding `keys.json`.
        #[arg(
            long,
            global = true,
            env = "MARQUEE_DATA_DIR",
            default_value = "./data"
        )]
        data_dir: PathBuf,
    },
    /// Write a new random encryption key (64 hex digits, mode 0600) to a file that must not
    /// exist, for `[storage] encryption_key_file`: keep it outside the data directory and out of
    /// its backups (docs/PRIVACY.md, "Encryption at rest").
    EncryptionKey {
        /// The key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Exit 0 when a node answers `/readyz` (its state loaded), else 1 with the reason: the
    /// health check of a container image that has no HTTP client of its own.
    Health {
        #[command(flatten)]
        node: NodeUrl,
        /// Keep asking for up to this many seconds before giving up.
        #[arg(long, default_value_t = 0)]
        wait_secs: u64,
    },
    /// Print synthetic events (or the catalogue) as NDJSON on standard output.
    Generate {
        #[command(flatten)]
        synthetic: SyntheticArgs,
        /// Number of events.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Print the catalogue items instead of events.
        #[arg(long)]
        catalogue: bool,
    },
}

/// A running node to talk to.
#[derive(Debug, Clone, clap::Args)]
struct NodeUrl {
    /// Base URL of the node.
    #[arg(long, env = "MARQUEE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key with the scope the command needs (`admin` for catalogue writes and
    /// backups), when the node has auth on.
    #[arg(long, env = "MARQUEE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ImportSource {
    /// A MovieLens release directory (ml-latest-small, ml-100k, ml-1m, ml-10m layouts).
    Movielens {
        dir: PathBuf,
        #[command(flatten)]
        node: NodeUrl,
    },
}

/// Transparent huge pages off for this process, before any thread or large mapping exists.
/// mimalloc asks the kernel for huge pages on its arenas; then a page it returns and takes back
/// is faulted in and zeroed 2 MiB at a time. While 10,000 connections opened, zeroing took 35%
/// of the machine's CPU and the 99th percentile of queries went to 1.2 s (28 ms without huge
/// pages; `docs/PERFORMANCE.md`). On a system without the setting this does nothing.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("marquee: transparent huge pages stay on: {error}");
    }
}

/// What the process creates (data files, backups, exports) is its owner's only: 0600 files,
/// 0700 directories, whatever the shell's umask (RocksDB and tantivy create files with 0644
/// masked by it).
fn private_files() {
    #[cfg(target_os = "linux")]
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

fn main() -> Result<()> {
    disable_transparent_huge_pages();
    private_files();
    let cli = Cli::parse();
    let telemetry = logging::init(cli.log_format, cli.otlp_endpoint.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(run(cli.command));
    drop(runtime);
    telemetry.shutdown();
    outcome
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve { node } => commands::serve::serve(node).await,
        Command::Demo {
            node,
            synthetic,
            warmup_events,
            rate,
        } => commands::serve::demo(node, synthetic, warmup_events, rate).await,
        Command::Import {
            source: ImportSource::Movielens { dir, node },
        } => commands::import::movielens(&dir, &node.url, node.api_key.as_deref()).await,
        Command::Eval(args) => tokio::task::spawn_blocking(move || commands::eval::run(args))
            .await
            .context("the evaluator stopped")?,
        Command::Backup { dir, node } => {
            commands::backup::backup(&dir, &node.url, node.api_key.as_deref()).await
        }
        Command::Health { node, wait_secs } => {
            let wait = std::time::Duration::from_secs(wait_secs);
            commands::health::check(&node.url, node.api_key.as_deref(), wait).await
        }
        Command::Restore {
            backup,
            data_dir,
            journals,
        } => commands::backup::restore(&backup, &data_dir, &journals),
        Command::Backfill {
            file,
            source,
            options,
        } => commands::backfill::run(file, source, options).await,
        Command::Intake(args) => commands::intake::run(args).await,
        Command::Replay(args) => tokio::task::spawn_blocking(move || commands::replay::run(args))
            .await
            .context("the replay stopped")?,
        Command::Generate {
            synthetic,
            events,
            catalogue,
        } => commands::generate::run(&synthetic, events, catalogue),
        Command::Keys { action, data_dir } => commands::keys::run(action, &data_dir),
        Command::EncryptionKey { out } => commands::keys::new_encryption_key(&out),
    }
}
