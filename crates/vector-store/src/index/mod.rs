//! [`VectorIndex`]: approximate maximum-inner-product search over item vectors that keep
//! changing.
//!
//! An HNSW graph has no cheap update or delete, and item vectors change with every event. The
//! strategy:
//!
//! 1. **Snapshot graph.** A background worker copies every item vector from the [`ItemTable`]
//!    and builds a fresh HNSW graph from it, then swaps it in. Builds are triggered when the
//!    side set (below) reaches [`IndexConfig::rebuild_after_changes`], when it overflowed, or
//!    when it is non-empty and the graph is older than [`IndexConfig::rebuild_interval`].
//! 2. **Side set.** Every item whose vector changed (or that was created) since the current
//!    graph's snapshot is recorded in a side set bounded by [`IndexConfig::side_set_bound`]. A
//!    query scores the side set exactly. When the set is full, further changed items are not
//!    added (counted in `overflowed`): they are still found through the graph at their snapshot
//!    position, and the overflow triggers a rebuild.
//! 3. **Fresh scores.** Candidates from the graph and the side set are re-scored with the
//!    current vectors, so a result is never ranked by a stale vector.
//!
//! **Inner product on a sphere.** An HNSW graph assumes a metric, and our scores are
//! raw inner products (an item's norm carries its popularity). The graph uses the standard
//! MIPS-to-nearest-neighbour transform (Bachrach et al., 2014): with `M` the largest item norm
//! in the snapshot, an item `x` is stored as `[x, sqrt(M² − |x|²)]` and a query `q` is searched
//! as `[M·q/|q|, 0]`; then `|q' − x'|² = 2M² − 2M·q·x/|q|`, so the nearest neighbours are exactly
//! the largest inner products. Every stored point and the probe lie on the sphere of radius `M`:
//! scaling the probe onto it (rather than using a unit probe) keeps the distances' contrast,
//! which the graph search needs (with a unit probe, recall@10 fell to 0.6 in the recall test).
//!
//! **The graph** ([`crate::flat`]) is built and searched the way `hnswlib` builds and searches
//! (the diversity heuristic on every list, flat arrays, a reused visited array), in batches
//! searched in parallel and from a fixed seed, so the same vectors give the same graph on any
//! number of threads.
//!
//! The graph and the side set are swapped in one critical section, so a query never sees a new
//! graph with an old side set or the reverse.
//!
//! **Saved graph.** Building the graph is most of a restart on a large catalogue, so a clean stop
//! saves it ([`VectorIndex::save`]: the graph with its points, the side set and a stamp, one
//! bincode file) and the next start loads it ([`VectorIndex::load_saved`]) instead of
//! building. The stamp is the processor's committed offsets, the number of item numbers and the
//! vector dimension at the stop: a saved graph whose stamp differs from the state it would
//! serve (the state was restored, replayed or changed by a node that then crashed) is ignored
//! and the graph is built. The saved files are deleted once loaded, so only a clean stop leaves
//! any. A loaded graph is exactly the graph that served before the stop, with the same side
//! set, so results are the same as before the restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::flat::FlatGraph;
use crate::items::{ItemTable, Table};
use crate::vector::{dot, norm};

mod basis;
mod build;
mod saved;

pub use basis::PreparedGraph;
pub use build::lower_priority;

/// Most candidates one query takes from the graph, however many its filters reject: a query's
/// cost stays bounded whatever the catalogue size.
pub const MAX_GRAPH_CANDIDATES: usize = 4096;

