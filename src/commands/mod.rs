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

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use marquee_client::Client;
use marquee_schemas::Event;
use sha2::{Digest, Sha256};

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

/// The deterministic id of an event that came without one: `prefix` and the first 128 bits of
/// the SHA-256 of its bytes, so the same line or record sent again is applied once.
pub fn derived_event_id(prefix: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    for byte in &digest[..16] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Replaces the file at `path` with `bytes` atomically (a progress file: a crash leaves the old
/// one or the new one, never half of either), through `<path>.tmp` beside it (never a name of
/// the user's: `with_extension` would turn `events.ndjson.backfill-progress` into
/// `events.ndjson.tmp`).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}
