//! Autocomplete: the titles of the catalogue in memory, matched under the search's word rules.
//!
//! `GET /v1/search/suggest` is asked at every key press. Through the full-text index a
//! suggestion over 100,000 titles cost 145–198 µs of one core, most of it per-query fixed
//! cost: each typo and prefix form fills a bit set over every document, and long postings
//! lists are decoded block by block (`docs/PERFORMANCE-JOURNAL.md`, "Suggestions in memory").
//! [`Titles`] holds only what a suggestion reads:
//!
//! - each item's title words and apostrophe-joined words, as word ids (a forward index), and
//!   its year;
//! - one postings list per word (slots, ascending) and per year;
//! - a dictionary of the title words ([`tantivy_fst::Map`]) that the typo and prefix automata
//!   walk: tantivy's own Levenshtein automata ([`FuzzyTermQuery::automaton`]), so a typo is the
//!   same typo in both.
//!
//! **The same rules as a search over titles** ([`super::query`]): every word must match —
//! exactly (BM25, k1 1.2, b 0.75, weighed [`TITLE_BOOST`]), joined without its apostrophe (as
//! exactly), with typos when no title holds it as typed (a constant 1), or as a prefix for the
//! last word (a constant 1); a year in the query adds [`YEAR_BOOST`] to the items of that year;
//! digits are optional beside other words; a word held by more than [`COMMON`] of the titles
//! is left out beside telling words. The caller retries with fewer words when nothing matches
//! all of them, as a search does.
//!
//! **Evaluation.** The required word whose matches are fewest gives the candidates; each
//! candidate's own words are checked against the other words' forms, so a query touches the
//! smallest postings list and a few words per candidate, never the longest lists.
//!
//! **Writes** land at the search index's commit ([`Titles::apply`]): a replaced or deleted item's
//! slot is marked dead and its words' counts drop at once; the dead slots are dropped when they
//! outnumber the live ones. The dictionary is rebuilt when a commit brings a new word.
//!
//! [`FuzzyTermQuery::automaton`]: tantivy::query::FuzzyTermQuery::automaton
//! [`TITLE_BOOST`]: super::query::TITLE_BOOST
//! [`YEAR_BOOST`]: super::query::YEAR_BOOST
//! [`COMMON`]: super::query::COMMON

use std::collections::HashMap;

use marquee_schemas::Item;
use parking_lot::RwLock;
use tantivy::Term;
use tantivy::query::FuzzyTermQuery;
use tantivy::schema::Field;
use tantivy_fst::{IntoStreamer, Map, Streamer};

use super::query::{COMMON, TITLE_BOOST, Word, YEAR_BOOST, edits, is_digits, year};
use super::schema::{joined_words, words};
use sets::{Cursor, Slots, within};

mod sets;

/// BM25's term-frequency saturation and length normalisation, as tantivy's.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// Dead slots kept before a compaction, at least.
const MIN_DEAD: usize = 1024;

/// What a suggestion reads of one catalogue entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Titled {
    pub title: Option<String>,
    pub year: Option<i32>,
}

impl Titled {
    pub fn of(item: &Item) -> Titled {
        Titled {
            title: item.title.clone(),
            year: item.year,
        }
    }
}

/// The titles of the catalogue. Cheap to read concurrently.
#[derive(Default)]
pub struct Titles {
    state: RwLock<State>,
}

impl std::fmt::Debug for Titles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.read();
        f.debug_struct("Titles")
            .field("live", &state.live)
            .field("slots", &state.docs.len())
            .field("words", &state.title.words.len())
            .finish()
    }
}

