"""Knowledge-base chat logic, with the scripted chat model."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kbchat.chat.grounding import unwrapped
from kbchat.chat.memory import fit_history, truncate_to_tokens
from kbchat.chat.plain import stream_chat
from kbchat.chat.rag import (
    ChatOptions,
    build_messages,
    same_language_first,
    stream_answer,
    stream_answer_from,
)
from kbchat.config import load_settings
from kbchat.errors import BadInput
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import Library
from kbchat.llm.base import estimate_tokens
from kbchat.options import answer_search_options, chat_options
from kbchat.retrieve.search import Retrieval, SearchOptions
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.text import detect_language
from kbchat.types import Answer, Hit, Message


def hash_kb(tmp_path: Path, name: str, files: dict[str, str]) -> KnowledgeBase:
    """A knowledge base ``name`` (hash embedder) holding ``files`` (file name -> text)."""
    root = tmp_path / name
    root.mkdir()
    for file, text in files.items():
        (root / file).write_text(text, encoding="utf-8")
    library = Library(load_settings(embedder={"backend": "hash"}))
    library.create(name)
    kb = library.get(name)
    kb.add([root])
    return kb


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    return hash_kb(
        tmp_path,
        "home",
        {
            "kettle.txt": "The K3 kettle has a two year warranty.",
            "tea.md": "# Tea\n\nBrew green tea at 80 degrees.",
            "保修.txt": "本产品保修期为两年。",
        },
    )


def run(events: list[object]) -> tuple[str, Answer]:
    *deltas, answer = events
    assert isinstance(answer, Answer)
    return "".join(str(d) for d in deltas), answer


def test_answer_streams_and_cites_the_marked_source(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["The warranty is two years [1]."])
    streamed, answer = run(
        list(stream_answer(model, [kb], "What warranty does the K3 kettle have?"))
    )
    assert streamed == answer.text == "The warranty is two years [1]."
    assert [c.marker for c in answer.citations] == [1]
    assert answer.citations[0].file == "kettle.txt"
    assert "two year" in answer.citations[0].quote
    assert answer.grounded and answer.timings["ttft_s"] <= answer.timings["total_s"]
    prompt = model.received[0]
    assert prompt[0].role == "system" and "[1] (kettle.txt)" in prompt[-1].content


def test_markers_are_added_when_the_model_writes_none(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["The K3 kettle warranty lasts two years."])
    streamed, answer = run(list(stream_answer(model, [kb], "kettle warranty?")))
    assert answer.text.endswith("[1]") and streamed == answer.text
    assert answer.citations[0].file == "kettle.txt"


NO_BAR: dict[str, Any] = {"min_score": 0.0, "min_evidence": 0.0}
"""No answer bar: the hash embedder's relevance is not calibrated."""


def answer_over(
    tmp_path: Path, file: str, text: str, reply: str, question: str, **options: Any
) -> tuple[Answer, ScriptedChatModel]:
    """The answer to ``question`` over a KB of one file, the model replying ``reply``;
    ``options``: ChatOptions fields beside ``search=LOW``."""
    kb = hash_kb(tmp_path, "docs", {file: text})
    model = ScriptedChatModel([reply])
    chat = ChatOptions(search=LOW, **options) if options else None
    return run(list(stream_answer(model, [kb], question, options=chat)))[1], model


def test_the_quote_is_the_sentence_giving_the_answer_s_number_not_one_naming_the_product(
    tmp_path: Path,
) -> None:
    text = (
        "The Zephyr-9 kettle comes with a two year warranty on the Zephyr-9 base.\n"
        "Rated power: 1800 W."
    )
    reply = "The Zephyr-9 kettle is rated at 1800 W [1]."
    answer, _ = answer_over(tmp_path, "zephyr.txt", text, reply, "Zephyr-9 kettle power?")
    assert answer.citations[0].quote == "Rated power: 1800 W."


def test_the_quote_is_the_source_of_the_answer_s_first_sentence(tmp_path: Path) -> None:
    text = "问：支持哪些语言？\n答：文档和问题都支持中文和英文。由于向量模型是多语言的，中文问题也能检索到英文段落。"
    reply = "文档和问题都支持中文和英文[1]。由于向量模型是多语言的，中文问题也能检索到英文段落。"
    answer, _ = answer_over(tmp_path, "faq.zh.txt", text, reply, "支持哪些语言？")
    assert answer.citations[0].quote == "答：文档和问题都支持中文和英文。"


def test_a_passage_s_section_path_goes_in_its_label_and_its_heading_lines_out_of_its_text(
    tmp_path: Path,
) -> None:
    text = "# 快速入门\n\n## 创建知识库\n\n运行 kbchat kb create manuals 创建一个名为 manuals 的空知识库。\n"
    reply = "运行 kbchat kb create manuals [1]。"
    answer, model = answer_over(
        tmp_path, "quick-start.md", text, reply, "如何创建知识库？", **NO_BAR
    )
    prompt = model.received[0][-1].content
    assert "[1] (quick-start.md — 快速入门 › 创建知识库)\n运行 kbchat kb create manuals" in prompt
    # the quote is a sentence of the passage's body, never a bare heading
    assert answer.citations[0].quote.startswith("运行 kbchat kb create manuals")


