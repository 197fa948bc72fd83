"""Web tools: ``web_search`` (configured providers, results ranked by kbchat's embedder) and
``fetch_url`` (read one page; off unless enabled; private addresses refused unless allowed)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from kbchat.chat.tools import ToolContext, ToolError, ToolResult
from kbchat.types import Citation, ToolSpec

SNIPPET_CHARS = 600
_SEARCH_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:search|look up|find)(?: on| in)?(?: the)?(?: web| online| internet)?\b"
    r"|\b(?:on|in) the (?:web|internet)\b|\bonline\b"
    r"|帮我|上网|在网上|网上说|查一下|查查|搜一下|搜索一下",
    re.IGNORECASE,
)
MAX_REDIRECTS = 5


class WebSearchTool:
    """``web_search(query)``: the best results, marked [n] with their URLs."""

    spec = ToolSpec(
        name="web_search",
        description="Search the web for current events, public facts and anything the user's "
        "own documents would not hold.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "Search words."}},
            "required": ["query"],
            "additionalProperties": False,
        },
    )
    examples = (
        "What is the latest news about the Mars mission?",
        "Search the web for the current population of Tokyo.",
        "Who won the most recent football world cup?",
        "What is the weather forecast for Beijing tomorrow?",
        "上网搜一下最新的新闻",
        "帮我在网上查一下东京现在的人口",
        "最近一届世界杯冠军是谁？",
        "明天北京的天气怎么样？",
    )

    def arguments_from(self, question: str) -> dict[str, Any] | None:
        """The question, without a leading "search the web:" request, is the query."""
        query = _SEARCH_REQUEST.sub("", question).strip(" :,，：。.?？") or question
        return {"query": query}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        from kbchat.chat.search import rank

        query = str(arguments.get("query", "")).strip()
        services = context.services
        settings = services.settings
        results = services.web_search().search(query, settings.web_search.max_results)
        library = services.library
        embedder = library.embedder(library.default_embedder_spec())
        kept = rank(results, query, embedder)[: settings.web_search.top_k]
        if not kept:
            return ToolResult(f"The web search for {query!r} found nothing.")
        lines = []
        for result in kept:
            text = result.text
            if settings.web_search.fetch_pages:
                # the snippet stands in for a page that cannot be read
                with contextlib.suppress(ToolError):
                    text = fetch_text(result.url, context, allow_private=False)
            marker = context.cite(
                Citation(
                    marker=0,
                    kb="web",
                    file=result.url,
                    text=text,
                    score=result.score,
                    quote=result.title,
                )
            )
            lines.append(f"[{marker}] {result.title} ({result.url}): {text[:SNIPPET_CHARS]}")
        return ToolResult("\n".join(lines))


class FetchUrl:
    """``fetch_url(url)``: the readable text of one web page (``fetch.enabled`` must be on)."""

    spec = ToolSpec(
        name="fetch_url",
        description="Read the text of one web page given its http(s) URL.",
        parameters={
            "type": "object",
            "properties": {"url": {"type": "string", "description": "An http(s) URL."}},
            "required": ["url"],
            "additionalProperties": False,
        },
    )
    examples = (
        "Read https://example.com/article and tell me what it says.",
        "Summarise the page at http://docs.example.org/guide",
        "What does this link say: https://example.com/news/1",
        "帮我看看这个网页 https://example.com/a 讲了什么",
        "读一下 https://example.org/post 这篇文章",
    )

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        fetch = context.services.settings.fetch
        if not fetch.enabled:
            raise ToolError("reading URLs is off (set fetch.enabled = true to allow it)")
        url = str(arguments.get("url", "")).strip()
        text = fetch_text(url, context, allow_private=fetch.allow_private)
        marker = context.cite(Citation(marker=0, kb="web", file=url, text=text, score=1.0))
        return ToolResult(f"[{marker}] {url}:\n{text[: fetch.max_chars]}")


def fetch_text(url: str, context: ToolContext, *, allow_private: bool) -> str:
    """The readable text of the page at ``url`` (redirects followed, each hop checked).

    Raises:
        ToolError: not http(s), an address that is private (unless allowed), unreachable,
            an error status, larger than ``fetch.max_bytes``, or not text/HTML.
    """
    settings = context.services.settings
    limit = settings.fetch.max_bytes
    timeout = settings.web_search.timeout_s
    with httpx.Client(
        timeout=timeout, proxy=settings.web_search.proxy, follow_redirects=False
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_address(url, allow_private=allow_private)
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise ToolError(f"{url} answered {response.status_code}")
                    kind = response.headers.get("content-type", "")
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise ToolError(f"{url} is larger than {limit} bytes")
                    encoding = response.encoding or "utf-8"
            except httpx.TimeoutException:
                raise ToolError(f"{url} did not answer within {timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise ToolError(f"cannot read {url}: {exc}") from None
            return _page_text(bytes(body).decode(encoding, errors="replace"), kind, url)
    raise ToolError(f"{url} redirects more than {MAX_REDIRECTS} times")


def check_address(url: str, *, allow_private: bool) -> None:
    """Refuse what is not http(s), and hosts that resolve to loopback, private, link-local or
    reserved addresses (RFC 1918, RFC 4193, ...) unless ``allow_private``.

    Raises:
        ToolError: naming the URL and the reason.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"{url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ToolError(
                f"{url} points to a private or local address ({address}); refused "
                "(fetch.allow_private = true allows it)"
            )


def _page_text(body: str, content_type: str, url: str) -> str:
    if "html" not in content_type and "<html" not in body[:2000].lower():
        if content_type and not content_type.startswith("text/"):
            raise ToolError(f"{url} is {content_type}, not a web page")
        return body.strip()
    try:
        import trafilatura

        extracted = trafilatura.extract(body, url=url)
        if extracted:
            return str(extracted)
    except ImportError:
        pass
    from kbchat.ingest.markup import html_documents

    return "\n\n".join(d.text for d in html_documents(body, url, url)).strip()
