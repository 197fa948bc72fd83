from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kbchat.chat import translations
from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.chat.translations import cross_lingual_vectors, translations_dropped
from kbchat.config import load_settings
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import Library
from kbchat.registry import embedders
from kbchat.retrieve.search import SearchOptions, search
from kbchat.testing.fakes import HashEmbedder, ScriptedChatModel
from kbchat.types import Hit

EN = "Run kbchat kb sync NAME FOLDER. New files are added and changed files re-indexed."
ZH = "运行 kbchat kb sync 名称 文件夹。新文件会被添加，修改过的文件会重新索引。"


def hit(file: str, text: str, chunk_id: int) -> Hit:
    return Hit(kb="docs", file=file, text=text, score=0.5, chunk_id=chunk_id)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_a_translation_of_a_passage_in_the_questions_language_is_left_out() -> None:
    zh, en, other = hit("faq.zh.txt", ZH, 1), hit("faq.txt", EN, 2), hit("cli.md", EN, 3)
    vectors = {("docs", 1): unit(1, 0.1), ("docs", 2): unit(1, 0.2), ("docs", 3): unit(0, 1)}
    assert translations_dropped([en, zh, other], "zh", vectors) == [zh, other]
    # an English question keeps the English copy and drops the Chinese one
    assert translations_dropped([en, zh, other], "en", vectors) == [en, other]


def test_copies_within_one_file_and_passages_without_vectors_are_kept() -> None:
    zh, en = hit("faq.txt", ZH, 1), hit("faq.txt", EN, 2)
    same_vector = {("docs", 1): unit(1, 0), ("docs", 2): unit(1, 0)}
    assert translations_dropped([zh, en], "zh", same_vector) == [zh, en]  # one file: both
    zh_file = hit("faq.zh.txt", ZH, 1)
    assert translations_dropped([zh_file, en], "zh", {("docs", 1): unit(1, 0)}) == [zh_file, en]


@pytest.fixture
def composite_kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    """A KB with a composite embedder (hash + a second hash, standing in for mE5 + USE)."""
    embedders.register("hash2", lambda **kw: HashEmbedder(dim=500))
    root = tmp_path / "docs"
    root.mkdir()
    (root / "faq.txt").write_text(EN, encoding="utf-8")
    (root / "faq.zh.txt").write_text(ZH, encoding="utf-8")
    library = Library(load_settings(embedder={"backend": "hash+hash2"}))
    library.create("docs")
    kb = library.get("docs")
    kb.add([root])
    yield kb
    embedders.unregister("hash2")


def test_the_cross_lingual_vectors_are_the_stored_second_parts(
    composite_kb: KnowledgeBase,
) -> None:
    kb = composite_kb
    hits = search([kb], "kbchat kb sync", SearchOptions(threshold=0.0))
    vectors = cross_lingual_vectors(hits, [kb])
    assert set(vectors) == {(h.kb, h.chunk_id) for h in hits} and len(hits) == 2
    for h in hits:
        expected = HashEmbedder(dim=500).embed_batch([h.text])[0]
        assert np.allclose(vectors[(h.kb, h.chunk_id)], expected / np.linalg.norm(expected))


def test_the_prompt_holds_the_copy_in_the_questions_language_only(
    composite_kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = composite_kb
    hits = search([kb], "kbchat kb sync", SearchOptions(threshold=0.0))
    vectors = list(cross_lingual_vectors(hits, [kb]).values())
    # hash vectors are lexical, not cross-lingual: call these two copies
    monkeypatch.setattr(translations, "TRANSLATION_COSINE", float(vectors[0] @ vectors[1]) - 0.01)
    model = ScriptedChatModel(["运行 kbchat kb sync 名称 文件夹。[1]"])
    options = ChatOptions(
        search=SearchOptions(threshold=0.0), min_score=0.0, min_score_cross=0.0, verify=False
    )
    list(stream_answer(model, [kb], "如何用 kbchat kb sync 更新？", options=options))
    prompt = model.received[0][-1].content
    assert "faq.zh.txt" in prompt and "faq.txt" not in prompt and EN not in prompt
