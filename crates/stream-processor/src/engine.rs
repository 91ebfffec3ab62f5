//! The model's moving parts wired together over one log and one state store: the one place
//! that does it, for `serve` and for the evaluator alike.

use marquee_ingest::EventLog;
use marquee_vector_store::{IndexConfig, ItemTable, StateStore, VectorIndex};

use crate::error::Result;
use crate::experiments::Experiments;
use crate::model::ModelConfig;
use crate::processor::{Processor, ProcessorConfig};
use crate::query::QueryEngine;
use crate::rules::Rules;
use crate::telemetry::Metrics;
use crate::trending::Trending;

/// A processor and a query engine sharing the item table, the index and the trending list.
pub struct Engine<L: EventLog> {
    pub items: ItemTable,
    /// Not built yet: the caller builds the first graph (and starts the worker, if any).
    pub index: VectorIndex,
    pub processor: Processor<L>,
    pub query: QueryEngine,
    /// The experiments and flags of the state, shared by the processor (attribution) and the
    /// API (assignment).
    pub experiments: Experiments,
    /// The property schema, saved filters, campaigns and deleted items, read by every list.
    pub rules: Rules,
}

impl<L: EventLog> Engine<L> {
    /// Loads every item of `store` into memory and prepares the processor to resume from the
    /// offsets committed there.
    pub fn open(
        log: L,
        store: StateStore,
        model: ModelConfig,
        index: IndexConfig,
        processor: ProcessorConfig,
        metrics: Metrics,
    ) -> Result<Engine<L>> {
        let items = ItemTable::load(
            model.dimension,
            store.load_item_ids()?,
            store.load_items()?,
            store.load_neighbours()?,
            store.load_catalogue()?,
        );
        {
            let mut table = items.write();
            table.set_neighbour_exponent(model.neighbour_exponent);
            table.set_catalogue_only(processor.catalogue_only);
            table.set_factor_scales(store.factor_scales()?);
            let rank = table.dimension();
            let labels = crate::factors::label_vectors(&table, rank, |item| {
                table.stored_vector(item)[..2 * rank].to_vec()
            });
            table.set_label_vectors(labels);
        }
        let index = VectorIndex::new(items.clone(), index);
        let trending = Trending::default();
        let experiments = Experiments::open(store.clone(), processor.recommendation_key)?;
        let rules = Rules::open(store.clone(), items.clone(), processor.clock.clone())?;
        let processor = Processor::new(
            log,
            store.clone(),
            items.clone(),
            index.clone(),
            trending.clone(),
            model.clone(),
            metrics.clone(),
            processor,
            experiments.clone(),
        )?;
        let query = QueryEngine::new(
            model,
            store,
            items.clone(),
            index.clone(),
            trending,
            metrics,
            rules.clone(),
        );
        Ok(Engine {
            items,
            index,
            processor,
            query,
            experiments,
            rules,
        })
    }
}
