//! `marquee replay`: rebuilds the state from the log into a new data directory while the node
//! that owns the log keeps serving.
//!
//! The state is a read model of the log, so it can be rebuilt: after a model change, to drop a
//! window of bad events, or to start a second node from the same history. Replay
//!
//! 1. opens the node's state, and its embedded log, as RocksDB **secondary instances**
//!    (read-only, beside the writer, which neither stops nor slows), so it sees every event
//!    acknowledged up to its start; with `--log fluvio` it reads the topic instead, from the
//!    cluster, like any other consumer;
//! 2. copies what is not in the log: the catalogue (items upserted through the API), the
//!    erasure list, the experiments and flags, the rules (property schema, saved filters,
//!    campaigns, deleted items), and the data directory's keys (`keys.json`,
//!    `erasure.key`, `pseudonym.key`, `recommendation.key`), so erased users stay erased,
//!    pseudonyms keep their meaning and served lists stay attributable;
//! 3. runs the production processor (the same code as `serve`, with the same `[model]`) over
//!    every log entry appended in the window `[--from, --until]` (append times), writing a new
//!    state in `<into>/state` whose committed offsets are where the replay stopped.
//!
//! Entries appended before `--from` are passed over (the offsets move past them); the replay
//! stops, per partition, at the first entry appended after `--until`, or at the end the log had
//! when replay started. Switching serving to the rebuilt state (docs/OPERATIONS.md): stop the
//! node, move `<data-dir>/state` aside and `<into>/state` in its place, start the node: its
//! processor resumes from the rebuilt state's offsets and applies what arrived since.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use marquee_ingest::{AnyLog, Appended, EmbeddedLog, EventLog, LogBackend, LogEntry, LogRead};
use marquee_schemas::Event;
use marquee_stream_processor::catalogue::upsert_catalogue;
use marquee_stream_processor::data_dir::SECRET_FILES;
use marquee_stream_processor::experiments::records::{EXPERIMENT_PREFIX, FLAG_PREFIX};
use marquee_stream_processor::journal::JOURNAL_FILES;
use marquee_stream_processor::{DataDir, Engine, Metrics, ProcessorConfig};
use marquee_vector_store::{ExperimentWrite, StateStore, StoreConfig};

use crate::config::NodeConfig;
use crate::error::{Error, Result};

/// What to replay, and where to.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The node's configuration (its data directory, model and store settings).
    pub node: NodeConfig,
    /// Apply entries appended at or after this time (ms since the epoch); `None`: all.
    pub from_ms: Option<i64>,
    /// Apply entries appended at or before this time; `None`: up to the end at start.
    pub until_ms: Option<i64>,
    /// The new data directory (absent or empty).
    pub into: PathBuf,
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySummary {
    /// Log entries read (applied or passed over).
    pub read: u64,
    /// Entries passed over because they were appended before `from`.
    pub before_window: u64,
    /// The committed offsets of the rebuilt state, per partition.
    pub offsets: Vec<u64>,
    /// The log's end offsets when the replay started.
    pub log_end: Vec<u64>,
    pub seconds: f64,
}

