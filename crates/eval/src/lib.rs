//! The offline evaluator behind `marquee eval`.
//!
//! Implements the two protocols of the project's evaluation document on a MovieLens release:
//!
//! - **Protocol T** (per-user temporal hold-out): each user's last `max(1, ⌊0.2·n⌋)` ratings are
//!   the test part; the training parts are streamed in event order; each test user (≥ 1 training
//!   event, ≥ 1 positive, rating ≥ 3.5, in the test part) gets one top-10 list that excludes
//!   their training items; recall@10 and NDCG@10 are averaged over test users. With
//!   `validation`, the same split is applied again to the training part, for tuning.
//! - **Protocol P** (prequential): a user's ratings sharing a timestamp form a step; before each
//!   step of a user with earlier events, one top-10 list is asked for; each positive of the step
//!   is a hit when its item is in it; then the whole step is applied. HR@10 over the stream and
//!   over its second half. With `first_half`, only the first half of the stream is replayed, for
//!   tuning.
//!
//! Order: by timestamp, ties in file order (the loader's stable sort). Ranking ties go to the
//! smaller item id compared as numbers: the catalogue is numbered in ascending id order before
//! any event, so item number order is id order.
//!
//! The `marquee` row drives the production code in-process: an embedded log (one partition, so
//! events are applied in stream order on one thread), the state store, the [`Processor`] and the
//! [`QueryEngine`] with the HNSW index, exactly as `serve` wires them. Two differences, neither
//! of which changes a result: the log does not sync its write-ahead log (the input is a file that
//! can be read again), and the index is rebuilt on the evaluator's thread when due (by changed
//! items, never by wall-clock time, and without threads, so a build is deterministic) instead of
//! by the background worker, and only when the ranking reads the index
//! ([`ModelConfig::embedding_weight`] > 0). The same command therefore prints the same numbers.
//!
//! The reference rows are computed here from the same split and the same filters: popularity
//! (count of training positives; Protocol P: of positives applied so far) and item-kNN (cosine
//! on binary positives; Protocol P: over co-occurrence counts maintained as the stream goes,
//! scored from the user's last [`STREAM_KNN_HISTORY`] positives).
//!
//! [`Processor`]: marquee_stream_processor::Processor
//! [`QueryEngine`]: marquee_stream_processor::QueryEngine

//!
//! Modules: `data` (a data set prepared for both protocols), `protocol_t` and `protocol_p`
//! (the protocols and their reference rows), `baselines` (the reference models' shared parts),
//! [`system`] ([`System`], the production code in-process, which the benchmarks drive too).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use marquee_stream_processor::ModelConfig;
use marquee_stream_processor::experiments::{RankingSettings, SourceSet};
use marquee_vector_store::IndexConfig;
use serde::Serialize;

mod baselines;
mod data;
pub mod error;
mod protocol_p;
mod protocol_t;
pub mod system;

pub use error::{Error, Result};
pub use system::System;

/// Cut-off of every list.
pub const K: usize = 10;
/// Ratings at or above this are positives.
pub const POSITIVE: f32 = 3.5;
/// Positives of a user the streaming item-kNN baseline scores from.
pub const STREAM_KNN_HISTORY: usize = 50;
/// Catalogue size above which the dense item-kNN baselines are skipped.
pub(crate) const KNN_MAX_ITEMS: usize = 20_000;
/// Events applied between two refreshes of the trending list.
pub(crate) const TRENDING_EVERY: usize = 1_000;
/// Events appended per log write when streaming a training part.
pub(crate) const APPEND_CHUNK: usize = 5_000;

/// The production system's rows: the served ranking, the index alone (the user's vector
/// through the HNSW search, no pair lists, no content), and the pairs with content without
/// the index (the ranking before the index carried lists). Each is a set of ranking settings,
/// as an experiment's variant is.
pub(crate) fn marquee_rows() -> Vec<(String, RankingSettings)> {
    let sources = |pairs, index, content| RankingSettings {
        sources: Some(SourceSet {
            pairs,
            index,
            content,
        }),
        ..RankingSettings::default()
    };
    vec![
        ("marquee".to_owned(), RankingSettings::default()),
        ("marquee-index".to_owned(), sources(false, true, false)),
        ("marquee-pairs".to_owned(), sources(true, false, true)),
    ]
}

/// The rows `options` asks for: its variants (`marquee eval --variants`), else
/// [`marquee_rows`].
pub(crate) fn rows(options: &EvalOptions) -> Vec<(String, RankingSettings)> {
    if options.variants.is_empty() {
        marquee_rows()
    } else {
        options.variants.clone()
    }
}

/// Which protocol to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    T,
    P,
}

