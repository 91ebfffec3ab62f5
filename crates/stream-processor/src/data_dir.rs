//! The layout of a node's data directory, written once: every file and directory name a node,
//! a backup, a restore and a replay use.
//!
//! | path | what |
//! |---|---|
//! | `log/` | the embedded event log (a RocksDB instance; nothing with the Fluvio log) |
//! | `state/` | the model state (`marquee_vector_store::store`) |
//! | `index/` | the HNSW graph a clean stop saved (`marquee_vector_store::VectorIndex::save`) |
//! | `search/` | the catalogue's search index (`crate::search`), rebuilt from the catalogue when missing |
//! | `audit/` | the audit log, a JSON-lines file per UTC day (`marquee_api::audit`) |
//! | `backups/` | online backups, when the configuration names no other `backup_root` |
//! | `keys.json` | API key hashes (`marquee_api::keys`), mode 0600 |
//! | `erasure.key` | the 32-byte key of the erasure list's keyed hashes, mode 0600 |
//! | `pseudonym.key` | the 32-byte key of pseudonymised user ids, mode 0600 |
//! | `erasures.jsonl`, `revocations.jsonl` | the journals of erasures and revoked keys, which outlive the state (`crate::journal`) |
//!
//! A node makes the root its owner's only (mode 0700, [`DataDir::make_private`]) at start.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{ERASURES_FILE, Journal, REVOCATIONS_FILE};

/// The embedded log's directory name.
pub const LOG_DIR: &str = "log";
/// The state's directory name.
pub const STATE_DIR: &str = "state";
/// Where a clean stop saves the index's graph.
pub const INDEX_DIR: &str = "index";
/// The search index's directory name.
pub const SEARCH_DIR: &str = "search";
/// The audit log's directory name.
pub const AUDIT_DIR: &str = "audit";
/// The API keys file's name.
pub const KEYS_FILE: &str = "keys.json";
/// The erasure key's file name.
pub const ERASURE_KEY_FILE: &str = "erasure.key";
/// The file name of the key that signs recommendation ids and keys the experiments' user
/// records.
pub const RECOMMENDATION_KEY_FILE: &str = "recommendation.key";

/// The pseudonymisation key's file name.
pub const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

/// The files a backup copies beside the state and the log, and a restore puts back.
pub const SECRET_FILES: [&str; 5] = [
    KEYS_FILE,
    ERASURE_KEY_FILE,
    PSEUDONYM_KEY_FILE,
    RECOMMENDATION_KEY_FILE,
    VIEWER_KEY_FILE,
];

/// The file name of the key viewer tokens are signed with (copy it to every node, like
/// `keys.json`, and to the host site's backend if it signs tokens itself).
pub const VIEWER_KEY_FILE: &str = "viewer.key";

