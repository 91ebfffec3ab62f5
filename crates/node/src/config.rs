//! The node's configuration: [`Settings`], the configuration file's layout with every default
//! written once, and [`NodeConfig`], the validated runtime form a node starts from.
//!
//! Layers, lowest first: the defaults ([`Settings::default`]), a TOML file
//! ([`Settings::from_file`]; unknown keys are refused), then `MARQUEE_*` environment variables
//! and flags, which the binary reads (clap reads both: a flag wins over its variable) and lays
//! over the file with [`Overrides`]. [`Settings::resolve`] validates the result once; each
//! refusal starts with the key at fault. `config/marquee.example.toml` lists every key with its
//! default and why; a test holds it and this module together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use marquee_api::guard::{AuthMode, Limits};
use marquee_api::middleware::cors::check_cors_origin;
use marquee_api::oidc::OidcConfig;
use marquee_ingest::{DEFAULT_CHANGES_TOPIC, DEFAULT_TOPIC, LogBackend};
use marquee_schemas::Cipher;
use marquee_stream_processor::{ModelConfig, ProcessorConfig};
use marquee_vector_store::IndexConfig;
use serde::{Deserialize, Serialize};
pub use storage::{SecretKey, StorageSettings};

use crate::error::{Error, Result};

/// Largest `index.max_connections`: level 0 holds `2 · M` links a node, and the graph's
/// searchable copy counts them in 16 bits; past a few dozen a graph only grows slower.
const MAX_CONNECTIONS: usize = 256;

/// The configuration file's layout and every default (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Holds `log/`, `state/`, `index/` and the keys files.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Partitions of a new log (an existing log keeps its own count and must match).
    pub partitions: u32,
    /// How long an applied `event_id` is remembered.
    pub dedup_window_secs: u64,
    pub block_cache_mb: usize,
    /// Processor loops, each owning a group of partitions; absent: one per core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processor_workers: Option<usize>,
    pub auth: AuthMode,
    /// Lists (recommendations, similar items, trending) show only items the catalogue holds:
    /// events on other items are kept and learned from, but those items are listed only once
    /// catalogued. `false` lists every item the events name (before 2026-12, the only way).
    pub catalogue_only: bool,
    /// A stop waits this long for HTTP to drain and the processor to finish its batch.
    pub shutdown_timeout_secs: f64,
    pub log: LogSettings,
    pub cluster: ClusterSettings,
    pub privacy: PrivacySettings,
    pub audit: AuditSettings,
    pub limits: Limits,
    pub cors: CorsSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Where `POST /v1/admin/backups` may write: a backup's directory is a new one inside it.
    /// Absent: `<data_dir>/backups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_root: Option<PathBuf>,
    /// Operators sign in through this OIDC issuer, beside API keys (`marquee_api::oidc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcConfig>,
    pub model: ModelConfig,
    pub index: IndexSettings,
    pub storage: StorageSettings,
    /// Whether the file set `[model] dimension` (else a state built with another dimension
    /// keeps its own: see [`NodeConfig::model_dimension_set`]).
    #[serde(skip)]
    pub model_dimension_set: bool,
}

/// `[log]`: the event log (`docs/OPERATIONS.md`, "Running on Fluvio").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub backend: LogKind,
    /// The SC's public endpoint, `HOST:PORT` (required with `fluvio`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fluvio_endpoint: Option<String>,
    pub fluvio_topic: String,
    /// Replicas per partition of a new topic.
    pub fluvio_replication: u32,
}

/// `log.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// The RocksDB log in `<data-dir>/log`.
    #[default]
    Embedded,
    /// A topic of a Fluvio cluster.
    Fluvio,
}

