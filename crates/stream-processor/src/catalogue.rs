//! Catalogue writes: the one path by which item metadata enters the state.

use marquee_schemas::Item;
use marquee_vector_store::{ItemTable, StateStore};

use crate::error::Result;

/// Numbers new items, stores the entries durably, then publishes them to the item table.
/// Blocking: call from a blocking thread in async code.
pub fn upsert_catalogue(store: &StateStore, items: &ItemTable, entries: Vec<Item>) -> Result<()> {
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
    store.put_catalogue(&entries)?;
    let mut table = items.write();
    for (item, number) in entries {
        table.set_catalogue(number, item);
    }
    Ok(())
}
