//! Online backups and offline restore of a data directory.
//!
//! A backup is a directory holding `state/` and `log/` (RocksDB checkpoints: hard links to the
//! immutable SST files where the backup is on the same filesystem, copies otherwise), copies of
//! `keys.json`, `erasure.key` (the erasure list in the state is keyed with it) and
//! `pseudonym.key` (when user ids are pseudonymised), and
//! `manifest.json`. The state is checkpointed first, then the
//! log, so the log copy holds every event the state copy applied: the consumer offsets travel
//! inside the state checkpoint with the state they describe, and a restored node resumes its
//! processor from them over the restored log. Nothing is paused; serving and ingest go on.
//!
//! Restore copies a backup into a data directory that has neither `log/` nor `state/` (the node
//! must be stopped; the procedure is in docs/OPERATIONS.md). The journals of erasures and
//! revoked keys are merged into the directory's own rather than copied over them, so a
//! restore never brings back an erased user or a revoked key the directory knew of. Events acknowledged after the log
//! checkpoint are not in the backup: the recovery point is the backup's `created_ms`.
//!
//! On Fluvio the log stays in the cluster and a backup holds no `log/`: the restored state's
//! offsets point into the topic, and the processor resumes there (events the topic's retention
//! dropped since are gone).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use marquee_ingest::{AnyLog, EventLog};
use marquee_schemas::now_ms;
use marquee_vector_store::StateStore;

use crate::data_dir::{DataDir, LOG_DIR, SECRET_FILES, STATE_DIR};
use crate::journal::{JOURNAL_FILES, Journal};
use crate::processor::ProcessorHandle;

/// The manifest file of a backup.
pub const MANIFEST: &str = "manifest.json";

/// What `manifest.json` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version of the backup layout.
    pub format: u32,
    /// When the checkpoints were taken, milliseconds since the Unix epoch (the recovery point).
    pub created_ms: i64,
    /// The state's consumer offsets, per partition, when the state checkpoint was taken (at
    /// most these; the checkpoint holds the exact ones).
    pub committed_offsets: Vec<u64>,
    /// The log's end offsets just after its checkpoint (at least these events are in it).
    pub log_end_offsets: Vec<u64>,
    /// Bytes of all files of the backup.
    pub bytes: u64,
    pub marquee_version: String,
}

/// Errors of backup and restore, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("dir: {0} exists and is not empty; give a new directory")]
    NotEmpty(PathBuf),
    #[error("dir: must be an absolute path on the server, got {0:?}")]
    NotAbsolute(PathBuf),
    #[error("{0}: not a Marquee backup (no manifest.json)")]
    NotABackup(PathBuf),
    #[error(
        "{0}: already holds a log or a state; restore into a new data directory, or move them \
         aside with the node stopped"
    )]
    TargetInUse(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Bytes of every file under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |meta| meta.len()),
            Err(_) => 0,
        })
        .sum()
}

/// What a backup copies: the parts of a running node.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub log: &'a AnyLog,
    pub store: &'a StateStore,
    pub processor: &'a ProcessorHandle,
    pub data_dir: &'a DataDir,
}

/// Takes a backup of a running node into `dir` (absolute; absent or empty).
pub fn create(source: Source<'_>, dir: &Path) -> Result<Manifest, BackupError> {
    if !dir.is_absolute() {
        return Err(BackupError::NotAbsolute(dir.to_owned()));
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    crate::data_dir::make_private_dir(dir).map_err(io(dir))?;
    let committed_offsets = source.processor.committed_offsets();
    source
        .store
        .checkpoint(&dir.join(STATE_DIR))
        .map_err(|error| BackupError::Checkpoint(format!("state: {error}")))?;
    let created_ms = now_ms();
    // A Fluvio log stays in its cluster: the backup's state points into it by offsets.
    if let Some(log) = source.log.as_embedded() {
        log.checkpoint(&dir.join(LOG_DIR))
            .map_err(|error| BackupError::Checkpoint(format!("log: {error}")))?;
    }
    let log_end_offsets = source
        .log
        .end_offsets()
        .map_err(|error| BackupError::Checkpoint(format!("log: {error}")))?;
    for file in SECRET_FILES.into_iter().chain(JOURNAL_FILES) {
        let from = source.data_dir.root().join(file);
        if from.exists() {
            std::fs::copy(&from, dir.join(file)).map_err(io(&from))?;
        }
    }
    let mut manifest = Manifest {
        format: 1,
        created_ms,
        committed_offsets,
        log_end_offsets,
        bytes: 0,
        marquee_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    manifest.bytes = tree_bytes(dir);
    write_synced(
        &dir.join(MANIFEST),
        &serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
    )?;
    Ok(manifest)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Reads the manifest of the backup at `dir`.
pub fn manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|_| BackupError::NotABackup(dir.to_owned()))?;
    serde_json::from_slice(&bytes).map_err(|_| BackupError::NotABackup(dir.to_owned()))
}

/// Copies `from` into `to` (a directory tree of plain files), syncing each file.
fn copy_tree(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io(from))?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io(&target))?;
            std::fs::File::open(&target)
                .and_then(|file| file.sync_all())
                .map_err(io(&target))?;
        }
    }
    Ok(())
}

/// Restores the backup at `backup` into `data_dir`, which must hold no log and no state. The
/// journals of erasures and revocations ([`crate::journal`]) already in `data_dir`, in the
/// backup and in each of `journals` (directories holding journals: a newer backup, a copy
/// kept elsewhere) are merged, so the node, when it starts, erases again whoever the restored
/// state still holds and refuses every revoked key.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    journals: &[PathBuf],
) -> Result<Manifest, BackupError> {
    let manifest = manifest(backup)?;
    let layout = DataDir::new(data_dir);
    if layout.log().exists() || layout.state().exists() {
        return Err(BackupError::TargetInUse(data_dir.to_owned()));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    // A graph another state saved: its stamp would refuse it, but it has no use here.
    let stale_index = layout.index();
    if stale_index.exists() {
        std::fs::remove_dir_all(&stale_index).map_err(io(&stale_index))?;
    }
    // Into temporary names first, renamed at the end: an interrupted restore leaves no
    // half-copied `state/` that a node would open. A backup of a node on Fluvio has no `log/`.
    let parts: Vec<&str> = [STATE_DIR, LOG_DIR]
        .into_iter()
        .filter(|part| *part == STATE_DIR || backup.join(part).exists())
        .collect();
    for part in &parts {
        copy_tree(
            &backup.join(part),
            &data_dir.join(format!("{part}.restoring")),
        )?;
    }
    for part in &parts {
        let from = data_dir.join(format!("{part}.restoring"));
        std::fs::rename(&from, data_dir.join(part)).map_err(io(&from))?;
    }
    for file in SECRET_FILES {
        let source = backup.join(file);
        if source.exists() && !data_dir.join(file).exists() {
            std::fs::copy(&source, data_dir.join(file)).map_err(io(&source))?;
        }
    }
    // The journals are merged, never replaced: an erasure or a revocation the directory (or
    // `journals`) knows of and the backup does not stays.
    for from in std::iter::once(backup).chain(journals.iter().map(PathBuf::as_path)) {
        for file in JOURNAL_FILES {
            Journal::new(data_dir.join(file)).merge_from(&from.join(file))?;
        }
    }
    Ok(manifest)
}
