//! Tests of [`FlatGraph`]: search recall, determinism, shared vectors, damaged graphs.

use super::*;

/// Points on the unit sphere in 3 dimensions (as the index's transform puts every point on
/// one sphere), with data ids `3 · i`.
fn points(count: usize) -> Vec<(u32, Vec<f32>)> {
    (0..count)
        .map(|i| {
            let angle = i as f32 / count as f32 * std::f32::consts::TAU;
            let z = ((i * 7919) % 100) as f32 / 200.0;
            let r = (1.0 - z * z).sqrt();
            ((i * 3) as u32, vec![r * angle.cos(), r * angle.sin(), z])
        })
        .collect()
}

fn graph(points: &[(u32, Vec<f32>)], max_connections: usize) -> FlatGraph {
    let slices: Vec<(u32, &[f32])> = points
        .iter()
        .map(|(id, vector)| (*id, vector.as_slice()))
        .collect();
    FlatGraph::build(3, &slices, max_connections, 64, 1)
}

#[test]
fn finds_the_exact_best_inner_products_of_a_small_graph() {
    let points = points(2_000);
    let flat = graph(&points, 8);
    assert_eq!(flat.len(), 2_000);
    assert_eq!(flat.check(), Ok(()));
    let mut hits = 0;
    let queries = 100;
    for q in 0..queries {
        let probe = &points[(q * 37) % points.len()].1;
        let mut exact: Vec<(u32, f32)> =
            points.iter().map(|(id, v)| (*id, dot(probe, v))).collect();
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
            assert!((score - dot(probe, &points[*id as usize / 3].1)).abs() < 1e-6);
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
fn a_build_is_the_same_at_every_run_and_its_lists_are_within_their_bounds() {
    let points = points(1_000);
    let flat = graph(&points, 4);
    assert_eq!(flat, graph(&points, 4), "deterministic");
    let slices: Vec<(u32, &[f32])> = points.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    let parallel = FlatGraph::build(3, &slices, 4, 64, 3);
    assert!(
        parallel == flat,
        "the same graph on one thread and on three"
    );
    assert_eq!(flat.width, 8);
    for node in 0..flat.nodes() as u32 {
        let row = flat.links(0, node);
        assert!(!row.is_empty(), "node {node} has links");
        assert!(!row.contains(&node), "no link to itself: node {node}");
        let mut sorted = row.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), row.len(), "no link twice: node {node}");
    }
    let top = usize::from(flat.levels[flat.entry as usize]);
    assert!(top > 0, "a thousand points reach level 1");
    let mut on_level = vec![0; top + 1];
    for node in 0..flat.nodes() as u32 {
        let level = usize::from(flat.levels[node as usize]);
        assert!(level <= top, "the entry point is on the top level");
        for (layer, count) in on_level.iter_mut().enumerate().take(level + 1).skip(1) {
            *count += 1;
            let row = flat.links(layer, node);
            assert!(row.len() <= 4, "M links on level {layer}");
            assert!(
                row.iter()
                    .all(|&to| usize::from(flat.levels[to as usize]) >= layer)
            );
        }
    }
    // Upper levels thin out.
    assert!(on_level[1..].windows(2).all(|pair| pair[0] >= pair[1]));
}

#[test]
fn points_that_share_a_vector_are_one_node_and_every_one_is_found() {
    // 1,000 distinct points, then 600 points on two vectors (as items without events
    // share theirs), ids 10,000 and up.
    let mut all = points(1_000);
    let shared = [all[10].1.clone(), all[500].1.clone()];
    for copy in 0..600u32 {
        all.push((10_000 + copy, shared[copy as usize % 2].clone()));
    }
    let flat = graph(&all, 8);
    assert_eq!(flat.len(), 1_600);
    assert_eq!(flat.nodes(), 1_000);
    assert_eq!(flat.check(), Ok(()));
    // The distinct points are still found first by their own vectors (as in a graph of
    // them alone), and a probe at a shared vector finds the points on it, ties by the
    // smaller id.
    let probes = all.iter().take(1_000).step_by(7);
    let missed: Vec<u32> = probes
        .clone()
        .filter(|(_, vector)| (flat.search(vector, 1, 64)[0].1 - 1.0).abs() > 1e-5)
        .map(|(id, _)| *id)
        .collect();
    assert!(missed.len() * 20 <= probes.count(), "missed {missed:?}");
    let found = flat.search(&shared[1], 302, 400);
    let ids: Vec<u32> = found.iter().map(|(id, _)| *id).collect();
    let mut expected: Vec<u32> = vec![1_500];
    expected.extend((10_001..10_600).step_by(2));
    expected.sort_unstable();
    assert_eq!(ids[..301], expected[..]);
}

#[test]
fn a_damaged_graph_is_refused_by_its_check() {
    let flat = graph(&points(100), 4);
    let mut bad_link = flat.clone();
    bad_link.links[0] = 100;
    bad_link.degrees[0] = bad_link.degrees[0].max(1);
    assert!(bad_link.check().unwrap_err().contains("node 100"));
    let mut short = flat.clone();
    short.vectors.pop();
    assert!(short.check().is_err());
    let mut entry = flat;
    entry.entry = 1_000;
    assert!(entry.check().unwrap_err().contains("entry point"));
}

#[test]
fn an_empty_graph_finds_nothing_and_a_search_reuses_its_tags() {
    let empty = FlatGraph::build(3, &[], 8, 64, 2);
    assert!(empty.is_empty());
    assert_eq!(empty.check(), Ok(()));
    assert!(empty.search(&[1.0, 0.0, 0.0], 10, 10).is_empty());
    let points = points(50);
    let flat = graph(&points, 8);
    // Two searches on one thread see every node afresh: the same answer twice, and all
    // 50 nodes reachable with a candidate list of 50.
    let first = flat.search(&points[0].1, 50, 50);
    let second = flat.search(&points[0].1, 50, 50);
    assert_eq!(first, second);
    assert_eq!(first.len(), 50);
    assert_eq!(first[0].0, 0, "the probe's own point is its best");
}
