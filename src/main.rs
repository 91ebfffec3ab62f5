//! `marquee`: serve, demo, import and generate.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use marquee::client::Client;
use marquee::config::NodeArgs;
use marquee::eval::{self as evaluator, EvalOptions, Protocol, Source};
use marquee::logging::{self, LogFormat};
use marquee::movielens;
use marquee::synthetic::{Synthetic, SyntheticConfig};
use marquee_api::RunningNode;
use marquee_api::keys::{KeySet, Scope, keys_path};
use tracing::info;

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
    Eval {
        /// T: per-user temporal hold-out; P: prequential (test, then learn).
        #[arg(long, value_enum, ignore_case = true)]
        protocol: Protocol,
        /// MovieLens directory (ml-latest-small, ml-100k, ml-1m or ml-10m layout).
        #[arg(long, required_unless_present = "synthetic_events")]
        data: Option<PathBuf>,
        /// Instead of MovieLens: this many events of the synthetic stream (speed runs).
        #[arg(long, conflicts_with = "data")]
        synthetic_events: Option<u64>,
        /// Write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Configuration file; its `[model]` and `[index]` sections are used, as by `serve`.
        #[arg(long, env = "MARQUEE_CONFIG")]
        config: Option<PathBuf>,
        /// Tuning run: Protocol T on the validation split of the training part, Protocol P on
        /// the first half of the stream.
        #[arg(long)]
        tuning: bool,
        /// Only the `marquee` row, without the reference rows.
        #[arg(long)]
        no_baselines: bool,
    },
    /// Take an online, consistent backup of a running node into DIR (on the node's machine).
    Backup {
        /// A new (absent or empty) directory.
        dir: PathBuf,
        /// Base URL of the node.
        #[arg(long, env = "MARQUEE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An `admin` API key (needed when the node has auth on).
        #[arg(long, env = "MARQUEE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
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
    /// Rebuild the state from the log into a new data directory, beside a node that keeps
    /// serving (docs/OPERATIONS.md says how to switch to it).
    Replay {
        /// The node's data directory (its log is read, never written).
        #[arg(long, env = "MARQUEE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Apply events appended from this time: `earliest`, milliseconds since the epoch, or
        /// RFC 3339 (2026-11-26T12:00:00Z).
        #[arg(long, default_value = "earliest")]
        from: String,
        /// Apply events appended up to this time (same forms) [default: the end of the log
        /// when the replay starts].
        #[arg(long)]
        until: Option<String>,
        /// The new data directory (absent or empty).
        #[arg(long)]
        into: PathBuf,
        /// The node's configuration file: its `[model]`, `[log]` and store settings are used.
        #[arg(long, env = "MARQUEE_CONFIG")]
        config: Option<PathBuf>,
        /// The node's event log backend [default: the file's, else embedded].
        #[arg(long = "log", env = "MARQUEE_LOG_BACKEND", value_enum)]
        log: Option<marquee::config::LogArg>,
        /// Fluvio's SC public endpoint, HOST:PORT (with --log fluvio).
        #[arg(long, env = "MARQUEE_FLUVIO_ENDPOINT")]
        fluvio_endpoint: Option<String>,
        /// Fluvio topic of the events [default: marquee-events].
        #[arg(long, env = "MARQUEE_FLUVIO_TOPIC")]
        fluvio_topic: Option<String>,
    },
    /// Restore a backup into a data directory that holds no log and no state (node stopped).
    Restore {
        /// The backup directory (holds manifest.json).
        backup: PathBuf,
        /// The data directory to restore into.
        #[arg(long, env = "MARQUEE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Create, list and revoke API keys (the keys file of a data directory; a running server
    /// picks changes up within a second).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// Data directory holding `keys.json`.
        #[arg(
            long,
            global = true,
            env = "MARQUEE_DATA_DIR",
            default_value = "./data"
        )]
        data_dir: PathBuf,
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

