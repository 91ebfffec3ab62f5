//! Catalogue writes: the one path by which item metadata enters the state.

use marquee_schemas::Item;
use marquee_vector_store::{ItemDelta, ItemTable, StateStore, VectorIndex};

use crate::error::Result;
use crate::factors::content_vectors;
use crate::rules::{Rules, undeletions};
use crate::search::SearchIndex;

/// Numbers new items, stores the entries durably, then publishes them to the item table. An
/// item without events gets the vectors of its content labels ([`crate::factors`]), committed
/// as an item delta and marked changed in `index`, so it is found through the index from now
/// on. With `search`, the entries are searchable when this returns; its writer is held
/// throughout, so concurrent upserts reach the catalogue and the search index in one order.
/// Blocking: call from a blocking thread in async code.
pub fn upsert_catalogue(
    store: &StateStore,
    items: &ItemTable,
    index: &VectorIndex,
    search: Option<&SearchIndex>,
    entries: Vec<Item>,
) -> Result<()> {
    let search = search.map(SearchIndex::writer);
    let entries: Vec<(Item, u32)> = {
        let mut table = items.write();
        entries
            .into_iter()
            .map(|item| {
                let number = table.assign(&item.item_id).0;
                (item, number)
            })
            .collect()
    };
    let undeleted: Vec<&str> = {
        let table = items.read();
        entries
            .iter()
            .filter(|(_, number)| table.is_deleted(*number))
            .map(|(item, _)| item.item_id.as_str())
            .collect()
    };
    store.put_catalogue(&entries, &undeletions(undeleted.into_iter()))?;
    let deltas: Vec<(u32, ItemDelta)> = {
        let table = items.read();
        let rank = table.dimension();
        entries
            .iter()
            .filter(|(_, number)| table.mass(*number) == 0.0)
            .filter_map(|(item, number)| {
                let both = content_vectors(item, rank, |label| {
                    table.label_vector(label).map(<[f32]>::to_vec)
                })?;
                // Current and solved vectors alike: its first events fold into them.
                let current = table.stored_vector(*number);
                let mut delta = ItemDelta::new(&item.item_id, 0.0);
                delta.vector = both
                    .iter()
                    .chain(&both)
                    .zip(&current)
                    .map(|(new, old)| new - old)
                    .collect();
                Some((*number, delta))
            })
            .collect()
    };
    if !deltas.is_empty() {
        let mut batch = store.batch();
        for (number, delta) in &deltas {
            batch.merge_item(*number, delta)?;
        }
        store.commit_synced(batch)?;
    }
    let mut replaced = Vec::new();
    {
        let mut table = items.write();
        for (item, number) in entries {
            if search.is_some() {
                replaced.push((table.catalogue(number).cloned(), item.clone(), number));
            }
            table.set_catalogue(number, item);
        }
        for (number, delta) in &deltas {
            table.add_delta(*number, delta);
        }
    }
    index.mark_changed(deltas.iter().map(|(number, _)| *number));
    if let Some(mut search) = search {
        for (old, new, number) in &replaced {
            search.replace(old.as_deref(), new, *number)?;
        }
        search.commit()?;
    }
    Ok(())
}

/// Deletes an item ([`Rules::delete_item`]) and its search document, under the search writer
/// like an upsert. `false` when no item has that id.
pub fn delete_item(
    rules: &Rules,
    items: &ItemTable,
    search: Option<&SearchIndex>,
    item_id: &str,
) -> Result<bool> {
    let search = search.map(SearchIndex::writer);
    let old = {
        let table = items.read();
        table
            .number(item_id)
            .and_then(|number| Some((table.catalogue(number)?.clone(), number)))
    };
    if !rules.delete_item(item_id)? {
        return Ok(false);
    }
    if let (Some(mut search), Some((old, number))) = (search, old) {
        search.remove(&old, number);
        search.commit()?;
    }
    Ok(true)
}
