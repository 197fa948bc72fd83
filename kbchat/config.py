"""Settings: defaults < kbchat.toml < KBCHAT_* environment < explicit overrides.

Built once at the edge (CLI, server start-up) by ``load_settings`` and passed down;
nothing else in kbchat reads configuration.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from kbchat.errors import ConfigError
from kbchat.options import (
    AnswerOptions,
    ChunkOverlap,
    ChunkSize,
    RerankThreshold,
    RetrievalOptions,
    TopK,
)

DEFAULT_HOME = Path("~/.kbchat")


class EmbedderSettings(BaseModel):
    """Which embedder builds new knowledge bases, and how to reach it."""

    model_config = {"extra": "forbid"}

    backend: str = Field(
        "e5+use",
        description=(
            "Registered embedder name (use, e5, openai), or several joined by '+': the "
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


class StoreSettings(BaseModel):
    """Where new knowledge bases keep their vectors (each KB remembers its own backend)."""

    model_config = {"extra": "forbid"}

    backend: str = Field(
        "faiss",
        description="Registered vector store backend for new knowledge bases (faiss: files in "
        "the data directory).",
    )
    url: SecretStr | None = Field(
        None, description="Connection URL of a server store (it may hold a password)."
    )
    urls: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Connection URL per backend, in place of url for that backend "
        "([store.urls] pgvector = ..., milvus = ...; KBCHAT_STORE__URLS__MILVUS); an empty "
        "value means none (milvus: Milvus Lite in the knowledge base's folder).",
    )

    def url_for(self, backend: str) -> str | None:
        """The connection URL of ``backend``: ``urls[backend]`` if set, else ``url``."""
        chosen = self.urls.get(backend, self.url)
        value = None if chosen is None else chosen.get_secret_value()
        return value or None


class CatalogSettings(BaseModel):
    """Where the catalog lives: knowledge bases, files, chunks, conversations, summaries, jobs."""

    model_config = {"extra": "forbid"}

    url: SecretStr | None = Field(
        None,
        description="Database URL of the catalog (it may hold a password): unset means SQLite "
        "in <home>/catalog.db; postgresql://user:password@host:5432/db moves everything to "
        "PostgreSQL, shared by every server and worker pointed at it (and the default "
        "store.url).",
    )
    uploads_in_database: bool | None = Field(
        None,
        description="Keep uploaded files' bytes in the catalog so a worker on another machine "
        "can ingest them and any server can serve them; unset: on when the catalog is not "
        "SQLite.",
    )


class IngestSettings(BaseModel):
    """Defaults for new knowledge bases and limits on what ingestion accepts."""

    model_config = {"extra": "forbid"}

    chunk_size: ChunkSize = 400
    chunk_overlap: ChunkOverlap = 60
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
    threshold: RerankThreshold = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettings(AnswerOptions):
    """How answers are produced: every answer's options start from these."""

    top_k: TopK = 5


class SearchProviderSettings(BaseModel):
    """One web search provider."""

    model_config = {"extra": "forbid"}

    kind: Literal["searxng", "duckduckgo", "tavily", "bing", "brave"] = Field(
        description="The search engine."
    )
    url: str | None = Field(
        None, description="Its API address (required for searxng; others have a default)."
    )
    api_key: str | None = Field(None, description="Key (tavily, bing, brave).")


class WebSearchSettings(BaseModel):
    """Web search for the agent's web_search tool and `ask --web`."""

    model_config = {"extra": "forbid"}

    providers: list[SearchProviderSettings] = Field(
        default_factory=list, description="Tried in order; the first that answers wins."
    )
    timeout_s: float = Field(10.0, gt=0, description="Seconds one provider may take.")
    cache_s: float = Field(300.0, ge=0, description="Seconds a query's results are reused.")
    proxy: str | None = Field(None, description="HTTP(S) proxy URL for searches and fetches.")
    max_results: int = Field(8, ge=1, le=50, description="Results asked of a provider.")
    top_k: int = Field(4, ge=1, le=20, description="Best results (by relevance) kept.")
    fetch_pages: bool = Field(
        False, description="Fetch each kept result's page text (slower, fuller answers)."
    )


