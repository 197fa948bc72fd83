"""Web search (SearXNG JSON on loopback, fallback, cache) and fetch_url (address checks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from kbchat.app import Services, build
from kbchat.chat.agent import AgentOptions, run_agent
from kbchat.chat.search import WebResult, WebSearch, WebSearchError, build_web_search
from kbchat.chat.tools import ToolContext, ToolError
from kbchat.chat.tools.web import FetchUrl, WebSearchTool, check_address
from kbchat.config import load_settings
from kbchat.errors import ConfigError, KbchatError
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Answer, ToolCall, ToolStep

PAGES = {
    "/article.html": "<html><head><title>Mars</title></head><body><h1>Mars mission</h1>"
    "<p>The Ares rover landed on 3 March in Jezero crater.</p></body></html>",
    "/moved": "",
}


class Handler(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        Handler.hits.append(parts.path)
        if parts.path == "/search":
            query = parse_qs(parts.query)["q"][0]
            base = f"http://{self.headers['Host']}"
            body = {
                "query": query,
                "results": [
                    {"title": "Cooking pasta", "url": f"{base}/pasta", "content": "Boil water."},
                    {
                        "title": "Mars mission news",
                        "url": f"{base}/article.html",
                        "content": "The Ares rover landed on Mars in Jezero crater.",
                    },
                ],
            }
            self._send(200, "application/json", json.dumps(body))
        elif parts.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/article.html")
            self.end_headers()
        elif parts.path == "/broken":
            self._send(500, "text/plain", "boom")
        elif parts.path in PAGES:
            self._send(200, "text/html; charset=utf-8", PAGES[parts.path])
        else:
            self._send(404, "text/plain", "no")

    def _send(self, status: int, kind: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def services_for(url: str | None, **extra: Any) -> Services:
    providers = [{"kind": "searxng", "url": url}] if url else []
    return build(
        load_settings(
            embedder={"backend": "hash"},
            web_search={"providers": providers, **extra.pop("web", {})},
            **extra,
        )
    )


def test_searxng_results_are_ranked_and_cited(server: str) -> None:
    services = services_for(server)
    ctx = ToolContext(services=services)
    text = WebSearchTool().run({"query": "Mars rover landing"}, ctx).text
    assert text.index("Mars mission news") < text.index("Cooking pasta")
    assert ctx.sources[0].kb == "web" and ctx.sources[0].file.endswith("/article.html")
    assert "[1] Mars mission news" in text


def test_providers_fall_back_in_order_and_results_are_cached(server: str) -> None:
    class Down:
        name = "down"
        calls = 0

        def search(self, query: str, limit: int) -> list[WebResult]:
            Down.calls += 1
            raise KbchatError("connection refused")

    services = services_for(server)
    searxng = services.web_search().providers[0]
    web = WebSearch([Down(), searxng])
    Handler.hits.clear()
    first = web.search("mars", 5)
    second = web.search("mars", 5)
    assert first == second and Handler.hits.count("/search") == 1 and Down.calls == 1


def test_every_provider_failing_names_each() -> None:
    web = build_web_search(
        load_settings(
            web_search={"providers": [{"kind": "searxng", "url": "http://127.0.0.1:9"}]}
        ).web_search
    )
    with pytest.raises(WebSearchError, match="searxng: cannot reach http://127.0.0.1:9"):
        web.search("x")


def test_missing_provider_configuration_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="web search has no provider"):
        services_for(None).web_search()
    with pytest.raises(ConfigError, match=r"providers\[0\] \(brave\) needs an api_key"):
        build_web_search(load_settings(web_search={"providers": [{"kind": "brave"}]}).web_search)


def test_fetch_url_is_off_by_default_and_refuses_private_addresses(server: str) -> None:
    ctx = ToolContext(services=services_for(server))
    with pytest.raises(ToolError, match="reading URLs is off"):
        FetchUrl().run({"url": f"{server}/article.html"}, ctx)
    ctx = ToolContext(services=services_for(server, fetch={"enabled": True}))
    with pytest.raises(ToolError, match="private or local address"):
        FetchUrl().run({"url": f"{server}/article.html"}, ctx)
    for url in ("file:///etc/passwd", "ftp://example.com/x", "http://10.0.0.1/", "http://[::1]/"):
        with pytest.raises(ToolError):
            check_address(url, allow_private=False)


def test_fetch_url_reads_a_page_following_redirects(server: str) -> None:
    ctx = ToolContext(services=services_for(server, fetch={"enabled": True, "allow_private": True}))
    text = FetchUrl().run({"url": f"{server}/moved"}, ctx).text
    assert "Ares rover landed on 3 March" in text
    with pytest.raises(ToolError, match="answered 500"):
        FetchUrl().run({"url": f"{server}/broken"}, ctx)


def test_agent_answers_from_the_web_with_url_citations(server: str) -> None:
    services = services_for(server)
    model = ScriptedChatModel(
        [
            [ToolCall("c1", "web_search", json.dumps({"query": "Mars rover"}))],
            "It landed in Jezero crater [1].",
        ]
    )
    events = list(
        run_agent(
            model,
            "Where did the Mars rover land?",
            [WebSearchTool()],
            ToolContext(services=services),
            options=AgentOptions(router="model"),
        )
    )
    answer = events[-1]
    assert isinstance(answer, Answer) and answer.citations[0].file.endswith("/article.html")
    assert any(isinstance(e, ToolStep) and e.done and e.error is None for e in events)


def test_web_answer_cites_pages_by_url(server: str) -> None:
    from kbchat.chat.rag import ChatOptions
    from kbchat.chat.web_chat import stream_web_answer, web_options

    services = services_for(server)
    model = ScriptedChatModel(["The Ares rover landed in Jezero crater [1]."])
    services.models.add(services.settings.default_model, model)
    events = list(
        stream_web_answer(
            services, "Where did the Ares rover land on Mars?", options=web_options(ChatOptions())
        )
    )
    answer = events[-1]
    assert isinstance(answer, Answer) and answer.outcome == "answered"
    assert answer.citations[0].kb == "web" and answer.citations[0].file.endswith("/article.html")
    prompt = model.received[0][-1].content
    assert "Jezero crater" in prompt  # the ranked snippets are the sources


def test_ask_web_on_the_command_line(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kbchat.app import ModelPool
    from kbchat.llm.base import ChatModel
    from tests.cli.test_cli import run

    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    monkeypatch.setenv(
        "KBCHAT_WEB_SEARCH__PROVIDERS", json.dumps([{"kind": "searxng", "url": server}])
    )
    scripted = ScriptedChatModel(["The Ares rover landed in Jezero crater [1]."])

    def get(self: ModelPool, name: str | None = None) -> ChatModel:
        return scripted

    monkeypatch.setattr(ModelPool, "get", get)
    code, out, err = run("ask", "--web", "Where did the Ares rover land?", capsys=capsys)
    assert code == 0, err
    assert "Jezero crater [1]" in out and "/article.html" in err
    monkeypatch.setenv("KBCHAT_WEB_SEARCH__PROVIDERS", "[]")
    code, _, err = run("ask", "--web", "Where did the Ares rover land?", capsys=capsys)
    assert code != 0 and "web search has no provider" in err


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("tavily", {"results": [{"title": "T", "url": "https://a", "content": "snippet"}]}),
        (
            "bing",
            {"webPages": {"value": [{"name": "T", "url": "https://a", "snippet": "snippet"}]}},
        ),
        (
            "brave",
            {"web": {"results": [{"title": "T", "url": "https://a", "description": "snippet"}]}},
        ),
    ],
)
def test_keyed_providers_read_their_answers(
    kind: str, answer: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbchat.chat.search import providers

    sent: list[tuple[str, str, dict[str, Any]]] = []

    def request(self: Any, method: str, url: str, **kwargs: Any) -> Any:
        sent.append((method, url, kwargs))
        return {**answer, "extra": [{"no": "url"}]}

    monkeypatch.setattr(providers._Http, "_request", request)
    web = build_web_search(
        load_settings(web_search={"providers": [{"kind": kind, "api_key": "k-123"}]}).web_search
    )
    results = web.search("q", 3)
    assert [(r.title, r.url, r.text, r.provider) for r in results] == [
        ("T", "https://a", "snippet", kind)
    ]
    assert "k-123" in json.dumps(sent[0][2]) and sent[0][1].startswith("https://")
