//! `[storage]`: the key of encryption at rest, from a file or the environment, checked where it
//! is read (outside the data directory, its owner's only).

use std::path::{Path, PathBuf};

use marquee_schemas::Cipher;
use serde::{Deserialize, Serialize};

use super::refuse;
use crate::error::Result;

/// `[storage]`: encryption at rest (`docs/PRIVACY.md`, "Encryption at rest").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// A file holding the key (64 hex digits, mode 0600), outside the data directory: the log
    /// and the state are encrypted with it. Fixed when a data directory is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key_file: Option<PathBuf>,
    /// The key from the environment (`MARQUEE_ENCRYPTION_KEY`), instead of the file.
    #[serde(skip)]
    pub encryption_key: Option<SecretKey>,
}

/// A key as 64 hex digits, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl StorageSettings {
    /// The cipher of the configured key, if any; each refusal names the setting at fault.
    pub(super) fn cipher(&self, data_dir: &Path) -> Result<Option<Cipher>> {
        match (&self.encryption_key_file, &self.encryption_key) {
            (Some(_), Some(_)) => Err(refuse(
                "storage.encryption_key_file: set either it or MARQUEE_ENCRYPTION_KEY, not both",
            )),
            (None, Some(SecretKey(hex))) => Cipher::from_hex(hex)
                .map(Some)
                .map_err(|error| refuse(format!("MARQUEE_ENCRYPTION_KEY: {error}"))),
            (Some(path), None) => key_file_cipher(path, data_dir).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// Reads the key file: outside `data_dir` (a key beside the data would be in every backup of
/// it), readable by its owner only.
fn key_file_cipher(path: &Path, data_dir: &Path) -> Result<Cipher> {
    let at = |problem: String| refuse(format!("storage.encryption_key_file: {problem}"));
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if absolute(path).starts_with(absolute(data_dir)) {
        return Err(at(format!(
            "{} is inside data_dir; keep the key elsewhere (a key beside the data is in every \
             backup of it)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| at(format!("cannot read {}: {error}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|error| at(format!("cannot read {}: {error}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(at(format!(
                "{} is readable by other users (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    Cipher::from_hex(&text).map_err(|error| at(format!("{}: {error}", path.display())))
}
