"""Settings: defaults < kbchat.toml < KBCHAT_* environment < explicit overrides.

Built once at the edge (CLI, server start-up) by ``load_settings`` and passed down;
nothing else in kbchat reads configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kbchat.errors import ConfigError

DEFAULT_HOME = Path("~/.kbchat")


class EmbedderSettings(BaseModel):
    """Which embedder builds new knowledge bases, and how to reach it."""

    model_config = {"extra": "forbid"}

    backend: str = Field(
        "e5+use",
        description=(
            "Registered embedder name (use, e5, openai, hash), or several joined by '+': the "
            "first ranks passages in the question's language, all rank the others."
        ),
    )
    model: str | None = Field(None, description="Model name (remote) or local model path.")
    base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server.")
    api_key: SecretStr | None = Field(None, description="API key for the remote server.")
    batch_size: int = Field(32, gt=0, description="Texts embedded per call.")
    timeout_s: float = Field(60.0, gt=0, description="Remote request timeout in seconds.")
    threads: int | None = Field(None, gt=0, description="CPU threads for local models.")
    max_retries: int = Field(2, ge=0, description="Remote: retries on connect errors, 5xx, 429.")
    query_prefix: str = Field("", description="Remote: query prefix (e5 via vLLM: 'query: ').")
    passage_prefix: str = Field("", description="Remote: prefix for passages ('passage: ').")
    send_input_type: bool = Field(False, description="Remote: send input_type query/passage.")


class IngestSettings(BaseModel):
    """Defaults for new knowledge bases and limits on what ingestion accepts."""

    model_config = {"extra": "forbid"}

    chunk_size: int = Field(400, gt=20, description="Target chunk length in characters.")
    chunk_overlap: int = Field(60, ge=0, description="Characters repeated between neighbours.")
    max_file_mb: float = Field(100.0, gt=0, description="Files larger than this are refused.")
    max_unpacked_mb: float = Field(
        500.0, gt=0, description="Refuse archives (docx/xlsx/pptx/epub) that unpack beyond this."
    )
    ocr: bool = Field(True, description="OCR images and pdf pages without a text layer.")
    max_chunks_per_file: int = Field(
        10_000,
        gt=0,
        description=(
            "Refuse a file that splits into more distinct chunks than this (about 4 million "
            "characters at chunk_size 400; identical chunks count once)."
        ),
    )
    exclude: list[str] = Field(
        default_factory=lambda: [".*", "~$*", "*.tmp", "__pycache__"],
        description="Glob patterns (file or folder names) skipped when adding folders.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> IngestSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        return self


class RetrievalSettings(BaseModel):
    """Defaults for searches; every one can be overridden per request."""

    model_config = {"extra": "forbid"}

    mode: str = Field("hybrid", description="hybrid, dense or bm25.")
    threshold: float = Field(0.1, ge=0, le=1, description="Minimum relevance in [0, 1].")
    fusion: str = Field("weighted", description="weighted (normalised scores) or rrf.")
    dense_weight: float = Field(0.6, ge=0, le=1, description="Weight of dense vs BM25 scores.")
    second_weight: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Composite embedders (e5+use): weight of the second model, same language.",
    )
    second_weight_cross: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Composite embedders: weight of the second model for a passage in another "
        "language than the question.",
    )
    language_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="A passage in another language than the question ranks below a "
        "same-language one whose dense relevance is at most this much lower (0: off).",
    )
    candidates: int = Field(50, gt=0, description="Candidates taken from each retriever.")


class RerankSettings(BaseModel):
    """The optional cross-encoder reranker (off: no reranker weights ship offline)."""

    model_config = {"extra": "forbid"}

    backend: str = Field("none", description="none, onnx (local folder) or remote (/v1/rerank).")
    path: Path | None = Field(None, description="onnx: folder with model.onnx + tokenizer.json.")
    base_url: str | None = Field(
        None, description="remote: base URL, e.g. http://127.0.0.1:9997/v1."
    )
    model: str | None = Field(None, description="remote: the reranker's model name.")
    api_key: SecretStr | None = Field(None, description="remote: API key.")
    threshold: float = Field(0.0, ge=0, le=1, description="Drop reranked hits scoring below this.")


class ChatSettings(BaseModel):
    """How answers are produced."""

    model_config = {"extra": "forbid"}

    top_k: int = Field(
        5, ge=1, le=50, description="Most sources for one answer (context_tokens permitting)."
    )
    no_hit: str = Field("refuse", description="refuse, fallback (labelled) or message.")
    no_hit_message: str | None = Field(None, description="The fixed reply for no_hit=message.")
    temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(512, gt=0, description="Most tokens in one answer.")
    history_tokens: int = Field(1024, ge=0, description="Token budget for remembered turns.")
    rewrite: bool = Field(True, description="Rewrite follow-up questions before retrieval.")
    verify: bool = Field(
        True,
        description="Decline answers the sources do not support: a named item no source "
        "holds, or an answer whose claims are not in the sources (see README, Trust).",
    )
    min_support: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Share of an answer's new words (not in the question) the sources must "
        "contain: invented answers scored 0 on the dev sets, paraphrased how-to answers 0.43+.",
    )
    min_score: float = Field(
        0.45,
        ge=0,
        le=1,
        description="Answer only when the best passage (in the question's language) is at "
        "least this relevant: a higher bar than retrieval.threshold, which filters hits.",
    )
    min_score_cross: float = Field(
        0.25,
        ge=0,
        le=1,
        description="The same bar when the best passage is in another language than the "
        "question (cross-lingual relevance runs lower).",
    )
    min_coverage: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the question's words the passage supporting the answer must hold.",
    )
    context_tokens: int = Field(
        900, ge=64, description="Most tokens of sources in one prompt (the top_k best fit)."
    )
    source_ratio: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Skip sources scoring below this share of the best one (0: keep top_k).",
    )


class FileChatSettings(BaseModel):
    """Files attached to a conversation (a temporary knowledge base per conversation)."""

    model_config = {"extra": "forbid"}

    ttl_hours: float = Field(
        24.0, gt=0, description="Hours after its last use that a conversation's files are deleted."
    )
    whole_file_tokens: int = Field(
        0,
        ge=0,
        description="Attached files up to this many tokens go whole into the prompt instead of "
        "being searched (0: always search). Default 0: bench/results/file_chat.json, ~1k-token "
        "files, searched 87.5/37.5% vs whole 75/25% (cmrc/hotpot), with half the prompt.",
    )


KeyRole = Literal["read", "write", "admin"]


def _read_all() -> dict[str, KeyRole]:
    return {"*": "read"}


class ApiKeySettings(BaseModel):
    """One API key of the server: stored as the sha256 of the key, never the key itself."""

    model_config = {"extra": "forbid"}

    name: str = Field(..., min_length=1, description="Who or what uses the key.")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the key.")
    permissions: dict[str, KeyRole] = Field(
        default_factory=_read_all,
        description="Knowledge base name (or * for all) -> read, write or admin.",
    )


class ServerSettings(BaseModel):
    """`kbchat serve`: where it listens, who may call it, and how much it accepts."""

    model_config = {"extra": "forbid"}

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(7860, ge=0, le=65535, description="TCP port.")
    auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="auto: API keys required unless bound to loopback; on; off (loopback "
        "only, unless insecure_no_auth).",
    )
    insecure_no_auth: bool = Field(
        False,
        description='Allow auth = "off" on a non-loopback host: anyone who reaches the port '
        "may read, change and delete every knowledge base.",
    )
    api_keys: list[ApiKeySettings] = Field(
        default_factory=list, description="Hashed API keys (also read from keys_file)."
    )
    keys_file: Path | None = Field(
        None, description="JSON file of hashed keys (`kbchat keys add`); default <home>/keys.json."
    )
    max_upload_mb: float = Field(100.0, gt=0, description="Largest uploaded file.")
    max_request_mb: float = Field(500.0, gt=0, description="Largest upload request (all files).")
    max_upload_files: int = Field(100, gt=0, description="Most files in one upload request.")
    max_body_kb: int = Field(1024, gt=0, description="Largest JSON request body.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty: CORS off."
    )
    queue_size: int = Field(
        64, ge=0, description="Most answers waiting for a model's slots; beyond: 429."
    )
    queue_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest estimated wait a request is admitted with; beyond: 429 and "
        "Retry-After. An admitted request is never failed for waiting.",
    )
    sync_folders: list[Path] = Field(
        default_factory=list, description="Server-side folders a sync request may name."
    )


class ModelSettings(BaseModel):
    """One chat model: the embedded llama.cpp runtime or an OpenAI-compatible server."""

    model_config = {"extra": "forbid"}

    backend: str = Field("llamacpp", description="Registered chat model backend: llamacpp, openai.")
    path: Path | None = Field(
        None, description="GGUF file (llamacpp); default: the assembled embedded model."
    )
    model: str | None = Field(None, description="Model name on the remote server (openai).")
    base_url: str | None = Field(None, description="Base URL, e.g. http://127.0.0.1:8000/v1.")
    api_key: SecretStr | None = Field(None, description="API key for the remote server.")
    n_ctx: int = Field(4096, gt=256, description="Context window in tokens.")
    threads: int | None = Field(None, gt=0, description="CPU threads (llamacpp).")
    timeout_s: float = Field(120.0, gt=0, description="Remote request timeout in seconds.")
    max_retries: int = Field(2, ge=0, description="Retries on connection errors and 5xx/429.")
    parallel: int = Field(
        4,
        gt=0,
        le=64,
        description="Answers generated at once: llama.cpp parallel slots (continuous batching; "
        "each slot keeps n_ctx tokens) or concurrent requests to the remote server. More "
        "wait in the server's queue.",
    )


def _default_models() -> dict[str, ModelSettings]:
    return {"qwen2.5-0.5b": ModelSettings()}


class Settings(BaseSettings):
    """Everything configurable in kbchat."""

    model_config = SettingsConfigDict(
        env_prefix="KBCHAT_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(DEFAULT_HOME, description="Data directory (KBCHAT_HOME).")
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    files: FileChatSettings = Field(default_factory=FileChatSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: dict[str, ModelSettings] = Field(
        default_factory=_default_models, description="Chat models by the name clients use."
    )
    default_model: str = Field("qwen2.5-0.5b", description="Model used when none is named.")
    model_cache: Path | None = Field(
        None, description="Where the embedded GGUF is assembled (default: <home>/models)."
    )

    @model_validator(mode="after")
    def _expand_home(self) -> Settings:
        self.home = self.home.expanduser()
        return self

    @property
    def models_dir(self) -> Path:
        return (self.model_cache or self.home / "models").expanduser()

    @property
    def catalog_url(self) -> str:
        return f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def kb_root(self) -> Path:
        return self.home / "kb"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def _config_file() -> Path | None:
    explicit = os.environ.get("KBCHAT_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"KBCHAT_CONFIG points at {path}, which is not a file")
        return path
    home = Path(os.environ.get("KBCHAT_HOME") or DEFAULT_HOME).expanduser()
    candidate = home / "kbchat.toml"
    return candidate if candidate.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from defaults, kbchat.toml, KBCHAT_* env and ``overrides``.

    Raises:
        ConfigError: a value is invalid; the message names the setting and the source file.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        where = _config_file()
        source = f" (config file {where} or KBCHAT_* environment)" if where else ""
        source = source or " (KBCHAT_* environment)"
        raise ConfigError(f"invalid settings{source}: {problems}") from None
