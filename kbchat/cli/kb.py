"""`kbchat kb ...`: create, list, inspect, fill, search and drop knowledge bases."""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.cells import cell_len
from rich.markup import escape

from kbchat.cli.base import (
    JsonOpt,
    build_services,
    err,
    open_library,
    out,
    print_json,
    progress_bar,
    split_names,
)
from kbchat.cli.flags import flag
from kbchat.errors import BadInput
from kbchat.options import ChunkOverlap, ChunkSize, SearchMode, SearchModeName, Threshold, TopK

if TYPE_CHECKING:
    from kbchat.kb.jobs import Job
    from kbchat.kb.knowledge_base import FileOutcome, KnowledgeBase
    from kbchat.types import Hit

kb_app = typer.Typer(help="Create and manage knowledge bases.", no_args_is_help=True)

EXIT_FILES_FAILED = 3
EXIT_INTERRUPTED = 130
"""A write stopped by Ctrl-C (128 + SIGINT, as shells report it)."""

IncludeOpt = Annotated[
    list[str] | None, typer.Option("--include", "-i", help="Only files matching this glob.")
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", "-x", help="Skip files or folders matching this glob."),
]
FollowSymlinksOpt = Annotated[
    bool,
    typer.Option(
        "--follow-symlinks",
        "-L",
        help="Follow symbolic links that lead out of the folder (skipped by default).",
    ),
]