/// `[cluster]`: nodes that split the partitions (Fluvio only; `docs/SCALING.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// The partitions this node applies, such as `0-15` or `0,2,5-7`; absent: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<String>,
    pub changes_topic: String,
    /// The other nodes: a request about one of their users is forwarded to them, or answered
    /// 421 naming them. An entry with exactly this node's partitions is this node and is left
    /// out, so every node can be given the same list.
    pub peers: Vec<PeerSettings>,
    /// Forward a request about another node's user to that node (one hop inside the cluster)
    /// rather than answer 421: any node then answers any request.
    pub forward: bool,
}

/// One other node of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    pub address: String,
    pub partitions: String,
}

/// `[privacy]` (`docs/PRIVACY.md`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// Store a keyed hash instead of each user id.
    pub pseudonymise_user_ids: bool,
    /// Drop applied log events older than this; 0 keeps them.
    pub event_retention_days: u32,
}

/// `[audit]`: the audit log of operators' actions and exports (`docs/OPERATIONS.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Days of records kept (a file per UTC day in `<data_dir>/audit`); 0 keeps them all.
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> AuditSettings {
        AuditSettings {
            retention_days: 400,
        }
    }
}

/// `[cors]`: pages of these origins may call the API from a browser (the SDKs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
}

/// `[index]`: the vector index's graph and its rebuilds (`marquee_vector_store::IndexConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexSettings {
    /// HNSW links per node and level (`M`; level 0 holds twice as many).
    pub max_connections: usize,
    /// Candidate list while building the graph.
    pub ef_construction: usize,
    /// Smallest candidate list of a search.
    pub ef_search: usize,
    pub side_set_bound: usize,
    pub rebuild_after_changes: usize,
    pub rebuild_interval_secs: u64,
    /// Wait this multiple of the last build's duration between builds.
    pub rest_after_build: f64,
    /// Niceness of background rebuilds (0–19; 0: the queries' priority).
    pub background_nice: u8,
}

/// The PEM files of a TLS listener (`[tls]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            partitions: 4,
            dedup_window_secs: 7 * 24 * 3600,
            block_cache_mb: 256,
            processor_workers: None,
            auth: AuthMode::On,
            catalogue_only: true,
            shutdown_timeout_secs: 30.0,
            log: LogSettings::default(),
            cluster: ClusterSettings::default(),
            privacy: PrivacySettings::default(),
            audit: AuditSettings::default(),
            limits: Limits::default(),
            cors: CorsSettings::default(),
            tls: None,
            backup_root: None,
            oidc: None,
            model: ModelConfig::default(),
            index: IndexSettings::default(),
            storage: StorageSettings::default(),
            model_dimension_set: false,
        }
    }
}

impl Default for LogSettings {
    fn default() -> LogSettings {
        LogSettings {
            backend: LogKind::Embedded,
            fluvio_endpoint: None,
            fluvio_topic: DEFAULT_TOPIC.to_owned(),
            fluvio_replication: 1,
        }
    }
}

impl Default for ClusterSettings {
    fn default() -> ClusterSettings {
        ClusterSettings {
            partitions: None,
            changes_topic: DEFAULT_CHANGES_TOPIC.to_owned(),
            peers: Vec::new(),
            forward: true,
        }
    }
}

impl Default for IndexSettings {
    fn default() -> IndexSettings {
        let index = IndexConfig::default();
        IndexSettings {
            max_connections: index.max_connections,
            ef_construction: index.ef_construction,
            ef_search: index.ef_search,
            side_set_bound: index.side_set_bound,
            rebuild_after_changes: index.rebuild_after_changes,
            rebuild_interval_secs: index.rebuild_interval.as_secs(),
            rest_after_build: index.rest_after_build,
            background_nice: index.background_nice,
        }
    }
}

/// What environment variables and flags set over the file (each `None` or empty: the file's).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub partitions: Option<u32>,
    pub log: Option<LogKind>,
    pub fluvio_endpoint: Option<String>,
    pub fluvio_topic: Option<String>,
    pub owned_partitions: Option<String>,
    pub auth: Option<AuthMode>,
    pub catalogue_only: Option<bool>,
    pub tls: Option<TlsFiles>,
    pub cors_origins: Vec<String>,
    /// `MARQUEE_ENCRYPTION_KEY`: the encryption key itself, instead of `[storage]`'s file.
    pub encryption_key: Option<SecretKey>,
}

