"""Tools from MCP servers (the official ``mcp`` package): each server's tools become agent
tools named ``<server>__<tool>``, over stdio (a command kbchat starts) or streamable HTTP.

Configured in ``kbchat.toml``::

    [mcp.servers.files]
    command = ["python", "-m", "my_mcp_server"]
    [mcp.servers.wiki]
    url = "http://localhost:9000/mcp"

The agent code is synchronous; each listing and call runs the async client on its own event
loop (``anyio.run``), connecting for that call: simple and robust (a crashed server is
started again on the next call), at the price of a connection per call (~0.3 s for a Python
stdio server here).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kbchat.chat.tools import ToolContext, ToolError, ToolResult
from kbchat.errors import KbchatError
from kbchat.types import ToolSpec

if TYPE_CHECKING:
    from kbchat.config import McpServerSettings

T = TypeVar("T")
SEPARATOR = "__"
_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class McpTool:
    """One tool of one MCP server, as an agent tool."""

    server: str
    tool: str
    settings: McpServerSettings
    spec: ToolSpec
    examples: tuple[str, ...]

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        async def call(client: Any) -> Any:
            return await client.call_tool(self.tool, arguments)

        result = _with_client(self.server, self.settings, call)
        texts = [getattr(block, "text", "") for block in result.content]
        text = "\n".join(t for t in texts if t) or str(result.structured_content or "")
        if result.is_error:
            raise ToolError(f"MCP tool {self.spec.name} failed: {text or 'no message'}")
        return ToolResult(text or "(no content)")


def list_tools(name: str, settings: McpServerSettings) -> list[McpTool]:
    """The tools server ``name`` offers, as agent tools.

    Raises:
        KbchatError: the server cannot be started or reached (the message names it and its
            command or URL).
    """

    async def listing(client: Any) -> Any:
        return await client.list_tools()

    tools = []
    for tool in _with_client(name, settings, listing).tools:
        full = _NAME.sub("_", f"{name}{SEPARATOR}{tool.name}")[:64]
        description = tool.description or tool.name
        spec = ToolSpec(full, description, tool.input_schema or {"type": "object"})
        tools.append(McpTool(name, tool.name, settings, spec, (description,)))
    return tools


def _with_client(
    name: str, settings: McpServerSettings, action: Callable[[Any], Awaitable[T]]
) -> T:
    import anyio
    from mcp import Client, StdioServerParameters

    target: Any
    if settings.command:
        target = StdioServerParameters(
            command=settings.command[0], args=settings.command[1:], env=settings.env or None
        )
        where = " ".join(settings.command)
    elif settings.url and settings.headers:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        client = httpx2.AsyncClient(headers=settings.headers, timeout=settings.timeout_s)
        target, where = streamable_http_client(settings.url, http_client=client), settings.url
    elif settings.url:
        target, where = settings.url, settings.url
    else:
        raise KbchatError(f"MCP server {name!r} needs a command or a url (mcp.servers.{name})")

    async def run() -> T:
        with anyio.fail_after(settings.timeout_s):
            async with Client(target, read_timeout_seconds=settings.timeout_s) as client:
                return await action(client)

    try:
        return anyio.run(run)
    except KbchatError:
        raise
    except TimeoutError:
        raise KbchatError(
            f"MCP server {name!r} ({where}) did not answer within {settings.timeout_s:g} s"
        ) from None
    except Exception as exc:  # the client raises transport, protocol and OS errors alike
        detail = _root(exc)
        raise KbchatError(f"MCP server {name!r} ({where}) failed: {detail}") from None


def _root(exc: BaseException) -> str:
    """The innermost message of an exception group (anyio task groups wrap errors)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
