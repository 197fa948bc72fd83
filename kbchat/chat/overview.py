"""Questions about attached files as a whole ("what is this file about?", "总结一下这个文件").

Retrieval finds passages like the question, which for "what is this about?" is no passage
in particular; such questions are answered from the files' summaries instead (kept in the
catalog, made on first use), each summary cited as its file's source.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence

from kbchat.chat.answer_log import AnswerTrace, logged
from kbchat.chat.rag import ChatEvent
from kbchat.chat.summaries import SummaryStore, summarize_file
from kbchat.chat.summarize import Summary, SummaryOptions
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import is_temporary
from kbchat.llm.base import ChatModel
from kbchat.types import Answer, Citation, Usage

MAX_FILES = 5
"""An overview answer summarises at most this many files (the first by name)."""

_OVERVIEW = re.compile(
    r"^\s*(?:"
    r"what(?:'s| is| are)\s+(?:this|the|these)\s+(?:file|document|doc|pdf|text|files|documents)s?"
    r"\s+(?:all\s+)?about"
    r"|(?:summari[sz]e|sum up|give (?:me )?(?:a |an )?(?:summary|overview) of)\s+"
    r"(?:this|the|these)\s+(?:file|document|doc|pdf|text|files|documents)"
    r"|(?:总结|概括|概述|归纳|摘要)(?:一下)?(?:这个|这份|这篇|这些|该)?(?:文件|文档|文章|资料)"
    r"|(?:这个|这份|这篇|这些|该)(?:文件|文档|文章|资料)(?:主要)?(?:讲|说|写|是关于|介绍)(?:了)?(?:什么|啥)"
    r")",
    re.IGNORECASE,
)


def is_overview_question(question: str) -> bool:
    """True for questions about the files as a whole, in English or Chinese."""
    return _OVERVIEW.search(question) is not None


def overview_target(kbs: Sequence[KnowledgeBase]) -> KnowledgeBase | None:
    """The attached files' knowledge base when a question is answered from it alone."""
    return kbs[0] if len(kbs) == 1 and is_temporary(kbs[0].name) else None


def overview_answer(
    model: ChatModel,
    kb: KnowledgeBase,
    question: str,
    *,
    options: SummaryOptions | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ChatEvent]:
    """Answer from the summaries of ``kb``'s files: text deltas, then the Answer."""
    trace = AnswerTrace(kbs=[kb.name], mode="overview")
    return logged(_answer(model, kb, question, options, cancel, trace), trace)


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
        answer.usage = Usage(
            answer.usage.prompt_tokens + summary.usage.prompt_tokens,
            answer.usage.completion_tokens + summary.usage.completion_tokens,
        )
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
