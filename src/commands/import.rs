//! `marquee import movielens DIR`: a MovieLens release through a running node's ingest API.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use marquee_datasets::movielens;

pub async fn movielens(dir: &Path, url: &str, api_key: Option<&str>) -> Result<()> {
    let dataset = movielens::load(dir)?;
    eprintln!(
        "{}: {} movies, {} ratings ({:?} layout)",
        dir.display(),
        dataset.items.len(),
        dataset.ratings.len(),
        dataset.layout
    );
    let client = super::client(url, api_key)?;
    client
        .wait_ready(Duration::from_secs(30))
        .await
        .with_context(|| format!("is `marquee serve` running at {url}?"))?;
    client.upsert_items(&dataset.items).await?;
    eprintln!("catalogue: {} movies stored", dataset.items.len());
    let total = dataset.ratings.len() as u64;
    let accepted = super::send_all(&client, dataset.ratings.into_iter(), total, "ratings").await?;
    eprintln!("import done: {accepted} of {total} ratings accepted");
    Ok(())
}
