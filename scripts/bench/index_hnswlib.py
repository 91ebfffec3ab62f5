"""hnswlib on the data the index benchmark's Rust side wrote (scripts/bench/index.sh).

Same points (the MIPS-transformed item vectors), same queries (transformed user vectors), same
exact answers, same metric (L2), same grid of M and ef, ef_construction as Marquee's. Queries
go through the batch `knn_query` with `num_threads=1`, so Python's call overhead does not
handicap hnswlib; its builds use 2 threads (hnsw_rs's and Marquee's graph's too).

    python index_hnswlib.py DATA_DIR RUST_REPORT.json [--json FILE]

Prints one table with every library's rows, then, at recall@10 >= 0.95, the fastest row of
Marquee's graph and of hnswlib and the ratio of their queries per second, then the two side by
side at each M and ef.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import hnswlib
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("rust_report", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--target", type=float, default=0.95)
    args = parser.parse_args()

    meta = json.loads((args.data / "meta.json").read_text())
    dim, k = meta["dimension"], meta["k"]
    items = np.fromfile(args.data / "items.f32", dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(args.data / "queries.f32", dtype="<f4").reshape(-1, dim)
    truth = np.fromfile(args.data / "truth.u32", dtype="<u4").reshape(-1, k)

    rows = []
    for m in meta["max_connections"]:
        index = hnswlib.Index(space="l2", dim=dim)
        started = time.perf_counter()
        index.init_index(
            max_elements=len(items), M=m, ef_construction=meta["ef_construction"], random_seed=7
        )
        index.add_items(items, np.arange(len(items)), num_threads=2)
        build = time.perf_counter() - started
        for ef in meta["ef_search"]:
            index.set_ef(max(ef, k))
            started = time.perf_counter()
            labels, _ = index.knn_query(queries, k=k, num_threads=1)
            seconds = time.perf_counter() - started
            found = sum(len(set(row) & set(want)) for row, want in zip(labels, truth))
            rows.append(
                {
                    "library": "hnswlib " + hnswlib.__version__
                    if hasattr(hnswlib, "__version__")
                    else "hnswlib",
                    "max_connections": m,
                    "ef_search": ef,
                    "recall_at_10": found / (len(queries) * k),
                    "queries_per_second": len(queries) / seconds,
                    "build_seconds": build,
                }
            )

    rust = json.loads(args.rust_report.read_text())
    every = rust["rows"] + rows
    print(
        f"{rust['items']} items, {rust['dimension']} dimensions (searched space), "
        f"{rust['queries']} queries, ef_construction {rust['ef_construction']}"
    )
    print("| library | M | ef | recall@10 | queries/s (1 thread) | build, s (2 threads) |")
    print("|---|---|---|---|---|---|")
    for row in sorted(every, key=lambda r: (r["library"], r["max_connections"], r["ef_search"])):
        print(
            f"| {row['library']} | {row['max_connections']} | {row['ef_search']} | "
            f"{row['recall_at_10']:.4f} | {row['queries_per_second']:.0f} | "
            f"{row['build_seconds']:.1f} |"
        )

    def fastest(library: str):
        good = [
            r
            for r in every
            if r["library"].startswith(library) and r["recall_at_10"] >= args.target
        ]
        return max(good, key=lambda r: r["queries_per_second"], default=None)

    ours, theirs = fastest("marquee graph"), fastest("hnswlib")
    summary = {"target_recall": args.target, "marquee graph": ours, "hnswlib": theirs}
    if ours and theirs:
        summary["ratio"] = ours["queries_per_second"] / theirs["queries_per_second"]
        print(
            f"at recall@10 >= {args.target}: marquee graph {ours['queries_per_second']:.0f} q/s "
            f"(M {ours['max_connections']}, ef {ours['ef_search']}), hnswlib "
            f"{theirs['queries_per_second']:.0f} q/s (M {theirs['max_connections']}, "
            f"ef {theirs['ef_search']}): ratio {summary['ratio']:.2f}"
        )
    else:
        print(f"no row of one library reaches recall@10 {args.target}", file=sys.stderr)
    # The same M and ef side by side: the search's own speed, graph quality aside.
    pairs = {}
    for row in every:
        for name in ("marquee graph", "hnswlib"):
            if row["library"].startswith(name):
                pairs.setdefault((row["max_connections"], row["ef_search"]), {})[name] = row
    for (m, ef), both in sorted(pairs.items()):
        if len(both) == 2:
            a, b = both["marquee graph"], both["hnswlib"]
            print(
                f"M {m} ef {ef}: marquee graph {a['recall_at_10']:.4f} at "
                f"{a['queries_per_second']:.0f} q/s, hnswlib {b['recall_at_10']:.4f} at "
                f"{b['queries_per_second']:.0f} q/s: ratio "
                f"{a['queries_per_second'] / b['queries_per_second']:.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps({"rows": every, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
