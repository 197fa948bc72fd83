"""Web search behind one protocol: providers tried in order with fallback, timeouts and a
short cache; results re-ranked by kbchat's own embedder before they enter a prompt.

Providers (``kbchat.chat.search.providers``): SearXNG (its JSON API), DuckDuckGo (the ``ddgs``
package, extra ``kbchat[web]``), Tavily, Bing and Brave (HTTP APIs with a key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kbchat.errors import BackendError, ConfigError, KbchatError

if TYPE_CHECKING:
    from kbchat.config import WebSearchSettings


@dataclass(frozen=True)
class WebResult:
    """One search result: ``text`` is the snippet, or the page's text when it was fetched."""

    title: str
    url: str
    text: str
    provider: str
    score: float = 0.0


class WebSearchError(BackendError):
    """Every configured provider failed; the message names each one and why."""


class SearchProvider(Protocol):
    """One search engine: ``search`` returns up to ``limit`` results or raises KbchatError."""

    name: str

    def search(self, query: str, limit: int) -> list[WebResult]: ...


class WebSearch:
    """Providers in order: the first that answers wins; failures are collected.

    Results are cached for ``cache_s`` seconds per (query, limit): an agent that asks the
    same thing twice in one conversation does not wait twice.
    """

    def __init__(
        self,
        providers: Sequence[SearchProvider],
        *,
        cache_s: float = 300.0,
    ) -> None:
        if not providers:
            raise KbchatError("web search has no provider configured (web_search.providers)")
        self.providers = list(providers)
        self.cache_s = cache_s
        self._cache: dict[tuple[str, int], tuple[float, list[WebResult]]] = {}
        self._lock = threading.Lock()

    def search(self, query: str, limit: int = 8) -> list[WebResult]:
        """Results for ``query`` from the first provider that answers.

        Raises:
            KbchatError: the query is empty.
            WebSearchError: every provider failed (each named with its error).
        """
        query = query.strip()
        if not query:
            raise KbchatError("the search query is empty")
        key = (query, limit)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self.cache_s:
                return list(cached[1])
        failures = []
        for provider in self.providers:
            try:
                results = provider.search(query, limit)
            except KbchatError as exc:
                failures.append(f"{provider.name}: {exc}")
                continue
            with self._lock:
                self._cache[key] = (time.monotonic(), results)
            return list(results)
        raise WebSearchError("web search failed: " + "; ".join(failures))


def build_web_search(settings: WebSearchSettings) -> WebSearch:
    """The providers of ``settings`` in order, behind one WebSearch.

    Raises:
        ConfigError: no provider, or a provider without the url/key it needs.
    """
    from kbchat.registry import search_providers

    if not settings.providers:
        raise ConfigError(
            "web search has no provider: add one under [web_search] providers, e.g. "
            '{kind = "searxng", url = "http://localhost:8888"}'
        )
    built = []
    for i, configured in enumerate(settings.providers):
        options: dict[str, object] = {"timeout_s": settings.timeout_s, "proxy": settings.proxy}
        if configured.kind == "searxng" and not configured.url:
            raise ConfigError(f"web_search.providers[{i}] (searxng) needs a url")
        if configured.kind in ("tavily", "bing", "brave"):
            if not configured.api_key:
                raise ConfigError(f"web_search.providers[{i}] ({configured.kind}) needs an api_key")
            options["api_key"] = configured.api_key
        if configured.url:
            options["url"] = configured.url
        built.append(search_providers.create(configured.kind, **options))
    return WebSearch(built, cache_s=settings.cache_s)


def rank(results: Sequence[WebResult], query: str, embedder: object) -> list[WebResult]:
    """``results`` ordered by cosine similarity of title + text to ``query`` (best first),
    each with that similarity as its score; duplicate URLs dropped."""
    import numpy as np

    from kbchat.embed.base import Embedder

    unique = list({r.url: r for r in results}.values())
    if not unique:
        return []
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed_batch([f"{r.title}\n{r.text}" for r in unique])
    query_vector = embedder.embed_batch([query], is_query=True)[0]
    scores = np.clip(vectors @ query_vector, 0.0, 1.0)
    scored = [
        WebResult(r.title, r.url, r.text, r.provider, float(s))
        for r, s in zip(unique, scores, strict=True)
    ]
    return sorted(scored, key=lambda r: r.score, reverse=True)