/// Where the ratings come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A MovieLens release directory.
    MovieLens(PathBuf),
    /// The synthetic stream of `marquee generate` (seed 42, 100,000 users, 20,000 items, 50
    /// clusters) with this many events. Every event is applied; only its ratings are
    /// evaluated. For measuring the evaluator's speed on a long stream.
    Synthetic(u64),
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub protocol: Protocol,
    pub data: Source,
    /// Protocol T: evaluate on the validation split of the training part (tuning).
    pub validation: bool,
    /// Protocol P: replay only the first half of the stream (tuning).
    pub first_half: bool,
    pub model: ModelConfig,
    pub index: IndexConfig,
    /// Skip the reference rows.
    pub skip_baselines: bool,
    /// Named ranking settings to evaluate instead of the three `marquee` rows (an
    /// experiment's variants, checked offline before viewers see them).
    pub variants: Vec<(String, RankingSettings)>,
    /// A per-genre limit on every list of the `marquee` rows (`max_per_genre`,
    /// `docs/RULES.md`): what diversity costs in recall and gains in genres per list.
    pub max_per_genre: Option<usize>,
    /// Show progress bars on standard error.
    pub progress: bool,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    pub protocol: Protocol,
    pub dataset: String,
    /// `"T"`, `"T-validation"`, `"P"` or `"P-first-half"`.
    pub split: String,
    pub model: String,
    /// `recall@10` and `ndcg@10` (T), or `hr@10` and `hr@10_second_half` (P).
    pub metrics: Vec<(String, f64)>,
    /// Events the model consumed.
    pub events: usize,
    /// Test users (T) or evaluated positives (P).
    pub users: usize,
    pub evaluated: usize,
    pub seconds: f64,
}

/// Runs the protocol and returns one row per model: the reference rows first, then `marquee`.
pub fn run(options: &EvalOptions) -> Result<Vec<ModelResult>> {
    let data = match &options.data {
        Source::MovieLens(dir) => data::prepare(dir)?,
        Source::Synthetic(events) => data::prepare_synthetic(*events),
    };
    if data.ratings.is_empty() {
        return Err(Error::NoRatings);
    }
    match options.protocol {
        Protocol::T => protocol_t::run(&data, options),
        Protocol::P => protocol_p::run(&data, options),
    }
}

pub(crate) fn progress(options: &EvalOptions, length: usize, label: &str) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:32}] {pos}/{len} {per_sec} {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// The report table.
pub fn table(results: &[ModelResult]) -> String {
    let Some(first) = results.first() else {
        return String::new();
    };
    let metric_names: Vec<&str> = first
        .metrics
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    let mut out = format!(
        "Protocol {} ({}, {})\n",
        first.split, first.dataset, "K = 10"
    );
    out.push_str(&format!("{:<32}", "model"));
    for name in &metric_names {
        out.push_str(&format!(" {name:>18}"));
    }
    out.push_str(&format!(
        " {:>10} {:>10} {:>9}\n",
        "events", "evaluated", "seconds"
    ));
    for result in results {
        out.push_str(&format!("{:<32}", result.model));
        for (_, value) in &result.metrics {
            out.push_str(&format!(" {value:>18.4}"));
        }
        out.push_str(&format!(
            " {:>10} {:>10} {:>9.1}\n",
            result.events, result.evaluated, result.seconds
        ));
    }
    out
}

/// The JSON report: one object per model.
pub fn json(results: &[ModelResult]) -> serde_json::Value {
    serde_json::Value::Array(
        results
            .iter()
            .map(|result| {
                let metrics: serde_json::Map<String, serde_json::Value> = result
                    .metrics
                    .iter()
                    .map(|(name, value)| (name.clone(), serde_json::json!(value)))
                    .collect();
                serde_json::json!({
                    "protocol": result.protocol,
                    "split": result.split,
                    "dataset": result.dataset,
                    "model": result.model,
                    "metrics": metrics,
                    "events": result.events,
                    "users": result.users,
                    "evaluated": result.evaluated,
                    "seconds": result.seconds,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::baselines::top_k;
    use super::protocol_t::recall_ndcg;

    #[test]
    fn top_k_breaks_ties_by_the_smaller_item_and_skips_seen() {
        let scores = [1.0, 3.0, 3.0, 0.0, 2.0, 3.0];
        let seen = HashSet::from([2]);
        let mut list = top_k(&scores, &seen);
        list.truncate(4);
        assert_eq!(list, vec![1, 5, 4, 0]);
    }

    #[test]
    fn recall_and_ndcg_follow_the_protocol() {
        let relevant = HashSet::from([7, 9]);
        let (recall, ndcg) = recall_ndcg(&[1, 7, 2], &relevant);
        assert_eq!(recall, 0.5);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg - (1.0 / 3f64.log2()) / ideal).abs() < 1e-12);
    }
}
