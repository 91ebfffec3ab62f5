//! API keys: the keys file, its scopes, and the lookup the server does on every request.
//!
//! A key is `mq_<id>_<secret>`: `id` is 8 hex digits (public, it names the key in logs and in
//! `marquee keys list`), `secret` 64 hex digits (32 random bytes). The keys file
//! (`<data-dir>/keys.json`, mode 0600) holds, per key, its id, name, scopes, optional rate,
//! optional expiry and the SHA-256 of the whole key, never the key itself: it is printed once, by `marquee keys create`.
//! A plain hash is enough because the key is 256 random bits (nothing to brute-force, unlike a
//! password); the comparison is constant-time ([`subtle`]).
//!
//! The file is rewritten whole through a temporary file and a rename, so a reader (the server
//! reloading on change, see [`crate::guard`]) never sees half of it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use marquee_schemas::now_ms;
use marquee_stream_processor::data_dir::write_private;
use marquee_stream_processor::journal::{
    Journal, JournalError, REVOCATIONS_FILE, RevocationRecord,
};

/// What a key may do. `admin` may do everything; `catalogue`, `users`, `operations` and
/// `tokens` are each a part of it, for an operator (or a backend) that needs only that part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /v1/events` only: safe to ship inside a client app.
    Ingest,
    /// Queries: recommendations, similar, trending, items.
    Read,
    /// Catalogue writes and deletions, the property schema, saved filters, campaigns.
    Catalogue,
    /// A user's data: summary, export, erasure.
    Users,
    /// The processor's state and pause, backups, experiments and flags.
    Operations,
    /// Minting viewer tokens: what a host site's backend needs, and nothing more.
    Tokens,
    /// Everything.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Ingest,
        Scope::Read,
        Scope::Catalogue,
        Scope::Users,
        Scope::Operations,
        Scope::Tokens,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Catalogue => "catalogue",
            Scope::Users => "users",
            Scope::Operations => "operations",
            Scope::Tokens => "tokens",
            Scope::Admin => "admin",
        }
    }

    /// Whether holding `held` grants this scope (`admin` grants every scope).
    pub fn granted_by(self, held: &[Scope]) -> bool {
        held.contains(&self) || held.contains(&Scope::Admin)
    }

    /// Whether this is `admin` or a part of it (an operator's scope, not a client app's).
    pub fn is_administrative(self) -> bool {
        !matches!(self, Scope::Ingest | Scope::Read)
    }

    /// The scopes' names, for messages: `ingest, read, …, admin`.
    pub fn names() -> String {
        Scope::ALL.map(Scope::as_str).join(", ")
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key as stored: everything but the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the whole key.
    pub sha256: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Requests per second this key may make; the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// When the key stops working, milliseconds since the Unix epoch; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

impl KeyRecord {
    /// Whether this key grants `scope` (`admin` grants every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        scope.granted_by(&self.scopes)
    }

    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_ms.is_some_and(|expires| now_ms >= expires)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    keys: Vec<KeyRecord>,
}

/// Errors of the keys file.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a keys file: {source}")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no key with id {0:?}")]
    NoSuchKey(String),
    #[error("scope: give at least one of {}", Scope::names())]
    NoScope,
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The ids the revocation journal beside the keys file at `path` names.
fn revoked_ids(path: &Path) -> Result<HashSet<String>, KeysError> {
    Ok(revocation_journal(path)
        .read::<RevocationRecord>()?
        .into_iter()
        .map(|record| record.key_id)
        .collect())
}

/// The keys of a data directory, as read from its keys file, less every key the revocation
/// journal beside it names (`revocations.jsonl`, see `marquee_stream_processor::journal`): a
/// keys file brought back from a backup never revives a revoked key.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_id: HashMap<String, KeyRecord>,
    /// Ids the journal names (never given to a new key).
    revoked: HashSet<String>,
    /// Revoked since loading: journalled by the next [`KeySet::save`], before the keys file.
    newly_revoked: Vec<RevocationRecord>,
}

/// The revocation journal beside the keys file at `path`.
fn revocation_journal(path: &Path) -> Journal {
    Journal::new(path.with_file_name(REVOCATIONS_FILE))
}

/// The path of the keys file of `data_dir`.
pub fn keys_path(data_dir: &Path) -> PathBuf {
    marquee_stream_processor::DataDir::new(data_dir).keys_file()
}

