//! Protocol T: per-user temporal hold-out (see the crate docs).

use std::collections::HashSet;
use std::time::Instant;

use crate::baselines::{CoCounts, top_k};
use crate::data::{Prepared, Rating};
use crate::error::Result;
use crate::rows;
use crate::system::System;
use crate::{
    APPEND_CHUNK, EvalOptions, K, KNN_MAX_ITEMS, ModelResult, POSITIVE, Protocol, progress,
};

struct SplitT {
    /// Training ratings in event order.
    training: Vec<Rating>,
    /// Per test user: training items, relevant items.
    test_users: Vec<(u32, HashSet<u32>, HashSet<u32>)>,
}

fn split_t(data: &Prepared, validation: bool) -> SplitT {
    let mut per_user: Vec<Vec<usize>> = vec![Vec::new(); data.users];
    for (position, rating) in data.ratings.iter().enumerate() {
        per_user[rating.user as usize].push(position);
    }
    let mut in_training = vec![false; data.ratings.len()];
    let mut test_users = Vec::new();
    for (user, positions) in per_user.iter().enumerate() {
        let cut = |n: usize| n - (n / 5).max(1).min(n);
        let mut training_end = cut(positions.len());
        let mut test = &positions[training_end..];
        if validation {
            let inner = cut(training_end);
            test = &positions[inner..training_end];
            training_end = inner;
        }
        let training = &positions[..training_end];
        for &position in training {
            in_training[position] = true;
        }
        let relevant: HashSet<u32> = test
            .iter()
            .map(|&position| &data.ratings[position])
            .filter(|rating| rating.value >= POSITIVE)
            .map(|rating| rating.item)
            .collect();
        if !training.is_empty() && !relevant.is_empty() {
            let seen = training
                .iter()
                .map(|&position| data.ratings[position].item)
                .collect();
            test_users.push((user as u32, seen, relevant));
        }
    }
    let training = data
        .ratings
        .iter()
        .zip(&in_training)
        .filter(|(_, keep)| **keep)
        .map(|(rating, _)| rating.clone())
        .collect();
    SplitT {
        training,
        test_users,
    }
}

/// Recall@K and NDCG@K of one list.
pub(crate) fn recall_ndcg(list: &[u32], relevant: &HashSet<u32>) -> (f64, f64) {
    let ideal_hits = relevant.len().min(K);
    let mut hits = 0usize;
    let mut dcg = 0.0;
    for (position, item) in list.iter().take(K).enumerate() {
        if relevant.contains(item) {
            hits += 1;
            dcg += 1.0 / ((position + 2) as f64).log2();
        }
    }
    let idcg: f64 = (0..ideal_hits)
        .map(|position| 1.0 / ((position + 2) as f64).log2())
        .sum();
    (hits as f64 / ideal_hits as f64, dcg / idcg)
}

/// The distinct genres of a list's items: how much of the catalogue's breadth it shows.
pub(crate) fn genres_covered(catalogue: &[marquee_schemas::Item], list: &[u32]) -> usize {
    list.iter()
        .filter_map(|item| catalogue.get(*item as usize))
        .flat_map(|item| item.genres.iter())
        .collect::<HashSet<_>>()
        .len()
}

pub(crate) fn run(data: &Prepared, options: &EvalOptions) -> Result<Vec<ModelResult>> {
    let split = split_t(data, options.validation);
    let split_name = if options.validation {
        "T-validation"
    } else {
        "T"
    };
    let items = data.catalogue.len();
    let report = |model: &str, lists: Vec<Vec<u32>>, seconds: f64| {
        let mut recall = 0.0;
        let mut ndcg = 0.0;
        let mut genres = 0.0;
        for (list, (_, _, relevant)) in lists.iter().zip(&split.test_users) {
            let (r, n) = recall_ndcg(list, relevant);
            recall += r;
            ndcg += n;
            genres += genres_covered(&data.catalogue, list) as f64;
        }
        let users = split.test_users.len().max(1) as f64;
        ModelResult {
            protocol: Protocol::T,
            dataset: data.name.clone(),
            split: split_name.into(),
            model: model.into(),
            metrics: vec![
                ("recall@10".into(), recall / users),
                ("ndcg@10".into(), ndcg / users),
                ("genres@10".into(), genres / users),
            ],
            events: split.training.len(),
            users: split.test_users.len(),
            evaluated: split.test_users.len(),
            seconds,
        }
    };
    let mut results = Vec::new();
    if !options.skip_baselines {
        let started = Instant::now();
        let mut counts = vec![0.0f32; items];
        for rating in split.training.iter().filter(|r| r.value >= POSITIVE) {
            counts[rating.item as usize] += 1.0;
        }
        let lists = split
            .test_users
            .iter()
            .map(|(_, seen, _)| top_k(&counts, seen))
            .collect();
        results.push(report("popularity", lists, started.elapsed().as_secs_f64()));

        if items <= KNN_MAX_ITEMS {
            let started = Instant::now();
            let mut positives: Vec<Vec<u32>> = vec![Vec::new(); data.users];
            for rating in split.training.iter().filter(|r| r.value >= POSITIVE) {
                positives[rating.user as usize].push(rating.item);
            }
            for list in &mut positives {
                list.sort_unstable();
                list.dedup();
            }
            let mut knn = CoCounts::new(items);
            for list in &positives {
                for &a in list {
                    knn.count[a as usize] += 1.0;
                    for &b in list {
                        if a != b {
                            knn.pairs[a as usize * items + b as usize] += 1.0;
                        }
                    }
                }
            }
            let lists = split
                .test_users
                .iter()
                .map(|(user, seen, _)| knn.recommend(&positives[*user as usize], seen))
                .collect();
            results.push(report(
                "item-kNN (cosine)",
                lists,
                started.elapsed().as_secs_f64(),
            ));
        } else {
            eprintln!("item-kNN skipped: the dense baseline handles at most {KNN_MAX_ITEMS} items");
        }
    }

    let started = Instant::now();
    let mut system = System::open(data, options)?;
    let bar = progress(options, split.training.len(), "marquee: training");
    for chunk in split.training.chunks(APPEND_CHUNK) {
        system.apply(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    system.processor.refresh_trending();
    system.before_queries();
    let trained = started.elapsed().as_secs_f64();
    for (model, settings) in rows(options) {
        let started = Instant::now();
        let bar = progress(options, split.test_users.len(), "marquee: queries");
        let mut lists = Vec::with_capacity(split.test_users.len());
        for (user, _, _) in &split.test_users {
            lists.push(system.recommend(*user, &settings)?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        results.push(report(
            &model,
            lists,
            trained + started.elapsed().as_secs_f64(),
        ));
    }
    Ok(results)
}
