//! [`ItemTable`]: every item's vector, popularity and catalogue entry, in memory.
//!
//! Items are numbered densely from 0 in order of first appearance (an event or a catalogue
//! write); numbers are persisted in the `item_ids` column family and never reused. The table is
//! behind one `RwLock` (parking_lot: no poisoning, writer-fair): queries take short read locks to
//! score candidates, the processor takes one write lock per applied batch to publish the new
//! vectors. A number whose assignment was lost in a crash before it was persisted stays vacant.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use marquee_schemas::Item;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::delta::ItemDelta;
use crate::neighbours::Neighbours;
use crate::records::{ItemState, Popularity};

/// The in-memory item table. Cheap to clone.
#[derive(Clone)]
pub struct ItemTable {
    inner: Arc<RwLock<Table>>,
    dimension: usize,
}

impl std::fmt::Debug for ItemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemTable")
            .field("items", &self.inner.read().ids.len())
            .finish()
    }
}

/// The table's contents; reached through [`ItemTable::read`] and [`ItemTable::write`].
///
/// Each item has two vectors of `dimension` floats, the two sides of the factorised
/// co-occurrence (`marquee_stream_processor::factors`): its *target* vector
/// ([`Table::vector`]), what the index searches and a user's vector is scored against, and its
/// *source* vector ([`Table::source_vector`]), what the item contributes to the vector of a
/// user who engaged with it. Beside them it keeps the two vectors of the last solve, frozen
/// until the next ([`Table::basis_source`], [`Table::basis_target`]): the basis the pairs fold
/// into between solves. Stored records and deltas carry all four, in that order
/// ([`STORED_PARTS`] `· dimension` floats).
#[derive(Debug, Default)]
pub struct Table {
    dimension: usize,
    /// Item id per number; empty for a vacant number.
    ids: Vec<Arc<str>>,
    by_id: HashMap<Arc<str>, u32>,
    /// Row-major target vectors, `dimension` floats per item.
    vectors: Vec<f32>,
    /// Row-major source vectors, `dimension` floats per item.
    sources: Vec<f32>,
    /// Row-major solved vectors, source then target: `2 · dimension` floats per item.
    basis: Vec<f32>,
    /// The scales `σ` of the factorisation the vectors belong to, one per component; empty
    /// before the first solve (`marquee_stream_processor::factors`).
    factor_scales: Vec<f32>,
    /// Per content label: the mean vectors (source then target) of the items with events that
    /// carry it, what an item with only metadata starts from.
    label_vectors: HashMap<String, Vec<f32>>,
    popularity: Vec<Popularity>,
    event_counts: Vec<u64>,
    masses: Vec<f32>,
    /// Per item, `(1 + mass)^−α`: the co-occurrence normalisation as a history item, kept with
    /// the mass so queries only multiply.
    history_normalisers: Vec<f32>,
    /// Per item, `(1 + mass)^(α−1)`: the normalisation as a candidate. An array of its own: a
    /// query reads it for every candidate, in random order, and 4 bytes per item instead of 8
    /// interleaved with the history normalisers miss the cache less often.
    candidate_normalisers: Vec<f32>,
    /// The exponent `α` of [`Table::normalisers`].
    neighbour_exponent: f32,
    neighbours: Vec<Neighbours>,
    catalogue: Vec<Option<Arc<Item>>>,
    /// Per item, whether an operator deleted it: never listed again until its next upsert.
    deleted: Vec<bool>,
    /// Whether only catalogued items are listed ([`Table::set_catalogue_only`]).
    catalogue_only: bool,
    /// A bit per item: deleted, hidden, with a licence window, or (in catalogue-only mode)
    /// without a catalogue entry, so [`Table::listable`] reads the catalogue entry of those only (the entry of every candidate, a cache miss each, cost
    /// a serving node a quarter of its throughput).
    restricted: Vec<u64>,
    /// Moves with every change of what a filter can read: a catalogue entry set, an item
    /// deleted, a new item numbered ([`Table::catalogue_version`]).
    catalogue_version: u64,
    /// Per content label (genre or tag, see [`content_labels`]): the latest items catalogued
    /// with it before any positive event, newest last, at most [`COLD_ITEMS_PER_LABEL`].
    cold_by_label: HashMap<Arc<str>, VecDeque<u32>>,
    /// Per item, the content labels of its catalogue entry (none without one), computed when
    /// the entry is set: a query's content part reads its history's labels without building
    /// a string.
    labels: Vec<Box<[Arc<str>]>>,
    /// Every content label an entry has had, so that items share one string per label.
    label_names: HashSet<Arc<str>>,
}

