//! Layered configuration: defaults, then a TOML file (`--config`), then `MARQUEE_*` environment
//! variables, then flags (clap reads both of the last two: a flag wins over its variable).
//!
//! File keys (all optional; unknown keys are refused):
//!
//! ```toml
//! data_dir = "./data"
//! listen = "127.0.0.1:8080"
//! partitions = 4
//! dedup_window_secs = 604800
//! block_cache_mb = 256
//! processor_workers = 2   # processor loops, each owning a group of partitions [default: cores]
//! auth = "auto"      # auto: API keys needed unless listening on loopback; "on"; "off"
//!
//! [log]              # the event log; docs/OPERATIONS.md, "Running on Fluvio"
//! backend = "embedded"              # or "fluvio"
//! fluvio_endpoint = "127.0.0.1:9003"  # the SC's public endpoint (required for fluvio)
//! fluvio_topic = "marquee-events"
//! fluvio_replication = 1              # replicas per partition of a new topic
//!
//! [cluster]          # nodes that split the partitions (Fluvio only); docs/SCALING.md
//! partitions = "0-15"               # the partitions this node applies [default: all]
//! changes_topic = "marquee-item-deltas"
//! peers = [{ address = "http://10.0.0.2:8080", partitions = "16-31" }]  # named in 421 answers
//!
//! [privacy]          # docs/PRIVACY.md
//! pseudonymise_user_ids = false   # store a keyed hash instead of each user id
//! event_retention_days = 0        # drop applied log events older than this; 0 keeps them
//!
//! [limits]           # docs/OPERATIONS.md says what each refusal looks like
//! rate_per_second = 1000        # per key, unless the key has a rate of its own
//! rate_burst_seconds = 2
//! max_body_bytes = 10485760
//! max_header_bytes = 16384
//! max_uri_bytes = 8192
//! request_timeout_secs = 10.0
//! max_concurrent_requests = 2048
//!
//! [cors]             # pages of these origins may call the API from a browser (the SDKs)
//! allowed_origins = ["https://app.example.com"]   # or ["*"]; default: none
//!
//! [tls]              # serve HTTPS (PEM files)
//! cert = "/etc/marquee/cert.pem"
//! key = "/etc/marquee/key.pem"
//!
//! [model]            # any field of `ModelConfig` (defaults shown); docs/QUALITY.md says why
//! dimension = 32
//! history_len = 500
//! recency_decay = 0.8
//! pair_window = 30
//! popularity_half_life_secs = 604800
//!
//! [model.weights]    # weight per event kind
//! rating_neutral = 2.0
//! click = 0.3
//!
//! [index]
//! side_set_bound = 4096
//! rebuild_after_changes = 1024
//! rebuild_interval_secs = 30
//! rest_after_build = 4.0   # wait this multiple of the last build's duration between builds
//! background_nice = 19     # niceness of background rebuilds (0–19; 0: the queries' priority)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use marquee_api::guard::{AuthMode, Limits};
use marquee_api::{ClusterConfig, NodeConfig, TlsFiles};
use marquee_ingest::{DEFAULT_CHANGES_TOPIC, DEFAULT_TOPIC, LogBackend};
use marquee_stream_processor::ModelConfig;
use serde::Deserialize;

/// Node settings shared by `serve` and `demo`.
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
    /// Event log backend [default: embedded].
    #[arg(long = "log", env = "MARQUEE_LOG_BACKEND", value_enum)]
    pub log: Option<LogArg>,
    /// Fluvio's SC public endpoint, HOST:PORT (with --log fluvio).
    #[arg(long, env = "MARQUEE_FLUVIO_ENDPOINT")]
    pub fluvio_endpoint: Option<String>,
    /// Fluvio topic of the events [default: marquee-events].
    #[arg(long, env = "MARQUEE_FLUVIO_TOPIC")]
    pub fluvio_topic: Option<String>,
    /// The partitions this node applies when nodes split them, such as `0-15` or `0,2,5-7`
    /// (with --log fluvio) [default: all].
    #[arg(long, env = "MARQUEE_OWNED_PARTITIONS")]
    pub owned_partitions: Option<String>,
    /// API keys: `auto` needs them unless listening on loopback [default: auto].
    #[arg(long, env = "MARQUEE_AUTH", value_enum)]
    pub auth: Option<AuthArg>,
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