/// Settings of the index.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// HNSW links per node (`M`).
    pub max_connections: usize,
    /// HNSW candidate list size while building.
    pub ef_construction: usize,
    /// Smallest HNSW candidate list size while searching.
    pub ef_search: usize,
    /// Most items scored exactly besides the graph.
    pub side_set_bound: usize,
    /// Side-set size that triggers a rebuild.
    pub rebuild_after_changes: usize,
    /// Age after which a graph with any changed item is rebuilt.
    pub rebuild_interval: Duration,
    /// After a build that took `d`, the next one waits until the graph is `rest_after_build ·
    /// d` old, whatever the changes (the side set scores them exactly meanwhile, up to its
    /// bound); an urgent one (see [`IndexConfig::background_nice`]) at most `d`. At 4, the worker builds at most a fifth of the time: under a steady stream of
    /// changes it would otherwise rebuild back to back and take cores from queries and the
    /// processor. 0 turns the rest off (the evaluator rebuilds by change count alone).
    pub rest_after_build: f64,
    /// Niceness (Linux, 0–19) of the background rebuilds that are not urgent: the thread that
    /// builds and the threads it builds with. At 19 such a build takes the CPU that queries and
    /// the processor leave idle, and about 1.5% of a core they want (the kernel weighs niceness
    /// 19 at 15 against 1,024); the side set scores the changes exactly meanwhile. 10 gives a
    /// build about a tenth of a contended core; 0 the queries' priority.
    ///
    /// A build is **urgent** when the side set holds half its bound or has overflowed (a solve
    /// of the factorisation, a bulk load of the catalogue) and queries searched the index since
    /// the last build started: every query then scores thousands of items exactly, and a node
    /// serving 0.4× its settled speed would wait for a build that the saturated cores never
    /// give idle time. Without queries (a bulk load before serving) the side set costs nothing,
    /// and the build stays in the background, behind the processor. An urgent build runs at the priority the
    /// worker was started with, the queries'; a background build under way when the side set
    /// becomes urgent is abandoned (between two batches of insertions) and started again at
    /// that priority. [`VectorIndex::rebuild_now`] called from elsewhere (the first build at
    /// start, the evaluator) runs at its caller's priority.
    pub background_nice: u8,
    /// Encryption at rest of the saved index (`<data-dir>/index`): the file is sealed whole,
    /// as the state's values are; a saved file that does not open is rebuilt.
    pub cipher: Option<marquee_schemas::Cipher>,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            max_connections: 16,
            ef_construction: 200,
            ef_search: 128,
            side_set_bound: 4096,
            rebuild_after_changes: 1024,
            rebuild_interval: Duration::from_secs(30),
            rest_after_build: 4.0,
            background_nice: 19,
            cipher: None,
        }
    }
}

/// Counters of the index, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexStats {
    /// Items in the current graph.
    pub indexed_items: usize,
    /// Items in the side set.
    pub side_set_items: usize,
    /// Changed items that found the side set full, since start.
    pub overflowed_total: u64,
    /// Completed graph builds since start.
    pub builds: u64,
    /// Of those, the worker's urgent builds (at the queries' priority, see
    /// [`IndexConfig::background_nice`]).
    pub urgent_builds: u64,
    /// Background builds abandoned part way since start (the side set became urgent, or the
    /// index shut down).
    pub abandoned_builds: u64,
    /// Duration of the last build.
    pub last_build_seconds: f64,
    /// Time since the current graph was swapped in.
    pub graph_age_seconds: f64,
}

struct Graph {
    /// The graph of the snapshot's transformed vectors ([`crate::flat`]).
    flat: FlatGraph,
    /// The largest item norm of the snapshot, `M` of the transform.
    max_norm: f32,
    built_at: Instant,
}

struct SideState {
    graph: Option<Arc<Graph>>,
    /// Items changed since the current graph's snapshot.
    changed: HashSet<u32>,
    /// Items changed since the snapshot of the build under way, if one is.
    changed_during_build: Option<HashSet<u32>>,
    overflowed_since_build: bool,
    overflowed_total: u64,
    builds: u64,
    urgent_builds: u64,
    abandoned_builds: u64,
    last_build_seconds: f64,
    /// Raised when a solve's graph is swapped in ([`VectorIndex::install_prepared`]): a build
    /// begun before holds the old basis and is dropped.
    generation: u64,
}

