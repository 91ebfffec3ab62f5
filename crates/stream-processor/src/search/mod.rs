//! Catalogue search: typo-tolerant, prefix-matching full-text search of titles, genres and tags,
//! on [`tantivy`], re-ranked for a viewer by the model.
//!
//! **A read model of the catalogue.** The catalogue in the state store is the source of truth;
//! the index in `<data-dir>/search` is derived from it and can be deleted. Each commit records
//! the index's layout version and a fingerprint of the catalogue it holds (the wrapping sum of
//! a hash of every entry, [`schema::item_hash`]). At start, [`SearchIndex::open`] compares them
//! with the catalogue just loaded: a missing directory, another version, a catalogue written
//! without the index (a replay, a restore, a crash between the two writes) — any difference
//! rebuilds the index from the catalogue. Erasing a user touches nothing here: it holds items
//! only.
//!
//! **Writes.** Catalogue upserts go through [`SearchWriter`], taken before the catalogue is
//! written and committed after the item table has the entries: one writer at a time, so the
//! index and the fingerprint follow the catalogue's order, and an upsert is searchable when it
//! is answered (the reader reloads after each commit, and follows background merges; segments
//! merge from two of a size, see `merge_policy`).
//!
//! **Queries** ([`query`] builds them): every word must match, exactly (BM25), with typos or,
//! for the last word, as a prefix; when no item matches every word, the words that match
//! something on their own must all match, and failing that any word. Hits whose text scores are within [`TIE`] of each other are one tier; within a
//! tier the viewer's affinity (their vector's inner product with the item's, the same units as
//! the recommendations' embedding part) orders the hits when a viewer is named and known, and
//! otherwise the number of events on the item. The answer counts the matches per genre and per
//! decade (facets).
//!
//! **Suggestions** (autocomplete, [`SearchIndex::suggest`]) follow the same word rules over
//! titles only, but read [`suggest::Titles`]: the titles in memory, built at open from the
//! catalogue and changed at each commit of the writer. A suggestion is asked at every key
//! press, and through tantivy most of its cost was per query, not per match (the module's
//! documentation has the figures).

pub mod query;
pub mod schema;
pub mod suggest;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use marquee_schemas::Item;
use marquee_vector_store::{ItemTable, Table};
use parking_lot::{Mutex, MutexGuard};
use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::indexer::LogMergePolicy;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy};
use tracing::info;

use crate::error::{Error, Result};
use crate::telemetry::Metrics;
pub use query::Filters;
use schema::{Fields, document, id_term, item_hash};
use suggest::{Titled, Titles};

/// The layout version of the index; another version is rebuilt at start.
pub const VERSION: u32 = 3;

/// Text scores within this fraction of a tier's best are one tier, ordered by the viewer's
/// affinity (or popularity) rather than by text.
pub const TIE: f32 = 0.02;

/// The indexing memory budget: tantivy's minimum for one thread is 15 MB.
const WRITER_BYTES: usize = 32_000_000;

/// Most hits read beyond the asked count, so that the tiers can be re-ranked.
const RERANK_MARGIN: usize = 30;

/// How many times more hits a filtered search fetches.
const FILTERED_FETCH: usize = 10;

/// A search request, validated by the caller.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub text: String,
    pub count: usize,
    pub filters: Filters,
    /// The moment the licence windows are read at (milliseconds since the epoch): an item
    /// hidden, deleted or outside its window is not found.
    pub now: i64,
    /// A filter expression every item found passes.
    pub filter: Option<crate::rules::Filter>,
}

/// One item found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub item: u32,
    pub item_id: String,
    pub title: Option<String>,
    pub genres: Vec<String>,
    pub year: Option<i32>,
    /// The text relevance (BM25 and the typo, prefix and year parts).
    pub relevance: f32,
}

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// Best first.
    pub items: Vec<Found>,
    /// How many items matched in all.
    pub total: usize,
    /// Whether every word had to match (false: no item matched them all; these match some).
    pub all_words: bool,
    /// Matches per genre, most first.
    pub genres: Vec<(String, u64)>,
    /// Matches per decade (`1990`), oldest first.
    pub decades: Vec<(i32, u64)>,
    /// Whether a viewer's affinity ordered the tiers (else popularity did).
    pub personalised: bool,
}