def test_closest_faq_passages_are_quoted_by_their_answer_lines(tmp_path: Path) -> None:
    faq, refusal = (
        "问：如何备份数据目录？\n答：停止服务，然后复制整个数据目录。",
        "资料中没有找到答案。",
    )
    answer, _ = answer_over(
        tmp_path, "faq.zh.txt", faq, refusal, "如何修改数据目录的端口？", **NO_BAR
    )
    assert answer.outcome == "refused"
    assert answer.closest[0].quote == "答：停止服务，然后复制整个数据目录。"


def test_a_passage_sharing_no_word_with_the_question_is_quoted_by_a_sentence_not_its_title(
    tmp_path: Path,
) -> None:
    faq = "产品常见问题\n\n问：如何备份？\n答：停止服务，然后复制整个数据目录。"
    answer, _ = answer_over(
        tmp_path, "faq.zh.txt", faq, "资料中没有找到答案。", "端口在哪里改？", **NO_BAR
    )
    assert answer.outcome == "refused"
    assert answer.closest[0].quote == "答：停止服务，然后复制整个数据目录。"


def test_an_answer_restating_a_faq_question_quotes_its_answer_line(tmp_path: Path) -> None:
    text = (
        "Q: How do I update a knowledge base after my files changed?\n"
        "A: Run the sync command. New files are added and changed files re-indexed."
    )
    reply = "To update a knowledge base after your files changed, run the sync command [1]."
    question = "How do I update a knowledge base after my files changed?"
    answer, _ = answer_over(tmp_path, "faq.txt", text, reply, question)
    assert answer.citations[0].quote.startswith("A: Run the sync command.")


def test_a_hard_wrapped_sentence_is_quoted_whole_and_code_lines_stay_apart() -> None:
    english = (
        "A: No. With the default settings everything, including the models, runs on your\n"
        "machine. Only if you configure an OpenAI-compatible server as embedder or chat\n"
        "model are passages sent to that server.\n"
        "Q: Which languages are supported?"
    )
    assert unwrapped(english).splitlines() == [
        "A: No. With the default settings everything, including the models, runs on your "
        "machine. Only if you configure an OpenAI-compatible server as embedder or chat "
        "model are passages sent to that server.",
        "Q: Which languages are supported?",
    ]
    chinese = "常见原因有：文件为空或已损坏、PDF 设置了打开密码、\n扫描版 PDF 但没有安装 OCR。"
    assert unwrapped(chinese) == chinese.replace("\n", "")
    code = "```toml\nchunk_size = 400          # characters per chunk\nchunk_overlap = 60\n```"
    assert unwrapped(code) == code
    short = "- kbchat kb list\nlists the knowledge bases"
    assert unwrapped(short) == short


def test_unmarked_answers_cite_the_passage_holding_their_number(tmp_path: Path) -> None:
    files = {
        "a.txt": "The Zephyr-9 kettle manual covers the Zephyr-9 kettle base and lid.",
        "b.txt": "Power of the kettle: 1800 W.",
    }
    kettle = hash_kb(tmp_path, "kettle", files)
    options = ChatOptions(search=LOW, min_score=0.0)
    model = ScriptedChatModel(["The Zephyr-9 kettle draws 1800 W."])
    _, answer = run(list(stream_answer(model, [kettle], "Zephyr-9 kettle power?", options=options)))
    assert [c.file for c in answer.citations] == ["b.txt"]


def test_chinese_question_gets_the_chinese_prompt(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["保修期为两年[1]。"])
    _, answer = run(list(stream_answer(model, [kb], "保修期多长？")))
    assert "资料" in model.received[0][-1].content
    assert answer.citations[0].file == "保修.txt"


def test_no_hit_refuses_without_calling_the_model(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["should not be used"])
    streamed, answer = run(list(stream_answer(model, [kb], "你好")))
    assert "没有找到" in streamed and not answer.grounded and model.received == []


def test_no_hit_fallback_is_labelled(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["Hello! How can I help?"])
    options = ChatOptions(no_hit="fallback")
    streamed, answer = run(list(stream_answer(model, [kb], "hello", options=options)))
    assert streamed.startswith("(Nothing in the knowledge base matches")
    assert answer.text.endswith("How can I help?") and not answer.citations


def test_no_hit_fixed_message(kb: KnowledgeBase) -> None:
    options = ChatOptions(no_hit="message", no_hit_message="Ask about kettles.")
    _, answer = run(list(stream_answer(ScriptedChatModel(), [kb], "hello", options=options)))
    assert answer.text == "Ask about kettles."


def test_model_refusal_is_not_grounded(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["The sources do not contain the answer."])
    _, answer = run(list(stream_answer(model, [kb], "kettle colour?")))
    assert not answer.grounded and answer.citations == []


