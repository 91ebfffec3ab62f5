//! [`FlatGraph`]: a finished `hnsw_rs` graph copied into flat arrays and searched the way
//! `hnswlib` searches.
//!
//! `hnsw_rs` builds well but searches slowly on small vectors: each point is an `Arc` with its
//! neighbours behind a lock, a neighbour's vector is one more pointer away, and every search
//! allocates its visited set. Its graph never changes once built ([`crate::index`] rebuilds
//! and swaps), so the index copies it, once per build or load, into the layout of `hnswlib`'s
//! level 0: the vectors in one contiguous array, each node's level-0 neighbours in a
//! fixed-width row of one array, the (few) upper-level links in small per-node lists, and a
//! visited-tag array per thread that a search reuses instead of clearing. The search is the
//! same algorithm: a greedy descent through the upper levels from the entry point, then a
//! best-first search of level 0 with a candidate list of `ef`.
//!
//! Scores are inner products with the stored points. The index stores every point on a
//! sphere (the MIPS transform, [`crate::index`]), where the largest inner product with the
//! probe is the nearest point, so the order is the graph's L2 order.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use hnsw_rs::prelude::{DistL2, Hnsw};

use crate::vector::dot;

/// One node with its score: ordered by score (total order), then by node.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// Per-thread visited tags: a node is visited in this search when its tag is the search's.
#[derive(Default)]
struct Visited {
    tags: Vec<u32>,
    current: u32,
}