/// The search index. Cheap to clone.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<Writing>,
    /// The titles, for suggestions.
    titles: Titles,
    metrics: Metrics,
}

struct Writing {
    writer: IndexWriter,
    /// The fingerprint of the catalogue the index holds once the pending changes commit.
    fingerprint: u64,
    /// The titles' changes, applied at the commit.
    titles: Vec<(u32, Option<Titled>)>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Merges as soon as two segments of a size class exist (tantivy's default waits for eight),
/// and segments whose deleted documents reach a third: every query pays per segment (a
/// catalogue loaded 1,000 items a commit held nine segments, and searches cost twice as much),
/// and a catalogue is small to rewrite (100,000 items: 2.5 MB).
fn merge_policy() -> LogMergePolicy {
    let mut policy = LogMergePolicy::default();
    policy.set_min_num_segments(2);
    policy.set_del_docs_ratio_before_merge(0.33);
    policy
}

/// The fingerprint of the catalogue in `items`.
fn fingerprint(items: &ItemTable) -> u64 {
    catalogued(&items.read()).fold(0u64, |sum, (number, item)| {
        sum.wrapping_add(item_hash(item, number))
    })
}

/// The catalogued items of `table`: (number, entry).
fn catalogued(table: &Table) -> impl Iterator<Item = (u32, &Item)> + '_ {
    table
        .numbers()
        .filter_map(|number| Some((number, &**table.catalogue(number)?)))
}

/// What a commit records: the version and the fingerprint.
fn payload(fingerprint: u64) -> String {
    format!("marquee-search v{VERSION} catalogue {fingerprint:016x}")
}

impl SearchIndex {
    /// Opens the index in `path`, rebuilding it from the catalogue in `items` when it is
    /// missing, of another version or of another catalogue. Blocking.
    pub fn open(path: &Path, items: &ItemTable, metrics: Metrics) -> Result<SearchIndex> {
        let search_error = |source| Error::Search {
            path: path.to_owned(),
            source,
        };
        let existing = open_existing(path);
        let (index, held) = match existing {
            Some((index, held)) => (index, held),
            None => {
                if path.exists() {
                    std::fs::remove_dir_all(path).map_err(|source| Error::Io {
                        path: path.to_owned(),
                        source,
                    })?;
                }
                std::fs::create_dir_all(path).map_err(|source| Error::Io {
                    path: path.to_owned(),
                    source,
                })?;
                let (schema, _) = schema::schema();
                let index = Index::create_in_dir(path, schema).map_err(search_error)?;
                (index, None)
            }
        };
        SearchIndex::serve(index, held, path, items, metrics)
    }

    /// An index in memory only, built from the catalogue in `items`: for an encrypted data
    /// directory, where no file may hold a title in plain text. It is rebuilt at every start
    /// (the cost is in `docs/PERFORMANCE.md`, "Encryption at rest").
    pub fn in_memory(items: &ItemTable, metrics: Metrics) -> Result<SearchIndex> {
        let (schema, _) = schema::schema();
        SearchIndex::serve(
            Index::create_in_ram(schema),
            None,
            Path::new("(in memory)"),
            items,
            metrics,
        )
    }

