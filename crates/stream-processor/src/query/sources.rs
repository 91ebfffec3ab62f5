//! Where a listed item came from, and which parts a ranking uses.

/// Where a listed item came from: a bit per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources(u8);

impl Sources {
    /// The index's nearest neighbours of the user's (or the item's) vector.
    pub const INDEX: Sources = Sources(1);
    /// The co-occurrence lists of the user's recent items.
    pub const PAIRS: Sources = Sources(2);
    /// Items without events whose genres and tags match.
    pub const CONTENT: Sources = Sources(4);
    /// The trending list (a fill, or the whole list of a user with nothing positive yet).
    pub const TRENDING: Sources = Sources(8);
    /// A campaign raised its score.
    pub const BOOST: Sources = Sources(16);
    /// A campaign put it at its position.
    pub const PIN: Sources = Sources(32);

    pub fn contains(self, other: Sources) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn with(self, other: Sources) -> Sources {
        Sources(self.0 | other.0)
    }

    /// The names of the sources set, in a fixed order (`index`, `pairs`, `content`,
    /// `trending`, `boost`, `pin`).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (Sources::INDEX, "index"),
            (Sources::PAIRS, "pairs"),
            (Sources::CONTENT, "content"),
            (Sources::TRENDING, "trending"),
            (Sources::BOOST, "boost"),
            (Sources::PIN, "pin"),
        ]
        .into_iter()
        .filter(move |(source, _)| self.contains(*source))
        .map(|(_, name)| name)
    }
}

/// Which parts a ranking uses: all of them by default; the evaluator also runs each alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranking {
    /// The co-occurrence lists of the user's recent events.
    pub pairs: bool,
    /// The index's candidates for the user's vector, and the embedding's share of every score.
    pub index: bool,
    /// Items without events that match the user's genres and tags.
    pub content: bool,
}

impl Ranking {
    /// Every part, as the served lists rank.
    pub const ALL: Ranking = Ranking {
        pairs: true,
        index: true,
        content: true,
    };
    /// The index alone: the user's vector against the items' through the HNSW search.
    pub const INDEX: Ranking = Ranking {
        pairs: false,
        index: true,
        content: false,
    };
    /// The co-occurrence lists and content: the ranking before the index carried lists.
    pub const PAIRS: Ranking = Ranking {
        pairs: true,
        index: false,
        content: true,
    };
}
