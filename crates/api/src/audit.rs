//! The audit log: one JSON line per operator action and per export of a user's data, appended
//! and synced before the response leaves, in `<data_dir>/audit/YYYY-MM-DD.jsonl` (UTC days,
//! mode 0600), kept `[audit] retention_days` (`docs/OPERATIONS.md`, "Audit log").
//!
//! Audited: every request to a route that needs the `admin` scope but its reads (`GET`), and
//! `GET /v1/users/{user_id}/export` whatever the scope it needs. A record says who (the key id;
//! `auth off` without keys), what (method and route, the path's other parameters), about whom
//! (`subject`: the keyed hash of the user id the erasure list uses, never the id itself, so an
//! erasure does not have to reach back into the audit log), when, the request id and the answer's
//! status. `marquee_audit_records_total{action}` counts them, and
//! `marquee_audit_failures_total` the records that could not be written (the action itself
//! has happened by then; the failure is logged at error level).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::Serialize;

/// Who made a request, as the guard established it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key, by id.
    Key(String),
    /// An operator signed in through the OIDC issuer, by subject.
    Oidc(String),
    /// A viewer token (never an operator).
    Viewer,
    /// A node with auth off: anyone who reaches it.
    Anonymous,
}

impl Actor {
    pub fn describe(&self) -> String {
        match self {
            Actor::Key(id) => format!("key:{id}"),
            Actor::Oidc(subject) => format!("oidc:{subject}"),
            Actor::Viewer => "viewer token".to_owned(),
            Actor::Anonymous => "auth off".to_owned(),
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub at_ms: i64,
    pub actor: String,
    /// `METHOD route`, the route as declared (`DELETE /v1/users/{user_id}`).
    pub action: String,
    /// The path's parameters but `user_id` (`{"name": "spring-sale"}`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<&'a str, String>,
    /// 32 hex digits of HMAC-SHA-256 of the (stored) user id under `erasure.key`, when the path
    /// names a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub request_id: &'a str,
    pub status: u16,
}

/// The audit log of a node (see the module documentation). Cheap to share: an `Arc` of it sits
/// in the router's state.
pub struct AuditLog {
    dir: PathBuf,
    erasure_key: [u8; 32],
    retention_days: u32,
    /// The open day file: its day (days since the epoch) and handle.
    file: Mutex<Option<(i64, std::fs::File)>>,
    records: IntCounterVec,
    failures: IntCounter,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

const MS_PER_DAY: i64 = 24 * 3600 * 1000;

impl AuditLog {
    /// An audit log in `dir` (created, mode 0700, when missing), hashing user ids under
    /// `erasure_key`, keeping `retention_days` days (0: every day), its metrics in `registry`.
    pub fn open(
        dir: PathBuf,
        erasure_key: [u8; 32],
        retention_days: u32,
        registry: &Registry,
    ) -> std::io::Result<AuditLog> {
        marquee_stream_processor::data_dir::make_private_dir(&dir)?;
        let records = IntCounterVec::new(
            Opts::new(
                "marquee_audit_records_total",
                "Operator actions and exports written to the audit log, by action",
            ),
            &["action"],
        )
        .expect("valid metric");
        let failures = IntCounter::new(
            "marquee_audit_failures_total",
            "Audit records that could not be written",
        )
        .expect("valid metric");
        for collector in [
            Box::new(records.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
        ] {
            // A second node in one process (tests) shares the registry's first metrics.
            let _ = registry.register(collector);
        }
        Ok(AuditLog {
            dir,
            erasure_key,
            retention_days,
            file: Mutex::new(None),
            records,
            failures,
        })
    }

    /// The subject of a record about `stored_user_id`.
    pub fn subject(&self, stored_user_id: &str) -> String {
        marquee_stream_processor::erasure_subject(&self.erasure_key, stored_user_id)
    }

    /// Appends `record` and syncs it; a failure is counted and logged, never returned (the
    /// action it records has happened). Blocking: call from a blocking thread.
    pub fn append(&self, record: &Record<'_>) {
        match self.write(record) {
            Ok(()) => self
                .records
                .with_label_values(&[record.action.as_str()])
                .inc(),
            Err(error) => {
                self.failures.inc();
                tracing::error!(
                    %error,
                    action = record.action,
                    request_id = record.request_id,
                    dir = %self.dir.display(),
                    "the audit record could not be written"
                );
            }
        }
    }

    fn write(&self, record: &Record<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).expect("a record serialises");
        line.push(b'\n');
        let day = record.at_ms.div_euclid(MS_PER_DAY);
        let mut open = self.file.lock();
        if open.as_ref().is_none_or(|(open_day, _)| *open_day != day) {
            let path = self.dir.join(day_file_name(day));
            *open = Some((day, append_private(&path)?));
            self.prune(day);
        }
        let (_, file) = open.as_mut().expect("opened above");
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Removes the day files older than the retention, as of `today`.
    fn prune(&self, today: i64) {
        if self.retention_days == 0 {
            return;
        }
        let oldest_kept = day_file_name(today - i64::from(self.retention_days) + 1);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_day_file(&name)
                && *name < *oldest_kept
                && let Err(error) = std::fs::remove_file(entry.path())
            {
                tracing::warn!(%error, file = %name, "an expired audit file stays");
            }
        }
    }
}

/// `YYYY-MM-DD.jsonl` of a day since the epoch (UTC).
fn day_file_name(day: i64) -> String {
    let date = jiff::Timestamp::from_millisecond(day * MS_PER_DAY).map_or_else(
        |_| format!("day-{day}"),
        |at| jiff::tz::Offset::UTC.to_datetime(at).date().to_string(),
    );
    format!("{date}.jsonl")
}

fn is_day_file(name: &str) -> bool {
    name.len() == "2026-12-07.jsonl".len()
        && name.ends_with(".jsonl")
        && name[..10].bytes().enumerate().all(|(at, byte)| {
            matches!(at, 4 | 7) == (byte == b'-') && (byte == b'-' || byte.is_ascii_digit())
        })
}

/// Opens `path` for appending, creating it with mode 0600.
fn append_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: i64) -> Record<'static> {
        Record {
            at_ms,
            actor: Actor::Key("k1".into()).describe(),
            action: "DELETE /v1/users/{user_id}".into(),
            parameters: BTreeMap::new(),
            subject: Some("00".into()),
            request_id: "r1",
            status: 204,
        }
    }