/// A node's part of a cluster whose nodes split the partitions (`docs/SCALING.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The partitions this node applies.
    pub partitions: Vec<u32>,
    /// The change log's Fluvio topic ([`marquee_ingest::DEFAULT_CHANGES_TOPIC`] by default).
    pub changes_topic: String,
    /// The other nodes: their address (`http://host:port`) and partitions, to which a request
    /// about one of their users is forwarded, or which the 421 answer names.
    pub peers: Vec<(String, Vec<u32>)>,
    /// Forward such a request (`true`) or answer 421.
    pub forward: bool,
}

/// Everything a node needs to start, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The event log: the embedded one in `<data-dir>/log` (default) or a Fluvio topic.
    pub log: LogBackend,
    /// Partitions of a new log (an existing log keeps its own count and must match).
    pub partitions: u32,
    pub model: ModelConfig,
    /// Whether the configuration named `model.dimension`. When it did not, a state built with
    /// another dimension (by an earlier release, whose default was another) is opened with its
    /// own, and the node says so; when it did, such a state is refused.
    pub model_dimension_set: bool,
    pub index: IndexConfig,
    pub processor: ProcessorConfig,
    /// How long an applied `event_id` is remembered.
    pub dedup_window: Duration,
    pub block_cache_bytes: usize,
    /// Whether requests need an API key (on by default; [`AuthMode::Auto`]: unless listening
    /// on loopback).
    pub auth: AuthMode,
    pub limits: Limits,
    /// Serve HTTPS with this certificate chain and key (PEM files) instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// Replace user ids by a keyed hash (key in `<data-dir>/pseudonym.key`) before anything is
    /// stored. Fixed for the life of a data directory: turning it on or off later splits every
    /// user in two.
    pub pseudonymise_user_ids: bool,
    /// Drop log entries older than this (once applied); `None` keeps the log forever. State
    /// derived from dropped events stays, but can no longer be rebuilt from the log.
    pub event_retention: Option<Duration>,
    /// Origins whose pages may call the API from a browser (CORS): `scheme://host[:port]`, or
    /// `*` for any. Empty: no CORS headers, so browsers allow same-origin pages only.
    pub cors_origins: Vec<String>,
    /// The partitions this node applies when nodes split them (config `[cluster]`); `None`:
    /// every partition.
    pub cluster: Option<ClusterConfig>,
    /// How long a stop waits for HTTP to drain and the processor to finish its batch.
    pub shutdown_timeout: Duration,
    /// Where backups may be written ([`NodeConfig::backup_root`]); `None`: `<data_dir>/backups`.
    pub backup_root: Option<PathBuf>,
    /// Days the audit log keeps (0: all).
    pub audit_retention_days: u32,
    /// The OIDC issuer whose tokens are taken beside API keys.
    pub oidc: Option<OidcConfig>,
    /// Encryption at rest of the embedded log and the state (`[storage]`); `None`: plain.
    pub cipher: Option<Cipher>,
}

impl NodeConfig {
    /// The directory backups are written inside: `backup_root`, else `<data_dir>/backups`.
    pub fn backup_root(&self) -> PathBuf {
        self.backup_root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
    }

    /// The defaults for a data directory and listen address.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> NodeConfig {
        Settings {
            data_dir: data_dir.into(),
            listen,
            ..Settings::default()
        }
        .resolve()
        .expect("the defaults are valid")
    }
}

/// Parses a partition list: numbers and inclusive ranges separated by commas (`0-15,20`).
pub fn parse_partition_list(spec: &str) -> std::result::Result<Vec<u32>, String> {
    let mut partitions = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let number = |text: &str| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?} is not a partition number"))
        };
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if first > last {
                    return Err(format!("the range {part:?} is empty"));
                }
                partitions.extend(first..=last);
            }
            None => partitions.push(number(part)?),
        }
    }
    partitions.sort_unstable();
    partitions.dedup();
    Ok(partitions)
}

