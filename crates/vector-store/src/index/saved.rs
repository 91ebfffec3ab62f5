//! The saved graph ([`VectorIndex::save`], [`VectorIndex::load_saved`]): see the parent
//! module's "Saved graph".

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bincode::{Decode, Encode};
use tracing::{info, warn};

use super::{Graph, VectorIndex};
use crate::error::{Error, Result};
use crate::flat::FlatGraph;

/// The saved index's file in its directory.
const SAVED_META: &str = "meta.bin";

/// Version of the saved file's layout, its first field: 1 held `hnsw_rs`'s dump beside it, 2
/// kept the graph's upper levels in maps, 3 in rows.
const SAVED_FORMAT: u32 = 3;

/// What a saved graph needs besides the graph, which follows it in the file: the transform's
/// `M`, the side set, and the stamp that ties it to one state.
#[derive(Debug, Encode, Decode)]
struct SavedMeta {
    format: u32,
    offsets: Vec<u64>,
    item_numbers: u64,
    dimension: u64,
    max_norm: f32,
    changed: Vec<u32>,
    overflowed: bool,
}

/// A graph read back with its side set, before it is swapped in.
struct Saved {
    graph: Graph,
    changed: HashSet<u32>,
    overflowed: bool,
}

/// The error of saving or loading the graph at `dir`, from a message.
fn saved_index_error(dir: &Path) -> impl Fn(String) -> Error + '_ {
    move |message| Error::SavedIndex {
        path: dir.display().to_string(),
        message,
    }
}

impl VectorIndex {
    /// Saves the current graph and side set to `dir` (replacing what is there), stamped with
    /// the processor's committed `offsets`. Call it once the processor has stopped, so the
    /// stamp describes the vectors the side set was kept against. Returns false when there is
    /// no graph to save. The files are written to `<dir>.tmp`, synced, and renamed into place.
    pub fn save(&self, dir: &Path, offsets: &[u64]) -> Result<bool> {
        let _building = self.inner.build_lock.lock();
        let (graph, mut changed, overflowed) = {
            let side = self.inner.side.lock();
            (
                side.graph.clone(),
                side.changed.iter().copied().collect::<Vec<u32>>(),
                side.overflowed_since_build,
            )
        };
        let Some(graph) = graph else {
            return Ok(false);
        };
        changed.sort_unstable();
        let failed = saved_index_error(dir);
        let staging = dir.with_extension("tmp");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| failed(e.to_string()))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| failed(e.to_string()))?;
        let meta = SavedMeta {
            format: SAVED_FORMAT,
            offsets: offsets.to_vec(),
            item_numbers: self.inner.items.read().len() as u64,
            dimension: self.inner.items.dimension() as u64,
            max_norm: graph.max_norm,
            changed,
            overflowed,
        };
        let mut encoded = bincode::encode_to_vec((&meta, &graph.flat), bincode::config::standard())
            .map_err(|e| failed(e.to_string()))?;
        if let Some(cipher) = &self.inner.config.cipher {
            encoded = cipher.seal(&encoded);
        }
        std::fs::write(staging.join(SAVED_META), encoded).map_err(|e| failed(e.to_string()))?;
        for entry in std::fs::read_dir(&staging).map_err(|e| failed(e.to_string()))? {
            let path = entry.map_err(|e| failed(e.to_string()))?.path();
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| failed(e.to_string()))?;
        if let Some(parent) = dir.parent() {
            File::open(parent)
                .and_then(|file| file.sync_all())
                .map_err(|e| failed(e.to_string()))?;
        }
        info!(
            items = graph.flat.len(),
            side_set = meta.changed.len(),
            path = %dir.display(),
            "index saved"
        );
        Ok(true)
    }

    /// Loads the graph [`VectorIndex::save`] left in `dir` if its stamp matches `offsets` and
    /// the item table, and deletes the saved files either way. Returns whether a graph was
    /// loaded; when not (nothing saved, another state's graph, unreadable files: logged), the
    /// caller builds one with [`VectorIndex::rebuild_now`].
    pub fn load_saved(&self, dir: &Path, offsets: &[u64]) -> bool {
        if !dir.join(SAVED_META).exists() {
            return false;
        }
        let started = Instant::now();
        let loaded = self.read_saved(dir, offsets);
        if let Err(error) = std::fs::remove_dir_all(dir) {
            warn!(path = %dir.display(), error = %error, "could not delete the saved index");
        }
        match loaded {
            Ok(Some(Saved {
                graph,
                changed,
                overflowed,
            })) => {
                let mut side = self.inner.side.lock();
                info!(
                    items = graph.flat.len(),
                    side_set = changed.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "index loaded"
                );
                side.graph = Some(Arc::new(graph));
                side.changed = changed;
                side.overflowed_since_build = overflowed;
                true
            }
            Ok(None) => false,
            Err(error) => {
                warn!(error = %error, "the saved index is unreadable; building it");
                false
            }
        }
    }

    fn read_saved(&self, dir: &Path, offsets: &[u64]) -> Result<Option<Saved>> {
        let failed = saved_index_error(dir);
        let mut bytes = std::fs::read(dir.join(SAVED_META)).map_err(|e| failed(e.to_string()))?;
        if let Some(cipher) = &self.inner.config.cipher {
            bytes = cipher.open(&bytes).map_err(|e| failed(e.to_string()))?;
        }
        let config = bincode::config::standard();
        // The format first: a file of another layout is not decoded further.
        let (format, _): (u32, usize) =
            bincode::decode_from_slice(&bytes, config).map_err(|e| failed(e.to_string()))?;
        if format != SAVED_FORMAT {
            info!(
                path = %dir.display(),
                format,
                "the saved index is of another version's format; building it"
            );
            return Ok(None);
        }
        let ((meta, flat), _): ((SavedMeta, FlatGraph), usize) =
            bincode::decode_from_slice(&bytes, config).map_err(|e| failed(e.to_string()))?;
        let item_numbers = self.inner.items.read().len() as u64;
        let dimension = self.inner.items.dimension() as u64;
        if meta.offsets != offsets
            || meta.item_numbers != item_numbers
            || meta.dimension != dimension
        {
            info!(
                path = %dir.display(),
                "the saved index belongs to another state (offsets, items or dimension differ); building it"
            );
            return Ok(None);
        }
        flat.check()
            .map_err(|e| failed(format!("the graph is damaged: {e}")))?;
        Ok(Some(Saved {
            graph: Graph {
                flat,
                max_norm: meta.max_norm,
                built_at: Instant::now(),
            },
            changed: meta.changed.into_iter().collect(),
            overflowed: meta.overflowed,
        }))
    }
}