struct Inner {
    items: ItemTable,
    config: IndexConfig,
    side: Mutex<SideState>,
    /// Wakes the rebuild worker.
    wake: Condvar,
    /// One build at a time (the worker's and an explicit `rebuild_now`).
    build_lock: Mutex<()>,
    stop: AtomicBool,
    /// Whether a query searched the index since the last build was decided (by the worker, or
    /// a call of `rebuild_now`): a side set costs only queries, so only then can a build be
    /// urgent.
    searched: AtomicBool,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How many hits to ask the graph for after `wanted` gave `accepted` that the filter took,
/// fewer than `count`: as many as the share taken predicts for `count`, with a quarter more
/// for the share's noise, at least `count` more than before and at most four times as many.
fn widened(wanted: usize, accepted: usize, count: usize) -> usize {
    let predicted = (wanted * count * 5).div_ceil(4 * accepted.max(1));
    predicted.clamp(wanted + count, wanted * 4)
}

/// The item index. Cheap to clone; the rebuild worker stops when [`VectorIndex::shutdown`] is
/// called.
#[derive(Clone)]
pub struct VectorIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("stats", &self.stats())
            .finish()
    }
}

/// An item vector in the graph's space: `[x, sqrt(M² − |x|²)]`, with `max_norm` = `M`, the
/// largest item norm of the snapshot (see the module documentation).
pub fn mips_item(mut vector: Vec<f32>, max_norm: f32) -> Vec<f32> {
    let squared = vector.iter().map(|x| x * x).sum::<f32>();
    vector.push((max_norm * max_norm - squared).max(0.0).sqrt());
    vector
}

/// A query in the graph's space: `[M·q/|q|, 0]`, on the sphere of radius `M` like every stored
/// point. `query` must not be zero.
pub fn mips_probe(query: &[f32], max_norm: f32) -> Vec<f32> {
    let query_norm = norm(query);
    let mut probe: Vec<f32> = query.iter().map(|x| x / query_norm * max_norm).collect();
    probe.push(0.0);
    probe
}

/// A scored search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub item: u32,
    pub score: f32,
}

impl VectorIndex {
    /// Creates the index over `items` with an empty graph. Call [`VectorIndex::rebuild_now`] to
    /// build the first graph, and [`VectorIndex::start_worker`] for background rebuilds.
    pub fn new(items: ItemTable, config: IndexConfig) -> VectorIndex {
        VectorIndex {
            inner: Arc::new(Inner {
                items,
                config,
                side: Mutex::new(SideState {
                    graph: None,
                    changed: HashSet::new(),
                    changed_during_build: None,
                    overflowed_since_build: false,
                    overflowed_total: 0,
                    builds: 0,
                    urgent_builds: 0,
                    abandoned_builds: 0,
                    last_build_seconds: 0.0,
                    generation: 0,
                }),
                wake: Condvar::new(),
                build_lock: Mutex::new(()),
                stop: AtomicBool::new(false),
                searched: AtomicBool::new(false),
                worker: Mutex::new(None),
            }),
        }
    }

    pub fn config(&self) -> &IndexConfig {
        &self.inner.config
    }

    /// Records that the vectors of `items` changed (or that they are new).
    pub fn mark_changed(&self, items: impl IntoIterator<Item = u32>) {
        let bound = self.inner.config.side_set_bound;
        let mut side = self.inner.side.lock();
        let side = &mut *side;
        for item in items {
            if side.changed.len() < bound || side.changed.contains(&item) {
                side.changed.insert(item);
            } else {
                side.overflowed_since_build = true;
                side.overflowed_total += 1;
            }
            if let Some(during) = side.changed_during_build.as_mut() {
                if during.len() < bound || during.contains(&item) {
                    during.insert(item);
                } else {
                    side.overflowed_since_build = true;
                }
            }
        }
        if side.changed.len() >= self.inner.config.rebuild_after_changes
            || side.overflowed_since_build
        {
            self.inner.wake.notify_one();
        }
    }