/// `--log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
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

impl From<AuthArg> for AuthMode {
    fn from(arg: AuthArg) -> AuthMode {
        match arg {
            AuthArg::Auto => AuthMode::Auto,
            AuthArg::On => AuthMode::On,
            AuthArg::Off => AuthMode::Off,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    partitions: Option<u32>,
    dedup_window_secs: Option<u64>,
    block_cache_mb: Option<usize>,
    processor_workers: Option<usize>,
    auth: Option<AuthMode>,
    #[serde(default)]
    log: LogFile,
    #[serde(default)]
    limits: Limits,
    tls: Option<TlsFile>,
    #[serde(default)]
    cors: CorsFile,
    #[serde(default)]
    privacy: PrivacyFile,
    #[serde(default)]
    cluster: ClusterFile,
    #[serde(default)]
    model: ModelConfig,
    #[serde(default)]
    index: IndexFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFile {
    backend: Option<LogArg>,
    fluvio_endpoint: Option<String>,
    fluvio_topic: Option<String>,
    fluvio_replication: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    partitions: Option<String>,
    changes_topic: Option<String>,
    #[serde(default)]
    peers: Vec<PeerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    address: String,
    partitions: String,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivacyFile {
    #[serde(default)]
    pseudonymise_user_ids: bool,
    #[serde(default)]
    event_retention_days: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorsFile {
    #[serde(default)]
    allowed_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    side_set_bound: Option<usize>,
    rebuild_after_changes: Option<usize>,
    rebuild_interval_secs: Option<u64>,
    rest_after_build: Option<f64>,
    background_nice: Option<u8>,
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the configuration file {}", path.display()))
}

impl NodeArgs {
    /// Only a configuration file (and a data directory): for the commands that read a node's
    /// settings without running it (`eval`, `replay`).
    pub fn from_file(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> NodeArgs {
        NodeArgs {
            config,
            data_dir,
            listen: None,
            partitions: None,
            log: None,
            fluvio_endpoint: None,
            fluvio_topic: None,
            owned_partitions: None,
            auth: None,
            tls_cert: None,
            tls_key: None,
            cors_origin: Vec::new(),
        }
    }

    /// Resolves the layers into a validated node configuration.
    pub fn resolve(&self, default_data_dir: &str) -> Result<NodeConfig> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(default_data_dir));
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let mut config = NodeConfig::new(data_dir, listen);
        config.partitions = self.partitions.or(file.partitions).unwrap_or(4);
        config.log = match self.log.or(file.log.backend).unwrap_or(LogArg::Embedded) {
            LogArg::Embedded => LogBackend::Embedded,
            LogArg::Fluvio => {
                let Some(endpoint) = self.fluvio_endpoint.clone().or(file.log.fluvio_endpoint)
                else {
                    bail!(
                        "log.fluvio_endpoint: required with the fluvio backend \
                         (--fluvio-endpoint HOST:PORT; a local cluster listens on 127.0.0.1:9003)"
                    );
                };
                LogBackend::Fluvio {
                    endpoint,
                    topic: self
                        .fluvio_topic
                        .clone()
                        .or(file.log.fluvio_topic)
                        .unwrap_or_else(|| DEFAULT_TOPIC.to_owned()),
                    replication: file.log.fluvio_replication.unwrap_or(1),
                }
            }
        };
        if let Some(spec) = self
            .owned_partitions
            .clone()
            .or(file.cluster.partitions.clone())
        {
            let partitions = parse_partition_list(&spec)
                .map_err(|problem| anyhow::anyhow!("cluster.partitions: {problem}"))?;
            let mut peers = Vec::new();
            for peer in &file.cluster.peers {
                let list = parse_partition_list(&peer.partitions).map_err(|problem| {
                    anyhow::anyhow!("cluster.peers ({}): partitions: {problem}", peer.address)
                })?;
                peers.push((peer.address.clone(), list));
            }
            config.cluster = Some(ClusterConfig {
                partitions,
                changes_topic: file
                    .cluster
                    .changes_topic
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CHANGES_TOPIC.to_owned()),
                peers,
            });
        }
        if let Some(seconds) = file.dedup_window_secs {
            config.dedup_window = Duration::from_secs(seconds);
        }
        if let Some(megabytes) = file.block_cache_mb {
            config.block_cache_bytes = megabytes * 1024 * 1024;
        }
        if let Some(workers) = file.processor_workers {
            config.processor.workers = workers;
        }
        config.model = file.model;
        config.auth = self
            .auth
            .map(AuthMode::from)
            .or(file.auth)
            .unwrap_or_default();
        config.limits = file.limits;
        config.cors_origins = if self.cors_origin.is_empty() {
            file.cors.allowed_origins
        } else {
            self.cors_origin.clone()
        };
        config.pseudonymise_user_ids = file.privacy.pseudonymise_user_ids;
        config.event_retention = (file.privacy.event_retention_days > 0)
            .then(|| Duration::from_secs(u64::from(file.privacy.event_retention_days) * 24 * 3600));
        config.tls = match (&self.tls_cert, &self.tls_key, file.tls) {
            (Some(cert), Some(key), _) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (_, _, Some(tls)) => Some(TlsFiles {
                cert: tls.cert,
                key: tls.key,
            }),
            _ => None,
        };
        let index = &mut config.index;
        index.side_set_bound = file.index.side_set_bound.unwrap_or(index.side_set_bound);
        index.rebuild_after_changes = file
            .index
            .rebuild_after_changes
            .unwrap_or(index.rebuild_after_changes);
        if let Some(seconds) = file.index.rebuild_interval_secs {
            index.rebuild_interval = Duration::from_secs(seconds);
        }
        index.rest_after_build = file
            .index
            .rest_after_build
            .unwrap_or(index.rest_after_build);
        index.background_nice = file.index.background_nice.unwrap_or(index.background_nice);
        validate(&config)?;
        Ok(config)
    }
}

fn validate(config: &NodeConfig) -> Result<()> {
    if config.processor.workers == 0 {
        bail!("processor_workers: must be at least 1");
    }
    if let LogBackend::Fluvio {
        endpoint,
        topic,
        replication,
    } = &config.log
    {
        if endpoint
            .rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            bail!("log.fluvio_endpoint: must be HOST:PORT, got {endpoint:?}");
        }
        if topic.is_empty()
            || topic.len() > 63
            || !topic
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            bail!(
                "log.fluvio_topic: must be 1 to 63 lowercase letters, digits or '-', got {topic:?}"
            );
        }
        if *replication == 0 {
            bail!("log.fluvio_replication: must be at least 1");
        }
    }
    if !(1..=1024).contains(&config.partitions) {
        bail!("partitions: must be 1 to 1024, got {}", config.partitions);
    }
    if let Some(cluster) = &config.cluster {
        if config.log == LogBackend::Embedded {
            bail!(
                "cluster.partitions: nodes split the partitions of a Fluvio topic only (the \
                 embedded log is one machine's); set --log fluvio"
            );
        }
        if cluster.partitions.is_empty() {
            bail!("cluster.partitions: must name at least one partition");
        }
        if let Some(beyond) = cluster
            .partitions
            .iter()
            .chain(cluster.peers.iter().flat_map(|(_, partitions)| partitions))
            .find(|&&partition| partition >= config.partitions)
        {
            bail!(
                "cluster.partitions: partition {beyond} does not exist (the log has {} partitions, \
                 numbered from 0)",
                config.partitions
            );
        }
        for (address, partitions) in &cluster.peers {
            if let Some(shared) = partitions
                .iter()
                .find(|partition| cluster.partitions.contains(partition))
            {
                bail!(
                    "cluster.peers ({address}): partition {shared} is this node's; a partition \
                     has one node"
                );
            }
            if !(address.starts_with("http://") || address.starts_with("https://")) {
                bail!(
                    "cluster.peers: address must start with http:// or https://, got {address:?}"
                );
            }
        }
        let topic = &cluster.changes_topic;
        if topic.is_empty()
            || topic.len() > 63
            || !topic
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            bail!(
                "cluster.changes_topic: must be 1 to 63 lowercase letters, digits or '-', got \
                 {topic:?}"
            );
        }
    }
    if !(2..=1024).contains(&config.model.dimension) {
        bail!(
            "model.dimension: must be 2 to 1024, got {}",
            config.model.dimension
        );
    }
    if !(config.model.learning_rate > 0.0 && config.model.learning_rate < 1.0) {
        bail!("model.learning_rate: must be in (0, 1)");
    }
    if config.model.history_len == 0 {
        bail!("model.history_len: must be at least 1");
    }
    if !(0.0..=1.0).contains(&config.model.recency_decay) {
        bail!("model.recency_decay: must be in [0, 1]");
    }
    if config.model.popularity_half_life_secs == 0 {
        bail!("model.popularity_half_life_secs: must be at least 1");
    }
    if !(0.0..=1.0).contains(&config.model.pair_decay)
        || !(0.0..=1.0).contains(&config.model.neighbour_exponent)
    {
        bail!("model.pair_decay and model.neighbour_exponent: must be in [0, 1]");
    }
    if config.model.backward_weight < 0.0
        || config.model.activity_damping < 0.0
        || config.model.recency_floor < 0.0
        || config.model.embedding_weight < 0.0
    {
        bail!(
            "model.backward_weight, model.activity_damping, model.recency_floor and \
             model.embedding_weight: must not be negative"
        );
    }
    if !(0.5..5.0).contains(&config.model.weights.rating_neutral) {
        bail!("model.weights.rating_neutral: must be in [0.5, 5)");
    }
    config.limits.validate().map_err(anyhow::Error::msg)?;
    for origin in &config.cors_origins {
        marquee_api::routes::check_cors_origin(origin).map_err(anyhow::Error::msg)?;
    }
    if config.index.side_set_bound == 0 || config.index.rebuild_after_changes == 0 {
        bail!("index.side_set_bound and index.rebuild_after_changes: must be at least 1");
    }
    if !(config.index.rest_after_build.is_finite() && config.index.rest_after_build >= 0.0) {
        bail!("index.rest_after_build: must be a number ≥ 0");
    }
    if config.index.background_nice > 19 {
        bail!("index.background_nice: must be between 0 and 19");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> NodeArgs {
        NodeArgs::from_file(config, None)
    }

    #[test]
    fn cors_origins_come_from_the_file_or_the_flag_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marquee.toml");
        std::fs::write(
            &path,
            "[cors]\nallowed_origins = [\"https://app.example.com\"]\n",
        )
        .unwrap();
        let from_file = args(Some(path.clone())).resolve("./data").unwrap();
        assert_eq!(from_file.cors_origins, ["https://app.example.com"]);
        let mut flagged = args(Some(path));
        flagged.cors_origin = vec!["http://localhost:5173".into()];
        assert_eq!(
            flagged.resolve("./data").unwrap().cors_origins,
            ["http://localhost:5173"]
        );
        flagged.cors_origin = vec!["https://app.example.com/".into()];
        let error = flagged.resolve("./data").unwrap_err().to_string();
        assert!(error.starts_with("cors.allowed_origins:"), "{error}");
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marquee.toml");
        std::fs::write(
            &path,
            "partitions = 8\nlisten = \"127.0.0.1:9000\"\n[model]\ndimension = 16\n",
        )
        .unwrap();
        let mut layered = args(Some(path));
        layered.partitions = Some(2);
        let config = layered.resolve("./data").unwrap();
        assert_eq!(config.partitions, 2);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.model.dimension, 16);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn the_index_builds_niceness_comes_from_the_file_and_is_checked() {
        assert_eq!(
            args(None).resolve("./data").unwrap().index.background_nice,
            19
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marquee.toml");
        std::fs::write(&path, "[index]\nbackground_nice = 10\n").unwrap();
        let config = args(Some(path.clone())).resolve("./data").unwrap();
        assert_eq!(config.index.background_nice, 10);
        std::fs::write(&path, "[index]\nbackground_nice = 20\n").unwrap();
        let error = args(Some(path)).resolve("./data").unwrap_err().to_string();
        assert!(error.starts_with("index.background_nice:"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marquee.toml");
        std::fs::write(&path, "partitons = 8\n").unwrap();
        let error = format!("{:#}", args(Some(path)).resolve("./data").unwrap_err());
        assert!(error.contains("partitons"), "{error}");
    }

    #[test]
    fn the_log_backend_comes_from_the_file_or_the_flags_and_is_checked() {
        let embedded = args(None).resolve("./data").unwrap();
        assert_eq!(embedded.log, LogBackend::Embedded);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marquee.toml");
        std::fs::write(
            &path,
            "[log]\nbackend = \"fluvio\"\nfluvio_endpoint = \"10.0.0.5:9003\"\nfluvio_replication = 3\n",
        )
        .unwrap();
        let from_file = args(Some(path.clone())).resolve("./data").unwrap();
        assert_eq!(
            from_file.log,
            LogBackend::Fluvio {
                endpoint: "10.0.0.5:9003".into(),
                topic: "marquee-events".into(),
                replication: 3,
            }
        );
        let mut flagged = args(Some(path));
        flagged.fluvio_endpoint = Some("127.0.0.1:9103".into());
        flagged.fluvio_topic = Some("events-eu".into());
        let LogBackend::Fluvio {
            endpoint, topic, ..
        } = flagged.resolve("./data").unwrap().log
        else {
            panic!("the file chose fluvio");
        };
        assert_eq!(
            (endpoint.as_str(), topic.as_str()),
            ("127.0.0.1:9103", "events-eu")
        );
        flagged.log = Some(LogArg::Embedded);
        assert_eq!(flagged.resolve("./data").unwrap().log, LogBackend::Embedded);

        let mut missing = args(None);
        missing.log = Some(LogArg::Fluvio);
        let error = missing.resolve("./data").unwrap_err().to_string();
        assert!(
            error.starts_with("log.fluvio_endpoint: required"),
            "{error}"
        );
        missing.fluvio_endpoint = Some("no-port".into());
        let error = missing.resolve("./data").unwrap_err().to_string();
        assert!(
            error.starts_with("log.fluvio_endpoint: must be HOST:PORT"),
            "{error}"
        );
        missing.fluvio_endpoint = Some("127.0.0.1:9003".into());
        missing.fluvio_topic = Some("Events!".into());
        let error = missing.resolve("./data").unwrap_err().to_string();
        assert!(error.starts_with("log.fluvio_topic:"), "{error}");
    }

    #[test]
    fn a_nodes_partitions_come_from_the_file_or_the_flag_and_are_checked() {
        assert_eq!(args(None).resolve("./data").unwrap().cluster, None);
        assert_eq!(parse_partition_list("0-3, 6,5"), Ok(vec![0, 1, 2, 3, 5, 6]));
        assert!(parse_partition_list("3-1").unwrap_err().contains("empty"));
        assert!(parse_partition_list("a").unwrap_err().contains("\"a\""));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marquee.toml");
        std::fs::write(
            &path,
            "partitions = 8\n[log]\nbackend = \"fluvio\"\nfluvio_endpoint = \"10.0.0.5:9003\"\n\
             [cluster]\npartitions = \"0-3\"\n\
             peers = [{ address = \"http://10.0.0.6:8080\", partitions = \"4-7\" }]\n",
        )
        .unwrap();
        let config = args(Some(path.clone())).resolve("./data").unwrap();
        assert_eq!(
            config.cluster,
            Some(ClusterConfig {
                partitions: vec![0, 1, 2, 3],
                changes_topic: "marquee-item-deltas".into(),
                peers: vec![("http://10.0.0.6:8080".into(), vec![4, 5, 6, 7])],
            })
        );
        let mut flagged = args(Some(path));
        flagged.owned_partitions = Some("4-5".into());
        let error = flagged.resolve("./data").unwrap_err().to_string();
        assert!(
            error.starts_with("cluster.peers (http://10.0.0.6:8080): partition 4 is this node's"),
            "{error}"
        );
        flagged.owned_partitions = Some("2,9".into());
        let error = flagged.resolve("./data").unwrap_err().to_string();
        assert!(
            error.starts_with("cluster.partitions: partition 9 does not exist"),
            "{error}"
        );
        flagged.owned_partitions = Some("2-".into());
        let error = flagged.resolve("./data").unwrap_err().to_string();
        assert!(error.starts_with("cluster.partitions:"), "{error}");

        // The embedded log is one machine's.
        let mut embedded = args(None);
        embedded.owned_partitions = Some("0-1".into());
        let error = embedded.resolve("./data").unwrap_err().to_string();
        assert!(
            error.starts_with(
                "cluster.partitions: nodes split the partitions of a Fluvio topic only"
            ),
            "{error}"
        );
    }
}
