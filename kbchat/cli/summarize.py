"""`kbchat summarize KB [FILE ...]`: per-file summaries (kept in the catalog) and an overview."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from kbchat.cli.base import JsonOpt, build_services, err, print_json
from kbchat.cli.flags import flag
from kbchat.errors import BadInput, KbchatError
from kbchat.options import SummaryStrategy, SummaryStrategyName

if TYPE_CHECKING:
    from kbchat.app import Services
    from kbchat.chat.summarize import Summary, SummaryEvent
    from kbchat.chat.summary_steps import Progress
    from kbchat.kb.knowledge_base import KnowledgeBase
    from kbchat.shapes.chat import KBSummaries

SLOW_S = 120.0
"""Summaries expected to take longer than this are announced as a warning."""


def summarize_command(
    kb: Annotated[str, typer.Argument(help="Knowledge base.")],
    files: Annotated[
        list[str] | None, typer.Argument(help="Files as `kb files` names them (default: all).")
    ] = None,
    strategy: Annotated[SummaryStrategyName, flag(SummaryStrategy)] = "auto",
    model: Annotated[str | None, typer.Option(help="Model name (see settings).")] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Summarise again even if a summary is kept.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Summarise files of a knowledge base (streamed; kept until the file changes).

    Without FILE, every indexed file is summarised, then the knowledge base as a whole.
    Ctrl-C stops.
    """
    from kbchat.chat.summarize import STRATEGIES
    from kbchat.config import load_settings

    if strategy not in STRATEGIES:
        raise BadInput(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    settings = load_settings()
    services = build_services(settings)
    try:
        base = services.library.get(kb)
        names = files or [r.name for r in base.files() if r.status == "indexed"]
        if not names:
            raise BadInput(f"knowledge base {kb!r} has no indexed file to summarise")
        results = _summarize_all(
            services, base, names, strategy, model, refresh, as_json, overview=not files
        )
    finally:
        services.close()
    if as_json:
        print_json(results.model_dump(mode="json", exclude_unset=True))


def _summarize_all(
    services: Services,
    kb: KnowledgeBase,
    names: list[str],
    strategy: SummaryStrategyName,
    model_name: str | None,
    refresh: bool,
    as_json: bool,
    *,
    overview: bool,
) -> KBSummaries:
    from kbchat.chat.summaries import SummaryStore, summarize_file, summarize_overview
    from kbchat.chat.summary_jobs import expected_seconds
    from kbchat.options import summary_options
    from kbchat.shapes.chat import KBSummaries, file_summary, summary_info

    model = services.models.get(model_name)
    options = summary_options(services.settings, strategy=strategy, model=model_name)
    store = SummaryStore(services.library.catalog.engine)
    expected = sum(
        expected_seconds(kb, name, model, options, store, refresh=refresh) for name in names
    )
    _announce(len(names), expected)
    results = KBSummaries(kb=kb.name, files=[])
    for name in names:
        if not as_json:
            err.print(f"== {name}", markup=False, style="bold")
        summary = _run(
            partial(summarize_file, kb, name, model, store, options=options, refresh=refresh),
            as_json,
        )
        results.files.append(file_summary(name, summary))
    if overview and len(names) > 1:
        if not as_json:
            err.print(f"== {kb.name} (overview)", markup=False, style="bold")
        whole = _run(
            partial(summarize_overview, kb, model, store, options=options, refresh=refresh), as_json
        )
        results.overview = summary_info(whole)
    return results


def _run(make: Callable[..., Iterator[SummaryEvent]], as_json: bool) -> Summary:
    """Print a summary's stream (text on stdout, progress on stderr); Ctrl-C stops it.

    ``make(cancel=event)`` starts the summary.
    """
    from kbchat.chat.summarize import Summary
    from kbchat.chat.summary_steps import Progress

    cancel = threading.Event()
    events: Iterator[SummaryEvent] = make(cancel=cancel)
    summary: Summary | None = None
    try:
        for event in events:
            if isinstance(event, Summary):
                summary = event
            elif isinstance(event, Progress):
                _progress(event)
            elif not as_json:
                sys.stdout.write(event)
                sys.stdout.flush()
    except KeyboardInterrupt:
        cancel.set()
        raise KbchatError("the summary was stopped") from None
    if not as_json:
        sys.stdout.write("\n")
    if summary is None:
        raise KbchatError("the summary ended without a result")
    if summary.cached:
        err.print(f"(kept summary, {summary.strategy})", markup=False, style="dim")
    elif summary.finish_reason == "length" and not as_json:
        err.print(
            "note: the summary reached its length cap; it ends at its last whole sentence",
            markup=False,
            style="yellow",
        )
    return summary


def _announce(files: int, expected: float) -> None:
    """Say before starting what the whole run is expected to take (a warning when long)."""
    if expected <= 0:
        return
    slow = expected > SLOW_S
    minutes = f"{expected / 60:.0f} min" if expected >= 90 else f"{expected:.0f} s"
    note = "; this is long: Ctrl-C stops (finished summaries are kept)" if slow else ""
    err.print(
        f"{files} file{'s' if files > 1 else ''} to summarise, about {minutes} expected{note}",
        markup=False,
        style="yellow" if slow else "dim",
    )


def _progress(event: Progress) -> None:
    if event.stage == "plan":
        slow = event.estimated_s > SLOW_S
        style = "yellow" if slow else "dim"
        note = " (this is long; Ctrl-C stops)" if slow else ""
        err.print(f"strategy {event.message}{note}", markup=False, style=style)
    elif event.total:
        err.print(f"{event.stage} {event.done}/{event.total}", markup=False, style="dim")