fn normalisers(mass: f32, exponent: f32) -> (f32, f32) {
    let base = 1.0 + mass.max(0.0);
    (base.powf(-exponent), base.powf(exponent - 1.0))
}

/// Vectors of `dimension` floats in an item's stored record: source, target, and the solved
/// source and target ([`Table`]).
pub const STORED_PARTS: usize = 4;

/// Items without events remembered per content label, for content-based recommendations.
pub const COLD_ITEMS_PER_LABEL: usize = 256;

/// The content labels of a catalogue entry: its genres and tags, lower-cased, tags prefixed
/// with `tag:`.
pub fn content_labels(item: &Item) -> impl Iterator<Item = String> + '_ {
    item.genres.iter().map(|genre| genre.to_lowercase()).chain(
        item.tags
            .iter()
            .map(|tag| format!("tag:{}", tag.to_lowercase())),
    )
}

impl ItemTable {
    pub fn new(dimension: usize) -> ItemTable {
        ItemTable {
            inner: Arc::new(RwLock::new(Table {
                dimension,
                ..Table::default()
            })),
            dimension,
        }
    }

    /// Builds the table from what the state store holds.
    pub fn load(
        dimension: usize,
        item_ids: Vec<(String, u32)>,
        states: Vec<(u32, ItemState)>,
        neighbours: Vec<(u32, Neighbours)>,
        catalogue: Vec<Item>,
    ) -> ItemTable {
        let table = ItemTable::new(dimension);
        {
            let mut writer = table.write();
            for (item_id, number) in item_ids {
                writer.place(&item_id, number);
            }
            for (number, state) in states {
                writer.place(&state.item_id, number);
                let index = number as usize;
                if state.vector.len() == STORED_PARTS * dimension {
                    writer.set_stored_vector(number, &state.vector);
                }
                writer.popularity[index] = Popularity {
                    score: state.popularity,
                    at: state.popularity_at,
                };
                writer.event_counts[index] = state.event_count;
                writer.set_mass(number, state.mass);
            }
            for (number, list) in neighbours {
                if let Some(slot) = writer.neighbours.get_mut(number as usize) {
                    *slot = list;
                }
            }
            for item in catalogue {
                let number = writer.assign(&item.item_id).0;
                writer.set_catalogue(number, item);
            }
        }
        table
    }

    /// Floats per vector (per side).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.inner.read()
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.inner.write()
    }
}

