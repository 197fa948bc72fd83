"""The library: every knowledge base under one KBCHAT_HOME, created, opened and dropped by name."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from typing import TYPE_CHECKING, Any

from kbchat.errors import BadInput, ConfigError, Conflict
from kbchat.kb.originals import drop_unused_blob, uploads_dir
from kbchat.options import ChunkOverlap, ChunkSize, check_value
from kbchat.registry import create_embedder, open_vector_store, vector_stores
from kbchat.store.catalog import Catalog, KBRecord

if TYPE_CHECKING:
    from kbchat.config import Settings
    from kbchat.embed.base import Embedder
    from kbchat.embed.chit_chat import ChitChat
    from kbchat.ingest.ocr import OcrReader
    from kbchat.kb.index import StoreOpener
    from kbchat.kb.knowledge_base import KnowledgeBase

# Opening a knowledge base imports the ingest and index stack (numpy, faiss, bm25s); `kbchat kb
# list` and the other catalog-only paths do without it, so those imports are in the methods.

KB_NAME_PATTERN = r"^\w[\w-]*(?:\.[\w-]+)*\.?$"
KB_NAME_MAX = 64
KB_NAME_RULE = (
    f"use 1-{KB_NAME_MAX} letters or digits (any script), '_', '-' or '.', starting with a "
    "letter, digit or '_', never '..'"
)
"""A knowledge base name, as checked here and stated in the API schema."""
_NAME = re.compile(KB_NAME_PATTERN)
TEMPORARY_PREFIX = "~"
"""Names of temporary knowledge bases (files attached to a conversation) start with this;
no user-made name can, and listings leave them out."""


def is_temporary(name: str) -> bool:
    return name.startswith(TEMPORARY_PREFIX)


def validate_kb_name(name: str) -> str:
    if len(name) > KB_NAME_MAX or not _NAME.fullmatch(name):
        raise BadInput(f"invalid knowledge base name {name!r}: {KB_NAME_RULE}")
    return name


class Library:
    """Creates, opens and drops knowledge bases; shares embedders between them."""

    def __init__(self, settings: Settings, *, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.catalog_url)
        self._embedders: dict[str, Embedder] = {}
        self._open: dict[str, KnowledgeBase] = {}
        self._chit_chat: ChitChat | None = None
        self._ocr: OcrReader | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the open knowledge bases' server stores (connection pools), then the catalog."""
        with self._lock:
            opened = list(self._open.values())
            self._open.clear()
        for kb in opened:
            close = getattr(kb.index.vectors, "close", None)  # server stores hold connections
            if close is not None:
                close()
        self.catalog.close()

    def default_embedder_spec(self, backend: str | None = None) -> dict[str, Any]:
        configured = self.settings.embedder
        spec: dict[str, Any] = {"backend": backend or configured.backend}
        if spec["backend"] == configured.backend:
            # Everything that changes the vectors is recorded with the knowledge base.
            for key in ("model", "base_url", "query_prefix", "passage_prefix", "send_input_type"):
                if (value := getattr(configured, key)) not in (None, "", False):
                    spec[key] = value
        return spec

    def embedder(self, spec: dict[str, Any]) -> Embedder:
        """Build (once) the embedder a spec describes; the API key comes from settings."""

        key = json.dumps(spec, sort_keys=True)
        with self._lock:
            if key not in self._embedders:
                configured = self.settings.embedder
                kwargs: dict[str, Any] = dict(spec)
                backend = kwargs.pop("backend")
                kwargs.update(
                    threads=configured.threads,
                    timeout_s=configured.timeout_s,
                    max_retries=configured.max_retries,
                )
                if configured.api_key is not None and backend == configured.backend:
                    kwargs["api_key"] = configured.api_key
                self._embedders[key] = create_embedder(backend, **kwargs)
            return self._embedders[key]

    def create(
        self,
        name: str,
        *,
        embedder: str | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        description: str = "",
        temporary: bool = False,
        store: str | None = None,
    ) -> KBRecord:
        """Create a knowledge base; ``temporary`` ones are named with TEMPORARY_PREFIX.

        ``store`` names the vector store backend (default: setting ``store.backend``).

        Raises:
            BadInput: a bad name, chunk size or overlap.
            ConfigError: an unknown embedder or store backend (the message lists the known ones).
            Conflict: a knowledge base of that name exists.
        """
        if temporary != is_temporary(name):
            raise BadInput(
                f"{name!r}: temporary knowledge bases (only those) start with {TEMPORARY_PREFIX!r}"
            )
        if not temporary:
            validate_kb_name(name)
        ingest = self.settings.ingest
        size = chunk_size if chunk_size is not None else ingest.chunk_size
        overlap = chunk_overlap if chunk_overlap is not None else ingest.chunk_overlap
        check_value(ChunkSize, "chunk_size", size)
        check_value(ChunkOverlap, "chunk_overlap", overlap)
        if overlap >= size:
            raise BadInput(f"chunk_overlap must be smaller than chunk_size ({size}), got {overlap}")
        backend = store or self.settings.store.backend
        vector_stores.factory(backend)  # an unknown backend fails here, listing the known ones
        from kbchat.store.bm25 import TOKENIZER_VERSION

        spec = self.default_embedder_spec(embedder)
        model = self.embedder(spec)
        record = self.catalog.create_kb(
            name,
            embedder=model.name,
            embedder_spec=spec,
            dim=model.dim,
            store=backend,
            chunk_size=size,
            chunk_overlap=overlap,
            tokenizer=TOKENIZER_VERSION,
            description=description,
        )
        # A SQLite catalog made before ids were never reused may hand out a dropped KB's id:
        # whatever that KB left on this machine (its index, its uploads) is not this one's.
        self._remove_local(record.id)
        return record

    def records(self) -> list[KBRecord]:
        """The user's knowledge bases (temporary ones left out)."""
        return [r for r in self.catalog.list_kbs() if not is_temporary(r.name)]

    def names(self) -> list[str]:
        """The user's knowledge base names (temporary ones left out)."""
        return [n for n in self.catalog.kb_names() if not is_temporary(n)]

    def get(self, name: str) -> KnowledgeBase:
        """Open a knowledge base by name.

        Raises:
            NotFound: no such knowledge base (the message lists the known ones).
            Conflict: the embedder available now is not the one that built it.
            ConfigError: its vector store backend is not registered (a plugin not loaded).
        """
        from kbchat.ingest.loaders import LoadLimits
        from kbchat.kb.knowledge_base import KnowledgeBase

        record = self.catalog.get_kb(name)
        with self._lock:
            cached = self._open.get(name)
            if cached is not None and (cached.record.id, cached.record.store) == (
                record.id,
                record.store,
            ):  # a knowledge base migrated to another store is opened anew
                return cached
        model = self.embedder(record.embedder_spec)
        if model.name != record.embedder:
            raise Conflict(
                f"knowledge base {name!r} was built with embedder {record.embedder!r}, but its "
                f"embedder now resolves to {model.name!r}; mixing vectors would give wrong "
                "results. "
                f"Restore the original embedder or re-create the knowledge base."
            )
        ingest = self.settings.ingest
        limits = LoadLimits(
            max_file_bytes=int(ingest.max_file_mb * 2**20),
            max_unpacked_bytes=int(ingest.max_unpacked_mb * 2**20),
            ocr=self._shared_ocr() if ingest.ocr else None,
        )
        kb = KnowledgeBase(
            record,
            self.catalog,
            model,
            self.settings.kb_root / str(record.id),
            open_store=self.store_opener(record),
            limits=limits,
            max_chunks_per_file=ingest.max_chunks_per_file,
            batch_size=self.settings.embedder.batch_size,
            chit_chat=self._shared_chit_chat(),
        )
        with self._lock:
            self._open[name] = kb
        return kb

    def _shared_chit_chat(self) -> ChitChat:
        from kbchat.embed.chit_chat import ChitChat

        with self._lock:
            if self._chit_chat is None:
                self._chit_chat = ChitChat()
            return self._chit_chat

    def _shared_ocr(self) -> OcrReader:
        from kbchat.ingest.ocr import OcrReader

        with self._lock:
            if self._ocr is None:
                self._ocr = OcrReader()
            return self._ocr

    def drop(self, name: str) -> None:
        """Delete a knowledge base: its vector store, its catalog rows, its folder.

        The store goes first: should that fail, the knowledge base is still whole. Its
        uploaded originals go too (on this machine, and their bytes in a shared catalog unless
        another file has the same content).
        """
        record = self.catalog.get_kb(name)
        with self._lock:
            cached = self._open.pop(name, None)
        if cached is not None and cached.record.id == record.id:
            cached.index.drop_vectors()
        else:
            self.store_opener(record)().drop()
        from kbchat.kb.jobs import JobQueue

        uploaded = {f.sha256 for f in self.catalog.list_files(record.id) if f.sha256}
        # Its queued writes go with it: a knowledge base made later under the name must not
        # receive them (a worker claims tasks by the knowledge base's name).
        JobQueue(self.catalog).cancel_kb(name, f"knowledge base {name!r} was dropped")
        self.catalog.drop_kb(record.id)
        self._remove_local(record.id)
        for sha256 in uploaded:  # bytes kept for other machines, if no other file has them
            drop_unused_blob(self.catalog, sha256)

    def _remove_local(self, kb_id: int) -> None:
        """Delete a knowledge base's folder and uploaded originals on this machine."""
        from kbchat.kb.knowledge_base import remove_kb_directory

        remove_kb_directory(self.settings.kb_root / str(kb_id))
        remove_kb_directory(uploads_dir(self.settings, kb_id))

    def store_opener(self, record: KBRecord) -> StoreOpener:
        """Opens ``record``'s vector store: its backend, folder and collection, and the URL the
        settings give that backend (``store.urls`` / ``store.url``).

        Raises:
            ConfigError: the backend is not registered.
        """
        try:
            vector_stores.factory(record.store)
        except ConfigError as exc:
            raise ConfigError(
                f"knowledge base {record.name!r} keeps its vectors in {record.store!r}: {exc} "
                "(is the plugin that provides it named in the plugins setting?)"
            ) from exc
        return functools.partial(
            open_vector_store,
            record.store,
            directory=self.settings.kb_root / str(record.id),
            collection=f"kb_{record.id}",
            dim=record.dim,
            url=self.settings.store_url_for(record.store),
        )

    def ensure(self, name: str, **options: Any) -> KnowledgeBase:
        """Open ``name``, creating it with ``options`` if it does not exist."""
        if name not in self.names():
            with contextlib.suppress(Conflict):  # created meanwhile by another process
                self.create(name, **options)
        return self.get(name)