fn refuse(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

impl Settings {
    /// The defaults with the file at `path` laid over them.
    pub fn from_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            source,
        })?;
        let mut settings: Settings =
            toml::from_str(&text).map_err(|source| Error::ConfigSyntax {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        settings.model_dimension_set = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|table| table.get("model")?.get("dimension").cloned())
            .is_some();
        Ok(settings)
    }

    /// Lays environment variables and flags over these settings.
    pub fn apply(&mut self, overrides: Overrides) {
        let Overrides {
            data_dir,
            listen,
            partitions,
            log,
            fluvio_endpoint,
            fluvio_topic,
            owned_partitions,
            auth,
            catalogue_only,
            tls,
            cors_origins,
            encryption_key,
        } = overrides;
        self.data_dir = data_dir.unwrap_or_else(|| self.data_dir.clone());
        self.listen = listen.unwrap_or(self.listen);
        self.partitions = partitions.unwrap_or(self.partitions);
        self.log.backend = log.unwrap_or(self.log.backend);
        self.log.fluvio_endpoint = fluvio_endpoint.or(self.log.fluvio_endpoint.take());
        self.log.fluvio_topic = fluvio_topic.unwrap_or_else(|| self.log.fluvio_topic.clone());
        self.cluster.partitions = owned_partitions.or(self.cluster.partitions.take());
        self.auth = auth.unwrap_or(self.auth);
        self.catalogue_only = catalogue_only.unwrap_or(self.catalogue_only);
        self.tls = tls.or(self.tls.take());
        if !cors_origins.is_empty() {
            self.cors.allowed_origins = cors_origins;
        }
        if encryption_key.is_some() {
            self.storage.encryption_key = encryption_key;
        }
    }

    /// Validates the settings into a node configuration; each refusal names its key.
    pub fn resolve(self) -> Result<NodeConfig> {
        let log = self.log_backend()?;
        let cluster = self.cluster_config()?;
        let index = IndexConfig {
            max_connections: self.index.max_connections,
            ef_construction: self.index.ef_construction,
            ef_search: self.index.ef_search,
            side_set_bound: self.index.side_set_bound,
            rebuild_after_changes: self.index.rebuild_after_changes,
            rebuild_interval: Duration::from_secs(self.index.rebuild_interval_secs),
            rest_after_build: self.index.rest_after_build,
            background_nice: self.index.background_nice,
            // The node's own (`NodeConfig::cipher`), set where the index is made.
            cipher: None,
        };
        let mut processor = ProcessorConfig {
            catalogue_only: self.catalogue_only,
            ..ProcessorConfig::default()
        };
        if let Some(workers) = self.processor_workers {
            processor.workers = workers;
        }
        if !(self.shutdown_timeout_secs.is_finite() && self.shutdown_timeout_secs > 0.0) {
            return Err(refuse("shutdown_timeout_secs: must be a number > 0"));
        }
        let retention_days = u64::from(self.privacy.event_retention_days);
        let cipher = self.storage.cipher(&self.data_dir)?;
        let config = NodeConfig {
            data_dir: self.data_dir,
            listen: self.listen,
            log,
            partitions: self.partitions,
            model: self.model,
            model_dimension_set: self.model_dimension_set,
            index,
            processor,
            dedup_window: Duration::from_secs(self.dedup_window_secs),
            block_cache_bytes: self.block_cache_mb * 1024 * 1024,
            auth: self.auth,
            limits: self.limits,
            tls: self.tls,
            pseudonymise_user_ids: self.privacy.pseudonymise_user_ids,
            event_retention: (retention_days > 0)
                .then(|| Duration::from_secs(retention_days * 24 * 3600)),
            cors_origins: self.cors.allowed_origins,
            cluster,
            shutdown_timeout: Duration::from_secs_f64(self.shutdown_timeout_secs),
            backup_root: self.backup_root,
            oidc: self.oidc,
            audit_retention_days: self.audit.retention_days,
            cipher,
        };
        validate(&config)?;
        Ok(config)
    }

    fn log_backend(&self) -> Result<LogBackend> {
        match self.log.backend {
            LogKind::Embedded => Ok(LogBackend::Embedded),
            LogKind::Fluvio => {
                let Some(endpoint) = self.log.fluvio_endpoint.clone() else {
                    return Err(refuse(
                        "log.fluvio_endpoint: required with the fluvio backend \
                         (--fluvio-endpoint HOST:PORT; a local cluster listens on 127.0.0.1:9003)",
                    ));
                };
                Ok(LogBackend::Fluvio {
                    endpoint,
                    topic: self.log.fluvio_topic.clone(),
                    replication: self.log.fluvio_replication,
                })
            }
        }
    }

    fn cluster_config(&self) -> Result<Option<ClusterConfig>> {
        let Some(spec) = &self.cluster.partitions else {
            return Ok(None);
        };
        let partitions = parse_partition_list(spec)
            .map_err(|problem| refuse(format!("cluster.partitions: {problem}")))?;
        let mut peers = Vec::new();
        for peer in &self.cluster.peers {
            let list = parse_partition_list(&peer.partitions).map_err(|problem| {
                refuse(format!(
                    "cluster.peers ({}): partitions: {problem}",
                    peer.address
                ))
            })?;
            // An entry with exactly this node's partitions is this node: every node of a
            // cluster can be given one list of all of them (docs/SCALING.md).
            if list != partitions {
                peers.push((peer.address.clone(), list));
            }
        }
        Ok(Some(ClusterConfig {
            partitions,
            changes_topic: self.cluster.changes_topic.clone(),
            peers,
            forward: self.cluster.forward,
        }))
    }
}

