//! A list's ranking under the request's filter: the unfiltered ranking with the refused items
//! taken out, then (a narrow filter) the ranking among the filter's matches.

use std::collections::HashSet;

use marquee_vector_store::{HistoryEntry, Table};

use super::finish::{ListOptions, PAGE_WINDOW};
use super::{QueryEngine, Ranked, Ranking, Sources};
use crate::model::ModelConfig;
use crate::strategy::Strategy;

/// Matches of a filter up to which its second pass scores them directly
/// ([`marquee_vector_store::VectorIndex::search_among`]) instead of walking the graph.
const DIRECT_SCORING_MAX: usize = 5_000;

impl QueryEngine {
    /// `options` with their filter's matches looked up ([`crate::rules::RuleSet::matches`]).
    pub(super) fn with_matches(&self, options: &ListOptions) -> ListOptions {
        let mut options = options.clone();
        if let Some(filter) = &options.filter {
            options.matches = Some(self.rules.current().matches(filter, &self.items));
        }
        options
    }

    /// The ranking of a history to `depth` among the items `accept` takes: the parts' ranking,
    /// else (nothing ranked) trending items sharing the user's labels, filled from trending;
    /// with no `ranking`, the trending list alone.
    pub(super) fn ranked_list(
        &self,
        model: &ModelConfig,
        history: &[HistoryEntry],
        depth: usize,
        accept: &dyn Fn(&Table, u32) -> bool,
        ranking: Option<Ranking>,
        among: Option<&[u32]>,
    ) -> (Strategy, Vec<(u32, f32, Sources)>) {
        let Ranked {
            items: mut ranked,
            behavioural,
        } = match ranking {
            None => Ranked {
                items: Vec::new(),
                behavioural: false,
            },
            Some(ranking) => self.rank(model, history, depth, accept, ranking, among),
        };
        let table = self.items.read();
        if ranked.is_empty() && ranking.is_some() {
            // The user's positive items have no pairs and no cold neighbours yet (new items):
            // trending items sharing their genres or tags come before the plain trending list.
            let labels: HashSet<&str> = history
                .iter()
                .rev()
                .filter(|past| past.weight > 0.0)
                .take(model.content_history)
                .flat_map(|past| table.labels(past.item))
                .map(|label| &**label)
                .collect();
            ranked = self.trending_sharing(&table, &labels, depth, &|item| accept(&table, item));
        }
        let strategy = if ranked.is_empty() {
            Strategy::Popular
        } else if behavioural {
            Strategy::Personalised
        } else {
            Strategy::ColdStart
        };
        if ranked.len() < depth {
            let already: HashSet<u32> = ranked.iter().map(|(item, _, _)| *item).collect();
            let trending = self.trending.current();
            ranked.extend(
                trending
                    .iter()
                    .filter(|(item, _)| !already.contains(item) && accept(&table, *item))
                    .take(depth - ranked.len())
                    .map(|&(item, score)| (item, score, Sources::TRENDING)),
            );
        }
        (strategy, ranked)
    }

    /// A ranking to the depth `options` ask for a page of `count`, under their filter: the
    /// unfiltered ranking (`base`) to at least [`PAGE_WINDOW`] with the items the filter
    /// refuses taken out — so a filter never changes the order of what it keeps — then, if
    /// that leaves too few (a narrow filter), the ranking among the filtered items (`accept`:
    /// the candidate sources searched for them) after it.
    pub(super) fn filtered<T>(
        &self,
        options: &ListOptions,
        count: usize,
        base: &dyn Fn(&Table, u32) -> bool,
        accept: &dyn Fn(&Table, u32) -> bool,
        rank: impl Fn(
            usize,
            &dyn Fn(&Table, u32) -> bool,
            Option<&[u32]>,
        ) -> (T, Vec<(u32, f32, Sources)>),
    ) -> (T, Vec<(u32, f32, Sources)>) {
        let mut depth = options.depth(count);
        // A campaign moves items from deeper in the ranking than a page.
        if self
            .rules
            .current()
            .has_active_campaigns(self.rules.clock().now_ms())
        {
            depth = depth.max(PAGE_WINDOW);
        }
        if options.filter.is_none() {
            return rank(depth, base, None);
        }
        let (first, mut ranked) = rank(depth.max(PAGE_WINDOW), base, None);
        {
            let table = self.items.read();
            ranked.retain(|(item, _, _)| options.accepts(&table, *item));
        }
        if ranked.len() < depth {
            let present: HashSet<u32> = ranked.iter().map(|(item, _, _)| *item).collect();
            // A narrow filter's matches are scored directly rather than found by a graph walk
            // past thousands of refused items.
            let among = options
                .matches
                .as_ref()
                .map(|matches| matches.members.as_slice())
                .filter(|members| members.len() <= DIRECT_SCORING_MAX);
            let (_, more) = rank(depth, accept, among);
            ranked.extend(
                more.into_iter()
                    .filter(|(item, _, _)| !present.contains(item)),
            );
        }
        (first, ranked)
    }
}
