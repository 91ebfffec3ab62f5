//! `marquee health`: whether a node is ready, as an exit code (a container image's health check
//! needs no HTTP client of its own).

use std::time::Duration;

use anyhow::{Context, Result};

/// Succeeds once `url` answers `/readyz` with 200, asking for up to `wait`.
pub async fn check(url: &str, api_key: Option<&str>, wait: Duration) -> Result<()> {
    let client = super::client(url, api_key)?;
    client
        .wait_ready(wait)
        .await
        .with_context(|| format!("{url} is not ready"))?;
    println!("{url} is ready");
    Ok(())
}
