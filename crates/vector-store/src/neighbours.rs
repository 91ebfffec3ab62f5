//! Bounded item-to-item co-occurrence lists.
//!
//! Each item keeps at most [`NEIGHBOUR_CAPACITY`] `(neighbour, weight)` entries, sorted by
//! neighbour number. Adding to a neighbour already listed adds to its weight; a new neighbour
//! takes a free slot, or, when the list is full, replaces the lightest entry if the new weight
//! is at least as large (ties: the entry with the larger number goes). Heavy pairs therefore
//! stay, and the tail of light, one-off pairs churns. An addition costs `O(log C)` when the
//! neighbour is listed and `O(C)` when it is not (`C` the capacity).
//!
//! A negative addition takes weight back from a listed pair (erasure of a user's contribution)
//! and drops the pair when nothing is left; it never adds a pair.
//!
//! Lists are persisted through a RocksDB merge operator: a write batch carries, per touched
//! item, the additions in the order they were applied in memory, and the merge replays them
//! with the same [`Neighbours::add`], so the stored list always equals the one in memory.

/// A pair whose weight falls to this or below after a removal is dropped.
const REMOVED_BELOW: f32 = 1e-6;

/// Most neighbours kept per item.
pub const NEIGHBOUR_CAPACITY: usize = 256;

/// Additions from which [`Neighbours::add_all`] reads a list through before adding.
const PREFETCH_FROM_ADDITIONS: usize = 2;

/// One item's co-occurrence list.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    entries: Vec<(u32, f32)>,
    /// A lower bound of the lightest weight once the list is full: a new neighbour lighter
    /// than this is refused without scanning. Weights only grow and evictions remove the
    /// lightest entry, so a bound stays a bound; a scan makes it exact again.
    floor: f32,
}

impl Neighbours {
    /// Takes `weight` back from the pair with `item` (an erased user's contribution): only a
    /// listed pair changes, and it leaves the list when nothing is left of it. Additions are
    /// never negative, so a negative addition in a merge operand is a removal.
    fn remove_weight(&mut self, item: u32, weight: f32) {
        if let Ok(position) = self.entries.binary_search_by_key(&item, |entry| entry.0) {
            self.entries[position].1 -= weight;
            if self.entries[position].1 <= REMOVED_BELOW {
                self.entries.remove(position);
            }
            // Weights no longer only grow: make the floor exact again.
            self.floor = self
                .entries
                .iter()
                .map(|entry| entry.1)
                .fold(f32::INFINITY, f32::min);
            if self.entries.len() < NEIGHBOUR_CAPACITY {
                self.floor = 0.0;
            }
        }
    }
}

impl PartialEq for Neighbours {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Neighbours {
    /// Adds `weight` to the pair with `item` (see the module docs for a full list).
    pub fn add(&mut self, item: u32, weight: f32) {
        if weight < 0.0 {
            self.remove_weight(item, -weight);
            return;
        }
        match self.entries.binary_search_by_key(&item, |entry| entry.0) {
            Ok(position) => self.entries[position].1 += weight,
            Err(position) if self.entries.len() < NEIGHBOUR_CAPACITY => {
                self.entries.insert(position, (item, weight));
            }
            Err(_) if weight < self.floor => {}
            Err(position) => {
                // The lightest entry (ties: the larger number, so the last of them) and the
                // weight of the next lightest, the exact floor once the lightest has gone.
                let (lightest_weight, next_weight) = two_lightest(&self.entries);
                let Some(lightest) = self
                    .entries
                    .iter()
                    .rposition(|entry| entry.1 == lightest_weight)
                else {
                    // Only a list of NaN weights has no lightest: it takes nothing new.
                    return;
                };
                let lightest_entry = self.entries[lightest];
                if weight >= lightest_entry.1 {
                    // Remove the lightest and insert the new entry in order, in one move of
                    // the entries between them.
                    if lightest < position {
                        self.entries[lightest..position].rotate_left(1);
                        self.entries[position - 1] = (item, weight);
                    } else {
                        self.entries[position..=lightest].rotate_right(1);
                        self.entries[position] = (item, weight);
                    }
                    self.floor = next_weight.min(weight);
                } else {
                    self.floor = lightest_entry.1;
                }
            }
        }
    }

