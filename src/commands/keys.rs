//! `marquee keys`: create, list and revoke API keys in a data directory's keys file (a running
//! server picks changes up within a second); `marquee encryption-key`: a new key for
//! encryption at rest.

use std::path::Path;

use anyhow::{Result, anyhow};
use marquee_api::keys::{KeySet, Scope, keys_path};

#[derive(Debug, clap::Subcommand)]
pub enum KeysAction {
    /// Create a key and print it (once: only its hash is stored).
    Create {
        /// Scopes, comma-separated: ingest (POST events only), read (queries), catalogue
        /// (catalogue and rules writes), users (a user's data: summary, export, erasure),
        /// operations (processor, backups, experiments, flags), tokens (viewer tokens), admin (all).
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        /// Requests per second for this key (default: the server's `limits.rate_per_second`).
        #[arg(long)]
        rate: Option<u32>,
        /// Days until the key stops working (401 after, naming its expiry) [default: never].
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List the keys (ids, names, scopes; never the keys).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

pub fn run(action: KeysAction, data_dir: &Path) -> Result<()> {
    let path = keys_path(data_dir);
    let mut set = KeySet::load(&path)?;
    match action {
        KeysAction::Create {
            scope,
            name,
            rate,
            expires_in_days,
        } => {
            let scopes = scope
                .iter()
                .map(|text| {
                    Scope::parse(text.trim()).ok_or_else(|| {
                        anyhow!("--scope: {text:?} is not a scope; use {}", Scope::names())
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if rate == Some(0) {
                return Err(anyhow!("--rate: must be at least 1"));
            }
            if expires_in_days == Some(0) {
                return Err(anyhow!("--expires-in-days: must be at least 1"));
            }
            let expires_ms = expires_in_days
                .map(|days| marquee_schemas::now_ms() + i64::from(days) * 24 * 3600 * 1000);
            let (key, record) = set.create_expiring(&name, &scopes, rate, expires_ms)?;
            set.save(&path)?;
            let scopes: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
            eprintln!(
                "created key {} (scopes: {}) in {}; it is shown once, store it now:",
                record.id,
                scopes.join(","),
                path.display()
            );
            println!("{key}");
        }
        KeysAction::List => {
            println!(
                "{:<10} {:<20} {:<18} {:>8}  {:<14} expires",
                "id", "name", "scopes", "rate/s", "created"
            );
            for record in set.records() {
                let scopes: Vec<&str> = record.scopes.iter().map(|scope| scope.as_str()).collect();
                let rate = record
                    .rate_per_second
                    .map_or_else(|| "default".to_owned(), |rate| rate.to_string());
                let expires = record
                    .expires_ms
                    .map_or_else(|| "never".to_owned(), marquee_api::keys::describe_time);
                println!(
                    "{:<10} {:<20} {:<18} {:>8}  {:<14} {}",
                    record.id,
                    record.name,
                    scopes.join(","),
                    rate,
                    record.created_ms,
                    expires
                );
            }
        }
        KeysAction::Revoke { id } => {
            let record = set.revoke(&id)?;
            set.save(&path)?;
            eprintln!("revoked key {} ({})", record.id, record.name);
        }
    }
    Ok(())
}

/// `marquee encryption-key --out FILE`: a new random key in a new file, readable by its owner
/// only (created with that mode, so it is never readable by others even for a moment).
pub fn new_encryption_key(out: &Path) -> Result<()> {
    use std::io::Write;
    let key = marquee_schemas::Cipher::generate_hex()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "--out {}: exists; a key file is never overwritten (whatever was encrypted with \
                 it could not be read again): name a new file",
                out.display()
            )
        } else {
            anyhow!("--out {}: {error}", out.display())
        }
    })?;
    file.write_all(format!("{key}\n").as_bytes())?;
    file.sync_all()?;
    eprintln!(
        "wrote a new encryption key to {}; set [storage] encryption_key_file to it before the \
         data directory is created, and keep a copy apart from the backups: without it, \
         nothing in the data directory or its backups can be read",
        out.display()
    );
    Ok(())
}
