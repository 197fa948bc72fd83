"""The kbchat command line: thin wrappers that parse, build services, call and print."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from kbchat.cli import chat, summarize
from kbchat.cli.base import JsonOpt, err, open_library, out, print_json, progress_bar, split_names
from kbchat.cli.feedback import feedback_app
from kbchat.cli.flags import flag
from kbchat.cli.kb import kb_app, print_hits, run_write
from kbchat.cli.models import models_app
from kbchat.errors import KbchatError
from kbchat.options import SearchMode, SearchModeName, TopK

if TYPE_CHECKING:
    from kbchat.config import Settings

app = typer.Typer(
    help="Ask questions about your own documents, with models you run yourself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(kb_app, name="kb")
app.add_typer(models_app, name="models")


@app.callback()
def configure(
    ctx: typer.Context,
    log_level: Annotated[
        str | None,
        typer.Option(
            envvar="KBCHAT_LOG_LEVEL",
            help="DEBUG, INFO, WARNING, ERROR or CRITICAL "
            "(default: INFO for serve and worker, else WARNING).",
        ),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(envvar="KBCHAT_LOG_FORMAT", help="text, or json (one object a line)."),
    ] = "text",
) -> None:
    """Logging is configured here, once, for every command; then the plugin modules of the
    ``plugins`` setting are loaded (they may register backends any command uses)."""
    from kbchat.config import load_settings
    from kbchat.logging import configure_logging
    from kbchat.registry import load_plugins

    serving = ctx.invoked_subcommand in ("serve", "worker")
    configure_logging(log_level or ("INFO" if serving else "WARNING"), log_format)
    load_plugins(load_settings().plugins)


@app.command("doctor")
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


@app.command("demo")
def demo(
    query: Annotated[list[str] | None, typer.Option(help="Questions to search for.")] = None,
) -> None:
    """Build the sample knowledge base (kbchat's own docs) and search it."""
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


eval_app = typer.Typer(help="Measure retrieval quality on a question set.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(feedback_app, name="feedback")

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
app.command("ask")(chat.ask)
app.command("chat")(chat.chat)
app.command("summarize")(summarize.summarize_command)


# -- kbchat serve and its API keys -------------------------------------------------------

keys_app = typer.Typer(help="API keys of `kbchat serve` (stored hashed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("mcp")
def mcp() -> None:
    """Serve your knowledge bases to MCP clients (editors, desktop assistants) over stdio.

    Tools: list_knowledge_bases, search, ask. Configure the client to run `kbchat mcp`.
    Over HTTP, `kbchat serve` offers the same at /mcp, with API keys.
    """
    from kbchat.app import build
    from kbchat.config import load_settings
    from kbchat.runtime import configure_process
    from kbchat.server.mcp import run_stdio

    configure_process()
    services = build(load_settings())
    try:
        run_stdio(services)
    finally:
        services.close()


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind \\[server.host].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port \\[server.port].")] = None,
    sample: Annotated[bool, typer.Option(help="Build the sample KB if there is none.")] = True,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help='Allow server.auth = "off" on a non-loopback host (refused otherwise): '
            "anyone who reaches the port may read, change and delete every knowledge base "
            "(setting server.insecure_no_auth).",
        ),
    ] = False,
) -> None:
    """Serve the web UI, the REST API and the OpenAI-compatible API in one process.

    On a non-loopback host API keys are required (`kbchat keys add`); server.auth = "off"
    there refuses to start unless --insecure-no-auth is given.
    """
    import uvicorn

    from kbchat.config import load_settings
    from kbchat.logging import redact_also
    from kbchat.server import create_app

    given: dict[str, object] = {
        k: v for k, v in {"host": host, "port": port}.items() if v is not None
    }
    if insecure_no_auth:
        given["insecure_no_auth"] = True
    settings = load_settings(server=given) if given else load_settings()
    redact_also(_secrets(settings))
    check_storage(settings)
    application = create_app(settings, seed_sample=sample, warm_up=True)
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
        log_config=None,  # uvicorn's lines go through kbchat's handler (text or json)
        access_log=False,  # kbchat.server.access_log writes one line per request
        timeout_graceful_shutdown=10,
    )