    /// Adds each `(item, weight)` in order, exactly as [`Neighbours::add`] one at a time.
    ///
    /// A list that takes several additions is read through once first: its cache lines are
    /// then requested together, in order, instead of one binary-search step at a time (a list
    /// is rarely in the cache when a batch reaches it, and each step of a search waits for the
    /// previous one's line).
    pub fn add_all(&mut self, additions: &[(u32, f32)]) {
        if additions.len() >= PREFETCH_FROM_ADDITIONS {
            let touched = self
                .entries
                .iter()
                .fold(0u32, |touched, entry| touched ^ entry.0);
            std::hint::black_box(touched);
        }
        for &(item, weight) in additions {
            self.add(item, weight);
        }
    }

    /// The entries, by neighbour number.
    pub fn entries(&self) -> &[(u32, f32)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Fixed-width little-endian encoding: `(u32, f32)` per entry.
    pub fn encode(&self) -> Vec<u8> {
        encode_pairs(&self.entries)
    }

    /// Decodes [`Neighbours::encode`]'s output; `None` when the length is not a whole number
    /// of entries or the entries are not in order.
    pub fn decode(bytes: &[u8]) -> Option<Neighbours> {
        let entries = decode_pairs(bytes)?;
        let ordered = entries.windows(2).all(|pair| pair[0].0 < pair[1].0);
        (ordered && entries.len() <= NEIGHBOUR_CAPACITY).then_some(Neighbours {
            entries,
            floor: 0.0,
        })
    }
}

/// The smallest weight of `entries` and the next smallest (equal to it when two entries share
/// it; infinite for fewer than two entries). Eight running pairs over interleaved entries, merged
/// at the end, so the compiler can keep them in vector registers: the scan of a full list is
/// what a new pair heavier than the list's floor costs.
fn two_lightest(entries: &[(u32, f32)]) -> (f32, f32) {
    const LANES: usize = 8;
    let mut first = [f32::INFINITY; LANES];
    let mut second = [f32::INFINITY; LANES];
    let chunks = entries.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            let weight = chunk[lane].1;
            second[lane] = second[lane].min(first[lane].max(weight));
            first[lane] = first[lane].min(weight);
        }
    }
    let (mut lightest, mut next) = (f32::INFINITY, f32::INFINITY);
    let weights = first
        .iter()
        .chain(&second)
        .copied()
        .chain(rest.iter().map(|entry| entry.1));
    for weight in weights {
        next = next.min(lightest.max(weight));
        lightest = lightest.min(weight);
    }
    (lightest, next)
}

/// Encodes a sequence of `(item, weight)` pairs: a stored list, or the additions of a batch.
pub fn encode_pairs(pairs: &[(u32, f32)]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(pairs.len() * 8);
    for (item, weight) in pairs {
        bytes.extend_from_slice(&item.to_le_bytes());
        bytes.extend_from_slice(&weight.to_le_bytes());
    }
    bytes
}

/// Decodes [`encode_pairs`]'s output; `None` when the length is not a multiple of 8.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(u32, f32)>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|chunk| {
                let item = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
                let weight = f32::from_le_bytes(chunk[4..].try_into().expect("4 bytes"));
                (item, weight)
            })
            .collect(),
    )
}

