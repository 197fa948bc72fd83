"""kbchat as an MCP server: ``list_knowledge_bases``, ``search`` and ``ask`` for MCP clients
(editors, desktop assistants), over stdio (``kbchat mcp``) or streamable HTTP at ``/mcp`` on
``kbchat serve``, with the same API keys and per-knowledge-base permissions as the REST API.

Over stdio the caller is the local user (every knowledge base, as with the CLI); over HTTP
the ``Authorization: Bearer <key>`` header of each request is checked, a knowledge base the
key may not read is reported as missing, exactly as the REST API does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kbchat.errors import KbchatError, NotFound
from kbchat.server.auth import Authenticator, Principal
from kbchat.server.errors import Unauthorized

if TYPE_CHECKING:
    from kbchat.app import Services
    from kbchat.config import Settings

INSTRUCTIONS = (
    "kbchat answers questions from the user's own documents. Call list_knowledge_bases first, "
    "then search for passages or ask for an answer with citations."
)


def build_mcp(
    get_services: Callable[[], Services],
    authenticate: Callable[[str | None], Principal] | None = None,
) -> MCPServer:
    """The MCP server over the services ``get_services`` returns (called per request, so the
    HTTP server can build its services at start-up). ``authenticate`` maps an Authorization
    header to a caller (HTTP); without it every caller is the local user (stdio)."""
    server: MCPServer = MCPServer("kbchat", instructions=INSTRUCTIONS)

    def caller(ctx: Context) -> Principal:
        request = ctx.request_context.request if authenticate is not None else None
        if request is None or authenticate is None:
            return Principal(name=None)
        return authenticate(request.headers.get("authorization"))

    def readable(ctx: Context, names: list[str]) -> list[str]:
        principal = caller(ctx)
        known = set(get_services().library.names())
        for name in names:
            if name not in known or not principal.can(name, "read"):
                raise NotFound(f"no knowledge base named {name!r}")
        return names

    def reported(function: Callable[..., Any]) -> Callable[..., Any]:
        """kbchat's own errors reach the client as the tool's error message (no traceback)."""

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except KbchatError as exc:
                raise ToolError(str(exc)) from None

        return wrapper

    @server.tool()
    @reported
    def list_knowledge_bases(ctx: Context) -> list[dict[str, Any]]:
        """The knowledge bases you may read: name, files and chunks."""
        principal = caller(ctx)
        library = get_services().library
        rows = []
        for record in library.records():
            if principal.can(record.name, "read"):
                files = library.get(record.name).files()
                rows.append(
                    {
                        "name": record.name,
                        "files": len(files),
                        "chunks": sum(f.chunks for f in files),
                    }
                )
        return rows

    @server.tool()
    @reported
    def search(kb: str, query: str, ctx: Context, top_k: int = 5) -> list[dict[str, Any]]:
        """Passages of knowledge base(s) ``kb`` (comma-separated) about ``query``, best first,
        each with its file, page and relevance score in [0, 1]."""
        from kbchat.options import search_options
        from kbchat.retrieve.search import retrieve

        services = get_services()
        names = readable(ctx, [n.strip() for n in kb.split(",") if n.strip()])
        kbs = [services.library.get(name) for name in names]
        options = search_options(services.settings, top_k=max(1, min(top_k, 50)))
        hits = retrieve(kbs, query, options, reranker=services.reranker()).hits
        return [
            {
                "kb": h.kb,
                "file": h.file,
                "page": h.page,
                "sheet": h.sheet,
                "score": round(h.score, 4),
                "text": h.text,
            }
            for h in hits
        ]

    @server.tool()
    @reported
    def ask(kb: str, question: str, ctx: Context) -> dict[str, Any]:
        """An answer from knowledge base(s) ``kb`` (comma-separated) with citations; when the
        files do not say, ``outcome`` is "refused" and ``closest`` lists the nearest passages."""
        from kbchat.chat.rag import stream_answer
        from kbchat.options import answer_search_options, chat_options
        from kbchat.shapes.chat import answer_info
        from kbchat.types import Answer

        services = get_services()
        names = readable(ctx, [n.strip() for n in kb.split(",") if n.strip()])
        kbs = [services.library.get(name) for name in names]
        settings = services.settings
        options = chat_options(settings, answer_search_options(settings))
        events = stream_answer(
            services.models.get(), kbs, question, options=options, reranker=services.reranker()
        )
        answer = next(e for e in events if isinstance(e, Answer))
        return answer_info(answer).model_dump(mode="json")

    return server


def run_stdio(services: Services) -> None:
    """Serve MCP over stdin/stdout until the client closes it (``kbchat mcp``)."""
    build_mcp(lambda: services).run("stdio")


def mount_mcp(app: Starlette, server: MCPServer, settings: Settings, auth: Authenticator) -> None:
    """Serve ``server`` over streamable HTTP at ``/mcp`` on ``app`` (stateless: any kbchat
    server process answers any request), behind the API-key check of the REST API. The
    app's lifespan must run ``server.session_manager.run()``."""
    inner = server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, host=settings.server.host
    )
    route = next(r for r in inner.routes if isinstance(r, Route) and r.path == "/mcp")
    app.router.routes.insert(0, Route("/mcp", endpoint=_KeyChecked(route.app, auth)))


class _KeyChecked:
    """ASGI wrapper: a request without a valid key gets the REST API's 401, before MCP."""

    def __init__(self, inner: ASGIApp, auth: Authenticator) -> None:
        self.inner, self.auth = inner, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = Headers(scope=scope).get("authorization")
        try:
            self.auth.authenticate(header)
        except Unauthorized as exc:
            body = json.dumps({"error": {"type": "unauthorized", "message": str(exc)}})
            response = Response(
                body,
                status_code=401,
                media_type="application/json",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.inner(scope, receive, send)
