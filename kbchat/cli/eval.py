"""`kbchat eval`: retrieval quality, and answer quality (``kbchat.cli.chat``), of a question set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kbchat.cli import chat
from kbchat.cli.base import JsonOpt, open_library, out, print_json, progress_bar, split_names
from kbchat.cli.flags import flag
from kbchat.options import SearchMode, SearchModeName, TopK

eval_app = typer.Typer(
    help="Measure retrieval and answer quality on a question set.", no_args_is_help=True
)

_EVAL_COLUMNS = {
    "recall@1": "R@1",
    "recall@5": "R@5",
    "recall@10": "R@10",
    "mrr@10": "MRR@10",
    "ndcg@10": "nDCG@10",
}


@eval_app.command("retrieval")
def eval_retrieval(
    kbs: Annotated[str, typer.Argument(help="Knowledge base name(s), comma-separated.")],
    queries: Annotated[
        Path,
        typer.Argument(
            help="Question set: JSONL with id, question, gold_doc_ids (file stems), split."
        ),
    ],
    top_k: Annotated[int, flag(TopK, "--top-k", "-k")] = 10,
    mode: Annotated[SearchModeName | None, flag(SearchMode, default="retrieval.mode")] = None,
    split: Annotated[
        str | None, typer.Option(help="Only questions of this split (dev, test).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many questions.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recall@1/5/10, MRR@10, nDCG@10 and latency of search over a question set."""
    from rich.table import Table

    from kbchat.eval.retrieval import evaluate_retrieval, load_queries
    from kbchat.options import search_options
    from kbchat.retrieve.search import search

    questions = load_queries(queries, split=split, limit=limit)
    with open_library() as library:
        options = search_options(library.settings, top_k=top_k, mode=mode)
        opened = [library.get(name) for name in split_names(kbs)]
        progress = progress_bar("questions")
        with progress:
            task = progress.add_task("questions", total=len(questions))
            report = evaluate_retrieval(
                lambda question: search(opened, question, options),
                questions,
                top_k=top_k,
                split=split,
                on_query=lambda _: progress.advance(task),
            )
    if as_json:
        print_json(
            {
                "kbs": [kb.name for kb in opened],
                "queries_file": str(queries),
                "mode": mode,
                **report.to_json(),
            }
        )
        return
    table = Table(
        "questions",
        *_EVAL_COLUMNS.values(),
        "p50 ms",
        "p95 ms",
        title=f"retrieval on {', '.join(kb.name for kb in opened)}",
    )
    table.add_row(
        str(report.queries),
        *(f"{100 * report.metrics[name]:.1f}" for name in _EVAL_COLUMNS),
        f"{report.latency_p50_ms:.1f}",
        f"{report.latency_p95_ms:.1f}",
    )
    out.print(table)


eval_app.command("answers", epilog=chat.QUESTION_FORMAT)(chat.eval_answers)