/// A time in milliseconds since the epoch, as RFC 3339 (UTC).
pub fn describe_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| format!("{ms} ms"), |at| at.to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl KeySet {
    /// Reads `path`; a missing file is an empty set.
    pub fn load(path: &Path) -> Result<KeySet, KeysError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KeySet {
                    revoked: revoked_ids(path)?,
                    ..KeySet::default()
                });
            }
            Err(source) => {
                return Err(KeysError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let body: FileBody = serde_json::from_slice(&text).map_err(|source| KeysError::Format {
            path: path.to_owned(),
            source,
        })?;
        let revoked = revoked_ids(path)?;
        Ok(KeySet {
            by_id: body
                .keys
                .into_iter()
                .filter(|record| !revoked.contains(&record.id))
                .map(|record| (record.id.clone(), record))
                .collect(),
            revoked,
            newly_revoked: Vec::new(),
        })
    }

    /// Writes the set to `path` atomically (temporary file, then rename), readable by the owner
    /// only; the keys revoked since loading are journalled first.
    pub fn save(&mut self, path: &Path) -> Result<(), KeysError> {
        let io = |source| KeysError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let journal = revocation_journal(path);
        for record in &self.newly_revoked {
            journal.append(record)?;
        }
        self.newly_revoked.clear();
        let mut keys: Vec<KeyRecord> = self.by_id.values().cloned().collect();
        keys.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        let text = serde_json::to_vec_pretty(&FileBody { keys }).expect("keys serialise");
        let temporary = path.with_extension("json.tmp");
        write_private(&temporary, &text).map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)
    }

    /// Adds a new key and returns it; only its hash is kept.
    pub fn create(
        &mut self,
        name: &str,
        scopes: &[Scope],
        rate_per_second: Option<u32>,
    ) -> Result<(String, KeyRecord), KeysError> {
        self.create_expiring(name, scopes, rate_per_second, None)
    }

    /// [`KeySet::create`] of a key that stops working at `expires_ms` (milliseconds since the
    /// epoch; `None`: never).
    pub fn create_expiring(
        &mut self,
        name: &str,
        scopes: &[Scope],
        rate_per_second: Option<u32>,
        expires_ms: Option<i64>,
    ) -> Result<(String, KeyRecord), KeysError> {
        if scopes.is_empty() {
            return Err(KeysError::NoScope);
        }
        let mut random = rand::rng();
        let id = loop {
            let id = format!("{:08x}", random.next_u32());
            if !self.by_id.contains_key(&id) && !self.revoked.contains(&id) {
                break id;
            }
        };
        let mut secret = [0u8; 32];
        random.fill_bytes(&mut secret);
        let secret: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
        let key = format!("mq_{id}_{secret}");
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let record = KeyRecord {
            id: id.clone(),
            name: name.to_owned(),
            scopes,
            sha256: sha256_hex(key.as_bytes()),
            created_ms: now_ms(),
            rate_per_second,
            expires_ms,
        };
        self.by_id.insert(id, record.clone());
        Ok((key, record))
    }

    /// Removes the key with `id`, for good: [`KeySet::save`] journals it, and no keys file
    /// loaded beside that journal lists it again.
    pub fn revoke(&mut self, id: &str) -> Result<KeyRecord, KeysError> {
        let record = self
            .by_id
            .remove(id)
            .ok_or_else(|| KeysError::NoSuchKey(id.to_owned()))?;
        self.revoked.insert(id.to_owned());
        self.newly_revoked.push(RevocationRecord {
            key_id: id.to_owned(),
            revoked_ms: now_ms(),
        });
        Ok(record)
    }

    /// The keys, oldest first.
    pub fn records(&self) -> Vec<&KeyRecord> {
        let mut records: Vec<&KeyRecord> = self.by_id.values().collect();
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        records
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The record of `key` if it is a valid key of this set; the hash comparison is
    /// constant-time.
    pub fn verify(&self, key: &str) -> Option<&KeyRecord> {
        let id = key.strip_prefix("mq_")?.split('_').next()?;
        let record = self.by_id.get(id)?;
        let presented = sha256_hex(key.as_bytes());
        bool::from(presented.as_bytes().ct_eq(record.sha256.as_bytes())).then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_verifies_and_a_changed_one_does_not() {
        let mut set = KeySet::default();
        let (key, record) = set.create("app", &[Scope::Ingest], None).unwrap();
        assert!(key.starts_with(&format!("mq_{}_", record.id)));
        assert_eq!(set.verify(&key).map(|found| &found.id), Some(&record.id));
        let mut altered = key.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        assert!(set.verify(&String::from_utf8(altered).unwrap()).is_none());
        assert!(set.verify("mq_").is_none());
        assert!(set.verify("").is_none());
    }

    #[test]
    fn the_file_keeps_hashes_not_keys_and_survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = keys_path(dir.path());
        let mut set = KeySet::default();
        let (key, _) = set.create("ops", &[Scope::Admin], Some(50)).unwrap();
        set.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key[12..]), "the secret reached the file");
        let mut loaded = KeySet::load(&path).unwrap();
        let record = loaded.verify(&key).unwrap().clone();
        assert_eq!(record.rate_per_second, Some(50));
        for scope in Scope::ALL {
            assert!(record.allows(scope), "admin grants {scope}");
        }
        loaded.revoke(&record.id).unwrap();
        assert!(loaded.verify(&key).is_none());
        assert!(matches!(
            loaded.revoke("nope"),
            Err(KeysError::NoSuchKey(_))
        ));
    }

    #[test]
    fn an_ingest_key_grants_nothing_else() {
        let mut set = KeySet::default();
        let (_, record) = set.create("", &[Scope::Ingest], None).unwrap();
        assert!(record.allows(Scope::Ingest));
        assert!(!record.allows(Scope::Read));
        assert!(!record.allows(Scope::Admin));
        assert!(matches!(set.create("", &[], None), Err(KeysError::NoScope)));
    }

    #[test]
    fn a_part_of_admin_grants_itself_only() {
        let mut set = KeySet::default();
        let (_, record) = set
            .create("catalogue team", &[Scope::Catalogue], None)
            .unwrap();
        assert!(record.allows(Scope::Catalogue));
        for scope in [
            Scope::Read,
            Scope::Users,
            Scope::Operations,
            Scope::Tokens,
            Scope::Admin,
        ] {
            assert!(!record.allows(scope), "{scope}");
        }
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert!(Scope::names().contains("operations"));
    }
}
