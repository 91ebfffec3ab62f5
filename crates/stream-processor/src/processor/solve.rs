//! Solving the item vectors' factorisation ([`crate::factors`]) from the processor.
//!
//! A processor that runs alone ([`Processor::step`]: the evaluator, replay, benchmarks) solves
//! in place, between two batches, once [`ModelConfig::solve_every_events`] events were applied
//! since the last solve: at the same events every run, so results repeat.
//!
//! A node's workers solve in the background instead, so that the processor never stops for
//! seconds: worker 0 takes a snapshot of the co-occurrence (under a read lock), a thread of its
//! own solves it at the index builds' niceness, and worker 0 installs the result between two of
//! its batches. The pairs published meanwhile are recorded, and folded into the new vectors
//! when they are installed: nothing learnt while the solve ran is lost. A solve commits its
//! vectors as item deltas (what replaces the old vectors), with the new scales, in one write,
//! before they reach memory. The solve's thread also builds the index's graph of the solved
//! vectors, which the install swaps in with them: queries never search a graph of another basis
//! than the vectors they score with, and the side set holds only the items the recorded pairs
//! moved (`marquee_vector_store::index::basis`). A solve in place (no graph) marks every item
//! changed instead, and the index rebuilds.
//! After a background solve of `d` seconds, the next waits at least [`SOLVE_REST`] `· d`: a
//! node whose solves take seconds (100,000 items) spends at most a fifth of a core on them,
//! however fast events come, and solves every `solve_every_events` when they are quick.
//!
//! [`ModelConfig::solve_every_events`]: crate::model::ModelConfig::solve_every_events

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use marquee_ingest::EventLog;
use marquee_vector_store::{ItemDelta, ItemTable, PreparedGraph, Table, VectorIndex};
use tracing::{error, info};

use super::{Processor, Shared};
use crate::error::Result;
use crate::factors::{
    Factors, Snapshot, Solved as SolvedView, fold_in, label_vectors, replacement, solve,
    with_content,
};

/// The rest after a background solve, in multiples of its duration (as the index's builds).
pub(super) const SOLVE_REST: f64 = 4.0;

/// A background solve's result, waiting for worker 0.
#[derive(Debug)]
pub(super) struct Solved {
    factors: Factors,
    seconds: f64,
    /// The graph of the solved vectors, swapped in with them (see
    /// `marquee_vector_store::index::basis`); `None` if the index shut down meanwhile.
    graph: Option<PreparedGraph>,
}

impl<L: EventLog> Processor<L> {
    /// Whether a solve is due: enough events since the last, or pairs and no solve yet.
    pub fn factors_due(&self) -> bool {
        let every = self.model.solve_every_events;
        if every == 0 {
            return false;
        }
        let since = self.shared.applied_since_solve.load(Ordering::Acquire);
        since >= every || (since > 0 && self.items.read().factor_scales().is_empty())
    }

