"""Questions about attached files as a whole are answered from the files' summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.chat.files import FileChats
from kbchat.chat.overview import (
    MAX_NEW,
    is_kb_overview_question,
    is_overview_question,
    overview_answer,
    overview_source,
    overview_target,
)
from kbchat.config import load_settings
from kbchat.kb.knowledge_base import KnowledgeBase
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


@pytest.mark.parametrize(
    "question",
    [
        "What is this knowledge base about?",
        "what's in the kb?",
        "Please summarize this knowledge base",
        "What topics does the knowledge base cover?",
        "这个知识库讲了什么",
        "知识库里有哪些内容",
        "请总结一下这个知识库",
    ],
)
def test_knowledge_base_overview_questions_are_recognised(question: str) -> None:
    assert is_kb_overview_question(question)
    assert not is_overview_question(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is the warranty in this knowledge base?",
        "How do I create a knowledge base?",
        "知识库的保修期是多久？",
    ],
)
def test_other_knowledge_base_questions_are_not(question: str) -> None:
    assert not is_kb_overview_question(question)


def lab(tmp_path: Path, count: int) -> KnowledgeBase:
    library = Library(load_settings(embedder={"backend": "hash"}))
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(count):
        (docs / f"f{n}.txt").write_text(f"Appliance {n} passed its test.", encoding="utf-8")
    kb = library.ensure("lab")
    kb.add([docs])
    return kb


def test_a_knowledge_base_question_goes_to_the_one_knowledge_base(tmp_path: Path) -> None:
    kb = lab(tmp_path, 1)
    assert overview_source([kb], "What is this knowledge base about?") is kb
    assert overview_source([kb, kb], "What is this knowledge base about?") is None
    assert overview_source([kb], "How long is the warranty?") is None
    assert overview_source([kb], "What is this file about?") is None  # not attached files


def test_the_overview_is_made_from_the_summaries_and_kept(tmp_path: Path) -> None:
    kb = lab(tmp_path, 2)
    model = ScriptedChatModel(["Kettle tests.", "Toaster tests.", "Appliance test reports."])
    *deltas, answer = list(overview_answer(model, kb, "What is this knowledge base about?"))
    assert isinstance(answer, Answer)
    assert answer.text == "Appliance test reports." == "".join(str(d) for d in deltas)
    assert [c.file for c in answer.citations] == ["f0.txt", "f1.txt"]
    assert [c.text for c in answer.citations] == ["Kettle tests.", "Toaster tests."]
    overview_prompt = model.received[-1][0].content
    assert (
        "f0.txt: Kettle tests." in overview_prompt and "f1.txt: Toaster tests." in overview_prompt
    )
    again = list(overview_answer(model, kb, "这个知识库讲了什么"))[-1]
    assert isinstance(again, Answer) and again.text == answer.text
    assert len(model.received) == 3  # the kept overview: no model call


def test_files_without_a_summary_are_named_beyond_a_few(tmp_path: Path) -> None:
    kb = lab(tmp_path, MAX_NEW + 2)
    model = ScriptedChatModel(["A test report.", "A test report.", "A test report.", "Tests."])
    answer = list(overview_answer(model, kb, "这个知识库讲了什么"))[-1]
    assert isinstance(answer, Answer)
    assert len(answer.citations) == MAX_NEW
    assert answer.text.startswith("Tests.")
    assert f"f{MAX_NEW}.txt, f{MAX_NEW + 1}.txt" in answer.text and "还没有摘要" in answer.text
    assert f"kbchat summarize {kb.name}" in answer.text


def test_an_overview_of_a_knowledge_base_without_files_says_so(tmp_path: Path) -> None:
    library = Library(load_settings(embedder={"backend": "hash"}))
    kb = library.ensure("empty")
    answer = list(overview_answer(ScriptedChatModel(), kb, "What is in this KB?"))[-1]
    assert isinstance(answer, Answer) and not answer.grounded and not answer.citations
    assert "no indexed file" in answer.text