def test_follow_up_is_rewritten_before_retrieval(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["How long is the K3 kettle warranty?", "Two years [1]."])
    history = [
        Message("user", "Tell me about the K3 kettle"),
        Message("assistant", "It boils water."),
    ]
    _, answer = run(list(stream_answer(model, [kb], "How long is its warranty?", history=history)))
    assert answer.question == "How long is the K3 kettle warranty?"
    assert "Standalone question" in model.received[0][-1].content
    assert answer.citations[0].file == "kettle.txt"


def test_prompt_fits_the_context_window(kb: KnowledgeBase) -> None:
    hits = kb.search("kettle tea 保修", top_k=3)
    model = ScriptedChatModel(context_window=1024)
    long_hits = [replace(h, text=h.text * 200) for h in hits]
    options = ChatOptions(max_tokens=256)
    messages, used = build_messages(model, "question?", long_hits, [], options, "en")
    total = sum(estimate_tokens(m.content) + 4 for m in messages)
    assert total + options.max_tokens <= model.context_window
    assert 1 <= len(used) <= len(long_hits)


def test_answer_cut_by_max_tokens_is_flagged(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["one two three four five six seven eight nine ten"])
    options = ChatOptions(max_tokens=3, search=SearchOptions(threshold=0.0), verify=False)
    _, answer = run(list(stream_answer(model, [kb], "kettle warranty", options=options)))
    assert answer.finish_reason == "length"
    assert any("max_tokens" in n for n in answer.notices)


def test_overlong_question_is_truncated_with_a_notice(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["ok"], context_window=2048)
    _, answer = run(list(stream_answer(model, [kb], "kettle warranty " * 3000)))
    assert any("truncated" in n for n in answer.notices)


def test_empty_question_is_refused(kb: KnowledgeBase) -> None:
    with pytest.raises(BadInput, match="empty"):
        list(stream_answer(ScriptedChatModel(), [kb], "   "))


def test_cancel_stops_the_answer(kb: KnowledgeBase) -> None:
    cancel = threading.Event()
    cancel.set()
    model = ScriptedChatModel(["a b c d e f"])
    _, answer = run(list(stream_answer(model, [kb], "kettle warranty", cancel=cancel)))
    assert answer.finish_reason == "cancelled"


def test_plain_chat_keeps_history_within_budget() -> None:
    model = ScriptedChatModel(["Sure."])
    history = [
        Message("user", "word " * 400),
        Message("assistant", "ok"),
        Message("user", "my name is Ada"),
        Message("assistant", "Hi Ada"),
    ]
    _, answer = run(
        list(
            stream_chat(
                model, "What is my name?", history=history, options=ChatOptions(history_tokens=50)
            )
        )
    )
    sent = model.received[0]
    assert [m.content for m in sent[1:]] == ["my name is Ada", "Hi Ada", "What is my name?"]
    assert answer.text == "Sure." and not answer.grounded


def test_memory_helpers() -> None:
    history = [Message("assistant", "hello"), Message("user", "a"), Message("assistant", "b")]
    assert fit_history(history, 100, len) == history[1:]
    assert truncate_to_tokens("abcdef", 3, len) == "abc"
    assert detect_language("保修期多长？") == "zh" and detect_language("How long?") == "en"


def test_answers_take_chat_top_k_sources_unless_given() -> None:
    settings = load_settings(chat={"top_k": 2}, retrieval={"threshold": 0.3})
    search = answer_search_options(settings)
    assert (search.top_k, search.threshold) == (2, 0.3)
    assert answer_search_options(settings, top_k=7, threshold=None).top_k == 7
    assert chat_options(settings, search).search.top_k == 2  # chat.top_k is not a ChatOption


@pytest.fixture
def fans(tmp_path: Path) -> KnowledgeBase:
    text = (
        "# 风机\n\n## XR-7700A\n型号XR-7700A额定功率1.5千瓦，噪声不高于62分贝。\n\n"
        "## XR-7700B\n型号XR-7700B额定功率2.2千瓦，噪声不高于65分贝。\n"
    )
    return hash_kb(tmp_path, "fans", {"fans.md": text})


LOW = SearchOptions(threshold=0.0)
"""No threshold: the hash embedder's relevance is not calibrated."""


def follow_up(
    model: ScriptedChatModel, kb: KnowledgeBase, question: str, history: list[Message]
) -> Answer:
    """The answer to a follow-up, searched with no threshold and no answer bar."""
    options = ChatOptions(
        search=LOW, min_score=0.0, min_score_cross=0.0, min_evidence=0.0, min_coverage=0.0
    )
    return run(list(stream_answer(model, [kb], question, history=history, options=options)))[1]


def test_an_item_no_passage_holds_is_declined_before_the_model_runs(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["XR-7700C的额定功率是2.2千瓦[1]。"])
    options = ChatOptions(search=LOW)
    streamed, answer = run(
        list(stream_answer(model, [fans], "XR-7700C的额定功率是多少？", options=options))
    )
    assert model.received == []  # decided on the passages alone
    assert answer.outcome == "refused" and answer.refused and not answer.grounded
    assert "XR-7700C" in streamed and streamed == answer.text
    assert answer.citations == [] and answer.closest and answer.closest[0].file == "fans.md"


