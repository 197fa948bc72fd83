"""Help in plain words: ``NAME`` and ``TEXT`` where typer 0.29 prints ``{name}`` and ``<str>``.

Typer 0.29 labels every option with its Python type (``<str>``, ``<bool>`` even on flags)
and a required argument as ``{name}`` in the usage line. ``plain_help`` walks a built
command (the root's commands as they are loaded, ``kbchat.cli.lazy``) and gives each
parameter a click-style metavar instead (its public ``metavar`` attribute); required
arguments get click's own usage form, ``NAME``.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH"}


class PlainArgument(TyperArgument):
    """An argument shown as click shows it: NAME, [NAME] when optional, NAME... for many."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the NAME says it


class PlainOption(TyperOption):
    """An option whose list of choices, in the help table, breaks only between choices."""

    def display_type_rich(self, ctx: Any) -> str | None:
        shown = super().display_type_rich(ctx)
        return None if shown is None else choice_lines(shown)


CHOICE_LINE = 16
"""Longest line of a choice list in the help table: rich folds a longer word inside it."""


def choice_lines(metavar: str) -> str:
    """``a|b|c`` packed into lines of at most ``CHOICE_LINE`` characters, each ending at a
    ``|`` (rich wraps only at spaces, so ``auto|map-reduce|refine|extract`` was folded
    inside a word); any other metavar as it is."""
    if "|" not in metavar or " " in metavar or len(metavar) <= CHOICE_LINE:
        return metavar
    lines = [""]
    for choice in metavar.split("|"):
        piece = f"|{choice}" if lines[-1] else choice
        if lines[-1] and len(lines[-1]) + len(piece) > CHOICE_LINE:
            lines[-1] += "|"
            lines.append(choice)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def plain_help(command: Any) -> None:
    """Give every parameter of ``command`` (a click command or group built by typer) and of
    its subcommands a plain metavar, in place."""
    plain_params(command)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            plain_help(sub)


def plain_params(command: Any) -> None:
    """Give the parameters of ``command`` alone (not its subcommands) a plain metavar, and
    its help paragraphs their own line breaks (``reflow``)."""
    if command.help:
        command.help = reflow(command.help)
    context = typer.Context(command)
    for param in command.get_params(context):  # the help option too
        if isinstance(param, TyperArgument):
            param.__class__ = PlainArgument
            param.metavar = param.metavar or (param.name or "").upper()
        elif isinstance(param, TyperOption):
            param.__class__ = PlainOption
            if param.metavar is None:
                param.metavar = _option_metavar(param, context)


_ITEM = re.compile(r"^(?:[-*•]|\d+[.)])\s")


def reflow(text: str) -> str:
    """``text`` with the line breaks of a docstring's paragraphs taken out, so that the help
    wraps at the terminal's width (typer keeps them, and a line broken at 90 columns then
    wraps again at 80). Paragraphs (blank lines) stay, so does each list item (``- ``,
    ``1. ``) on its own line, and an indented paragraph (an example) is kept as written."""
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text.strip("\n")):
        if paragraph.startswith("    "):
            paragraphs.append(paragraph)
            continue
        lines: list[str] = []
        for line in paragraph.splitlines():
            stripped = line.strip()
            if lines and not _ITEM.match(stripped):
                lines[-1] = f"{lines[-1]} {stripped}"
            else:
                lines.append(stripped)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _option_metavar(option: TyperOption, context: typer.Context) -> str:
    """Nothing for a flag; TEXT, INTEGER, NUMBER, PATH or the choices for a value."""
    if option.is_flag or option.count:
        return ""
    label = option.display_type(context).strip("<>")
    if label.startswith("list[") and label.endswith("]"):  # a repeatable option
        label = label[5:-1]
    base, _, ranged = label.partition(" range")
    if base.lower() in _TYPE_NAMES:
        return _TYPE_NAMES[base.lower()]
    return label if not ranged else base.upper()
