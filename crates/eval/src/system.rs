//! [`System`]: the production processor and query engine wired as `serve` wires them, on a
//! scratch data directory, driven from the caller's thread (see the crate docs). The benchmarks
//! drive it too.

use std::collections::HashMap;

use marquee_ingest::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use marquee_schemas::{Event, Item};
use marquee_stream_processor::catalogue::upsert_catalogue;
use marquee_stream_processor::{
    Engine, Experiments, Metrics, ModelConfig, Processor, ProcessorConfig, QueryEngine,
    RecommendationQuery,
};
use marquee_vector_store::{IndexConfig, StateStore, StoreConfig, VectorIndex};

use crate::data::{Prepared, Rating};
use crate::error::{Error, Result};
use crate::{APPEND_CHUNK, EvalOptions, K, TRENDING_EVERY};
use marquee_stream_processor::experiments::RankingSettings;

/// The production processor and query engine wired as `serve` wires them, on a scratch data
/// directory, driven from the caller's thread (see the module docs). Also used by the benches.
pub struct System {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    log: EmbeddedLog,
    index: VectorIndex,
    pub(crate) processor: Processor<EmbeddedLog>,
    query: QueryEngine,
    experiments: Experiments,
    /// Events applied since the trending list was last refreshed.
    since_refresh: usize,
    /// Catalogue index per item id.
    numbers: HashMap<String, u32>,
    /// User id per evaluator user number.
    user_ids: HashMap<u32, String>,
    /// The per-genre limit of every list.
    max_per_genre: Option<usize>,
}

impl System {
    pub(crate) fn open(data: &Prepared, options: &EvalOptions) -> Result<System> {
        let mut system = System::with_catalogue(
            data.catalogue.clone(),
            options.model.clone(),
            options.index.clone(),
        )?;
        system.user_ids = data
            .ratings
            .iter()
            .map(|rating| (rating.user, rating.event.user_id.clone()))
            .collect();
        system.max_per_genre = options.max_per_genre;
        Ok(system)
    }

    /// A fresh system whose catalogue is `catalogue`, numbered in that order.
    pub fn with_catalogue(
        catalogue: Vec<Item>,
        model: ModelConfig,
        index: IndexConfig,
    ) -> Result<System> {
        let dir = tempfile::Builder::new()
            .prefix("marquee-eval-")
            .tempdir()
            .map_err(Error::Scratch)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Scratch)?;
        let log = EmbeddedLog::open(
            dir.path().join("log"),
            EmbeddedLogConfig {
                partitions: 1,
                sync: false,
                ..EmbeddedLogConfig::default()
            },
        )?;
        let store = StateStore::open(
            dir.path().join("state"),
            &StoreConfig {
                dimension: model.stored_dimension(),
                dedup_window: std::time::Duration::from_secs(365 * 24 * 3600),
                block_cache_bytes: 64 * 1024 * 1024,
                cipher: None,
            },
        )?;
        let numbers = catalogue
            .iter()
            .enumerate()
            .map(|(at, item)| (item.item_id.clone(), at as u32))
            .collect();
        let Engine {
            items,
            index,
            processor,
            query,
            experiments,
            ..
        } = Engine::open(
            log.clone(),
            store.clone(),
            model,
            IndexConfig {
                rebuild_interval: std::time::Duration::MAX,
                rest_after_build: 0.0,
                ..index
            },
            ProcessorConfig {
                max_batch_events: APPEND_CHUNK,
                ..ProcessorConfig::default()
            },
            Metrics::new(1),
        )?;
        upsert_catalogue(&store, &items, &index, None, catalogue)?;
        Ok(System {
            _dir: dir,
            runtime,
            log,
            index,
            processor,
            query,
            experiments,
            since_refresh: 0,
            numbers,
            user_ids: HashMap::new(),
            max_per_genre: None,
        })
    }

    /// Appends `ratings` to the log and applies everything appended.
    pub(crate) fn apply(&mut self, ratings: &[Rating]) -> Result<()> {
        self.apply_events(ratings.iter().map(|rating| rating.event.clone()).collect())
    }

    /// Appends `events` to the log and applies everything appended, in order.
    pub fn apply_events(&mut self, events: Vec<Event>) -> Result<()> {
        self.since_refresh += events.len();
        self.runtime.block_on(self.log.append(events))?;
        while self.processor.step()? > 0 {}
        // The server refreshes at most once a second of wall-clock time; here every
        // TRENDING_EVERY events, so that runs repeat exactly.
        if self.since_refresh >= TRENDING_EVERY {
            self.processor.refresh_trending();
            self.since_refresh = 0;
        }
        Ok(())
    }

    /// The query engine over this system's state.
    pub fn query(&self) -> &QueryEngine {
        &self.query
    }

    /// The experiments and flags of this system's state (attributed by its processor).
    pub fn experiments(&self) -> &Experiments {
        &self.experiments
    }

    /// What the index worker would have done by now.
    pub(crate) fn before_queries(&mut self) {
        if self.index.rebuild_due() {
            self.index.rebuild_now();
        }
    }

    pub(crate) fn recommend(&self, user: u32, settings: &RankingSettings) -> Result<Vec<u32>> {
        let (_, list) = self.query.recommend_as(
            &RecommendationQuery {
                user_id: self.user_ids[&user].clone(),
                count: K,
                exclude_seen: true,
                genre: None,
                exclude: Vec::new(),
                options: marquee_stream_processor::ListOptions {
                    max_per_genre: self.max_per_genre,
                    ..Default::default()
                },
            },
            settings,
        )?;
        Ok(list
            .iter()
            .filter_map(|recommendation| self.numbers.get(&recommendation.item_id).copied())
            .collect())
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.log.close();
    }
}