    /// Serves `index`, which holds the catalogue of fingerprint `held` (`None`: nothing yet),
    /// rebuilt first from `items` unless that is theirs.
    fn serve(
        index: Index,
        held: Option<u64>,
        path: &Path,
        items: &ItemTable,
        metrics: Metrics,
    ) -> Result<SearchIndex> {
        let search_error = |source| Error::Search {
            path: path.to_owned(),
            source,
        };
        let expected = fingerprint(items);
        index
            .tokenizers()
            .register(schema::ANALYZER, schema::analyzer());
        let fields = schema::fields(&index).map_err(search_error)?;
        let writer: IndexWriter = index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(search_error)?;
        writer.set_merge_policy(Box::new(merge_policy()));
        // Reloaded after each commit of ours, so an upsert is searchable when it is answered;
        // and when a background merge changes the segments.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(search_error)?;
        let search = SearchIndex {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                reader,
                fields,
                writer: Mutex::new(Writing {
                    writer,
                    fingerprint: held.unwrap_or(0),
                    titles: Vec::new(),
                }),
                titles: Titles::default(),
                metrics,
            }),
        };
        if held != Some(expected) {
            search.rebuild(items)?;
        } else {
            search.inner.titles.replace_all(catalogued(&items.read()));
        }
        search.set_documents();
        Ok(search)
    }

    fn error(&self, source: tantivy::TantivyError) -> Error {
        Error::Search {
            path: self.inner.path.clone(),
            source,
        }
    }

    /// Replaces the index's documents with the catalogue in `items`.
    pub fn rebuild(&self, items: &ItemTable) -> Result<()> {
        let started = Instant::now();
        let mut writing = self.inner.writer.lock();
        writing
            .writer
            .delete_all_documents()
            .map_err(|error| self.error(error))?;
        let mut fingerprint = 0u64;
        let mut count = 0usize;
        {
            let table = items.read();
            for (number, item) in catalogued(&table) {
                writing
                    .writer
                    .add_document(document(&self.inner.fields, item, number))
                    .map_err(|error| self.error(error))?;
                fingerprint = fingerprint.wrapping_add(item_hash(item, number));
                count += 1;
            }
            self.inner.titles.replace_all(catalogued(&table));
        }
        writing.titles.clear();
        writing.fingerprint = fingerprint;
        self.commit(&mut writing)?;
        info!(
            items = count,
            seconds = started.elapsed().as_secs_f64(),
            "search index built from the catalogue"
        );
        Ok(())
    }

    /// How many segments the index reads now.
    pub fn segments(&self) -> usize {
        self.inner.reader.searcher().segment_readers().len()
    }

    /// The writer, for one catalogue upsert; held until [`SearchWriter::commit`].
    pub fn writer(&self) -> SearchWriter<'_> {
        SearchWriter {
            search: self,
            writing: self.inner.writer.lock(),
        }
    }

    fn commit(&self, writing: &mut Writing) -> Result<()> {
        let mut prepared = writing
            .writer
            .prepare_commit()
            .map_err(|error| self.error(error))?;
        prepared.set_payload(&payload(writing.fingerprint));
        prepared.commit().map_err(|error| self.error(error))?;
        self.inner
            .reader
            .reload()
            .map_err(|error| self.error(error))?;
        self.inner.titles.apply(std::mem::take(&mut writing.titles));
        self.set_documents();
        Ok(())
    }

    fn set_documents(&self) {
        let documents = self.inner.reader.searcher().num_docs();
        self.inner
            .metrics
            .search_documents
            .set(i64::try_from(documents).unwrap_or(i64::MAX));
    }

    /// The items matching `request`, best first, with the facets of all matches; `affinity`
    /// gives the viewer's score of each item number, or `None` (no viewer, or one the model
    /// knows nothing of).
    pub fn search(
        &self,
        request: &SearchRequest,
        items: &ItemTable,
        affinity: &dyn Fn(&[u32]) -> Option<Vec<f32>>,
    ) -> Result<Answer> {
        let started = Instant::now();
        let words = query::parse(&request.text);
        let searcher = self.inner.reader.searcher();
        // A filter drops hits after the text ranked them: fetch more to have enough left.
        let fetch = (request.count + RERANK_MARGIN)
            * if request.filter.is_some() {
                FILTERED_FETCH
            } else {
                1
            };
        let mut answer = Answer::default();
        let documents = searcher.num_docs().max(1) as f64;
        let title_share = |term: &tantivy::Term| {
            searcher
                .doc_freq(term)
                .map_or(0.0, |n| n as f64 / documents)
        };
        let build = |words: &[query::Word], all: bool| {
            query::build(
                &self.inner.fields,
                words,
                all,
                &request.filters,
                &title_share,
            )
        };
        // Every word; else the words that match something on their own (a typo beyond the
        // rules, a word no title has); else any word. Asking for any word first would score
        // every item holding a common word ("the"): 5 ms on 100,000 items.
        let mut hits = self.collect(&searcher, &*build(&words, true), fetch, &mut answer)?;
        answer.all_words = true;
        if hits.is_empty() && words.len() > 1 {
            answer.all_words = false;
            let mut matching = Vec::new();
            for word in &words {
                let alone = build(std::slice::from_ref(word), true);
                if alone.count(&searcher).map_err(|error| self.error(error))? > 0 {
                    matching.push(word.clone());
                }
            }
            if !matching.is_empty() && matching.len() < words.len() {
                hits = self.collect(&searcher, &*build(&matching, true), fetch, &mut answer)?;
            }
            if hits.is_empty() && !matching.is_empty() {
                hits = self.collect(&searcher, &*build(&words, false), fetch, &mut answer)?;
            }
        }
        let hits = self.numbers(&searcher, hits)?;
        let mut listed = listed(hits, items, request);
        let numbers: Vec<u32> = listed.iter().map(|hit| hit.item).collect();
        let personal = if numbers.is_empty() {
            None
        } else {
            affinity(&numbers)
        };
        answer.personalised = personal.is_some();
        if let Some(scores) = personal {
            for (hit, score) in listed.iter_mut().zip(scores) {
                hit.key = score;
            }
        }
        answer.items = found(rerank(listed, request.count), items);
        self.observe("search", started, answer.items.is_empty());
        Ok(answer)
    }

    /// Titles for autocomplete: the same rules as [`SearchIndex::search`] over titles only
    /// (held in memory, [`suggest`]), without facets, ordered by popularity within a tier.
    pub fn suggest(
        &self,
        text: &str,
        count: usize,
        items: &ItemTable,
        now: i64,
    ) -> Result<Vec<Found>> {
        let started = Instant::now();
        let titles = &self.inner.titles;
        let words = query::parse(text);
        let fetch = count + RERANK_MARGIN;
        // The retries of a search: the words that match alone, then any word.
        let mut hits = titles.find(&words, true, fetch);
        if hits.is_empty() && words.len() > 1 {
            let matching: Vec<query::Word> = words
                .iter()
                .filter(|word| titles.matches(word))
                .cloned()
                .collect();
            if !matching.is_empty() && matching.len() < words.len() {
                hits = titles.find(&matching, true, fetch);
            }
            if hits.is_empty() && !matching.is_empty() {
                hits = titles.find(&words, false, fetch);
            }
        }
        let request = SearchRequest {
            now,
            ..SearchRequest::default()
        };
        let found = found(rerank(listed(hits, items, &request), count), items);
        self.observe("suggest", started, found.is_empty());
        Ok(found)
    }

    fn observe(&self, route: &str, started: Instant, empty: bool) {
        let metrics = &self.inner.metrics;
        metrics
            .search_duration
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
        if empty {
            metrics.search_empty.with_label_values(&[route]).inc();
        }
    }
}

