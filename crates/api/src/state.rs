//! [`AppState`]: what every handler and middleware reads — the node's services once loaded, the
//! metrics, the guard — and the request-level checks on it shared by the handlers.

use std::sync::{Arc, OnceLock};

use axum::http::Method;

use marquee_ingest::{AnyLog, EventLog};
use marquee_stream_processor::{
    DataDir, Experiments, Metrics, ProcessorHandle, QueryEngine, SearchIndex,
};
use marquee_vector_store::{ItemTable, StateStore, VectorIndex};

use crate::access::{Access, ApiDocument};
use crate::error::ApiError;
use crate::guard::Guard;
use crate::metrics::HttpMetrics;
use crate::params::check_path_id;

/// What a loaded node serves from.
#[derive(Clone, Debug)]
pub struct Services {
    pub log: AnyLog,
    pub store: StateStore,
    pub items: ItemTable,
    pub query: QueryEngine,
    pub processor: ProcessorHandle,
    pub index: VectorIndex,
    /// Catalogue search.
    pub search: SearchIndex,
    /// Experiments and flags: assignment of each recommendation request, the admin routes.
    pub experiments: Experiments,
    /// The node's data directory (backups' source).
    pub data_dir: DataDir,
    /// The directory backups are written inside (`backup_root`).
    pub backup_root: std::path::PathBuf,
    /// Per partition, the address of the node that applies it, where the configuration names
    /// one (nodes that split the partitions); empty on a node that applies every partition.
    pub owners: Arc<[Option<String>]>,
}

impl Services {
    /// Refuses a request about `stored_id` when another node applies the user's partition: only
    /// that node has the user's history and seen items (`docs/SCALING.md`).
    pub(crate) fn check_owner(&self, stored_id: &str) -> Result<(), ApiError> {
        let partition = marquee_schemas::partition_for_user(stored_id, self.log.partition_count());
        if self.processor.owns(partition) {
            return Ok(());
        }
        let owner = self.owners.get(partition as usize).cloned().flatten();
        Err(ApiError::Misdirected {
            message: format!(
                "user_id: this user's partition ({partition}) is served by {}; send the \
                 request there",
                owner.as_deref().unwrap_or("another node")
            ),
            owner,
        })
    }
}

/// Router state: the services once loaded, and the metrics from the start.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Set once the node has loaded its state; until then the data routes answer 503.
    pub services: Arc<OnceLock<Services>>,
    /// The node's metrics (processor, queries, index, storage), rendered at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The edge's own metrics, registered in the same registry.
    pub http_metrics: Arc<HttpMetrics>,
    pub guard: Arc<Guard>,
    /// With pseudonymisation on, the key of the keyed hash that replaces user ids at the edge.
    pub pseudonym_key: Option<Arc<[u8; 32]>>,
    /// Origins whose pages may call the API from a browser (CORS); empty: none, `*`: any.
    pub cors_origins: Arc<[String]>,
    /// The document generated from the route table, set when the router is built; the guard
    /// reads each route's access from it.
    pub document: Arc<OnceLock<ApiDocument>>,
    /// Send a request about another node's user on to that node rather than answer 421
    /// (`crate::middleware::forward`); off until the node sets it from its configuration.
    pub forward_misdirected: bool,
    /// The HTTP client of requests forwarded to other nodes (a pool of connections to them).
    pub peer_client: reqwest::Client,
    /// The audit log ([`crate::audit`]); `None` until the node opens it (and in router tests).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    /// Held while `/metrics` reads the storage figures on a blocking thread: one read at a
    /// time, however many scrapes come at once (`crate::handlers::probes::metrics`).
    pub metrics_refresh: Arc<tokio::sync::Mutex<()>>,
    /// Long admin operations running or ended ([`crate::jobs`]).
    pub jobs: crate::jobs::Jobs,
}

impl AppState {
    /// A state without services yet, whose HTTP metrics join `metrics`' registry.
    pub fn new(
        metrics: Metrics,
        guard: Guard,
        pseudonym_key: Option<[u8; 32]>,
        cors_origins: Vec<String>,
    ) -> AppState {
        let http_metrics = HttpMetrics::register(&metrics.registry);
        AppState {
            services: Arc::new(OnceLock::new()),
            metrics: Arc::new(metrics),
            http_metrics: Arc::new(http_metrics),
            guard: Arc::new(guard),
            pseudonym_key: pseudonym_key.map(Arc::new),
            cors_origins: cors_origins.into(),
            document: Arc::new(OnceLock::new()),
            metrics_refresh: Arc::new(tokio::sync::Mutex::new(())),
            forward_misdirected: false,
            peer_client: reqwest::Client::new(),
            audit: None,
            jobs: crate::jobs::Jobs::default(),
        }
    }

    /// The access of a route; every route needs `admin` before the router was built.
    pub(crate) fn access(&self, method: &Method, route: &str) -> Access {
        match self.document.get() {
            Some(document) => document.access(method, route),
            None => Access::Key(crate::keys::Scope::Admin),
        }
    }

    pub(crate) fn services(&self) -> Result<&Services, ApiError> {
        self.services.get().ok_or(ApiError::NotReady)
    }

    /// Validates a user id from a request and returns the id it is stored under: itself, or
    /// with pseudonymisation on, its keyed hash (so the raw id never reaches the log or the
    /// state).
    pub(crate) fn stored_user_id(&self, user_id: &str) -> Result<String, ApiError> {
        check_path_id("user_id", user_id)?;
        Ok(self.pseudonym(user_id))
    }

    pub(crate) fn pseudonym(&self, user_id: &str) -> String {
        match &self.pseudonym_key {
            Some(key) => pseudonymise(key, user_id),
            None => user_id.to_owned(),
        }
    }
}

/// The pseudonym of `user_id` under `key`: `p_` and 32 hex digits of HMAC-SHA-256 (128 bits).
pub fn pseudonymise(key: &[u8; 32], user_id: &str) -> String {
    let hash = marquee_stream_processor::erasure_hash(key, user_id);
    let mut pseudonym = String::with_capacity(34);
    pseudonym.push_str("p_");
    for byte in &hash[..16] {
        pseudonym.push_str(&format!("{byte:02x}"));
    }
    pseudonym
}
