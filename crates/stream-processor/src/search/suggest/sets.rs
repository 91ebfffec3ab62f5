//! Sets of slots, walks through postings lists, and the edit distance of two words.

/// Whether `word` is at most `edits` edits from `other`: insertions, deletions, substitutions
/// and transpositions of neighbours, each one edit (the distance tantivy's automata use).
pub(super) fn within(word: &str, other: &str, edits: u8) -> bool {
    let a: Vec<char> = word.chars().collect();
    let b: Vec<char> = other.chars().collect();
    let edits = usize::from(edits);
    if a.len().abs_diff(b.len()) > edits {
        return false;
    }
    // Three rows of the optimal-string-alignment table.
    let mut before: Vec<usize> = Vec::new();
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()] <= edits
}

/// A walk through a postings list (ascending) beside ascending slots.
pub(super) struct Cursor<'a> {
    list: &'a [u32],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(list: &'a [u32]) -> Cursor<'a> {
        Cursor { list, at: 0 }
    }

    /// How many times the list holds `slot`, not below the last slot asked.
    pub(super) fn count(&mut self, slot: u32) -> usize {
        let rest = &self.list[self.at..];
        let mut end = 1;
        while end < rest.len() && rest[end - 1] < slot {
            end = (end * 2).min(rest.len());
        }
        let start = self.at + rest[..end.min(rest.len())].partition_point(|&held| held < slot);
        let count = self.list[start..]
            .iter()
            .take_while(|&&held| held == slot)
            .count();
        self.at = start + count;
        count
    }
}

/// A set of slots: one bit each.
#[derive(Default)]
pub(super) struct Slots {
    bits: Vec<u64>,
}

impl Slots {
    pub(super) fn with_capacity(slots: usize) -> Slots {
        Slots {
            bits: vec![0; slots.div_ceil(64)],
        }
    }

    pub(super) fn insert(&mut self, slot: u32) {
        let block = slot as usize / 64;
        if block >= self.bits.len() {
            self.bits.resize(block + 1, 0);
        }
        self.bits[block] |= 1 << (slot % 64);
    }

    pub(super) fn remove(&mut self, slot: u32) {
        if let Some(bits) = self.bits.get_mut(slot as usize / 64) {
            *bits &= !(1 << (slot % 64));
        }
    }

    pub(super) fn contains(&self, slot: u32) -> bool {
        self.bits
            .get(slot as usize / 64)
            .is_some_and(|bits| bits & (1 << (slot % 64)) != 0)
    }

    /// The slots held here and in `other`, ascending.
    pub(super) fn slots_in(&self, other: &Slots) -> Vec<u32> {
        let mut slots = Vec::new();
        for (block, (&bits, &others)) in self.bits.iter().zip(&other.bits).enumerate() {
            let mut bits = bits & others;
            while bits != 0 {
                slots.push(block as u32 * 64 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        slots
    }
}
