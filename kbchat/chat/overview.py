"""Questions about files or a knowledge base as a whole ("what is this file about?",
"总结一下这个文件", "what is this knowledge base about?", "这个知识库讲了什么").

Retrieval finds passages like the question, which for "what is this about?" is no passage
in particular; such questions are answered from the files' summaries instead (kept in the
catalog), each summary cited as its file's source. Attached files are summarised one by
one (made on first use); a knowledge base is answered with its overview, made from the
files' kept summaries: a few missing ones are made on the spot, the rest are named.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence

from kbchat.chat.answer_log import AnswerTrace, logged
from kbchat.chat.rag import ChatEvent
from kbchat.chat.summaries import (
    StoredSummary,
    SummaryStore,
    kept_summaries,
    summarize_file,
    summarize_overview,
)
from kbchat.chat.summarize import Summary, SummaryOptions
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import is_temporary
from kbchat.llm.base import ChatModel
from kbchat.text import detect_language
from kbchat.types import Answer, Citation, Usage

MAX_FILES = 5
"""An overview answer summarises at most this many files (the first by name)."""
MAX_NEW = 3
"""A knowledge base's overview question makes at most this many missing file summaries on
the spot (a summary takes ~20-60 s on the embedded model); the others are named."""
MAX_NAMED = 10
"""Files without a summary named in an overview answer (then "and N more")."""

_POLITE = r"(?:(?:please|can you|could you)\s+|请你?|帮我|麻烦你?)?"
_OVERVIEW = re.compile(
    rf"^\s*{_POLITE}(?:"
    r"what(?:'s| is| are)\s+(?:this|the|these)\s+(?:file|document|doc|pdf|text|files|documents)s?"
    r"\s+(?:all\s+)?about"
    r"|(?:summari[sz]e|sum up|give (?:me )?(?:a |an )?(?:summary|overview) of)\s+"
    r"(?:this|the|these)\s+(?:file|document|doc|pdf|text|files|documents)"
    r"|(?:总结|概括|概述|归纳|摘要)(?:一下)?(?:这个|这份|这篇|这些|该)?(?:文件|文档|文章|资料)"
    r"|(?:这个|这份|这篇|这些|该)(?:文件|文档|文章|资料)(?:主要)?(?:讲|说|写|是关于|介绍)(?:了)?(?:什么|啥)"
    r")",
    re.IGNORECASE,
)


_KB = r"(?:knowledge[ -]?base|kb)"
_THIS = r"(?:this|the|my|our)"
_KB_OVERVIEW = re.compile(
    rf"^\s*{_POLITE}(?:"
    rf"what(?:'s| is| are)\s+(?:in\s+)?{_THIS}\s+{_KB}(?:\s+(?:all\s+)?about)?\s*\??\s*$"
    rf"|what\s+(?:topics|subjects|files|documents)\s+(?:does|do)\s+{_THIS}\s+{_KB}\s+"
    r"(?:cover|contain|have|hold)"
    rf"|(?:summari[sz]e|sum up|describe|give (?:me )?(?:a |an )?(?:summary|overview) of)\s+"
    rf"{_THIS}\s+{_KB}"
    r"|(?:总结|概括|概述|归纳|介绍)(?:一下)?(?:这个|该|此|整个)?知识库"
    r"|(?:这个|该|此|整个)?知识库(?:里|中)?(?:主要)?(?:讲|说|写|是关于|介绍|包含|包括|有)(?:了)?"
    r"(?:什么|啥|哪些)"
    r")",
    re.IGNORECASE,
)


def is_overview_question(question: str) -> bool:
    """True for questions about the files as a whole, in English or Chinese."""
    return _OVERVIEW.search(question) is not None


def is_kb_overview_question(question: str) -> bool:
    """True for questions about a knowledge base as a whole, in English or Chinese."""
    return _KB_OVERVIEW.search(question) is not None


def overview_target(kbs: Sequence[KnowledgeBase]) -> KnowledgeBase | None:
    """The attached files' knowledge base when a question is answered from it alone."""
    return kbs[0] if len(kbs) == 1 and is_temporary(kbs[0].name) else None


def overview_source(kbs: Sequence[KnowledgeBase], question: str) -> KnowledgeBase | None:
    """The knowledge base whose summaries answer ``question``; None for an ordinary one.

    A question about "this file" goes to the attached files when they are all that is
    searched; one about "this knowledge base" to the one knowledge base searched (the
    attached files when there is none).
    """
    if is_overview_question(question):
        return overview_target(kbs)
    if is_kb_overview_question(question):
        kept = [kb for kb in kbs if not is_temporary(kb.name)] or list(kbs)
        return kept[0] if len(kept) == 1 else None
    return None


