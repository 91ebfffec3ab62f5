//! Item changes as commutative deltas.
//!
//! A processor batch does not write an item's new state: it writes what the batch *added* to it,
//! an [`ItemDelta`] (vector change, popularity gained, events counted, co-occurrence mass), as a
//! RocksDB merge operand of the `items` column family, and adds the same delta to the item in
//! memory after the commit. Deltas commute: the stored state is the base plus the sum of every
//! committed delta, in whatever order they were committed, and the state in memory is the same
//! sum in the order they were published. So processor loops that share items need no lock
//! between reading an item and committing its change, and a loop elsewhere (another machine)
//! could send its deltas to be added just the same.
//!
//! - **Vectors** (both sides, source first): the delta is what the batch's co-occurrence
//!   additions fold into them (`marquee_stream_processor::factors`), computed against the
//!   vectors the batch read, or what a solve replaced them with. Two loops changing one item at
//!   once both apply their change to the sum.
//! - **Popularity** is a decayed sum: `Σ w · 2^−(t_now − t)/h`. A delta holds the batch's sum as
//!   of its own time; [`Popularity::merge`] decays both sides to the later time and adds them,
//!   which is commutative and associative. Each delta carries the half-life it was computed
//!   with, so a stored delta needs no configuration to be read.
//! - **Counts and mass** add; an erasure writes negative ones. A state never goes below zero.
//! - **The item id** rides in every delta: a delta whose item has no stored state yet (its first
//!   events) starts from zero vectors, whichever delta lands first.
//!
//! Float addition is not associative, so two loops' deltas summed in different orders may differ
//! in the last bits between memory and disk, and between runs; counts never do.

use bincode::{Decode, Encode};
use marquee_schemas::{decode_record, encode_record};

use crate::records::{ItemState, Popularity};

/// What one batch (or one erasure) did to items, as it travels between nodes that split the
/// partitions: written to the node's outbox in the batch's own write, shipped to the change
/// log, and applied by every other node (`marquee_stream_processor::processor`, "Nodes").
/// Items are named by id, since item numbers are each node's own.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
pub struct ItemChanges {
    /// The events these are the item changes of: `(partition, from, to)`, offsets `from..to`.
    /// A reader that holds a partition's changes up to `to` already skips the record, so a
    /// record shipped twice is applied once. Empty for an erasure.
    pub ranges: Vec<(u32, u64, u64)>,
    /// What each item gained.
    pub items: Vec<ItemDelta>,
    /// Co-occurrence additions: an item's id and its `(neighbour id, weight)` additions, in the
    /// order they were applied.
    pub pairs: Vec<(String, Vec<(String, f32)>)>,
    /// For an erasure's changes: the erased user's keyed hash and erasure time, which identify
    /// it (a reader that has the same erasure skips it) and join the reader's erasure list.
    pub erasure: Option<([u8; 32], i64)>,
}

/// What one batch added to one item.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ItemDelta {
    /// The item's id, so a delta without a stored state can start it.
    pub item_id: String,
    /// Added to the vector (empty: no change).
    pub vector: Vec<f32>,
    /// Popularity gained, as of `popularity_at` (negative: taken back by an erasure).
    pub popularity: f32,
    pub popularity_at: i64,
    /// The half-life `popularity` decays with, in ms.
    pub half_life_ms: f64,
    pub event_count: i64,
    pub mass: f32,
}

impl ItemDelta {
    /// A delta that changes nothing yet.
    pub fn new(item_id: &str, half_life_ms: f64) -> ItemDelta {
        ItemDelta {
            item_id: item_id.to_owned(),
            vector: Vec::new(),
            popularity: 0.0,
            popularity_at: 0,
            half_life_ms,
            event_count: 0,
            mass: 0.0,
        }
    }

    /// The popularity part as a [`Popularity`].
    pub fn popularity(&self) -> Popularity {
        Popularity {
            score: self.popularity,
            at: self.popularity_at,
        }
    }

    /// Adds `other` to this delta (both of one item): what applying both does.
    pub fn combine(&mut self, other: &ItemDelta) {
        add_vector(&mut self.vector, &other.vector);
        let mut popularity = self.popularity();
        popularity.merge(other.popularity(), other.half_life_ms);
        self.popularity = popularity.score;
        self.popularity_at = popularity.at;
        self.event_count += other.event_count;
        self.mass += other.mass;
    }

    /// Applies this delta to `state` (`dimension` floats per vector).
    pub fn apply(&self, state: &mut ItemState, dimension: usize) {
        if state.item_id.is_empty() {
            // The item's first delta: it starts from zero vectors.
            state.item_id.clone_from(&self.item_id);
            state.vector = vec![0.0; dimension];
        }
        // A fold-in's delta holds the current vectors only (the first half of the stored
        // record); a solve's, the whole record.
        if state.vector.len() == self.vector.len() || state.vector.len() == 2 * self.vector.len() {
            add_vector(&mut state.vector, &self.vector);
        }
        let mut popularity = Popularity {
            score: state.popularity,
            at: state.popularity_at,
        };
        popularity.merge(self.popularity(), self.half_life_ms);
        state.popularity = popularity.score.max(0.0);
        state.popularity_at = popularity.at;
        state.event_count = state.event_count.saturating_add_signed(self.event_count);
        state.mass = (state.mass + self.mass).max(0.0);
    }
}

/// Adds `addition` to the first floats of `sum`, growing `sum` with zeros to its length when it
/// is shorter (a fold-in's half-length delta combined with a solve's whole one).
fn add_vector(sum: &mut Vec<f32>, addition: &[f32]) {
    if sum.len() < addition.len() {
        sum.resize(addition.len(), 0.0);
    }
    for (total, value) in sum.iter_mut().zip(addition) {
        *total += value;
    }
}

