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
    """A configured chat model."""

    name: str
    backend: str
    default: bool = Field(description="Used when a request names no model.")


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
