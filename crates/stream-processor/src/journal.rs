//! The data directory's journals: what must outlive any one state, append-only.
//!
//! The state is a read model that a restore, a replay or a rebuild from the log replaces. Two
//! decisions an operator made must survive every one of those: that a user was erased, and that
//! a key was revoked. Each is appended here, synced, before it takes effect:
//!
//! - `erasures.jsonl` ([`ErasureRecord`]): the keyed hash of the erased user id (the erasure
//!   list's, never the id) and the erasure time. A node applies it at every start, before its
//!   processor runs ([`crate::Processor::apply_erasure_journal`]): an erasure its state does
//!   not hold (a state restored from an older backup, replayed from a log, or rebuilt empty) is
//!   done again.
//! - `revocations.jsonl` ([`RevocationRecord`]): the id of a revoked API key. The keys file
//!   never lists it again, whatever copy of it a restore brings back.
//!
//! Both stay in the data directory when its `state/` and `log/` are replaced; a backup copies
//! them, and a restore merges the backup's lines into the ones already there (never the other
//! way round), so a restore never undoes an erasure or a revocation the directory knows of.
//!
//! One JSON object a line. A line is written whole and synced before the action goes on; a
//! crash in the middle of an append leaves a last line without its newline, which is ignored
//! (the action it began never happened). Any other line that does not parse stops the start
//! with its line number: a journal is never silently half-read.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The erasure journal's file name.
pub const ERASURES_FILE: &str = "erasures.jsonl";
/// The revocation journal's file name.
pub const REVOCATIONS_FILE: &str = "revocations.jsonl";
/// Both journals, as a backup copies them and a restore merges them.
pub const JOURNAL_FILES: [&str; 2] = [ERASURES_FILE, REVOCATIONS_FILE];

/// One erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRecord {
    /// Hex of the erasure list's keyed hash of the user id (HMAC-SHA-256 under `erasure.key`).
    pub subject: String,
    /// When the user was erased, milliseconds since the Unix epoch.
    pub erased_ms: i64,
}

impl ErasureRecord {
    pub fn new(hash: &[u8; 32], erased_ms: i64) -> ErasureRecord {
        ErasureRecord {
            subject: hash.iter().map(|byte| format!("{byte:02x}")).collect(),
            erased_ms,
        }
    }

    /// The keyed hash, or `None` when `subject` is not 64 hex digits.
    pub fn hash(&self) -> Option<[u8; 32]> {
        let text = self.subject.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut hash = [0u8; 32];
        for (byte, pair) in hash.iter_mut().zip(text.chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(hash)
    }
}

/// One revoked API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRecord {
    pub key_id: String,
    /// When it was revoked, milliseconds since the Unix epoch.
    pub revoked_ms: i64,
}

