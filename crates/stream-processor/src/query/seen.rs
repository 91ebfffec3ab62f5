//! A user's list without what they have seen. The seen set is read up to [`SEEN_SCAN`]
//! entries; past it, the ranking's items are looked up by key (see
//! [`QueryEngine::recommend_ranked`]), so a list costs what its depth costs, whatever the
//! user's past.

use std::collections::HashSet;
use std::sync::Arc;

use marquee_vector_store::{HistoryEntry, Table};

use super::{QueryEngine, Ranking, Recommendation, RecommendationQuery};
use crate::error::Result;
use crate::model::ModelConfig;
use crate::strategy::Strategy;

/// Entries of a user's `seen` column family a list reads before it looks the rest up by key
/// (see the module's documentation): more than any MovieLens user has.
pub const SEEN_SCAN: usize = 5_000;

/// Rankings of one list, at most, for a user who has seen more than [`SEEN_SCAN`] items.
const SEEN_ROUNDS: u32 = 3;

/// How much deeper each of those rankings goes than the one before.
const SEEN_DEEPER: usize = 4;

/// A set of item numbers, one bit each: the filter every candidate passes through, in one load
/// (a binary search of a sorted list cost 7% of a node serving long histories). Zeroing it
/// costs one bit per item number, 12.5 KB for 100,000 items.
pub(super) struct ItemSet(Vec<u64>);

impl ItemSet {
    pub(super) fn of(items: impl IntoIterator<Item = u32>, numbers: usize) -> ItemSet {
        let mut bits = vec![0u64; numbers.div_ceil(64)];
        for item in items {
            let word = item as usize / 64;
            if word >= bits.len() {
                bits.resize(word + 1, 0);
            }
            bits[word] |= 1 << (item % 64);
        }
        ItemSet(bits)
    }

    pub(super) fn contains(&self, item: u32) -> bool {
        self.0
            .get(item as usize / 64)
            .is_some_and(|word| word & (1 << (item % 64)) != 0)
    }
}

impl QueryEngine {
    /// The list of `query` from the parts `ranking` names under `model`'s settings; with
    /// `popular`, the trending list through the same filters.
    ///
    /// The items the user has seen are read up to [`SEEN_SCAN`] ([`StateStore::seen_numbers_bounded`]).
    /// For a user who has seen more, the ranking's items are looked up by key, the seen ones
    /// taken out, and when too few are left the list is ranked again [`SEEN_DEEPER`] times
    /// deeper, at most [`SEEN_ROUNDS`] times: what a list costs is bounded by its depth, not by
    /// the user's past, and it never shows an item the user has seen.
    ///
    /// [`StateStore::seen_numbers_bounded`]: marquee_vector_store::StateStore::seen_numbers_bounded
    pub(super) fn recommend_ranked(
        &self,
        query: &RecommendationQuery,
        ranking: Ranking,
        model: &Arc<ModelConfig>,
        popular: bool,
    ) -> Result<(Strategy, Vec<Recommendation>)> {
        let user = self.store.user(&query.user_id)?;
        let (mut seen, complete) = if query.exclude_seen {
            self.store
                .seen_numbers_bounded(&query.user_id, user.as_ref(), SEEN_SCAN)?
        } else {
            (Vec::new(), true)
        };
        let history = user
            .as_ref()
            .map_or(&[][..], |state| state.history.as_slice());
        let parts = (!popular).then_some(ranking);
        let mut round = 1;
        let (strategy, list) = loop {
            // How much deeper it ranks, and whether it is the last round.
            let looked_up =
                (!complete).then_some((SEEN_DEEPER.pow(round - 1), round == SEEN_ROUNDS));
            let list = self.ranked_for(query, history, &mut seen, looked_up, parts, model)?;
            if let Some(list) = list {
                break list;
            }
            round += 1;
        };
        self.metrics
            .recommendations
            .with_label_values(&[strategy.as_str()])
            .inc();
        self.count_sources(&list);
        Ok((strategy, list))
    }

    /// The list of `query` for a user with `history` who has seen `seen`, from the `parts` of
    /// the ranking (`None`: the trending list) under `model` (see
    /// [`Self::recommend_ranked`]). With `looked_up` (the user has seen more), the ranking goes
    /// its first number of times deeper and its items are looked up; `None` when too few were
    /// left unseen and it is not the last round (the second number).
    fn ranked_for(
        &self,
        query: &RecommendationQuery,
        history: &[HistoryEntry],
        seen: &mut Vec<u32>,
        looked_up: Option<(usize, bool)>,
        parts: Option<Ranking>,
        model: &ModelConfig,
    ) -> Result<Option<(Strategy, Vec<Recommendation>)>> {
        let excluded = self.excluded(query, seen);
        let genre = query.genre.as_deref();
        let now = self.rules.clock().now_ms();
        let options = &self.with_matches(&query.options);
        let base = |table: &Table, item: u32| {
            !excluded.contains(item)
                && table.listable(item, now)
                && genre.is_none_or(|genre| {
                    table
                        .catalogue(item)
                        .is_some_and(|entry| entry.has_genre(genre))
                })
        };
        let accept = |table: &Table, item: u32| base(table, item) && options.accepts(table, item);
        let (strategy, mut ranked) = self.filtered(
            options,
            query.count * looked_up.map_or(1, |(deeper, _)| deeper),
            &base,
            &accept,
            |depth, accept, among| self.ranked_list(model, history, depth, accept, parts, among),
        );
        if let Some((_, last)) = looked_up {
            let found = self.seen_among(&query.user_id, ranked.iter().map(|(item, _, _)| *item))?;
            if !found.is_empty() {
                ranked.retain(|(item, _, _)| !found.contains(item));
                seen.extend(found);
                if ranked.len() < options.depth(query.count) && !last {
                    return Ok(None);
                }
            }
        }
        let table = self.items.read();
        let mut list = self.finish(&table, ranked, query.count, options, &|item| {
            accept(&table, item)
        });
        if looked_up.is_some() {
            // A campaign's items enter past the ranking: only they are not looked up yet.
            let found = self.seen_among(
                &query.user_id,
                list.iter()
                    .filter(|item| item.campaign.is_some())
                    .filter_map(|item| table.number(&item.item_id)),
            )?;
            list.retain(|item| {
                table
                    .number(&item.item_id)
                    .is_none_or(|number| !found.contains(&number))
            });
        }
        Ok(Some((strategy, list)))
    }

    /// The items of `items` the user has seen, looked up by key (one `MultiGet`).
    fn seen_among(&self, user_id: &str, items: impl Iterator<Item = u32>) -> Result<HashSet<u32>> {
        let numbers: Vec<u32> = items.collect();
        let seen = self.store.seen_column_has(user_id, &numbers)?;
        Ok(numbers
            .into_iter()
            .zip(seen)
            .filter_map(|(number, seen)| seen.then_some(number))
            .collect())
    }

    /// The items a user's list leaves out, as a set of item numbers: what the user has seen
    /// (`seen`, empty unless the query excludes it) and what the caller excluded.
    fn excluded(&self, query: &RecommendationQuery, seen: &[u32]) -> ItemSet {
        let table = self.items.read();
        let excluded = query.exclude.iter().filter_map(|id| table.number(id));
        ItemSet::of(seen.iter().copied().chain(excluded), table.len())
    }
}