impl Visited {
    /// Starts a search over `nodes` nodes: a new tag, the array cleared only when the tags
    /// wrap.
    fn start(&mut self, nodes: usize) {
        if self.tags.len() < nodes {
            self.tags.resize(nodes, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.tags.fill(0);
            self.current = 1;
        }
    }

    /// Marks `node`; false when it was marked already.
    #[inline]
    fn visit(&mut self, node: u32) -> bool {
        let tag = &mut self.tags[node as usize];
        if *tag == self.current {
            false
        } else {
            *tag = self.current;
            true
        }
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}

/// A searchable copy of an `hnsw_rs` graph (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct FlatGraph {
    dimension: usize,
    /// Each node's data id (the index's item number).
    ids: Vec<u32>,
    /// Each node's vector, `dimension` floats, node after node.
    vectors: Vec<f32>,
    /// Level-0 neighbours: `width` slots per node, the first `degrees[node]` in use.
    level0: Vec<u32>,
    degrees: Vec<u16>,
    width: usize,
    /// Levels 1 and up (index 0 is level 1): each node of the level with its neighbours.
    upper: Vec<HashMap<u32, Vec<u32>>>,
    /// Where every search starts: a node of the top level.
    entry: u32,
}

impl FlatGraph {
    /// The copy of `hnsw`'s finished graph (empty when it holds no point). Its data ids must
    /// fit in `u32`.
    pub fn from_hnsw(hnsw: &Hnsw<'_, f32, DistL2>) -> FlatGraph {
        // (`hnsw_rs`'s point iterator panics on a graph without points.)
        if hnsw.get_nb_point() == 0 {
            return FlatGraph::default();
        }
        let indexation = hnsw.get_point_indexation();
        let points: Vec<_> = indexation.into_iter().collect();
        let Some(first) = points.first() else {
            return FlatGraph::default();
        };
        let dimension = first.get_v().len();
        let node_of: HashMap<usize, u32> = points
            .iter()
            .enumerate()
            .map(|(node, point)| (point.get_origin_id(), node as u32))
            .collect();
        let neighbourhoods: Vec<Vec<Vec<u32>>> = points
            .iter()
            .map(|point| {
                point
                    .get_neighborhood_id()
                    .iter()
                    .map(|layer| {
                        layer
                            .iter()
                            .filter_map(|neighbour| node_of.get(&neighbour.d_id).copied())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let width = neighbourhoods
            .iter()
            .filter_map(|layers| layers.first().map(Vec::len))
            .max()
            .unwrap_or(0);
        let mut graph = FlatGraph {
            dimension,
            ids: points
                .iter()
                .map(|point| point.get_origin_id() as u32)
                .collect(),
            vectors: Vec::with_capacity(points.len() * dimension),
            level0: vec![0; points.len() * width],
            degrees: vec![0; points.len()],
            width,
            upper: Vec::new(),
            entry: 0,
        };
        // A node of the top level, as the graph's own entry point is.
        graph.entry = (0..points.len())
            .max_by_key(|&node| (points[node].get_point_id().0, Reverse(node)))
            .unwrap_or(0) as u32;
        for (node, (point, layers)) in points.iter().zip(&neighbourhoods).enumerate() {
            graph.vectors.extend_from_slice(point.get_v());
            if let Some(level0) = layers.first() {
                graph.degrees[node] = level0.len() as u16;
                graph.level0[node * width..node * width + level0.len()].copy_from_slice(level0);
            }
            for (level, neighbours) in layers.iter().enumerate().skip(1) {
                if graph.upper.len() < level {
                    graph.upper.resize_with(level, HashMap::new);
                }
                if !neighbours.is_empty() {
                    graph.upper[level - 1].insert(node as u32, neighbours.clone());
                }
            }
        }
        graph
    }

    /// Nodes in the graph.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the graph holds no node.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn vector(&self, node: u32) -> &[f32] {
        let start = node as usize * self.dimension;
        &self.vectors[start..start + self.dimension]
    }

    fn neighbours(&self, node: u32) -> &[u32] {
        let start = node as usize * self.width;
        &self.level0[start..start + self.degrees[node as usize] as usize]
    }

    /// The data ids of the (approximately) `count` largest inner products with `probe`,
    /// best first, with their scores; `ef` (at least `count`) is the candidate list's size.
    pub fn search(&self, probe: &[f32], count: usize, ef: usize) -> Vec<(u32, f32)> {
        if self.ids.is_empty() || count == 0 {
            return Vec::new();
        }
        assert_eq!(
            probe.len(),
            self.dimension,
            "probe of the graph's dimension"
        );
        let ef = ef.max(count);
        let mut at = self.entry;
        let mut best = dot(probe, self.vector(at));
        for level in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                for &neighbour in level.get(&at).map_or(&[][..], Vec::as_slice) {
                    let score = dot(probe, self.vector(neighbour));
                    if score > best {
                        best = score;
                        at = neighbour;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let found = VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.start(self.ids.len());
            self.search_level0(probe, Scored(best, at), ef, &mut visited)
        });
        found
            .into_iter()
            .take(count)
            .map(|Scored(score, node)| (self.ids[node as usize], score))
            .collect()
    }

    /// The best-first search of level 0 from `start`: the `ef` best nodes found, best first.
    fn search_level0(
        &self,
        probe: &[f32],
        start: Scored,
        ef: usize,
        visited: &mut Visited,
    ) -> Vec<Scored> {
        // Candidates to expand, best first; the results so far, worst on top.
        let mut candidates: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
        visited.visit(start.1);
        candidates.push(start);
        results.push(Reverse(start));
        while let Some(candidate) = candidates.pop() {
            let worst = results.peek().map_or(f32::NEG_INFINITY, |Reverse(s)| s.0);
            if results.len() >= ef && candidate.0 < worst {
                break;
            }
            for &neighbour in self.neighbours(candidate.1) {
                if !visited.visit(neighbour) {
                    continue;
                }
                let score = dot(probe, self.vector(neighbour));
                let worst = results.peek().map_or(f32::NEG_INFINITY, |Reverse(s)| s.0);
                if results.len() < ef || score > worst {
                    candidates.push(Scored(score, neighbour));
                    results.push(Reverse(Scored(score, neighbour)));
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
        let mut found: Vec<Scored> = results.into_iter().map(|Reverse(s)| s).collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on the unit circle's first quadrant lifted to 3 dimensions, all of norm 1 (as the
    /// index's transform leaves them), in an `hnsw_rs` graph.
    fn graph(points: usize) -> (Hnsw<'static, f32, DistL2>, Vec<Vec<f32>>) {
        let vectors: Vec<Vec<f32>> = (0..points)
            .map(|i| {
                let angle = i as f32 / points as f32 * std::f32::consts::TAU;
                let z = ((i * 7919) % 100) as f32 / 200.0;
                let r = (1.0 - z * z).sqrt();
                vec![r * angle.cos(), r * angle.sin(), z]
            })
            .collect();
        let hnsw = Hnsw::new(8, 3, 16, 64, DistL2 {});
        for (i, vector) in vectors.iter().enumerate() {
            hnsw.insert((vector.as_slice(), i * 3));
        }
        (hnsw, vectors)
    }

    #[test]
    fn finds_the_exact_best_inner_products_of_a_small_graph() {
        let (hnsw, vectors) = graph(2_000);
        let flat = FlatGraph::from_hnsw(&hnsw);
        assert_eq!(flat.len(), 2_000);
        let mut hits = 0;
        let queries = 100;
        for q in 0..queries {
            let probe = &vectors[(q * 37) % vectors.len()];
            let mut exact: Vec<(u32, f32)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| ((i * 3) as u32, dot(probe, v)))
                .collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let found = flat.search(probe, 10, 64);
            assert_eq!(found.len(), 10);
            assert!(
                found.windows(2).all(|pair| pair[0].1 >= pair[1].1),
                "best first"
            );
            // Data ids are the ones inserted, with their own vectors' scores.
            for (id, score) in &found {
                assert_eq!(id % 3, 0);
                assert!((score - dot(probe, &vectors[*id as usize / 3])).abs() < 1e-6);
            }
            let exact_ids: Vec<u32> = exact.iter().take(10).map(|(id, _)| *id).collect();
            hits += found
                .iter()
                .filter(|(id, _)| exact_ids.contains(id))
                .count();
        }
        let recall = hits as f64 / (queries * 10) as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn an_empty_graph_finds_nothing_and_a_search_reuses_its_tags() {
        let hnsw: Hnsw<'static, f32, DistL2> = Hnsw::new(8, 3, 16, 64, DistL2 {});
        let empty = FlatGraph::from_hnsw(&hnsw);
        assert!(empty.is_empty());
        assert!(empty.search(&[1.0, 0.0, 0.0], 10, 10).is_empty());
        let (hnsw, vectors) = graph(50);
        let flat = FlatGraph::from_hnsw(&hnsw);
        // Two searches on one thread see every node afresh: the same answer twice, and all
        // 50 nodes reachable with a candidate list of 50.
        let first = flat.search(&vectors[0], 50, 50);
        let second = flat.search(&vectors[0], 50, 50);
        assert_eq!(first, second);
        assert_eq!(first.len(), 50);
        assert_eq!(first[0].0, 0, "the probe's own point is its best");
    }
}