def test_an_invented_answer_is_declined_and_never_streamed(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["公司的股票代码是600519，在上海证券交易所上市。后面还有很多内容。"])
    options = ChatOptions(search=LOW)
    streamed, answer = run(
        list(stream_answer(model, [fans], "公司的股票代码是多少？", options=options))
    )
    assert "600519" not in streamed and answer.outcome == "refused"
    assert "没有找到" in answer.text and answer.closest


def test_an_answer_declined_as_it_streams_counts_the_tokens_the_model_took(
    fans: KnowledgeBase,
) -> None:
    model = ScriptedChatModel(
        ["XR-7700B的股票代码是600519，在上海证券交易所上市。后面还有很多内容。"]
    )
    options = ChatOptions(
        search=LOW, min_score=0.0, min_score_cross=0.0, min_evidence=0.0, min_coverage=0.0
    )
    question = "XR-7700B的股票代码是多少？"
    streamed, answer = run(list(stream_answer(model, [fans], question, options=options)))
    assert "600519" not in streamed and answer.outcome == "refused" and model.received
    # the model read the prompt and wrote the declined start (each try counts): not 0 tokens
    assert answer.usage.prompt_tokens > 50 and answer.usage.completion_tokens > 0


def test_an_answer_declined_before_the_model_runs_took_no_tokens(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["XR-7700C的额定功率是2.2千瓦[1]。"])
    answer = run(
        list(
            stream_answer(
                model, [fans], "XR-7700C的额定功率是多少？", options=ChatOptions(search=LOW)
            )
        )
    )[1]
    assert answer.outcome == "refused" and answer.usage.total_tokens == 0


def test_a_supported_answer_streams_after_its_first_sentence(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["XR-7700B的噪声不高于65分贝[1]。它适用于仓库。"])
    options = ChatOptions(search=LOW)
    streamed, answer = run(
        list(stream_answer(model, [fans], "XR-7700B的噪声是多少？", options=options))
    )
    assert answer.outcome == "answered" and answer.grounded and "65" in streamed
    assert streamed == answer.text and answer.closest == []


def test_fallback_is_labelled_in_the_answer_and_keeps_the_closest_passages(
    fans: KnowledgeBase,
) -> None:
    model = ScriptedChatModel(["I think it is 600519."])
    options = ChatOptions(search=LOW, no_hit="fallback")
    _, answer = run(
        list(stream_answer(model, [fans], "What is the company's stock code?", options=options))
    )
    assert answer.outcome == "fallback" and not answer.grounded
    assert answer.text.startswith("(Nothing in the knowledge base matches") and answer.closest


def test_a_question_while_files_are_pending_says_still_indexing(fans: KnowledgeBase) -> None:
    fans.catalog.mark_pending(fans.record.id, [("later.md", "/tmp/later.md", 0)])
    model = ScriptedChatModel(["should not be used"])
    streamed, answer = run(
        list(stream_answer(model, [fans], "XR-9000的功率？", options=ChatOptions(search=LOW)))
    )
    assert "1 个文件正在建立索引" in streamed and answer.refused
    assert any("still indexing 1" in n for n in answer.notices)


def test_follow_up_keeps_the_subject_when_the_rewrite_loses_it(fans: KnowledgeBase) -> None:
    # The model's rewrite swaps in the sibling product; kbchat keeps XR-7700B instead.
    model = ScriptedChatModel(["XR-7700A的噪声不高于多少分贝？", "XR-7700B的噪声不高于65分贝[1]。"])
    history = [
        Message("user", "XR-7700B的额定功率是多少？"),
        Message("assistant", "XR-7700B的额定功率是2.2千瓦[1]。"),
    ]
    answer = follow_up(model, fans, "那它的噪声不高于多少分贝？", history)
    assert answer.question == "XR-7700B的噪声不高于多少分贝？"
    assert "XR-7700B的噪声" in model.received[1][-1].content


def test_follow_up_rewrite_must_keep_its_polarity(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["Which fans are quiet?", "ok"])
    history = [Message("user", "Tell me about XR-7700B"), Message("assistant", "A fan.")]
    answer = follow_up(model, fans, "Is it not louder than 65 dB?", history)
    assert answer.question == "Is XR-7700B not louder than 65 dB?"


def test_a_weak_best_passage_is_declined_before_the_model_runs(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["should not be used"])
    options = ChatOptions(search=LOW, min_score=0.99)
    question = "XR-7700B的噪声和重量是多少？"  # 重量 is in no passage
    _, answer = run(list(stream_answer(model, [fans], question, options=options)))
    assert model.received == [] and answer.refused and answer.closest
    assert any("below chat.min_score" in n for n in answer.notices)


def test_a_place_holding_every_key_term_outweighs_a_weak_score(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["XR-7700B的噪声不高于65分贝[1]。"])
    options = ChatOptions(search=LOW, min_score=0.99)
    _, answer = run(list(stream_answer(model, [fans], "XR-7700B的噪声是多少？", options=options)))
    assert answer.outcome == "answered" and "65" in answer.text


