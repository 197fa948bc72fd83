"""The kbchat command line: thin wrappers that parse, build services, call and print."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kbchat import chat_cli
from kbchat.app import build
from kbchat.config import Settings, load_settings
from kbchat.errors import BadInput, KbchatError
from kbchat.kb import FileOutcome, IngestListener, KnowledgeBase
from kbchat.library import Library
from kbchat.options import search_options
from kbchat.retrieve import retrieve
from kbchat.serialize import file_json, hit_json, kb_json
from kbchat.types import Hit

app = typer.Typer(
    help="Ask questions about your own documents, with models you run yourself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
kb_app = typer.Typer(help="Create and manage knowledge bases.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")

out = Console(soft_wrap=True)
err = Console(stderr=True)

EXIT_FILES_FAILED = 3

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
IncludeOpt = Annotated[
    list[str] | None, typer.Option("--include", "-i", help="Only files matching this glob.")
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", "-x", help="Skip files or folders matching this glob."),
]


@contextmanager
def _library() -> Iterator[Library]:
    library = Library(load_settings())
    try:
        yield library
    finally:
        library.close()


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


class _RichListener(IngestListener):
    """Shows a progress bar on stderr and collects outcomes."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("files", total=None)

    def started(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def file_done(self, outcome: FileOutcome) -> None:
        self.progress.update(self.task, advance=1, description=outcome.name[-40:])
        if outcome.status == "failed":
            self.progress.console.print(f"failed: {outcome.error}", style="red", markup=False)

    def waiting(self, message: str) -> None:
        self.progress.console.print(message, style="yellow", markup=False)


def progress_bar(label: str = "{task.description}") -> Progress:
    """A progress bar on stderr that disappears when done (stdout stays clean for --json)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _run_write(kb: KnowledgeBase, action: str, as_json: bool, **kwargs: Any) -> None:
    progress = progress_bar()
    with progress:
        listener = _RichListener(progress)
        outcomes: list[FileOutcome] = getattr(kb, action)(listener=listener, **kwargs)
    _report_outcomes(outcomes, as_json)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(EXIT_FILES_FAILED)


def _report_outcomes(outcomes: Sequence[FileOutcome], as_json: bool) -> None:
    if as_json:
        _print_json([asdict(o) for o in outcomes])
        return
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.status in ("failed", "skipped"):
            err.print(f"{outcome.status}: {outcome.error}", markup=False, highlight=False)
    chunks = sum(o.chunks for o in outcomes if o.status == "indexed")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no files"
    out.print(f"{summary}; {chunks} new chunks")


@kb_app.command("create")
def kb_create(
    name: str,
    embedder: Annotated[
        str | None, typer.Option(help="Embedder backend: e5+use (default), e5, use, openai.")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunk length in characters.")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Overlap in characters.")] = None,
    description: Annotated[str, typer.Option(help="What this knowledge base holds.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an empty knowledge base."""
    with _library() as library:
        record = library.create(
            name,
            embedder=embedder,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            description=description,
        )
        if as_json:
            _print_json(kb_json(record))
        else:
            out.print(f"created knowledge base {record.name!r} (embedder {record.embedder})")


@kb_app.command("list")
def kb_list(as_json: JsonOpt = False) -> None:
    """List knowledge bases."""
    with _library() as library:
        rows = [kb_json(r, library.catalog.kb_stats(r.id)) for r in library.records()]
    if as_json:
        _print_json(rows)
        return
    table = Table("name", "files", "chunks", "embedder", "description")
    for row in rows:
        table.add_row(
            row["name"], str(row["files"]), str(row["chunks"]), row["embedder"], row["description"]
        )
    out.print(table)


@kb_app.command("info")
def kb_info(name: str, as_json: JsonOpt = False) -> None:
    """Show a knowledge base's settings and file counts."""
    with _library() as library:
        record = library.catalog.get_kb(name)
        info = kb_json(record, library.catalog.kb_stats(record.id))
    if as_json:
        _print_json(info)
        return
    for key, value in info.items():
        out.print(f"[bold]{key}[/bold]: {value}")


@kb_app.command("drop")
def kb_drop(
    name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False
) -> None:
    """Delete a knowledge base and its indexes (your source files are not touched)."""
    with _library() as library:
        library.catalog.get_kb(name)
        if not yes and not typer.confirm(f"Drop knowledge base {name!r}?"):
            raise typer.Exit(1)
        library.drop(name)
    out.print(f"dropped knowledge base {name!r}")


@kb_app.command("add")
def kb_add(
    name: str,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    force: Annotated[bool, typer.Option(help="Re-index files even if unchanged.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add or update files. Exit code 3 if some files failed (the rest are indexed)."""
    with _library() as library:
        kb = library.get(name)
        excludes = [*library.settings.ingest.exclude, *(exclude or [])]
        _run_write(
            kb, "add", as_json, paths=paths, include=include or [], exclude=excludes, force=force
        )


@kb_app.command("files")
def kb_files(name: str, as_json: JsonOpt = False) -> None:
    """List a knowledge base's files with their status."""
    with _library() as library:
        records = library.get(name).files()
    if as_json:
        _print_json([file_json(r) for r in records])
        return
    table = Table("name", "status", "chunks", "error")
    for r in records:
        table.add_row(r.name, r.status, str(r.chunks), r.error or "")
    out.print(table)


@kb_app.command("rm")
def kb_rm(
    name: str,
    files: Annotated[list[str], typer.Argument(help="File names as `kb files` shows them.")],
    as_json: JsonOpt = False,
) -> None:
    """Remove files (and all their chunks) from a knowledge base."""
    with _library() as library:
        _run_write(library.get(name), "remove", as_json, names=files)


@kb_app.command("sync")
def kb_sync(
    name: str,
    folder: Path,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the knowledge base match a folder: add new, re-index changed, remove missing."""
    with _library() as library:
        excludes = [*library.settings.ingest.exclude, *(exclude or [])]
        _run_write(
            library.get(name),
            "sync",
            as_json,
            folder=folder,
            include=include or [],
            exclude=excludes,
        )


@kb_app.command("rebuild")
def kb_rebuild(name: str, as_json: JsonOpt = False) -> None:
    """Rebuild the indexes and re-read every file from its source."""
    with _library() as library:
        _run_write(library.get(name), "rebuild", as_json)


@kb_app.command("search")
def kb_search(
    names: Annotated[str, typer.Argument(metavar="NAME[,NAME...]", help="Knowledge base(s).")],
    query: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Number of hits.")] = 5,
    mode: Annotated[
        str | None, typer.Option(help="hybrid, dense or bm25 (default: configured).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Minimum relevance in [0, 1] (default: configured).")
    ] = None,
    files: Annotated[
        list[str] | None, typer.Option("--file", help="Only files matching glob.")
    ] = None,
    file_types: Annotated[
        list[str] | None, typer.Option("--type", help="Only these extensions.")
    ] = None,
    pages: Annotated[str | None, typer.Option(help="Page range, e.g. 3-7.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search knowledge bases (hybrid dense + BM25) and print the best passages."""
    services = build(load_settings())
    try:
        kbs = [services.library.get(name) for name in _split_names(names)]
        options = search_options(
            services.settings,
            top_k=top_k,
            mode=mode,
            threshold=threshold,
            files=tuple(files or ()),
            file_types=tuple(file_types or ()),
            pages=_page_range(pages),
        )
        result = retrieve(kbs, query, options, reranker=services.reranker())
    finally:
        services.close()
    for notice in result.notices:
        err.print(f"note: {notice}", markup=False)
    print_hits(result.hits, as_json)


def _split_names(names: str) -> list[str]:
    parts = [n.strip() for n in names.split(",") if n.strip()]
    if not parts:
        raise BadInput("name at least one knowledge base")
    return list(dict.fromkeys(parts))


def _page_range(pages: str | None) -> tuple[int, int] | None:
    if pages is None:
        return None
    first, _, last = pages.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise BadInput(f"--pages must look like 3-7 or 5, got {pages!r}") from None


def print_hits(hits: Sequence[Hit], as_json: bool) -> None:
    if as_json:
        _print_json([hit_json(h) for h in hits])
        return
    if not hits:
        out.print("no matching passages")
    for rank, hit in enumerate(hits, 1):
        where = f" p.{hit.page}" if hit.page else f" [{hit.sheet}]" if hit.sheet else ""
        out.print(f"[bold]{rank}. {hit.file}{where}[/bold]  score {hit.score:.3f}")
        out.print("   " + hit.text[:300].replace("\n", " "))


@app.command("doctor")
def doctor(as_json: JsonOpt = False) -> None:
    """Check what is installed and usable: packages, models, data directory, config."""
    from kbchat.doctor import run_checks

    settings = load_settings()
    checks = run_checks(settings)
    if as_json:
        _print_json([asdict(c) for c in checks])
    else:
        for check in checks:
            mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
            out.print(f"{mark} {escape(check.name)}: {escape(check.detail)}")
    if not all(c.ok or c.optional for c in checks):
        raise typer.Exit(1)


@app.command("demo")
def demo(
    query: Annotated[list[str] | None, typer.Option(help="Questions to search for.")] = None,
) -> None:
    """Build the sample knowledge base (kbchat's own docs) and search it."""
    from kbchat.sample import sample_dir

    settings: Settings = load_settings()
    with _library() as library:
        kb = library.ensure("kbchat-docs", description="kbchat's own documentation")
        err.print(f"knowledge base 'kbchat-docs' in {settings.home}")
        _run_write(
            kb, "sync", False, folder=sample_dir(), exclude=["__init__.py", "*.pyc", "__pycache__"]
        )
        for question in query or ["How do I add files to a knowledge base?", "如何创建知识库？"]:
            out.print(f"\n[bold cyan]? {question}[/bold cyan]")
            print_hits(retrieve([kb], question, search_options(settings, top_k=3)).hits, False)


eval_app = typer.Typer(help="Measure retrieval quality on a question set.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

_EVAL_MODES = ("hybrid", "dense", "bm25")
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
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Passages scored per question.")] = 10,
    mode: Annotated[
        str | None, typer.Option(help="hybrid, dense or bm25 (default: the retriever's default).")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Only questions of this split (dev, test).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many questions.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recall@1/5/10, MRR@10, nDCG@10 and latency of search over a question set."""
    from kbchat.evaluate import evaluate_retrieval, load_queries
    from kbchat.retrieve import search

    if mode is not None and mode not in _EVAL_MODES:
        raise BadInput(f"--mode must be one of {', '.join(_EVAL_MODES)}, got {mode!r}")
    if top_k <= 0:
        raise BadInput(f"--top-k must be > 0, got {top_k}")
    questions = load_queries(queries, split=split, limit=limit)
    with _library() as library:
        options = search_options(library.settings, top_k=top_k, mode=mode)
        opened = [library.get(name) for name in _split_names(kbs)]
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
        _print_json(
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


chat_cli.register(app, eval_app, _split_names, search_options, _print_json)


# -- kbchat serve and its API keys -------------------------------------------------------

keys_app = typer.Typer(help="API keys of `kbchat serve` (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [server.host].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [server.port].")] = None,
    sample: Annotated[bool, typer.Option(help="Build the sample KB if there is none.")] = True,
) -> None:
    """Serve the web UI, the REST API and the OpenAI-compatible API in one process."""
    import uvicorn

    from kbchat.server import create_app

    given = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**({"server": given} if given else {}))
    application = create_app(settings, seed_sample=sample)
    bind = settings.server.host
    url = f"http://{f'[{bind}]' if ':' in bind else bind}:{settings.server.port}"
    err.print(
        f"kbchat serving {url}/  (API docs {url}/docs, OpenAI API {url}/v1); Ctrl-C stops",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    uvicorn.run(
        application,
        host=bind,
        port=settings.server.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who or what uses the key.")],
    kb: Annotated[list[str] | None, typer.Option(help="Knowledge base (repeat; * = all).")] = None,
    role: Annotated[str, typer.Option(help="read, write or admin.")] = "read",
) -> None:
    """Create an API key and print it (only this once: store it now)."""
    from kbchat.server.auth import add_key, keys_path

    path = keys_path(load_settings())
    key = add_key(path, name, {target: role for target in kb or ["*"]})
    out.print(key, markup=False, highlight=False)
    err.print(f"key {name!r} saved (hashed) in {path}; it is shown only now", markup=False)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List API keys by name with their permissions (keys themselves are never stored)."""
    from kbchat.server.auth import describe_keys, keys_path

    rows = describe_keys(keys_path(load_settings()))
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        perms = ", ".join(f"{kb}: {role}" for kb, role in row["permissions"].items())
        out.print(f"{row['name']}  ({perms})", markup=False, highlight=False)


@keys_app.command("rm")
def keys_rm(name: str) -> None:
    """Delete an API key; a running server stops accepting it at once."""
    from kbchat.server.auth import keys_path, remove_key

    remove_key(keys_path(load_settings()), name)
    out.print(f"removed key {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: kbchat errors become one line on stderr and exit code 1."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="kbchat")
    except KbchatError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        sys.exit(1)