    #[test]
    fn appends_one_line_per_record_to_the_day_file_and_drops_expired_days() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path().join("audit"), [7; 32], 2, &Registry::new()).unwrap();
        let day = 20_000 * MS_PER_DAY; // 2024-10-04
        log.append(&record(day + 5));
        log.append(&record(day + 6));
        let first = dir.path().join("audit/2024-10-04.jsonl");
        let text = std::fs::read_to_string(&first).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["actor"], "key:k1");
        assert_eq!(line["action"], "DELETE /v1/users/{user_id}");
        assert_eq!(line["status"], 204);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // Two days later, with two days kept, the first day's file goes.
        log.append(&record(day + MS_PER_DAY));
        assert!(first.exists(), "kept on the next day");
        log.append(&record(day + 2 * MS_PER_DAY));
        assert!(!first.exists(), "dropped after the retention");
        assert!(dir.path().join("audit/2024-10-06.jsonl").exists());
        assert_eq!(
            log.records
                .with_label_values(&["DELETE /v1/users/{user_id}"])
                .get(),
            4
        );
    }

    #[test]
    fn the_subject_is_a_keyed_hash_not_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let one = AuditLog::open(dir.path().join("a"), [1; 32], 0, &Registry::new()).unwrap();
        let two = AuditLog::open(dir.path().join("b"), [2; 32], 0, &Registry::new()).unwrap();
        assert_eq!(one.subject("alice").len(), 32);
        assert_eq!(one.subject("alice"), one.subject("alice"));
        assert_ne!(one.subject("alice"), one.subject("bob"));
        assert_ne!(one.subject("alice"), two.subject("alice"));
        assert!(!one.subject("alice").contains("alice"));
    }

    #[test]
    fn only_day_files_are_pruned() {
        assert!(is_day_file("2026-12-07.jsonl"));
        assert!(!is_day_file("notes.jsonl"));
        assert!(!is_day_file("2026-12-07.json"));
        assert!(!is_day_file("2026_12_07.jsonl"));
    }
}