    /// Solves the factorisation now, on this thread, and installs it (see the module docs).
    pub fn solve_factors(&mut self) -> Result<()> {
        let started = Instant::now();
        let snapshot = Snapshot::of(&self.items.read());
        self.shared.applied_since_solve.store(0, Ordering::Release);
        let factors = solve(&snapshot, self.model.dimension);
        self.install(&factors, Vec::new(), None)?;
        self.metrics
            .factor_solve_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Worker 0's share of background solves: installs a finished one, starts one when due.
    pub(super) fn tend_factors(&mut self) {
        if self.worker != 0 {
            return;
        }
        let finished = self.shared.solved.lock().take();
        if let Some(Solved {
            factors,
            seconds,
            graph,
        }) = finished
        {
            let recorded = self.shared.recorded_pairs.lock().take().unwrap_or_default();
            match self.install(&factors, recorded, graph) {
                Ok(()) => {
                    self.metrics.factor_solve_duration.observe(seconds);
                    *self.shared.next_solve.lock() = Some(
                        Instant::now() + std::time::Duration::from_secs_f64(SOLVE_REST * seconds),
                    );
                    info!(
                        seconds,
                        items = factors.sources.len() / factors.rank.max(1),
                        "item vectors solved"
                    );
                }
                Err(failure) => error!(error = %failure, "installing solved item vectors failed"),
            }
            self.shared.solving.store(false, Ordering::Release);
            return;
        }
        if self.shared.solving.load(Ordering::Acquire) || !self.factors_due() {
            return;
        }
        if self
            .shared
            .next_solve
            .lock()
            .is_some_and(|next| Instant::now() < next)
        {
            return;
        }
        self.shared.solving.store(true, Ordering::Release);
        let snapshot = {
            let table = self.items.read();
            // Recording starts with the snapshot: the pairs published from now on are folded
            // into the new vectors when they are installed.
            *self.shared.recorded_pairs.lock() = Some(Vec::new());
            Snapshot::of(&table)
        };
        self.shared.applied_since_solve.store(0, Ordering::Release);
        let rank = self.model.dimension;
        let nice = self.index.config().background_nice;
        let shared = Arc::clone(&self.shared);
        let items = self.items.clone();
        let index = self.index.clone();
        let spawned = std::thread::Builder::new()
            .name("factor-solve".into())
            .spawn(move || solve_in_background(&shared, &snapshot, rank, nice, &items, &index));
        if let Err(failure) = spawned {
            error!(error = %failure, "could not start a solve of the item vectors");
            *self.shared.recorded_pairs.lock() = None;
            self.shared.solving.store(false, Ordering::Release);
        }
    }

    /// Replaces the item vectors by `factors` and folds `recorded` pairs into them: committed
    /// as item deltas with the new scales, then published. The index then swaps in `graph`,
    /// built on the solved vectors, or (without one) marks every item changed.
    fn install(
        &mut self,
        factors: &Factors,
        recorded: Vec<(u32, Vec<(u32, f32)>)>,
        graph: Option<PreparedGraph>,
    ) -> Result<()> {
        let half_life_ms = self.model.popularity_half_life_ms();
        let (labels, factors) = with_labels(&self.items.read(), factors);
        let factors = &factors;
        let mut changes: HashMap<u32, Vec<f32>> = {
            let table = self.items.read();
            replacement(&table, factors).into_iter().collect()
        };
        if !recorded.is_empty() {
            // The pairs published while the solve ran, folded into the new vectors.
            let table = self.items.read();
            let mut folded = HashMap::new();
            fold_in(
                &SolvedView {
                    table: &table,
                    factors,
                },
                &recorded,
                &mut folded,
            );
            for (number, change) in folded {
                let slot = changes
                    .entry(number)
                    .or_insert_with(|| vec![0.0; change.len()]);
                for (sum, part) in slot.iter_mut().zip(change) {
                    *sum += part;
                }
            }
        }
        let mut deltas: Vec<(u32, ItemDelta)> = {
            let table = self.items.read();
            changes
                .into_iter()
                .map(|(number, vector)| {
                    let mut delta =
                        ItemDelta::new(table.id(number).map_or("", |id| id), half_life_ms);
                    delta.vector = vector;
                    (number, delta)
                })
                .collect()
        };
        deltas.sort_unstable_by_key(|(number, _)| *number);
        let mut batch = self.store.batch();
        for (number, delta) in &deltas {
            batch.merge_item(*number, delta)?;
        }
        batch.put_factor_scales(&factors.scales);
        self.store.commit(batch)?;
        {
            let mut table = self.items.write();
            for (number, delta) in &deltas {
                table.add_delta(*number, delta);
            }
            table.set_factor_scales(factors.scales.clone());
            table.set_label_vectors(labels);
        }
        match graph {
            Some(graph) => self.index.install_prepared(graph),
            None => self
                .index
                .mark_changed(deltas.iter().map(|(number, _)| *number)),
        }
        self.metrics.factor_solves.inc();
        Ok(())
    }
}

/// The label vectors of `factors` and the factors with the content part of items without
/// events (what a solve installs before the recorded pairs are folded in).
fn with_labels(table: &Table, factors: &Factors) -> (HashMap<String, Vec<f32>>, Factors) {
    let rank = factors.rank;
    let labels = label_vectors(table, rank, |item| {
        let start = item as usize * rank;
        if start + rank > factors.sources.len() {
            return Vec::new();
        }
        let mut both = factors.sources[start..start + rank].to_vec();
        both.extend_from_slice(&factors.targets[start..start + rank]);
        both
    });
    let mut with_labels = factors.clone();
    with_content(table, &mut with_labels, &labels);
    (labels, with_labels)
}

/// Every item's target vector once `factors` are installed, as far as the table shows now: the
/// solved target of the items the solve knows, the current vector of the others.
fn solved_targets(table: &Table, factors: &Factors) -> Vec<(u32, Vec<f32>)> {
    let (_, factors) = with_labels(table, factors);
    let rank = factors.rank;
    let solved = if rank == table.dimension() {
        factors.targets.len() / rank.max(1)
    } else {
        0
    };
    table
        .numbers()
        .map(|number| {
            let at = number as usize;
            let vector = if at < solved {
                factors.targets[at * rank..(at + 1) * rank].to_vec()
            } else {
                table.vector(number).to_vec()
            };
            (number, vector)
        })
        .collect()
}

/// The background solve's thread body: the solve, then the graph of its vectors, both at the
/// background niceness (queries meanwhile search the old graph with the old vectors).
fn solve_in_background(
    shared: &Shared,
    snapshot: &Snapshot,
    rank: usize,
    nice: u8,
    items: &ItemTable,
    index: &VectorIndex,
) {
    marquee_vector_store::index::lower_priority(nice);
    let started = Instant::now();
    let factors = solve(snapshot, rank);
    let targets = solved_targets(&items.read(), &factors);
    let graph = index.prepare(targets);
    *shared.solved.lock() = Some(Solved {
        factors,
        seconds: started.elapsed().as_secs_f64(),
        graph,
    });
}
