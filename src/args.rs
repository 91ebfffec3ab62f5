//! Flags shared by several commands: a node's settings (`serve`, `demo`) and the synthetic
//! world (`demo`, `generate`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use marquee_api::guard::AuthMode;
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_node::config::LogKind;
use marquee_node::config::SecretKey;
use marquee_node::{NodeConfig, Overrides, Settings, TlsFiles};

/// Node settings shared by `serve` and `demo`: each flag (or its `MARQUEE_*` variable) wins
/// over the configuration file, which wins over the defaults (`config/marquee.example.toml`).
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// TOML configuration file.
    #[arg(long, env = "MARQUEE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (holds `log/` and `state/`) [default: ./data].
    #[arg(long, env = "MARQUEE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "MARQUEE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Partitions of a new log [default: 4].
    #[arg(long, env = "MARQUEE_PARTITIONS")]
    pub partitions: Option<u32>,
    #[command(flatten)]
    pub log: LogArgs,
    /// The partitions this node applies when nodes split them, such as `0-15` or `0,2,5-7`
    /// (with --log fluvio) [default: all].
    #[arg(long, env = "MARQUEE_OWNED_PARTITIONS")]
    pub owned_partitions: Option<String>,
    /// API keys: `on`, `off`, or `auto` (off when listening on loopback only) [default: on;
    /// `marquee demo`: off].
    #[arg(long, env = "MARQUEE_AUTH", value_enum)]
    pub auth: Option<AuthArg>,
    /// List only catalogued items (`false`: every item the events name) [default: true].
    #[arg(long, env = "MARQUEE_CATALOGUE_ONLY", value_name = "BOOL")]
    pub catalogue_only: Option<bool>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "MARQUEE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "MARQUEE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Let pages of this origin call the API from a browser (CORS), such as
    /// `https://app.example.com`, or `*` for any; repeat or separate with commas. Replaces the
    /// file's `cors.allowed_origins`.
    #[arg(long, env = "MARQUEE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
}

/// The event log's flags (`serve`, `demo`, `replay`).
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// Event log backend [default: the file's, else embedded].
    #[arg(long = "log", env = "MARQUEE_LOG_BACKEND", value_enum)]
    pub log: Option<LogArg>,
    /// Fluvio's SC public endpoint, HOST:PORT (with --log fluvio).
    #[arg(long, env = "MARQUEE_FLUVIO_ENDPOINT")]
    pub fluvio_endpoint: Option<String>,
    /// Fluvio topic of the events [default: marquee-events].
    #[arg(long, env = "MARQUEE_FLUVIO_TOPIC")]
    pub fluvio_topic: Option<String>,
}

/// `--log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogArg {
    /// The RocksDB log in `<data-dir>/log`.
    Embedded,
    /// A topic of a Fluvio cluster.
    Fluvio,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthArg {
    Auto,
    On,
    Off,
}

impl LogArgs {
    fn kind(&self) -> Option<LogKind> {
        self.log.map(|log| match log {
            LogArg::Embedded => LogKind::Embedded,
            LogArg::Fluvio => LogKind::Fluvio,
        })
    }
}

/// `MARQUEE_ENCRYPTION_KEY`, read here and not as a flag: a key on a command line shows in every
/// process listing.
fn encryption_key_from_env() -> Option<SecretKey> {
    std::env::var("MARQUEE_ENCRYPTION_KEY")
        .ok()
        .filter(|key| !key.is_empty())
        .map(SecretKey)
}

/// The settings of a configuration file (the defaults without one).
pub fn settings(config: Option<&PathBuf>) -> Result<Settings> {
    Ok(match config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    })
}

/// `config`'s settings with a data directory and the log's flags laid over them, validated:
/// for the commands that read a node's settings without running it (`replay`, `eval`).
pub fn resolve_without_node(
    config: Option<&PathBuf>,
    data_dir: Option<PathBuf>,
    log: &LogArgs,
) -> Result<NodeConfig> {
    let mut settings = settings(config)?;
    settings.apply(Overrides {
        data_dir,
        log: log.kind(),
        fluvio_endpoint: log.fluvio_endpoint.clone(),
        fluvio_topic: log.fluvio_topic.clone(),
        encryption_key: encryption_key_from_env(),
        ..Overrides::default()
    });
    Ok(settings.resolve()?)
}

impl NodeArgs {
    /// The layers resolved into a validated node configuration.
    pub fn resolve(&self) -> Result<NodeConfig> {
        let mut settings = settings(self.config.as_ref())?;
        settings.apply(Overrides {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            partitions: self.partitions,
            log: self.log.kind(),
            fluvio_endpoint: self.log.fluvio_endpoint.clone(),
            fluvio_topic: self.log.fluvio_topic.clone(),
            owned_partitions: self.owned_partitions.clone(),
            auth: self.auth.map(|auth| match auth {
                AuthArg::Auto => AuthMode::Auto,
                AuthArg::On => AuthMode::On,
                AuthArg::Off => AuthMode::Off,
            }),
            catalogue_only: self.catalogue_only,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            cors_origins: self.cors_origin.clone(),
            encryption_key: encryption_key_from_env(),
        });
        Ok(settings.resolve()?)
    }
}

/// The synthetic world's flags.
#[derive(Debug, Clone, Args)]
pub struct SyntheticArgs {
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Synthetic users.
    #[arg(long, default_value_t = 2000)]
    pub users: u64,
    /// Synthetic catalogue size.
    #[arg(long, default_value_t = 3000)]
    pub items: u64,
    /// Taste clusters.
    #[arg(long, default_value_t = 12)]
    pub clusters: usize,
    /// Users' activity follows a power law up to this many times the least active's (0:
    /// uniform users): about 1 to 5,000 events per user for 5000 with 114 events per user.
    #[arg(long, default_value_t = 0)]
    pub max_history: u64,
}

impl SyntheticArgs {
    /// The world these flags describe, with `events` events.
    pub fn generator(&self, events: u64) -> Synthetic {
        Synthetic::new(SyntheticConfig {
            seed: self.seed,
            users: self.users,
            items: self.items,
            clusters: self.clusters,
            events,
            max_history: self.max_history,
            ..SyntheticConfig::default()
        })
    }
}
