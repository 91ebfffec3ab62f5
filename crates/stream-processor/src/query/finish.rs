//! What every list goes through after its ranking: the campaigns in effect (boosts, then pins),
//! the items earlier pages showed taken out, the per-genre limit, the page cut.
//!
//! A list is ranked to a depth of the page plus what earlier pages showed (the candidate pools
//! are the same for every depth up to 200, so each page is cut from the same ranking), the
//! campaigns are applied to that whole ranking — a pin's position is a position in the ranking,
//! not in a page — and only then are the shown items dropped: page `k` of an unchanged state is
//! the ranking's items `k·count .. (k+1)·count`.

use std::collections::HashSet;
use std::sync::Arc;

use marquee_vector_store::Table;

use super::Sources;
use crate::rules::paging::item_key;
use crate::rules::{Action, Campaign, Filter, MatchSet};

/// The depth a filter's first pass, a list under a campaign and trending rank to at least.
pub const PAGE_WINDOW: usize = 100;
/// How much deeper a list with a per-genre limit is ranked (and at least [`PAGE_WINDOW`]), to
/// have items left to pick.
pub const DIVERSITY_DEPTH: usize = 4;

/// What a caller asks of any list beyond its count.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only the items it accepts.
    pub filter: Option<Filter>,
    /// The keys ([`item_key`]) of the items earlier pages showed.
    pub shown: HashSet<u32>,
    /// At most this many items of one genre (an item counts for each of its genres).
    pub max_per_genre: Option<usize>,
    /// The filter's matches, which the query engine looks up before ranking.
    pub matches: Option<Arc<MatchSet>>,
}

impl ListOptions {
    /// How deep to rank for a page of `count`.
    pub fn depth(&self, count: usize) -> usize {
        let depth = count + self.shown.len();
        if self.max_per_genre.is_some() {
            (depth * DIVERSITY_DEPTH).max(PAGE_WINDOW)
        } else {
            depth
        }
    }

    /// Whether the filter (if any) accepts item `number` of `table`.
    pub fn accepts(&self, table: &Table, number: u32) -> bool {
        if let Some(matches) = &self.matches {
            return matches.contains(number);
        }
        self.filter.as_ref().is_none_or(|filter| {
            filter.accepts(
                table.id(number).map_or("", |id| id),
                table.catalogue(number).map(Arc::as_ref),
            )
        })
    }
}

/// A ranked entry: item number, score, sources, and the campaign that moved it.
pub(super) type Entry = (u32, f32, Sources, Option<Arc<str>>);

