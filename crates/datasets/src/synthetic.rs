//! A deterministic synthetic catalogue and stream of viewers.
//!
//! Items `m0 … m{items-1}` belong to one of `clusters` taste clusters (`item % clusters`), each
//! with a genre name; within a cluster, popularity follows a power law (Zipf, exponent 0.9) over
//! the item's rank. Users `u0 … u{users-1}` like one or two clusters (drawn from the seed).
//! Events come in short sessions of one user: 90% inside the user's clusters, rated and watched
//! favourably there and poorly elsewhere. Sessions pick their user uniformly, or — with
//! [`SyntheticConfig::max_history`] set — by a per-user activity drawn from a power law
//! (exponent [`ACTIVITY_EXPONENT`]) between 1 and `max_history`: a few users with thousands of
//! events and most with a handful, as real services have. Everything follows from the seed, and events are
//! produced one at a time (an iterator), so ten million of them never sit in memory.
//!
//! The ground truth ([`Synthetic::item_cluster`], [`Synthetic::user_clusters`]) is what lets a
//! test check that recommendations are personal rather than merely popular.

use marquee_schemas::{Event, EventKind, Item};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Genre names of the clusters: MovieLens' genres.
pub use crate::movielens::GENRES;

const ADJECTIVES: [&str; 24] = [
    "Crimson", "Silent", "Last", "Hidden", "Golden", "Broken", "Midnight", "Electric", "Wild",
    "Lonely", "Burning", "Frozen", "Secret", "Distant", "Iron", "Velvet", "Hollow", "Bright",
    "Savage", "Quiet", "Endless", "Lost", "Scarlet", "Northern",
];
const NOUNS: [&str; 24] = [
    "Heist",
    "Garden",
    "Frontier",
    "Letter",
    "Empire",
    "Harbour",
    "Mirror",
    "Voyage",
    "Station",
    "Orchard",
    "Signal",
    "Kingdom",
    "Promise",
    "Canyon",
    "Circus",
    "Machine",
    "River",
    "Witness",
    "Summer",
    "Labyrinth",
    "Detective",
    "Planet",
    "Waltz",
    "Lighthouse",
];

/// Shape of a synthetic data set.
#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    pub seed: u64,
    pub users: u64,
    pub items: u64,
    pub clusters: usize,
    pub events: u64,
    /// Timestamp of the first event, ms since the epoch.
    pub start_ms: i64,
    /// Time between consecutive events, ms.
    pub step_ms: i64,
    /// 0: sessions pick users uniformly. Otherwise each user's activity is drawn from a power
    /// law on `[1, max_history]` ([`ACTIVITY_EXPONENT`]), and a user's expected events are
    /// `events` times their share of the total activity: with `events` = `users` × the mean
    /// activity (114 for 5,000), history lengths run from 1 to about `max_history`.
    pub max_history: u64,
}

/// The exponent of the power law of user activity: `p(a) ∝ a^−1.4` on `[1, max_history]`
/// (mean 114 for a `max_history` of 5,000; MovieLens' users, 20 to 2,698 ratings, fall off
/// with a similar tail).
pub const ACTIVITY_EXPONENT: f64 = 1.4;

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 42,
            users: 1000,
            items: 2000,
            clusters: 12,
            events: 100_000,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            step_ms: 1000,
            max_history: 0,
        }
    }
}

/// The generator.
#[derive(Debug, Clone)]
pub struct Synthetic {
    config: SyntheticConfig,
    /// Per cluster, the cumulative Zipf weights of its items by rank.
    cumulative_weights: Vec<Vec<f64>>,
    /// The cumulative activity of the users, by user number; empty when they are uniform.
    cumulative_activity: Vec<f64>,
}

/// A user's activity, from the seed: the inverse of the power law's distribution function
/// ([`ACTIVITY_EXPONENT`]) on `[1, max]` at a uniform draw.
fn activity(seed: u64, user: u64, max: f64) -> f64 {
    let uniform = (mix(seed ^ mix(user.wrapping_add(0xac71))) >> 11) as f64 / (1u64 << 53) as f64;
    let rise = 1.0 - ACTIVITY_EXPONENT;
    (1.0 + uniform * (max.powf(rise) - 1.0)).powf(1.0 / rise)
}

fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

impl Synthetic {
    pub fn new(config: SyntheticConfig) -> Synthetic {
        assert!(config.clusters > 0 && config.items >= config.clusters as u64);
        let cumulative_weights = (0..config.clusters)
            .map(|cluster| {
                let members = (config.items - cluster as u64).div_ceil(config.clusters as u64);
                let mut total = 0.0;
                (0..members)
                    .map(|rank| {
                        total += 1.0 / ((rank + 1) as f64).powf(0.9);
                        total
                    })
                    .collect()
            })
            .collect();
        let cumulative_activity = if config.max_history > 1 {
            let mut total = 0.0;
            (0..config.users)
                .map(|user| {
                    total += activity(config.seed, user, config.max_history as f64);
                    total
                })
                .collect()
        } else {
            Vec::new()
        };
        Synthetic {
            config,
            cumulative_weights,
            cumulative_activity,
        }
    }

