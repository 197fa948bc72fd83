"""``kbchat models``: list, add, remove and choose chat models; pull a GGUF from a model hub.

Changes are written to kbchat.toml (comments kept) and checked before they are saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kbchat.cli.base import JsonOpt, err, out, print_json
from kbchat.errors import BadInput, NotFound

if TYPE_CHECKING:
    from tomlkit.toml_document import TOMLDocument

    from kbchat.config import Settings
    from kbchat.config_file import Edit
    from kbchat.llm.inventory import ModelEntry

models_app = typer.Typer(
    help="Chat models: list (size, quantisation, context, memory), add, rm, default, pull.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The model's name for clients.")]


@models_app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """The configured models, and the embedded models you can install."""
    from kbchat.config import load_settings
    from kbchat.llm.inventory import embedded_options, model_entries
    from kbchat.shapes.system import model_info

    settings = load_settings()
    entries = model_entries(settings)
    if as_json:
        print_json([model_info(entry, public=False) for entry in entries])
        return
    _print_table(entries)
    for option in embedded_options(settings):
        if option.configured_as:
            continue
        state = "installed" if option.installed else "not installed"
        err.print(
            f"also available: {option.key} ({_size(option.file_bytes)}, {state}): {option.install}",
            markup=False,
            highlight=False,
        )


def _print_table(entries: list[ModelEntry]) -> None:
    from rich.table import Column, Table

    # The name and the source are what a user types or looks for: folded, never cut to "…".
    table = Table(
        Column("name", overflow="fold", min_width=max((len(e.name) for e in entries), default=4)),
        "status",
        Column("source", overflow="fold"),
        Column("size", no_wrap=True),
        "quant",
        "context",
        "memory (est.)",
    )
    for entry in entries:
        trained = f" of {entry.trained_context}" if entry.trained_context else ""
        table.add_row(
            entry.name + ("\n(default)" if entry.default else ""),
            entry.status + (f": {entry.hint}" if entry.hint else ""),
            entry.source,
            _size(entry.file_bytes),
            entry.quantisation or "—",
            f"{entry.n_ctx}{trained}",
            _size(entry.memory_bytes)
            + (f" ({entry.parallel} slots)" if entry.memory_bytes else ""),
        )
    out.print(table)


def _size(count: int | None) -> str:
    from kbchat.llm.gguf_info import human_bytes

    return "—" if count is None else human_bytes(count)


@models_app.command("add")
def add_model(
    name: NameArg,
    path: Annotated[
        Path | None, typer.Argument(help="A local GGUF chat model.", show_default=False)
    ] = None,
    embedded: Annotated[
        str | None,
        typer.Option(metavar="KEY", help="An embedded model instead of a file (see `list`)."),
    ] = None,
    n_ctx: Annotated[int | None, typer.Option(help="Context window in tokens.")] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default.")] = False,
) -> None:
    """Add a chat model run by the embedded llama.cpp: a GGUF file, or --embedded KEY."""
    from kbchat.config import load_settings
    from kbchat.llm.assemble import KNOWN_MODELS
    from kbchat.llm.inventory import check_gguf

    if (path is None) == (embedded is None):
        raise BadInput("give a GGUF file (kbchat models add NAME PATH) or --embedded KEY")
    settings = load_settings()
    if name in settings.models:
        raise BadInput(f"a model named {name!r} exists already; `kbchat models rm {name}` first")
    values: dict[str, object] = {"backend": "llamacpp"}
    if path is not None:
        info = check_gguf(path)
        values["path"] = str(path.expanduser().resolve())
        err.print(
            f"{info.name or path.name}: {info.quantisation or '?'}, "
            f"{info.parameters / 1e9:.2f}B parameters, trained context {info.context_length}",
            markup=False,
        )
    elif embedded not in KNOWN_MODELS:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise NotFound(f"unknown embedded model {embedded!r}; known: {known}")
    else:
        values["model"] = embedded
    if n_ctx is not None:
        values["n_ctx"] = n_ctx
    _save_model(settings, name, values, default=default)


def _save_model(settings: Settings, name: str, values: dict[str, object], *, default: bool) -> None:
    from kbchat.config_file import config_path
    from kbchat.llm.configure import save_model

    save_model(settings, name, values, default=default)
    chosen = " (the default)" if default else ""
    err.print(f"added model {name!r}{chosen} to {config_path()}", markup=False)


def _changed(edit: Edit) -> Path:
    from kbchat.config_file import change_config, config_path

    change_config(edit)
    return config_path()


@models_app.command("rm")
def remove_model(name: NameArg) -> None:
    """Remove a model from kbchat.toml (its file stays where it is)."""
    from kbchat.config import load_settings
    from kbchat.llm.configure import keep_configured

    settings = load_settings()
    _known(settings, name)
    if name == settings.default_model:
        raise BadInput(
            f"{name!r} is the default model; choose another first: kbchat models default OTHER"
        )

    def edit(document: TOMLDocument) -> None:
        keep_configured(document, settings)
        del document["models"][name]

    path = _changed(edit)
    err.print(f"removed model {name!r} from {path}", markup=False)


@models_app.command("default")
def default_model(name: NameArg) -> None:
    """Make NAME the model used when a request names none."""
    from kbchat.config import load_settings

    settings = load_settings()
    _known(settings, name)

    def edit(document: TOMLDocument) -> None:
        document["default_model"] = name

    path = _changed(edit)
    err.print(f"default model: {name} (saved in {path})", markup=False)


def _known(settings: Settings, name: str) -> None:
    if name not in settings.models:
        known = ", ".join(sorted(settings.models))
        raise NotFound(f"no model named {name!r}; configured: {known}")


@models_app.command("pull")
def pull_model(
    reference: Annotated[
        str,
        typer.Argument(metavar="REPO[:FILE]", help="Hub repository and GGUF file (OWNER/REPO)."),
    ],
    source: Annotated[
        str,
        typer.Option(
            metavar="HUB",
            help="huggingface (HF_ENDPOINT for a mirror) or modelscope (MODELSCOPE_ENDPOINT).",
        ),
    ] = "huggingface",
    name: Annotated[
        str | None, typer.Option(help="Its name for clients (default: the file's stem).")
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(help="Branch, tag or commit (default: main; master on ModelScope)."),
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default.")] = False,
) -> None:
    """Download a GGUF model from Hugging Face or ModelScope (or a mirror) and add it.

    An interrupted pull continues where it stopped; the file's sha256 is checked against
    the hub's before it is used.
    """
    from kbchat.config import load_settings
    from kbchat.llm.inventory import check_gguf
    from kbchat.llm.pull import PULL_FOLDERS, SOURCES, pull_gguf

    if source not in SOURCES:
        raise BadInput(f"--source must be {' or '.join(SOURCES)}, got {source!r}")
    settings = load_settings()
    # huggingface_hub draws its own progress bar
    shown: AbstractContextManager[Callable[[int, int], None] | None] = (
        _progress_bar() if source == "modelscope" else nullcontext(None)
    )
    with shown as progress:
        path = pull_gguf(
            reference,
            settings.models_dir / PULL_FOLDERS[source],
            source=source,
            revision=revision,
            progress=progress,
        )
    check_gguf(path)
    model_name = name or path.stem.lower()
    if model_name in settings.models:
        err.print(f"{path} is ready; model {model_name!r} exists already", markup=False)
        return
    err.print(f"downloaded and checked {path}", markup=False)
    _save_model(settings, model_name, {"backend": "llamacpp", "path": str(path)}, default=default)


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, updated by the callback this yields."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=err
    ) as bar:
        task = bar.add_task("downloading", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
