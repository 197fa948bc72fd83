"""Name -> backend factory registries for embedders, vector stores, chat models and rerankers.

Built-in backends register by import path so that heavy dependencies load only when a
backend is actually built; third parties call ``register`` the same way, from a plugin
module named in the ``plugins`` setting (see ``load_plugins``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kbchat.errors import ConfigError

if TYPE_CHECKING:
    from kbchat.store.base import VectorStore

T = TypeVar("T")


class Registry(Generic[T]):
    """Backends of one kind, looked up by name; an unknown name lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T] | str] = {}

    def register(self, name: str, factory: Callable[..., T] | str) -> None:
        """Register ``factory`` (a callable or a ``"module:attr"`` import path) under ``name``."""
        if not name:
            raise ValueError(f"{self.kind} name must not be empty")
        self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Forget ``name`` (if registered)."""
        self._factories.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def factory(self, name: str) -> Callable[..., T]:
        try:
            entry = self._factories[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            resolved: Callable[..., T] = getattr(importlib.import_module(module_name), attr)
            self._factories[name] = resolved
            return resolved
        return entry

    def create(self, name: str, **kwargs: Any) -> T:
        """Build backend ``name``.

        Raises:
            ConfigError: unknown name, or settings it needs are missing (e.g. the ``openai``
                embedder without ``base_url`` and ``model``).
        """
        factory = self.factory(name)
        try:
            return factory(**kwargs)
        except TypeError as exc:
            needed = re.findall(r"'(\w+)'", str(exc)) if "required" in str(exc) else []
            if not needed:
                raise
            raise ConfigError(
                f"{self.kind} {name!r} needs {' and '.join(needed)} in its settings"
            ) from None


embedders: Registry[Any] = Registry("embedder")


def create_embedder(backend: str, **kwargs: Any) -> Any:
    """Build an embedder by backend name; ``a+b`` joins several (see kbchat.embed.composite).

    Every part gets the same keyword arguments; local models ignore the remote ones.
    """
    names = check_embedder(backend)
    if len(names) == 1:
        return embedders.create(names[0], **kwargs)
    from kbchat.embed.composite import CompositeEmbedder

    return CompositeEmbedder([embedders.create(name, **kwargs) for name in names])


def check_embedder(backend: str) -> list[str]:
    """The registered embedder names ``backend`` joins with '+' (one or more).

    Raises:
        ConfigError: a name is unknown or repeated; the message lists the choices, the
            joined ones included.
    """
    names = [name.strip() for name in backend.split("+")]
    known = embedders.names()
    unknown = [name for name in names if name not in known]
    choices = (
        f"choose {', '.join(known)}, or distinct ones joined with '+' (e5+use, the default, "
        "ranks passages in the question's language first)"
    )
    if not all(names) or len(set(names)) != len(names):
        raise ConfigError(f"embedder {backend!r} does not join distinct names; {choices}")
    if unknown:
        raise ConfigError(f"unknown embedder {unknown[0]!r}; {choices}")
    return names


def open_vector_store(
    backend: str, *, directory: Path, collection: str, dim: int, url: str | None = None
) -> VectorStore:
    """Open one knowledge base's vector store with the backend class registered as ``backend``.

    A vector store backend is registered as its class; the class's ``open`` builds it
    (see ``kbchat.store.base.VectorStore.open`` for the arguments).

    Raises:
        ConfigError: no backend of that name (the message lists the known ones).
        BackendError: the store cannot be reached or read.
    """
    store_class = vector_stores.factory(backend)
    store: VectorStore = store_class.open(  # type: ignore[attr-defined]
        directory=directory, collection=collection, dim=dim, url=url
    )
    return store


def load_plugins(modules: Sequence[str]) -> None:
    """Import each plugin module and call its ``register()``, which registers its backends.

    Called once at the edge (the CLI, the server factory) with the ``plugins`` setting.

    Raises:
        ConfigError: a module cannot be imported or has no ``register()``; names the setting.
    """
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"setting plugins: cannot import module {name!r}: {exc}") from exc
        register = getattr(module, "register", None)
        if not callable(register):
            raise ConfigError(f"setting plugins: module {name!r} has no register() function")
        register()


embedders.register("use", "kbchat.embed.local:USEEmbedder")
embedders.register("e5", "kbchat.embed.local:E5Embedder")
embedders.register("openai", "kbchat.embed.remote:OpenAIEmbedder")

vector_stores: Registry[Any] = Registry("vector store backend")
vector_stores.register("faiss", "kbchat.store.faiss:FaissStore")
vector_stores.register("pgvector", "kbchat.store.pgvector:PgvectorStore")
vector_stores.register("milvus", "kbchat.store.milvus:MilvusStore")

chat_models: Registry[Any] = Registry("chat model backend")
chat_models.register("llamacpp", "kbchat.llm.llamacpp:LlamaCppChatModel")
chat_models.register("openai", "kbchat.llm.openai:OpenAIChatModel")

rerankers: Registry[Any] = Registry("reranker backend")
rerankers.register("onnx", "kbchat.retrieve.rerank:OnnxCrossEncoder")
rerankers.register("remote", "kbchat.retrieve.rerank:RemoteReranker")

tools: Registry[Any] = Registry("tool")
"""Agent tools by name (see kbchat.chat.tools); user tools are registered from settings."""
tools.register("kb_search", "kbchat.chat.tools.kb_search:KbSearch")
tools.register("calculator", "kbchat.chat.tools.calculator:Calculator")
tools.register("current_time", "kbchat.chat.tools.clock:Clock")
tools.register("sheet_sql", "kbchat.chat.tools.sheets_sql:SheetsSql")
tools.register("web_search", "kbchat.chat.tools.web:WebSearchTool")
tools.register("fetch_url", "kbchat.chat.tools.web:FetchUrl")
tools.register("summarize_file", "kbchat.chat.tools.summarize_file:SummarizeFile")

search_providers: Registry[Any] = Registry("web search provider")
search_providers.register("searxng", "kbchat.chat.search.providers:SearxngSearch")
search_providers.register("duckduckgo", "kbchat.chat.search.providers:DuckDuckGoSearch")
search_providers.register("tavily", "kbchat.chat.search.providers:TavilySearch")
search_providers.register("bing", "kbchat.chat.search.providers:BingSearch")
search_providers.register("brave", "kbchat.chat.search.providers:BraveSearch")
