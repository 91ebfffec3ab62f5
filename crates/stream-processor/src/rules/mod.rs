//! The catalogue's business rules: the custom properties' schema, filter expressions and the
//! saved ones, campaigns (boosts and pins), deleted items, and the page tokens of lists.
//!
//! - [`filter`]: the filter language, parsed once per request, evaluated per candidate.
//! - [`campaign`]: [`Campaign`], a boost or a pin for a time window.
//! - [`paging`]: page tokens, which carry what the earlier pages showed.
//!
//! [`Rules`] is the registry. The schema, the saved filters, the campaigns and the deleted items
//! live in the state's `rules` column family (so a restart, a backup and a replay keep them) and
//! the first three in memory behind an `ArcSwap`: a change is read by the very next request,
//! which takes no lock. Deleted items are marked in the item table, which every list reads.
//! In a cluster each node holds its own copy, like the catalogue: an operator sends a change to
//! every node.
//!
//! | key | value |
//! |---|---|
//! | `s` | the property schema: `(name, type)` pairs |
//! | `f` ‖ name | [`SavedFilter`] |
//! | `c` ‖ name | [`Campaign`] |
//! | `d` ‖ item id | deletion time (i64 BE, ms) |

pub mod campaign;
pub mod filter;
pub mod paging;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bincode::{Decode, Encode};
use marquee_schemas::item::validate_property_name;
use marquee_schemas::{Clock, FieldError, PropertySchema, PropertyType};
use marquee_vector_store::store::keys::RULES_CF;
use marquee_vector_store::{EntryWrite, ItemTable, StateStore};

pub use campaign::{Action, Campaign};
pub use filter::{Filter, REQUEST_PROPERTIES};

use crate::error::{Error, Result};

pub const SCHEMA_KEY: &[u8] = b"s";
pub const FILTER_PREFIX: u8 = b'f';
pub const CAMPAIGN_PREFIX: u8 = b'c';
pub const DELETED_PREFIX: u8 = b'd';
/// Most declared properties.
pub const MAX_SCHEMA_PROPERTIES: usize = 256;

/// A filter an operator saved under a name, which requests name as `@name`.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct SavedFilter {
    pub name: String,
    pub description: String,
    pub expression: String,
}

/// The items a filter accepts, computed with one pass over the item table and kept until the
/// catalogue changes ([`marquee_vector_store::Table::catalogue_version`]): a request then
/// checks a candidate with one bit, and a narrow filter's few matches can be scored directly.
#[derive(Debug)]
pub struct MatchSet {
    version: u64,
    bits: Vec<u64>,
    /// The matching item numbers, ascending.
    pub members: Vec<u32>,
}

impl MatchSet {
    pub fn contains(&self, item: u32) -> bool {
        self.bits
            .get(item as usize / 64)
            .is_some_and(|word| word & (1 << (item % 64)) != 0)
    }
}

/// Filters' matches by [`Filter::key`]. A clone starts empty: a changed rule set (a schema or
/// a saved filter changed) must not reuse the matches of the one before.
#[derive(Debug, Default)]
struct MatchCache(parking_lot::Mutex<std::collections::HashMap<String, Arc<MatchSet>>>);

impl Clone for MatchCache {
    fn clone(&self) -> MatchCache {
        MatchCache::default()
    }
}

/// Filters whose matches are kept at most; past it the cache starts again.
const MAX_CACHED_FILTERS: usize = 256;

/// Every rule, as one snapshot.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub schema: PropertySchema,
    /// By name.
    pub filters: BTreeMap<String, SavedFilter>,
    /// By name.
    pub campaigns: BTreeMap<String, Arc<Campaign>>,
    /// Saved filter name → expression, for the parser.
    expressions: BTreeMap<String, String>,
    /// The campaigns' filters, parsed (they cannot name a request's parameters: they are
    /// parsed once, not per request).
    campaign_filters: BTreeMap<String, Filter>,
    matches: MatchCache,
}

impl RuleSet {
    /// Parses a request's filter expression with this schema and these saved filters; the
    /// error names `field`.
    pub fn parse(
        &self,
        field: &str,
        text: &str,
        request: &BTreeMap<String, String>,
    ) -> std::result::Result<Filter, FieldError> {
        Filter::parse(
            text,
            field,
            &filter::Context {
                schema: &self.schema,
                saved: &self.expressions,
                request,
            },
        )
    }

    /// The campaigns in effect at `now`, with their filters, by name.
    pub fn active_campaigns(&self, now: i64) -> Vec<(&Campaign, Option<&Filter>)> {
        self.campaigns
            .values()
            .filter(|campaign| campaign.active_at(now))
            .map(|campaign| (campaign.as_ref(), self.campaign_filters.get(&campaign.name)))
            .collect()
    }

