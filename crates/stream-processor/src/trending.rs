//! The list of the most popular items right now, refreshed periodically.
//!
//! Computing it scans every item, so it is never done per event or per query: the processor
//! refreshes it at most once per [`REFRESH_INTERVAL`] of wall time (and after loading state),
//! and queries read the last list through an `ArcSwap` without locking. A change of the
//! catalogue (in catalogue-only mode, an item catalogued is let into the list) makes an idle
//! processor refresh it too ([`Trending::is_behind`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use marquee_vector_store::ItemTable;

/// How often the processor refreshes the list while events flow.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Length of the kept list; trending and the popular fallback draw from it.
pub const TRENDING_LEN: usize = 2000;

/// The current trending list: item numbers with decayed popularity, best first.
#[derive(Clone, Default)]
pub struct Trending {
    list: Arc<ArcSwap<Vec<(u32, f32)>>>,
    /// The item table's catalogue version the list was computed at.
    catalogue_version: Arc<AtomicU64>,
}

impl std::fmt::Debug for Trending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trending")
            .field("items", &self.list.load().len())
            .finish()
    }
}

impl Trending {
    /// The last computed list.
    pub fn current(&self) -> Arc<Vec<(u32, f32)>> {
        self.list.load_full()
    }

    /// Whether the catalogue changed since the list was computed.
    pub fn is_behind(&self, items: &ItemTable) -> bool {
        items.read().catalogue_version() != self.catalogue_version.load(Ordering::Acquire)
    }

    /// Recomputes the list from `items` at stream time `now`, of the items catalogue-only mode
    /// lets be listed ([`Table::in_catalogue_scope`](marquee_vector_store::Table::in_catalogue_scope)):
    /// made-up ids, however popular, leave room for those that can be shown.
    pub fn refresh(&self, items: &ItemTable, now: i64, half_life_ms: f64) {
        let mut scored: Vec<(u32, f32)> = {
            let table = items.read();
            self.catalogue_version
                .store(table.catalogue_version(), Ordering::Release);
            table
                .numbers()
                .map(|number| (number, table.popularity(number).decayed(now, half_life_ms)))
                .filter(|(number, score)| *score > 0.0 && table.in_catalogue_scope(*number))
                .collect()
        };
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > TRENDING_LEN {
            scored.select_nth_unstable_by(TRENDING_LEN, order);
            scored.truncate(TRENDING_LEN);
        }
        scored.sort_by(order);
        self.list.store(Arc::new(scored));
    }
}
