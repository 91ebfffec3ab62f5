//! A solve's graph: built on the vectors a solve of the factorisation computed, before they are
//! installed, and swapped in with them.
//!
//! A solve changes every item's vector at once, in a new basis: the graph built on the old
//! vectors no longer finds the new ones. Marking every item changed left the side set full
//! (4,096 items scored exactly by every query) until the next build, which on a loaded node took
//! minutes, and every later solve filled it again. Instead the solve's thread builds the graph
//! of the vectors it will install ([`VectorIndex::prepare`]); until they are installed, queries
//! search the old graph with the old vectors, which agree. At the install,
//! [`VectorIndex::install_prepared`] swaps the graph in and puts in the side set only the items
//! whose vector is not the one the graph holds: those the pairs recorded during the solve moved,
//! and items created or changed meanwhile. A background build begun on the old basis is dropped
//! when it ends.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::info;

use super::{Graph, VectorIndex};
use crate::vector::squared_distance;

/// A graph built on vectors not yet installed ([`VectorIndex::prepare`]).
pub struct PreparedGraph {
    graph: Option<Graph>,
    /// The item numbers the graph holds, ascending, and their vectors.
    numbers: Vec<u32>,
    vectors: Vec<Vec<f32>>,
    /// How long the build took.
    seconds: f64,
}

impl std::fmt::Debug for PreparedGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedGraph")
            .field("items", &self.numbers.len())
            .finish()
    }
}

impl PreparedGraph {
    /// The vector the graph holds for `number`.
    fn vector(&self, number: u32) -> Option<&[f32]> {
        let at = self.numbers.binary_search(&number).ok()?;
        Some(&self.vectors[at])
    }
}

/// Whether `now` is, within rounding, the vector `then` the graph was built on: a solve's
/// delta added to the old vector gives the solved one up to a few units in the last place.
fn same_place(then: &[f32], now: &[f32]) -> bool {
    let scale: f32 = then.iter().map(|x| x * x).sum::<f32>().max(1e-12);
    squared_distance(then, now) <= 1e-8 * scale
}

impl VectorIndex {
    /// The graph of `vectors` (item number, target vector), on the calling thread and at its
    /// priority; `None` when the index shuts down meanwhile.
    pub fn prepare(&self, mut vectors: Vec<(u32, Vec<f32>)>) -> Option<PreparedGraph> {
        vectors.sort_unstable_by_key(|(number, _)| *number);
        let (numbers, vectors): (Vec<u32>, Vec<Vec<f32>>) = vectors.into_iter().unzip();
        let keep_going = || !self.inner.stop.load(Ordering::SeqCst);
        let started = std::time::Instant::now();
        let graph = self.graph_of(&numbers, vectors.clone(), &keep_going).ok()?;
        Some(PreparedGraph {
            graph,
            numbers,
            vectors,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Swaps in `prepared`, once the vectors it was built on are in the item table: the side
    /// set becomes every item whose current vector is not the graph's (moved since, or new).
    pub fn install_prepared(&self, prepared: PreparedGraph) {
        let bound = self.inner.config.side_set_bound;
        // The table before the side set, as the builds read them; the table stays read while
        // the graph is swapped, so no change lands between the comparison and the swap.
        let table = self.inner.items.read();
        let mut side = self.inner.side.lock();
        let mut changed: HashSet<u32> = HashSet::new();
        let mut overflowed = false;
        let differing = table.numbers().filter(|&number| {
            prepared
                .vector(number)
                .is_none_or(|then| !same_place(then, table.vector(number)))
        });
        for number in differing {
            if changed.len() < bound {
                changed.insert(number);
            } else {
                overflowed = true;
                side.overflowed_total += 1;
            }
        }
        side.generation += 1;
        side.changed_during_build = None;
        side.graph = prepared.graph.map(Arc::new);
        side.changed = changed;
        side.overflowed_since_build = overflowed;
        side.builds += 1;
        side.last_build_seconds = prepared.seconds;
        info!(
            items = prepared.numbers.len(),
            side_set = side.changed.len(),
            overflowed,
            "a solve's graph swapped in"
        );
        if overflowed {
            self.inner.wake.notify_one();
        }
    }
}