    /// The items of `items` that `filter` accepts, from the cache while the catalogue has not
    /// changed, else from one pass over the table.
    pub fn matches(&self, filter: &Filter, items: &ItemTable) -> Arc<MatchSet> {
        let version = items.read().catalogue_version();
        if let Some(cached) = self.matches.0.lock().get(filter.key())
            && cached.version == version
        {
            return Arc::clone(cached);
        }
        let set = {
            let table = items.read();
            let mut bits = vec![0u64; table.len().div_ceil(64)];
            let mut members = Vec::new();
            for number in table.numbers() {
                let id = table.id(number).map_or("", |id| id);
                if filter.accepts(id, table.catalogue(number).map(Arc::as_ref)) {
                    bits[number as usize / 64] |= 1 << (number % 64);
                    members.push(number);
                }
            }
            Arc::new(MatchSet {
                version: table.catalogue_version(),
                bits,
                members,
            })
        };
        let mut cache = self.matches.0.lock();
        if cache.len() >= MAX_CACHED_FILTERS {
            cache.clear();
        }
        cache.insert(filter.key().to_owned(), Arc::clone(&set));
        set
    }

    /// Whether any campaign is in effect at `now`.
    pub fn has_active_campaigns(&self, now: i64) -> bool {
        self.campaigns
            .values()
            .any(|campaign| campaign.active_at(now))
    }

    /// Checks an expression a saved filter or a campaign stores: its syntax, its fields, with
    /// every request parameter present (the request gives them later).
    fn check_stored(&self, field: &str, text: &str) -> std::result::Result<Filter, FieldError> {
        let request: BTreeMap<String, String> = REQUEST_PROPERTIES
            .iter()
            .map(|name| ((*name).to_owned(), "0".to_owned()))
            .collect();
        self.parse(field, text, &request)
    }
}

/// The registry of rules. Cheap to clone.
#[derive(Clone)]
pub struct Rules {
    inner: Arc<Inner>,
}

struct Inner {
    store: StateStore,
    items: ItemTable,
    clock: Clock,
    current: ArcSwap<RuleSet>,
    /// Serialises changes (each reads the snapshot, then writes the store and the snapshot).
    changes: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.inner.current.load();
        f.debug_struct("Rules")
            .field("properties", &current.schema.len())
            .field("filters", &current.filters.len())
            .field("campaigns", &current.campaigns.len())
            .finish()
    }
}

fn encode<T: Encode>(value: &T) -> Result<Vec<u8>> {
    marquee_schemas::encode_record(value).map_err(|source| {
        Error::State(marquee_vector_store::Error::Encode {
            column_family: RULES_CF,
            source,
        })
    })
}

fn decode<T: Decode<()>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    marquee_schemas::decode_record(bytes).map_err(|source| {
        Error::State(marquee_vector_store::Error::CorruptRecord {
            column_family: RULES_CF,
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        })
    })
}

fn named_key(prefix: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(prefix);
    key.extend_from_slice(name.as_bytes());
    key
}

impl Rules {
    /// Loads the rules of `store` and marks its deleted items in `items`.
    pub fn open(store: StateStore, items: ItemTable, clock: Clock) -> Result<Rules> {
        let mut set = RuleSet::default();
        if let Some((key, bytes)) = store.rule_entries(SCHEMA_KEY)?.into_iter().next()
            && key == SCHEMA_KEY
        {
            let pairs: Vec<(String, PropertyType)> = decode(&key, &bytes)?;
            set.schema = pairs.into_iter().collect();
        }
        for (key, bytes) in store.rule_entries(&[FILTER_PREFIX])? {
            let saved: SavedFilter = decode(&key, &bytes)?;
            set.filters.insert(saved.name.clone(), saved);
        }
        for (key, bytes) in store.rule_entries(&[CAMPAIGN_PREFIX])? {
            let campaign: Campaign = decode(&key, &bytes)?;
            set.campaigns
                .insert(campaign.name.clone(), Arc::new(campaign));
        }
        let set = reparsed(set);
        {
            let mut table = items.write();
            // An item deleted in a state whose table does not number it yet (a replay opens
            // an empty state) is marked at the next start, when its events have numbered it.
            for (key, _) in store.rule_entries(&[DELETED_PREFIX])? {
                let item_id = String::from_utf8_lossy(&key[1..]);
                if let Some(number) = table.number(&item_id) {
                    table.set_deleted(number, true);
                }
            }
        }
        Ok(Rules {
            inner: Arc::new(Inner {
                store,
                items,
                clock,
                current: ArcSwap::from_pointee(set),
                changes: parking_lot::Mutex::new(()),
            }),
        })
    }

    /// The current rules.
    pub fn current(&self) -> Arc<RuleSet> {
        self.inner.current.load_full()
    }

    /// The node's clock (licence windows and campaigns are read against it).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Replaces the property schema. Items already stored keep their values; a filter compares
    /// by the stored value's type, so a property whose type changed matches nothing until its
    /// items are upserted again.
    pub fn put_schema(&self, schema: PropertySchema) -> Result<()> {
        if schema.len() > MAX_SCHEMA_PROPERTIES {
            return Err(Error::Invalid(FieldError::new(
                "properties",
                format!("must declare at most {MAX_SCHEMA_PROPERTIES}"),
            )));
        }
        for name in schema.keys() {
            validate_property_name(name, name).map_err(Error::Invalid)?;
        }
        let _change = self.inner.changes.lock();
        let pairs: Vec<(String, PropertyType)> =
            schema.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.inner
            .store
            .write_rules(&[(SCHEMA_KEY.to_vec(), Some(encode(&pairs)?))])?;
        let mut set = (*self.current()).clone();
        set.schema = schema;
        self.inner.current.store(Arc::new(reparsed(set)));
        Ok(())
    }

