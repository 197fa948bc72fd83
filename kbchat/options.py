"""Request options from the configured defaults, overridden by what a caller gives."""

from __future__ import annotations

from typing import Any

from kbchat.chat.rag import ChatOptions
from kbchat.chat.summarize import SUMMARY_TOKENS, SummaryOptions
from kbchat.config import Settings
from kbchat.retrieve.search import SearchOptions


def search_options(settings: Settings, **given: Any) -> SearchOptions:
    """SearchOptions from the configured defaults, overridden by the values given (not None)."""
    values = settings.retrieval.model_dump()
    values["rerank_threshold"] = settings.rerank.threshold
    values.update({k: v for k, v in given.items() if v is not None})
    return SearchOptions(**values)


def answer_search_options(settings: Settings, **given: Any) -> SearchOptions:
    """SearchOptions for answering a question: ``top_k`` defaults to ``chat.top_k``."""
    if given.get("top_k") is None:
        given["top_k"] = settings.chat.top_k
    return search_options(settings, **given)


def chat_options(settings: Settings, search: SearchOptions, **given: Any) -> ChatOptions:
    """ChatOptions from the configured defaults, overridden by the values given (not None)."""
    values: dict[str, Any] = settings.chat.model_dump(exclude={"top_k"})
    values.update({k: v for k, v in given.items() if v is not None})
    return ChatOptions(search=search, **values)


def summary_options(
    settings: Settings, *, strategy: str = "auto", model: str | None = None
) -> SummaryOptions:
    """SummaryOptions for ``model``: map steps run 4 at a time on a remote model."""
    configured = settings.models.get(model or settings.default_model)
    remote = configured is not None and configured.backend != "llamacpp"
    return SummaryOptions(
        strategy=strategy,  # type: ignore[arg-type]  # validated by SummaryOptions
        parallel=4 if remote else 1,
        max_tokens=min(settings.chat.max_tokens, SUMMARY_TOKENS),
    )
