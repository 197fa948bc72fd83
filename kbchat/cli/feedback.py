"""`kbchat feedback export`: answers rated in the web page, as an evaluation set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from kbchat.cli.base import err, open_library

feedback_app = typer.Typer(
    help="Ratings (thumbs up/down) given to answers in the web page.", no_args_is_help=True
)

EXPORT_HELP = (
    "One JSON object a line: question, answer, sources (file, page, quote), verdict, comment, "
    "model, time, and the question-set fields of `kbchat eval answers`. A thumbs-up answer is "
    'its question\'s reference ("answers", cited files as "gold_doc_ids"; cut "answers" down to '
    "the key phrases, as eval counts an answer correct when it contains one); a thumbs-up "
    'refusal is an unanswerable question; a thumbs-down line has "needs_reference": true and '
    "is skipped by eval until its answers are written."
)


@feedback_app.command("export", epilog=EXPORT_HELP)
def export(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write to this file (JSONL) instead of stdout."),
    ] = None,
    kb: Annotated[
        str | None, typer.Option(help="Only answers of conversations that searched this KB.")
    ] = None,
    verdict: Annotated[
        Literal["up", "down"] | None, typer.Option(help="Only answers rated up, or down.")
    ] = None,
) -> None:
    """Export rated answers as an evaluation set (JSONL) for `kbchat eval answers`."""
    from kbchat.eval.feedback import feedback_rows, to_jsonl
    from kbchat.store.conversations import ConversationStore

    with open_library(indexes=False) as library:
        store = ConversationStore(library.catalog.engine)
        rows = list(feedback_rows(store.rated_answers(verdict=verdict), kb=kb))
        known = library.names()
    if kb is not None and not rows and kb not in known:
        # a KB dropped since its answers were rated still exports; a typo says so
        err.print(
            f"error: no knowledge base {kb!r} and no rated answers from one "
            f"(knowledge bases: {', '.join(known) or 'none'})",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    text = to_jsonl(rows)
    if out is None:
        typer.echo(text, nl=False)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            err.print(
                f"error: cannot write {out}: {exc.strerror or exc}", markup=False, soft_wrap=True
            )
            raise typer.Exit(1) from None
    where = f" to {out}" if out is not None else ""
    err.print(f"exported {len(rows)} rated answer(s){where}", markup=False, soft_wrap=True)
