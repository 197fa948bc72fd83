"""A BM25 index pickled by earlier kbchat versions is replaced, unread, when its knowledge base opens."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from kbchat.kb.library import Library
from kbchat.store.bm25 import LexicalIndex, tokenize


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "warranty.txt").write_text("The warranty of the K3 kettle is two years.", "utf-8")
    (root / "保修.md").write_text("# 保修政策\n\n本产品保修期为两年。\n", "utf-8")
    return root


ENTRIES = [
    (11, tokenize("The kettle warranty lasts two years")),
    (7, tokenize("Recipes for green tea")),
]


class _RunsCode:
    """Unpickling this creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _write_as_earlier_versions(index: LexicalIndex, path: Path, marker: Path) -> None:
    """What LexicalIndex.save wrote in earlier kbchat versions: one pickle of the bm25s model and maps."""
    state = {
        "model": index._model,
        "ids": index._ids,
        "doc_freq": index._doc_freq,
        "tripwire": _RunsCode(marker),
    }
    with path.open("wb") as handle:
        pickle.dump(state, handle, protocol=5)


def test_the_tripwire_fires_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    _write_as_earlier_versions(LexicalIndex.build(ENTRIES), tmp_path / "bm25.pkl", marker)
    with (tmp_path / "bm25.pkl").open("rb") as handle:
        pickle.load(handle)
    assert marker.exists()


def test_a_pickled_index_is_migrated_on_first_open_unread(
    library: Library, docs: Path, tmp_path: Path
) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    tokens = tokenize("kettle warranty 保修期")
    expected = kb.index.fresh_lexical().search(tokens, 5)
    old = LexicalIndex.build(library.catalog.iter_tokens(kb.record.id))
    shutil.rmtree(kb.directory / "bm25")
    marker = tmp_path / "unpickled"
    _write_as_earlier_versions(old, kb.directory / "bm25.pkl", marker)

    reopened = Library(library.settings).get("m")

    assert not marker.exists(), "the old pickle was loaded"
    assert not (kb.directory / "bm25.pkl").exists()
    assert (kb.directory / "bm25" / "ids.npy").exists()
    assert reopened.index.fresh_lexical().search(tokens, 5) == expected != []
    assert LexicalIndex.load(kb.directory / "bm25").search(tokens, 5) == expected