/// Whether `topic` is a valid Fluvio topic name.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 63
        && topic
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

fn validate(config: &NodeConfig) -> Result<()> {
    if config.processor.workers == 0 {
        return Err(refuse("processor_workers: must be at least 1"));
    }
    validate_log(config)?;
    if !(1..=1024).contains(&config.partitions) {
        return Err(refuse(format!(
            "partitions: must be 1 to 1024, got {}",
            config.partitions
        )));
    }
    if let Some(cluster) = &config.cluster {
        validate_cluster(config, cluster)?;
    }
    validate_model(&config.model)?;
    config.limits.validate().map_err(Error::Config)?;
    if let Some(oidc) = &config.oidc {
        oidc.validate().map_err(Error::Config)?;
    }
    for origin in &config.cors_origins {
        check_cors_origin(origin).map_err(Error::Config)?;
    }
    let index = &config.index;
    if !(2..=MAX_CONNECTIONS).contains(&index.max_connections) {
        return Err(refuse(format!(
            "index.max_connections: must be 2 to {MAX_CONNECTIONS}, got {}",
            index.max_connections
        )));
    }
    if index.ef_construction < index.max_connections {
        return Err(refuse(format!(
            "index.ef_construction: must be at least index.max_connections ({}), got {}",
            index.max_connections, index.ef_construction
        )));
    }
    if index.ef_search == 0 {
        return Err(refuse("index.ef_search: must be at least 1"));
    }
    if index.side_set_bound == 0 || index.rebuild_after_changes == 0 {
        return Err(refuse(
            "index.side_set_bound and index.rebuild_after_changes: must be at least 1",
        ));
    }
    if !(index.rest_after_build.is_finite() && index.rest_after_build >= 0.0) {
        return Err(refuse("index.rest_after_build: must be a number ≥ 0"));
    }
    if index.background_nice > 19 {
        return Err(refuse("index.background_nice: must be between 0 and 19"));
    }
    Ok(())
}

