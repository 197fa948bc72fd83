"""The one factory: Settings -> the services kbchat runs on (library of KBs, chat models)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbchat.chat.files import FileChats
from kbchat.chat.search import WebSearch
from kbchat.config import Settings
from kbchat.errors import NotFound
from kbchat.kb.library import Library
from kbchat.llm import build_chat_model
from kbchat.llm.base import ChatModel
from kbchat.registry import rerankers
from kbchat.retrieve.search import Reranker

if TYPE_CHECKING:
    from kbchat.chat.tools import Tool


class ModelPool:
    """Chat models by the names configured in ``Settings.models``, each built once on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[str, ChatModel] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self.settings.models)

    def get(self, name: str | None = None) -> ChatModel:
        """The model called ``name`` (default: ``settings.default_model``).

        Raises:
            NotFound: no model of that name is configured; the message lists the known ones.
        """
        name = name or self.settings.default_model
        if name not in self.settings.models:
            raise NotFound(f"no model named {name!r}; known: {', '.join(self.names()) or 'none'}")
        with self._lock:
            if name not in self._models:
                self._models[name] = build_chat_model(
                    name, self.settings.models[name], self.settings.models_dir
                )
            return self._models[name]

    def add(self, name: str, model: ChatModel) -> None:
        """Use an already built model under ``name`` (tests, embedding applications)."""
        with self._lock:
            self._models[name] = model


@dataclass
class Services:
    """Everything a front end (CLI, server) needs, built from one Settings."""

    settings: Settings
    library: Library
    models: ModelPool = field(init=False)
    _reranker: Reranker | None = field(init=False, default=None)
    _file_chats: FileChats | None = field(init=False, default=None)
    _web_search: WebSearch | None = field(init=False, default=None)
    _mcp_tools: list[Tool] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.models = ModelPool(self.settings)

    def close(self) -> None:
        self.library.close()

    def file_chats(self) -> FileChats:
        """The temporary knowledge bases of conversations; expired ones go on first use."""
        if self._file_chats is None:
            self._file_chats = FileChats(self.library, ttl_s=self.settings.files.ttl_hours * 3600.0)
            self._file_chats.expire()
        return self._file_chats

    def web_search(self) -> WebSearch:
        """The configured web search, built once (its result cache lives as long).

        Raises:
            ConfigError: no provider configured, or one lacks its url or key.
        """
        if self._web_search is None:
            from kbchat.chat.search import build_web_search

            self._web_search = build_web_search(self.settings.web_search)
        return self._web_search

    def mcp_tools(self) -> list[Tool]:
        """The configured MCP servers' tools, listed once for these services (listing starts
        every stdio server); a server that could not be reached is asked again next time."""
        from kbchat.chat.agent import mcp_tools
        from kbchat.chat.tools.mcp import McpTool

        if self._mcp_tools is None:
            found = mcp_tools(self.settings)
            if {t.server for t in found if isinstance(t, McpTool)} != set(
                self.settings.mcp.servers
            ):
                return found
            self._mcp_tools = found
        return self._mcp_tools

    def reranker(self) -> Reranker | None:
        """The configured reranker, built once; None when reranking is off."""
        configured = self.settings.rerank
        if configured.backend == "none":
            return None
        if self._reranker is None:
            options = configured.model_dump(exclude={"backend", "threshold"}, exclude_none=True)
            self._reranker = rerankers.create(configured.backend, **options)
        return self._reranker


def build(settings: Settings) -> Services:
    """Build the services for ``settings``; nothing heavy loads until first use."""
    return Services(settings=settings, library=Library(settings))