#[derive(Debug, Subcommand)]
enum ImportSource {
    /// A MovieLens release directory (ml-latest-small, ml-100k, ml-1m, ml-10m layouts).
    Movielens {
        dir: PathBuf,
        /// Base URL of the node.
        #[arg(long, env = "MARQUEE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API key with the `admin` scope (catalogue and events), when the node has auth on.
        #[arg(long, env = "MARQUEE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum BackfillSource {
    /// A MovieLens release directory: its catalogue, then its ratings.
    Movielens {
        dir: PathBuf,
        #[command(flatten)]
        options: BackfillArgs,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct BackfillArgs {
    /// Base URL of the node.
    #[arg(long, env = "MARQUEE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key: `ingest` for a file, `admin` for MovieLens (it writes the catalogue).
    #[arg(long, env = "MARQUEE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Events per second at most [default: as fast as the node acknowledges].
    #[arg(long)]
    rate: Option<f64>,
    /// Where progress is kept for a resumed run [default: the source path with
    /// `.backfill-progress` appended].
    #[arg(long)]
    progress_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Create a key and print it (once: only its hash is stored).
    Create {
        /// Scopes, comma-separated: ingest (POST events only), read (queries), admin (all).
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        /// Requests per second for this key (default: the server's `limits.rate_per_second`).
        #[arg(long)]
        rate: Option<u32>,
    },
    /// List the keys (ids, names, scopes; never the keys).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Debug, Clone, clap::Args)]
struct SyntheticArgs {
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Synthetic users.
    #[arg(long, default_value_t = 2000)]
    users: u64,
    /// Synthetic catalogue size.
    #[arg(long, default_value_t = 3000)]
    items: u64,
    /// Taste clusters.
    #[arg(long, default_value_t = 12)]
    clusters: usize,
}

impl SyntheticArgs {
    fn generator(&self, events: u64) -> Synthetic {
        Synthetic::new(SyntheticConfig {
            seed: self.seed,
            users: self.users,
            items: self.items,
            clusters: self.clusters,
            events,
            ..SyntheticConfig::default()
        })
    }
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

fn main() -> Result<()> {
    disable_transparent_huge_pages();
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
        Command::Eval {
            protocol,
            data,
            synthetic_events,
            json,
            config,
            tuning,
            no_baselines,
        } => tokio::task::spawn_blocking(move || {
            let source = match (data, synthetic_events) {
                (Some(dir), _) => Source::MovieLens(dir),
                (None, Some(events)) => Source::Synthetic(events),
                (None, None) => return Err(anyhow!("--data or --synthetic-events: give one")),
            };
            eval(protocol, source, json, config, tuning, no_baselines)
        })
        .await
        .context("the evaluator stopped")?,
        Command::Serve { node } => serve(node).await,
        Command::Demo {
            node,
            synthetic,
            warmup_events,
            rate,
        } => demo(node, synthetic, warmup_events, rate).await,
        Command::Import {
            source: ImportSource::Movielens { dir, url, api_key },
        } => import_movielens(&dir, &url, api_key.as_deref()).await,
        Command::Backup { dir, url, api_key } => backup(&dir, &url, api_key.as_deref()).await,
        Command::Restore { backup, data_dir } => restore(&backup, &data_dir),
        Command::Backfill {
            file,
            source,
            options,
        } => {
            let (source, options) = match (file, source) {
                (_, Some(BackfillSource::Movielens { dir, options })) => {
                    (marquee::backfill::Source::Movielens(dir), options)
                }
                (Some(file), None) => (marquee::backfill::Source::Ndjson(file), options),
                (None, None) => {
                    return Err(anyhow!("backfill: name an NDJSON file, or `movielens DIR`"));
                }
            };
            backfill(source, options).await
        }
        Command::Replay {
            data_dir,
            from,
            until,
            into,
            config,
            log,
            fluvio_endpoint,
            fluvio_topic,
        } => {
            let mut node = NodeArgs::from_file(config, Some(data_dir));
            node.log = log;
            node.fluvio_endpoint = fluvio_endpoint;
            node.fluvio_topic = fluvio_topic;
            tokio::task::spawn_blocking(move || replay(&node, &from, until.as_deref(), into))
                .await
                .context("the replay stopped")?
        }
        Command::Generate {
            synthetic,
            events,
            catalogue,
        } => generate(&synthetic, events, catalogue),
        Command::Keys { action, data_dir } => keys(action, &data_dir),
    }
}

async fn backfill(source: marquee::backfill::Source, args: BackfillArgs) -> Result<()> {
    let summary = marquee::backfill::backfill(&marquee::backfill::BackfillOptions {
        source,
        url: args.url,
        api_key: args.api_key,
        rate: args.rate,
        progress_file: args.progress_file,
    })
    .await?;
    eprintln!(
        "backfill done: {} events sent, {} accepted, {} refused{}",
        summary.sent,
        summary.accepted,
        summary.rejected_count,
        if summary.resumed_after > 0 {
            format!(" (resumed after {})", summary.resumed_after)
        } else {
            String::new()
        }
    );
    if summary.rejected_count > 0 {
        return Err(anyhow!(
            "{} lines were refused (the first are listed above); every other line was sent",
            summary.rejected_count
        ));
    }
    Ok(())
}

fn replay(node: &NodeArgs, from: &str, until: Option<&str>, into: PathBuf) -> Result<()> {
    let node = node.resolve("./data")?;
    let options = marquee::replay::ReplayOptions {
        from_ms: marquee::replay::parse_time(from).context("--from")?,
        until_ms: until
            .map(marquee::replay::parse_time)
            .transpose()
            .context("--until")?
            .flatten(),
        into: into.clone(),
        node,
        progress: true,
    };
    let summary = marquee::replay::replay(&options)?;
    let applied = summary.read - summary.before_window;
    eprintln!(
        "replayed {} log entries into {} in {:.1} s ({:.0} entries/s): {applied} in the window, \
         {} appended before it; offsets {:?} of {:?}",
        summary.read,
        into.join("state").display(),
        summary.seconds,
        summary.read as f64 / summary.seconds.max(1e-9),
        summary.before_window,
        summary.offsets,
        summary.log_end,
    );
    eprintln!(
        "to serve it: stop the node, move {0}/state aside and {1}/state in its place, start \
         the node (it applies what arrived since)",
        options.node.data_dir.display(),
        into.display()
    );
    Ok(())
}

/// Starts a node and stops it on SIGINT or SIGTERM.
async fn start_node(args: &NodeArgs) -> Result<RunningNode> {
    let config = args.resolve("./data")?;
    let data_dir = config.data_dir.clone();
    let node = RunningNode::start(config)
        .await
        .context("binding the listen address")?;
    let cancel = node.cancel_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        cancel.cancel();
    });
    node.wait_ready().await.map_err(|error| anyhow!(error))?;
    info!(url = %node.url(), data_dir = %data_dir.display(), "marquee is ready");
    Ok(node)
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn serve(args: NodeArgs) -> Result<()> {
    let node = start_node(&args).await?;
    node.wait().await.map_err(|error| anyhow!(error))
}

async fn demo(
    args: NodeArgs,
    synthetic: SyntheticArgs,
    warmup_events: u64,
    rate: u64,
) -> Result<()> {
    let node = start_node(&args).await?;
    let url = node.url();
    let cancel = node.cancel_token();
    let feeder = tokio::spawn(async move {
        let outcome = feed_demo(&url, &synthetic, warmup_events, rate, &cancel).await;
        if let Err(error) = &outcome {
            tracing::error!(error = format!("{error:#}"), "demo feed stopped");
        }
    });
    node.wait().await.map_err(|error| anyhow!(error))?;
    feeder.abort();
    Ok(())
}

async fn feed_demo(
    url: &str,
    synthetic: &SyntheticArgs,
    warmup_events: u64,
    rate: u64,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<()> {
    let client = Client::new(url)?;
    let generator = synthetic.generator(u64::MAX);
    let items: Vec<_> = generator.items().collect();
    client.put_items(&items).await?;
    let mut events = generator.events();
    client
        .send_all_events(
            events.by_ref().take(warmup_events as usize),
            warmup_events,
            "warm-up",
        )
        .await?;
    eprintln!(
        "\nMarquee demo is live on {url}\n  curl {url}/v1/users/u42/recommendations\n  \
         curl {url}/v1/trending\n  curl {url}/v1/items/m7/similar\n\
         Synthetic viewers now send {rate} events/s. Press Ctrl-C to stop.\n"
    );
    let per_tick = (rate / 10).max(1) as usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    while !cancel.is_cancelled() {
        ticker.tick().await;
        let mut batch: Vec<_> = events.by_ref().take(per_tick).collect();
        // Live events are new: the server assigns their ids and timestamps.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0);
        for event in &mut batch {
            event.event_id = uuid::Uuid::now_v7().to_string();
            event.timestamp = now;
        }
        if let Err(error) = client.send_events(&batch).await {
            if cancel.is_cancelled() {
                break;
            }
            tracing::warn!(error = format!("{error:#}"), "demo batch failed");
        }
    }
    Ok(())
}

async fn import_movielens(dir: &std::path::Path, url: &str, api_key: Option<&str>) -> Result<()> {
    let dataset = movielens::load(dir)?;
    eprintln!(
        "{}: {} movies, {} ratings ({:?} layout)",
        dir.display(),
        dataset.items.len(),
        dataset.ratings.len(),
        dataset.layout
    );
    let client = Client::with_api_key(url, api_key)?;
    client
        .wait_ready(Duration::from_secs(30))
        .await
        .with_context(|| format!("is `marquee serve` running at {url}?"))?;
    client.put_items(&dataset.items).await?;
    eprintln!("catalogue: {} movies stored", dataset.items.len());
    let total = dataset.ratings.len() as u64;
    let accepted = client
        .send_all_events(dataset.ratings.into_iter(), total, "ratings")
        .await?;
    eprintln!("import done: {accepted} of {total} ratings accepted");
    Ok(())
}

async fn backup(dir: &std::path::Path, url: &str, api_key: Option<&str>) -> Result<()> {
    let dir = std::path::absolute(dir).context("dir: cannot be made absolute")?;
    let client = Client::with_api_key(url, api_key)?;
    let started = std::time::Instant::now();
    let answer = client
        .post_json("/v1/admin/backups", &serde_json::json!({"dir": dir}))
        .await?;
    let manifest = &answer["manifest"];
    eprintln!(
        "backup taken in {:.1} s into {} ({} bytes; recovery point {} ms since the epoch)",
        started.elapsed().as_secs_f64(),
        dir.display(),
        manifest["bytes"],
        manifest["created_ms"]
    );
    Ok(())
}

fn restore(backup: &std::path::Path, data_dir: &std::path::Path) -> Result<()> {
    let started = std::time::Instant::now();
    let manifest = marquee_api::backup::restore(backup, data_dir)?;
    eprintln!(
        "restored {} into {} in {:.1} s (recovery point {} ms since the epoch); start the node \
         with --data-dir {}",
        backup.display(),
        data_dir.display(),
        started.elapsed().as_secs_f64(),
        manifest.created_ms,
        data_dir.display()
    );
    Ok(())
}

fn keys(action: KeysAction, data_dir: &std::path::Path) -> Result<()> {
    let path = keys_path(data_dir);
    let mut set = KeySet::load(&path)?;
    match action {
        KeysAction::Create { scope, name, rate } => {
            let scopes = scope
                .iter()
                .map(|text| {
                    Scope::parse(text.trim()).ok_or_else(|| {
                        anyhow!("--scope: {text:?} is not a scope; use ingest, read or admin")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if rate == Some(0) {
                return Err(anyhow!("--rate: must be at least 1"));
            }
            let (key, record) = set.create(&name, &scopes, rate)?;
            set.save(&path)?;
            let scopes: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
            eprintln!(
                "created key {} (scopes: {}) in {}; it is shown once, store it now:",
                record.id,
                scopes.join(","),
                path.display()
            );
            println!("{key}");
        }
        KeysAction::List => {
            println!(
                "{:<10} {:<20} {:<18} {:>8}  created",
                "id", "name", "scopes", "rate/s"
            );
            for record in set.records() {
                let scopes: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
                let rate = record
                    .rate_per_second
                    .map_or_else(|| "default".to_owned(), |rate| rate.to_string());
                println!(
                    "{:<10} {:<20} {:<18} {:>8}  {}",
                    record.id,
                    record.name,
                    scopes.join(","),
                    rate,
                    record.created_ms
                );
            }
        }
        KeysAction::Revoke { id } => {
            let record = set.revoke(&id)?;
            set.save(&path)?;
            eprintln!("revoked key {} ({})", record.id, record.name);
        }
    }
    Ok(())
}

fn generate(synthetic: &SyntheticArgs, events: u64, catalogue: bool) -> Result<()> {
    let generator = synthetic.generator(events);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = if catalogue {
        generator.items().try_for_each(|item| {
            writeln!(out, "{}", serde_json::to_string(&item)?).map_err(Into::into)
        })
    } else {
        generator.events().try_for_each(|event| {
            writeln!(out, "{}", serde_json::to_string(&event)?).map_err(Into::into)
        })
    };
    match written.and_then(|()| out.flush().map_err(anyhow::Error::from)) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is a normal end.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

fn eval(
    protocol: Protocol,
    data: Source,
    json: Option<PathBuf>,
    config: Option<PathBuf>,
    tuning: bool,
    no_baselines: bool,
) -> Result<()> {
    let node = NodeArgs::from_file(config, None).resolve("./data")?;
    let options = EvalOptions {
        protocol,
        data,
        validation: tuning && protocol == Protocol::T,
        first_half: tuning && protocol == Protocol::P,
        model: node.model,
        index: node.index,
        skip_baselines: no_baselines,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let results = evaluator::run(&options)?;
    print!("{}", evaluator::table(&results));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&evaluator::json(&results))?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