def test_an_answer_copied_from_a_passage_about_something_else_is_declined(
    tmp_path: Path,
) -> None:
    text = "员工入职满一年后享有五天带薪年假。\n\n型号XR-7700A为标准款离心风机，额定功率1.5千瓦。"
    kb = hash_kb(tmp_path, "hr", {"hr.md": text})
    # Every word of the answer is in the files, but not where the question's words are.
    model = ScriptedChatModel(["公司的股票代码是XR-7700A。"])
    options = ChatOptions(search=LOW, min_coverage=0.3)
    _, answer = run(list(stream_answer(model, [kb], "公司的股票代码是多少？", options=options)))
    assert answer.refused and "XR-7700A" not in answer.text


def test_a_rewrite_that_asks_the_previous_question_again_is_not_used(kb: KnowledgeBase) -> None:
    # The model's "rewrite" repeats the last question; kbchat answers the follow-up with the
    # conversation, and searches with both questions.
    model = ScriptedChatModel(["Can I return an unopened kettle?", "It is replaced [1]."])
    history = [
        Message("user", "Can I return an unopened kettle?"),
        Message("assistant", "Yes, within 30 days [1]."),
    ]
    answer = follow_up(model, kb, "And what if it arrived damaged?", history)
    assert answer.question == "And what if it arrived damaged?"
    prompt = model.received[1]
    assert prompt[-1].content.endswith("Question: And what if it arrived damaged?")
    assert [m.content for m in prompt[1:-1]] == [m.content for m in history]


def test_rewrite_labels_echoed_by_the_model_are_dropped(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["Last question: How long is the K3 kettle warranty?", "ok"])
    history = [Message("user", "Tell me about the K3 kettle"), Message("assistant", "A kettle.")]
    _, answer = run(list(stream_answer(model, [kb], "How long is its warranty?", history=history)))
    assert answer.question == "How long is the K3 kettle warranty?"


def test_a_model_refusal_over_a_strong_passage_gets_a_second_try(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["资料中没有找到答案。", "XR-7700B的噪声不高于65分贝[1]。"])
    options = ChatOptions(search=LOW, second_try_score=0.0)
    _, answer = run(list(stream_answer(model, [fans], "XR-7700B的噪声是多少？", options=options)))
    assert answer.outcome == "answered" and "65" in answer.text and len(model.received) == 2
    assert "资料中没有答案" not in model.received[1][0].content  # no way out the second time
    # ... and the second answer still has to pass the checks.
    model = ScriptedChatModel(["资料中没有找到答案。", "XR-7700B的噪声不高于70分贝。"])
    _, answer = run(list(stream_answer(model, [fans], "XR-7700B的噪声是多少？", options=options)))
    assert answer.refused and "70" not in answer.text


def test_a_how_to_answer_is_judged_on_more_than_its_opening(kb: KnowledgeBase) -> None:
    reply = (
        "To find out, you can use the following command:\n\n"
        "The K3 kettle has a two year warranty, see kettle.txt [1]. "
        "Example: kbchat kb add /path/to/file1.txt"
    )
    model = ScriptedChatModel([reply])
    _, answer = run(
        list(stream_answer(model, [kb], "K3 kettle warranty?", options=ChatOptions(search=LOW)))
    )
    assert answer.outcome == "answered", answer.notices


def test_a_declined_answer_keeps_the_time_it_took(fans: KnowledgeBase) -> None:
    model = ScriptedChatModel(["XR-7700B的噪声不高于70分贝。"])
    _, answer = run(
        list(
            stream_answer(model, [fans], "XR-7700B的噪声是多少？", options=ChatOptions(search=LOW))
        )
    )
    assert answer.refused
    assert answer.timings["total_s"] >= answer.timings["retrieval_s"] > 0


@pytest.fixture
def bios(tmp_path: Path) -> KnowledgeBase:
    """A biography saying when its subject became a professor, and five sentences on."""
    text = (
        "王小明\n王小明生于1970年，毕业于北京大学医学院。2006年，王小明晋升为社会医学教授。"
        "他喜欢下棋。他常去公园。他的学生很多。2010年，他出任医学院院长。"
    )
    return hash_kb(tmp_path, "bios", {"wang.md": text})


def test_an_on_topic_passage_without_the_answer_is_declined_before_the_model_runs(
    bios: KnowledgeBase,
) -> None:
    # The article is about 王小明 but never says when he became dean of the college.
    model = ScriptedChatModel(["王小明2006年担任系主任。"])
    options = ChatOptions(search=LOW, min_score=0.0, min_evidence=0.6)
    question = "王小明哪一年担任系主任？"
    _, answer = run(list(stream_answer(model, [bios], question, options=options)))
    assert model.received == [] and answer.refused and answer.closest
    assert any("key terms" in n and "系主任" in n for n in answer.notices)


