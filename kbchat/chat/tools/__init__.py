"""Tools an agent may call: the protocol, the context a call runs in, and the registry.

A tool is an object with a ``spec`` (name, description, JSON schema of its arguments, as the
OpenAI tools protocol has them), ``examples`` (questions it answers, zh and en: the router of
small models matches questions against them) and ``run(arguments, context) -> ToolResult``.
Built-ins and user tools go through the same registry (``kbchat.registry.tools``); a user tool
is configured as ``[agent.tools] name = "module:attr"``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kbchat.errors import KbchatError
from kbchat.types import Citation, ToolSpec

if TYPE_CHECKING:
    from kbchat.app import Services


class ToolError(KbchatError):
    """A tool could not do what it was asked; the message is shown to the model and the user."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool call may use.

    Attributes:
        services: the library of knowledge bases, models and settings.
        can_read: whether the caller may read a knowledge base (the server passes its
            permission check; the CLI reads everything).
        kbs: the knowledge bases the user chose for this conversation (tools default to them).
        cancel: set when the user stops the run.
        now: the current time (injected so tests can fix it).
    """

    services: Services
    can_read: Callable[[str], bool] = lambda _: True
    kbs: Sequence[str] = ()
    cancel: threading.Event | None = None
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone()
    sources: list[Citation] = field(default_factory=list)

    def cite(self, source: Citation) -> int:
        """Keep ``source`` as a citation of this run; returns its marker ([n] in the answer)."""
        for existing in self.sources:
            if (existing.kb, existing.file, existing.text) == (source.kb, source.file, source.text):
                return existing.marker
        marker = len(self.sources) + 1
        self.sources.append(replace(source, marker=marker))
        return marker

    def resolve(self, names: Sequence[str] | None) -> tuple[list[str], str | None]:
        """The knowledge bases a call may use, and a note for the model when a name it gave
        is not one of them (small models invent names: "kb": "sales"): the call then goes
        to the conversation's own knowledge bases instead of failing. A name that exists but
        may not be read gets the same note as an unknown one.

        Raises:
            ToolError: nothing readable is left.
        """
        if names:
            known = set(self.services.library.names())
            good = [n for n in names if n in known and self.can_read(n)]
            bad = [n for n in names if n not in good]
            if not bad:
                return good, None
            fallback = good or self.readable()
            if not fallback:
                raise ToolError(f"no knowledge base named {bad[0]!r}")
            note = f"There is no knowledge base named {', '.join(map(repr, bad))}; used " + (
                ", ".join(fallback) + "."
            )
            return fallback, note
        return self.readable(), None

    def readable(self, names: Sequence[str] | None = None) -> list[str]:
        """``names`` (default: the conversation's, else every KB) the caller may read.

        Raises:
            ToolError: a named knowledge base does not exist or may not be read (one message
                for both, as the API does).
        """
        library = self.services.library
        if names:
            known = set(library.names())
            for name in names:
                if name not in known or not self.can_read(name):
                    raise ToolError(f"no knowledge base named {name!r}")
            return list(names)
        chosen = list(self.kbs) or library.names()
        return [name for name in chosen if self.can_read(name)]


@dataclass(frozen=True)
class ToolResult:
    """A call's outcome: ``text`` is what the model reads (sources in it are marked [n], as
    ``ToolContext.cite`` numbered them)."""

    text: str


@runtime_checkable
class Tool(Protocol):
    """One callable tool (see the module docstring)."""

    @property
    def spec(self) -> ToolSpec:
        """Name, description and JSON schema of the arguments (OpenAI's tools shape)."""
        ...

    @property
    def examples(self) -> Sequence[str]:
        """Questions this tool answers (zh and en), for the example router."""
        ...

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult: ...