@app.command("worker")
def worker(
    threads: Annotated[
        int, typer.Option(min=1, max=16, help="Workers in this process (one task each).")
    ] = 1,
) -> None:
    """Run write jobs (uploads, syncs, rebuilds) queued in the catalog by any server.

    Point it at the servers' catalog (catalog.url): each worker claims a task, renews its
    lease while it runs, and a task left by a worker that died is picked up by another after
    the lease runs out (30 s). Ctrl-C finishes the task in hand, then stops. A server started
    with server.workers = 0 only queues jobs, for workers like this one.
    """
    import signal
    import threading

    from kbchat.app import build
    from kbchat.config import load_settings
    from kbchat.kb.jobs import JobQueue
    from kbchat.kb.worker import Worker
    from kbchat.logging import redact_also
    from kbchat.runtime import configure_process

    settings = load_settings()
    redact_also(_secrets(settings))
    check_storage(settings)  # one line if the catalog is unreachable; a warning per store
    configure_process()
    services = build(settings)
    queue = JobQueue(services.library.catalog)
    busy: set[str] = set()
    workers = [Worker(services, queue, busy=busy) for _ in range(threads)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for one in workers:
        one.start()
    err.print(
        f"kbchat worker: {threads} worker(s) on catalog {_shown_url(settings)}; Ctrl-C stops",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        err.print("stopping after the task in hand...", markup=False, highlight=False)
    finally:
        for one in workers:
            one.stop(timeout=120)
        services.close()


def _shown_url(settings: Settings) -> str:
    from kbchat.store.reach import masked_url

    return masked_url(settings.catalog_url)


def check_storage(settings: Settings) -> None:
    """Before serving: the catalog must open, and each vector store server in use should answer.

    Raises:
        BackendError: the catalog database cannot be opened (one line naming it).
    """
    import logging

    from kbchat.doctor import store_checks, stores_in_use
    from kbchat.store.catalog import Catalog

    Catalog(settings.catalog_url).close()
    for check in store_checks(settings, stores_in_use(settings)):
        if not check.ok:  # its knowledge bases answer 502 with this line until it is back
            logging.getLogger("kbchat.serve").warning("%s: %s", check.name, check.detail)


def _secrets(settings: Settings) -> list[str]:
    """The API keys in ``settings`` (chat models, embedder, reranker, server keys)."""
    sections: list[Any] = [*settings.models.values(), settings.embedder, settings.rerank]
    keys = [getattr(section, "api_key", None) for section in sections]
    return [key.get_secret_value() for key in keys if key is not None]


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who or what uses the key.")],
    kb: Annotated[list[str] | None, typer.Option(help="Knowledge base (repeat; * = all).")] = None,
    role: Annotated[str, typer.Option(help="read, write or admin.")] = "read",
) -> None:
    """Create an API key and print it (only this once: store it now)."""
    from kbchat.config import load_settings
    from kbchat.server.auth import add_key, key_store

    store = key_store(load_settings())
    key = add_key(store, name, {target: role for target in kb or ["*"]})
    out.print(key, markup=False, highlight=False)
    err.print(f"key {name!r} saved (hashed) in {store.where}; it is shown only now", markup=False)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List API keys by name with their permissions (keys themselves are never stored)."""
    from kbchat.config import load_settings
    from kbchat.server.auth import describe_keys, key_store

    rows = describe_keys(key_store(load_settings()))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        perms = ", ".join(f"{kb}: {role}" for kb, role in row["permissions"].items())
        out.print(f"{row['name']}  ({perms})", markup=False, highlight=False)


@keys_app.command("rm")
def keys_rm(name: str) -> None:
    """Delete an API key; a running server stops accepting it at once."""
    from kbchat.config import load_settings
    from kbchat.server.auth import key_store, remove_key

    remove_key(key_store(load_settings()), name)
    out.print(f"removed key {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: kbchat errors become one line on stderr and exit code 1."""
    from kbchat.cli.help_text import plain_help

    command = typer.main.get_command(app)
    plain_help(command)
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="kbchat")
    except KbchatError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