impl Titles {
    /// The titles of `entries` (item number, entry).
    pub fn build<'a>(entries: impl IntoIterator<Item = (u32, &'a Item)>) -> Titles {
        let mut state = State::default();
        for (number, item) in entries {
            state.add(number, &Titled::of(item));
        }
        state.index_words();
        Titles {
            state: RwLock::new(state),
        }
    }

    /// Replaces every title with those of `entries`.
    pub fn replace_all<'a>(&self, entries: impl IntoIterator<Item = (u32, &'a Item)>) {
        let built = Titles::build(entries).state.into_inner();
        *self.state.write() = built;
    }

    /// Applies catalogue changes in order: an entry for item `number`, or `None` (deleted).
    pub fn apply(&self, changes: Vec<(u32, Option<Titled>)>) {
        if changes.is_empty() {
            return;
        }
        let mut state = self.state.write();
        for (number, entry) in changes {
            state.remove(number);
            if let Some(entry) = entry {
                state.add(number, &entry);
            }
        }
        let dead = state.docs.len() - state.live;
        if dead > MIN_DEAD && dead > state.live {
            state.compact();
        }
        state.index_words();
    }

    /// The best `fetch` items (0: all) whose titles match `words` (all of them, or any:
    /// `all`), as (text score, item number), best first; equal scores in the order the items
    /// came.
    pub fn find(&self, words: &[Word], all: bool, fetch: usize) -> Vec<(f32, u32)> {
        self.state.read().find(words, all, fetch)
    }

    /// Whether any title matches `word` alone.
    pub fn matches(&self, word: &Word) -> bool {
        let state = self.state.read();
        let clauses = state.clauses(std::slice::from_ref(word), true);
        clauses.iter().all(|clause| state.any_match(clause))
    }
}

/// A field's words: title words, or the words joined without their apostrophe.
#[derive(Default)]
struct Words {
    ids: HashMap<String, u32>,
    /// By id.
    words: Vec<String>,
    /// By id: the slots holding the word, ascending, once per occurrence (dead ones too,
    /// until a compaction).
    postings: Vec<Vec<u32>>,
    /// By id: how many live items hold the word.
    live: Vec<u32>,
    /// The live items' words, in all.
    tokens: u64,
}

impl Words {
    fn id(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.ids.get(word) {
            return id;
        }
        let id = self.words.len() as u32;
        self.ids.insert(word.to_owned(), id);
        self.words.push(word.to_owned());
        self.postings.push(Vec::new());
        self.live.push(0);
        id
    }

    /// Records the words of a new item in `slot`; returns their ids, in the text's order.
    fn add(&mut self, text: &str, slot: u32) -> Box<[u32]> {
        let ids: Box<[u32]> = words(text).iter().map(|word| self.id(word)).collect();
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        for (at, &id) in sorted.iter().enumerate() {
            self.postings[id as usize].push(slot);
            if at == 0 || sorted[at - 1] != id {
                self.live[id as usize] += 1;
            }
        }
        self.tokens += ids.len() as u64;
        ids
    }

    fn remove(&mut self, ids: &[u32]) {
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        for id in distinct {
            self.live[id as usize] -= 1;
        }
        self.tokens -= ids.len() as u64;
    }

    /// The id of `word` if a live item holds it.
    fn live_id(&self, word: &str) -> Option<u32> {
        self.ids
            .get(word)
            .copied()
            .filter(|&id| self.live[id as usize] > 0)
    }

    /// BM25's weight of word `id`: its inverse document frequency among `documents` items,
    /// times `boost` and `1 + k1`.
    fn weight(&self, id: u32, documents: usize, boost: f32) -> f32 {
        let held = self.live[id as usize] as f32;
        let documents = documents as f32;
        let idf = (1.0 + (documents - held + 0.5) / (held + 0.5)).ln();
        boost * idf * (1.0 + K1)
    }

    /// The mean number of words per item.
    fn mean_length(&self, documents: usize) -> f32 {
        (self.tokens as f32 / documents.max(1) as f32).max(f32::MIN_POSITIVE)
    }
}

/// One item's slot: its words are `State::ids[start..]`, the title's then the joined ones.
struct Doc {
    number: u32,
    start: usize,
    title: u32,
    joined: u32,
}

impl Doc {
    fn title<'a>(&self, ids: &'a [u32]) -> &'a [u32] {
        &ids[self.start..self.start + self.title as usize]
    }

    fn joined<'a>(&self, ids: &'a [u32]) -> &'a [u32] {
        let start = self.start + self.title as usize;
        &ids[start..start + self.joined as usize]
    }
}

/// What scoring reads of each slot, one array per field so that a query walking slots in
/// order reads memory in order.
#[derive(Default)]
struct Lengths {
    /// The title's words (at most 255 counted).
    title: Vec<u8>,
    /// The joined words.
    joined: Vec<u8>,
    /// The year, or `i32::MIN`.
    year: Vec<i32>,
}

impl Lengths {
    fn push(&mut self, doc: &Doc, year: Option<i32>) {
        let length = |words: u32| u8::try_from(words).unwrap_or(u8::MAX);
        self.title.push(length(doc.title));
        self.joined.push(length(doc.joined));
        self.year.push(year.unwrap_or(i32::MIN));
    }
}

