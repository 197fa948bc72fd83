"""Search-engine chat: a question answered from web search results (``kbchat ask --web``,
``web:`` models in the OpenAI API), with the same checks and citations as a knowledge-base
answer; the sources are web pages, cited by URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from kbchat.chat.rag import ChatEvent, ChatOptions, stream_answer_from
from kbchat.retrieve.search import Retrieval
from kbchat.types import Hit, Message

if TYPE_CHECKING:
    from kbchat.app import Services

WEB_KB = "web"
"""The ``kb`` of web hits and citations (their ``file`` is the page URL)."""


def web_retrieval(services: Services, query: str) -> Retrieval:
    """The configured search's results for ``query``, ranked by the default embedder, the best
    ``web_search.top_k`` kept (with page text when ``web_search.fetch_pages`` is on).

    Raises:
        ConfigError: no search provider is configured.
        WebSearchError: every provider failed.
    """
    import contextlib
    import time

    from kbchat.chat.search import rank
    from kbchat.chat.tools import ToolContext, ToolError
    from kbchat.chat.tools.web import fetch_text

    started = time.perf_counter()
    configured = services.settings.web_search
    results = services.web_search().search(query, configured.max_results)
    library = services.library
    ranked = rank(results, query, library.embedder(library.default_embedder_spec()))
    hits = []
    for i, result in enumerate(ranked[: configured.top_k]):
        text = result.text
        if configured.fetch_pages:
            with contextlib.suppress(ToolError):
                text = fetch_text(result.url, ToolContext(services=services), allow_private=False)
        hits.append(
            Hit(
                kb=WEB_KB,
                file=result.url,
                text=f"{result.title}\n{text}".strip(),
                score=result.score,
                chunk_id=i,
                headings=(result.title,),
            )
        )
    elapsed = (time.perf_counter() - started) * 1000
    return Retrieval(hits=hits, timings_ms={"web_search": elapsed, "total": elapsed})


def web_options(options: ChatOptions) -> ChatOptions:
    """``options`` for web results: no relevance bar (``min_score``), because web hits are
    ranked by raw embedder cosine, which is not calibrated like knowledge-base relevance
    (e5 puts unrelated snippets near 0.7); the grounding checks on the answer stay on."""
    return replace(options, min_score=0.0, min_score_cross=0.0)


def stream_web_answer(
    services: Services,
    question: str,
    *,
    model_name: str | None = None,
    history: Sequence[Message] = (),
    options: ChatOptions | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ChatEvent]:
    """Answer ``question`` from the web: text deltas, then the Answer (citations: URLs)."""
    return stream_answer_from(
        services.models.get(model_name),
        lambda query: web_retrieval(services, query),
        question,
        sources=[WEB_KB],
        history=history,
        options=options,
        cancel=cancel,
    )