    /// The user of a new session.
    fn sample_user(&self, rng: &mut impl Rng) -> u64 {
        match self.cumulative_activity.last() {
            None => rng.random_range(0..self.config.users),
            Some(&total) => {
                let target = rng.random::<f64>() * total;
                let user = self
                    .cumulative_activity
                    .partition_point(|&cumulative| cumulative < target);
                (user as u64).min(self.config.users - 1)
            }
        }
    }

    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    pub fn user_id(user: u64) -> String {
        format!("u{user}")
    }

    pub fn item_id(item: u64) -> String {
        format!("m{item}")
    }

    /// The taste cluster of an item.
    pub fn item_cluster(&self, item: u64) -> usize {
        (item % self.config.clusters as u64) as usize
    }

    /// The cluster of an item id (`m123`), if it is one of ours.
    pub fn cluster_of_item_id(&self, item_id: &str) -> Option<usize> {
        let number: u64 = item_id.strip_prefix('m')?.parse().ok()?;
        (number < self.config.items).then(|| self.item_cluster(number))
    }

    /// The clusters a user likes: one or two.
    pub fn user_clusters(&self, user: u64) -> Vec<usize> {
        let hash = mix(self.config.seed ^ mix(user.wrapping_add(0x5151)));
        let clusters = self.config.clusters as u64;
        let first = (hash % clusters) as usize;
        if (hash >> 32) % 10 < 6 || clusters == 1 {
            vec![first]
        } else {
            let second = ((first as u64 + 1 + (hash >> 16) % (clusters - 1)) % clusters) as usize;
            vec![first, second]
        }
    }

    /// The genre name of a cluster.
    pub fn cluster_genre(cluster: usize) -> &'static str {
        GENRES[cluster % GENRES.len()]
    }

    /// The catalogue, item by item.
    pub fn items(&self) -> impl Iterator<Item = Item> + '_ {
        (0..self.config.items).map(move |item| {
            let hash = mix(self.config.seed.wrapping_mul(31) ^ mix(item));
            let cluster = self.item_cluster(item);
            let adjective = ADJECTIVES[(hash % 24) as usize];
            let noun = NOUNS[((hash >> 8) % 24) as usize];
            let year = 1950 + ((hash >> 16) % 76) as i32;
            let mut genres = vec![Self::cluster_genre(cluster).to_owned()];
            if (hash >> 24) % 10 < 3 {
                let secondary = Self::cluster_genre(cluster + 1 + ((hash >> 28) % 5) as usize);
                if secondary != genres[0] {
                    genres.push(secondary.to_owned());
                }
            }
            // 24 × 24 titles; later films of a title are its sequels.
            let sequel = item / 576 + 1;
            let title = if sequel == 1 {
                format!("The {adjective} {noun}")
            } else {
                format!("The {adjective} {noun} {sequel}")
            };
            Item {
                item_id: Self::item_id(item),
                title: Some(title),
                genres,
                year: Some(year),
                tags: Vec::new(),
                ..Item::default()
            }
        })
    }

    /// An item of `cluster`, by popularity.
    pub fn sample_item(&self, cluster: usize, rng: &mut impl Rng) -> u64 {
        let weights = &self.cumulative_weights[cluster];
        let target = rng.random::<f64>() * weights.last().copied().unwrap_or(0.0);
        let rank = weights.partition_point(|&cumulative| cumulative < target);
        let rank = rank.min(weights.len().saturating_sub(1)) as u64;
        cluster as u64 + rank * self.config.clusters as u64
    }

    /// The event stream: `config.events` events, deterministic from the seed.
    pub fn events(&self) -> Events<'_> {
        Events {
            generator: self,
            rng: ChaCha8Rng::seed_from_u64(self.config.seed),
            produced: 0,
            session_user: 0,
            session_left: 0,
        }
    }
}

/// Iterator over the synthetic events.
#[derive(Debug)]
pub struct Events<'a> {
    generator: &'a Synthetic,
    rng: ChaCha8Rng,
    produced: u64,
    session_user: u64,
    session_left: u32,
}

