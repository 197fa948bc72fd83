"""The agent's tools as the page and API clients see them (built-ins, your own, MCP)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from kbchat.server.auth import Principal
from kbchat.server.errors import documented
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.shapes.chat import ToolInfo

router = APIRouter(tags=["chat"])
StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]


@router.get("/api/agent/tools", responses=documented(401))
async def agent_tools(state: StateDep, caller: CallerDep) -> list[ToolInfo]:
    """The tools the agent (``mode: agent``, ``agent:`` models) may use: name, what it does,
    and where it comes from (``builtin``, ``user`` or ``mcp:<server>``). MCP servers are
    asked for their tools now; one that cannot be reached is left out (see ``/api/doctor``)."""
    from kbchat.chat.agent import build_tools
    from kbchat.chat.tools.mcp import McpTool

    settings = state.settings
    tools = await run_in_threadpool(lambda: build_tools(settings, mcp=state.services.mcp_tools))
    user = set(settings.agent.user_tools)
    return [
        ToolInfo(
            name=tool.spec.name,
            description=tool.spec.description,
            source=(
                f"mcp:{tool.server}"
                if isinstance(tool, McpTool)
                else "user"
                if tool.spec.name in user
                else "builtin"
            ),
        )
        for tool in tools
    ]
