//! A data set prepared for both protocols: the catalogue numbered in ascending id order, the
//! ratings in event order with their users numbered.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use marquee_datasets::movielens;
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_schemas::{Event, EventKind, Item};

use crate::error::{Error, Result};

/// One rating, with the item as a catalogue index.
#[derive(Debug, Clone)]
pub(crate) struct Rating {
    pub(crate) user: u32,
    pub(crate) item: u32,
    pub(crate) value: f32,
    pub(crate) timestamp: i64,
    pub(crate) event: Event,
}

/// A data set prepared for both protocols.
pub(crate) struct Prepared {
    pub(crate) name: String,
    /// Catalogue in ascending numeric id order; index = item number in every model.
    pub(crate) catalogue: Vec<Item>,
    /// Ratings in event order.
    pub(crate) ratings: Vec<Rating>,
    pub(crate) users: usize,
}

fn numeric_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

pub(crate) fn prepare(dir: &Path) -> Result<Prepared> {
    let dataset = movielens::load(dir).map_err(|source| Error::Data {
        dir: dir.to_owned(),
        source,
    })?;
    let mut catalogue = dataset.items;
    let known: HashSet<String> = catalogue.iter().map(|item| item.item_id.clone()).collect();
    let mut missing: Vec<String> = dataset
        .ratings
        .iter()
        .filter(|event| !known.contains(&event.item_id))
        .map(|event| event.item_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    missing.sort_by(|a, b| numeric_order(a, b));
    catalogue.extend(missing.into_iter().map(|item_id| Item {
        item_id,
        title: None,
        genres: Vec::new(),
        year: None,
        tags: Vec::new(),
        ..Item::default()
    }));
    catalogue.sort_by(|a, b| numeric_order(&a.item_id, &b.item_id));
    let index: HashMap<&str, u32> = catalogue
        .iter()
        .enumerate()
        .map(|(at, item)| (item.item_id.as_str(), at as u32))
        .collect();
    let mut user_numbers: HashMap<String, u32> = HashMap::new();
    let ratings = dataset
        .ratings
        .into_iter()
        .map(|event| {
            let next = user_numbers.len() as u32;
            let user = *user_numbers.entry(event.user_id.clone()).or_insert(next);
            Rating {
                user,
                item: index[event.item_id.as_str()],
                value: event.value.unwrap_or(0.0),
                timestamp: event.timestamp,
                event,
            }
        })
        .collect();
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Prepared {
        name,
        catalogue,
        ratings,
        users: user_numbers.len(),
    })
}

pub(crate) fn prepare_synthetic(events: u64) -> Prepared {
    let world = Synthetic::new(SyntheticConfig {
        seed: 42,
        users: 100_000,
        items: 20_000,
        clusters: 50,
        events,
        ..SyntheticConfig::default()
    });
    let catalogue: Vec<Item> = world.items().collect();
    let index: HashMap<String, u32> = catalogue
        .iter()
        .enumerate()
        .map(|(at, item)| (item.item_id.clone(), at as u32))
        .collect();
    let mut user_numbers: HashMap<String, u32> = HashMap::new();
    let mut stream = world.events();
    let mut ratings = Vec::with_capacity(events as usize);
    while let Some(event) = stream.next_event() {
        let next = user_numbers.len() as u32;
        let user = *user_numbers.entry(event.user_id.clone()).or_insert(next);
        ratings.push(Rating {
            user,
            item: index[&event.item_id],
            value: match event.kind {
                EventKind::Rating => event.value.unwrap_or(0.0),
                _ => 0.0,
            },
            timestamp: event.timestamp,
            event,
        });
    }
    Prepared {
        name: format!("synthetic-{events}"),
        catalogue,
        ratings,
        users: user_numbers.len(),
    }
}