/// Errors of a journal, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}, line {line}: not a journal record ({message}); the journal is append-only: \
         restore the file from a backup, or remove the damaged line if you know what it held"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// An append-only file of JSON lines (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn new(path: impl Into<PathBuf>) -> Journal {
        Journal { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
        move |source| JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `record` as one line and syncs it (the file is created owner-only).
    pub fn append<R: Serialize>(&self, record: &R) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).expect("journal records serialise");
        line.push(b'\n');
        self.append_lines(&line)
    }

    fn append_lines(&self, bytes: &[u8]) -> Result<(), JournalError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(self.io())?;
        file.write_all(bytes).map_err(self.io())?;
        file.sync_data().map_err(self.io())
    }

    /// The whole lines of the file (a missing file has none; a last line without its newline,
    /// a torn append, is left out).
    fn lines(&self) -> Result<Vec<String>, JournalError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.io()(source)),
        };
        let whole = match text.iter().rposition(|byte| *byte == b'\n') {
            Some(end) => &text[..=end],
            None => &[][..],
        };
        let whole = String::from_utf8_lossy(whole);
        Ok(whole
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Every record, oldest first.
    pub fn read<R: DeserializeOwned>(&self) -> Result<Vec<R>, JournalError> {
        self.lines()?
            .iter()
            .enumerate()
            .map(|(at, line)| {
                serde_json::from_str(line).map_err(|error| JournalError::Corrupt {
                    path: self.path.clone(),
                    line: at + 1,
                    message: error.to_string(),
                })
            })
            .collect()
    }

    /// The erasures of an erasure journal: each keyed hash with its latest erasure time. A
    /// subject that is not a keyed hash is an error naming its line.
    pub fn erasures(&self) -> Result<BTreeMap<[u8; 32], i64>, JournalError> {
        let mut latest = BTreeMap::new();
        for (at, record) in self.read::<ErasureRecord>()?.into_iter().enumerate() {
            let hash = record.hash().ok_or_else(|| JournalError::Corrupt {
                path: self.path.clone(),
                line: at + 1,
                message: format!(
                    "subject {:?} is not a keyed hash (64 hex digits)",
                    record.subject
                ),
            })?;
            let erased_ms = latest.entry(hash).or_insert(record.erased_ms);
            *erased_ms = (*erased_ms).max(record.erased_ms);
        }
        Ok(latest)
    }

    /// Appends the lines of the journal at `other` that this one does not hold (in their
    /// order); returns how many. A missing `other` adds nothing.
    pub fn merge_from(&self, other: &Path) -> Result<usize, JournalError> {
        let held: HashSet<String> = self.lines()?.into_iter().collect();
        let new: Vec<String> = Journal::new(other)
            .lines()?
            .into_iter()
            .filter(|line| !held.contains(line))
            .collect();
        if new.is_empty() {
            return Ok(0);
        }
        let mut bytes = Vec::new();
        for line in &new {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        self.append_lines(&bytes)?;
        Ok(new.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_torn_last_line_and_a_merge_adds_only_what_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join(ERASURES_FILE));
        assert!(journal.read::<ErasureRecord>().unwrap().is_empty());
        let first = ErasureRecord::new(&[7; 32], 1_000);
        journal.append(&first).unwrap();
        // A crash in the middle of the next append.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap();
        file.write_all(b"{\"subject\":\"07").unwrap();
        assert_eq!(
            journal.read::<ErasureRecord>().unwrap(),
            vec![first.clone()]
        );
        assert_eq!(first.hash(), Some([7; 32]));

        let other = Journal::new(dir.path().join("other.jsonl"));
        let second = ErasureRecord::new(&[9; 32], 2_000);
        other.append(&first).unwrap();
        other.append(&second).unwrap();
        let fresh = Journal::new(dir.path().join("fresh.jsonl"));
        fresh.append(&first).unwrap();
        assert_eq!(fresh.merge_from(other.path()).unwrap(), 1);
        assert_eq!(fresh.merge_from(other.path()).unwrap(), 0);
        assert_eq!(
            fresh.read::<ErasureRecord>().unwrap(),
            vec![first, second.clone()]
        );
        // A user erased twice counts at the later time.
        fresh.append(&ErasureRecord::new(&[9; 32], 1_500)).unwrap();
        let erasures = fresh.erasures().unwrap();
        assert_eq!(erasures.len(), 2);
        assert_eq!(erasures[&[9; 32]], 2_000);
        assert_eq!(erasures[&[7; 32]], 1_000);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fresh.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn a_damaged_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join(REVOCATIONS_FILE));
        journal
            .append(&RevocationRecord {
                key_id: "0a1b2c3d".into(),
                revoked_ms: 5,
            })
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap()
            .write_all(b"not json\n{\"key_id\":\"x\",\"revoked_ms\":1}\n")
            .unwrap();
        let error = journal.read::<RevocationRecord>().unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains(REVOCATIONS_FILE), "{error}");

        let erasures = Journal::new(dir.path().join(ERASURES_FILE));
        erasures.append(&ErasureRecord::new(&[1; 32], 5)).unwrap();
        erasures
            .append(&ErasureRecord {
                subject: "not hex".into(),
                erased_ms: 6,
            })
            .unwrap();
        let error = erasures.erasures().unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("not a keyed hash"), "{error}");
    }
}