def run_write(kb: KnowledgeBase, action: str, as_json: bool, **kwargs: Any) -> None:
    """Run a write (add, remove, sync, rebuild) with a progress bar; exit 3 if a file failed.

    Ctrl-C stops it cleanly (files finished stay, the others are left as they were) and
    exits 130 after saying what was kept; a second Ctrl-C quits at once.
    """
    from kbchat.cli.listener import RichListener

    progress = progress_bar()
    with progress:
        listener = RichListener(progress)
        with listener.stop_on_interrupt():
            outcomes: list[FileOutcome] = getattr(kb, action)(listener=listener, **kwargs)
    _report_outcomes(outcomes, as_json, shown=listener.shown, rebuilt=action == "rebuild")
    if listener.reason is not None:
        left = sum(o.status == "cancelled" for o in outcomes)
        err.print(
            f"stopped: {len(outcomes) - left} file(s) finished and kept in {kb.name!r}; "
            f"{left} left as they were (run the same command again to finish)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(EXIT_FILES_FAILED)


def _report_outcomes(
    outcomes: Sequence[FileOutcome],
    as_json: bool,
    shown: Collection[str] = frozenset(),
    *,
    rebuilt: bool = False,
) -> None:
    """Skips, notes and the summary line; failures already shown as they happened
    (``shown``, by file name) are not repeated. The summary counts the chunks embedded: new
    ones (text a file did not have before) and the others re-embedded, or for a rebuild
    (``rebuilt``: every chunk re-embedded) all of them."""
    if as_json:
        from kbchat.shapes.kb import outcome_info

        print_json([outcome_info(o) for o in outcomes])
        return
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.status in ("failed", "skipped") and outcome.name not in shown:
            err.print(f"{outcome.status}: {outcome.error}", markup=False, highlight=False)
        for note in outcome.notes:
            err.print(f"note: {note}", markup=False, highlight=False)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no files"
    embedded = _chunks_embedded(outcomes, rebuilt=rebuilt)
    out.print(f"{summary}; {embedded}" if embedded else summary)


def _chunks_embedded(outcomes: Sequence[FileOutcome], *, rebuilt: bool) -> str:
    """``3 new chunks, 9 re-embedded``; a rebuild's ``12 chunks re-embedded``; ``""`` when
    no file was indexed (a removal, or only unchanged and failed files)."""
    indexed = [o for o in outcomes if o.status == "indexed"]
    if not indexed and not rebuilt:
        return ""
    embedded = sum(o.chunks for o in indexed)
    new = sum(o.new_chunks for o in indexed)
    if rebuilt:
        return f"{embedded} chunk{'' if embedded == 1 else 's'} re-embedded"
    text = f"{new} new chunk{'' if new == 1 else 's'}"
    return text + (f", {embedded - new} re-embedded" if embedded > new else "")


@kb_app.command("create")
def kb_create(
    name: str,
    embedder: Annotated[
        str | None,
        typer.Option(help="Embedder: e5+use (default), e5, use, openai (see embedder.backend)."),
    ] = None,
    chunk_size: Annotated[int | None, flag(ChunkSize, default="ingest.chunk_size")] = None,
    chunk_overlap: Annotated[int | None, flag(ChunkOverlap, default="ingest.chunk_overlap")] = None,
    description: Annotated[str, typer.Option(help="What this knowledge base holds.")] = "",
    store: Annotated[
        str | None,
        typer.Option(help="Vector store backend (default: setting store.backend, faiss)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an empty knowledge base."""
    from kbchat.shapes.kb import kb_settings

    with open_library(indexes=False) as library:
        record = library.create(
            name,
            embedder=embedder,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            description=description,
            store=store,
        )
        if as_json:
            print_json(kb_settings(record))
        else:
            out.print(
                f"created knowledge base {record.name!r} "
                f"(embedder {record.embedder}, store {record.store})"
            )


@kb_app.command("list")
def kb_list(as_json: JsonOpt = False) -> None:
    """List knowledge bases."""
    from rich.table import Column, Table

    from kbchat.shapes.kb import kb_listing

    with open_library(indexes=False) as library:
        rows = [kb_listing(r, library.catalog.kb_stats(r.id)) for r in library.records()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no knowledge bases yet: create one with `kbchat kb create NAME`")
        return
    # What a user types or compares (name, counts, embedder, store) is folded, never cut to
    # "…"; only the description gives way. The embedder is named as `--embedder` takes it
    # (e5+use); `kb info` and --json give its full name with model versions.
    table = Table(
        Column("name", overflow="fold", min_width=_name_width(r.name for r in rows)),
        Column("files", justify="right", no_wrap=True),
        Column("chunks", justify="right", no_wrap=True),
        Column("embedder", overflow="fold"),
        Column("store", no_wrap=True),
        Column("description", overflow="ellipsis", ratio=1),
    )
    for row in rows:
        table.add_row(
            row.name,
            str(row.files),
            str(row.chunks),
            _embedder_key(row.embedder_spec),
            row.store,
            row.description,
        )
    out.print(table)


def _name_width(names: Iterable[str]) -> int:
    """A name column wide enough for most names whole, leaving room for the others at 80."""
    return min(max((cell_len(name) for name in names), default=4), 16)


def _embedder_key(spec: dict[str, Any]) -> str:
    """The embedder as `--embedder` names it, with its model when the spec sets one."""
    backend = str(spec.get("backend", "?"))
    return f"{backend}:{spec['model']}" if spec.get("model") else backend


@kb_app.command("info")
def kb_info(name: str, as_json: JsonOpt = False) -> None:
    """Show a knowledge base's settings and file counts."""
    from kbchat.shapes.kb import kb_listing

    with open_library(indexes=False) as library:
        record = library.catalog.get_kb(name)
        info = kb_listing(record, library.catalog.kb_stats(record.id))
    if as_json:
        print_json(info)
        return
    for key, value in info.model_dump().items():
        out.print(f"[bold]{key}[/bold]: {_readable(key, value)}", highlight=False)


def _readable(key: str, value: Any) -> str:
    """A ``kb info`` value for people: times in local ISO form, mappings inline."""
    import datetime as dt
    import json

    if key.endswith("_at") and isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds")
    if key == "status" and isinstance(value, dict):
        return ", ".join(f"{n} {status}" for status, n in sorted(value.items())) or "no files"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return escape(str(value)) if value != "" else "-"


@kb_app.command("drop")
def kb_drop(
    name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False
) -> None:
    """Delete a knowledge base and its indexes (your source files are not touched)."""
    with open_library(indexes=False) as library:
        library.catalog.get_kb(name)
        if not yes and not sys.stdin.isatty():
            raise BadInput(
                f"kb drop asks before deleting {name!r}, and there is no terminal to ask on: "
                f"add --yes (kbchat kb drop {name} --yes)"
            )
        if not yes and not typer.confirm(f"Drop knowledge base {name!r}?"):
            raise typer.Exit(1)
        library.drop(name)
    out.print(f"dropped knowledge base {name!r}")


@kb_app.command("migrate")
def kb_migrate(
    name: str,
    to: Annotated[
        str, typer.Option("--to", help="Vector store backend to move to: faiss, pgvector, milvus.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Move a knowledge base's vectors to another store, without re-embedding.

    The vectors are copied from the catalog; the knowledge base switches only after the copy
    holds the same ids and answers sample searches identically, and is left as it was if
    anything fails. The new store's URL comes from the settings (store.urls.<backend>, else
    store.url).
    """
    from kbchat.kb.migrate import migrate
    from kbchat.shapes.kb import migration_info

    stages = {"copy": "copying vectors", "verify": "comparing searches"}
    with open_library() as library, progress_bar() as progress:
        tasks: dict[str, Any] = {}

        def show(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stages.get(stage, stage), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        migration = migrate(library, name, to, progress=show)
    if as_json:
        print_json(migration_info(migration))
        return
    out.print(
        f"migrated knowledge base {name!r} from {migration.source} to {migration.target}: "
        f"{migration.vectors} vectors copied, {migration.queries_compared} sample searches "
        f"identical ({migration.seconds:.1f} s)",
        markup=False,
        highlight=False,
    )
    if migration.note:
        err.print(f"note: {migration.note}", markup=False, highlight=False)


@kb_app.command("add")
def kb_add(
    name: str,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    force: Annotated[bool, typer.Option(help="Re-index files even if unchanged.")] = False,
    follow_symlinks: FollowSymlinksOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add or update files. Exit code 3 if some files failed (the rest are indexed).

    A file named on the command line that no loader reads is an error (exit 1, nothing is
    added); in a folder such files are listed as skipped.
    """
    refuse_unsupported(paths)
    with open_library() as library:
        kb = library.get(name)
        excludes = [*library.settings.ingest.exclude, *(exclude or [])]
        run_write(
            kb,
            "add",
            as_json,
            paths=paths,
            include=include or [],
            exclude=excludes,
            force=force,
            follow_symlinks=follow_symlinks,
        )


def refuse_unsupported(paths: Sequence[Path]) -> None:
    """Refuse files named on the command line whose type no loader reads (folders are
    walked, and their unsupported files skipped, as usual).

    Raises:
        BadInput: naming each such file and the supported types.
    """
    from kbchat.ingest.loaders import is_supported, supported_extensions

    named = [path for path in paths if path.is_file() and not is_supported(path)]
    if not named:
        return
    listed = ", ".join(f"{path} ({path.suffix or 'no extension'})" for path in named)
    raise BadInput(
        f"unsupported file type: {listed}; nothing was added. Supported types: "
        f"{', '.join(sorted(supported_extensions()))}"
    )


@kb_app.command("files")
def kb_files(name: str, as_json: JsonOpt = False) -> None:
    """List a knowledge base's files with their status."""
    from rich.table import Column, Table

    from kbchat.chat.summaries import SummaryStore
    from kbchat.llm.gguf_info import human_bytes
    from kbchat.shapes.kb import file_listing, known_size

    with open_library() as library:
        kb = library.get(name)
        records = kb.files()
        kept = SummaryStore(library.catalog.engine).for_files(kb.record.id, records)
    summaries = {file: summary.text for file, summary in kept.items()}
    if as_json:
        print_json([file_listing(r, summaries.get(r.name)) for r in records])
        return
    # The name and the error are read whole (folded); the summary gives way first.
    table = Table(
        Column("name", overflow="fold", min_width=_name_width(r.name for r in records)),
        Column("status", no_wrap=True),
        Column("chunks", justify="right", no_wrap=True),
        Column("size", justify="right", no_wrap=True),
        Column("error", overflow="fold"),
        Column("summary", overflow="ellipsis", ratio=1),
    )
    for r in records:
        summary = summaries.get(r.name, "")
        short = summary if len(summary) <= 80 else summary[:79] + "…"
        error = (r.error or "").removeprefix(f"{r.name}: ")  # the name is in its own column
        size = known_size(r)
        shown = "" if size is None else human_bytes(size)  # unknown: no false 0
        table.add_row(r.name, r.status, str(r.chunks), shown, error, short)
    out.print(table)


@kb_app.command("rm")
def kb_rm(
    name: str,
    files: Annotated[list[str], typer.Argument(help="File names as `kb files` shows them.")],
    as_json: JsonOpt = False,
) -> None:
    """Remove files (and all their chunks) from a knowledge base.

    A name the knowledge base does not hold is an error (exit 1) and nothing is removed.
    """
    with open_library() as library:
        kb = library.get(name)
        held = {record.name for record in kb.files()}
        unknown = [f for f in files if f not in held]
        if unknown:
            raise BadInput(
                f"not in knowledge base {name!r}: {', '.join(unknown)} "
                f"(`kbchat kb files {name}` lists its files); nothing was removed"
            )
        run_write(kb, "remove", as_json, names=files)


@kb_app.command("sync")
def kb_sync(
    name: str,
    folder: Path,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    follow_symlinks: FollowSymlinksOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Make the knowledge base match a folder: add new, re-index changed, remove missing."""
    with open_library() as library:
        excludes = [*library.settings.ingest.exclude, *(exclude or [])]
        run_write(
            library.get(name),
            "sync",
            as_json,
            folder=folder,
            include=include or [],
            exclude=excludes,
            follow_symlinks=follow_symlinks,
        )


@kb_app.command("rebuild")
def kb_rebuild(name: str, as_json: JsonOpt = False) -> None:
    """Rebuild the indexes and re-read every file from its source."""
    with open_library() as library:
        run_write(library.get(name), "rebuild", as_json)


@kb_app.command("jobs")
def kb_jobs(
    name: Annotated[str | None, typer.Argument(help="Only this knowledge base's jobs.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent write jobs queued by servers (uploads, syncs, rebuilds), newest first."""
    from rich.table import Column, Table

    from kbchat.kb.jobs import JobQueue
    from kbchat.shapes.kb import job_info

    with open_library(indexes=False) as library:
        if name is not None:
            library.catalog.get_kb(name)  # NotFound for a name no knowledge base has
        jobs = JobQueue(library.catalog).list_jobs(name, limit=50)
    if as_json:
        print_json([job_info(job) for job in jobs])
        return
    if not jobs:
        # `kb add` runs in the command itself; only servers (upload, sync, rebuild) queue jobs
        where = f" for knowledge base {name!r}" if name is not None else ""
        out.print(f"no jobs{where}: jobs are queued by `kbchat serve` (uploads, syncs, rebuilds)")
        return
    # the id whole, to copy into `kb cancel`
    table = Table(Column("id", no_wrap=True), "kb", "kind", "status", "files", "error")
    for job in jobs:
        table.add_row(job.id, job.kb, job.kind, job.status, files_done(job), job.error or "")
    out.print(table)


def files_done(job: Job) -> str:
    """``done/total`` files, how many are in each status, then the chunks its indexed files
    were written with and those of the files in hand embedded so far:
    ``3/6: 2 indexed, 1 skipped, 3 pending; 12 chunks (+40/96 embedding)``."""
    counts = job.counts()
    shown = ", ".join(f"{counts[status]} {status}" for status in sorted(counts))
    text = f"{job.done}/{job.total}" + (f": {shown}" if shown else "")
    if job.chunks:
        text += f"; {job.chunks} chunk{'' if job.chunks == 1 else 's'}"
    if job.chunks_total is not None:
        text += f" (+{job.chunks_done}/{job.chunks_total} embedding)"
    return text


@kb_app.command("cancel")
def kb_cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id, as `kb jobs` lists it.")],
    wait: Annotated[
        bool, typer.Option(help="Wait until the job has stopped (its file in hand left).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a write job: files not started are left out, the file in hand is abandoned at
    its worker's next embedding batch and left as it was; files already finished stay."""
    from kbchat.kb.cancel import cancel_job
    from kbchat.kb.jobs import JobQueue
    from kbchat.shapes.kb import job_info

    with open_library(indexes=False) as library:
        queue = JobQueue(library.catalog)
        job = cancel_job(library, queue, job_id, "cancelled from the command line")
        if wait and not job.finished:
            job = queue.wait(job_id)
    if as_json:
        print_json(job_info(job))
        return
    counts = job.counts()
    left = counts.get("cancelled", 0)
    if job.finished:
        out.print(
            f"job {job.id} cancelled: {job.done} file(s) finished and kept, {left} left as "
            f"they were ({files_done(job)})"
        )
    else:  # files a worker holds but has not reached are left out as it stops
        waiting = left + counts.get("pending", 0)
        running = counts.get("running", 0)
        out.print(
            f"job {job.id}: cancel requested; {job.done} file(s) finished and kept, "
            f"{waiting} not started are left out, {running} in hand "
            f"{'stops' if running == 1 else 'stop'} at the next embedding batch"
        )


@kb_app.command("search")
def kb_search(
    names: Annotated[str, typer.Argument(metavar="NAME[,NAME...]", help="Knowledge base(s).")],
    query: str,
    top_k: Annotated[int | None, flag(TopK, "--top-k", "-k", default="retrieval.top_k")] = None,
    mode: Annotated[SearchModeName | None, flag(SearchMode, default="retrieval.mode")] = None,
    threshold: Annotated[float | None, flag(Threshold, default="retrieval.threshold")] = None,
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
    from kbchat.config import load_settings
    from kbchat.options import search_options
    from kbchat.retrieve.search import retrieve

    services = build_services(load_settings())
    try:
        kbs = [services.library.get(name) for name in split_names(names)]
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


def _page_range(pages: str | None) -> tuple[int, int] | None:
    if pages is None:
        return None
    first, _, last = pages.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise BadInput(f"--pages must look like 3-7 or 5, got {pages!r}") from None


def print_hits(hits: Sequence[Hit], as_json: bool) -> None:
    """Print search hits as JSON or as a numbered list of passages."""
    from kbchat.shapes.kb import hit_info

    if as_json:
        print_json([hit_info(h) for h in hits])
        return
    if not hits:
        out.print("no matching passages")
    for rank, hit in enumerate(hits, 1):
        where = f" p.{hit.page}" if hit.page else f" [{hit.sheet}]" if hit.sheet else ""
        out.print(f"[bold]{rank}. {hit.file}{where}[/bold]  score {hit.score:.3f}")
        out.print("   " + hit.text[:300].replace("\n", " "))