#[derive(Default)]
struct State {
    title: Words,
    joined: Words,
    /// The title words (word → id) for the automata; rebuilt when it holds fewer words than
    /// `title`.
    dictionary: Option<Map<Vec<u8>>>,
    years: HashMap<i32, Vec<u32>>,
    docs: Vec<Doc>,
    /// The slots' word ids, one slot after the other: no allocation per item.
    ids: Vec<u32>,
    lengths: Lengths,
    /// The live slots.
    alive: Slots,
    /// Each item's live slot.
    slots: HashMap<u32, u32>,
    live: usize,
}

/// The part of a query one word makes: its forms and whether it must match.
struct Clause {
    required: bool,
    /// The title word typed exactly: (id, BM25 weight).
    exact: Option<(u32, f32)>,
    /// The word as an apostrophe-joined title word: (id, BM25 weight).
    joined: Option<(u32, f32)>,
    /// Title word ids within the allowed typos, ascending.
    typo: Option<Vec<u32>>,
    /// Title word ids the word begins (under the same typo rule), ascending.
    prefix: Option<Vec<u32>>,
    year: Option<i32>,
}

impl State {
    fn add(&mut self, number: u32, entry: &Titled) {
        let slot = self.docs.len() as u32;
        let (title, joined) = match &entry.title {
            Some(title) => (
                self.title.add(title, slot),
                self.joined.add(&joined_words(title), slot),
            ),
            None => (Box::default(), Box::default()),
        };
        if let Some(year) = entry.year {
            self.years.entry(year).or_default().push(slot);
        }
        let doc = Doc {
            number,
            start: self.ids.len(),
            title: title.len() as u32,
            joined: joined.len() as u32,
        };
        self.ids.extend_from_slice(&title);
        self.ids.extend_from_slice(&joined);
        self.lengths.push(&doc, entry.year);
        self.docs.push(doc);
        self.slots.insert(number, slot);
        self.alive.insert(slot);
        self.live += 1;
    }

    fn remove(&mut self, number: u32) {
        let Some(slot) = self.slots.remove(&number) else {
            return;
        };
        let doc = &self.docs[slot as usize];
        self.alive.remove(slot);
        self.title.remove(doc.title(&self.ids));
        self.joined.remove(doc.joined(&self.ids));
        self.live -= 1;
    }

    /// Drops the dead slots: the live items keep their order and their word ids; the
    /// postings lists are made again from them.
    fn compact(&mut self) {
        let docs = std::mem::take(&mut self.docs);
        let ids = std::mem::take(&mut self.ids);
        let years = std::mem::take(&mut self.lengths.year);
        for postings in self
            .title
            .postings
            .iter_mut()
            .chain(self.joined.postings.iter_mut())
        {
            postings.clear();
        }
        self.years.clear();
        self.slots.clear();
        let alive = std::mem::replace(&mut self.alive, Slots::with_capacity(0));
        self.lengths = Lengths::default();
        for (old, doc) in docs.into_iter().enumerate() {
            if !alive.contains(old as u32) {
                continue;
            }
            let slot = self.docs.len() as u32;
            let (title, joined) = (doc.title(&ids), doc.joined(&ids));
            for (words, held) in [(&mut self.title, title), (&mut self.joined, joined)] {
                let mut sorted = held.to_vec();
                sorted.sort_unstable();
                for id in sorted {
                    words.postings[id as usize].push(slot);
                }
            }
            let start = self.ids.len();
            self.ids.extend_from_slice(title);
            self.ids.extend_from_slice(joined);
            let year = Some(years[old]).filter(|&year| year != i32::MIN);
            if let Some(year) = year {
                self.years.entry(year).or_default().push(slot);
            }
            let doc = Doc { start, ..doc };
            self.lengths.push(&doc, year);
            self.slots.insert(doc.number, slot);
            self.alive.insert(slot);
            self.docs.push(doc);
        }
    }

    /// Builds the dictionary if words were added since (words are never dropped: a word no
    /// live title holds any more stays, and the automata's matches skip it).
    fn index_words(&mut self) {
        let words = self.title.words.len();
        if self
            .dictionary
            .as_ref()
            .is_some_and(|dictionary| dictionary.len() == words)
        {
            return;
        }
        let mut sorted: Vec<(&str, u64)> = self
            .title
            .words
            .iter()
            .enumerate()
            .map(|(id, word)| (word.as_str(), id as u64))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.dictionary = Some(Map::from_iter(sorted).expect("sorted distinct words build a map"));
    }