/// A hit the item table lists.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Listed {
    /// The text score.
    relevance: f32,
    item: u32,
    /// The order within a tier: the viewer's affinity, or the item's popularity.
    key: f32,
}

/// The `hits` (text score, item number) that the item table still has, listable at the
/// request's time and passing its filter, each keyed by its popularity: the order within a
/// tier when no viewer is named.
fn listed(hits: Vec<(f32, u32)>, items: &ItemTable, request: &SearchRequest) -> Vec<Listed> {
    let table = items.read();
    hits.into_iter()
        .filter(|&(_, number)| {
            let (Some(item_id), Some(entry)) = (table.id(number), table.catalogue(number)) else {
                return false;
            };
            table.listable(number, request.now)
                && request
                    .filter
                    .as_ref()
                    .is_none_or(|filter| filter.accepts(item_id, Some(entry)))
        })
        .map(|(relevance, item)| Listed {
            relevance,
            item,
            key: (table.event_count(item) as f32).ln_1p(),
        })
        .collect()
}

/// The catalogue entries of `hits`, in order.
fn found(hits: Vec<Listed>, items: &ItemTable) -> Vec<Found> {
    let table = items.read();
    hits.into_iter()
        .filter_map(|hit| {
            let (item_id, entry) = (table.id(hit.item)?, table.catalogue(hit.item)?);
            Some(Found {
                item: hit.item,
                item_id: item_id.to_string(),
                title: entry.title.clone(),
                genres: entry.genres.clone(),
                year: entry.year,
                relevance: hit.relevance,
            })
        })
        .collect()
}

impl SearchIndex {
    /// The item numbers of `hits`, from the fast field.
    fn numbers(
        &self,
        searcher: &tantivy::Searcher,
        hits: Vec<(f32, DocAddress)>,
    ) -> Result<Vec<(f32, u32)>> {
        let mut numbers_of = Vec::with_capacity(searcher.segment_readers().len());
        for segment in searcher.segment_readers() {
            numbers_of.push(
                segment
                    .fast_fields()
                    .u64("number")
                    .map_err(|error| self.error(error))?,
            );
        }
        Ok(hits
            .into_iter()
            .filter_map(|(relevance, address)| {
                let number = numbers_of[address.segment_ord as usize].first(address.doc_id)?;
                Some((relevance, u32::try_from(number).ok()?))
            })
            .collect())
    }

