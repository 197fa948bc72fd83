"""Summaries with the scripted chat model and the hash embedder: budgets, strategies, storage."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kbchat.chat.summaries import SummaryStore, file_chunks, summarize_file, unrepeated
from kbchat.chat.summarize import (
    Summary,
    SummaryEvent,
    SummaryOptions,
    choose_strategy,
    estimate_seconds,
    summarize,
)
from kbchat.chat.summary_extract import central_sentences, document_sentences
from kbchat.chat.summary_speed import StepTiming, speeds_of
from kbchat.chat.summary_steps import Progress, sections, step_budget, whole_sentences
from kbchat.config import load_settings
from kbchat.errors import BadInput, NotFound
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import Library
from kbchat.llm.base import estimate_tokens
from kbchat.testing.fakes import HashEmbedder, ScriptedChatModel

LONG = [
    f"Section {n}. The plant in town {n} made {n * 100} kettles in {1990 + n}. "
    f"Its manager was called Person{n}. Workers there earned {n * 10} dollars a day."
    for n in range(1, 41)
]


def run(events: object) -> tuple[str, list[Progress], Summary]:
    items: list[SummaryEvent] = list(events)  # type: ignore[call-overload]
    *rest, summary = items
    assert isinstance(summary, Summary)
    text = "".join(e for e in rest if isinstance(e, str))
    return text, [e for e in rest if isinstance(e, Progress)], summary


def fits(model: ScriptedChatModel, options: SummaryOptions) -> None:
    for messages, params in zip(model.received, model.params, strict=True):
        prompt = sum(estimate_tokens(m.content) for m in messages)
        assert prompt + int(params["max_tokens"]) <= model.context_window  # type: ignore[call-overload]


def test_map_reduce_never_overflows_the_context() -> None:
    model = ScriptedChatModel(["part summary"], context_window=900)
    options = SummaryOptions(strategy="map-reduce", max_tokens=100, step_tokens=60)
    text, progress, summary = run(summarize(model, LONG, options=options))
    budget = step_budget(model, options)
    assert all(estimate_tokens(s) <= budget for s in sections(LONG, budget, estimate_tokens))
    maps = [p for p in progress if p.stage == "map"]
    assert maps[0].total > 1 and maps[-1].done == maps[-1].total
    assert len(model.received) == summary.steps == maps[0].total + 1
    assert text == summary.text == "part summary" and summary.strategy == "map-reduce"
    assert "Combine them" in model.received[-1][0].content
    fits(model, options)


def test_parallel_map_steps_make_the_same_calls() -> None:
    options = SummaryOptions(strategy="map-reduce", max_tokens=100, step_tokens=60)
    sequential = ScriptedChatModel(["s"], context_window=900)
    run(summarize(sequential, LONG, options=options))
    parallel = ScriptedChatModel(["s"], context_window=900)
    _, progress, _ = run(summarize(parallel, LONG, options=replace(options, parallel=3)))
    assert len(parallel.received) == len(sequential.received) > 2
    assert parallel.received[-1] == sequential.received[-1]  # the combine step sees all parts
    assert [p.done for p in progress if p.stage == "map"] == list(range(len(parallel.received)))


def test_refine_folds_each_section_into_the_summary() -> None:
    model = ScriptedChatModel(["first", "second", "third"], context_window=900)
    options = SummaryOptions(strategy="refine", max_tokens=100, step_tokens=60)
    _, progress, summary = run(summarize(model, LONG, options=options))
    assert "Summary of a document so far:\nfirst" in model.received[1][0].content
    assert "so far:\nsecond" in model.received[2][0].content
    assert summary.steps == len(model.received) == progress[-1].total
    fits(model, options)


def test_extract_sends_central_sentences_to_one_short_pass() -> None:
    model = ScriptedChatModel(["The kettle warranty is two years."])
    chunks = [
        "The kettle warranty lasts two years. The kettle warranty covers the heating plate.",
        "The kettle warranty needs the receipt. Zebras gallop across the savanna at dusk.",
    ]
    options = SummaryOptions(strategy="extract", extract_sentences=2)
    _, progress, summary = run(summarize(model, chunks, embedder=HashEmbedder(), options=options))
    assert len(model.received) == 1 and summary.strategy == "extract"
    system, user = model.received[0]
    assert system.role == "system" and "not for you" in system.content
    prompt = user.content
    assert "key sentences" in prompt and "Zebras" not in prompt
    # The sentences are framed as material: a document of prompt formulas is summarised,
    # not obeyed.
    assert prompt.index("<document>") < prompt.index("kettle") < prompt.index("</document>")
    assert any(p.stage == "extract" for p in progress)


def test_central_sentences_keep_document_order_and_budget() -> None:
    sentences = ["alpha beta", "alpha beta gamma", "delta", "alpha gamma"]
    vectors = HashEmbedder().embed_batch(sentences)
    picked = central_sentences(sentences, vectors, limit=3, budget=1000, count=estimate_tokens)
    assert picked == [s for s in sentences if s in picked] and len(picked) == 3
    tight = central_sentences(sentences, vectors, limit=3, budget=1, count=estimate_tokens)
    assert len(tight) == 1


def test_auto_summarises_a_short_text_in_one_pass_and_a_long_one_by_extract() -> None:
    model = ScriptedChatModel(["short"])
    _, _, summary = run(summarize(model, LONG[:2], embedder=HashEmbedder()))
    assert summary.strategy == "map-reduce" and len(model.received) == 1
    assert "Summarise the document below" in model.received[0][0].content
    slow = SummaryOptions(prompt_tps=5, generate_tps=1)
    long_text = LONG * 5
    model = ScriptedChatModel()  # speeds not measured yet: the options' speeds count
    assert choose_strategy(model, long_text, slow, has_embedder=True) == "extract"
    assert choose_strategy(model, long_text, slow, has_embedder=False) == "map-reduce"
    fast = SummaryOptions(prompt_tps=1e6, generate_tps=1e6)
    assert choose_strategy(model, long_text, fast, has_embedder=True) == "map-reduce"


def test_a_chinese_document_gets_chinese_prompts() -> None:
    model = ScriptedChatModel(["概括"])
    _, _, summary = run(summarize(model, ["本产品保修期为两年。购买后请保留发票。"]))
    assert summary.language == "zh" and "概括下面的文档" in model.received[0][0].content


def test_bad_requests_say_what_is_wrong() -> None:
    model = ScriptedChatModel()
    with pytest.raises(BadInput, match="no text"):
        list(summarize(model, ["  ", ""]))
    with pytest.raises(BadInput, match="needs an embedder"):
        list(summarize(model, LONG, options=SummaryOptions(strategy="extract")))
    with pytest.raises(BadInput, match="context window"):
        list(summarize(ScriptedChatModel(context_window=300), LONG))
    with pytest.raises(BadInput, match="strategy must be one of"):
        SummaryOptions(strategy="magic")  # type: ignore[arg-type]


def test_a_stopped_summary_stops_between_steps() -> None:
    model = ScriptedChatModel(["s"], context_window=900)
    cancel = threading.Event()
    options = SummaryOptions(strategy="map-reduce", max_tokens=100, step_tokens=60)
    events = summarize(model, LONG, options=options, cancel=cancel)
    for event in events:
        if isinstance(event, Progress) and event.stage == "map" and event.done == 1:
            cancel.set()
            with pytest.raises(BadInput, match="stopped"):
                next(events)
            break
    assert len(model.received) == 1


def test_sections_are_even_and_within_the_budget() -> None:
    texts = [f"word{n} " * 30 for n in range(11)]  # 11 texts of 46 tokens: greedy 5, 5, 1
    packed = sections(texts, 250, estimate_tokens)
    sizes = [estimate_tokens(p) for p in packed]
    assert len(packed) == 3 and max(sizes) <= 250
    assert max(sizes) - min(sizes) <= 50  # no nearly empty last section
    assert "\n".join(packed).split() == "\n".join(texts).split()


def test_measured_speeds_decide_auto_and_the_estimate() -> None:
    model = ScriptedChatModel()
    texts = LONG * 2
    fast_defaults = SummaryOptions(prompt_tps=1e6, generate_tps=1e6)
    assert choose_strategy(model, texts, fast_defaults, has_embedder=True) == "map-reduce"
    # calls timed on this model: it reads 10 and writes 2 tokens a second
    speeds_of(model).record(StepTiming("map", 1000, 100.0, 200, 100.0))
    assert choose_strategy(model, texts, fast_defaults, has_embedder=True) == "extract"
    tokens = sum(estimate_tokens(t) for t in texts)
    assert estimate_seconds(model, texts, "map-reduce", fast_defaults) > tokens / 10
    assert choose_strategy(ScriptedChatModel(), texts, fast_defaults, has_embedder=True) == (
        "map-reduce"
    )  # another model keeps its own speeds


def test_tiny_calls_do_not_count_as_speed() -> None:
    speeds = speeds_of(ScriptedChatModel())
    speeds.record(StepTiming("final", 5, 10.0, 3, 10.0))
    assert speeds.prompt_tps(100.0) == 100.0 and speeds.generate_tps(25.0) == 25.0
    speeds.record(StepTiming("final", 500, 10.0, 100, 10.0))
    assert speeds.prompt_tps(100.0) == 50.0 and speeds.generate_tps(25.0) == 10.0


def test_every_call_is_timed_and_capped() -> None:
    model = ScriptedChatModel(["part summary"], context_window=900)
    options = SummaryOptions(strategy="map-reduce", max_tokens=100, step_tokens=60)
    _, _, summary = run(summarize(model, LONG, options=options))
    stages = [t.stage for t in summary.timings]
    assert stages == ["map"] * (len(stages) - 1) + ["final"]
    assert all(t.prompt_tokens > 0 and t.completion_tokens == 2 for t in summary.timings)
    assert [p["max_tokens"] for p in model.params] == [60] * (len(stages) - 1) + [100]


def test_extract_never_overflows_the_context() -> None:
    model = ScriptedChatModel(["s"], context_window=600)
    options = SummaryOptions(
        strategy="extract", max_tokens=100, step_tokens=60, extract_sentences=50
    )
    chunks = [
        " ".join(
            f"Plant {n} made {k * n} kettles in {1900 + k} for buyer {n * 100 + k} of the town."
            for k in range(12)
        )
        for n in range(30)
    ]
    run(summarize(model, chunks, embedder=HashEmbedder(), options=options))
    fits(model, options)


def test_extract_writes_a_short_capped_summary_and_times_the_embedding() -> None:
    model = ScriptedChatModel(["The kettle warranty is two years."])
    options = SummaryOptions(strategy="extract", extract_max_tokens=40)
    _, _, summary = run(summarize(model, LONG, embedder=HashEmbedder(), options=options))
    assert model.params[0]["max_tokens"] == 40
    assert [t.stage for t in summary.timings] == ["embed", "final"]
    assert summary.timings[0].prompt_tokens == len(document_sentences(LONG))


def test_a_summary_cut_by_max_tokens_ends_at_a_sentence_end() -> None:
    model = ScriptedChatModel(["One fact here. Another fact. A third that runs on and on"])
    options = SummaryOptions(strategy="map-reduce", max_tokens=9)
    streamed, _, summary = run(summarize(model, LONG[:2], options=options))
    assert summary.finish_reason == "length" and summary.text == "One fact here. Another fact."
    assert streamed == "One fact here. Another fact."  # the cut sentence never streamed
    assert whole_sentences("没有句号的文字") == "没有句号的文字"
    assert whole_sentences("第一句。第二句没完") == "第一句。"
    assert whole_sentences("他说：“好。”然后走") == "他说：“好。”"
    assert whole_sentences("See chapter 3 (in part.) Then") == "See chapter 3 (in part.)"


def test_the_final_pass_streams_a_sentence_at_a_time_and_all_of_an_uncut_reply() -> None:
    model = ScriptedChatModel(["第一句。第二句。 Version 3.5 is out. 没有句号的结尾"])
    events = list(summarize(model, LONG[:2], options=SummaryOptions(strategy="map-reduce")))
    deltas = [e for e in events if isinstance(e, str)]
    assert deltas[:2] == ["第一句。", "第二句。"]
    assert "".join(deltas) == "第一句。第二句。 Version 3.5 is out. 没有句号的结尾"
    assert events[-1].text == "".join(deltas)  # type: ignore[union-attr]


def test_wrapped_lines_are_joined_into_sentences_and_fragments_dropped() -> None:
    pdf_text = (
        "The most important building block of\nLangChain is the chain. A chain\n"
        "combines an LLM with a prompt.\n\n## Agents\n- tools are called by agents\n"
        "- memory keeps the state"
    )
    assert document_sentences([pdf_text]) == [
        "The most important building block of LangChain is the chain.",
        "A chain combines an LLM with a prompt.",
        "tools are called by agents.",
        "memory keeps the state",
    ]
    assert document_sentences(["- **提示公式**：生成这篇新闻文章的摘要"]) == [
        "提示公式：生成这篇新闻文章的摘要"
    ]
    assert document_sentences(["本书是一本全面\n指南。它介绍提示技术。"]) == [
        "本书是一本全面指南。",
        "它介绍提示技术。",
    ]


def test_a_closing_quote_or_bracket_stays_with_its_sentence() -> None:
    text = "他说：“好的，我明白了。”然后他就走出去了。（见第三章的详细说明。）最后一句是这样的。"
    assert document_sentences([text]) == [
        "他说：“好的，我明白了。”",
        "然后他就走出去了。",
        "（见第三章的详细说明。）",
        "最后一句是这样的。",
    ]
    assert document_sentences(['He said "it works." Then he left the room.']) == [
        'He said "it works."',
        "Then he left the room.",
    ]


def test_a_sentence_over_the_budget_is_passed_over_or_cut() -> None:
    sentences = ["alpha beta " * 200, "alpha beta", "alpha gamma"]
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6]], dtype=np.float32)
    picked = central_sentences(sentences, vectors, limit=3, budget=20, count=estimate_tokens)
    assert picked == ["alpha beta", "alpha gamma"]  # the most central is too long
    alone = central_sentences(sentences[:1], vectors[:1], limit=3, budget=20, count=estimate_tokens)
    assert len(alone) == 1 and 0 < estimate_tokens(alone[0]) <= 20


def test_repeated_chunk_starts_are_dropped() -> None:
    assert unrepeated("The cat sat. It was warm today.", "It was warm today. Then it slept.") == (
        "Then it slept."
    )
    assert unrepeated("no overlap at all here", "Something else entirely.") == (
        "Something else entirely."
    )
    assert unrepeated("ends with a", "a short start") == "a short start"  # chance, too short


# -- kept summaries ------------------------------------------------------------------


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "plant.txt").write_text(" ".join(LONG[:6]), encoding="utf-8")
    library = Library(load_settings(embedder={"backend": "hash"}))
    library.create("docs")
    kb = library.get("docs")
    kb.add([root])
    return kb


def test_a_summary_is_kept_until_the_file_changes(kb: KnowledgeBase, tmp_path: Path) -> None:
    store = SummaryStore(kb.catalog.engine)
    model = ScriptedChatModel(["first summary", "second summary"])
    _, _, made = run(summarize_file(kb, "plant.txt", model, store))
    assert made.text == "first summary" and not made.cached
    text, _, kept = run(summarize_file(kb, "plant.txt", model, store))
    assert kept.cached and text == "first summary" and len(model.received) == 1
    chunks = file_chunks(kb, "plant.txt")
    assert chunks[0].startswith("Section 1.")
    assert " ".join(" ".join(chunks).split()) == " ".join(" ".join(LONG[:6]).split())
    (tmp_path / "docs" / "plant.txt").write_text("A new text about a new plant.", encoding="utf-8")
    kb.add([tmp_path / "docs"])
    _, _, again = run(summarize_file(kb, "plant.txt", model, store))
    assert again.text == "second summary" and not again.cached


def test_another_strategy_or_refresh_summarises_again(kb: KnowledgeBase) -> None:
    store = SummaryStore(kb.catalog.engine)
    model = ScriptedChatModel(["one", "two", "three"])
    run(summarize_file(kb, "plant.txt", model, store))
    extract = SummaryOptions(strategy="extract")
    _, _, other = run(summarize_file(kb, "plant.txt", model, store, options=extract))
    assert other.strategy == "extract" and not other.cached
    _, _, fresh = run(summarize_file(kb, "plant.txt", model, store, refresh=True))
    assert not fresh.cached and len(model.received) == 3


def test_unknown_or_unindexed_files_are_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    store = SummaryStore(kb.catalog.engine)
    with pytest.raises(NotFound, match="plant.txt"):
        list(summarize_file(kb, "nope.txt", ScriptedChatModel(), store))
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    kb.add([empty])
    with pytest.raises(BadInput, match="empty.txt: not indexed \\(failed: "):
        list(summarize_file(kb, "empty.txt", ScriptedChatModel(), store))


def test_a_faq_question_is_one_sentence_with_its_answer_s_first() -> None:
    faq = (
        "常见问题\n\n问：如何备份？\n答：停止服务，然后复制整个数据目录。恢复时把目录复制回来即可。\n\n"
        "Q: Which languages are supported?\nA: Chinese and English, in documents and questions."
    )
    assert document_sentences([faq]) == [
        "问：如何备份？ 答：停止服务，然后复制整个数据目录。",
        "恢复时把目录复制回来即可。",
        "Q: Which languages are supported? A: Chinese and English, in documents and questions.",
    ]
