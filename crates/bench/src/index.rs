//! The index benchmark (`docs/PERFORMANCE-JOURNAL.md`, "The index"): the index's graph and
//! `hnsw_rs`, against exact search, on the item vectors and user vectors of a real state.
//!
//! [`load_input`] reads the item vectors and a sample of user vectors from a node's data
//! directory (a RocksDB secondary instance, so a running node is not disturbed). [`run`] puts
//! them in the space the index searches (the MIPS transform of
//! [`marquee_vector_store::mips_item`] and [`marquee_vector_store::mips_probe`], L2 distance),
//! computes the exact top 10 of every query there, then measures on one thread, for every `M`
//! of a grid, the build time and, for every `ef`, recall@10 and queries per second of
//! `hnsw_rs` (the library the index used before its own graph; its parallel build and its
//! search) and of the index's graph ([`marquee_vector_store::flat::FlatGraph`], built on one
//! thread); and the same for Marquee's whole [`VectorIndex::search`] at its defaults (graph,
//! side set, fresh re-scoring). With an output directory it writes the vectors, the queries and
//! the exact answers as raw little-endian files, for `scripts/bench/index_hnswlib.py` to run
//! `hnswlib` on exactly the same data.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hnsw_rs::prelude::{DistL2, Hnsw};
use marquee_stream_processor::query::user_vector_from;
use marquee_vector_store::flat::FlatGraph;
use marquee_vector_store::vector::norm;
use marquee_vector_store::{
    IndexConfig, ItemTable, StateStore, StoreConfig, VectorIndex, mips_item, mips_probe,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Neighbours asked for and scored.
pub const K: usize = 10;

/// Threads of Marquee's graph build, as many as `hnswlib`'s in the script beside this one
/// (`scripts/bench/index_hnswlib.py`), whatever the machine's cores.
pub const BUILD_THREADS: usize = 2;

/// Item vectors and query vectors, in the model's space.
#[derive(Debug, Clone)]
pub struct IndexInput {
    /// Item vectors by item number; items without a vector (all zeros) are left out.
    pub items: Vec<(u32, Vec<f32>)>,
    /// User vectors (non-zero).
    pub queries: Vec<Vec<f32>>,
}

/// Reads the item vectors and up to `queries` user vectors of the state in `data_dir`. Users are
/// drawn at random (`seed`) among the ids `u0` … `u{users − 1}` that `marquee generate` uses;
/// users without a vector are skipped.
pub fn load_input(data_dir: &Path, users: u64, queries: usize, seed: u64) -> Result<IndexInput> {
    let secondary = tempfile::tempdir()?;
    let store = StateStore::open_secondary(
        data_dir.join("state"),
        secondary.path(),
        // The dimension stored in the state wins over this one; the window is not used.
        &StoreConfig {
            dimension: marquee_stream_processor::ModelConfig::default().stored_dimension(),
            dedup_window: std::time::Duration::from_secs(3600),
            block_cache_bytes: 64 * 1024 * 1024,
            cipher: None,
        },
    )
    .with_context(|| format!("opening the state in {}", data_dir.display()))?;
    // Stored records hold four vectors (source, target, and the last solve's); the index
    // searches the targets with users' vectors made of the sources, as the query engine does.
    let model = marquee_stream_processor::ModelConfig::default();
    let dimension = model.dimension;
    let stored = store.load_items()?;
    let sources: HashMap<u32, Vec<f32>> = stored
        .iter()
        .filter(|(_, state)| state.vector.len() == model.stored_dimension())
        .map(|(number, state)| (*number, state.vector[..dimension].to_vec()))
        .collect();
    let items: Vec<(u32, Vec<f32>)> = stored
        .into_iter()
        .filter(|(_, state)| state.vector.len() == model.stored_dimension())
        .map(|(number, state)| (number, state.vector[dimension..2 * dimension].to_vec()))
        .filter(|(_, target)| target.iter().any(|x| *x != 0.0))
        .collect();
    if items.is_empty() {
        bail!("no item vectors in {}", data_dir.display());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut vectors = Vec::with_capacity(queries);
    let mut attempts = 0;
    while vectors.len() < queries && attempts < queries * 20 {
        attempts += 1;
        let user = rng.random_range(0..users.max(1));
        if !seen.insert(user) {
            continue;
        }
        if let Some(state) = store.user(&format!("u{user}"))? {
            let vector = user_vector_from(&state.history, &model, dimension, |item| {
                sources.get(&item).map(Vec::as_slice)
            });
            if vector.iter().any(|x| *x != 0.0) {
                vectors.push(vector);
            }
        }
    }
    if vectors.is_empty() {
        bail!(
            "no user vectors among ids u0..u{users} in {}",
            data_dir.display()
        );
    }
    Ok(IndexInput {
        items,
        queries: vectors,
    })
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct IndexBenchOptions {
    /// `M` values of the grid (Marquee's default is 16).
    pub max_connections: Vec<usize>,
    /// `ef` values of the grid.
    pub ef_search: Vec<usize>,
    /// Candidate list while building, for every `M` (the index's default unless set).
    pub ef_construction: usize,
}

impl Default for IndexBenchOptions {
    fn default() -> Self {
        IndexBenchOptions {
            max_connections: vec![8, 16, 32],
            ef_search: vec![10, 20, 40, 80, 128, 200, 400],
            ef_construction: IndexConfig::default().ef_construction,
        }
    }
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct IndexRow {
    pub library: String,
    pub max_connections: usize,
    pub ef_search: usize,
    pub recall_at_10: f64,
    pub queries_per_second: f64,
    /// Seconds to build the graph this row searched (2 threads, as the node builds).
    pub build_seconds: f64,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    pub items: usize,
    /// Dimension of the searched space (the model's plus one, the transform's).
    pub dimension: usize,
    pub queries: usize,
    pub ef_construction: usize,
    /// Seconds of the exact search over every query (one thread).
    pub exact_seconds: f64,
    pub rows: Vec<IndexRow>,
}

/// Recall@10 with ties: an answer counts when it is one of the exact top 10 or as near as the
/// tenth (items with equal vectors — those of one content label, say — are interchangeable,
/// and which of them the exact search keeps is arbitrary).
fn recall(truth: &Truth, answers: &[Vec<u32>], points: &[Vec<f32>], probes: &[Vec<f32>]) -> f64 {
    let found: usize = truth
        .top
        .iter()
        .zip(&truth.tenth)
        .zip(answers.iter().zip(probes))
        .map(|((top, tenth), (answer, probe))| {
            answer
                .iter()
                .take(K)
                .filter(|item| {
                    top.contains(item)
                        || squared_distance(probe, &points[**item as usize]) <= tenth * (1.0 + 1e-6)
                })
                .count()
        })
        .sum();
    found as f64 / (truth.top.len() * K) as f64
}

/// The exact answers: per query, the top 10 (positions in the points) and the tenth's
/// squared distance.
struct Truth {
    top: Vec<Vec<u32>>,
    tenth: Vec<f32>,
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn write_f32s(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for row in rows {
        for value in row {
            out.write_all(&value.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Measures the grid on `input`; with `out`, writes the data for the `hnswlib` side first.
pub fn run(
    input: &IndexInput,
    options: &IndexBenchOptions,
    out: Option<&Path>,
) -> Result<IndexReport> {
    let max_norm = input
        .items
        .iter()
        .map(|(_, vector)| norm(vector))
        .fold(0.0f32, f32::max);
    let points: Vec<Vec<f32>> = input
        .items
        .iter()
        .map(|(_, vector)| mips_item(vector.clone(), max_norm))
        .collect();
    let probes: Vec<Vec<f32>> = input
        .queries
        .iter()
        .map(|query| mips_probe(query, max_norm))
        .collect();
    let dimension = points[0].len();

    // Exact top 10 in the searched space, as positions in `points`.
    let started = Instant::now();
    let (top, tenth): (Vec<Vec<u32>>, Vec<f32>) = probes
        .iter()
        .map(|probe| {
            let mut scored: Vec<(f32, u32)> = points
                .iter()
                .enumerate()
                .map(|(at, point)| (squared_distance(probe, point), at as u32))
                .collect();
            scored.select_nth_unstable_by(K - 1, |a, b| a.0.total_cmp(&b.0));
            let tenth = scored[K - 1].0;
            scored.truncate(K);
            (scored.into_iter().map(|(_, at)| at).collect(), tenth)
        })
        .unzip();
    let truth = Truth { top, tenth };
    let exact_seconds = started.elapsed().as_secs_f64();

    if let Some(out) = out {
        std::fs::create_dir_all(out)?;
        write_f32s(&out.join("items.f32"), &points)?;
        write_f32s(&out.join("queries.f32"), &probes)?;
        let mut answers = std::io::BufWriter::new(std::fs::File::create(out.join("truth.u32"))?);
        for row in &truth.top {
            for at in row {
                answers.write_all(&at.to_le_bytes())?;
            }
        }
        answers.flush()?;
        let meta = serde_json::json!({
            "items": points.len(),
            "queries": probes.len(),
            "dimension": dimension,
            "k": K,
            "max_connections": options.max_connections,
            "ef_search": options.ef_search,
            "ef_construction": options.ef_construction,
        });
        std::fs::write(out.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    }

    let mut rows = graph_rows(&points, &probes, &truth, options);
    rows.push(marquee_row(input, &points, &probes, &truth));
    Ok(IndexReport {
        items: points.len(),
        dimension,
        queries: probes.len(),
        ef_construction: options.ef_construction,
        exact_seconds,
        rows,
    })
}

/// `hnsw_rs` (its parallel build and its search) and the index's own graph ([`FlatGraph`],
/// built on [`BUILD_THREADS`] threads), over the grid of `M` and `ef`.
fn graph_rows(
    points: &[Vec<f32>],
    probes: &[Vec<f32>],
    truth: &Truth,
    options: &IndexBenchOptions,
) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    for &m in &options.max_connections {
        let started = Instant::now();
        let hnsw =
            Hnsw::<f32, DistL2>::new(m, points.len(), 16, options.ef_construction, DistL2 {});
        let slice: Vec<(&[f32], usize)> = points
            .iter()
            .enumerate()
            .map(|(at, point)| (point.as_slice(), at))
            .collect();
        hnsw.parallel_insert_slice(&slice);
        let mut hnsw = hnsw;
        hnsw.set_searching_mode(true);
        let build_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let slices: Vec<(u32, &[f32])> = points
            .iter()
            .enumerate()
            .map(|(at, point)| (at as u32, point.as_slice()))
            .collect();
        let flat = FlatGraph::build(
            points[0].len(),
            &slices,
            m,
            options.ef_construction,
            BUILD_THREADS,
        );
        let flat_build_seconds = started.elapsed().as_secs_f64();
        for &ef in &options.ef_search {
            let row = |library: &str, build_seconds: f64, search: &dyn Fn(&[f32]) -> Vec<u32>| {
                let started = Instant::now();
                let answers: Vec<Vec<u32>> = probes.iter().map(|probe| search(probe)).collect();
                let seconds = started.elapsed().as_secs_f64();
                IndexRow {
                    library: library.into(),
                    max_connections: m,
                    ef_search: ef,
                    recall_at_10: recall(truth, &answers, points, probes),
                    queries_per_second: probes.len() as f64 / seconds,
                    build_seconds,
                }
            };
            rows.push(row("hnsw_rs", build_seconds, &|probe| {
                hnsw.search(probe, K, ef)
                    .into_iter()
                    .map(|hit| hit.d_id as u32)
                    .collect()
            }));
            rows.push(row("marquee graph", flat_build_seconds, &|probe| {
                flat.search(probe, K, ef)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect()
            }));
        }
    }
    rows
}

/// Marquee's own path at its defaults: the graph behind `VectorIndex`, the answer then
/// re-scored with the current vectors.
fn marquee_row(
    input: &IndexInput,
    points: &[Vec<f32>],
    probes: &[Vec<f32>],
    truth: &Truth,
) -> IndexRow {
    let table = ItemTable::new(input.items[0].1.len());
    {
        let mut writer = table.write();
        for (number, vector) in &input.items {
            let (assigned, _) = writer.assign(&format!("i{number}"));
            writer.vector_mut(assigned).copy_from_slice(vector);
        }
    }
    let config = IndexConfig::default();
    let index = VectorIndex::new(table, config.clone());
    let started = Instant::now();
    index.rebuild_now();
    let build_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    // Item numbers were assigned 0.. in `input.items` order, so they are positions in `points`.
    let answers: Vec<Vec<u32>> = input
        .queries
        .iter()
        .map(|query| {
            index
                .search(query, K, |_, _| true)
                .into_iter()
                .map(|hit| hit.item)
                .collect()
        })
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    index.shutdown();
    IndexRow {
        library: "marquee VectorIndex::search".into(),
        max_connections: config.max_connections,
        ef_search: config.ef_search,
        recall_at_10: recall(truth, &answers, points, probes),
        queries_per_second: input.queries.len() as f64 / seconds,
        build_seconds,
    }
}
