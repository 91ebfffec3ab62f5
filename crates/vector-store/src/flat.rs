//! [`FlatGraph`]: the index's HNSW graph, built and searched the way `hnswlib` builds and
//! searches, in flat arrays.
//!
//! **Layout.** The vectors in one contiguous array; the links in fixed-width rows of one
//! array, each node's level-0 row (`2·M` slots) first, then the rows of levels 1 and up (`M`
//! slots), a node of level `L` holding `L` of them side by side; a visited-tag array per
//! thread that a search reuses instead of clearing.
//!
//! **Build** ([`FlatGraph::build`]), as in the HNSW paper and `hnswlib`: each point draws a
//! top level from `⌊−ln(u)/ln M⌋`, descends greedily from the entry point to that level, then
//! at each of its levels searches with a candidate list of `ef_construction` and keeps at most
//! `M` of the candidates with the diversity heuristic (a candidate is kept when it is nearer
//! the point than to every one kept before it); each kept neighbour links back, and a full
//! list is shrunk with the same heuristic. The heuristic on shrinking is what keeps links that
//! lead out of a dense region: `hnsw_rs`, which this replaced, keeps the nearest `2·M` of a full
//! list, and on factor vectors its graph found 0.93 of the exact top 10 at ef 128 where this
//! one finds 0.998, both at `ef_construction` 200 (`docs/PERFORMANCE-JOURNAL.md`).
//!
//! **Batches.** Points are inserted in batches: one at a time while the graph is small, then a
//! thirty-second of the graph at a time, at most 256 (`batch_size`). A batch's searches run
//! in parallel (one thread per core) against the graph as it stood before the batch; then its
//! points are linked one after another, each choosing among what its search found and the
//! points of the batch before it, which the search could not see. Batch boundaries depend only
//! on the number of points and levels are drawn from a fixed seed, so the same points give the
//! same graph on any number of threads (the evaluator needs that). On 91,000 factor vectors the
//! build takes 9.0–9.7 s on two threads against 16.5 s on one, at the same recall
//! (`docs/PERFORMANCE-JOURNAL.md`); the linking, on one thread, is what is left.
//!
//! **Search** ([`FlatGraph::search`]): a greedy descent through the upper levels, then a
//! best-first search of level 0 with a candidate list of `ef`.
//!
//! The index stores every point on a sphere (the MIPS transform, [`crate::index`]), where the
//! largest inner product with the probe is the nearest point. Every comparison here, the
//! heuristic's included, is of squared distances, computed as such: on a sphere of radius `M`
//! they equal `2M² − 2x·y`, but inner products near `M²` keep less of the difference between
//! close points in single precision (the transform puts every short item vector near one pole).
//! On the benchmark's vectors the two gave the same recall (0.9233 and 0.9225 at ef 128); the
//! distance is the exact form of the comparison. A search returns inner products.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use bincode::{Decode, Encode};

use crate::vector::{dot, squared_distance};

/// Highest level a node can draw: far above what millions of points reach with `M` ≥ 2.
const MAX_LEVEL: usize = 16;

/// How near `b` is to `a`: the negated squared distance, so that larger is nearer.
#[inline]
fn nearness(a: &[f32], b: &[f32]) -> f32 {
    -squared_distance(a, b)
}

/// One node with its nearness to a point, ordered by nearness alone: one float comparison
/// (nearness is never NaN: vectors are finite), which the heaps of a search make most of
/// their comparisons with. Ties keep the order of the operations that made them, which is the
/// same at every run.
#[derive(Debug, Clone, Copy)]
struct Scored(f32, u32);

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// The top level of `node`: `⌊−ln(u) · scale⌋` for `u` in (0, 1] drawn from the node's number
/// (SplitMix64 of a fixed seed), so a build is the same at every run.
fn draw_level(node: u32, scale: f64) -> usize {
    let mut x = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(u64::from(node) + 1);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    ((-u.ln() * scale) as usize).min(MAX_LEVEL)
}