impl Events<'_> {
    /// The next event without its id and timestamp (the demo's live stream lets the server
    /// assign them); `None` only when the configured count is exhausted.
    pub fn next_event(&mut self) -> Option<Event> {
        if self.produced >= self.generator.config.events {
            return None;
        }
        let config = &self.generator.config;
        if self.session_left == 0 {
            self.session_user = self.generator.sample_user(&mut self.rng);
            self.session_left = self.rng.random_range(1..=8);
        }
        self.session_left -= 1;
        let user = self.session_user;
        let tastes = self.generator.user_clusters(user);
        let cluster = if self.rng.random::<f64>() < 0.9 {
            tastes[self.rng.random_range(0..tastes.len())]
        } else {
            self.rng.random_range(0..config.clusters)
        };
        let liked = tastes.contains(&cluster);
        let item = self.generator.sample_item(cluster, &mut self.rng);
        let roll = self.rng.random::<f64>();
        let (kind, value) = if roll < 0.45 {
            let stars: f32 = if liked {
                [3.5, 4.0, 4.5, 5.0, 5.0][self.rng.random_range(0..5)]
            } else {
                [0.5, 1.0, 1.5, 2.0, 2.5, 3.0][self.rng.random_range(0..6)]
            };
            (EventKind::Rating, Some(stars))
        } else if roll < 0.70 {
            (EventKind::View, None)
        } else if roll < 0.82 {
            (EventKind::Click, None)
        } else if roll < 0.92 {
            let fraction = if liked {
                self.rng.random_range(0.6..=1.0f32)
            } else {
                self.rng.random_range(0.0..=0.4f32)
            };
            (EventKind::Watch, Some((fraction * 100.0).round() / 100.0))
        } else if roll < 0.95 {
            (
                if liked {
                    EventKind::Like
                } else {
                    EventKind::Dislike
                },
                None,
            )
        } else if roll < 0.98 {
            (EventKind::AddToWatchlist, None)
        } else {
            (EventKind::Skip, None)
        };
        let sequence = self.produced;
        self.produced += 1;
        Some(Event {
            event_id: format!("syn-{}-{sequence}", config.seed),
            user_id: Synthetic::user_id(user),
            item_id: Synthetic::item_id(item),
            kind,
            value,
            timestamp: config.start_ms + sequence as i64 * config.step_ms,
            context: Default::default(),
        })
    }
}

impl Iterator for Events<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.next_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_from_the_seed() {
        let generator = Synthetic::new(SyntheticConfig {
            events: 500,
            ..SyntheticConfig::default()
        });
        let first: Vec<Event> = generator.events().collect();
        let second: Vec<Event> = generator.events().collect();
        assert_eq!(first.len(), 500);
        assert_eq!(first, second);
        let now = first.last().unwrap().timestamp;
        for event in &first {
            event.validate(now).unwrap();
        }
    }

    #[test]
    fn users_mostly_meet_their_own_clusters() {
        let generator = Synthetic::new(SyntheticConfig {
            events: 5_000,
            ..SyntheticConfig::default()
        });
        let inside = generator
            .events()
            .filter(|event| {
                let user: u64 = event.user_id[1..].parse().unwrap();
                let cluster = generator.cluster_of_item_id(&event.item_id).unwrap();
                generator.user_clusters(user).contains(&cluster)
            })
            .count();
        assert!(
            inside > 4_000,
            "{inside} of 5000 inside the user's clusters"
        );
    }

    #[test]
    fn a_maximum_history_gives_a_heavy_tail_of_activity() {
        let generator = Synthetic::new(SyntheticConfig {
            users: 2_000,
            events: 2_000 * 114,
            max_history: 5_000,
            ..SyntheticConfig::default()
        });
        let mut counts = vec![0u64; 2_000];
        for event in generator.events() {
            let user: usize = event.user_id[1..].parse().unwrap();
            counts[user] += 1;
        }
        counts.sort_unstable();
        let median = counts[1_000];
        let most = counts[1_999];
        assert!(median <= 20, "median history {median}");
        assert!(most >= 1_500, "longest history {most}");
        // Uniform users (the default) have no such tail.
        let uniform = Synthetic::new(SyntheticConfig {
            users: 2_000,
            events: 2_000 * 114,
            ..SyntheticConfig::default()
        });
        let mut counts = vec![0u64; 2_000];
        for event in uniform.events() {
            counts[event.user_id[1..].parse::<usize>().unwrap()] += 1;
        }
        assert!(counts.iter().max().unwrap() < &400);
    }

    #[test]
    fn sampled_items_belong_to_the_cluster() {
        let generator = Synthetic::new(SyntheticConfig::default());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for cluster in 0..generator.config().clusters {
            for _ in 0..100 {
                let item = generator.sample_item(cluster, &mut rng);
                assert!(item < generator.config().items);
                assert_eq!(generator.item_cluster(item), cluster);
            }
        }
    }
}
