//! [`RunningNode`]: a started node — the HTTP server at once, the state loaded behind it.
//!
//! [`RunningNode::start`] binds the listener first, so `/healthz` answers at once and `/readyz`
//! says 503 while state loads; then, on a blocking thread, it opens the log and the state,
//! loads every item into memory, builds (or loads) the first HNSW graph, and starts the
//! processor and the index worker (`crate::load`).
//!
//! Shutdown is one cancellation token ([`RunningNode::cancel_token`]): HTTP stops accepting and
//! drains; then the processor's loops finish their batch, the index worker stops and saves the
//! graph, the state's memtables are flushed and the log writer drains its queue. All of it
//! within [`NodeConfig::shutdown_timeout`]; what is still running then is reported and left to
//! end with the process ([`Error::StopTimeout`]).

use std::net::SocketAddr;
use std::time::Duration;

use marquee_api::guard::{Guard, watch_keys};
use marquee_api::{AppState, Services, router};
use marquee_stream_processor::{DataDir, Metrics};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{NodeConfig, TlsFiles};
use crate::error::{Error, Result};
use crate::load::{Loaded, load};

/// Connections the kernel may queue before they are accepted. Tokio's default, 1,024, let a
/// burst of 10,000 new connections overflow it: dropped SYNs were retried after 1 s and 3 s, and
/// that wait was most of the tail latency (`docs/PERFORMANCE.md`). The kernel caps it at
/// `net.core.somaxconn` (4,096 on current Linux).
const LISTEN_BACKLOG: u32 = 4096;

/// A started node.
pub struct RunningNode {
    pub addr: SocketAddr,
    tls: bool,
    cancel: CancellationToken,
    state: AppState,
    shutdown_timeout: Duration,
    server: JoinHandle<()>,
    loader: JoinHandle<Result<Loaded>>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("addr", &self.addr)
            .finish()
    }
}

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

/// Reads the certificate first: a wrong path fails the start, not the first client.
async fn tls_config(files: &TlsFiles) -> Result<axum_server::tls_rustls::RustlsConfig> {
    // rustls picks a process-wide crypto provider from its cargo features, and refuses when
    // the dependency tree enables two (the Fluvio client's enables aws-lc-rs beside our ring):
    // name ours. Already installed (a second node in one process) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|source| Error::Tls {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })
}