class FetchSettings(BaseModel):
    """The agent's fetch_url tool (reading a web page)."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(False, description="Let the agent read URLs (off by default).")
    allow_private: bool = Field(
        False,
        description="Allow loopback, private and link-local addresses (refused by default: "
        "a URL in a question must not reach services behind your firewall).",
    )
    max_bytes: int = Field(2_000_000, gt=0, description="Largest page read.")
    max_chars: int = Field(4000, gt=0, description="Characters of page text given the model.")


class McpServerSettings(BaseModel):
    """One MCP server whose tools the agent may use: a command (stdio) or a URL (HTTP)."""

    model_config = {"extra": "forbid"}

    command: list[str] | None = Field(None, description="Program and arguments (stdio).")
    url: str | None = Field(None, description="Streamable HTTP endpoint, e.g. http://host/mcp.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment for the command.")
    headers: dict[str, str] = Field(
        default_factory=dict, description='HTTP headers, e.g. Authorization = "Bearer <key>".'
    )
    timeout_s: float = Field(30.0, gt=0, description="Seconds one listing or call may take.")


class McpSettings(BaseModel):
    """MCP: servers whose tools the agent uses."""

    model_config = {"extra": "forbid"}

    servers: dict[str, McpServerSettings] = Field(
        default_factory=dict, description="Tool servers by name."
    )


class AgentSettings(BaseModel):
    """Agent chat: which tools, how the tool is chosen, and the bounds of one run."""

    model_config = {"extra": "forbid"}

    tools: list[str] = Field(
        default_factory=lambda: [
            "kb_search",
            "calculator",
            "current_time",
            "sheet_sql",
            "summarize_file",
        ],
        description="Tools the built-in agent may use, by registry name.",
    )
    user_tools: dict[str, str] = Field(
        default_factory=dict,
        description='Your own tools: name = "module:attr" (an object with spec, examples, run).',
    )
    router: Literal["auto", "model", "examples"] = Field(
        "auto",
        description="How a tool is chosen: the model (OpenAI tools protocol), or example "
        "questions matched by the embedder (small embedded models); auto picks examples for "
        "llamacpp models and the model for remote ones.",
    )
    max_steps: int = Field(3, ge=1, le=10, description="Tool calls per answer at most.")
    max_seconds: float = Field(120.0, gt=0, description="Wall time of the tool steps at most.")


class AgentProfile(BaseModel):
    """A named agent (``agent:<name>`` in the OpenAI API): its model, tools and knowledge
    bases; what it leaves out comes from ``[agent]``."""

    model_config = {"extra": "forbid"}

    model: str | None = Field(None, description="Model name (default: default_model).")
    tools: list[str] | None = Field(None, description="Tools by name (default: agent.tools).")
    kbs: list[str] = Field(default_factory=list, description="What its search covers.")


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
        default_factory=list,
        description="Hashed API keys (also read from keys_file). Each key's conversations "
        "(/api/chat, the web page) are its own: a script's key never fills another key's "
        "history. The OpenAI-compatible API (/v1) stores no conversation at all.",
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
    workers: int = Field(
        2,
        ge=0,
        le=16,
        description="Workers in the server process running write jobs (uploads, syncs, "
        "rebuilds) from the catalog's job queue; 0: only queue them, for `kbchat worker` "
        "processes to run. Two keep a file chat's attachment from waiting behind a big upload.",
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
    store: StoreSettings = Field(default_factory=StoreSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    retrieval: RetrievalOptions = Field(default_factory=RetrievalOptions)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    files: FileChatSettings = Field(default_factory=FileChatSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    agents: dict[str, AgentProfile] = Field(
        default_factory=dict,
        description="Named agents: [agents.support] model = ..., tools = [...]",
    )
    web_search: WebSearchSettings = Field(default_factory=WebSearchSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: dict[str, ModelSettings] = Field(
        default_factory=_default_models, description="Chat models by the name clients use."
    )
    default_model: str = Field("qwen2.5-0.5b", description="Model used when none is named.")
    model_cache: Path | None = Field(
        None, description="Where the embedded GGUF is assembled (default: <home>/models)."
    )
    plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Python modules whose register() adds backends to the registries "
        "(KBCHAT_PLUGINS: comma-separated).",
    )

    @field_validator("plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _expand_home(self) -> Settings:
        self.home = self.home.expanduser()
        return self

    @property
    def models_dir(self) -> Path:
        return (self.model_cache or self.home / "models").expanduser()

    @property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL (``postgresql://`` is given the psycopg 3 driver)."""
        if self.catalog.url is None:
            return f"sqlite:///{self.home / 'catalog.db'}"
        return sqlalchemy_url(self.catalog.url.get_secret_value())

    @property
    def shared_catalog(self) -> bool:
        """Whether the catalog is a server other processes on other machines may share."""
        return not self.catalog_url.startswith("sqlite")

    @property
    def uploads_in_database(self) -> bool:
        configured = self.catalog.uploads_in_database
        return self.shared_catalog if configured is None else configured

    def store_url_for(self, backend: str) -> str | None:
        """A vector store backend's URL: ``store.urls.<backend>``, else ``store.url``, else, for
        pgvector, a PostgreSQL catalog's own (one setting moves everything)."""
        chosen = self.store.url_for(backend)
        catalog = self.catalog.url
        if chosen is None and backend == "pgvector" and catalog is not None and self.shared_catalog:
            return libpq_url(catalog.get_secret_value())
        return chosen

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
        """Only the values given: ``load_settings`` reads the file and the environment."""
        return (init_settings,)


