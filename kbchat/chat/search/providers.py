"""The search engines kbchat can use, one small class each (HTTP through httpx).

Each raises ``KbchatError`` with the provider's own message on failure: an unreachable
server, a timeout, a bad key (401/403), a quota (429), a reply that is not the expected JSON.
"""

from __future__ import annotations

from typing import Any

import httpx

from kbchat.chat.search import WebResult
from kbchat.errors import KbchatError


class _Http:
    name = "http"

    def __init__(self, *, timeout_s: float = 10.0, proxy: str | None = None) -> None:
        self.timeout_s = timeout_s
        self.proxy = proxy

    def _get(self, url: str, **kwargs: Any) -> Any:
        return self._request("GET", url, **kwargs)

    def _post(self, url: str, **kwargs: Any) -> Any:
        return self._request("POST", url, **kwargs)

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            with httpx.Client(timeout=self.timeout_s, proxy=self.proxy) as client:
                response = client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise KbchatError(f"{url} did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise KbchatError(f"cannot reach {url}: {exc}") from None
        return self._json(url, response)

    @staticmethod
    def _json(url: str, response: httpx.Response) -> Any:
        if response.status_code in (401, 403):
            raise KbchatError(f"{url} refused the request ({response.status_code}): check the key")
        if response.status_code >= 400:
            raise KbchatError(f"{url} answered {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise KbchatError(f"{url} did not answer with JSON") from None


def _results(
    items: Any,
    provider: str,
    limit: int,
    *,
    url: str = "url",
    title: str = "title",
    text: str = "content",
) -> list[WebResult]:
    """The first ``limit`` items of a provider's answer that have a URL, as WebResults
    (``url``, ``title``, ``text``: the provider's names for those fields)."""
    return [
        WebResult(str(i.get(title, "")), str(i[url]), str(i.get(text, "")), provider)
        for i in list(items or [])[:limit]
        if isinstance(i, dict) and i.get(url)
    ]


class SearxngSearch(_Http):
    """A SearXNG instance's JSON API (``format=json`` must be enabled in its settings)."""

    name = "searxng"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url.rstrip("/")

    def search(self, query: str, limit: int) -> list[WebResult]:
        data = self._get(f"{self.url}/search", params={"q": query, "format": "json"})
        items = data.get("results") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise KbchatError(f"{self.url} answered JSON without 'results'")
        return _results(items, self.name, limit)


class DuckDuckGoSearch:
    """DuckDuckGo through the ``ddgs`` package (no key)."""

    name = "duckduckgo"

    def __init__(self, *, timeout_s: float = 10.0, proxy: str | None = None, **_: Any) -> None:
        self.timeout_s = timeout_s
        self.proxy = proxy

    def search(self, query: str, limit: int) -> list[WebResult]:
        try:
            from ddgs import DDGS
        except ImportError:
            raise KbchatError(
                "DuckDuckGo search needs the ddgs package: pip install 'kbchat[web]'"
            ) from None
        try:
            items = DDGS(proxy=self.proxy, timeout=int(self.timeout_s)).text(
                query, max_results=limit
            )
        except Exception as exc:  # ddgs raises its own exception types
            raise KbchatError(f"DuckDuckGo search failed: {exc}") from None
        return _results(items, self.name, limit, url="href", text="body")


class _KeyedSearch(_Http):
    """A search API called with a key; ``DEFAULT_URL`` unless the settings give a url."""

    DEFAULT_URL = ""

    def __init__(self, api_key: str, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key, self.url = api_key, url or self.DEFAULT_URL


class TavilySearch(_KeyedSearch):
    """Tavily's search API (``api_key`` required)."""

    name = "tavily"
    DEFAULT_URL = "https://api.tavily.com/search"

    def search(self, query: str, limit: int) -> list[WebResult]:
        data = self._post(
            self.url,
            json={"query": query, "max_results": limit},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        return _results(data.get("results"), self.name, limit)


class BingSearch(_KeyedSearch):
    """Bing Web Search API v7 (``api_key`` required)."""

    name = "bing"
    DEFAULT_URL = "https://api.bing.microsoft.com/v7.0/search"

    def search(self, query: str, limit: int) -> list[WebResult]:
        data = self._get(
            self.url,
            params={"q": query, "count": limit},
            headers={"Ocp-Apim-Subscription-Key": self.api_key},
        )
        pages = (data.get("webPages") or {}).get("value")
        return _results(pages, self.name, limit, title="name", text="snippet")


class BraveSearch(_KeyedSearch):
    """Brave Search API (``api_key`` required)."""

    name = "brave"
    DEFAULT_URL = "https://api.search.brave.com/res/v1/web/search"

    def search(self, query: str, limit: int) -> list[WebResult]:
        data = self._get(
            self.url,
            params={"q": query, "count": limit},
            headers={"X-Subscription-Token": self.api_key, "Accept": "application/json"},
        )
        items = (data.get("web") or {}).get("results")
        return _results(items, self.name, limit, text="description")
