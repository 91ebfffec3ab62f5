//! The shipper: appends the outbox to the change log, in sequence order, and removes what it
//! appended (see "Nodes" in the module docs of [`super`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use marquee_ingest::{AnyChangeLog, ChangeLog, EventLog};
use marquee_vector_store::StateStore;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::{Processor, Shared};
use crate::telemetry::Metrics;

/// Outbox records one append ships at most.
const SHIPPED_PER_APPEND: usize = 256;

impl<L: EventLog> Processor<L> {
    /// Runs the shipper on a thread of its own: it appends the outbox to the change log, in
    /// sequence order, and removes what was appended. An append that fails is retried with
    /// backoff; records appended twice (a failure after the append) are recognised by readers.
    pub(super) fn spawn_shipper(&self, cancel: CancellationToken) -> std::thread::JoinHandle<()> {
        let store = self.store.clone();
        let shared = Arc::clone(&self.shared);
        let metrics = self.metrics.clone();
        let changes = self.changes.clone();
        std::thread::Builder::new()
            .name("item-shipper".to_owned())
            .spawn(move || {
                let Some(changes) = changes else { return };
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("building the shipper's runtime");
                runtime.block_on(ship(store, shared, metrics, changes, cancel));
            })
            .expect("spawning the shipper's thread")
    }
}

/// The shipper's loop (see [`Processor::spawn_shipper`]). At a stop, it ships what the outbox
/// holds for up to 5 s more; what is left is shipped at the next start.
async fn ship(
    store: StateStore,
    shared: Arc<Shared>,
    metrics: Metrics,
    changes: AnyChangeLog,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut stop_by: Option<Instant> = None;
    loop {
        if cancel.is_cancelled() && stop_by.is_none() {
            stop_by = Some(Instant::now() + Duration::from_secs(5));
        }
        if stop_by.is_some_and(|deadline| Instant::now() >= deadline) {
            return;
        }
        let records = match store.outbox(SHIPPED_PER_APPEND) {
            Ok(records) => records,
            Err(failure) => {
                error!(error = %failure, "cannot read the outbox; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if records.is_empty() {
            metrics.item_changes_outbox.set(0);
            if stop_by.is_some() {
                return;
            }
            tokio::select! {
                () = shared.outbox_ready.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = cancel.cancelled() => {}
            }
            continue;
        }
        let count = records.len();
        let (sequences, values): (Vec<u64>, Vec<Vec<u8>>) = records.into_iter().unzip();
        match changes.append(values).await {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                if let Err(failure) = store.remove_shipped(&sequences) {
                    error!(error = %failure, "cannot remove shipped item changes; they will be sent again");
                }
                if count < SHIPPED_PER_APPEND {
                    metrics.item_changes_outbox.set(0);
                }
            }
            Err(failure) => {
                metrics.item_changes_ship_failures.inc();
                metrics.item_changes_outbox.set(count as i64);
                warn!(error = %failure, "cannot ship item changes; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
