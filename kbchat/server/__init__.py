"""kbchat's HTTP server: REST API, OpenAI-compatible API and web UI (``kbchat serve``)."""

from __future__ import annotations

from kbchat.server.app import create_app

__all__ = ["create_app"]
