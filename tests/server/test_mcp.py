"""MCP both ways: kbchat as an MCP server (in process, and over HTTP on `kbchat serve` with API
keys), and MCP servers' tools as agent tools (stdio and HTTP)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from kbchat.app import Services
from kbchat.chat.tools import ToolContext, ToolError
from kbchat.chat.tools.mcp import list_tools
from kbchat.config import McpServerSettings
from kbchat.errors import KbchatError
from kbchat.server import create_app
from kbchat.server.auth import FileKeys, add_key, keys_path
from kbchat.server.mcp import build_mcp
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import live_server, make_services, make_settings

T = TypeVar("T")
CALC_SERVER = Path(__file__).resolve().parents[1] / "chat" / "data" / "mcp_calc_server.py"


def with_client(target: Any, action: Callable[[Client], Awaitable[T]], **kwargs: Any) -> T:
    async def run() -> T:
        async with Client(target, **kwargs) as client:
            return await action(client)

    return anyio.run(run)


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def shop(services: Services, tmp_path: Path) -> None:
    for name, text in [
        ("shop", "The kettle warranty lasts two years."),
        ("hr", "Salaries are secret."),
    ]:
        path = tmp_path / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        services.library.create(name)
        services.library.get(name).add([path])


def test_kbchat_mcp_tools_in_process(tmp_path: Path) -> None:
    settings = make_settings()
    services = make_services(settings, ScriptedChatModel(["The warranty lasts two years [1]."]))
    shop(services, tmp_path)
    server = build_mcp(lambda: services)

    async def session(client: Client) -> dict[str, Any]:
        listed = await client.list_tools()
        kbs = await client.call_tool("list_knowledge_bases", {})
        hits = await client.call_tool("search", {"kb": "shop", "query": "kettle warranty"})
        answer = await client.call_tool(
            "ask", {"kb": "shop", "question": "How long is the warranty?"}
        )
        missing = await client.call_tool("search", {"kb": "nope", "query": "x"})
        return {
            "tools": sorted(t.name for t in listed.tools),
            "kbs": kbs.structured_content["result"],
            "hit": json.loads(text_of(hits)),
            "answer": answer.structured_content,
            "missing": (missing.is_error, text_of(missing)),
        }

    got = with_client(server, session)
    assert got["tools"] == ["ask", "list_knowledge_bases", "search"]
    assert {k["name"] for k in got["kbs"]} == {"shop", "hr"}
    assert got["hit"]["file"] == "shop.txt" and 0 <= got["hit"]["score"] <= 1
    assert got["answer"]["answer"].startswith("The warranty") and got["answer"]["citations"]
    assert got["missing"] == (True, "Error executing tool search: no knowledge base named 'nope'")
    services.close()


def test_kbchat_mcp_over_http_checks_keys_and_permissions(tmp_path: Path) -> None:
    settings = make_settings(auth="on")
    key = add_key(FileKeys(keys_path(settings)), "reader", {"shop": "read"})
    services = make_services(settings)
    shop(services, tmp_path)
    with live_server(create_app(settings, services=services)) as url:
        response = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert response.status_code == 401 and "API key" in response.json()["error"]["message"]
        headers = {"Authorization": f"Bearer {key}"}

        async def session(client: Client) -> tuple[list[str], bool, str]:
            kbs = await client.call_tool("list_knowledge_bases", {})
            secret = await client.call_tool("search", {"kb": "hr", "query": "salaries"})
            return (
                [k["name"] for k in kbs.structured_content["result"]],
                secret.is_error,
                text_of(secret),
            )

        transport_client = httpx2.AsyncClient(headers=headers)
        from mcp.client.streamable_http import streamable_http_client

        names, refused, message = with_client(
            streamable_http_client(f"{url}/mcp", http_client=transport_client), session
        )
    assert names == ["shop"] and refused and "no knowledge base named 'hr'" in message
    services.close()


def test_agent_uses_an_mcp_server_over_stdio(tmp_path: Path) -> None:
    server = McpServerSettings(command=[sys.executable, str(CALC_SERVER)], timeout_s=60)
    tools = {t.spec.name: t for t in list_tools("calc", server)}
    assert sorted(tools) == ["calc__add", "calc__explode"]
    assert tools["calc__add"].spec.parameters["required"] == ["a", "b"]
    services = make_services(make_settings())
    context = ToolContext(services=services)
    assert tools["calc__add"].run({"a": 2, "b": 40}, context).text == "42"
    with pytest.raises(
        ToolError, match="MCP tool calc__explode failed: Error executing tool explode"
    ):
        tools["calc__explode"].run({}, context)
    services.close()


def test_unreachable_mcp_servers_are_clear_errors() -> None:
    with pytest.raises(KbchatError, match=r"MCP server 'gone' \(/nonexistent/tool\) failed"):
        list_tools("gone", McpServerSettings(command=["/nonexistent/tool"], timeout_s=10))
    with pytest.raises(KbchatError, match=r"MCP server 'web' \(http://127.0.0.1:9/mcp\) failed"):
        list_tools("web", McpServerSettings(url="http://127.0.0.1:9/mcp", timeout_s=10))
    with pytest.raises(KbchatError, match="needs a command or a url"):
        list_tools("empty", McpServerSettings())


def test_kbchat_mcp_command_serves_stdio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp import StdioServerParameters

    home = tmp_path / "home"
    env = {
        "KBCHAT_HOME": str(home),
        "KBCHAT_EMBEDDER__BACKEND": "hash",
        "KBCHAT_PLUGINS": "kbchat.testing.plugin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PATH": "/usr/bin:/bin",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "kbchat", "mcp"], env=env)

    async def session(client: Client) -> list[str]:
        listed = await client.list_tools()
        result = await client.call_tool("list_knowledge_bases", {})
        assert not result.is_error
        return sorted(t.name for t in listed.tools)

    assert with_client(params, session) == ["ask", "list_knowledge_bases", "search"]


def test_doctor_lists_mcp_servers() -> None:
    from kbchat.config import load_settings
    from kbchat.doctor import run_checks

    settings = load_settings(
        mcp={
            "servers": {
                "calc": {"command": [sys.executable, str(CALC_SERVER)], "timeout_s": 60},
                "gone": {"url": "http://127.0.0.1:9/mcp", "timeout_s": 5},
            }
        }
    )
    checks = {c.name: c for c in run_checks(settings)}
    assert checks["MCP server calc"].ok and "calc__add" in checks["MCP server calc"].detail
    assert not checks["MCP server gone"].ok and "127.0.0.1:9" in checks["MCP server gone"].detail


def test_the_agent_can_use_kbchat_itself_over_http_with_a_key(tmp_path: Path) -> None:
    settings = make_settings(auth="on")
    key = add_key(FileKeys(keys_path(settings)), "agent", {"*": "read"})
    services = make_services(settings)
    shop(services, tmp_path)
    with live_server(create_app(settings, services=services)) as url:
        remote = McpServerSettings(url=f"{url}/mcp", headers={"Authorization": f"Bearer {key}"})
        tools = {t.spec.name: t for t in list_tools("kbchat", remote)}
        context = ToolContext(services=services)
        found = tools["kbchat__search"].run({"kb": "shop", "query": "kettle"}, context).text
        without_key = McpServerSettings(url=f"{url}/mcp")
        with pytest.raises(KbchatError, match="MCP server 'kbchat'"):
            list_tools("kbchat", without_key)
    assert sorted(tools) == ["kbchat__ask", "kbchat__list_knowledge_bases", "kbchat__search"]
    assert "two years" in found
    services.close()


def test_mcp_tools_are_listed_for_the_page() -> None:
    from fastapi.testclient import TestClient

    from kbchat.config import load_settings

    settings = load_settings(
        embedder={"backend": "hash"},
        mcp={"servers": {"calc": {"command": [sys.executable, str(CALC_SERVER)], "timeout_s": 60}}},
    )
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        tools = {t["name"]: t["source"] for t in client.get("/api/agent/tools").json()}
    assert tools["calc__add"] == "mcp:calc" and tools["calculator"] == "builtin"
    services.close()


def test_mcp_servers_are_listed_once_per_services(monkeypatch: pytest.MonkeyPatch) -> None:
    from kbchat.chat.tools import mcp as mcp_module
    from kbchat.config import load_settings

    listed: list[str] = []
    real = mcp_module.list_tools

    def counting(name: str, server: McpServerSettings) -> Any:
        listed.append(name)
        return real(name, server)

    monkeypatch.setattr(mcp_module, "list_tools", counting)
    calc = {"command": [sys.executable, str(CALC_SERVER)], "timeout_s": 60}
    gone = {"url": "http://127.0.0.1:9/mcp", "timeout_s": 5}
    services = make_services(load_settings(mcp={"servers": {"calc": calc}}))
    first, second = services.mcp_tools(), services.mcp_tools()
    assert [t.spec.name for t in first] == [t.spec.name for t in second] and listed == ["calc"]
    # a server that could not be reached is asked again next time
    flaky = make_services(load_settings(mcp={"servers": {"calc": calc, "gone": gone}}))
    listed.clear()
    flaky.mcp_tools()
    flaky.mcp_tools()
    assert listed == ["calc", "gone", "calc", "gone"]
    services.close()
    flaky.close()
