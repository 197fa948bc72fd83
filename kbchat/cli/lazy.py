"""The root command group, which imports a command's module only when that command is used.

``kbchat --help`` and shell completion list every command from a table of one-line
summaries; ``kbchat kb list`` imports ``kbchat.cli.kb`` and nothing of ``ask``, ``serve``
or ``models``. Building all ~65 commands' options and importing their modules took longer
than the command itself (bench/results/cli_startup.json).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from kbchat.cli.help_text import plain_help


@dataclass(frozen=True)
class Lazy:
    """A top-level command, imported when it is used.

    Attributes:
        target: ``"module:attribute"``: a ``typer.Typer`` (a command group, as
            ``app.add_typer(target, name=...)`` adds it) or a function (a command, as
            ``app.command(name)(target)``).
        summary: what ``kbchat --help`` and shell completion show: the first paragraph of the
            command's help, word for word (``tests/cli/test_lazy.py`` holds them equal).
    """

    target: str
    summary: str


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name, each built when first looked up (``kbchat.cli.lazy``).

    Names iterate without importing anything; ``values()`` and ``items()`` build them all.
    """

    def __init__(self, group: LazyGroup, built: Mapping[str, Any]) -> None:
        self._group = group
        self._built: dict[str, Any] = dict(built)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            entry = self._group.entries.get(name)
            if entry is None:
                raise KeyError(name)
            self._built[name] = self._group.build(name, entry)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"the command {name!r} cannot be removed from kbchat's root group")

    def __iter__(self) -> Iterator[str]:
        yield from self._group.entries
        yield from (name for name in self._built if name not in self._group.entries)

    def __len__(self) -> int:
        return len(set(self._group.entries) | set(self._built))


class LazyGroup(TyperGroup):
    """A typer group whose commands are the ``entries`` table, imported when invoked.

    Listing them (help, shell completion) shows each entry's summary without importing it.
    Subclasses set ``entries``; ``typer.Typer(cls=Subclass)`` makes it the app's group.
    """

    entries: ClassVar[Mapping[str, Lazy]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self, self.commands)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._listing and cmd_name in self.entries:
            return self.summary_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._summaries():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> Any:
        with self._summaries():
            return super().shell_complete(ctx, incomplete)

    @contextmanager
    def _summaries(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def summary_command(self, name: str) -> TyperCommand:
        """A stand-in for listing ``name``: its summary as help, nothing to run."""
        return TyperCommand(
            name=name, help=self.entries[name].summary, rich_markup_mode=self.rich_markup_mode
        )

    def build(self, name: str, entry: Lazy) -> Any:
        """Import ``entry.target`` and build its click command as typer would have."""
        module_name, _, attribute = entry.target.partition(":")
        target = getattr(importlib.import_module(module_name), attribute)
        command: Any
        # pretty_exceptions_short: typer's default (the root turns pretty exceptions off)
        if isinstance(target, typer.Typer):
            command = get_group_from_info(
                TyperInfo(target, name=name),
                pretty_exceptions_short=True,
                suggest_commands=self.suggest_commands,
                rich_markup_mode=self.rich_markup_mode,
            )
        else:
            command = get_command_from_info(
                CommandInfo(name=name, callback=target),
                pretty_exceptions_short=True,
                rich_markup_mode=self.rich_markup_mode,
            )
        plain_help(command)
        return command
