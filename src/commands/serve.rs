//! `marquee serve` and `marquee demo`: a node that runs until SIGINT or SIGTERM; the demo adds a
//! generated catalogue and a live stream of synthetic viewers.

use std::time::Duration;

use anyhow::Result;
use marquee_node::{RunningNode, shutdown_signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::args::{AuthArg, NodeArgs, SyntheticArgs};

/// Starts a node, stopping it on SIGINT or SIGTERM; returns once it is ready.
async fn start_node(args: &NodeArgs) -> Result<RunningNode> {
    let config = args.resolve()?;
    let data_dir = config.data_dir.clone();
    let node = RunningNode::start(config).await?;
    let cancel = node.cancel_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down");
        cancel.cancel();
    });
    node.wait_ready().await?;
    info!(url = %node.url(), data_dir = %data_dir.display(), "marquee is ready");
    Ok(node)
}

/// `marquee serve`.
pub async fn serve(args: NodeArgs) -> Result<()> {
    let node = start_node(&args).await?;
    Ok(node.wait().await?)
}

/// `marquee demo`: auth `auto` (off on loopback, where the demo listens, so its pages and the
/// README's `curl`s need no key) unless `--auth` or `MARQUEE_AUTH` says otherwise.
pub async fn demo(
    mut args: NodeArgs,
    synthetic: SyntheticArgs,
    warmup_events: u64,
    rate: u64,
) -> Result<()> {
    args.auth.get_or_insert(AuthArg::Auto);
    let node = start_node(&args).await?;
    let url = node.url();
    let cancel = node.cancel_token();
    let feeder = tokio::spawn(async move {
        let outcome = feed(&url, &synthetic, warmup_events, rate, &cancel).await;
        if let Err(error) = &outcome {
            tracing::error!(error = format!("{error:#}"), "demo feed stopped");
        }
    });
    node.wait().await?;
    feeder.abort();
    Ok(())
}

/// The demo's catalogue, its warm-up events (deterministic ids: a restart re-sends them and
/// changes nothing), then `rate` live events a second.
async fn feed(
    url: &str,
    synthetic: &SyntheticArgs,
    warmup_events: u64,
    rate: u64,
    cancel: &CancellationToken,
) -> Result<()> {
    let client = super::client(url, None)?;
    let generator = synthetic.generator(u64::MAX);
    let items: Vec<_> = generator.items().collect();
    client.upsert_items(&items).await?;
    let mut events = generator.events();
    super::send_all(
        &client,
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
        // Live events are new: they get new ids and the time now.
        let now = marquee_schemas::now_ms();
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
