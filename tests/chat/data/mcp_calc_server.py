"""A small MCP server over stdio for the agent's MCP client tests: add, and a tool that fails."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server: MCPServer = MCPServer("calc")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def explode() -> str:
    """Always fails."""
    raise ValueError("the fuse blew")


if __name__ == "__main__":
    server.run("stdio")