/// The node's log seen through the replay window: only entries appended in it, and no further
/// than the end the log had when replay started.
struct WindowLog {
    log: AnyLog,
    from_ms: Option<i64>,
    until_ms: Option<i64>,
    end: Vec<u64>,
    passed_over: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl EventLog for WindowLog {
    fn partition_count(&self) -> u32 {
        self.log.partition_count()
    }

    async fn append(&self, _events: Vec<Event>) -> marquee_ingest::Result<Vec<Appended>> {
        Err(marquee_ingest::Error::Unsupported("append during a replay"))
    }

    fn read(
        &self,
        partition: u32,
        from_offset: u64,
        max_records: usize,
    ) -> marquee_ingest::Result<LogRead> {
        let end = self.end[partition as usize];
        if from_offset >= end {
            return Ok(LogRead {
                entries: Vec::new(),
                next_offset: from_offset,
            });
        }
        let max_records = max_records.min((end - from_offset) as usize);
        let read = self.log.read(partition, from_offset, max_records)?;
        let mut next_offset = read.next_offset.min(end);
        let mut entries = Vec::with_capacity(read.entries.len());
        for entry in read.entries {
            if entry.offset >= end {
                break;
            }
            if self.until_ms.is_some_and(|until| entry.append_ms > until) {
                // Past the window: stop this partition here for good.
                next_offset = entry.offset;
                break;
            }
            if self.from_ms.is_some_and(|from| entry.append_ms < from) {
                self.passed_over
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            entries.push(entry);
        }
        Ok(LogRead {
            entries,
            next_offset,
        })
    }

    fn user_entries(&self, user_id: &str) -> marquee_ingest::Result<Vec<LogEntry>> {
        self.log.user_entries(user_id)
    }

    fn erase(&self, _positions: &[(u32, u64)]) -> marquee_ingest::Result<()> {
        Err(marquee_ingest::Error::Unsupported("erase during a replay"))
    }

    fn end_offsets(&self) -> marquee_ingest::Result<Vec<u64>> {
        Ok(self.end.clone())
    }

    async fn wait_for_append(&self, _positions: &[u64], _timeout: Duration) {}
}

/// `erasures` (the live state's list) with the erasure journal's added, each at its latest
/// time.
fn with_journalled(
    erasures: Vec<([u8; 32], i64)>,
    layout: &DataDir,
) -> Result<Vec<([u8; 32], i64)>> {
    let mut all: std::collections::BTreeMap<[u8; 32], i64> = erasures.into_iter().collect();
    let journalled = layout
        .erasure_journal()
        .erasures()
        .map_err(marquee_stream_processor::Error::from)?;
    for (hash, erased_ms) in journalled {
        let at = all.entry(hash).or_insert(erased_ms);
        *at = (*at).max(erased_ms);
    }
    Ok(all.into_iter().collect())
}

fn copy_if_present(from: &Path, to: &Path, name: &str) -> Result<()> {
    let source = from.join(name);
    if source.exists() {
        std::fs::copy(&source, to.join(name)).map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "copying {} into {}: {error}",
                    source.display(),
                    to.display()
                ),
            )
        })?;
    }
    Ok(())
}

/// `what` failed with `error`: an I/O error naming `path`.
fn io_at(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |error| {
        Error::Io(std::io::Error::new(
            error.kind(),
            format!("{context}: {error}"),
        ))
    }
}

/// The experiments' and flags' definitions of `live`, as writes of them into another state.
fn definitions(live: &StateStore) -> Result<Vec<ExperimentWrite>> {
    let mut writes = Vec::new();
    for prefix in [EXPERIMENT_PREFIX, FLAG_PREFIX] {
        let entries = live
            .experiment_entries(&[prefix])
            .map_err(Error::OpenState)?;
        writes.extend(entries.into_iter().map(|(key, value)| (key, Some(value))));
    }
    Ok(writes)
}

