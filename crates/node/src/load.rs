//! Loading a node's parts, on a blocking thread: the log, the state, the item table, the first
//! index, the processor's workers, and the background tasks (read-ahead, retention).

use std::time::Duration;

use marquee_api::Services;
use marquee_ingest::{AnyChangeLog, AnyLog, EmbeddedLog, EventLog};
use marquee_stream_processor::{
    DataDir, Engine, Metrics, ModelConfig, ProcessorHandle, SearchIndex,
};
use marquee_vector_store::{IndexConfig, StateStore, StoreConfig, VectorIndex};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::NodeConfig;
use crate::error::{Error, Result};

/// The parts of a loaded node that must be stopped in order.
pub(crate) struct Loaded {
    pub services: Services,
    pub index: VectorIndex,
    pub workers: Vec<std::thread::JoinHandle<()>>,
}

/// Opens everything and starts the processor; runs on a blocking thread of the runtime.
pub(crate) fn load(
    config: &NodeConfig,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Result<Loaded> {
    let started = std::time::Instant::now();
    let data_dir = DataDir::new(&config.data_dir);
    let runtime = tokio::runtime::Handle::current();
    let log = runtime
        .block_on(AnyLog::open(
            &config.log,
            &data_dir.log(),
            config.partitions,
            config.cipher.clone(),
        ))
        .map_err(|source| Error::OpenLog {
            backend: config.log.describe(),
            source,
        })?;
    let (store, model) = open_state(&data_dir, config)?;
    let opened_seconds = started.elapsed().as_secs_f64();
    let mut processor_config = config.processor.clone();
    let workers = processor_config.workers;
    processor_config.erasure_key = data_dir.erasure_key()?;
    processor_config.recommendation_key = data_dir.recommendation_key()?;
    processor_config.erasure_journal = Some(data_dir.erasure_journal());
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
            let changes = runtime
                .block_on(AnyChangeLog::open(&config.log, &cluster.changes_topic))
                .map_err(|source| Error::OpenChanges {
                    topic: cluster.changes_topic.clone(),
                    source,
                })?;
            Some(changes)
        }
    };
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
            cipher: config.cipher.clone(),
            ..config.index.clone()
        },
        processor_config,
        metrics.clone(),
    )?;
    let mut processor = match changes {
        Some(changes) => processor.with_changes(changes)?,
        None => processor,
    };
    // Erasures this state lacks (restored, replayed or rebuilt) are done again before any
    // event is applied.
    processor.apply_erasure_journal()?;
    info!(
        items = items.read().len(),
        open_seconds = opened_seconds,
        seconds = started.elapsed().as_secs_f64(),
        "state loaded"
    );
    let offsets = store
        .offsets(log.partition_count())
        .map_err(Error::OpenState)?;
    if !index.load_saved(&data_dir.index(), &offsets) {
        index.rebuild_now();
    }
    index.start_worker();
    let search = match config.cipher {
        // No file of an encrypted data directory holds a title: the index lives in memory.
        Some(_) => {
            remove_plain_search(&data_dir.search())?;
            SearchIndex::in_memory(&items, metrics.clone())?
        }
        None => SearchIndex::open(&data_dir.search(), &items, metrics.clone())?,
    };
    spawn_warm_up(&store);
    let handle = processor.handle();
    let worker_threads = processor.spawn_workers(workers, cancel.child_token());
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
    Ok(Loaded {
        services: Services {
            log,
            store,
            items,
            query,
            processor: handle,
            index: index.clone(),
            search,
            experiments,
            data_dir,
            backup_root: config.backup_root(),
            owners: owners.into(),
        },
        index,
        workers: worker_threads,
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
    processor: ProcessorHandle,
    retention: Duration,
    cancel: CancellationToken,
) {
    let spawned = std::thread::Builder::new()
        .name("log-retention".into())
        .spawn(move || {
            while !cancel.is_cancelled() {
                let cutoff = marquee_schemas::now_ms() - retention.as_millis() as i64;
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

/// Removes a search index left on disk (from before encryption was set up for this directory by
/// hand, or by an older release): an encrypted node keeps its index in memory.
fn remove_plain_search(path: &std::path::Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|source| {
            Error::Config(format!(
                "{}: an encrypted node keeps no search index on disk, and this one could not be \
                 removed: {source}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// Opens the state with the configured model. A state built with vectors of another
/// dimension is opened with its own when the configuration did not name one (an earlier
/// release's default): the model then has that dimension, and the node says how to change it.
fn open_state(data_dir: &DataDir, config: &NodeConfig) -> Result<(StateStore, ModelConfig)> {
    let mut model = config.model.clone();
    let store_config = |model: &ModelConfig| StoreConfig {
        dimension: model.stored_dimension(),
        dedup_window: config.dedup_window,
        block_cache_bytes: config.block_cache_bytes,
        cipher: config.cipher.clone(),
    };
    match StateStore::open(data_dir.state(), &store_config(&model)) {
        Ok(store) => Ok((store, model)),
        Err(marquee_vector_store::Error::DimensionMismatch { existing, .. })
            if !config.model_dimension_set =>
        {
            let configured = model.dimension;
            model.dimension = existing / marquee_vector_store::STORED_PARTS;
            warn!(
                state_dimension = model.dimension,
                default_dimension = configured,
                "this state's item vectors have {} dimensions, not the default {configured}: \
                 kept; to change, set [model] dimension and rebuild the state from the log",
                model.dimension
            );
            let store = StateStore::open(data_dir.state(), &store_config(&model))
                .map_err(Error::OpenState)?;
            Ok((store, model))
        }
        Err(error) => Err(Error::OpenState(error)),
    }
}
