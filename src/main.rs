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
use tracing::info;

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
        #[arg(long, value_enum)]
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
    },
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

fn main() -> Result<()> {
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
            source: ImportSource::Movielens { dir, url },
        } => import_movielens(&dir, &url).await,
        Command::Generate {
            synthetic,
            events,
            catalogue,
        } => generate(&synthetic, events, catalogue),
    }
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

async fn import_movielens(dir: &std::path::Path, url: &str) -> Result<()> {
    let dataset = movielens::load(dir)?;
    eprintln!(
        "{}: {} movies, {} ratings ({:?} layout)",
        dir.display(),
        dataset.items.len(),
        dataset.ratings.len(),
        dataset.layout
    );
    let client = Client::new(url)?;
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
    let node = NodeArgs {
        config,
        data_dir: None,
        listen: None,
        partitions: None,
    }
    .resolve("./data")?;
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