    /// The live title words `automaton` accepts, ascending by id.
    fn expand(&self, query: FuzzyTermQuery) -> Vec<u32> {
        let (Some(dictionary), Ok(automaton)) = (&self.dictionary, query.automaton()) else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        let mut stream = dictionary.search(automaton).into_stream();
        while let Some((_, id)) = stream.next() {
            let id = id as u32;
            if self.title.live[id as usize] > 0 {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids
    }

    /// The share of the live items whose title holds `word` as it is.
    fn title_share(&self, word: &str) -> f64 {
        self.title.live_id(word).map_or(0.0, |id| {
            f64::from(self.title.live[id as usize]) / self.live.max(1) as f64
        })
    }

    /// The clauses of `words`, as [`super::query::build`] makes them for titles.
    fn clauses(&self, words: &[Word], all: bool) -> Vec<Clause> {
        let digits_only = words.iter().all(|word| is_digits(&word.text));
        let common = |word: &Word| {
            !word.prefix && !is_digits(&word.text) && self.title_share(&word.text) > COMMON
        };
        let telling = words
            .iter()
            .filter(|word| !is_digits(&word.text) && !common(word))
            .count();
        // Any field the automata need: tantivy builds them from a term's text.
        let field = Field::from_field_id(0);
        words
            .iter()
            .filter(|word| !(telling > 0 && common(word)))
            .map(|word| {
                let optional = !digits_only && is_digits(&word.text);
                let exact = self.title.live_id(&word.text);
                let edits = if exact.is_some() {
                    0
                } else {
                    edits(&word.text)
                };
                let term = || Term::from_field_text(field, &word.text);
                // The last word's prefix automaton finds its typo forms too (a word within the
                // edits of the typed one begins with itself): they are told apart by their
                // distance, without a second automaton.
                let prefix = word
                    .prefix
                    .then(|| self.expand(FuzzyTermQuery::new_prefix(term(), edits, true)));
                let typo = (edits > 0).then(|| match &prefix {
                    Some(ids) => ids
                        .iter()
                        .copied()
                        .filter(|&id| within(&word.text, &self.title.words[id as usize], edits))
                        .collect(),
                    None => self.expand(FuzzyTermQuery::new(term(), edits, true)),
                });
                Clause {
                    required: all && !optional,
                    typo,
                    prefix,
                    exact: exact.map(|id| (id, self.title.weight(id, self.live, TITLE_BOOST))),
                    joined: self
                        .joined
                        .live_id(&word.text)
                        .map(|id| (id, self.joined.weight(id, self.live, TITLE_BOOST))),
                    year: year(&word.text).and_then(|year| i32::try_from(year).ok()),
                }
            })
            .collect()
    }

    /// The postings lists of every item a clause matches (they may overlap).
    fn candidates<'a>(&'a self, clause: &'a Clause) -> Vec<&'a [u32]> {
        let mut lists: Vec<&[u32]> = Vec::new();
        if let Some((id, _)) = clause.exact {
            lists.push(&self.title.postings[id as usize]);
        }
        if let Some((id, _)) = clause.joined {
            lists.push(&self.joined.postings[id as usize]);
        }
        for ids in clause.typo.iter().chain(&clause.prefix) {
            lists.extend(
                ids.iter()
                    .map(|&id| self.title.postings[id as usize].as_slice()),
            );
        }
        if let Some(slots) = clause.year.and_then(|year| self.years.get(&year)) {
            lists.push(slots);
        }
        lists
    }

    /// Adds each clause's score of `slots` (ascending) to `scores`, term at a time: each
    /// form walks its postings lists beside the slots.
    fn score(&self, clauses: &[Clause], slots: &[u32], scores: &mut [f32]) {
        for clause in clauses {
            for (words, lengths, form) in [
                (&self.title, &self.lengths.title, clause.exact),
                (&self.joined, &self.lengths.joined, clause.joined),
            ] {
                let Some((id, weight)) = form else { continue };
                let mean = words.mean_length(self.live);
                let mut postings = Cursor::new(&words.postings[id as usize]);
                for (score, &slot) in scores.iter_mut().zip(slots) {
                    let frequency = postings.count(slot) as f32;
                    if frequency > 0.0 {
                        let length = f32::from(lengths[slot as usize]) / mean;
                        *score += weight * frequency / (frequency + K1 * (1.0 - B + B * length));
                    }
                }
            }
            for ids in clause.typo.iter().chain(&clause.prefix) {
                let lists: Vec<&[u32]> = ids
                    .iter()
                    .map(|&id| self.title.postings[id as usize].as_slice())
                    .collect();
                for (score, held) in scores.iter_mut().zip(self.held(slots, &lists)) {
                    if held {
                        *score += 1.0;
                    }
                }
            }
            if let Some(year) = clause.year {
                for (score, &slot) in scores.iter_mut().zip(slots) {
                    if self.lengths.year[slot as usize] == year {
                        *score += YEAR_BOOST;
                    }
                }
            }
        }
    }

    /// Whether a live item matches a required `clause`.
    fn any_match(&self, clause: &Clause) -> bool {
        self.candidates(clause)
            .iter()
            .any(|list| list.iter().any(|&slot| self.alive.contains(slot)))
    }

    /// The live slots matching every required clause (or, with none, any clause), ascending:
    /// the required clause matching fewest gives the candidates, the others filter them by
    /// their postings lists.
    fn matching(&self, clauses: &[Clause]) -> Vec<u32> {
        let mut required: Vec<Vec<&[u32]>> = clauses
            .iter()
            .filter(|clause| clause.required)
            .map(|clause| self.candidates(clause))
            .collect();
        required.sort_by_key(|lists| lists.iter().map(|list| list.len()).sum::<usize>());
        let mut slots = match required.first() {
            Some(lists) => self.live_union(lists),
            None => self.live_union(
                &clauses
                    .iter()
                    .flat_map(|clause| self.candidates(clause))
                    .collect::<Vec<_>>(),
            ),
        };
        for lists in required.iter().skip(1) {
            if slots.is_empty() {
                break;
            }
            let held = self.held(&slots, lists);
            let mut held = held.into_iter();
            slots.retain(|_| held.next().unwrap_or(false));
        }
        slots
    }

    /// The live slots of `lists`, each once, ascending.
    fn live_union(&self, lists: &[&[u32]]) -> Vec<u32> {
        match lists {
            [] => Vec::new(),
            [list] => {
                let mut slots = Vec::with_capacity(list.len());
                for &slot in *list {
                    if slots.last() != Some(&slot) && self.alive.contains(slot) {
                        slots.push(slot);
                    }
                }
                slots
            }
            lists => self.union_set(lists).slots_in(&self.alive),
        }
    }

    /// Whether each of `slots` (ascending) is in one of `lists`. Few slots beside long lists
    /// gallop through the lists; otherwise a bit per slot is set from the lists (a gallop
    /// through a list as long as the slots mispredicts a branch at every step).
    fn held(&self, slots: &[u32], lists: &[&[u32]]) -> Vec<bool> {
        let total: usize = lists.iter().map(|list| list.len()).sum();
        if slots.len() * lists.len() * 16 < total {
            let mut cursors: Vec<Cursor> = lists.iter().map(|list| Cursor::new(list)).collect();
            slots
                .iter()
                .map(|&slot| cursors.iter_mut().any(|cursor| cursor.count(slot) > 0))
                .collect()
        } else {
            let set = self.union_set(lists);
            slots.iter().map(|&slot| set.contains(slot)).collect()
        }
    }

    fn union_set(&self, lists: &[&[u32]]) -> Slots {
        let mut set = Slots::with_capacity(self.docs.len());
        for list in lists {
            for &slot in *list {
                set.insert(slot);
            }
        }
        set
    }

    fn find(&self, words: &[Word], all: bool, fetch: usize) -> Vec<(f32, u32)> {
        let clauses = self.clauses(words, all);
        let slots = self.matching(&clauses);
        let mut scores = vec![0.0f32; slots.len()];
        self.score(&clauses, &slots, &mut scores);
        let mut hits: Vec<(f32, u32)> = scores.into_iter().zip(slots).collect();
        let best_first = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if hits.len() > fetch && fetch > 0 {
            hits.select_nth_unstable_by(fetch - 1, best_first);
            hits.truncate(fetch);
        }
        hits.sort_unstable_by(best_first);
        hits.into_iter()
            .map(|(score, slot)| (score, self.docs[slot as usize].number))
            .collect()
    }
}

#[cfg(test)]
mod tests;
