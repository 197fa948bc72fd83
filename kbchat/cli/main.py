"""The kbchat command line: its root (logging, plugins) and its commands, each imported when used.

A command's module (``kbchat.cli.kb``, ``chat``, ``serve`` ...) holds thin wrappers that parse,
build services, call and print; ``COMMANDS`` names it and the one line ``kbchat --help``
shows, so that listing the commands imports none of them (``kbchat.cli.lazy``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from kbchat.cli.help_text import plain_params
from kbchat.cli.lazy import Lazy, LazyGroup
from kbchat.errors import KbchatError

COMMANDS: dict[str, Lazy] = {
    "doctor": Lazy(
        "kbchat.cli.doctor:doctor",
        "Check what is installed and usable: packages, models, data directory, config.",
    ),
    "demo": Lazy(
        "kbchat.cli.doctor:demo",
        "Build the sample knowledge base (kbchat's own docs) and search it.",
    ),
    "ask": Lazy("kbchat.cli.chat:ask", "Ask one question; the answer streams, then its sources."),
    "chat": Lazy(
        "kbchat.cli.chat:chat",
        "Interactive chat with history: /kb NAME|off, /file PATH, /agent \\[off], /model NAME, "
        "/reset.",
    ),
    "summarize": Lazy(
        "kbchat.cli.summarize:summarize_command",
        "Summarise files of a knowledge base (streamed; kept until the file changes).",
    ),
    "mcp": Lazy(
        "kbchat.cli.serve:mcp",
        "Serve your knowledge bases to MCP clients (editors, desktop assistants) over stdio.",
    ),
    "serve": Lazy(
        "kbchat.cli.serve:serve",
        "Serve the web UI, the REST API and the OpenAI-compatible API in one process.",
    ),
    "worker": Lazy(
        "kbchat.cli.serve:worker",
        "Run write jobs (uploads, syncs, rebuilds) queued in the catalog by any server.",
    ),
    "kb": Lazy("kbchat.cli.kb:kb_app", "Create and manage knowledge bases."),
    "models": Lazy(
        "kbchat.cli.models:models_app",
        "Chat models: list (size, quantisation, context, memory), add, rm, default, pull.",
    ),
    "eval": Lazy(
        "kbchat.cli.eval:eval_app", "Measure retrieval and answer quality on a question set."
    ),
    "feedback": Lazy(
        "kbchat.cli.feedback:feedback_app",
        "Ratings (thumbs up/down) given to answers in the web page.",
    ),
    "keys": Lazy("kbchat.cli.keys:keys_app", "API keys of `kbchat serve` (stored hashed)."),
}
"""Every top-level command in the order ``kbchat --help`` lists them, with its summary."""


class KbchatGroup(LazyGroup):
    """The ``kbchat`` group: ``COMMANDS``, each imported when it runs."""

    entries = COMMANDS


app = typer.Typer(
    cls=KbchatGroup,
    help="Ask questions about your own documents, with models you run yourself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: kbchat errors become one line on stderr and exit code 1."""
    command = typer.main.get_command(app)
    plain_params(command)  # the root's options; each command's as it is loaded
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="kbchat")
    except KbchatError as exc:
        from kbchat.cli.base import err

        err.print(f"error: {exc}", style="red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
