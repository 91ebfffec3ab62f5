//! `marquee backfill`: historical events into a running node, through its ingest API, with
//! their original timestamps, at an optional rate, resumable after an interruption.
//!
//! - **Sources.** An NDJSON file of events (the `POST /v1/events` format; each line needs its
//!   `timestamp`, the moment it happened), or a MovieLens directory (its catalogue first, then
//!   its ratings, as `import movielens` sends them).
//! - **Idempotent.** Every event carries an `event_id`: its own, or for a line without one a
//!   deterministic id, `bf-` and 128 bits of the SHA-256 of the line, so a line sent twice (a
//!   retry, a resumed run, the same file again) is applied once by the processor.
//! - **Resumable.** After each acknowledged batch the count of lines done is written to a
//!   progress file (`<source>.backfill-progress`, or `--progress-file`; replaced atomically). A
//!   new run of the same source starts after them; the batch that was in flight when the run
//!   stopped is sent again and de-duplicated. The file is removed when the backfill completes.
//! - **Bad lines** are reported with their line number and the field at fault, and skipped; the
//!   command then exits with an error, after sending every good line.
//! - The node refuses the history of an erased user (events dated before the erasure).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use marquee_schemas::now_ms;

use anyhow::{Context, Result, anyhow, bail};
use marquee_datasets::movielens;
use marquee_schemas::Event;
use marquee_schemas::json::event_from_json;
use serde::{Deserialize, Serialize};

use super::EVENTS_PER_REQUEST;
use crate::progress::Progress;

/// `backfill movielens DIR`.
#[derive(Debug, clap::Subcommand)]
pub enum BackfillSource {
    /// A MovieLens release directory: its catalogue, then its ratings.
    Movielens {
        dir: PathBuf,
        #[command(flatten)]
        options: BackfillArgs,
    },
}

/// The flags of `marquee backfill`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
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

/// `marquee backfill FILE` or `marquee backfill movielens DIR`: runs the backfill and reports.
pub async fn run(
    file: Option<PathBuf>,
    source: Option<BackfillSource>,
    args: BackfillArgs,
) -> Result<()> {
    let (source, args) = match (file, source) {
        (_, Some(BackfillSource::Movielens { dir, options })) => (Source::Movielens(dir), options),
        (Some(file), None) => (Source::Ndjson(file), args),
        (None, None) => return Err(anyhow!("backfill: name an NDJSON file, or `movielens DIR`")),
    };
    let summary = backfill(&BackfillOptions {
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

/// Where a backfill reads from.
#[derive(Debug, Clone)]
enum Source {
    Ndjson(PathBuf),
    Movielens(PathBuf),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::Ndjson(path) | Source::Movielens(path) => path,
        }
    }
}

#[derive(Debug, Clone)]
struct BackfillOptions {
    pub source: Source,
    pub url: String,
    pub api_key: Option<String>,
    /// Events per second at most; `None`: as fast as the node acknowledges.
    pub rate: Option<f64>,
    /// Default: the source's path with `.backfill-progress` appended.
    pub progress_file: Option<PathBuf>,
}

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct BackfillSummary {
    /// Events skipped because an earlier run sent them.
    pub resumed_after: u64,
    pub sent: u64,
    pub accepted: u64,
    /// Lines refused, here or by the node: `(line number, message)`, the first 20.
    pub rejected: Vec<(u64, String)>,
    pub rejected_count: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProgressRecord {
    source: String,
    done: u64,
    total: u64,
}

/// The deterministic id of a line without an `event_id`.
pub fn line_event_id(line: &str) -> String {
    super::derived_event_id("bf-", line.trim().as_bytes())
}

/// One line of an NDJSON source into an event, or the reason it cannot be one.
fn parse_line(line: &str, now_ms: i64) -> Result<Event, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|error| format!("not JSON: {error}"))?;
    if value.get("timestamp").is_none() {
        return Err("timestamp: required for a backfill (the moment the event happened)".into());
    }
    event_from_json(&value, now_ms, || line_event_id(line)).map_err(|error| error.to_string())
}

fn read_progress(path: &Path, source: &Path) -> Result<u64> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let record: ProgressRecord = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a backfill progress file", path.display()))?;
    if record.source != source.display().to_string() {
        bail!(
            "{} records a backfill of {}, not of {}; pass another --progress-file",
            path.display(),
            record.source,
            source.display()
        );
    }
    Ok(record.done)
}

fn write_progress(path: &Path, source: &Path, done: u64, total: u64) -> Result<()> {
    let record = ProgressRecord {
        source: source.display().to_string(),
        done,
        total,
    };
    super::write_atomically(path, &serde_json::to_vec(&record)?)
}