impl Table {
    /// Floats per vector (per side).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Number of item numbers in use (vacant ones included).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn number(&self, item_id: &str) -> Option<u32> {
        self.by_id.get(item_id).copied()
    }

    /// The item id of `number`; `None` for a vacant or unknown number.
    pub fn id(&self, number: u32) -> Option<&Arc<str>> {
        self.ids.get(number as usize).filter(|id| !id.is_empty())
    }

    /// The item's target vector: what the index searches.
    pub fn vector(&self, number: u32) -> &[f32] {
        let start = number as usize * self.dimension;
        &self.vectors[start..start + self.dimension]
    }

    pub fn vector_mut(&mut self, number: u32) -> &mut [f32] {
        let start = number as usize * self.dimension;
        &mut self.vectors[start..start + self.dimension]
    }

    /// The item's source vector: what it adds to the vector of a user who engaged with it.
    pub fn source_vector(&self, number: u32) -> &[f32] {
        let start = number as usize * self.dimension;
        &self.sources[start..start + self.dimension]
    }

    pub fn source_vector_mut(&mut self, number: u32) -> &mut [f32] {
        let start = number as usize * self.dimension;
        &mut self.sources[start..start + self.dimension]
    }

    /// The item's source vector as the last solve gave it (see [`Table`]).
    pub fn basis_source(&self, number: u32) -> &[f32] {
        let start = number as usize * 2 * self.dimension;
        &self.basis[start..start + self.dimension]
    }

    /// The item's target vector as the last solve gave it (see [`Table`]).
    pub fn basis_target(&self, number: u32) -> &[f32] {
        let start = (number as usize * 2 + 1) * self.dimension;
        &self.basis[start..start + self.dimension]
    }

    /// The vectors as stored: source, target, solved source, solved target.
    pub fn stored_vector(&self, number: u32) -> Vec<f32> {
        let mut all = Vec::with_capacity(STORED_PARTS * self.dimension);
        all.extend_from_slice(self.source_vector(number));
        all.extend_from_slice(self.vector(number));
        let start = number as usize * 2 * self.dimension;
        all.extend_from_slice(&self.basis[start..start + 2 * self.dimension]);
        all
    }

    /// Sets the vectors from a stored record's ([`Table::stored_vector`]).
    fn set_stored_vector(&mut self, number: u32, stored: &[f32]) {
        self.change_stored_vector(number, stored, |slot, value| *slot = value);
    }

    /// Applies `change` to each float of the item's vectors with the matching one of `stored`
    /// (in the stored order: `STORED_PARTS · dimension` floats, or only the first `2 ·
    /// dimension`, the current vectors).
    fn change_stored_vector(
        &mut self,
        number: u32,
        stored: &[f32],
        change: impl Fn(&mut f32, f32),
    ) {
        let dimension = self.dimension;
        let (source, rest) = stored.split_at(dimension);
        let (target, basis) = rest.split_at(dimension);
        for (slot, value) in self.source_vector_mut(number).iter_mut().zip(source) {
            change(slot, *value);
        }
        for (slot, value) in self.vector_mut(number).iter_mut().zip(target) {
            change(slot, *value);
        }
        let start = number as usize * 2 * dimension;
        for (slot, value) in self.basis[start..start + 2 * dimension]
            .iter_mut()
            .zip(basis)
        {
            change(slot, *value);
        }
    }

    /// The scales of the current factorisation (empty before the first solve).
    pub fn factor_scales(&self) -> &[f32] {
        &self.factor_scales
    }

    pub fn set_factor_scales(&mut self, scales: Vec<f32>) {
        self.factor_scales = scales;
    }

    /// The mean vectors (source then target) of the items with events labelled `label`.
    pub fn label_vector(&self, label: &str) -> Option<&[f32]> {
        self.label_vectors.get(label).map(Vec::as_slice)
    }

    pub fn set_label_vectors(&mut self, vectors: HashMap<String, Vec<f32>>) {
        self.label_vectors = vectors;
    }

    pub fn popularity(&self, number: u32) -> Popularity {
        self.popularity[number as usize]
    }

    pub fn popularity_mut(&mut self, number: u32) -> &mut Popularity {
        &mut self.popularity[number as usize]
    }

    pub fn event_count(&self, number: u32) -> u64 {
        self.event_counts[number as usize]
    }

    pub fn event_count_mut(&mut self, number: u32) -> &mut u64 {
        &mut self.event_counts[number as usize]
    }

    /// Adds what a batch committed for `number` (see [`crate::delta`]): the same operation the
    /// `items` merge operator performs on disk.
    pub fn add_delta(&mut self, number: u32, delta: &ItemDelta) {
        // The whole record (a solve's delta) or its current half (a fold-in's).
        let length = delta.vector.len();
        if length == STORED_PARTS * self.dimension || length == 2 * self.dimension {
            self.change_stored_vector(number, &delta.vector, |slot, change| *slot += change);
        }
        let popularity = &mut self.popularity[number as usize];
        popularity.merge(delta.popularity(), delta.half_life_ms);
        popularity.score = popularity.score.max(0.0);
        let count = &mut self.event_counts[number as usize];
        *count = count.saturating_add_signed(delta.event_count);
        let mass = (self.masses[number as usize] + delta.mass).max(0.0);
        self.set_mass(number, mass);
    }

    /// Total positive weight the co-occurrence model counted for `number`.
    pub fn mass(&self, number: u32) -> f32 {
        self.masses[number as usize]
    }

    /// Sets the mass of `number` and its normalisers. An item's first positive weight takes
    /// it off its labels' cold lists: the co-occurrence ranks it from then on, and the lists
    /// stay short for the content part of every query to read.
    pub fn set_mass(&mut self, number: u32, mass: f32) {
        let was_cold = self.masses[number as usize] == 0.0;
        self.masses[number as usize] = mass;
        if was_cold && mass > 0.0 {
            for label in &self.labels[number as usize] {
                if let Some(list) = self.cold_by_label.get_mut(label) {
                    list.retain(|&item| item != number);
                }
            }
        }
        let (history, candidate) = normalisers(mass, self.neighbour_exponent);
        self.history_normalisers[number as usize] = history;
        self.candidate_normalisers[number as usize] = candidate;
    }

    /// `((1 + mass)^−α, (1 + mass)^(α−1))` of `number`.
    pub fn normalisers(&self, number: u32) -> (f32, f32) {
        (
            self.history_normalisers[number as usize],
            self.candidate_normalisers[number as usize],
        )
    }

    /// The second of [`Table::normalisers`] of every item, by number.
    pub fn candidate_normalisers(&self) -> &[f32] {
        &self.candidate_normalisers
    }

    /// Sets the exponent `α` of the normalisers and recomputes them all.
    pub fn set_neighbour_exponent(&mut self, exponent: f32) {
        self.neighbour_exponent = exponent;
        for (number, mass) in self.masses.iter().enumerate() {
            let (history, candidate) = normalisers(*mass, exponent);
            self.history_normalisers[number] = history;
            self.candidate_normalisers[number] = candidate;
        }
    }

    pub fn neighbours(&self, number: u32) -> &Neighbours {
        &self.neighbours[number as usize]
    }

    pub fn neighbours_mut(&mut self, number: u32) -> &mut Neighbours {
        &mut self.neighbours[number as usize]
    }

    pub fn catalogue(&self, number: u32) -> Option<&Arc<Item>> {
        self.catalogue.get(number as usize).and_then(Option::as_ref)
    }

    /// Sets the catalogue entry of `number` (undeleting it); an item with no positive event yet
    /// is listed under its content labels for content-based recommendations.
    pub fn set_catalogue(&mut self, number: u32, item: Item) {
        let labels: Box<[Arc<str>]> = content_labels(&item)
            .map(|label| self.label_name(label))
            .collect();
        if self.mass(number) == 0.0 {
            for label in &labels {
                let list = self.cold_by_label.entry(Arc::clone(label)).or_default();
                if !list.contains(&number) {
                    if list.len() == COLD_ITEMS_PER_LABEL {
                        list.pop_front();
                    }
                    list.push_back(number);
                }
            }
        }
        self.catalogue[number as usize] = Some(Arc::new(item));
        self.labels[number as usize] = labels;
        self.deleted[number as usize] = false;
        self.set_restricted(number);
        self.catalogue_version += 1;
    }

    /// The one shared string of `label`.
    fn label_name(&mut self, label: String) -> Arc<str> {
        if let Some(name) = self.label_names.get(label.as_str()) {
            return Arc::clone(name);
        }
        let name: Arc<str> = Arc::from(label);
        self.label_names.insert(Arc::clone(&name));
        name
    }

    /// The content labels ([`content_labels`]) of `number`'s catalogue entry; none without one.
    pub fn labels(&self, number: u32) -> &[Arc<str>] {
        self.labels
            .get(number as usize)
            .map_or(&[], |labels| labels)
    }

    /// Deletes the catalogue entry of `number` and marks it deleted (`false`: an upsert brings
    /// it back). Its vectors, popularity and pairs stay: its events are still the model's.
    pub fn set_deleted(&mut self, number: u32, deleted: bool) {
        if deleted && self.catalogue[number as usize].take().is_some() {
            for label in std::mem::take(&mut self.labels[number as usize]) {
                if let Some(list) = self.cold_by_label.get_mut(&label) {
                    list.retain(|&item| item != number);
                }
            }
        }
        self.deleted[number as usize] = deleted;
        self.set_restricted(number);
        self.catalogue_version += 1;
    }

    /// Lists only items with a catalogue entry (`true`), or every item the events name
    /// (`false`, the default of a new table). In catalogue-only mode, events on an item no
    /// catalogue holds are learned from (its pairs, popularity and vectors move as usual), but
    /// the item is not listed (recommended, similar or trending) until it is catalogued: made-up
    /// ids sent with an ingest key never reach a viewer.
    pub fn set_catalogue_only(&mut self, catalogue_only: bool) {
        self.catalogue_only = catalogue_only;
        for number in 0..self.ids.len() as u32 {
            self.set_restricted(number);
        }
        self.catalogue_version += 1;
    }

    /// Sets the restricted bit of `number` from its deletion and catalogue entry.
    fn set_restricted(&mut self, number: u32) {
        let restricted = self.deleted[number as usize]
            || match self.catalogue[number as usize].as_ref() {
                Some(entry) => {
                    entry.hidden
                        || entry.available_from.is_some()
                        || entry.available_until.is_some()
                }
                None => self.catalogue_only,
            };
        let (word, bit) = (number as usize / 64, 1u64 << (number % 64));
        if restricted {
            self.restricted[word] |= bit;
        } else {
            self.restricted[word] &= !bit;
        }
    }

    /// A number that changes whenever a catalogue entry is set, an item is deleted or a new
    /// item is numbered: what a cached filter's matches are valid for.
    pub fn catalogue_version(&self) -> u64 {
        self.catalogue_version
    }

    pub fn is_deleted(&self, number: u32) -> bool {
        self.deleted.get(number as usize).copied().unwrap_or(false)
    }

    /// Whether `number` may be listed at `now` (milliseconds since the epoch): not deleted;
    /// when catalogued, not hidden and inside its licence window ([`Item::available_at`]);
    /// when not, only outside catalogue-only mode ([`Table::set_catalogue_only`]).
    pub fn listable(&self, number: u32, now: i64) -> bool {
        let unrestricted = self
            .restricted
            .get(number as usize / 64)
            .is_none_or(|word| word & (1 << (number % 64)) == 0);
        if unrestricted {
            return true;
        }
        !self.is_deleted(number)
            && match self.catalogue(number) {
                Some(entry) => entry.available_at(now),
                None => !self.catalogue_only,
            }
    }

    /// Whether catalogue-only mode lets `number` be listed (catalogued — deleted ones
    /// included —, or the mode off): what a precomputed list (trending) keeps, so made-up
    /// items do not crowd out those that can be shown. Deleted, hidden and out-of-window items
    /// stay in such a list, filtered per request by [`Table::listable`], so an upsert that
    /// brings one back shows it at once.
    pub fn in_catalogue_scope(&self, number: u32) -> bool {
        !self.catalogue_only || self.catalogue(number).is_some() || self.is_deleted(number)
    }

    /// Items catalogued with `label` that have had no positive event yet (an item whose mass
    /// fell back to 0, by erasure, is not listed again until its next upsert; the caller
    /// checks [`Table::mass`]), newest last.
    pub fn cold_items(&self, label: &str) -> impl Iterator<Item = u32> + '_ {
        self.cold_by_label.get(label).into_iter().flatten().copied()
    }

    /// The number of `item_id`, assigning the next free one (with zero vectors: an item has
    /// none until the co-occurrence gives it one) when it has none. Returns whether it was assigned now.
    pub fn assign(&mut self, item_id: &str) -> (u32, bool) {
        if let Some(number) = self.number(item_id) {
            return (number, false);
        }
        let number = self.ids.len() as u32;
        self.place(item_id, number);
        (number, true)
    }

    /// Puts `item_id` at `number`, growing the table with vacant numbers as needed.
    fn place(&mut self, item_id: &str, number: u32) {
        let index = number as usize;
        while self.ids.len() <= index {
            self.ids.push(Arc::from(""));
            self.vectors
                .extend(std::iter::repeat_n(0.0, self.dimension));
            self.sources
                .extend(std::iter::repeat_n(0.0, self.dimension));
            self.basis
                .extend(std::iter::repeat_n(0.0, 2 * self.dimension));
            self.popularity.push(Popularity::default());
            self.event_counts.push(0);
            self.masses.push(0.0);
            let (history, candidate) = normalisers(0.0, self.neighbour_exponent);
            self.history_normalisers.push(history);
            self.candidate_normalisers.push(candidate);
            self.neighbours.push(Neighbours::default());
            self.catalogue.push(None);
            self.labels.push(Box::default());
            self.deleted.push(false);
            if self.restricted.len() * 64 < self.deleted.len() {
                self.restricted.push(0);
            }
            self.set_restricted(self.ids.len() as u32 - 1);
        }
        self.catalogue_version += 1;
        if self.ids[index].is_empty() {
            let id: Arc<str> = Arc::from(item_id);
            self.ids[index] = Arc::clone(&id);
            self.by_id.insert(id, number);
        }
    }

    /// Every live item number.
    pub fn numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids
            .iter()
            .enumerate()
            .filter(|(_, id)| !id.is_empty())
            .map(|(number, _)| number as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(item_id: &str, genres: &[&str], tags: &[&str]) -> Item {
        Item {
            item_id: item_id.into(),
            genres: genres.iter().map(|g| g.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Item::default()
        }
    }

    /// What a query's content part reads: the labels of the entry last set, one string per
    /// label, and none once the entry is deleted.
    #[test]
    fn an_items_labels_follow_its_catalogue_entry() {
        let items = ItemTable::new(2);
        let mut table = items.write();
        let (a, _) = table.assign("a");
        let (b, _) = table.assign("b");
        assert!(table.labels(a).is_empty(), "no entry, no labels");
        table.set_catalogue(a, entry("a", &["Sci-Fi"], &["Space"]));
        table.set_catalogue(b, entry("b", &["Drama", "Sci-Fi"], &[]));
        let names = |number| -> Vec<&str> { table.labels(number).iter().map(|l| &**l).collect() };
        assert_eq!(names(a), ["sci-fi", "tag:space"]);
        assert_eq!(names(b), ["drama", "sci-fi"]);
        assert!(Arc::ptr_eq(&table.labels(a)[0], &table.labels(b)[1]));
        assert_eq!(table.cold_items("sci-fi").collect::<Vec<_>>(), [a, b]);

        table.set_catalogue(a, entry("a", &["Comedy"], &[]));
        assert_eq!(table.labels(a).len(), 1);
        assert_eq!(&*table.labels(a)[0], "comedy");
        table.set_deleted(b, true);
        assert!(table.labels(b).is_empty());
        assert!(!table.cold_items("drama").any(|item| item == b));
        // A first positive event takes an item off its labels' cold lists.
        table.set_mass(a, 1.0);
        assert!(table.cold_items("comedy").next().is_none());
    }
}