class _EnvironSource(EnvSettingsSource):
    """``KBCHAT_*`` variables of a given environment, parsed as pydantic-settings parses
    ``os.environ`` (nested with ``__``, JSON for lists and tables). pydantic-settings reads
    ``os.environ`` only (its issue #653), hence the one overridden method.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = {k: v for k, v in environ.items() if not _client_variable(k, v)}
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _client_variable(name: str, value: str) -> bool:
    """``KBCHAT_SERVER=URL`` names a server for ``ask``/``chat --server``; only a JSON
    table there is the ``[server]`` section."""
    return name.upper() == "KBCHAT_SERVER" and not value.lstrip().startswith("{")


def load_settings(*, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults < kbchat.toml < ``KBCHAT_*`` environment < ``overrides``.

    Args:
        environ: the environment to read (``KBCHAT_HOME``, ``KBCHAT_CONFIG``, ``KBCHAT_*``);
            default ``os.environ``. Tests and applications embedding kbchat pass their own.
        overrides: setting sections or values, e.g. ``chat={"top_k": 3}``.

    Raises:
        ConfigError: a value is invalid or unknown; the message names it as the user wrote
            it (the key in the config file, or the environment variable), with the allowed
            values or bounds.
    """
    environ = os.environ if environ is None else environ
    config_file = _config_file(environ)
    layers = [
        _Layer("given", overrides),
        _Layer("environment", _EnvironSource(environ)()),
        _Layer(str(config_file), _read_toml(config_file) if config_file else {}),
    ]
    values: dict[str, Any] = {}
    for layer in reversed(layers):
        values = _merged(values, layer.values)
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = [_problem(error, layers, environ) for error in exc.errors()]
        raise ConfigError(f"invalid settings: {'; '.join(problems)}") from None


def _config_file(environ: Mapping[str, str]) -> Path | None:
    explicit = environ.get("KBCHAT_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"KBCHAT_CONFIG points at {path}, which is not a file")
        return path
    home = Path(environ.get("KBCHAT_HOME") or DEFAULT_HOME).expanduser()
    candidate = home / "kbchat.toml"
    return candidate if candidate.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _merged(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True, slots=True)
class _Layer:
    """One source of setting values: ``given`` (code, CLI flags), the environment, a file."""

    name: str
    values: Mapping[str, Any]

    def holds(self, loc: tuple[str | int, ...]) -> bool:
        node: Any = self.values
        for part in loc:
            in_table = isinstance(node, Mapping) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if not (in_table or in_list):
                return False
            node = node[part]
        return True


def _problem(error: Any, layers: list[_Layer], environ: Mapping[str, str]) -> str:
    """One invalid value, named as the user wrote it, with what is allowed instead."""
    loc: tuple[str | int, ...] = tuple(error["loc"])
    key = ".".join(str(part) for part in loc)
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        what = f"unknown setting {key}"
        allowed = f"known: {', '.join(_known_keys(loc[:-1]))}"
    elif error["type"] == "value_error":  # a rule across fields, e.g. no_hit = "message"
        return f"{key}: {error['msg'].removeprefix('Value error, ')}"
    else:
        what = f"{key} = {error['input']!r}"
        message = error["msg"]
        allowed = message[:1].lower() + message[1:]
    layer = next((layer for layer in layers if layer.holds(loc)), None)
    if layer is None or layer.name == "given":
        return f"{what}: {allowed}"
    if layer.name == "environment":
        return f"{_env_name(loc, environ)} ({what}): {allowed}"
    return f"{what} in {layer.name}: {allowed}"


def _env_name(loc: tuple[str | int, ...], environ: Mapping[str, str]) -> str:
    """The variable that set ``loc``: KBCHAT_RETRIEVAL__MODE, or KBCHAT_RETRIEVAL (JSON)."""
    upper = {name.upper(): name for name in environ}
    for end in range(len(loc), 0, -1):
        name = "KBCHAT_" + "__".join(str(part) for part in loc[:end]).upper()
        if name in upper:
            return upper[name]
    return "KBCHAT_" + "__".join(str(part) for part in loc).upper()


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The setting names allowed at ``loc`` (a section of Settings)."""
    section: Any = Settings
    for part in loc:
        section = _field_type(section, part)
    if isinstance(section, type) and issubclass(section, BaseModel):
        return list(section.model_fields)
    if dataclasses.is_dataclass(section):
        return [f.name for f in dataclasses.fields(section)]
    return []


def _field_type(section: Any, part: str | int) -> Any:
    if isinstance(section, type) and issubclass(section, BaseModel):
        field = section.model_fields.get(str(part))
        return _strip_optional(field.annotation) if field else None
    if dataclasses.is_dataclass(section):
        hints = typing.get_type_hints(section)
        return _strip_optional(hints.get(str(part)))
    args = typing.get_args(section)
    return _strip_optional(args[-1]) if args else None  # dict[str, X] or list[X]


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def sqlalchemy_url(url: str) -> str:
    """A database URL as SQLAlchemy takes it: PostgreSQL URLs get the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return url


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as libpq (psycopg, pgvector store) takes it: no SQLAlchemy driver."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith("postgresql+"):
        return f"postgresql://{rest}"
    return url
