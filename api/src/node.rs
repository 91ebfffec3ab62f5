//! A running Marquee node: the log, the state, the processor and the HTTP server.
//!
//! [`RunningNode::start`] binds the listener first, so `/healthz` answers at once and `/readyz`
//! says 503 while state loads; then, on a blocking thread, it opens the log
//! (`<data-dir>/log`) and the state (`<data-dir>/state`), loads every item into memory, builds
//! the first HNSW graph, and starts the processor and the index worker. The log and the state
//! are separate RocksDB instances: the log is the source of truth and can be read (or replaced
//! by another backend) without the state, and the state can be deleted and rebuilt from it.
//!
//! Shutdown: one cancellation token. HTTP stops accepting and drains; then the processor
//! finishes its batch, the index worker stops and the log writer drains its queue.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use marquee_ingest::{AnyChangeLog, AnyLog, EmbeddedLog, EventLog, LogBackend};
use marquee_stream_processor::{Engine, Metrics, ModelConfig, ProcessorConfig};
use marquee_vector_store::{IndexConfig, StateStore, StoreConfig, VectorIndex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::guard::{AuthMode, Guard, Limits, watch_keys};
use crate::routes::{AppState, Services, router};

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The event log: the embedded one in `<data-dir>/log` (default) or a Fluvio topic.
    pub log: LogBackend,
    /// Partitions of a new log (an existing log keeps its own count and must match).
    pub partitions: u32,
    pub model: ModelConfig,
    pub index: IndexConfig,
    pub processor: ProcessorConfig,
    /// How long an applied `event_id` is remembered.
    pub dedup_window: Duration,
    pub block_cache_bytes: usize,
    /// Whether requests need an API key ([`AuthMode::Auto`]: unless listening on loopback).
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
}

/// A node's part of a cluster whose nodes split the partitions (`docs/SCALING.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The partitions this node applies.
    pub partitions: Vec<u32>,
    /// The change log's Fluvio topic ([`marquee_ingest::DEFAULT_CHANGES_TOPIC`] by default).
    pub changes_topic: String,
    /// The other nodes: their address (`http://host:port`) and partitions, named in the 421
    /// answer to a request about one of their users.
    pub peers: Vec<(String, Vec<u32>)>,
}

/// The PEM files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl NodeConfig {
    /// Defaults for a data directory and listen address.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            listen,
            log: LogBackend::Embedded,
            partitions: 4,
            model: ModelConfig::default(),
            index: IndexConfig::default(),
            processor: ProcessorConfig::default(),
            dedup_window: Duration::from_secs(7 * 24 * 3600),
            block_cache_bytes: 256 * 1024 * 1024,
            auth: AuthMode::Auto,
            limits: Limits::default(),
            tls: None,
            pseudonymise_user_ids: false,
            event_retention: None,
            cors_origins: Vec::new(),
            cluster: None,
        }
    }
}

/// The parts that must be stopped in order.
struct Running {
    services: Services,
    index: VectorIndex,
    processor: Vec<std::thread::JoinHandle<()>>,
}

/// A started node.
pub struct RunningNode {
    pub addr: SocketAddr,
    tls: bool,
    cancel: CancellationToken,
    state: AppState,
    server: JoinHandle<()>,
    loader: JoinHandle<Result<Running, String>>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("addr", &self.addr)
            .finish()
    }
}

/// The key of the erasure list's hashes: `<data-dir>/erasure.key` (32 random bytes, mode
/// 0600), created on first start. It is copied into backups with the state.
pub fn erasure_key(data_dir: &std::path::Path) -> Result<[u8; 32], String> {
    secret_key(data_dir, ERASURE_KEY_FILE)
}

/// The pseudonymisation key's file name in the data directory.
pub const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