/// The merge: the stored list (if any), then every operand's additions in order. A corrupt
/// stored value or operand fails the merge, which RocksDB reports as an error on read, rather
/// than dropping data silently.
pub(crate) fn merge<'a>(
    existing: Option<&[u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
) -> Option<Vec<u8>> {
    let mut list = match existing {
        Some(bytes) => Neighbours::decode(bytes)?,
        None => Neighbours::default(),
    };
    for operand in operands {
        list.add_all(&decode_pairs(operand)?);
    }
    Some(list.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_takes_weight_back_and_drops_an_emptied_pair() {
        let mut list = Neighbours::default();
        list.add(7, 1.0);
        list.add(3, 0.5);
        list.add(7, -0.25);
        assert_eq!(list.entries(), &[(3, 0.5), (7, 0.75)]);
        list.add(3, -0.5);
        assert_eq!(list.entries(), &[(7, 0.75)]);
        // Removing from a pair that is not listed adds nothing.
        list.add(9, -1.0);
        assert_eq!(list.entries(), &[(7, 0.75)]);
    }

    #[test]
    fn adds_accumulate_and_stay_sorted() {
        let mut list = Neighbours::default();
        list.add(7, 1.0);
        list.add(3, 0.5);
        list.add(7, 0.25);
        assert_eq!(list.entries(), &[(3, 0.5), (7, 1.25)]);
    }

    #[test]
    fn a_full_list_keeps_its_heaviest_pairs() {
        let mut list = Neighbours::default();
        for item in 0..NEIGHBOUR_CAPACITY as u32 {
            list.add(item, 2.0);
        }
        list.add(5, 1.0);
        // Lighter than every entry: refused.
        list.add(10_000, 1.0);
        assert!(list.entries().iter().all(|entry| entry.0 != 10_000));
        // As heavy as the lightest: replaces it (the larger number among equals goes first).
        list.add(10_001, 2.0);
        assert_eq!(list.len(), NEIGHBOUR_CAPACITY);
        assert!(list.entries().contains(&(10_001, 2.0)));
        assert!(!list.entries().iter().any(|entry| entry.0 == 255));
        assert!(list.entries().contains(&(5, 3.0)));
    }

    /// The rule of the module docs, written plainly (a full scan per eviction, no floor):
    /// [`Neighbours::add`] must keep exactly the same list.
    fn add_plainly(entries: &mut Vec<(u32, f32)>, item: u32, weight: f32) {
        match entries.binary_search_by_key(&item, |entry| entry.0) {
            Ok(position) => entries[position].1 += weight,
            Err(position) if entries.len() < NEIGHBOUR_CAPACITY => {
                entries.insert(position, (item, weight));
            }
            Err(_) => {
                let (lightest, &(_, lightest_weight)) = entries
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.1.total_cmp(&b.1.1).then(b.1.0.cmp(&a.1.0)))
                    .unwrap();
                if weight >= lightest_weight {
                    entries.remove(lightest);
                    let position = entries
                        .binary_search_by_key(&item, |entry| entry.0)
                        .unwrap_err();
                    entries.insert(position, (item, weight));
                }
            }
        }
    }

    #[test]
    fn a_full_list_evicts_as_the_plain_rule_does() {
        let mut list = Neighbours::default();
        let mut plain = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // 1,000 candidate items for 256 places, and few distinct weights: many evictions,
            // many ties, items on both sides of the lightest.
            let item = (state % 1_000) as u32;
            let weight = ((state >> 20) % 4) as f32 * 0.5 + 0.25;
            list.add(item, weight);
            add_plainly(&mut plain, item, weight);
            assert_eq!(list.entries(), plain.as_slice());
        }
    }

    #[test]
    fn merging_operands_equals_applying_them_in_memory() {
        let mut memory = Neighbours::default();
        let first: Vec<(u32, f32)> = (0..300).map(|k| (k * 7 % 311, 1.0 + k as f32)).collect();
        let second: Vec<(u32, f32)> = (0..300).map(|k| (k * 13 % 307, 0.5)).collect();
        for (item, weight) in first.iter().chain(&second) {
            memory.add(*item, *weight);
        }
        let stored = merge(None, [encode_pairs(&first).as_slice()].into_iter()).unwrap();
        let merged = merge(
            Some(&stored),
            [encode_pairs(&second).as_slice()].into_iter(),
        )
        .unwrap();
        assert_eq!(Neighbours::decode(&merged).unwrap(), memory);
    }

    #[test]
    fn corrupt_bytes_are_refused() {
        assert!(Neighbours::decode(&[1, 2, 3]).is_none());
        let unordered = encode_pairs(&[(5, 1.0), (2, 1.0)]);
        assert!(Neighbours::decode(&unordered).is_none());
        assert!(merge(Some(&[0u8; 3]), std::iter::empty()).is_none());
    }
}
