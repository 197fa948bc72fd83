"""Questions about attached files as a whole are answered from the files' summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.chat.files import FileChats
from kbchat.chat.overview import is_overview_question, overview_answer, overview_target
from kbchat.config import load_settings
from kbchat.kb.library import Library
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Answer


@pytest.mark.parametrize(
    "question",
    [
        "What is this file about?",
        "what's the document about",
        "Summarize this file",
        "give me a summary of the documents",
        "总结一下这个文件",
        "概括这篇文章",
        "这个文件讲了什么？",
        "这份文档主要介绍什么",
    ],
)
def test_overview_questions_are_recognised(question: str) -> None:
    assert is_overview_question(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is the warranty in this file?",
        "How long is the warranty?",
        "这个文件里保修期多长？",
        "Who wrote about this file format?",
    ],
)
def test_other_questions_are_not(question: str) -> None:
    assert not is_overview_question(question)


def test_the_answer_cites_each_file_summary_and_keeps_them(tmp_path: Path) -> None:
    library = Library(load_settings(embedder={"backend": "hash"}))
    chats = FileChats(library, ttl_s=3600)
    (tmp_path / "a.txt").write_text("The kettle boils in ninety seconds.", encoding="utf-8")
    (tmp_path / "b.txt").write_text("The toaster has four slots.", encoding="utf-8")
    chats.attach("c1", None, [tmp_path / "a.txt", tmp_path / "b.txt"])
    kb = chats.find("c1", None)
    assert kb is not None and overview_target([kb]) is kb
    assert overview_target([kb, kb]) is None
    model = ScriptedChatModel(["A kettle manual.", "A toaster manual."])
    *deltas, answer = list(overview_answer(model, kb, "What are these files about?"))
    assert isinstance(answer, Answer)
    assert answer.text == "a.txt: A kettle manual. [1]\n\nb.txt: A toaster manual. [2]"
    assert "".join(str(d) for d in deltas) == answer.text
    assert [(c.marker, c.file) for c in answer.citations] == [(1, "a.txt"), (2, "b.txt")]
    assert "Summarise the document below" in model.received[0][0].content
    again = list(overview_answer(model, kb, "What are these files about?"))[-1]
    assert isinstance(again, Answer) and again.text == answer.text and len(model.received) == 2
