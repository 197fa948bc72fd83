"""bench/stores.py's budget: which stores it skips at a larger size, and the reason it records."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def stores() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        import stores

        yield stores
    finally:
        sys.path.remove(str(BENCH))


RUN = {
    "100000": {
        "faiss-flat": {"build_s": 2.0, "query": {"p50_ms": 70.0, "p95_ms": 90.0, "recall@10": 1}},
        "faiss-hnsw": {"build_s": 220.0, "query": {"ef40": {"p50_ms": 0.4}}},
        "milvus-lite": {"build_s": 50.0, "query": {"ef100": {"p50_ms": 1300.0}}},
        "pgvector-hnsw": {"not_run": True, "reason": "..."},
    }
}


def test_a_store_whose_extrapolated_build_fits_is_run(stores: ModuleType) -> None:
    assert stores.over_budget("faiss-flat", 1_000_000, RUN, 200, 900.0) is None


def test_an_hnsw_build_over_budget_is_recorded_with_its_numbers(stores: ModuleType) -> None:
    skipped = stores.over_budget("faiss-hnsw", 1_000_000, RUN, 200, 900.0)
    assert skipped["not_run"] and skipped["estimate_s"] == {"build": 2200}
    assert skipped["from_size"] == 100_000
    assert "build time 2200 s > budget 900 s" in skipped["reason"]
    assert "lower bound" in skipped["reason"]


def test_a_linear_scan_is_judged_by_its_query_phase_too(stores: ModuleType) -> None:
    assert stores.over_budget("milvus-lite", 1_000_000, RUN, 200, 900.0) is None
    skipped = stores.over_budget("milvus-lite", 1_000_000, RUN, 200, 600.0)
    assert skipped["estimate_s"] == {"build": 500, "queries": 650}  # 50 queries x 13 s
    assert "queries time 650 s > budget 600 s" in skipped["reason"]
    assert "linear in the rows" in skipped["reason"]


def test_nothing_measured_smaller_means_run(stores: ModuleType) -> None:
    assert stores.over_budget("pgvector-hnsw", 1_000_000, RUN, 200, 900.0) is None
    assert stores.over_budget("faiss-flat", 100_000, RUN, 200, 1.0) is None