/// Runs a replay (see the module documentation). Blocking; with Fluvio, call it inside a tokio
/// runtime (from a blocking thread of it).
pub fn replay(options: &ReplayOptions) -> Result<ReplaySummary> {
    let started = Instant::now();
    let source = &options.node.data_dir;
    let layout = DataDir::new(source);
    let into = &options.into;
    if let (Some(from), Some(until)) = (options.from_ms, options.until_ms)
        && from > until
    {
        return Err(Error::Config(format!(
            "--from ({from}) is after --until ({until})"
        )));
    }
    if into.exists()
        && std::fs::read_dir(into)
            .map_err(io_at(into, "reading"))?
            .next()
            .is_some()
    {
        // The node's own data directory is never empty, so this also refuses `--into` = it.
        return Err(Error::Config(format!(
            "--into {}: not empty; replay writes a new data directory",
            into.display()
        )));
    }
    std::fs::create_dir_all(into).map_err(io_at(into, "creating"))?;
    let scratch_dir = into.join(".replay-secondary");
    std::fs::create_dir_all(&scratch_dir).map_err(io_at(&scratch_dir, "creating"))?;
    let scratch = Scratch(scratch_dir);

    // 1. The node's log and state, read beside the node.
    let log = match &options.node.log {
        LogBackend::Embedded => AnyLog::Embedded(
            EmbeddedLog::open_secondary(
                layout.log(),
                scratch.0.join("log"),
                options.node.cipher.clone(),
            )
            .map_err(|source_error| Error::OpenLog {
                backend: format!("embedded, of {}", source.display()),
                source: source_error,
            })?,
        ),
        backend => tokio::runtime::Handle::current()
            .block_on(AnyLog::open(
                backend,
                &layout.log(),
                options.node.partitions,
                options.node.cipher.clone(),
            ))
            .map_err(|source_error| Error::OpenLog {
                backend: backend.describe(),
                source: source_error,
            })?,
    };
    let log_end = log
        .end_offsets()
        .map_err(marquee_stream_processor::Error::from)?;
    let store_config = StoreConfig {
        dimension: options.node.model.stored_dimension(),
        dedup_window: options.node.dedup_window,
        block_cache_bytes: 64 * 1024 * 1024,
        cipher: options.node.cipher.clone(),
    };
    let (catalogue, erasures, definitions) = {
        let live =
            StateStore::open_secondary(layout.state(), scratch.0.join("state"), &store_config)
                .map_err(Error::OpenState)?;
        let catalogue = live.load_catalogue().map_err(Error::OpenState)?;
        let erasures = live.load_erasures().map_err(Error::OpenState)?;
        let definitions = definitions(&live)?;
        // The rules: the property schema, saved filters, campaigns, deleted items.
        let rules: Vec<ExperimentWrite> = live
            .rule_entries(&[])
            .map_err(Error::OpenState)?
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .collect();
        (catalogue, erasures, (definitions, rules))
    };
    let (definitions, rules) = definitions;
    // The journal's erasures too: the live state may lack some (it was restored), and those
    // users' events must not be applied here either.
    let erasures = with_journalled(erasures, &layout)?;

    // 2. What is not in the log: keys, journals, catalogue, erasure list. An erasure on the
    // node after this point is in its journal, which it applies to this state when it starts
    // on it.
    for name in SECRET_FILES.into_iter().chain(JOURNAL_FILES) {
        copy_if_present(source, into, name)?;
    }
    let target = DataDir::new(into);
    let store = StateStore::open(target.state(), &store_config).map_err(Error::OpenState)?;
    if !erasures.is_empty() {
        let mut batch = store.batch();
        for (hash, erased_ms) in &erasures {
            batch.put_erasure(hash, *erased_ms);
        }
        store.commit_synced(batch).map_err(Error::OpenState)?;
    }
    // The experiments and flags (their results are rebuilt from the log's impressions).
    store
        .write_experiments(&definitions, None)
        .map_err(Error::OpenState)?;
    store.write_rules(&rules).map_err(Error::OpenState)?;
    let mut processor_config = ProcessorConfig {
        max_batch_events: 4_096,
        ..options.node.processor.clone()
    };
    processor_config.erasure_key = target.erasure_key()?;
    processor_config.recommendation_key = target.recommendation_key()?;

    // 3. The production processor over the window.
    let passed_over = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let window = WindowLog {
        log,
        from_ms: options.from_ms,
        until_ms: options.until_ms,
        end: log_end.clone(),
        passed_over: passed_over.clone(),
    };
    let engine = Engine::open(
        window,
        store.clone(),
        options.node.model.clone(),
        options.node.index.clone(),
        processor_config,
        Metrics::new(log_end.len() as u32),
    )?;
    // The search index is not written here: the next start finds the catalogue changed and
    // rebuilds it.
    upsert_catalogue(&store, &engine.items, &engine.index, None, catalogue)?;
    let mut processor = engine.processor;
    let total: u64 = log_end.iter().sum();
    let mut read = 0u64;
    let mut last_report = Instant::now();
    let show = options.progress && std::io::stderr().is_terminal();
    loop {
        let consumed = processor.step()? as u64;
        if consumed == 0 {
            break;
        }
        read += consumed;
        if options.progress
            && last_report.elapsed() >= Duration::from_secs(if show { 1 } else { 10 })
        {
            last_report = Instant::now();
            let rate = read as f64 / started.elapsed().as_secs_f64();
            let left = total.saturating_sub(read) as f64 / rate.max(1.0);
            eprintln!(
                "replay: {read} of {total} entries ({:.0}%), {rate:.0} entries/s, about {left:.0} s left",
                100.0 * read as f64 / total.max(1) as f64
            );
        }
    }
    let offsets = processor.handle().committed_offsets();
    drop(processor);
    drop(scratch);
    Ok(ReplaySummary {
        read,
        before_window: passed_over.load(std::sync::atomic::Ordering::Relaxed),
        offsets,
        log_end,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The secondary instances' directory inside the target, removed when the replay ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