/// A node's data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/audit`: the audit log's day files.
    pub fn audit(&self) -> PathBuf {
        self.root.join(AUDIT_DIR)
    }

    /// `<root>/log`: the embedded event log.
    pub fn log(&self) -> PathBuf {
        self.root.join(LOG_DIR)
    }

    /// `<root>/state`: the model state.
    pub fn state(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// `<root>/index`: the graph saved at a clean stop.
    pub fn index(&self) -> PathBuf {
        self.root.join(INDEX_DIR)
    }

    /// `<root>/search`: the catalogue's search index.
    pub fn search(&self) -> PathBuf {
        self.root.join(SEARCH_DIR)
    }

    /// `<root>/erasures.jsonl`: every erasure, applied again to a state that lacks one.
    pub fn erasure_journal(&self) -> Journal {
        Journal::new(self.root.join(ERASURES_FILE))
    }

    /// `<root>/revocations.jsonl`: every revoked API key.
    pub fn revocation_journal(&self) -> Journal {
        Journal::new(self.root.join(REVOCATIONS_FILE))
    }

    /// `<root>/keys.json`: the API keys.
    pub fn keys_file(&self) -> PathBuf {
        self.root.join(KEYS_FILE)
    }

    /// The key of the erasure list's hashes (`erasure.key`), created with the state. It is
    /// copied into backups with the state, whose erasure list it reads; missing beside an
    /// existing state, or beside an erasure journal, it is an error, never a new key (the
    /// erasure list would match nobody, and erased users would come back).
    pub fn erasure_key(&self) -> Result<[u8; 32]> {
        let path = self.root.join(ERASURE_KEY_FILE);
        let journal = self.erasure_journal();
        if !path.exists() && std::fs::metadata(journal.path()).is_ok_and(|meta| meta.len() > 0) {
            return Err(Error::MissingStateKey {
                path,
                harm: format!(
                    "the erasures in {} would match nobody and erased users would come back",
                    journal.path().display()
                ),
            });
        }
        self.state_key(
            ERASURE_KEY_FILE,
            "the erasure list would match nobody and erased users would come back",
        )
    }

    /// The key of pseudonymised user ids (`pseudonym.key`), created with the state; missing
    /// beside an existing state it is an error (every pseudonymised user would become
    /// unreachable).
    pub fn pseudonym_key(&self) -> Result<[u8; 32]> {
        self.state_key(
            PSEUDONYM_KEY_FILE,
            "every pseudonymised user already stored would be unreachable",
        )
    }

    /// A key the state's records were made with: created with a new state only.
    fn state_key(&self, name: &str, harm: &str) -> Result<[u8; 32]> {
        let path = self.root.join(name);
        if !path.exists() && self.state().join("CURRENT").exists() {
            return Err(Error::MissingStateKey {
                path,
                harm: harm.to_owned(),
            });
        }
        self.secret_key(name)
    }

    /// The key of recommendation ids (`recommendation.key`), created on first use; copied by
    /// backups and replays, so the ids of served lists stay attributable.
    pub fn recommendation_key(&self) -> Result<[u8; 32]> {
        self.secret_key(RECOMMENDATION_KEY_FILE)
    }

    /// The key of viewer tokens (`viewer.key`), created on first use.
    pub fn viewer_key(&self) -> Result<[u8; 32]> {
        self.secret_key(VIEWER_KEY_FILE)
    }

    /// Creates the root when missing and makes it its owner's only (mode 0700), so no other
    /// account of the machine reads a file below it, whatever that file's own mode (the
    /// binary also sets its umask to 077, so what it creates is 0600 or 0700).
    pub fn make_private(&self) -> Result<()> {
        make_private_dir(&self.root).map_err(|source| Error::Io {
            path: self.root.clone(),
            source,
        })
    }

    /// A 32-byte key kept in `<root>/<name>` (mode 0600), created at first use.
    fn secret_key(&self, name: &str) -> Result<[u8; 32]> {
        let path = self.root.join(name);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| Error::SecretKey {
                path: path.clone(),
                found: bytes.len(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
                std::fs::create_dir_all(&self.root).map_err(|source| Error::Io {
                    path: self.root.clone(),
                    source,
                })?;
                write_private(&path, &key).map_err(io)?;
                Ok(key)
            }
            Err(error) => Err(io(error)),
        }
    }
}

/// Creates `dir` (and its missing parents) when missing and sets its mode to 0700.
#[cfg(unix)]
pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates `dir` (and its missing parents) when missing.
#[cfg(not(unix))]
pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `bytes` to `path`, readable and writable by the owner only (mode 0600), synced.
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to `path`, synced.
#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path().join("data"));
        let key = data_dir.erasure_key().unwrap();
        assert_eq!(data_dir.erasure_key().unwrap(), key);
        assert_ne!(data_dir.pseudonym_key().unwrap(), key);
        std::fs::write(dir.path().join("data").join(ERASURE_KEY_FILE), b"short").unwrap();
        let error = data_dir.erasure_key().unwrap_err().to_string();
        assert!(error.contains("expected 32 bytes, found 5"), "{error}");
    }

    #[test]
    fn a_state_key_is_never_made_anew_beside_an_existing_state() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path().join("data"));
        std::fs::create_dir_all(data_dir.state()).unwrap();
        std::fs::write(data_dir.state().join("CURRENT"), "MANIFEST-000001\n").unwrap();
        for error in [
            data_dir.erasure_key().unwrap_err(),
            data_dir.pseudonym_key().unwrap_err(),
        ] {
            let error = error.to_string();
            assert!(
                error.contains("missing beside an existing state"),
                "{error}"
            );
            assert!(error.contains("restore"), "{error}");
        }
        assert!(!dir.path().join("data").join(ERASURE_KEY_FILE).exists());
        // Keys that only sign what they are shown are made anew.
        data_dir.viewer_key().unwrap();
    }
}