def test_a_passage_holding_the_question_is_answered(bios: KnowledgeBase) -> None:
    model = ScriptedChatModel(["王小明在2006年晋升为社会医学教授[1]。"])
    options = ChatOptions(search=LOW, min_score=0.0, min_evidence=0.6, min_coverage=0.6)
    streamed, answer = run(
        list(stream_answer(model, [bios], "王小明哪一年晋升为教授？", options=options))
    )
    assert answer.outcome == "answered" and "2006" in streamed


def test_an_answer_read_from_a_sentence_about_another_event_is_declined(
    bios: KnowledgeBase,
) -> None:
    # The question's terms are in the article (the gate lets it through), but the model takes
    # the year of another event, five sentences away.
    model = ScriptedChatModel(["2010年。"])
    options = ChatOptions(search=LOW, min_score=0.0, min_evidence=0.6, min_coverage=0.6)
    streamed, answer = run(
        list(stream_answer(model, [bios], "王小明哪一年晋升为教授？", options=options))
    )
    assert answer.refused and "2010" not in streamed
    assert any("key terms" in n for n in answer.notices)


def test_an_answer_in_another_language_is_not_judged_by_where_its_words_are(
    bios: KnowledgeBase,
) -> None:
    model = ScriptedChatModel(["Wang Xiaoming became a professor in 2006 [1]."])
    options = ChatOptions(search=LOW, min_score=0.0, min_evidence=0.6, min_coverage=0.6)
    _, answer = run(list(stream_answer(model, [bios], "王小明哪一年晋升为教授？", options=options)))
    assert answer.outcome == "answered"


def _finder(by_query: dict[str, list[str]]) -> tuple[list[str], Callable[[str], Retrieval]]:
    """A search that returns the passages listed for a query (none for others), and the
    queries it was asked."""
    asked: list[str] = []

    def find(query: str) -> Retrieval:
        asked.append(query)
        texts = by_query.get(query, [])
        return Retrieval(
            hits=[
                Hit(
                    kb="games",
                    file=f"p{abs(hash(t)) % 1000}.txt",
                    text=t,
                    score=0.8 - i / 10,
                    chunk_id=abs(hash(t)) % 100_000,
                )
                for i, t in enumerate(texts)
            ]
        )

    return asked, find


COMPOSER = (
    "Nobuo Uematsu\nNobuo Uematsu composed the music of Final Fantasy. Before that he played "
    "keyboards in the cover band The Black Mages."
)
GAME = "Final Fantasy\nFinal Fantasy is a video game series whose creatures include Chocobos and Moogles."
QUESTION = (
    "Before composing music for the game which contains Chocobos and Moogles, "
    "what cover band was he involved in?"
)


def test_a_passage_for_the_names_the_hits_lack_is_searched_for_and_used() -> None:
    # The second hop's passage (the game named by its creatures) shares few words with the
    # question: a search for the names the hits lack finds it, and the answer goes ahead.
    asked, find = _finder({QUESTION: [COMPOSER], "Chocobos Moogles": [GAME, COMPOSER]})
    model = ScriptedChatModel(["He played in the cover band The Black Mages [1]."])
    options = ChatOptions(search=LOW, min_score=0.0)
    _, answer = run(
        list(stream_answer_from(model, find, QUESTION, sources=["games"], options=options))
    )
    assert asked == [QUESTION, "Chocobos Moogles"]
    prompt = model.received[0][-1].content
    assert "Chocobos and Moogles" in prompt and "The Black Mages" in prompt
    assert answer.outcome == "answered" and not any("mention" in n for n in answer.notices)


def test_names_no_passage_holds_are_still_declined_after_searching_for_them() -> None:
    # The second search finds passages, but none holding the names: declined before the
    # model runs, naming what the files lack.
    asked, find = _finder({QUESTION: [COMPOSER], "Chocobos Moogles": [COMPOSER]})
    model = ScriptedChatModel(["The Black Mages [1]."])
    options = ChatOptions(search=LOW, min_score=0.0)
    _, answer = run(
        list(stream_answer_from(model, find, QUESTION, sources=["games"], options=options))
    )
    assert asked == [QUESTION, "Chocobos Moogles"]
    assert model.received == [] and answer.refused
    assert any("Chocobos" in n for n in answer.notices)


def test_an_answer_that_only_repeats_the_question_is_declined(kb: KnowledgeBase) -> None:
    question = "What warranty does the K3 kettle have?"
    model = ScriptedChatModel(["What warranty does the K3 kettle have? [1]"])
    options = ChatOptions(search=LOW, min_score=0.0)
    streamed, answer = run(list(stream_answer(model, [kb], question, options=options)))
    assert answer.refused and "K3 kettle have" not in streamed
    assert any("repeats the question" in n for n in answer.notices)
    # One word of the question is no answer either: "金牌" for whose gold medal it was.
    model = ScriptedChatModel(["warranty [1]"])
    _, answer = run(list(stream_answer(model, [kb], question, options=options)))
    assert answer.refused and any("repeats the question" in n for n in answer.notices)
    # A yes-or-no question restated as a statement is affirmed, not echoed.
    model = ScriptedChatModel(["The K3 kettle has a two year warranty [1]."])
    _, answer = run(
        list(
            stream_answer(
                model, [kb], "Does the K3 kettle have a two year warranty?", options=options
            )
        )
    )
    assert answer.outcome == "answered"
    # A bare yes says nothing new either, but it is an answer, not an echo.
    model = ScriptedChatModel(["Yes [1]."])
    options = ChatOptions(search=LOW, min_score=0.0, min_coverage=0.0)
    _, answer = run(
        list(stream_answer(model, [kb], "Does the K3 kettle have a warranty?", options=options))
    )
    assert answer.outcome == "answered"


