"""What the CLI command modules share: consoles, JSON and progress output, --json, the library."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from kbchat.errors import BadInput
from kbchat.runtime import configure_process

if TYPE_CHECKING:
    from rich.progress import Progress

    from kbchat.app import Services
    from kbchat.config import Settings
    from kbchat.kb.library import Library

out = Console(soft_wrap=True)
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@contextmanager
def open_library(*, indexes: bool = True) -> Iterator[Library]:
    """The library of the configured KBCHAT_HOME, closed on leaving.

    With ``indexes`` (knowledge bases will be opened) the process is configured for
    searching first (``kbchat.runtime``); listing needs only the catalog.
    """
    from kbchat.config import load_settings
    from kbchat.kb.library import Library

    if indexes:
        configure_process()
    library = Library(load_settings())
    try:
        yield library
    finally:
        library.close()


def build_services(settings: Settings) -> Services:
    """The services for ``settings``, after configuring the process (``kbchat.runtime``)."""
    from kbchat.app import build

    configure_process()
    return build(settings)


def print_json(value: Any) -> None:
    """Print ``value`` as JSON; a shape (``kbchat.shapes``) or a list of them as the API
    sends them."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list) and all(isinstance(item, BaseModel) for item in value):
        value = [item.model_dump(mode="json") for item in value]
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


def progress_bar(label: str = "{task.description}") -> Progress:
    """A progress bar on stderr that disappears when done (stdout stays clean for --json)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def split_names(names: str) -> list[str]:
    """Knowledge base names from "a,b,c": stripped, deduplicated, at least one."""
    parts = [n.strip() for n in names.split(",") if n.strip()]
    if not parts:
        raise BadInput("name at least one knowledge base")
    return list(dict.fromkeys(parts))