    pub fn stats(&self) -> IndexStats {
        let side = self.inner.side.lock();
        IndexStats {
            indexed_items: side.graph.as_ref().map_or(0, |graph| graph.flat.len()),
            side_set_items: side.changed.len(),
            overflowed_total: side.overflowed_total,
            builds: side.builds,
            urgent_builds: side.urgent_builds,
            abandoned_builds: side.abandoned_builds,
            last_build_seconds: side.last_build_seconds,
            graph_age_seconds: side
                .graph
                .as_ref()
                .map_or(0.0, |graph| graph.built_at.elapsed().as_secs_f64()),
        }
    }

    /// Whether a search of `count` items with `query` can find any (a finite, non-zero query);
    /// if so, records that a query searched, which makes a large side set urgent (read first:
    /// queries on every core do not write one cache line back and forth).
    fn begin_search(&self, query: &[f32], count: usize) -> bool {
        let query_norm = norm(query);
        if count == 0 || query_norm == 0.0 || !query_norm.is_finite() {
            return false;
        }
        if !self.inner.searched.load(Ordering::Relaxed) {
            self.inner.searched.store(true, Ordering::Relaxed);
        }
        true
    }

    /// The `count` items with the largest inner product with `query` among those `accept`s,
    /// best first (ties: smaller item number). Scores come from the current vectors.
    pub fn search(
        &self,
        query: &[f32],
        count: usize,
        accept: impl Fn(&Table, u32) -> bool,
    ) -> Vec<Scored> {
        if !self.begin_search(query, count) {
            return Vec::new();
        }
        let (graph, side_set) = {
            let side = self.inner.side.lock();
            (
                side.graph.clone(),
                side.changed.iter().copied().collect::<Vec<u32>>(),
            )
        };

        let table = self.inner.items.read();
        let mut candidates: Vec<u32> = side_set
            .into_iter()
            .filter(|&item| table.id(item).is_some() && accept(&table, item))
            .collect();
        let side_candidates = candidates.len();
        if let Some(graph) = graph {
            let probe = mips_probe(query, graph.max_norm);
            // Ask the graph for more than `count`: filters remove some hits, and the side set
            // may supersede others. Widen until enough pass or the graph is exhausted: by the
            // share the filter passed ([`widened`]), so a viewer whose seen items crowd their
            // vector's neighbourhood searches once more at the depth that share asks for.
            let limit = graph
                .flat
                .len()
                .min(MAX_GRAPH_CANDIDATES.max(count * 2 + 16));
            let mut wanted = (count * 2 + 16).min(limit);
            loop {
                let ef = wanted.max(self.inner.config.ef_search);
                let hits = graph.flat.search(&probe, wanted, ef);
                candidates.truncate(side_candidates);
                candidates.extend(
                    hits.iter()
                        .map(|&(item, _)| item)
                        .filter(|&item| table.id(item).is_some() && accept(&table, item)),
                );
                let accepted_from_graph = candidates.len() - side_candidates;
                if accepted_from_graph >= count || wanted >= limit {
                    break;
                }
                wanted = widened(wanted, accepted_from_graph, count).min(limit);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut scored: Vec<Scored> = candidates
            .into_iter()
            .map(|item| Scored {
                item,
                score: dot(query, table.vector(item)),
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        scored.truncate(count);
        scored
    }

    /// The `count` items of `members` with the largest inner product with `query` among those
    /// `accept` takes, by exact scoring: the plan for a narrow filter, whose few matches a
    /// graph walk would have to pass thousands of refused nodes to find.
    pub fn search_among(
        &self,
        query: &[f32],
        count: usize,
        members: &[u32],
        accept: impl Fn(&Table, u32) -> bool,
    ) -> Vec<Scored> {
        if !self.begin_search(query, count) {
            return Vec::new();
        }
        let table = self.inner.items.read();
        let mut scored: Vec<Scored> = members
            .iter()
            .copied()
            .filter(|&item| table.id(item).is_some() && accept(&table, item))
            .map(|item| Scored {
                item,
                score: dot(query, table.vector(item)),
            })
            .collect();
        let order = |a: &Scored, b: &Scored| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item));
        if scored.len() > count {
            scored.select_nth_unstable_by(count - 1, order);
            scored.truncate(count);
        }
        scored.sort_by(order);
        scored
    }
}
