"""Contract suites every backend of a kind passes; subclass one in a test module.

Modelled on haystack's ``testing/document_store.py``: a suite is a mixin whose ``test_*``
methods pytest collects in the subclass, which only says how to build the backend. Kinds:
vector stores, embedders, chat models, rerankers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kbchat.embed.base import Embedder, normalise
from kbchat.errors import BadInput
from kbchat.llm.base import FINISH_CANCELLED, FINISH_LENGTH, FINISH_STOP, ChatModel
from kbchat.retrieve.search import Reranker
from kbchat.store.base import VectorStore
from kbchat.types import Delta, Message


def _ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


class VectorStoreContract:
    """The contract every VectorStore backend passes.

    Subclasses implement ``make_store(tmp_path, dim)``, which opens the store of one
    knowledge base (normally ``Backend.open(directory=tmp_path, ...)``); calling it again
    with the same arguments must open the same store (``reopen`` does, by default).
    """

    dim = 8

    def make_store(self, tmp_path: Path, dim: int) -> VectorStore:
        raise NotImplementedError

    def reopen(self, store: VectorStore, tmp_path: Path) -> VectorStore:
        """Open the persisted store again."""
        return self.make_store(tmp_path, store.dim)

    @staticmethod
    def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
        return normalise(np.random.default_rng(seed).normal(size=(n, dim)))

    def test_empty_store_finds_nothing(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        assert store.dim == self.dim
        assert store.count() == 0
        assert store.ids().dtype == np.int64 and len(store.ids()) == 0
        assert store.search(self._vectors(1, self.dim)[0], 3) == []

    def test_nearest_first_with_scores_in_unit_range(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(20, self.dim)
        store.add(np.arange(100, 120, dtype=np.int64), vectors)
        hits = store.search(vectors[7], 5)
        assert len(hits) == 5
        assert hits[0][0] == 107
        assert abs(hits[0][1] - 1.0) < 1e-4
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        opposite = store.search(-vectors[7], 20)
        assert all(0.0 <= s <= 1.0 for _, s in opposite)

    def test_delete_and_replace(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(10, self.dim)
        ids = np.arange(10, dtype=np.int64)
        store.add(ids, vectors)
        store.delete(_ids(3, 4, 999))
        assert store.count() == 8
        assert 3 not in {i for i, _ in store.search(vectors[3], 10)}
        store.add(_ids(5), vectors[3:4])
        assert store.count() == 8
        assert store.search(vectors[3], 1)[0][0] == 5
        assert sorted(store.ids().tolist()) == [0, 1, 2, 5, 6, 7, 8, 9]

    def test_empty_add_and_delete_change_nothing(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        store.add(_ids(), np.zeros((0, self.dim), dtype=np.float32))
        store.delete(_ids())
        store.delete(_ids(1, 2))
        assert store.count() == 0

    def test_allow_list_restricts_results(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(10, self.dim)
        store.add(np.arange(10, dtype=np.int64), vectors)
        hits = store.search(vectors[0], 5, allowed=_ids(2, 8))
        assert {i for i, _ in hits} == {2, 8}
        assert store.search(vectors[0], 5, allowed=_ids()) == []

    def test_get_returns_stored_vectors_in_the_order_given(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(6, self.dim)
        store.add(np.arange(10, 16, dtype=np.int64), vectors)
        ids, got = store.get(_ids(14, 999, 10, 12))
        assert ids.tolist() == [14, 10, 12]
        assert got.dtype == np.float32 and got.shape == (3, self.dim)
        np.testing.assert_allclose(got, vectors[[4, 0, 2]], atol=1e-5)

    def test_get_of_unknown_or_no_ids_is_empty(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        for wanted in (_ids(), _ids(1, 2)):
            ids, got = store.get(wanted)
            assert len(ids) == 0 and got.shape == (0, self.dim) and got.dtype == np.float32
        store.add(_ids(1), self._vectors(1, self.dim))
        ids, got = store.get(_ids(5))
        assert len(ids) == 0 and got.shape == (0, self.dim)

    def test_get_sees_replacements(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(2, self.dim)
        store.add(_ids(7), vectors[:1])
        store.add(_ids(7), vectors[1:])
        ids, got = store.get(_ids(7))
        assert ids.tolist() == [7]
        np.testing.assert_allclose(got[0], vectors[1], atol=1e-5)

    def test_persist_and_reopen(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(6, self.dim)
        store.add(np.arange(6, dtype=np.int64), vectors)
        store.delete(_ids(4))
        store.add(_ids(5), vectors[3:4])
        store.persist()
        again = self.reopen(store, tmp_path)
        assert again.count() == 5
        assert sorted(again.ids().tolist()) == [0, 1, 2, 3, 5]
        assert again.search(vectors[2], 1)[0][0] == 2
        ids, got = again.get(_ids(5, 1))
        assert ids.tolist() == [5, 1]
        np.testing.assert_allclose(got, vectors[[3, 1]], atol=1e-5)

    def test_drop_removes_everything(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(4, self.dim)
        store.add(np.arange(4, dtype=np.int64), vectors)
        store.persist()
        store.drop()
        again = self.reopen(store, tmp_path)
        assert again.count() == 0
        assert again.search(vectors[0], 3) == []
        again.add(_ids(9), vectors[:1])  # a dropped store is opened afresh and usable
        assert again.search(vectors[0], 1)[0][0] == 9

    def test_drop_of_a_new_store_and_twice(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        store.drop()
        store.drop()
        assert self.reopen(store, tmp_path).count() == 0

    def test_rejects_bad_arguments(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        with pytest.raises(ValueError, match="k must be > 0"):
            store.search(self._vectors(1, self.dim)[0], 0)
        with pytest.raises(ValueError):
            store.add(np.arange(2, dtype=np.int64), self._vectors(3, self.dim))


class EmbedderContract:
    """The contract every Embedder passes; subclasses implement ``make_embedder()``.

    The embedder is built once per test class (local models take seconds to load).
    ``ranks`` says whether its vectors carry meaning; a fake server's may not.
    """

    ranks = True
    texts = (
        "The K3 kettle has a two-year warranty.",
        "绿茶用八十度的水冲泡两分钟。",
        "Brew green tea at 80 degrees for two minutes.",
    )

    def make_embedder(self) -> Embedder:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Embedder:
        return cls().make_embedder()

    def test_names_itself_and_its_dimension(self, embedder: Embedder) -> None:
        assert isinstance(embedder.name, str) and embedder.name
        assert isinstance(embedder.dim, int) and embedder.dim > 0

    @pytest.mark.parametrize("is_query", [False, True])
    def test_shape_dtype_and_unit_norm(self, embedder: Embedder, is_query: bool) -> None:
        vectors = embedder.embed_batch(list(self.texts), is_query=is_query)
        assert vectors.shape == (len(self.texts), embedder.dim)
        assert vectors.dtype == np.float32
        assert np.isfinite(vectors).all()
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    def test_empty_batch(self, embedder: Embedder) -> None:
        for is_query in (False, True):
            vectors = embedder.embed_batch([], is_query=is_query)
            assert vectors.shape == (0, embedder.dim) and vectors.dtype == np.float32

    def test_same_text_same_vector_whatever_the_batch(self, embedder: Embedder) -> None:
        together = embedder.embed_batch(list(self.texts))
        alone = np.vstack([embedder.embed_batch([text]) for text in self.texts])
        np.testing.assert_allclose(together, alone, atol=1e-4)

    def test_query_is_nearest_its_answer(self, embedder: Embedder) -> None:
        if not self.ranks:
            pytest.skip("this embedder's vectors carry no meaning")
        query = embedder.embed_batch(["How long is the kettle warranty?"], is_query=True)[0]
        passages = embedder.embed_batch(list(self.texts), is_query=False)
        assert int(np.argmax(passages @ query)) == 0


class ChatModelContract:
    """The contract every ChatModel passes; subclasses implement ``make_model(reply)``.

    Real models are asked to repeat ``REPLY`` and ignore ``reply``; a scripted one
    replies with it. The model is built once per test class.
    """

    REPLY = "one two three four five six seven eight nine ten eleven twelve"
    MESSAGES = (
        Message("system", "Repeat the user's message word for word, nothing else."),
        Message("user", REPLY),
    )

    def make_model(self, reply: str) -> ChatModel:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> ChatModel:
        return cls().make_model(cls.REPLY)

    def _stream(self, model: ChatModel, **params: Any) -> tuple[str, list[Delta]]:
        params.setdefault("temperature", 0.0)
        deltas = list(model.stream(list(self.MESSAGES), **params))
        return "".join(d.text for d in deltas), deltas

    @staticmethod
    def _finish(deltas: Sequence[Delta]) -> Delta:
        finals = [n for n, d in enumerate(deltas) if d.finish_reason is not None]
        assert finals == [len(deltas) - 1], "exactly one finish reason, on the last delta"
        last = deltas[-1]
        assert last.usage is not None, "the last delta carries usage"
        return last

    def test_stream_ends_with_a_finish_reason_and_usage(self, model: ChatModel) -> None:
        text, deltas = self._stream(model, max_tokens=64)
        last = self._finish(deltas)
        assert text.strip()
        assert last.finish_reason in (FINISH_STOP, FINISH_LENGTH)
        assert last.usage is not None
        assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0

    def test_stop_sequence_ends_the_answer_before_it(self, model: ChatModel) -> None:
        text, deltas = self._stream(model, max_tokens=64, stop=["five"])
        assert self._finish(deltas).finish_reason == FINISH_STOP
        assert text.strip() and "five" not in text.lower()
        assert "six" not in text.lower()

    def test_max_tokens_ends_with_length(self, model: ChatModel) -> None:
        text, deltas = self._stream(model, max_tokens=3)
        last = self._finish(deltas)
        assert last.finish_reason == FINISH_LENGTH
        assert text.strip()
        assert last.usage is not None and 0 < last.usage.completion_tokens <= 3

    def test_cancel_ends_the_stream(self, model: ChatModel) -> None:
        cancel = threading.Event()
        deltas: list[Delta] = []
        for delta in model.stream(list(self.MESSAGES), max_tokens=64, cancel=cancel):
            deltas.append(delta)
            if delta.text:
                cancel.set()
        last = self._finish(deltas)
        assert last.finish_reason == FINISH_CANCELLED
        assert "twelve" not in "".join(d.text for d in deltas).lower()

    def test_rejects_bad_parameters(self, model: ChatModel) -> None:
        with pytest.raises(BadInput, match="max_tokens"):
            self._stream(model, max_tokens=0)
        with pytest.raises(BadInput, match="temperature"):
            self._stream(model, temperature=5.0)

    def test_counts_tokens(self, model: ChatModel) -> None:
        assert 0 < model.count_tokens("one two") < model.count_tokens(self.REPLY)


class RerankerContract:
    """The contract every Reranker passes; subclasses implement ``make_reranker()``.

    ``RELEVANT`` must score above ``OTHER`` for ``QUERY``; a subclass whose backend sees
    other words (a tiny test model) overrides them.
    """

    QUERY = "kettle warranty"
    RELEVANT = "kettle warranty two years"
    OTHER = "tea coffee"

    def make_reranker(self) -> Reranker:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def reranker(cls) -> Reranker:
        return cls().make_reranker()

    def test_one_score_per_passage_in_unit_range(self, reranker: Reranker) -> None:
        scores = reranker.rerank(self.QUERY, [self.OTHER, self.RELEVANT, self.OTHER])
        assert len(scores) == 3
        assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
        assert scores[1] > scores[0]
        assert scores[0] == pytest.approx(scores[2], abs=1e-5)

    def test_score_does_not_depend_on_position(self, reranker: Reranker) -> None:
        forward = reranker.rerank(self.QUERY, [self.RELEVANT, self.OTHER])
        backward = reranker.rerank(self.QUERY, [self.OTHER, self.RELEVANT])
        assert forward == pytest.approx(backward[::-1], abs=1e-5)

    def test_no_passages_no_scores(self, reranker: Reranker) -> None:
        assert reranker.rerank(self.QUERY, []) == []

    def test_names_itself(self, reranker: Reranker) -> None:
        assert isinstance(reranker.name, str) and reranker.name