/// Serves `app` on `listener` (HTTPS with `tls`) until `cancel`.
impl RunningNode {
    /// Binds `config.listen`, starts serving, and loads the state in the background.
    pub async fn start(config: NodeConfig) -> Result<RunningNode> {
        let tls = match &config.tls {
            Some(files) => Some(tls_config(files).await?),
            None => None,
        };
        let serves_tls = tls.is_some();
        let listener = bind(config.listen).map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let addr = listener.local_addr()?;
        let data_dir = DataDir::new(&config.data_dir);
        data_dir.make_private()?;
        let metrics = Metrics::new(config.partitions);
        let auth = config.auth.enabled(addr);
        let mut guard = Guard::new(data_dir.keys_file(), auth, config.limits.clone())
            .with_viewer_key(data_dir.viewer_key()?);
        if let Some(oidc) = &config.oidc {
            guard = guard.with_oidc(oidc.clone());
            let oidc = guard.oidc().expect("just set").clone();
            // The keys are fetched in the background: an issuer that cannot be reached now
            // delays sign-ins, not the start; API keys work meanwhile.
            tokio::spawn(async move {
                match oidc.refresh().await {
                    Ok(keys) => {
                        info!(keys, issuer = %oidc.config().issuer, "OIDC issuer's keys fetched")
                    }
                    Err(error) => {
                        warn!(%error, "the OIDC issuer's keys could not be fetched; a token retries the fetch (at most every 10 s)")
                    }
                }
            });
        }
        let pseudonym_key = if config.pseudonymise_user_ids {
            Some(data_dir.pseudonym_key()?)
        } else {
            None
        };
        let mut state = AppState::new(
            metrics.clone(),
            guard,
            pseudonym_key,
            config.cors_origins.clone(),
        );
        state.audit = Some(std::sync::Arc::new(
            marquee_api::audit::AuditLog::open(
                data_dir.audit(),
                data_dir.erasure_key()?,
                config.audit_retention_days,
                &state.metrics.registry,
            )
            .map_err(|source| marquee_stream_processor::error::Error::Io {
                path: data_dir.audit(),
                source,
            })?,
        ));
        state.forward_misdirected = config
            .cluster
            .as_ref()
            .is_some_and(|cluster| cluster.forward);
        let cancel = CancellationToken::new();
        tokio::spawn(watch_keys(state.guard.clone(), cancel.clone()));
        crate::http::raise_open_files_limit();
        let connection_limits = crate::http::ConnectionLimits {
            header_read_timeout: Duration::from_secs_f64(config.limits.header_read_timeout_secs),
            max_connections: config.limits.max_connections,
        };
        let server = crate::http::serve(
            listener,
            router(state.clone()),
            tls,
            connection_limits,
            &state.http_metrics,
            cancel.clone(),
        )?;
        let loader_state = state.clone();
        let loader_cancel = cancel.clone();
        let shutdown_timeout = config.shutdown_timeout;
        let loader = tokio::task::spawn_blocking(move || {
            let loaded = load(&config, &metrics, &loader_cancel);
            match &loaded {
                Ok(loaded) => {
                    let _ = loader_state.services.set(loaded.services.clone());
                    info!(addr = %addr, "node ready");
                }
                Err(failure) => error!(error = %failure, "node failed to load"),
            }
            loaded
        });
        info!(addr = %addr, auth, "listening");
        Ok(RunningNode {
            addr,
            tls: serves_tls,
            cancel,
            state,
            shutdown_timeout,
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

    /// Waits until loading finished; [`Error::NotLoaded`] if it failed.
    pub async fn wait_ready(&self) -> Result<()> {
        loop {
            if self.is_ready() {
                return Ok(());
            }
            if self.loader.is_finished() {
                return Err(Error::NotLoaded);
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
    pub async fn shutdown(self) -> Result<()> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until the node was stopped through its token, then tears it down within the stop
    /// deadline.
    pub async fn wait(self) -> Result<()> {
        self.cancel.cancelled().await;
        let deadline = Instant::now() + self.shutdown_timeout;
        let timeout = self.shutdown_timeout;
        let late = |part: &str| Error::StopTimeout(timeout, part.to_owned());
        if tokio::time::timeout_at(deadline, self.server)
            .await
            .is_err()
        {
            error!(?timeout, "http connections still open at the stop deadline");
            return Err(late("HTTP connections"));
        }
        let loaded = match tokio::time::timeout_at(deadline, self.loader).await {
            Err(_) => return Err(late("the state's load")),
            Ok(Err(_)) => return Err(Error::Panicked("loader")),
            Ok(Ok(loaded)) => loaded?,
        };
        let stop = tokio::task::spawn_blocking(move || stop_parts(loaded));
        match tokio::time::timeout_at(deadline, stop).await {
            Err(_) => {
                error!(
                    ?timeout,
                    "the processor or the index still running at the stop deadline"
                );
                Err(late("the processor or the index"))
            }
            Ok(Err(_)) => Err(Error::Panicked("stop")),
            Ok(Ok(())) => {
                info!("node stopped");
                Ok(())
            }
        }
    }
}

/// Joins the processor's loops, stops the index worker, saves the graph, flushes the state and
/// closes the log. Blocking.
fn stop_parts(loaded: Loaded) {
    for worker in loaded.workers {
        let _ = worker.join();
    }
    loaded.index.shutdown();
    let services = &loaded.services;
    // The processor has stopped: the offsets describe the vectors the side set was kept
    // against. A failed save only costs the next start a build.
    let saved = services
        .store
        .offsets(marquee_ingest::EventLog::partition_count(&services.log))
        .map_err(|error| error.to_string())
        .and_then(|offsets| {
            loaded
                .index
                .save(&services.data_dir.index(), &offsets)
                .map_err(|error| error.to_string())
        });
    if let Err(message) = saved {
        warn!(error = %message, "could not save the index; the next start builds it");
    }
    // An erasure's compactions finish first: after a clean stop no file holds the user's id.
    services.store.finish_erasures();
    // Memtables to files: the next open then has no write-ahead log to replay.
    if let Err(error) = services.store.flush_all() {
        warn!(%error, "could not flush the state's memtables at stop");
    }
    services.log.close();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(failure) => {
                warn!(error = %failure, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
