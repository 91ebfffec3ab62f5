//! Building the graph: the background worker, urgent and background builds, and the
//! niceness they run at (see [`super::IndexConfig::background_nice`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{Graph, SideState, VectorIndex, mips_item};
use crate::flat::FlatGraph;
use crate::vector::norm;

/// Sets the calling thread's niceness to `nice` (Linux; 0 leaves it). `thread-priority` maps
/// its cross-platform values 0–99 onto niceness 19 down to −20, truncating; this is the value
/// that lands on `nice`. Lowering one's own priority needs no privilege; a failure is logged.
pub fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    let nice = nice.min(19);
    let value = (99 * u32::from(19 - nice) / 39) as u8;
    let priority = thread_priority::ThreadPriorityValue::try_from(value)
        .map(thread_priority::ThreadPriority::Crossplatform);
    let outcome = match priority {
        Ok(priority) => priority.set_for_current().map_err(|e| e.to_string()),
        Err(message) => Err(message),
    };
    if let Err(message) = outcome {
        warn!(
            nice,
            message, "could not lower a background thread's priority"
        );
    }
}

/// A build given up part way (see [`VectorIndex::rebuild`]).
pub(super) struct Abandoned;

impl VectorIndex {
    /// Starts the background rebuild thread. It waits at the caller's priority and builds on
    /// a thread of its own, at [`background_nice`](super::IndexConfig::background_nice) unless
    /// the build is urgent.
    pub fn start_worker(&self) {
        let index = self.clone();
        let handle = std::thread::Builder::new()
            .name("index-rebuild".into())
            .spawn(move || index.run_worker())
            .expect("spawning the index worker");
        *self.inner.worker.lock() = Some(handle);
    }