    /// The best `fetch` hits of `query`, and into `answer` the total and the facets of its
    /// matches.
    fn collect(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn tantivy::query::Query,
        fetch: usize,
        answer: &mut Answer,
    ) -> Result<Vec<(f32, DocAddress)>> {
        let top = TopDocs::with_limit(fetch).order_by_score();
        let mut facets = FacetCollector::for_field("facets");
        facets.add_facet("/genre");
        facets.add_facet("/decade");
        let (top, facets, total) = searcher
            .search(query, &(top, facets, Count))
            .map_err(|error| self.error(error))?;
        answer.genres = facets
            .get("/genre")
            .filter_map(|(facet, count)| Some((facet.to_path().get(1)?.to_string(), count)))
            .collect();
        answer
            .genres
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        answer.decades = facets
            .get("/decade")
            .filter_map(|(facet, count)| Some((facet.to_path().get(1)?.parse().ok()?, count)))
            .collect();
        answer.decades.sort();
        answer.total = total;
        Ok(top)
    }
}

/// Orders hits (best text score first) by tier, then by key within a tier (see [`TIE`]);
/// keeps `count`.
fn rerank(hits: Vec<Listed>, count: usize) -> Vec<Listed> {
    let mut tiered: Vec<(usize, Listed)> = Vec::with_capacity(hits.len());
    let mut tier = 0usize;
    let mut leader = f32::INFINITY;
    for hit in hits {
        if hit.relevance < leader * (1.0 - TIE) {
            tier += 1;
            leader = hit.relevance;
        }
        tiered.push((tier, hit));
    }
    // Stable: equal keys keep the text order.
    tiered.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.key.total_cmp(&a.1.key)));
    tiered.into_iter().take(count).map(|(_, hit)| hit).collect()
}

/// The index in `path` and the fingerprint its last commit recorded, if it opens and is of
/// this version.
fn open_existing(path: &Path) -> Option<(Index, Option<u64>)> {
    if !path.join("meta.json").exists() {
        return None;
    }
    let index = Index::open_in_dir(path).ok()?;
    let metas = index.load_metas().ok()?;
    let held = match metas.payload.as_deref() {
        // Created and never committed: an empty index of this version.
        None => None,
        Some(payload) => {
            let rest = payload.strip_prefix(&format!("marquee-search v{VERSION} catalogue "))?;
            Some(u64::from_str_radix(rest, 16).ok()?)
        }
    };
    Some((index, held))
}

/// Catalogue changes under way, written to the index on [`SearchWriter::commit`].
pub struct SearchWriter<'a> {
    search: &'a SearchIndex,
    writing: MutexGuard<'a, Writing>,
}

impl SearchWriter<'_> {
    /// Replaces the document of item `number`; `old` is its catalogue entry before (for the
    /// fingerprint).
    pub fn replace(&mut self, old: Option<&Item>, new: &Item, number: u32) -> Result<()> {
        let fields = &self.search.inner.fields;
        self.writing
            .writer
            .delete_term(id_term(fields, &new.item_id));
        self.writing
            .writer
            .add_document(document(fields, new, number))
            .map_err(|error| self.search.error(error))?;
        let writing = &mut *self.writing;
        if let Some(old) = old {
            writing.fingerprint = writing.fingerprint.wrapping_sub(item_hash(old, number));
        }
        writing.fingerprint = writing.fingerprint.wrapping_add(item_hash(new, number));
        writing.titles.push((number, Some(Titled::of(new))));
        Ok(())
    }

    /// Removes the document of item `number`, whose catalogue entry was `old` (a deletion).
    pub fn remove(&mut self, old: &Item, number: u32) {
        let fields = &self.search.inner.fields;
        self.writing
            .writer
            .delete_term(id_term(fields, &old.item_id));
        let writing = &mut *self.writing;
        writing.fingerprint = writing.fingerprint.wrapping_sub(item_hash(old, number));
        writing.titles.push((number, None));
    }

    /// Commits the changes and makes them searchable.
    pub fn commit(mut self) -> Result<()> {
        self.search.commit(&mut self.writing)
    }
}

#[cfg(test)]
mod tests;