def overview_answer(
    model: ChatModel,
    kb: KnowledgeBase,
    question: str,
    *,
    options: SummaryOptions | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ChatEvent]:
    """Answer from the summaries of ``kb``'s files: text deltas, then the Answer.

    Attached files (a temporary knowledge base) are summarised one by one; a knowledge
    base gets its overview (see the module's note).
    """
    trace = AnswerTrace(kbs=[kb.name], mode="overview")
    if is_temporary(kb.name):
        return logged(_answer(model, kb, question, options, cancel, trace), trace)
    return logged(_kb_answer(model, kb, question, options, cancel, trace), trace)


def _answer(
    model: ChatModel,
    kb: KnowledgeBase,
    question: str,
    options: SummaryOptions | None,
    cancel: threading.Event | None,
    trace: AnswerTrace,
) -> Iterator[ChatEvent]:
    started = time.perf_counter()
    store = SummaryStore(kb.catalog.engine)
    files = [r.name for r in kb.files() if r.status == "indexed"][:MAX_FILES]
    trace.hits = len(files)
    answer = Answer(text="", model=model.name, question=question, usage=Usage())
    first: float | None = None
    citations = []
    for marker, name in enumerate(files, 1):
        head = f"{name}: " if len(files) > 1 else ""
        if head:
            yield ("\n\n" if marker > 1 else "") + head
        summary: Summary | None = None
        for event in summarize_file(kb, name, model, store, options=options, cancel=cancel):
            if isinstance(event, Summary):
                summary = event
            elif isinstance(event, str):
                first = first or time.perf_counter() - started
                yield event
        if summary is None:
            continue
        yield f" [{marker}]"
        answer.text += ("\n\n" if marker > 1 else "") + f"{head}{summary.text} [{marker}]"
        answer.usage += summary.usage
        citations.append(
            Citation(
                marker=marker,
                kb=kb.name,
                file=name,
                text=summary.text,
                score=1.0,
                quote=summary.text[:300],
            )
        )
    answer.citations = citations
    answer.grounded = bool(citations)
    answer.finish_reason = "stop"
    total = time.perf_counter() - started
    answer.timings = {"ttft_s": round(first or total, 4), "total_s": round(total, 4)}
    yield answer


def _kb_answer(
    model: ChatModel,
    kb: KnowledgeBase,
    question: str,
    options: SummaryOptions | None,
    cancel: threading.Event | None,
    trace: AnswerTrace,
) -> Iterator[ChatEvent]:
    started = time.perf_counter()
    store = SummaryStore(kb.catalog.engine)
    usage = Usage()
    _, missing = kept_summaries(kb, store)
    for name in missing[:MAX_NEW]:
        for event in summarize_file(kb, name, model, store, options=options, cancel=cancel):
            if isinstance(event, Summary):
                usage += event.usage
    summaries, missing = kept_summaries(kb, store)
    trace.hits = len(summaries)
    answer = Answer(text="", model=model.name, question=question, usage=usage)
    first: float | None = None
    if summaries:
        for event in summarize_overview(kb, model, store, options=options, cancel=cancel):
            if isinstance(event, Summary):
                answer.text = event.text
                answer.usage += event.usage
            elif isinstance(event, str):
                first = first or time.perf_counter() - started
                yield event
    if missing or not summaries:
        note = _missing_note(kb.name, missing, detect_language(question), bool(summaries))
        first = first or time.perf_counter() - started
        yield note
        answer.text += note
    answer.citations = [_cited(n, kb.name, s) for n, s in enumerate(summaries, 1)]
    answer.grounded = bool(summaries)
    answer.finish_reason = "stop"
    total = time.perf_counter() - started
    answer.timings = {"ttft_s": round(first or total, 4), "total_s": round(total, 4)}
    yield answer


def _missing_note(kb: str, missing: list[str], language: str, after: bool) -> str:
    if not missing:
        if language == "zh":
            return f"知识库 {kb} 还没有已索引的文件。"
        return f"Knowledge base {kb} has no indexed file yet."
    named = ", ".join(missing[:MAX_NAMED])
    more = len(missing) - MAX_NAMED
    gap = "\n\n" if after else ""
    if language == "zh":
        rest = f" 等 {len(missing)} 个" if more > 0 else ""
        return f"{gap}（以下文件还没有摘要：{named}{rest}；用 `kbchat summarize {kb}` 生成。）"
    rest = f" and {more} more" if more > 0 else ""
    return (
        f"{gap}(No summary yet for {len(missing)} file{'s' if len(missing) > 1 else ''}: "
        f"{named}{rest}; `kbchat summarize {kb}` makes them.)"
    )


def _cited(marker: int, kb: str, summary: StoredSummary) -> Citation:
    return Citation(
        marker=marker,
        kb=kb,
        file=summary.file,
        text=summary.text,
        score=1.0,
        quote=summary.text[:300],
    )