fn validate_log(config: &NodeConfig) -> Result<()> {
    let LogBackend::Fluvio {
        endpoint,
        topic,
        replication,
    } = &config.log
    else {
        return Ok(());
    };
    if endpoint
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(refuse(format!(
            "log.fluvio_endpoint: must be HOST:PORT, got {endpoint:?}"
        )));
    }
    if !valid_topic(topic) {
        return Err(refuse(format!(
            "log.fluvio_topic: must be 1 to 63 lowercase letters, digits or '-', got {topic:?}"
        )));
    }
    if *replication == 0 {
        return Err(refuse("log.fluvio_replication: must be at least 1"));
    }
    Ok(())
}

fn validate_cluster(config: &NodeConfig, cluster: &ClusterConfig) -> Result<()> {
    if config.log == LogBackend::Embedded {
        return Err(refuse(
            "cluster.partitions: nodes split the partitions of a Fluvio topic only (the \
             embedded log is one machine's); set --log fluvio",
        ));
    }
    if cluster.partitions.is_empty() {
        return Err(refuse(
            "cluster.partitions: must name at least one partition",
        ));
    }
    if let Some(beyond) = cluster
        .partitions
        .iter()
        .chain(cluster.peers.iter().flat_map(|(_, partitions)| partitions))
        .find(|&&partition| partition >= config.partitions)
    {
        return Err(refuse(format!(
            "cluster.partitions: partition {beyond} does not exist (the log has {} partitions, \
             numbered from 0)",
            config.partitions
        )));
    }
    for (address, partitions) in &cluster.peers {
        if let Some(shared) = partitions
            .iter()
            .find(|partition| cluster.partitions.contains(partition))
        {
            return Err(refuse(format!(
                "cluster.peers ({address}): partition {shared} is this node's; a partition \
                 has one node"
            )));
        }
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(refuse(format!(
                "cluster.peers: address must start with http:// or https://, got {address:?}"
            )));
        }
    }
    if !valid_topic(&cluster.changes_topic) {
        return Err(refuse(format!(
            "cluster.changes_topic: must be 1 to 63 lowercase letters, digits or '-', got {:?}",
            cluster.changes_topic
        )));
    }
    Ok(())
}

fn validate_model(model: &ModelConfig) -> Result<()> {
    if !(2..=1024).contains(&model.dimension) {
        return Err(refuse(format!(
            "model.dimension: must be 2 to 1024, got {}",
            model.dimension
        )));
    }
    if model.embedding_candidates == 0 || model.pair_history == 0 || model.pair_candidates == 0 {
        return Err(refuse(
            "model.embedding_candidates, model.pair_history and model.pair_candidates: must be \
             at least 1",
        ));
    }
    if model.history_len == 0 {
        return Err(refuse("model.history_len: must be at least 1"));
    }
    if !(0.0..=1.0).contains(&model.recency_decay) {
        return Err(refuse("model.recency_decay: must be in [0, 1]"));
    }
    if model.popularity_half_life_secs == 0 {
        return Err(refuse(
            "model.popularity_half_life_secs: must be at least 1",
        ));
    }
    if !(0.0..=1.0).contains(&model.pair_decay) || !(0.0..=1.0).contains(&model.neighbour_exponent)
    {
        return Err(refuse(
            "model.pair_decay and model.neighbour_exponent: must be in [0, 1]",
        ));
    }
    if model.backward_weight < 0.0
        || model.activity_damping < 0.0
        || model.recency_floor < 0.0
        || model.embedding_weight < 0.0
    {
        return Err(refuse(
            "model.backward_weight, model.activity_damping, model.recency_floor and \
             model.embedding_weight: must not be negative",
        ));
    }
    if !(0.5..5.0).contains(&model.weights.rating_neutral) {
        return Err(refuse("model.weights.rating_neutral: must be in [0.5, 5)"));
    }
    Ok(())
}

mod storage;
#[cfg(test)]
mod tests;