def test_a_passage_in_the_question_language_goes_first_unless_far_weaker() -> None:
    def hit(text: str, score: float) -> Hit:
        return Hit(kb="docs", file=f"{text[:3]}.txt", text=text, score=score, chunk_id=len(text))

    zh = hit("问：支持哪些语言？答：中文和英文。", 1.0)
    en = hit("Q: Which languages are supported? A: Chinese and English.", 0.78)
    far = hit("Only English is described in the appendix of this manual.", 0.3)
    assert same_language_first([zh, en, far], "en") == [en, zh, far]
    assert same_language_first([zh, far], "en") == [zh, far]  # 0.7 weaker: order kept
    assert same_language_first([zh, en], "zh") == [zh, en]


REFEREE = (
    "侯活·韦比\n"
    "侯活·韦比是一名英格兰足球球证。2005年11月他执法了首场国际赛，赛事为北爱尔兰对葡萄牙。"
    "2006年他执法了欧洲U-21足球锦标赛。在2007年的英格兰联赛杯决赛中，由韦比执法，"
    "切尔西以2-1击败阿森纳。韦比在这场比赛中出示三面红牌，是联赛杯首次出现的。"
    "2010年他执法了世界杯决赛。韦比曾经是一名警长。"
)


@pytest.fixture
def referee(tmp_path: Path) -> KnowledgeBase:
    return hash_kb(tmp_path, "ref", {"韦比.txt": REFEREE})


def test_a_declined_answer_gets_a_second_try_over_the_place_the_question_names(
    referee: KnowledgeBase,
) -> None:
    question = "侯活·韦比在哪场比赛中出示了三面红牌？"
    options = ChatOptions(search=LOW, min_score=0.0)
    model = ScriptedChatModel(
        ["韦比在北爱尔兰对葡萄牙的友谊赛中出示三面红牌[1]。", "2007年英格兰联赛杯决赛[1]。"]
    )
    _, answer = run(list(stream_answer(model, [referee], question, options=options)))
    assert answer.outcome == "answered" and "2007" in answer.text
    assert len(model.received) == 2
    second = model.received[1][-1].content
    # The second prompt holds the title and the sentences around the red cards only.
    assert "侯活·韦比" in second and "联赛杯决赛" in second and "三面红牌" in second
    assert "北爱尔兰" not in second and "2006年" not in second
    cited = answer.citations[0]
    assert "联赛杯决赛" in cited.quote and "北爱尔兰" not in cited.text
    # The second answer is judged as the first was: a wrong one is declined still.
    model = ScriptedChatModel(["韦比在北爱尔兰对葡萄牙的友谊赛中出示三面红牌[1]。"])
    _, answer = run(list(stream_answer(model, [referee], question, options=options)))
    assert answer.refused and len(model.received) == 2


def test_an_answer_that_copies_the_sentence_without_saying_which_is_an_echo(
    referee: KnowledgeBase,
) -> None:
    model = ScriptedChatModel(["韦比在这场比赛中出示三面红牌[1]。"])
    options = ChatOptions(search=LOW, min_score=0.0)
    question = "侯活·韦比在哪场比赛中出示了三面红牌？"
    _, answer = run(list(stream_answer(model, [referee], question, options=options)))
    assert answer.refused and any("repeats the question" in n for n in answer.notices)


def test_naming_one_option_of_a_choice_question_is_no_echo(kb: KnowledgeBase) -> None:
    model = ScriptedChatModel(["The K3 kettle [1]."])
    options = ChatOptions(search=LOW, min_score=0.0, min_coverage=0.0)
    question = "Which has a warranty, the K3 kettle or the tea?"
    _, answer = run(list(stream_answer(model, [kb], question, options=options)))
    assert answer.outcome == "answered", answer.notices


def test_a_question_over_two_passages_gets_no_second_try_over_one_place() -> None:
    from kbchat.chat.rag import _focused

    def hit(n: int, text: str) -> Hit:
        return Hit(kb="games", file=f"{n}.txt", text=text, score=0.8, chunk_id=n)

    question = "Where was the composer of the game with Chocobos born?"
    game = hit(1, "Final Fantasy\nFinal Fantasy is a game series. The game features Chocobos.")
    composer = hit(
        2,
        "Nobuo Uematsu\nNobuo Uematsu is a composer. He wrote the music of Final Fantasy. "
        "He was born in Kochi.",
    )
    options = ChatOptions(min_coverage=0.5)
    assert _focused(question, [game, composer], options) is None  # the hops are apart
    # One passage holding both hops is read alone.
    both = hit(3, "Nobuo Uematsu\nUematsu composed a game with Chocobos. He was born in Kochi.")
    focused = _focused(question, [game, both], options)
    assert focused is not None and focused.chunk_id == 3 and "Chocobos" in focused.text