/// Applies `campaigns` to `ranked` (best first): boosts raise scores by their weight times the
/// best score and re-sort; pins move their first eligible item to their position. An item a
/// campaign names by id that the ranking lacks enters if `accept` takes it; a campaign named by
/// a filter moves only the ranking's own candidates.
pub(super) fn apply_campaigns(
    table: &Table,
    ranked: Vec<(u32, f32, Sources)>,
    campaigns: &[(&Campaign, Option<&Filter>)],
    accept: &dyn Fn(u32) -> bool,
) -> Vec<Entry> {
    let mut list: Vec<Entry> = ranked
        .into_iter()
        .map(|(item, score, sources)| (item, score, sources, None))
        .collect();
    if campaigns.is_empty() {
        return list;
    }
    let names = |campaign: &Campaign, filter: Option<&Filter>, item: u32| -> bool {
        if campaign.items.is_empty() {
            filter.is_some_and(|filter| {
                filter.accepts(
                    table.id(item).map_or("", |id| id),
                    table.catalogue(item).map(Arc::as_ref),
                )
            })
        } else {
            table
                .id(item)
                .is_some_and(|id| campaign.items.iter().any(|named| **named == **id))
        }
    };
    let best = list
        .iter()
        .map(|entry| entry.1)
        .fold(0.0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let mut boosted = false;
    for (campaign, filter) in campaigns {
        let Action::Boost { weight } = campaign.action else {
            continue;
        };
        let name: Arc<str> = Arc::from(campaign.name.as_str());
        for entry in &mut list {
            if names(campaign, *filter, entry.0) {
                entry.1 += weight * best;
                entry.2 = entry.2.with(Sources::BOOST);
                entry.3 = Some(Arc::clone(&name));
                boosted = true;
            }
        }
        for number in named_outside(table, campaign, &list, accept) {
            list.push((
                number,
                weight * best,
                Sources::BOOST,
                Some(Arc::clone(&name)),
            ));
            boosted = true;
        }
    }
    if boosted {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    let mut pins: Vec<(&Campaign, Option<&Filter>, usize)> = campaigns
        .iter()
        .filter_map(|(campaign, filter)| match campaign.action {
            Action::Pin { position } => Some((*campaign, *filter, position)),
            Action::Boost { .. } => None,
        })
        .collect();
    pins.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.name.cmp(&b.0.name)));
    let mut pinned: HashSet<u32> = HashSet::new();
    for (campaign, filter, position) in pins {
        let name: Arc<str> = Arc::from(campaign.name.as_str());
        // The campaign's first item by its own order (ids) or the ranking's (a filter).
        let from_list = |list: &[Entry]| {
            list.iter()
                .position(|entry| !pinned.contains(&entry.0) && names(campaign, filter, entry.0))
        };
        let chosen = if campaign.items.is_empty() {
            from_list(&list).map(|at| list.remove(at))
        } else {
            campaign
                .items
                .iter()
                .filter_map(|id| table.number(id))
                .filter(|number| !pinned.contains(number))
                .find_map(
                    |number| match list.iter().position(|entry| entry.0 == number) {
                        Some(at) => Some(list.remove(at)),
                        None if accept(number) => Some((number, 0.0, Sources::default(), None)),
                        None => None,
                    },
                )
        };
        if let Some((number, score, sources, _)) = chosen {
            pinned.insert(number);
            let at = position.min(list.len());
            list.insert(at, (number, score, sources.with(Sources::PIN), Some(name)));
        }
    }
    list
}

/// The items `campaign` names by id that `list` lacks and `accept` takes.
fn named_outside(
    table: &Table,
    campaign: &Campaign,
    list: &[Entry],
    accept: &dyn Fn(u32) -> bool,
) -> Vec<u32> {
    let present: HashSet<u32> = list.iter().map(|entry| entry.0).collect();
    campaign
        .items
        .iter()
        .filter_map(|id| table.number(id))
        .filter(|number| !present.contains(number) && accept(*number))
        .collect()
}

/// The page of `count` items of `list`: without what earlier pages showed, at most
/// `max_per_genre` items of a genre while the ranking has such items (a page the limit would
/// leave short ends with the items it passed over, in the ranking's order: a list stays full).
pub(super) fn page(
    table: &Table,
    list: Vec<Entry>,
    count: usize,
    options: &ListOptions,
) -> Vec<Entry> {
    let mut per_genre: std::collections::HashMap<String, usize> = Default::default();
    let mut page = Vec::with_capacity(count);
    let mut passed_over = Vec::new();
    for entry in list {
        if page.len() == count {
            break;
        }
        if !options.shown.is_empty()
            && options
                .shown
                .contains(&item_key(table.id(entry.0).map_or("", |id| id)))
        {
            continue;
        }
        if let Some(limit) = options.max_per_genre {
            let genres: Vec<String> = table
                .catalogue(entry.0)
                .map(|item| item.genres.iter().map(|g| g.to_lowercase()).collect())
                .unwrap_or_default();
            if genres
                .iter()
                .any(|genre| per_genre.get(genre).is_some_and(|n| *n >= limit))
            {
                passed_over.push(entry);
                continue;
            }
            for genre in genres {
                *per_genre.entry(genre).or_default() += 1;
            }
        }
        page.push(entry);
    }
    let missing = count - page.len();
    page.extend(passed_over.into_iter().take(missing));
    page
}
