//! `marquee backup DIR` (online, through the node's API) and `marquee restore` (offline).

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Asks the node for a backup into `dir`: a name inside the node's `backup_root`, or an
/// absolute path under it (paths are the node's machine's, not this one's).
pub async fn backup(dir: &Path, url: &str, api_key: Option<&str>) -> Result<()> {
    let client = super::client(url, api_key)?;
    let started = std::time::Instant::now();
    let answer = client.backup(&dir.display().to_string()).await?;
    let manifest = &answer["manifest"];
    eprintln!(
        "backup taken in {:.1} s into {} ({} bytes; recovery point {} ms since the epoch)",
        started.elapsed().as_secs_f64(),
        answer["dir"].as_str().unwrap_or_default(),
        manifest["bytes"],
        manifest["created_ms"]
    );
    Ok(())
}

pub fn restore(backup: &Path, data_dir: &Path, journals: &[PathBuf]) -> Result<()> {
    let started = std::time::Instant::now();
    let manifest = marquee_stream_processor::backup::restore(backup, data_dir, journals)?;
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