/// Runs a backfill (see the module documentation).
async fn backfill(options: &BackfillOptions) -> Result<BackfillSummary> {
    let source = std::path::absolute(options.source.path()).with_context(|| {
        format!(
            "{}: cannot be made absolute",
            options.source.path().display()
        )
    })?;
    let progress_file = options.progress_file.clone().unwrap_or_else(|| {
        let mut name = source.as_os_str().to_owned();
        name.push(".backfill-progress");
        PathBuf::from(name)
    });
    if let Some(rate) = options.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate: must be a number of events per second above 0, got {rate}");
    }
    let client = super::client(&options.url, options.api_key.as_deref())?;
    client
        .wait_ready(Duration::from_secs(30))
        .await
        .with_context(|| format!("is `marquee serve` running at {}?", options.url))?;

    let mut summary = BackfillSummary::default();
    // (line number, the event or why the line is not one), and how many there are.
    type Lines = Box<dyn Iterator<Item = Result<(u64, Result<Event, String>)>>>;
    let (lines, total): (Lines, u64) = match &options.source {
        Source::Ndjson(path) => {
            let open = || {
                std::fs::File::open(path)
                    .map(std::io::BufReader::new)
                    .with_context(|| format!("opening {}", path.display()))
            };
            let total = open()?
                .lines()
                .map_while(std::result::Result::ok)
                .filter(|line| !line.trim().is_empty())
                .count() as u64;
            let now = now_ms();
            let lines = open()?
                .lines()
                .enumerate()
                .filter(|(_, line)| line.as_ref().is_ok_and(|line| !line.trim().is_empty()))
                .map(move |(at, line)| {
                    let line = line.context("reading the file")?;
                    Ok((at as u64 + 1, parse_line(&line, now)))
                });
            (Box::new(lines), total)
        }
        Source::Movielens(dir) => {
            let dataset = movielens::load(dir)?;
            client.upsert_items(&dataset.items).await?;
            eprintln!("catalogue: {} movies stored", dataset.items.len());
            let total = dataset.ratings.len() as u64;
            let lines = dataset
                .ratings
                .into_iter()
                .enumerate()
                .map(|(at, event)| Ok((at as u64 + 1, Ok(event))));
            (Box::new(lines), total)
        }
    };
    let skip = read_progress(&progress_file, &source)?.min(total);
    if skip > 0 {
        eprintln!(
            "resuming after {skip} of {total} events (from {})",
            progress_file.display()
        );
    }
    summary.resumed_after = skip;
    let mut progress = Progress::new(total - skip, "backfill");
    // With a rate, smaller requests spaced evenly: at most one second's worth each.
    let per_request = match options.rate {
        Some(rate) => (rate as usize).clamp(1, EVENTS_PER_REQUEST),
        None => EVENTS_PER_REQUEST,
    };
    let mut ticker = options.rate.map(|rate| {
        let mut interval =
            tokio::time::interval(Duration::from_secs_f64(per_request as f64 / rate));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });

    let mut done = skip;
    let mut lines = lines.skip(skip as usize).peekable();
    let reject = |summary: &mut BackfillSummary, line: u64, message: String| {
        summary.rejected_count += 1;
        if summary.rejected.len() < 20 {
            eprintln!("line {line}: {message}");
            summary.rejected.push((line, message));
        }
    };
    while lines.peek().is_some() {
        let mut batch: Vec<Event> = Vec::with_capacity(per_request);
        let mut numbers: Vec<u64> = Vec::with_capacity(per_request);
        let mut taken = 0u64;
        while batch.len() < per_request {
            let Some(next) = lines.next() else { break };
            let (line, parsed) = next?;
            taken += 1;
            match parsed {
                Ok(event) => {
                    batch.push(event);
                    numbers.push(line);
                }
                Err(message) => reject(&mut summary, line, message),
            }
        }
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        if !batch.is_empty() {
            let answer = client.send_events(&batch).await?;
            summary.accepted += answer.accepted;
            for rejection in answer.rejected {
                let line = numbers.get(rejection.index).copied().unwrap_or(0);
                reject(&mut summary, line, rejection.message);
            }
            summary.sent += batch.len() as u64;
        }
        done += taken;
        write_progress(&progress_file, &source, done, total)?;
        progress.advance(taken);
    }
    progress.finish();
    std::fs::remove_file(&progress_file)
        .or_else(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(error)
            }
        })
        .with_context(|| format!("removing {}", progress_file.display()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_without_ids_get_the_same_id_every_time() {
        let line = r#"{"user_id":"u1","item_id":"m1","kind":"like","timestamp":1700000000000}"#;
        let first = parse_line(line, now_ms()).unwrap();
        let second = parse_line(&format!("  {line} "), now_ms()).unwrap();
        assert_eq!(first.event_id, second.event_id);
        assert!(first.event_id.starts_with("bf-") && first.event_id.len() == 35);
        let other = parse_line(&line.replace("m1", "m2"), now_ms()).unwrap();
        assert_ne!(first.event_id, other.event_id);
        let own = parse_line(
            r#"{"event_id":"e7","user_id":"u1","item_id":"m1","kind":"like","timestamp":1}"#,
            now_ms(),
        )
        .unwrap();
        assert_eq!(own.event_id, "e7");
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let missing = parse_line(r#"{"user_id":"u1","item_id":"m1","kind":"like"}"#, 0);
        assert!(missing.unwrap_err().starts_with("timestamp:"));
        let bad = parse_line(
            r#"{"user_id":"u1","item_id":"m1","kind":"rating","value":9,"timestamp":1}"#,
            now_ms(),
        );
        assert!(bad.unwrap_err().starts_with("value:"));
        assert!(parse_line("{", 0).unwrap_err().starts_with("not JSON"));
    }
}