/// The `items` column family's full merge: the stored state (if any) with every delta applied
/// in order. `None` (RocksDB reports a corruption) when a record does not decode.
pub(crate) fn merge_full<'a>(
    existing: Option<&[u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
    dimension: usize,
) -> Option<Vec<u8>> {
    let mut state = match existing {
        Some(bytes) => decode_record::<ItemState>(bytes).ok()?,
        None => ItemState {
            item_id: String::new(),
            vector: Vec::new(),
            popularity: 0.0,
            popularity_at: 0,
            event_count: 0,
            mass: 0.0,
        },
    };
    for operand in operands {
        decode_record::<ItemDelta>(operand)
            .ok()?
            .apply(&mut state, dimension);
    }
    encode_record(&state).ok()
}

/// The partial merge: consecutive deltas combined into one.
pub(crate) fn merge_partial<'a>(mut operands: impl Iterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut sum = decode_record::<ItemDelta>(operands.next()?).ok()?;
    for operand in operands {
        sum.combine(&decode_record::<ItemDelta>(operand).ok()?);
    }
    encode_record(&sum).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF_LIFE: f64 = 1000.0;

    fn delta(vector: [f32; 2], popularity: (f32, i64), count: i64, mass: f32) -> ItemDelta {
        ItemDelta {
            item_id: "m1".into(),
            vector: vector.to_vec(),
            popularity: popularity.0,
            popularity_at: popularity.1,
            half_life_ms: HALF_LIFE,
            event_count: count,
            mass,
        }
    }

    fn merged(existing: Option<&ItemState>, deltas: &[&ItemDelta]) -> ItemState {
        let existing = existing.map(|state| encode_record(state).unwrap());
        let operands: Vec<Vec<u8>> = deltas.iter().map(|d| encode_record(*d).unwrap()).collect();
        let bytes = merge_full(existing.as_deref(), operands.iter().map(Vec::as_slice), 2).unwrap();
        decode_record(&bytes).unwrap()
    }

    #[test]
    fn deltas_commute_and_a_partial_merge_changes_nothing() {
        let base = ItemState {
            item_id: "m1".into(),
            vector: vec![1.0, -1.0],
            popularity: 4.0,
            popularity_at: 2_000,
            event_count: 7,
            mass: 3.0,
        };
        let first = delta([0.5, 0.25], (1.0, 1_000), 2, 0.5);
        let second = delta([-0.25, 0.5], (2.0, 3_000), 3, 1.0);
        let one_way = merged(Some(&base), &[&first, &second]);
        let other_way = merged(Some(&base), &[&second, &first]);
        assert_eq!(one_way, other_way);
        assert_eq!(one_way.vector, vec![1.25, -0.25]);
        assert_eq!(one_way.event_count, 12);
        assert_eq!(one_way.mass, 4.5);
        // 4 at t=2000 and 1 at t=1000 decayed to t=3000 (1 and 2 half-lives), plus 2 at t=3000.
        assert_eq!(one_way.popularity_at, 3_000);
        assert!((one_way.popularity - (2.0 + 0.25 + 2.0)).abs() < 1e-5);

        let operands = [
            encode_record(&first).unwrap(),
            encode_record(&second).unwrap(),
        ];
        let partial = merge_partial(operands.iter().map(Vec::as_slice)).unwrap();
        let combined: ItemDelta = decode_record(&partial).unwrap();
        let via_partial = merged(Some(&base), &[&combined]);
        assert_eq!(via_partial.vector, one_way.vector);
        assert_eq!(via_partial.event_count, one_way.event_count);
        assert!((via_partial.popularity - one_way.popularity).abs() < 1e-5);
    }

    #[test]
    fn a_half_length_delta_adds_to_the_first_half_alone_merged_directly_or_partially() {
        let mut solve = ItemDelta::new("m1", 1.0);
        solve.vector = vec![1.0, 2.0, 3.0, 4.0];
        let mut fold_in = ItemDelta::new("m1", 1.0);
        fold_in.vector = vec![0.5, -0.5];
        let operands: Vec<Vec<u8>> = [&fold_in, &solve, &fold_in]
            .iter()
            .map(|delta| encode_record(*delta).unwrap())
            .collect();
        let direct = merge_full(None, operands.iter().map(Vec::as_slice), 4).unwrap();
        let direct: ItemState = decode_record(&direct).unwrap();
        assert_eq!(direct.vector, vec![2.0, 1.0, 3.0, 4.0]);
        let partial = merge_partial(operands.iter().map(Vec::as_slice)).unwrap();
        let via_partial = merge_full(None, std::iter::once(partial.as_slice()), 4).unwrap();
        let via_partial: ItemState = decode_record(&via_partial).unwrap();
        assert_eq!(via_partial.vector, direct.vector);
    }

    #[test]
    fn a_first_delta_starts_from_zero_vectors_and_states_stay_non_negative() {
        let first = delta([0.5, 0.0], (1.0, 10), 1, 1.0);
        let state = merged(None, &[&first]);
        assert_eq!(state.item_id, "m1");
        assert_eq!(state.vector, vec![0.5, 0.0]);
        assert_eq!(state.event_count, 1);

        let taken_back = delta([0.0, 0.0], (-3.0, 10), -5, -2.0);
        let state = merged(Some(&state), &[&taken_back]);
        assert_eq!(state.event_count, 0);
        assert_eq!(state.mass, 0.0);
        assert_eq!(state.popularity, 0.0);
    }

    #[test]
    fn an_undecodable_operand_is_reported_not_skipped() {
        assert!(merge_full(None, [&b"\x01garbage"[..]].into_iter(), 2).is_none());
        assert!(merge_partial([&b""[..]].into_iter()).is_none());
    }
}