def test_a_second_try_is_judged_whole_before_any_of_it_streams(referee: KnowledgeBase) -> None:
    question = "侯活·韦比在哪场比赛中出示了三面红牌？"
    options = ChatOptions(search=LOW, min_score=0.0)
    second = (
        "韦比在2007年的英格兰联赛杯决赛中出示了三面红牌，这是联赛杯首次出现的情况，"
        "他当时执法阿森纳对切尔西，切尔西以2-1获胜，赛后他在曼彻斯特接受了访问[1]。"
        "他说：“Manchester United 的球迷给了我很大的压力。”"
    )
    model = ScriptedChatModel(["韦比在北爱尔兰对葡萄牙的友谊赛中出示三面红牌[1]。", second])
    streamed, answer = run(list(stream_answer(model, [referee], question, options=options)))
    # Its start holds up; what follows names a club the sources never do.
    assert answer.refused and streamed == answer.text and "2007" not in streamed
    assert any("Manchester United" in n for n in answer.notices)


def test_an_answer_confirming_what_the_user_stated_beside_the_question_is_no_echo(
    kb: KnowledgeBase,
) -> None:
    model = ScriptedChatModel(["The warranty is two years [1]."])
    options = ChatOptions(search=LOW, min_score=0.0)
    question = "I read the K3 kettle warranty is two years. How long is the K3 kettle warranty?"
    _, answer = run(list(stream_answer(model, [kb], question, options=options)))
    assert answer.outcome == "answered", answer.notices


def test_a_number_given_the_unit_the_question_wants_is_declined(tmp_path: Path) -> None:
    text = "The Zephyr-9 kettle has a warranty of three years.\nIts rated power is 1800 watts."
    kettle = hash_kb(tmp_path, "kettle", {"kettle.txt": text})
    options = ChatOptions(search=LOW, min_score=0.0, min_score_cross=0.0)
    model = ScriptedChatModel(["Zephyr-9 水壶重约1800公斤。 [1]"])
    streamed, answer = run(
        list(stream_answer(model, [kettle], "Zephyr-9 水壶重多少公斤？", options=options))
    )
    assert answer.refused and "1800" not in streamed
    assert any("1800 in watts" in n for n in answer.notices)


@pytest.mark.parametrize(
    ("reply", "question", "reason"),
    [
        ("93.62万辆 [1]", "2022年特斯拉交付量是多少？", "93.62 for 2021, not for 2022"),
        ("特斯拉将于2021年建厂。 [1]", "特斯拉在哪里建厂？", "only a time (2021年)"),
    ],
)
def test_an_answer_read_for_another_year_or_of_another_kind_is_declined(
    tmp_path: Path, reply: str, question: str, reason: str
) -> None:
    text = (
        "特斯拉交付量创新高。以特斯拉2021年的全球交付量93.62万辆计算，"
        "特斯拉2022年的交付量需要超过140万辆。特斯拉于2021年在上海建厂。"
    )
    tesla = hash_kb(tmp_path, "tesla", {"特斯拉.txt": text})
    options = ChatOptions(search=LOW, min_score=0.0, min_score_cross=0.0)
    model = ScriptedChatModel([reply])
    streamed, answer = run(list(stream_answer(model, [tesla], question, options=options)))
    assert answer.refused and reply.split()[0] not in streamed
    assert any(reason in n for n in answer.notices), (answer.notices, answer.text)


def test_an_answer_matched_to_no_passage_says_so(tmp_path: Path) -> None:
    kettle = hash_kb(tmp_path, "kettle", {"kettle.txt": "The K3 kettle warranty is three years."})
    options = ChatOptions(search=LOW, min_score=0.0, min_score_cross=0.0, verify=False)
    model = ScriptedChatModel(["3年"])
    _, answer = run(list(stream_answer(model, [kettle], "K3 水壶保修多久？", options=options)))
    assert answer.outcome == "answered" and not answer.grounded and answer.citations == []
    assert any("cites none" in n for n in answer.notices)


def test_a_chinese_manual_is_evidence_for_an_english_question_naming_its_codes(
    tmp_path: Path,
) -> None:
    # An English file beside it used to be the only evidence looked at: "lacks x100".
    kb = hash_kb(
        tmp_path,
        "mixed",
        {
            "x100.md": "X100 空气净化器\nX100 的 CADR 为 400 立方米/小时，噪声 28 分贝。",
            "mini.md": "Breeze Mini purifier\nThe Breeze Mini costs 99 USD.",
        },
    )
    model = ScriptedChatModel(["The CADR of the X100 is 400 m³/h [1]."])
    options = ChatOptions(search=SearchOptions(threshold=0.0, top_k=2), min_score=0.0)
    _, answer = run(
        list(stream_answer(model, [kb], "What is the CADR of the X100?", options=options))
    )
    assert not any("key terms" in notice for notice in answer.notices)
    assert model.received  # the model was asked