/// How many nodes are inserted together once `inserted` are in the graph: one at a time while
/// the graph is small, then a thirty-second of the graph, at most 256. A batch's searches run in
/// parallel against the graph as it stood before the batch, so a batch small beside the graph
/// finds what one-at-a-time insertion finds.
fn batch_size(inserted: usize) -> usize {
    (inserted / 32).clamp(1, 256)
}

/// Each node's first upper row: the rows of the nodes before it, one per level above 0.
fn row_starts(levels: &[u8]) -> Vec<u32> {
    levels
        .iter()
        .scan(0u32, |rows, &level| {
            let start = *rows;
            *rows += u32::from(level);
            Some(start)
        })
        .collect()
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

/// An HNSW graph over points of one dimension (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct FlatGraph {
    dimension: usize,
    /// The data ids (the index's item numbers) of every node, node after node: points with
    /// the same vector are one node.
    members: Vec<u32>,
    /// Where each node's ids start in `members`, and one past the last node's end.
    member_starts: Vec<u32>,
    /// Each node's vector, `dimension` floats, node after node.
    vectors: Vec<f32>,
    /// Every node's top level.
    levels: Vec<u8>,
    /// The links, in rows: first each node's level-0 row (`width` slots, `2·M`), node after
    /// node; then the rows of levels 1 and up (`width / 2` slots, `M`), a node of level `L`
    /// holding `L` rows (level 1 first) from its `upper_starts` entry.
    links: Vec<u32>,
    /// Each row's links in use (the first slots of the row), level-0 rows first.
    degrees: Vec<u16>,
    /// Each node's first upper row (counted from the first upper row).
    upper_starts: Vec<u32>,
    width: usize,
    /// Where every search starts: a node of the top level.
    entry: u32,
}

impl FlatGraph {
    /// The graph of `points` (data id, vector; every vector of `dimension` floats and all on
    /// one sphere) with `max_connections` links per node and level (`M`, twice as many on
    /// level 0) and a candidate list of `ef_construction` while inserting. The same points in
    /// the same order give the same graph.
    ///
    /// Points with the same vector are one node that holds all their ids: a graph of many
    /// equal points (items without events share their vector) has no order among them, and
    /// whether the heuristic keeps or drops a tie it links them to each other and little else
    /// (a clique or a chain) that searches cannot leave or reach.
    pub fn build(
        dimension: usize,
        points: &[(u32, &[f32])],
        max_connections: usize,
        ef_construction: usize,
        threads: usize,
    ) -> FlatGraph {
        Self::build_until(
            dimension,
            points,
            max_connections,
            ef_construction,
            threads,
            &|| true,
        )
        .expect("a build that always goes on ends with a graph")
    }

    /// [`FlatGraph::build`], asking `keep_going` before each batch of insertions: `None` when
    /// it answered false (the build abandoned part way, in at most one batch's time).
    pub fn build_until(
        dimension: usize,
        points: &[(u32, &[f32])],
        max_connections: usize,
        ef_construction: usize,
        threads: usize,
        keep_going: &dyn Fn() -> bool,
    ) -> Option<FlatGraph> {
        let max_connections = max_connections.max(2);
        let width = 2 * max_connections;
        assert!(width <= u16::MAX as usize, "M fits the degree counters");
        // Each distinct vector (by its bits, with −0 as 0) a node, in order of first appearance.
        let mut node_of: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut vectors: Vec<f32> = Vec::with_capacity(points.len() * dimension);
        let mut groups: Vec<Vec<u32>> = Vec::new();
        for (id, vector) in points {
            assert_eq!(vector.len(), dimension, "point of the graph's dimension");
            let bits: Vec<u32> = vector.iter().map(|x| (x + 0.0).to_bits()).collect();
            let node = *node_of.entry(bits).or_insert_with(|| {
                vectors.extend_from_slice(vector);
                groups.push(Vec::new());
                (groups.len() - 1) as u32
            });
            groups[node as usize].push(*id);
        }
        let nodes = groups.len();
        let mut member_starts = Vec::with_capacity(nodes + 1);
        member_starts.push(0);
        for group in &groups {
            member_starts.push(member_starts[member_starts.len() - 1] + group.len() as u32);
        }
        let scale = 1.0 / (max_connections as f64).ln();
        let levels: Vec<u8> = (0..nodes as u32)
            .map(|node| draw_level(node, scale) as u8)
            .collect();
        let upper_starts = row_starts(&levels);
        let upper_rows = levels
            .iter()
            .map(|&level| usize::from(level))
            .sum::<usize>();
        let mut graph = FlatGraph {
            dimension,
            members: groups.concat(),
            member_starts,
            vectors,
            links: vec![0; nodes * width + upper_rows * max_connections],
            degrees: vec![0; nodes + upper_rows],
            upper_starts,
            levels,
            width,
            entry: 0,
        };
        let mut visited: Vec<Visited> = (0..threads.max(1)).map(|_| Visited::default()).collect();
        let mut start = 1;
        while start < nodes {
            if !keep_going() {
                return None;
            }
            let end = (start + batch_size(start)).min(nodes);
            let batch = start as u32..end as u32;
            let found =
                graph.search_batch(batch.clone(), graph.top(), ef_construction, &mut visited);
            for (node, found) in batch.zip(found) {
                graph.connect(node, found, start as u32);
                if graph.levels[node as usize] > graph.levels[graph.entry as usize] {
                    graph.entry = node;
                }
            }
            start = end;
        }
        Some(graph)
    }

