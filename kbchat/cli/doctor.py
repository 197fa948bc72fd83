"""`kbchat doctor` checks what is installed; `kbchat demo` tries it on kbchat's own docs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape

from kbchat.cli.base import JsonOpt, err, open_library, out, print_json


def doctor(as_json: JsonOpt = False) -> None:
    """Check what is installed and usable: packages, models, data directory, config."""
    from kbchat.config import load_settings
    from kbchat.doctor import run_checks

    settings = load_settings()
    checks = run_checks(settings)
    if as_json:
        print_json([asdict(c) for c in checks])
    else:
        for check in checks:
            mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
            out.print(f"{mark} {escape(check.name)}: {escape(check.detail)}")
    if not all(c.ok or c.optional for c in checks):
        raise typer.Exit(1)


def demo(
    query: Annotated[list[str] | None, typer.Option(help="Questions to search for.")] = None,
) -> None:
    """Build the sample knowledge base (kbchat's own docs) and search it."""
    from kbchat.cli.kb import print_hits, run_write
    from kbchat.config import load_settings
    from kbchat.options import search_options
    from kbchat.retrieve.search import retrieve
    from kbchat.sample import sample_dir

    settings = load_settings()
    with open_library() as library:
        kb = library.ensure("kbchat-docs", description="kbchat's own documentation")
        err.print(f"knowledge base 'kbchat-docs' in {settings.home}")
        run_write(
            kb, "sync", False, folder=sample_dir(), exclude=["__init__.py", "*.pyc", "__pycache__"]
        )
        for question in query or ["How do I add files to a knowledge base?", "如何创建知识库？"]:
            out.print(f"\n[bold cyan]? {question}[/bold cyan]")
            print_hits(retrieve([kb], question, search_options(settings, top_k=3)).hits, False)
