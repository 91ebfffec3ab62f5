//! `marquee_event_weight(kind TEXT, value DOUBLE) -> DOUBLE`: how much an event says about the
//! viewer's taste, as Marquee's online model weighs it with its default `[model.weights]`
//! (docs/QUALITY.md): a rating `r` counts `(r − 2) / 3` above the neutral 2★ and
//! `(r − 2) / 1.5` below it, `like` 1, `dislike` −1, `add_to_watchlist` 0.7, `watch` the
//! fraction watched minus 0.3, `click` 0.3, `view` 0.15, `skip` −0.3, `impression` 0 (a list
//! shown: it teaches nothing by itself, its clicks do). Positive weights are
//! what Marquee learns co-occurrence from; a pipeline that sums them per item over a window
//! ranks items the way Marquee's trending does before its time decay.
//!
//! NULL for a kind Marquee does not have, and for a rating or watch without a value (Marquee
//! refuses those at its API). A node configured with other weights differs: change the
//! constants below to match its `[model.weights]`.
//!
//! `fixtures/event_weights.tsv` holds the weights Marquee's own code gives; a test of the node
//! checks the table against that code and a test here checks this function against the table.

use arroyo_udf_plugin::udf;

const RATING_NEUTRAL: f64 = 2.0;
const LIKE: f64 = 1.0;
const DISLIKE: f64 = -1.0;
const ADD_TO_WATCHLIST: f64 = 0.7;
const WATCH_OFFSET: f64 = 0.3;
const CLICK: f64 = 0.3;
const VIEW: f64 = 0.15;
const SKIP: f64 = -0.3;
const IMPRESSION: f64 = 0.0;

#[udf]
pub fn marquee_event_weight(kind: &str, value: Option<f64>) -> Option<f64> {
    Some(match kind {
        "rating" => {
            let rating = value?;
            if rating >= RATING_NEUTRAL {
                (rating - RATING_NEUTRAL) / (5.0 - RATING_NEUTRAL)
            } else {
                (rating - RATING_NEUTRAL) / (RATING_NEUTRAL - 0.5)
            }
        }
        "watch" => value? - WATCH_OFFSET,
        "like" => LIKE,
        "dislike" => DISLIKE,
        "add_to_watchlist" => ADD_TO_WATCHLIST,
        "click" => CLICK,
        "view" => VIEW,
        "skip" => SKIP,
        "impression" => IMPRESSION,
        _ => return None,
    })
}