/// A 32-byte key kept in `<data-dir>/<name>` (mode 0600), created at first use.
pub fn secret_key(data_dir: &std::path::Path, name: &str) -> Result<[u8; 32], String> {
    let path = data_dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            format!(
                "{}: expected 32 bytes, found {}",
                path.display(),
                bytes.len()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
            std::fs::create_dir_all(data_dir)
                .map_err(|error| format!("{}: {error}", data_dir.display()))?;
            crate::keys::write_private(&path, &key)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            Ok(key)
        }
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// Where a clean stop saves the item index's graph, in the data directory (see
/// [`marquee_vector_store::VectorIndex::save`]).
pub const INDEX_DIR: &str = "index";

/// The erasure key's file name in the data directory.
pub const ERASURE_KEY_FILE: &str = "erasure.key";

/// Connections the kernel may queue before they are accepted. Tokio's default, 1,024, let a
/// burst of 10,000 new connections overflow it: dropped SYNs were retried after 1 s and 3 s, and
/// that wait was most of the tail latency (`docs/PERFORMANCE.md`). The kernel caps it at
/// `net.core.somaxconn` (4,096 on current Linux).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listener with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as `TcpListener::bind` sets).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Opens everything; runs on a blocking thread.
fn load(
    config: &NodeConfig,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Result<Running, String> {
    let started = std::time::Instant::now();
    let log = tokio::runtime::Handle::current()
        .block_on(AnyLog::open(
            &config.log,
            &config.data_dir.join("log"),
            config.partitions,
        ))
        .map_err(|error| format!("opening the event log ({}): {error}", config.log.describe()))?;
    let store = StateStore::open(
        config.data_dir.join("state"),
        &StoreConfig {
            dimension: config.model.dimension,
            dedup_window: config.dedup_window,
            block_cache_bytes: config.block_cache_bytes,
        },
    )
    .map_err(|error| format!("opening the state: {error}"))?;
    let opened_seconds = started.elapsed().as_secs_f64();
    let mut processor_config = config.processor.clone();
    let workers = processor_config.workers;
    processor_config.erasure_key = erasure_key(&config.data_dir)?;
    let mut owners: Vec<Option<String>> = Vec::new();
    let changes = match &config.cluster {
        None => None,
        Some(cluster) => {
            processor_config.partitions = Some(cluster.partitions.clone());
            owners = vec![None; log.partition_count() as usize];
            for (address, partitions) in &cluster.peers {
                for &partition in partitions {
                    if let Some(slot) = owners.get_mut(partition as usize) {
                        *slot = Some(address.clone());
                    }
                }
            }
            let changes = tokio::runtime::Handle::current()
                .block_on(AnyChangeLog::open(&config.log, &cluster.changes_topic))
                .map_err(|error| {
                    format!(
                        "opening the change log (topic {}): {error}",
                        cluster.changes_topic
                    )
                })?;
            Some(changes)
        }
    };
    let Engine {
        items,
        index,
        processor,
        query,
    } = Engine::open(
        log.clone(),
        store.clone(),
        config.model.clone(),
        config.index.clone(),
        processor_config,
        metrics.clone(),
    )
    .map_err(|error| format!("loading the state: {error}"))?;
    let processor = match changes {
        Some(changes) => processor
            .with_changes(changes)
            .map_err(|error| format!("reading the change log's offsets: {error}"))?,
        None => processor,
    };
    let item_count = items.read().len();
    info!(
        items = item_count,
        open_seconds = opened_seconds,
        seconds = started.elapsed().as_secs_f64(),
        "state loaded"
    );
    let offsets = store
        .offsets(log.partition_count())
        .map_err(|error| format!("reading the committed offsets: {error}"))?;
    if !index.load_saved(&config.data_dir.join(INDEX_DIR), &offsets) {
        index.rebuild_now();
    }
    index.start_worker();
    spawn_warm_up(&store);
    let handle = processor.handle();
    let processor_thread = processor.spawn_workers(workers, cancel.child_token());
    if config.event_retention.is_some() && log.as_embedded().is_none() {
        warn!(
            "privacy.event_retention_days applies to the embedded log only; \
             set the Fluvio topic's retention instead"
        );
    }
    if let (Some(retention), AnyLog::Embedded(embedded)) = (config.event_retention, &log) {
        spawn_retention(
            embedded.clone(),
            handle.clone(),
            retention,
            cancel.child_token(),
        );
    }
    Ok(Running {
        services: Services {
            log,
            store,
            items,
            query,
            processor: handle,
            index: index.clone(),
            data_dir: config.data_dir.clone(),
            owners: owners.into(),
        },
        index,
        processor: processor_thread,
    })
}

/// Reads the state files queries read into the page cache, beside serving
/// ([`marquee_vector_store::store::warm_files`]): after a start on a cold machine (a reboot, a
/// new volume) the first queries would otherwise each wait for the disk.
fn spawn_warm_up(store: &StateStore) {
    let files = match store.query_files() {
        Ok(files) => files,
        Err(failure) => {
            warn!(error = %failure, "could not list the state files to read ahead");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("state-warm-up".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            match marquee_vector_store::store::warm_files(&files) {
                Ok(bytes) => info!(
                    bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    "state files read into the page cache"
                ),
                Err(failure) => warn!(error = %failure, "could not read the state files ahead"),
            }
        });
    if let Err(failure) = spawned {
        warn!(error = %failure, "could not start reading the state files ahead");
    }
}

/// How often retention looks for entries to drop.
const RETENTION_INTERVAL: Duration = Duration::from_secs(600);

/// Drops log entries older than `retention` (and applied) at start and every ten minutes.
fn spawn_retention(
    log: EmbeddedLog,
    processor: marquee_stream_processor::ProcessorHandle,
    retention: Duration,
    cancel: CancellationToken,
) {
    let spawned = std::thread::Builder::new()
        .name("log-retention".into())
        .spawn(move || {
            while !cancel.is_cancelled() {
                let cutoff = crate::routes::now_ms() - retention.as_millis() as i64;
                match log.trim_before(cutoff, &processor.committed_offsets()) {
                    Ok(0) => {}
                    Ok(deleted) => info!(deleted, cutoff, "log retention dropped old events"),
                    Err(failure) => error!(error = %failure, "log retention failed"),
                }
                let started = std::time::Instant::now();
                while started.elapsed() < RETENTION_INTERVAL && !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
    if let Err(failure) = spawned {
        error!(error = %failure, "could not start log retention");
    }
}

impl RunningNode {
    /// Binds `config.listen`, starts serving, and loads the state in the background.
    pub async fn start(config: NodeConfig) -> std::io::Result<RunningNode> {
        // rustls picks a process-wide crypto provider from its cargo features, and refuses when
        // the dependency tree enables two (the Fluvio client's enables aws-lc-rs beside our
        // ring): name ours. Already installed (a second node in one process) is fine.
        if config.tls.is_some() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        // Read the certificate first: a wrong path fails the start, not the first client.
        let tls = match &config.tls {
            Some(files) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|error| {
                        std::io::Error::new(
                            error.kind(),
                            format!(
                                "tls: reading {} and {}: {error}",
                                files.cert.display(),
                                files.key.display()
                            ),
                        )
                    })?,
            ),
            None => None,
        };
        let config_tls = tls.is_some();
        let listener = bind(config.listen)?;
        let addr = listener.local_addr()?;
        let metrics = Metrics::new(config.partitions);
        let auth = config.auth.enabled(addr);
        let guard = Arc::new(Guard::new(&config.data_dir, auth, config.limits.clone()));
        let pseudonym_key = if config.pseudonymise_user_ids {
            let key =
                secret_key(&config.data_dir, PSEUDONYM_KEY_FILE).map_err(std::io::Error::other)?;
            Some(Arc::new(key))
        } else {
            None
        };
        let state = AppState {
            services: Arc::new(OnceLock::new()),
            metrics: Arc::new(metrics.clone()),
            guard: guard.clone(),
            pseudonym_key,
            cors_origins: config.cors_origins.clone().into(),
        };
        let cancel = CancellationToken::new();
        tokio::spawn(watch_keys(guard, cancel.clone()));
        let app = router(state.clone());
        let server_cancel = cancel.clone();
        let server = match tls {
            None => tokio::spawn(async move {
                let shutdown = server_cancel.clone();
                if let Err(serve_error) = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await
                {
                    error!(error = %serve_error, "http server failed");
                }
            }),
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let server = axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, tls)?
                    .handle(handle.clone());
                tokio::spawn(async move {
                    server_cancel.cancelled().await;
                    handle.graceful_shutdown(Some(Duration::from_secs(10)));
                });
                tokio::spawn(async move {
                    if let Err(serve_error) = server.serve(app.into_make_service()).await {
                        error!(error = %serve_error, "https server failed");
                    }
                })
            }
        };
        let loader_state = state.clone();
        let loader_cancel = cancel.clone();
        let loader = tokio::task::spawn_blocking(move || {
            let running = load(&config, &metrics, &loader_cancel);
            match &running {
                Ok(running) => {
                    let _ = loader_state.services.set(running.services.clone());
                    info!(addr = %addr, "node ready");
                }
                Err(message) => error!(error = %message, "node failed to load"),
            }
            running
        });
        info!(addr = %addr, auth, "listening");
        Ok(RunningNode {
            addr,
            tls: config_tls,
            cancel,
            state,
            server,
            loader,
        })
    }

    /// The base URL, `http://ADDR` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the state is loaded.
    pub fn is_ready(&self) -> bool {
        self.state.services.get().is_some()
    }

    /// Waits until loading finished; returns its error if it failed.
    pub async fn wait_ready(&self) -> Result<(), String> {
        loop {
            if self.is_ready() {
                return Ok(());
            }
            if self.loader.is_finished() {
                return Err("the node failed to load its state (see the log)".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The services, once ready.
    pub fn services(&self) -> Option<&Services> {
        self.state.services.get()
    }

    /// A token that stops the node when cancelled (wire it to signals).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops the node: HTTP first, then the processor, the index worker and the log.
    pub async fn shutdown(self) -> Result<(), String> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until the node was stopped through its token, then tears it down.
    pub async fn wait(self) -> Result<(), String> {
        self.cancel.cancelled().await;
        let _ = self.server.await;
        let running = self
            .loader
            .await
            .map_err(|error| format!("loader panicked: {error}"))??;
        tokio::task::spawn_blocking(move || {
            for worker in running.processor {
                let _ = worker.join();
            }
            running.index.shutdown();
            // The processor has stopped: the offsets describe the vectors the side set was
            // kept against. A failed save only costs the next start a build.
            let saved = running
                .services
                .store
                .offsets(running.services.log.partition_count())
                .map_err(|error| error.to_string())
                .and_then(|offsets| {
                    running
                        .index
                        .save(&running.services.data_dir.join(INDEX_DIR), &offsets)
                        .map_err(|error| error.to_string())
                });
            if let Err(message) = saved {
                warn!(error = %message, "could not save the index; the next start builds it");
            }
            // Memtables to files: the next open then has no write-ahead log to replay.
            if let Err(error) = running.services.store.flush_all() {
                warn!(%error, "could not flush the state's memtables at stop");
            }
            running.services.log.close();
        })
        .await
        .map_err(|error| error.to_string())?;
        info!("node stopped");
        Ok(())
    }
}
