//! Model state: what the stream processor derives from the log, and what queries read.
//!
//! - [`records`]: what is stored per user and per item ([`UserState`], [`SeenEntry`],
//!   [`ItemState`], [`Popularity`]); a leaf the other modules share.
//! - [`store`]: the state RocksDB instance (`<data-dir>/state`) — every column family, key
//!   encoding and write option of this crate lives there. Users, seen items, item vectors,
//!   catalogue, de-duplication keys and consumer offsets.
//! - [`items`]: [`ItemTable`], the in-memory copy of every item's vector, popularity and
//!   catalogue entry and co-occurrence list, indexed by a dense item number.
//! - [`delta`]: [`ItemDelta`], what a batch adds to an item, written as a merge operand;
//!   deltas commute, so processor loops sharing items need no lock.
//! - [`neighbours`]: [`Neighbours`], an item's bounded co-occurrence list, persisted through a
//!   RocksDB merge operator.
//! - [`index`]: [`VectorIndex`], approximate maximum-inner-product search over item vectors: an
//!   HNSW graph ([`flat`]) rebuilt in the background and swapped atomically, plus exact search
//!   over a bounded set of items changed since the graph's snapshot.
//! - [`flat`]: [`flat::FlatGraph`], the index's HNSW graph, built and searched as `hnswlib`
//!   builds and searches, in flat arrays.
//! - [`error`]: this crate's error type.
//!
//! The state is a read model of the log: everything here can be rebuilt by replaying events.

pub mod delta;
pub mod error;
pub mod flat;
pub mod index;
pub mod items;
pub mod neighbours;
pub mod records;
pub mod store;
pub mod vector;

pub use delta::{ItemChanges, ItemDelta};
pub use error::{Error, Result};
pub use index::{
    IndexConfig, IndexStats, PreparedGraph, Scored, VectorIndex, mips_item, mips_probe,
};
pub use items::{ItemTable, STORED_PARTS, Table, content_labels};
pub use neighbours::Neighbours;
pub use records::{HistoryEntry, ItemState, Popularity, SeenEntry, UserState};
pub use store::{EntryWrite, ExperimentWrite, StateBatch, StateStore, StoreConfig};