    /// The candidates of each node of `batch` on each of its levels up to `top` (the graph's
    /// top level): its `ef_construction` nearest found in the graph as it stands, best first.
    /// The searches only read the graph, so they run on one thread per `visited` array, and
    /// what they find does not depend on the number of threads.
    fn search_batch(
        &self,
        batch: std::ops::Range<u32>,
        top: usize,
        ef_construction: usize,
        visited: &mut [Visited],
    ) -> Vec<Vec<Vec<Scored>>> {
        let nodes: Vec<u32> = batch.collect();
        if visited.len() == 1 || nodes.len() < 2 * visited.len() {
            let visited = &mut visited[0];
            return nodes
                .iter()
                .map(|&node| self.candidates(node, top, ef_construction, visited))
                .collect();
        }
        let share = nodes.len().div_ceil(visited.len());
        std::thread::scope(|scope| {
            let workers: Vec<_> = nodes
                .chunks(share)
                .zip(visited.iter_mut())
                .map(|(part, visited)| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&node| self.candidates(node, top, ef_construction, visited))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("a graph build thread panicked"))
                .collect()
        })
    }

    /// The candidates of `node` on each of its levels up to `top`, by level (see
    /// [`FlatGraph::search_batch`]): a greedy descent from the entry point to the node's
    /// level, then a search of each level from the best found on the level above.
    fn candidates(
        &self,
        node: u32,
        top: usize,
        ef_construction: usize,
        visited: &mut Visited,
    ) -> Vec<Vec<Scored>> {
        let level = usize::from(self.levels[node as usize]);
        let probe = self.vector(node);
        let mut at = Scored(nearness(probe, self.vector(self.entry)), self.entry);
        for layer in (level + 1..=top).rev() {
            at = self.greedy(probe, at, layer);
        }
        let mut found = vec![Vec::new(); level.min(top) + 1];
        for layer in (0..=level.min(top)).rev() {
            visited.start(self.nodes());
            found[layer] = self.search_layer(probe, at, ef_construction, layer, visited);
            at = found[layer][0];
        }
        found
    }

    /// Links `node` on each of its levels to the neighbours the heuristic chooses among its
    /// candidates (`found`, by level) and the nodes of its batch before it (from
    /// `batch_start`), which the batch's searches could not see; each chosen neighbour links
    /// back.
    fn connect(&mut self, node: u32, mut found: Vec<Vec<Scored>>, batch_start: u32) {
        let level = usize::from(self.levels[node as usize]);
        found.resize_with(level + 1, Vec::new);
        for (layer, mut candidates) in found.into_iter().enumerate().rev() {
            let probe = self.vector(node);
            candidates.extend(
                (batch_start..node)
                    .filter(|&mate| usize::from(self.levels[mate as usize]) >= layer)
                    .map(|mate| Scored(nearness(probe, self.vector(mate)), mate)),
            );
            if candidates.is_empty() {
                continue;
            }
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            let chosen = self.select(&candidates, self.width / 2);
            for &neighbour in &chosen {
                self.link(layer, neighbour, node);
            }
            self.set_links(layer, node, chosen);
        }
    }

    /// Adds `from → to` on `layer`; a full list is shrunk back to its capacity with the
    /// heuristic, over its links and the new one.
    fn link(&mut self, layer: usize, from: u32, to: u32) {
        let current = self.links(layer, from);
        let capacity = self.capacity(self.row(layer, from));
        if current.len() < capacity {
            let row = self.row(layer, from);
            let degree = self.degrees[row];
            let slot = self.row_start(row) + usize::from(degree);
            self.links[slot] = to;
            self.degrees[row] = degree + 1;
            return;
        }
        let base = self.vector(from);
        let mut scored: Vec<Scored> = current
            .iter()
            .chain(std::iter::once(&to))
            .map(|&other| Scored(nearness(base, self.vector(other)), other))
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        let kept = self.select(&scored, capacity);
        self.set_links(layer, from, kept);
    }

    /// The heuristic's choice among `candidates` (best first, scored against the point they
    /// are for): all of them when they are no more than `count`; otherwise, nearest first, a
    /// candidate is kept unless it is strictly nearer one kept before it than the point, at
    /// most `count`. Ties keep, as in `hnswlib` (equal points, where every distance ties, are
    /// one node: see [`FlatGraph::build`]).
    fn select(&self, candidates: &[Scored], count: usize) -> Vec<u32> {
        if candidates.len() <= count {
            return candidates.iter().map(|scored| scored.1).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(count);
        for &Scored(score, candidate) in candidates {
            if kept.len() == count {
                break;
            }
            let vector = self.vector(candidate);
            if kept
                .iter()
                .all(|&other| nearness(vector, self.vector(other)) <= score)
            {
                kept.push(candidate);
            }
        }
        kept
    }

    /// The links of `node` on `layer`: none above the node's level.
    #[inline]
    fn links(&self, layer: usize, node: u32) -> &[u32] {
        if layer > usize::from(self.levels[node as usize]) {
            return &[];
        }
        let row = self.row(layer, node);
        let start = self.row_start(row);
        &self.links[start..start + usize::from(self.degrees[row])]
    }

    /// The row of `node` on `layer` (at most the node's level).
    #[inline]
    fn row(&self, layer: usize, node: u32) -> usize {
        if layer == 0 {
            node as usize
        } else {
            self.nodes() + self.upper_starts[node as usize] as usize + layer - 1
        }
    }

    /// Where `row` starts in `links`.
    #[inline]
    fn row_start(&self, row: usize) -> usize {
        let nodes = self.nodes();
        if row < nodes {
            row * self.width
        } else {
            nodes * self.width + (row - nodes) * (self.width / 2)
        }
    }

    /// The slots of `row`: `2·M` on level 0, `M` above.
    fn capacity(&self, row: usize) -> usize {
        if row < self.nodes() {
            self.width
        } else {
            self.width / 2
        }
    }

    /// The top level: the entry point's (0 for an empty graph).
    fn top(&self) -> usize {
        self.levels
            .get(self.entry as usize)
            .map_or(0, |&level| usize::from(level))
    }

    fn set_links(&mut self, layer: usize, node: u32, links: Vec<u32>) {
        let row = self.row(layer, node);
        let start = self.row_start(row);
        self.links[start..start + links.len()].copy_from_slice(&links);
        self.degrees[row] = links.len() as u16;
    }

    /// Whether the graph is whole: every array of its length, every link and the entry point
    /// a node. A graph read from a file is checked before it is searched.
    pub fn check(&self) -> Result<(), String> {
        let nodes = self.nodes();
        let starts_ordered = self.member_starts.first().is_none_or(|&first| first == 0)
            && self.member_starts.windows(2).all(|pair| pair[0] < pair[1])
            && self
                .member_starts
                .last()
                .is_none_or(|&end| end as usize == self.members.len());
        if !starts_ordered || (self.member_starts.is_empty() && !self.members.is_empty()) {
            return Err("the nodes' ids are out of order".into());
        }
        let upper_rows = self
            .levels
            .iter()
            .map(|&level| usize::from(level))
            .sum::<usize>();
        if self.vectors.len() != nodes * self.dimension
            || self.levels.len() != nodes
            || self.upper_starts != row_starts(&self.levels)
            || self.links.len() != nodes * self.width + upper_rows * (self.width / 2)
            || self.degrees.len() != nodes + upper_rows
        {
            return Err(format!("array lengths do not match {nodes} nodes"));
        }
        if nodes > 0 && self.entry as usize >= nodes {
            return Err(format!("entry point {} of {nodes} nodes", self.entry));
        }
        for row in 0..self.degrees.len() {
            if usize::from(self.degrees[row]) > self.capacity(row) {
                return Err(format!("row {row} has more links than it holds"));
            }
            let start = self.row_start(row);
            let links = &self.links[start..start + usize::from(self.degrees[row])];
            if let Some(node) = links.iter().find(|&&node| node as usize >= nodes) {
                return Err(format!("a link to node {node} of {nodes}"));
            }
        }
        Ok(())
    }

    /// Points (data ids) in the graph.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the graph holds no point.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Nodes in the graph: its distinct vectors.
    fn nodes(&self) -> usize {
        self.member_starts.len().saturating_sub(1)
    }

    /// The data ids of `node`.
    fn members(&self, node: u32) -> &[u32] {
        let node = node as usize;
        &self.members[self.member_starts[node] as usize..self.member_starts[node + 1] as usize]
    }

    #[inline]
    fn vector(&self, node: u32) -> &[f32] {
        let start = node as usize * self.dimension;
        &self.vectors[start..start + self.dimension]
    }

    /// The data ids of the (approximately) `count` largest inner products with `probe`,
    /// best first, with their scores; `ef` (at least `count`) is the candidate list's size.
    /// Points with the same vector tie, and ties go to the smaller id.
    pub fn search(&self, probe: &[f32], count: usize, ef: usize) -> Vec<(u32, f32)> {
        if self.members.is_empty() || count == 0 {
            return Vec::new();
        }
        assert_eq!(
            probe.len(),
            self.dimension,
            "probe of the graph's dimension"
        );
        let ef = ef.max(count);
        let mut at = Scored(nearness(probe, self.vector(self.entry)), self.entry);
        for layer in (1..=self.top()).rev() {
            at = self.greedy(probe, at, layer);
        }
        let found = VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.start(self.nodes());
            self.search_layer(probe, at, ef, 0, &mut visited)
        });
        let mut hits: Vec<(u32, f32)> = found
            .into_iter()
            .flat_map(|Scored(_, node)| {
                let score = dot(probe, self.vector(node));
                self.members(node).iter().map(move |&id| (id, score))
            })
            .take(count)
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits
    }

    /// From `at`, the neighbour on `layer` with the best score, as long as one is better.
    fn greedy(&self, probe: &[f32], mut at: Scored, layer: usize) -> Scored {
        loop {
            let mut moved = false;
            for &neighbour in self.links(layer, at.1) {
                let score = nearness(probe, self.vector(neighbour));
                if score > at.0 {
                    at = Scored(score, neighbour);
                    moved = true;
                }
            }
            if !moved {
                return at;
            }
        }
    }

    /// The best-first search of `layer` from `start` (`visited` started for this search): the
    /// `ef` best nodes found, best first.
    fn search_layer(
        &self,
        probe: &[f32],
        start: Scored,
        ef: usize,
        layer: usize,
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
            for &neighbour in self.links(layer, candidate.1) {
                if !visited.visit(neighbour) {
                    continue;
                }
                let score = nearness(probe, self.vector(neighbour));
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
mod tests;
