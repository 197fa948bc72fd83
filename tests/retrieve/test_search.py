"""Hybrid retrieval: score semantics, thresholds, fusion, filters, multi-KB, rerank."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from kbchat.config import load_settings
from kbchat.embed.chit_chat import ChitChat
from kbchat.errors import BadInput
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import Library
from kbchat.retrieve.search import SearchOptions, relevance, retrieve, search

DOCS = {
    "kettle.txt": "The K3 kettle has a two year warranty. Descale it monthly with citric acid.",
    "tea.md": "# Green tea\n\nBrew green tea at 80 degrees for three minutes.",
    "保修.txt": "本产品保修期为两年，自购买之日起计算。保修期内免费维修。",
    "coffee.txt": "Espresso needs finely ground coffee and 9 bar of pressure.",
    "copy.txt": "The K3 kettle has a two year warranty. Descale it monthly with citric acid.",
}


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    library = Library(load_settings(embedder={"backend": "hash"}))
    library.create("home")
    kb = library.get("home")
    kb.add([root])
    return kb


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_every_mode_finds_the_passage_with_scores_in_unit_range(
    kb: KnowledgeBase, mode: str
) -> None:
    hits = search([kb], "kettle warranty descale", SearchOptions(mode=mode, threshold=0.0))  # type: ignore[arg-type]
    assert hits[0].file in ("kettle.txt", "copy.txt")
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_chinese_query_matches_chinese_passage(kb: KnowledgeBase) -> None:
    assert search([kb], "保修期多长？")[0].file == "保修.txt"


def test_greeting_retrieves_nothing_at_the_default_threshold(kb: KnowledgeBase) -> None:
    assert search([kb], "你好") == []
    assert search([kb], "hello there!") == []


def test_threshold_one_filters_everything(kb: KnowledgeBase) -> None:
    assert search([kb], "kettle warranty", SearchOptions(threshold=1.0)) == []


def test_near_identical_hits_are_deduplicated(kb: KnowledgeBase) -> None:
    files = [h.file for h in search([kb], "kettle warranty", SearchOptions(threshold=0.0, top_k=5))]
    assert len({"kettle.txt", "copy.txt"} & set(files)) == 1
    both = search([kb], "kettle warranty", SearchOptions(threshold=0.0, top_k=5, dedupe=False))
    assert {"kettle.txt", "copy.txt"} <= {h.file for h in both}


def test_filters_by_file_glob_type_and_page(kb: KnowledgeBase) -> None:
    hits = search([kb], "kettle tea coffee", SearchOptions(threshold=0.0, files=("t*",)))
    assert {h.file for h in hits} == {"tea.md"}
    hits = search([kb], "kettle tea coffee", SearchOptions(threshold=0.0, file_types=("md",)))
    assert {h.file for h in hits} == {"tea.md"}
    assert search([kb], "kettle", SearchOptions(threshold=0.0, pages=(2, 3))) == []


def test_multi_kb_hits_are_labelled(kb: KnowledgeBase, tmp_path: Path) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "grinder.txt").write_text("The grinder makes espresso coffee grounds.")
    library = Library(load_settings(embedder={"backend": "hash"}))
    library.create("other")
    other = library.get("other")
    other.add([other_dir])
    hits = search([kb, other], "espresso coffee grinder", SearchOptions(threshold=0.0, top_k=3))
    assert {h.kb for h in hits} == {"home", "other"}
    assert hits[0].kb == "other"


def test_rrf_fusion_orders_but_keeps_unit_scores(kb: KnowledgeBase) -> None:
    hits = search([kb], "green tea brew", SearchOptions(fusion="rrf", threshold=0.0))
    assert hits[0].file == "tea.md"
    assert all(0.0 <= h.score <= 1.0 for h in hits)


class ReverseReranker:
    name = "reverse"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        self.calls.append((query, len(passages)))
        return [1.0 if "Espresso" in p else 0.1 for p in passages]


def test_reranker_reorders_and_applies_its_threshold(kb: KnowledgeBase) -> None:
    reranker = ReverseReranker()
    options = SearchOptions(threshold=0.0, rerank_threshold=0.5, top_k=5)
    hits = search([kb], "kettle coffee", options, reranker=reranker)
    assert [h.file for h in hits] == ["coffee.txt"]
    assert hits[0].extra["retrieval_score"] < 1.0
    assert reranker.calls and reranker.calls[0][0] == "kettle coffee"


def test_very_long_query_is_truncated_with_a_notice(kb: KnowledgeBase) -> None:
    result = retrieve([kb], "kettle " * 20000)
    assert result.notices and "140000 characters" in result.notices[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top_k"),
        ({"threshold": 1.5}, "threshold"),
        ({"mode": "fuzzy"}, "mode"),
        ({"pages": (5, 2)}, "page range"),
    ],
)
def test_invalid_options_name_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        SearchOptions(**kwargs)  # type: ignore[arg-type]


def test_empty_query_is_refused(kb: KnowledgeBase) -> None:
    with pytest.raises(BadInput, match="empty"):
        search([kb], "  \n ")


def test_relevance_is_measured_from_the_querys_chit_chat_level() -> None:
    class Compressed:
        """Like e5: every similarity between 0.8 and 0.9."""

        score_width = 0.1
        dim = 2

        def embed_batch(self, texts: list[str], *, is_query: bool = False) -> np.ndarray:
            return np.tile(np.array([[0.8, 0.6]], dtype=np.float32), (len(texts), 1))

    embedder = Compressed()
    query = np.array([1.0, 0.0], dtype=np.float32)  # similarity 0.8 to every chit-chat line
    cosines = np.array([0.75, 0.80, 0.87])
    scores = relevance(embedder, query, cosines, chit_chat=ChitChat())  # type: ignore[arg-type]
    assert scores.tolist() == pytest.approx([-0.2, 0.3, 1.0], abs=1e-5)  # unclipped, for ranking


def test_other_language_passages_get_the_bm25_of_same_language_peers() -> None:
    from kbchat.retrieve.search import _lexical_stand_in

    lexical = np.array([0.1, 0.0, 0.3, 0.0])
    dense = np.array([0.62, 0.53, 0.60, 0.95])
    same = np.array([True, False, True, False])
    stand_in = _lexical_stand_in(lexical, dense, same, margin=0.1)
    # The Chinese copy (0.53) is compared with English passages of comparable meaning
    # (0.60 and 0.62 are within 0.1): it gets their median BM25, not a free pass.
    assert stand_in[1] == pytest.approx(0.2) and stand_in[0] == 0.1 and stand_in[2] == 0.3
    # A passage far more relevant than any same-language one keeps dense-only ranking.
    assert np.isnan(stand_in[3])
    assert np.isnan(_lexical_stand_in(lexical, dense, same, margin=0.0)[1])
