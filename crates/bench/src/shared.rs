//! What the harnesses share: a node started in-process, quantiles, metric sums, and loading
//! a synthetic world into a node over HTTP.

use anyhow::{Context, Result};
use marquee_client::Client;
use marquee_node::{NodeConfig, RunningNode};
use marquee_schemas::{Event, Item};

/// Starts a node and waits until it is ready; returns it and its base URL.
pub async fn start_node(config: NodeConfig) -> Result<(RunningNode, String)> {
    let node = RunningNode::start(config)
        .await
        .context("starting the node")?;
    node.wait_ready().await?;
    let base = node.url();
    Ok((node, base))
}

/// The `q` quantile of sorted figures (NaN for none).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at]
}

/// Events sent per request when a world is loaded.
pub const EVENTS_PER_REQUEST: usize = 5_000;

/// Upserts `items`, then sends `events` in requests of [`EVENTS_PER_REQUEST`], one at a time
/// (a user's events keep their order); returns the events accepted.
pub async fn load(
    client: &Client,
    items: &[Item],
    events: impl Iterator<Item = Event>,
) -> Result<u64> {
    client.upsert_items(items).await?;
    let mut accepted = 0;
    let mut events = events.peekable();
    let mut batch = Vec::with_capacity(EVENTS_PER_REQUEST);
    while events.peek().is_some() {
        batch.clear();
        batch.extend(events.by_ref().take(EVENTS_PER_REQUEST));
        accepted += client.send_events(&batch).await?.accepted;
    }
    Ok(accepted)
}

/// The sum of a metric's samples in a Prometheus exposition.
pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
