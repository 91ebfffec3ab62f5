//! `marquee intake`: events other systems write to a topic, sent to a running node's ingest.
//!
//! The way a stream processor (an Arroyo pipeline, `integrations/arroyo`) or any producer feeds
//! Marquee without speaking HTTP: it writes events to a topic, and this command reads them and
//! sends them to `POST /v1/events`, where they are validated and made durable like any other.
//!
//! - **Sources.** A Fluvio topic (`--fluvio HOST:PORT`, `--topic`, default `marquee-intake`;
//!   every partition, the topic created with one partition when absent), or an NDJSON file
//!   followed as it grows (`--file`; a line is read once it ends with a newline).
//! - **Records.** One event per record, the JSON `POST /v1/events` takes. A record without an
//!   `event_id` gets `in-` and 128 bits of the SHA-256 of the record, and one without a
//!   `timestamp` gets the time it was read.
//! - **At least once, applied once.** Records go to the node in batches (`--batch`); after each
//!   acknowledged batch, the next offset of every partition is written to the progress file
//!   (`--progress-file`, replaced atomically). A restart resumes from there and sends the batch
//!   that was in flight again; a producer's retry writes a record again. Both arrive with the
//!   same `event_id`, and the node applies each id once (its de-duplication window).
//! - **Bad records** (not JSON, or a field the node refuses) are reported with their partition,
//!   offset and field, counted, and skipped: one bad record does not stop the stream.
//! - **A node that does not answer** is retried until it does; nothing is skipped.
//! - `--once` stops when the source has nothing more (one-off loads, tests); otherwise the
//!   source is polled every `--poll-ms` when idle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use marquee_schemas::json::event_from_json;
use marquee_schemas::{Event, now_ms};
use serde::{Deserialize, Serialize};

/// The flags of `marquee intake`.
#[derive(Debug, Clone, clap::Args)]
pub struct IntakeArgs {
    /// The SC endpoint of the Fluvio cluster holding the intake topic, `HOST:PORT`.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    fluvio: Option<String>,
    /// The intake topic on Fluvio.
    #[arg(long, default_value = "marquee-intake")]
    topic: String,
    /// An NDJSON file to follow instead of a topic.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Base URL of the node.
    #[arg(long, env = "MARQUEE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key with the `ingest` scope.
    #[arg(long, env = "MARQUEE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Most events per request to the node.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// How often an idle source is read again, in milliseconds.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// Where the next offset of each partition is kept [default: marquee-intake.progress, or
    /// the file's path with `.intake-progress` appended].
    #[arg(long)]
    progress_file: Option<PathBuf>,
    /// Stop once the source has nothing more.
    #[arg(long)]
    once: bool,
}

/// One record of a source: where it is, where the next one is, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub offset: u64,
    pub next: u64,
    pub value: Vec<u8>,
}

/// Where intake records come from: partitions of records at growing offsets.
trait IntakeSource {
    /// Names the source in the progress file, so one file never resumes another source.
    fn name(&self) -> String;
    fn partitions(&self) -> u32;
    /// Up to `max` records of `partition` from `from`, oldest first; empty when none is there.
    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<SourceRecord>>;
}

/// An NDJSON file, one partition, offsets in bytes; only complete lines are read.
struct FileSource {
    path: PathBuf,
}

impl IntakeSource for FileSource {
    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn partitions(&self) -> u32 {
        1
    }

    async fn read(&self, _partition: u32, from: u64, max: usize) -> Result<Vec<SourceRecord>> {
        use std::io::{BufRead, Seek, SeekFrom};
        let mut file = std::io::BufReader::new(
            std::fs::File::open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?,
        );
        file.seek(SeekFrom::Start(from))?;
        let mut records = Vec::new();
        let mut offset = from;
        let mut line = Vec::new();
        while records.len() < max {
            line.clear();
            let read = file.read_until(b'\n', &mut line)?;
            if read == 0 || line.last() != Some(&b'\n') {
                break; // the end, or a line still being written
            }
            let next = offset + read as u64;
            if !line.iter().all(u8::is_ascii_whitespace) {
                records.push(SourceRecord {
                    offset,
                    next,
                    value: line.clone(),
                });
            }
            offset = next;
        }
        // Blank lines are skipped: the next record's offsets step over them. Blank lines after
        // the last record are read again at each poll, and give nothing.
        Ok(records)
    }
}

