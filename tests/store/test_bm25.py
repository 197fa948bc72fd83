"""BM25 indexes saved with bm25s's own files (no pickle) and read back the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kbchat.store.bm25 import LexicalIndex, tokenize

ENTRIES = [
    (11, tokenize("The kettle warranty lasts two years")),
    (42, tokenize("水壶的保修期为两年")),
    (7, tokenize("Recipes for green tea and black tea")),
]


def test_saved_index_loads_with_the_same_scores(tmp_path: Path) -> None:
    built = LexicalIndex.build(ENTRIES)
    built.save(tmp_path / "bm25")
    built.save(tmp_path / "bm25")  # replacing a saved index
    loaded = LexicalIndex.load(tmp_path / "bm25")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bm25"]
    assert not list((tmp_path / "bm25").glob("*.pkl"))
    for query in ("kettle warranty", "保修期", "tea"):
        tokens = tokenize(query)
        assert loaded.search(tokens, 3) == built.search(tokens, 3) != []
    assert loaded.count() == 3 and loaded.query_weight(["tea"]) == built.query_weight(["tea"])


def test_an_empty_index_round_trips(tmp_path: Path) -> None:
    LexicalIndex.build([]).save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25")
    assert loaded.count() == 0 and loaded.search(["tea"], 3) == []


def test_a_damaged_index_fails_to_load(tmp_path: Path) -> None:
    LexicalIndex.build(ENTRIES).save(tmp_path / "bm25")
    np.save(tmp_path / "bm25" / "ids.npy", np.array([1, 2]))
    with pytest.raises(ValueError, match="disagree"):
        LexicalIndex.load(tmp_path / "bm25")


def test_a_word_with_accented_letters_is_one_token() -> None:
    assert tokenize("Doñana National Park") == ["donana", "national", "park"]
    assert tokenize("Donana") == ["donana"]  # typed without the accent, the same token
    assert tokenize("Käthe Leichter, Müller-Straße") == ["kathe", "leichter", "muller", "straße"]
    index = LexicalIndex.build(
        [(1, tokenize("Doñana is a park in Andalusia")), (2, tokenize("Banana and ana"))]
    )
    # The fragments jieba made ("do", "ñ", "ana") matched any "ana"; the whole name matches.
    assert [hit[0] for hit in index.search(tokenize("Doñana"), 2)] == [1]
