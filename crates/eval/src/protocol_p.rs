//! Protocol P: prequential, test then learn (see the crate docs).

use std::collections::HashSet;
use std::time::Instant;

use crate::baselines::{CoCounts, top_k};
use crate::data::{Prepared, Rating};
use crate::error::Result;

use crate::system::System;
use crate::{
    EvalOptions, KNN_MAX_ITEMS, ModelResult, POSITIVE, Protocol, STREAM_KNN_HISTORY, progress,
};

/// Positions of each step's ratings, in stream order.
fn steps(ratings: &[Rating]) -> Vec<Vec<usize>> {
    let mut steps = Vec::new();
    let mut start = 0;
    while start < ratings.len() {
        let mut end = start;
        while end < ratings.len() && ratings[end].timestamp == ratings[start].timestamp {
            end += 1;
        }
        let mut by_user: Vec<(u32, Vec<usize>)> = Vec::new();
        for (position, rating) in ratings.iter().enumerate().take(end).skip(start) {
            let user = rating.user;
            match by_user.iter_mut().find(|(other, _)| *other == user) {
                Some((_, positions)) => positions.push(position),
                None => by_user.push((user, vec![position])),
            }
        }
        steps.extend(by_user.into_iter().map(|(_, positions)| positions));
        start = end;
    }
    steps
}

/// Hit counters of Protocol P.
#[derive(Default)]
struct Hits {
    hits: usize,
    evaluated: usize,
    second_hits: usize,
    second_evaluated: usize,
}

impl Hits {
    fn score(&mut self, list: &[u32], step: &[usize], ratings: &[Rating], half: usize) {
        for &position in step {
            let rating = &ratings[position];
            if rating.value < POSITIVE {
                continue;
            }
            let hit = list.contains(&rating.item);
            self.evaluated += 1;
            self.hits += usize::from(hit);
            if position >= half {
                self.second_evaluated += 1;
                self.second_hits += usize::from(hit);
            }
        }
    }
}

/// The stream a run replays, and how it reports.
struct Stream<'a> {
    data: &'a Prepared,
    options: &'a EvalOptions,
    ratings: &'a [Rating],
    steps: Vec<Vec<usize>>,
    /// Positions from here on are the stream's second half.
    half: usize,
}

impl Stream<'_> {
    fn report(&self, model: &str, hits: &Hits, seconds: f64) -> ModelResult {
        let ratio = |hits: usize, of: usize| hits as f64 / of.max(1) as f64;
        let first_half = self.options.first_half;
        ModelResult {
            protocol: Protocol::P,
            dataset: self.data.name.clone(),
            split: if first_half { "P-first-half" } else { "P" }.into(),
            model: model.into(),
            metrics: if first_half {
                // The first half has no second half to report.
                vec![("hr@10".into(), ratio(hits.hits, hits.evaluated))]
            } else {
                vec![
                    ("hr@10".into(), ratio(hits.hits, hits.evaluated)),
                    (
                        "hr@10_second_half".into(),
                        ratio(hits.second_hits, hits.second_evaluated),
                    ),
                ]
            },
            events: self.ratings.len(),
            users: self.data.users,
            evaluated: hits.evaluated,
            seconds,
        }
    }
}

pub(crate) fn run(data: &Prepared, options: &EvalOptions) -> Result<Vec<ModelResult>> {
    let half = data.ratings.len() / 2;
    let ratings = if options.first_half {
        &data.ratings[..half]
    } else {
        &data.ratings[..]
    };
    let stream = Stream {
        data,
        options,
        ratings,
        steps: steps(ratings),
        half,
    };
    let mut results = Vec::new();
    if !options.skip_baselines {
        results.push(popularity(&stream));
        if data.catalogue.len() <= KNN_MAX_ITEMS {
            results.push(item_knn(&stream));
        } else {
            eprintln!("item-kNN skipped: the dense baseline handles at most {KNN_MAX_ITEMS} items");
        }
    }
    results.extend(marquee(&stream)?);
    Ok(results)
}

/// Popularity so far: positives counted as the stream goes.
fn popularity(stream: &Stream<'_>) -> ModelResult {
    let (data, ratings) = (stream.data, stream.ratings);
    let started = Instant::now();
    let mut counts = vec![0.0f32; data.catalogue.len()];
    let mut seen: Vec<HashSet<u32>> = vec![HashSet::new(); data.users];
    let mut hits = Hits::default();
    for step in &stream.steps {
        let user = ratings[step[0]].user as usize;
        if !seen[user].is_empty() {
            hits.score(&top_k(&counts, &seen[user]), step, ratings, stream.half);
        }
        for &position in step {
            let rating = &ratings[position];
            seen[user].insert(rating.item);
            if rating.value >= POSITIVE {
                counts[rating.item as usize] += 1.0;
            }
        }
    }
    stream.report("popularity so far", &hits, started.elapsed().as_secs_f64())
}

/// Item-kNN over co-occurrence counts maintained as the stream goes.
fn item_knn(stream: &Stream<'_>) -> ModelResult {
    let (data, ratings) = (stream.data, stream.ratings);
    let items = data.catalogue.len();
    let started = Instant::now();
    let mut knn = CoCounts::new(items);
    let mut seen: Vec<HashSet<u32>> = vec![HashSet::new(); data.users];
    let mut positives: Vec<Vec<u32>> = vec![Vec::new(); data.users];
    let mut hits = Hits::default();
    let bar = progress(stream.options, stream.steps.len(), "item-kNN: steps");
    for step in &stream.steps {
        let user = ratings[step[0]].user as usize;
        if !seen[user].is_empty() {
            let history = &positives[user];
            let recent = &history[history.len().saturating_sub(STREAM_KNN_HISTORY)..];
            hits.score(
                &knn.recommend(recent, &seen[user]),
                step,
                ratings,
                stream.half,
            );
        }
        for &position in step {
            let rating = &ratings[position];
            seen[user].insert(rating.item);
            if rating.value >= POSITIVE && !positives[user].contains(&rating.item) {
                let item = rating.item as usize;
                knn.count[item] += 1.0;
                for &other in &positives[user] {
                    knn.pairs[item * items + other as usize] += 1.0;
                    knn.pairs[other as usize * items + item] += 1.0;
                }
                positives[user].push(rating.item);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    stream.report(
        "item-kNN (stream co-occurrence)",
        &hits,
        started.elapsed().as_secs_f64(),
    )
}

/// The production system: a list of each row's ranking before each step of a known user,
/// then the step applied.
fn marquee(stream: &Stream<'_>) -> Result<Vec<ModelResult>> {
    let ratings = stream.ratings;
    let started = Instant::now();
    let mut system = System::open(stream.data, stream.options)?;
    let mut known: HashSet<u32> = HashSet::new();
    let rows = crate::rows(stream.options);
    let mut hits: Vec<Hits> = rows.iter().map(|_| Hits::default()).collect();
    let bar = progress(stream.options, stream.steps.len(), "marquee: steps");
    let mut step_ratings = Vec::new();
    for step in &stream.steps {
        let user = ratings[step[0]].user;
        if known.contains(&user) {
            system.before_queries();
            for ((_, settings), hits) in rows.iter().zip(&mut hits) {
                let list = system.recommend(user, settings)?;
                hits.score(&list, step, ratings, stream.half);
            }
        }
        step_ratings.clear();
        step_ratings.extend(step.iter().map(|&position| ratings[position].clone()));
        system.apply(&step_ratings)?;
        known.insert(user);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    Ok(rows
        .iter()
        .zip(&hits)
        .map(|((model, _), hits)| stream.report(model, hits, seconds))
        .collect())
}
