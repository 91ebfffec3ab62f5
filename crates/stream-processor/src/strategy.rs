//! [`Strategy`]: which method produced a list (a leaf module: the query side and the metrics
//! both name it).

/// Which method produced a list: the API's `strategy` field, and the values of the `strategy`
/// label of `marquee_recommendations_total` (one set, [`Strategy::as_str`], documented in
/// `docs/METRICS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Ranked from what viewers did after the items the user engaged with (co-occurrence,
    /// optionally the embedding), blended with the content part.
    Personalised,
    /// Ranked from content only: the user's positive items have no co-occurrence pairs yet
    /// (new items, or a new catalogue), so items sharing their genres and tags are ranked.
    ColdStart,
    /// The trending list, for a user the model knows nothing positive about yet.
    Popular,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [
        Strategy::Personalised,
        Strategy::ColdStart,
        Strategy::Popular,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Personalised => "personalised",
            Strategy::ColdStart => "cold_start",
            Strategy::Popular => "popular",
        }
    }
}
