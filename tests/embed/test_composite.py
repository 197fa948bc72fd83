"""Composite embedders (e5+use): concatenated vectors, read part by part in retrieval."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from kbchat.config import load_settings
from kbchat.embed.base import Embedder, normalise
from kbchat.embed.composite import CompositeEmbedder
from kbchat.errors import ConfigError
from kbchat.kb.library import Library
from kbchat.registry import create_embedder, embedders
from kbchat.retrieve.search import SearchOptions, search
from kbchat.testing.contracts import EmbedderContract
from kbchat.testing.fakes import HashEmbedder

CONCEPTS = {
    "kettle": 0, "水壶": 0, "warranty": 1, "保修": 1, "two": 2, "两": 2,
    "years": 3, "年": 3, "tea": 4, "茶": 4, "brew": 5, "泡": 5,
}  # fmt: skip


class ConceptEmbedder:
    """A toy cross-lingual model: English and Chinese words for one concept share an axis."""

    dim = 8
    score_width = 0.5

    def __init__(self, **_: object) -> None:
        self.name = "concept-8"

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> np.ndarray:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            lowered = text.lower()
            for word, axis in CONCEPTS.items():
                matrix[row, axis] += lowered.count(word)
            matrix[row, 7] += 0.3  # everything shares a little background
        return normalise(matrix)


@pytest.fixture
def concept_backend() -> Iterator[None]:
    embedders.register("concept", ConceptEmbedder)
    yield
    embedders._factories.pop("concept", None)


def test_vectors_are_unit_length_and_split_back_into_the_parts() -> None:
    hashed, concept = HashEmbedder(), ConceptEmbedder()
    composite = CompositeEmbedder([hashed, concept])
    texts = ["kettle warranty two years", "泡茶"]
    vectors = composite.embed_batch(texts)
    assert composite.dim == 1008 and vectors.shape == (2, 1008)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    first, second = composite.split(vectors)
    assert first == pytest.approx(hashed.embed_batch(texts), abs=1e-6)
    assert second == pytest.approx(concept.embed_batch(texts), abs=1e-6)
    assert composite.name == "hash-1000+concept-8"


def test_part_cosines_and_weighted_queries() -> None:
    composite = CompositeEmbedder([HashEmbedder(), ConceptEmbedder()])
    passages = composite.embed_batch(["the kettle warranty", "水壶保修", "brew tea"])
    query = composite.embed_batch(["kettle warranty"], is_query=True)[0]
    lexical, conceptual = composite.part_cosines(passages, query)
    assert lexical[1] == pytest.approx(0.0, abs=1e-6)  # no shared word with the Chinese text
    assert conceptual[1] > 0.9  # the same concepts
    weighted = composite.weighted_query(query, [2.0, 0.5])
    assert passages @ weighted == pytest.approx(2.0 * lexical + 0.5 * conceptual, abs=1e-5)


@pytest.mark.parametrize(
    ("backend", "message"),
    [("hash+hash", "distinct"), ("hash+", "distinct"), ("hash+nope", "unknown embedder 'nope'")],
)
def test_bad_composite_names_are_refused(backend: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_embedder(backend)


def test_composite_knowledge_base_finds_passages_across_languages(
    tmp_path: Path, concept_backend: None
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "保修.txt").write_text("水壶保修两年。", encoding="utf-8")
    (docs / "tea.txt").write_text("Brew tea for three minutes.", encoding="utf-8")
    library = Library(load_settings(home=tmp_path / "home", embedder={"backend": "hash+concept"}))
    kb = library.ensure("mixed")
    kb.add([docs])
    assert kb.record.embedder == "hash-1000+concept-8"
    assert library.get("mixed").embedder.dim == 1008  # reopens with the recorded spec

    question = "How long is the kettle warranty?"
    hits = search([kb], question, SearchOptions(top_k=2))
    assert [h.file for h in hits][:1] == ["保修.txt"] and hits[0].score > 0.8
    # Without the cross-lingual part the Chinese passage sits at chit-chat level (0.3).
    alone = search([kb], question, SearchOptions(top_k=1, second_weight_cross=0.0))
    assert alone[0].file == "保修.txt" and alone[0].score == pytest.approx(0.3, abs=0.01)
    # A passage in the question's language is weighed by second_weight, not the cross one.
    same = search([kb], "brew tea", SearchOptions(top_k=1, second_weight_cross=1.0))
    again = search([kb], "brew tea", SearchOptions(top_k=1, second_weight_cross=0.0))
    assert same[0].file == "tea.txt" and same[0].score == pytest.approx(again[0].score)
    first_only = search([kb], "brew tea", SearchOptions(top_k=1, second_weight=0.0))
    both = search([kb], "brew tea", SearchOptions(top_k=1, second_weight=0.5))
    assert first_only[0].extra["rank_key"] != pytest.approx(both[0].extra["rank_key"])


class TestCompositeEmbedderContract(EmbedderContract):
    def make_embedder(self) -> Embedder:
        return CompositeEmbedder([HashEmbedder(dim=64), HashEmbedder(dim=32)])
