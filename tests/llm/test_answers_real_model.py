"""Trust with the real embedded model: follow-ups keep their subject and polarity, and a
question the sample knowledge base does not answer is declined."""

from __future__ import annotations

from typing import Any

import pytest

from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.config import load_settings
from kbchat.kb.library import Library
from kbchat.retrieve.search import SearchOptions
from kbchat.sample import sample_dir
from kbchat.types import Answer, Message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FANS = """# 工业风机参数手册

## XR-7700A
型号XR-7700A为标准款离心风机，额定功率1.5千瓦，噪声不高于62分贝，适用于小型车间通风。

## XR-7700B
型号XR-7700B为加强款离心风机，额定功率2.2千瓦，噪声不高于65分贝，适用于中型仓库。
"""
RETURNS = """# Returns and repairs

An unopened kettle can be returned for a full refund within 30 days of delivery.

A kettle that arrived damaged is replaced free of charge: report the damage within 7 days
and keep the packaging.
"""
OPTIONS = ChatOptions(
    search=SearchOptions(top_k=3),
    temperature=0.0,
    max_tokens=96,
    min_score=0.0,  # as before ChatOptions took the settings' bars: the model decides
    min_score_cross=0.0,
)


def answer(model: Any, library: Library, kb: str, question: str, history: list[Message]) -> Answer:
    *_, final = stream_answer(model, [library.get(kb)], question, history=history, options=OPTIONS)
    assert isinstance(final, Answer)
    return final


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    root = tmp_path_factory.mktemp("docs")
    (root / "fans.md").write_text(FANS, encoding="utf-8")
    (root / "returns.md").write_text(RETURNS, encoding="utf-8")
    home = tmp_path_factory.mktemp("home")
    library = Library(load_settings(home=home))
    library.create("docs")
    library.get("docs").add([root])
    library.create("sample")
    library.get("sample").add([sample_dir()], exclude=["__init__.py", "*.pyc", "__pycache__"])
    return library


def test_a_chinese_follow_up_keeps_its_subject(llamacpp_model: Any, library: Library) -> None:
    history = [
        Message("user", "XR-7700B的额定功率是多少？"),
        Message("assistant", "XR-7700B的额定功率是2.2千瓦。 [1]"),
    ]
    final = answer(llamacpp_model, library, "docs", "那它的噪声不高于多少分贝？", history)
    assert "XR-7700B" in final.question
    assert "65" in final.text and "62" not in final.text, final.text


def test_an_english_follow_up_keeps_its_polarity(llamacpp_model: Any, library: Library) -> None:
    history = [
        Message("user", "Can I return an unopened kettle?"),
        Message("assistant", "Yes, within 30 days of delivery [1]."),
    ]
    final = answer(llamacpp_model, library, "docs", "And what if it arrived damaged?", history)
    assert final.outcome == "answered", final.text
    assert "replace" in final.text.lower() or "7 days" in final.text, final.text


def test_the_sample_kb_declines_what_it_does_not_say(llamacpp_model: Any, library: Library) -> None:
    final = answer(
        llamacpp_model, library, "sample", "How do I change the port of the web server?", []
    )
    assert final.refused and final.closest, final.text
    assert "8080" not in final.text and final.citations == []