/// A Fluvio topic (the `fluvio` cargo feature).
#[cfg(feature = "fluvio")]
struct FluvioSource {
    log: marquee_ingest::FluvioLog,
}

#[cfg(feature = "fluvio")]
impl IntakeSource for FluvioSource {
    fn name(&self) -> String {
        format!("fluvio topic {}", self.log.topic())
    }

    fn partitions(&self) -> u32 {
        self.log.partition_count()
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<SourceRecord>> {
        let values = self.log.read_values(partition, from, max).await?;
        Ok(values
            .into_iter()
            .map(|(offset, value)| SourceRecord {
                offset,
                next: offset + 1,
                value,
            })
            .collect())
    }
}

/// `marquee intake`: runs until stopped (or, with `--once`, until the source is drained).
pub async fn run(args: IntakeArgs) -> Result<()> {
    if let Some(path) = &args.file {
        let progress = args.progress_file.clone().unwrap_or_else(|| {
            let mut name = path.as_os_str().to_owned();
            name.push(".intake-progress");
            PathBuf::from(name)
        });
        return intake(&FileSource { path: path.clone() }, &args, &progress).await;
    }
    let progress = args
        .progress_file
        .clone()
        .unwrap_or_else(|| PathBuf::from("marquee-intake.progress"));
    let endpoint = args.fluvio.clone().context("--fluvio or --file")?;
    fluvio_intake(&endpoint, &args, &progress).await
}

#[cfg(feature = "fluvio")]
async fn fluvio_intake(endpoint: &str, args: &IntakeArgs, progress: &Path) -> Result<()> {
    use marquee_ingest::{FluvioLog, FluvioLogConfig};
    let log = FluvioLog::connect(FluvioLogConfig {
        topic: args.topic.clone(),
        partitions: 1,
        adopt_partitions: true,
        ..FluvioLogConfig::new(endpoint)
    })
    .await
    .with_context(|| format!("the intake topic {} at {endpoint}", args.topic))?;
    intake(&FluvioSource { log }, args, progress).await
}

#[cfg(not(feature = "fluvio"))]
async fn fluvio_intake(_: &str, _: &IntakeArgs, _: &Path) -> Result<()> {
    bail!("--fluvio: this binary was built without the `fluvio` cargo feature")
}

#[derive(Debug, Serialize, Deserialize)]
struct ProgressRecord {
    source: String,
    /// The next offset to read, per partition.
    next: Vec<u64>,
}

/// The deterministic id of a record without an `event_id`.
pub fn record_event_id(record: &[u8]) -> String {
    super::derived_event_id("in-", record.trim_ascii())
}

fn parse_record(record: &[u8], now_ms: i64) -> Result<Event, String> {
    let value: serde_json::Value =
        serde_json::from_slice(record).map_err(|error| format!("not JSON: {error}"))?;
    event_from_json(&value, now_ms, || record_event_id(record)).map_err(|error| error.to_string())
}

async fn intake(source: &impl IntakeSource, args: &IntakeArgs, progress: &Path) -> Result<()> {
    let client = super::client(&args.url, args.api_key.as_deref())?;
    let name = source.name();
    let partitions = source.partitions() as usize;
    let mut next = read_progress(progress, &name, partitions)?;
    eprintln!(
        "intake: {name} ({partitions} partitions) to {}, from offsets {next:?}",
        args.url
    );
    let batch_size = args.batch as usize;
    let (mut sent, mut accepted, mut refused) = (0u64, 0u64, 0u64);
    loop {
        let mut events = Vec::with_capacity(batch_size);
        let mut places = Vec::with_capacity(batch_size);
        let mut advanced = next.clone();
        for (partition, position) in advanced.iter_mut().enumerate() {
            let room = batch_size - events.len();
            if room == 0 {
                break;
            }
            for record in source.read(partition as u32, *position, room).await? {
                match parse_record(&record.value, now_ms()) {
                    Ok(event) => {
                        events.push(event);
                        places.push((partition, record.offset));
                    }
                    Err(message) => {
                        refused += 1;
                        eprintln!(
                            "intake: partition {partition} offset {}: {message}",
                            record.offset
                        );
                    }
                }
                *position = record.next;
            }
        }
        if advanced == next {
            if args.once {
                break;
            }
            tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
            continue;
        }
        if !events.is_empty() {
            let answer = send_until_answered(&client, &events).await?;
            for refusal in &answer.rejected {
                let (partition, offset) = places[refusal.index];
                eprintln!(
                    "intake: partition {partition} offset {offset}: {}",
                    refusal.message
                );
            }
            sent += events.len() as u64;
            accepted += answer.accepted;
            refused += answer.rejected.len() as u64;
        }
        next = advanced;
        write_progress(progress, &name, &next)?;
    }
    eprintln!("intake done: {sent} events sent, {accepted} accepted, {refused} refused");
    Ok(())
}

/// The batch's answer; a node that cannot be reached is tried again every few seconds, without
/// end: records are never skipped because the node is away. A refusal of the whole request
/// (a key without `ingest`) stops the command.
async fn send_until_answered(
    client: &marquee_client::Client,
    events: &[Event],
) -> Result<marquee_client::Sent> {
    loop {
        match client.send_events(events).await {
            Ok(answer) => return Ok(answer),
            Err(error) if passing(&error) => {
                eprintln!("intake: the node did not take the batch ({error}); trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(error) => return Err(error).context("the node refused the batch"),
        }
    }
}

/// Whether an error may pass by itself: no answer, or 408, 429, 5xx after the SDK's attempts.
fn passing(error: &marquee_client::Error) -> bool {
    match error {
        marquee_client::Error::Network(_) => true,
        marquee_client::Error::Api { status, .. } => {
            *status == 408 || *status == 429 || *status >= 500
        }
        _ => false,
    }
}

fn read_progress(path: &Path, source: &str, partitions: usize) -> Result<Vec<u64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![0; partitions]);
        }
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let record: ProgressRecord = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an intake progress file", path.display()))?;
    if record.source != source {
        bail!(
            "{} records the intake of {}, not of {source}; pass another --progress-file",
            path.display(),
            record.source
        );
    }
    let mut next = record.next;
    // A topic given more partitions since: the new ones from their start.
    next.resize(partitions.max(next.len()), 0);
    Ok(next)
}

fn write_progress(path: &Path, source: &str, next: &[u64]) -> Result<()> {
    let record = ProgressRecord {
        source: source.to_owned(),
        next: next.to_vec(),
    };
    super::write_atomically(path, &serde_json::to_vec(&record)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_an_id_get_one_from_their_bytes() {
        let record = br#"{"user_id":"u","item_id":"m","kind":"like","timestamp":1}"#;
        let first = parse_record(record, 10).unwrap();
        let again = parse_record(record, 20).unwrap();
        assert!(first.event_id.starts_with("in-") && first.event_id.len() == 35);
        assert_eq!(first.event_id, again.event_id);
        let with_id = br#"{"event_id":"plays-7","user_id":"u","item_id":"m","kind":"like"}"#;
        let event = parse_record(with_id, 42).unwrap();
        assert_eq!((event.event_id.as_str(), event.timestamp), ("plays-7", 42));
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        assert!(
            parse_record(b"{not json", 1)
                .unwrap_err()
                .starts_with("not JSON")
        );
        let unknown = parse_record(br#"{"user_id":"u","item_id":"m","kind":"buy"}"#, 1);
        assert!(unknown.unwrap_err().starts_with("kind:"));
    }
}
