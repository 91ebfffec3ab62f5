//! The commands of the binary, one file each, and what several of them share: a client of a
//! running node, and sending a long stream of events to it with progress.

pub mod backfill;
pub mod backup;
pub mod eval;
pub mod generate;
pub mod health;
pub mod import;
pub mod intake;
pub mod keys;
pub mod replay;
pub mod serve;

use anyhow::{Context, Result};
use marquee_client::Client;
use marquee_schemas::Event;

use crate::progress::Progress;

/// Events per request when a command sends a stream.
pub const EVENTS_PER_REQUEST: usize = 5_000;

/// A client of the node at `url`, sending `api_key` with every request.
pub fn client(url: &str, api_key: Option<&str>) -> Result<Client> {
    let mut builder = Client::builder(url);
    if let Some(key) = api_key {
        builder = builder.api_key(key);
    }
    builder
        .build()
        .with_context(|| format!("a client of {url}"))
}

/// Sends `events` in requests of [`EVENTS_PER_REQUEST`], one at a time so that a user's events
/// keep their order, showing progress; returns the events accepted.
pub async fn send_all(
    client: &Client,
    events: impl Iterator<Item = Event>,
    total: u64,
    label: &str,
) -> Result<u64> {
    let mut progress = Progress::new(total, label);
    let mut accepted = 0u64;
    let mut batch = Vec::with_capacity(EVENTS_PER_REQUEST);
    let mut events = events.peekable();
    while events.peek().is_some() {
        batch.clear();
        batch.extend(events.by_ref().take(EVENTS_PER_REQUEST));
        let answer = client.send_events(&batch).await?;
        if let Some(first) = answer.rejected.first() {
            eprintln!(
                "{} events rejected, first: event {}: {}",
                answer.rejected.len(),
                first.index,
                first.message
            );
        }
        accepted += answer.accepted;
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    Ok(accepted)
}