    /// Creates or replaces a saved filter, after parsing it.
    pub fn put_filter(&self, saved: SavedFilter) -> Result<()> {
        crate::experiments::definition::validate_name("name", &saved.name)
            .map_err(Error::Invalid)?;
        let _change = self.inner.changes.lock();
        let mut set = (*self.current()).clone();
        set.check_stored("expression", &saved.expression)
            .map_err(Error::Invalid)?;
        let key = named_key(FILTER_PREFIX, &saved.name);
        self.inner
            .store
            .write_rules(&[(key, Some(encode(&saved)?))])?;
        set.filters.insert(saved.name.clone(), saved);
        self.inner.current.store(Arc::new(reparsed(set)));
        Ok(())
    }

    /// Deletes a saved filter; a campaign that names it must go first.
    pub fn delete_filter(&self, name: &str) -> Result<()> {
        let _change = self.inner.changes.lock();
        let mut set = (*self.current()).clone();
        if set.filters.remove(name).is_none() {
            return Err(Error::NotFound(format!("name: no saved filter {name:?}")));
        }
        let reference = format!("@{name}");
        if let Some(campaign) = set.campaigns.values().find(|campaign| {
            campaign
                .filter
                .as_deref()
                .is_some_and(|text| text.contains(&reference))
        }) {
            return Err(Error::Invalid(FieldError::new(
                "name",
                format!(
                    "campaign {:?} names it; change or delete it first",
                    campaign.name
                ),
            )));
        }
        self.inner
            .store
            .write_rules(&[(named_key(FILTER_PREFIX, name), None)])?;
        self.inner.current.store(Arc::new(reparsed(set)));
        Ok(())
    }

    /// Creates or replaces a campaign, after checking it and its filter.
    pub fn put_campaign(&self, campaign: Campaign) -> Result<()> {
        campaign.validate().map_err(Error::Invalid)?;
        let _change = self.inner.changes.lock();
        let mut set = (*self.current()).clone();
        if let Some(text) = &campaign.filter {
            set.parse("filter", text, &BTreeMap::new())
                .map_err(Error::Invalid)?;
        }
        let key = named_key(CAMPAIGN_PREFIX, &campaign.name);
        self.inner
            .store
            .write_rules(&[(key, Some(encode(&campaign)?))])?;
        set.campaigns
            .insert(campaign.name.clone(), Arc::new(campaign));
        self.inner.current.store(Arc::new(reparsed(set)));
        Ok(())
    }

    pub fn delete_campaign(&self, name: &str) -> Result<()> {
        let _change = self.inner.changes.lock();
        let mut set = (*self.current()).clone();
        if set.campaigns.remove(name).is_none() {
            return Err(Error::NotFound(format!("name: no campaign {name:?}")));
        }
        self.inner
            .store
            .write_rules(&[(named_key(CAMPAIGN_PREFIX, name), None)])?;
        self.inner.current.store(Arc::new(reparsed(set)));
        Ok(())
    }

    /// Deletes an item: its catalogue entry goes and it is marked deleted (durably, in one
    /// write), so no list, search or similar-items answer holds it from the next request on,
    /// until an upsert brings it back. Its events stay in the log and in the model. `false`
    /// when no item has that id.
    pub fn delete_item(&self, item_id: &str) -> Result<bool> {
        let Some(number) = self.inner.items.read().number(item_id) else {
            return Ok(false);
        };
        let deleted_at = self.inner.clock.now_ms().to_be_bytes().to_vec();
        self.inner.store.delete_catalogue(
            item_id,
            &[(named_key(DELETED_PREFIX, item_id), Some(deleted_at))],
        )?;
        self.inner.items.write().set_deleted(number, true);
        Ok(true)
    }
}

/// The writes that undelete `item_ids` (an upsert brings a deleted item back).
pub fn undeletions<'a>(item_ids: impl Iterator<Item = &'a str>) -> Vec<EntryWrite> {
    item_ids
        .map(|item_id| (named_key(DELETED_PREFIX, item_id), None))
        .collect()
}

/// `set` with its saved filters' expressions and campaigns' filters parsed again (after the
/// schema or a saved filter changed). A stored expression that no longer parses (its property
/// was removed from the schema) matches nothing: its campaign names no item until it is fixed.
fn reparsed(mut set: RuleSet) -> RuleSet {
    set.expressions = set
        .filters
        .values()
        .map(|saved| (saved.name.clone(), saved.expression.clone()))
        .collect();
    let parsed: BTreeMap<String, Filter> = set
        .campaigns
        .values()
        .filter_map(|campaign| {
            let text = campaign.filter.as_deref()?;
            let filter = set.parse("filter", text, &BTreeMap::new()).ok()?;
            Some((campaign.name.clone(), filter))
        })
        .collect();
    set.campaign_filters = parsed;
    set
}