    /// Stops the background worker (abandoning a background build under way) and waits for it.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
        if let Some(handle) = self.inner.worker.lock().take() {
            let _ = handle.join();
        }
    }

    /// Whether enough has changed (or enough time passed) since the last build for another.
    pub fn rebuild_due(&self) -> bool {
        self.rebuild_due_locked(&self.inner.side.lock())
    }

    fn rebuild_due_locked(&self, side: &SideState) -> bool {
        let age = side.graph.as_ref().map(|graph| graph.built_at.elapsed());
        // An urgent build rests at most as long as the last build took (builds at most half
        // the time): its queries pay for every item of the side set meanwhile.
        let rest_factor = if self.urgent_locked(side) {
            self.inner.config.rest_after_build.min(1.0)
        } else {
            self.inner.config.rest_after_build
        };
        let rest = side.last_build_seconds * rest_factor;
        if age.is_some_and(|age| age.as_secs_f64() < rest) {
            return false;
        }
        side.changed.len() >= self.inner.config.rebuild_after_changes
            || side.overflowed_since_build
            || (!side.changed.is_empty()
                && age.is_none_or(|age| age >= self.inner.config.rebuild_interval))
    }

    /// Whether the side set calls for an urgent build (see
    /// [`background_nice`](super::IndexConfig::background_nice)):
    /// it is large and queries are paying for it.
    fn urgent_locked(&self, side: &SideState) -> bool {
        (side.overflowed_since_build || 2 * side.changed.len() >= self.inner.config.side_set_bound)
            && self.inner.searched.load(Ordering::Relaxed)
    }

    /// Builds a graph from the current vectors and swaps it in, on the calling thread.
    pub fn rebuild_now(&self) {
        self.inner.searched.store(false, Ordering::Relaxed);
        self.rebuild(&|| true, false);
    }

    /// [`VectorIndex::rebuild_now`], abandoned when `keep_going` answers false between two
    /// batches (the side set is then left as it was). Returns whether a graph was swapped in.
    fn rebuild(&self, keep_going: &dyn Fn() -> bool, urgent: bool) -> bool {
        let _building = self.inner.build_lock.lock();
        let (overflowed, generation) = {
            let mut side = self.inner.side.lock();
            side.changed_during_build = Some(HashSet::new());
            (
                std::mem::take(&mut side.overflowed_since_build),
                side.generation,
            )
        };
        let started = Instant::now();
        let graph = self.build_graph(keep_going);
        let seconds = started.elapsed().as_secs_f64();
        let mut side = self.inner.side.lock();
        if side.generation != generation {
            // A solve's graph was swapped in meanwhile (`install_prepared`): this one holds
            // the vectors of the basis before it.
            side.abandoned_builds += 1;
            info!(
                seconds,
                "index rebuild dropped: a solve's graph replaced the basis"
            );
            return false;
        }
        let Ok(graph) = graph else {
            side.changed_during_build = None;
            side.overflowed_since_build |= overflowed;
            side.abandoned_builds += 1;
            info!(seconds, "index rebuild abandoned");
            return false;
        };
        side.changed = side.changed_during_build.take().unwrap_or_default();
        side.builds += 1;
        side.urgent_builds += u64::from(urgent);
        side.last_build_seconds = seconds;
        info!(
            items = graph.as_ref().map_or(0, |graph| graph.flat.len()),
            seconds,
            urgent,
            side_set = side.changed.len(),
            "index rebuilt"
        );
        side.graph = graph.map(Arc::new);
        true
    }

    /// The graph of the current vectors (`Ok(None)`: no items), or `Err(Abandoned)` when
    /// `keep_going` answered false part way.
    fn build_graph(
        &self,
        keep_going: &dyn Fn() -> bool,
    ) -> std::result::Result<Option<Graph>, Abandoned> {
        let (numbers, vectors) = {
            let table = self.inner.items.read();
            let numbers: Vec<u32> = table.numbers().collect();
            let vectors: Vec<Vec<f32>> = numbers
                .iter()
                .map(|&number| table.vector(number).to_vec())
                .collect();
            (numbers, vectors)
        };
        self.graph_of(&numbers, vectors, keep_going)
    }

    /// The graph of `vectors` (item `numbers[i]`'s is `vectors[i]`), as [`VectorIndex::build_graph`].
    pub(super) fn graph_of(
        &self,
        numbers: &[u32],
        vectors: Vec<Vec<f32>>,
        keep_going: &dyn Fn() -> bool,
    ) -> std::result::Result<Option<Graph>, Abandoned> {
        if numbers.is_empty() {
            return Ok(None);
        }
        let max_norm = vectors.iter().map(|v| norm(v)).fold(0.0f32, f32::max);
        let augmented: Vec<Vec<f32>> = vectors
            .into_iter()
            .map(|vector| mips_item(vector, max_norm))
            .collect();
        let config = &self.inner.config;
        let points: Vec<(u32, &[f32])> = numbers
            .iter()
            .zip(&augmented)
            .map(|(&number, vector)| (number, vector.as_slice()))
            .collect();
        let dimension = augmented[0].len();
        let flat = FlatGraph::build_until(
            dimension,
            &points,
            config.max_connections,
            config.ef_construction,
            // The batch searches' threads start from the building thread and share its
            // niceness (Linux keeps it per thread and a new thread inherits it), so a
            // background rebuild stays behind queries on every core it uses.
            std::thread::available_parallelism().map_or(1, usize::from),
            keep_going,
        )
        .ok_or(Abandoned)?;
        Ok(Some(Graph {
            flat,
            max_norm,
            built_at: Instant::now(),
        }))
    }

    fn run_worker(&self) {
        loop {
            let urgent = {
                let mut side = self.inner.side.lock();
                loop {
                    if self.inner.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if self.rebuild_due_locked(&side) {
                        // Queries from here on count for the next build: reset when this
                        // one is decided, not when its thread starts, so a query in between
                        // can still make a background build urgent.
                        let urgent = self.urgent_locked(&side);
                        self.inner.searched.store(false, Ordering::Relaxed);
                        break urgent;
                    }
                    self.inner
                        .wake
                        .wait_for(&mut side, Duration::from_millis(500));
                }
            };
            // On a thread of its own: lowering a thread's priority is for good (raising it
            // back needs a privilege), and the next build may be urgent.
            let nice = if urgent {
                0
            } else {
                self.inner.config.background_nice
            };
            let keep_going = || {
                !self.inner.stop.load(Ordering::SeqCst)
                    && (urgent || !self.urgent_locked(&self.inner.side.lock()))
            };
            let outcome = std::thread::scope(|scope| {
                std::thread::Builder::new()
                    .name("index-build".into())
                    .spawn_scoped(scope, || {
                        lower_priority(nice);
                        self.rebuild(&keep_going, urgent);
                    })
                    .map(|build| build.join().is_ok())
            });
            match outcome {
                Ok(true) => {}
                Ok(false) => {
                    warn!("index rebuild panicked; the previous graph stays in use");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(error) => {
                    warn!(error = %error, "could not start an index build; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}
