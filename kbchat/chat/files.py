"""Chat with files: the files attached to a conversation live in a temporary knowledge base.

Each conversation (of one owner) gets at most one temporary knowledge base, named
``~files-<hash>`` so that no user-made name can clash with it and listings leave it out.
Files go in through ``KnowledgeBase.add``: the same loaders, limits and per-file errors as
``kb add``, and chunks are searchable batch by batch while the rest still loads. The
knowledge base is dropped with its conversation, or once it has gone unused for
``files.ttl_hours`` (``expire``, run at start-up).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Column, Float, MetaData, String, Table, delete, insert, select, update

from kbchat.chat.rag import ChatOptions
from kbchat.errors import Conflict, NotFound
from kbchat.kb.knowledge_base import FileOutcome, IngestListener, KnowledgeBase
from kbchat.kb.library import TEMPORARY_PREFIX, Library
from kbchat.llm.base import ChatModel
from kbchat.retrieve.search import SearchOptions
from kbchat.store.catalog import FileRecord

metadata = MetaData()

file_chat_kbs = Table(
    "file_chat_kbs",
    metadata,
    Column("kb_name", String(128), primary_key=True),
    Column("conversation_id", String(256), nullable=False),
    Column("owner", String(128), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("used_at", Float, nullable=False),
)

_QUIET = IngestListener()
MAX_WHOLE_CHUNKS = 64
"""A file chat is never put whole into the prompt beyond this many chunks (cheap check first)."""


def temporary_kb_name(conversation_id: str, owner: str | None) -> str:
    """The temporary knowledge base of a conversation: stable, and distinct per owner."""
    digest = hashlib.blake2b(f"{owner or ''}\0{conversation_id}".encode(), digest_size=10)
    return f"{TEMPORARY_PREFIX}files-{digest.hexdigest()}"


class FileChats:
    """Creates, finds, expires and deletes the temporary knowledge bases of conversations.

    Args:
        library: Where the temporary knowledge bases are made (same catalog, same embedder
            as a new knowledge base would get).
        ttl_s: Seconds after its last use that a conversation's files expire.
        clock: Current time in seconds (tests pass a fake one).
    """

    def __init__(
        self, library: Library, *, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.library = library
        self.ttl_s = ttl_s
        self.clock = clock
        self.engine = library.catalog.engine
        metadata.create_all(self.engine)

    def folder(self, conversation_id: str, owner: str | None) -> Path:
        """Where copies of a conversation's uploaded files are kept (deleted with it)."""
        name = temporary_kb_name(conversation_id, owner).removeprefix(TEMPORARY_PREFIX)
        return self.library.settings.home / "file-chat" / name

    def open(self, conversation_id: str, owner: str | None) -> KnowledgeBase:
        """The conversation's temporary knowledge base, created on first use."""
        name = temporary_kb_name(conversation_id, owner)
        now = self.clock()
        with self.engine.begin() as conn:
            known = conn.execute(
                select(file_chat_kbs.c.kb_name).where(file_chat_kbs.c.kb_name == name)
            ).first()
            if known is None:
                conn.execute(
                    insert(file_chat_kbs).values(
                        kb_name=name,
                        conversation_id=conversation_id,
                        owner=owner,
                        created_at=now,
                        used_at=now,
                    )
                )
            else:
                conn.execute(
                    update(file_chat_kbs).where(file_chat_kbs.c.kb_name == name).values(used_at=now)
                )
        if name not in self.library.catalog.kb_names():
            with contextlib.suppress(Conflict):  # created meanwhile by another request
                self.library.create(name, temporary=True, description="files of a conversation")
        return self.library.get(name)

    def find(self, conversation_id: str, owner: str | None) -> KnowledgeBase | None:
        """The conversation's temporary knowledge base if it has one (its use is recorded)."""
        name = temporary_kb_name(conversation_id, owner)
        if name not in self.library.catalog.kb_names():
            return None
        return self.open(conversation_id, owner)

    def attach(
        self,
        conversation_id: str,
        owner: str | None,
        paths: Sequence[Path],
        *,
        listener: IngestListener = _QUIET,
    ) -> list[FileOutcome]:
        """Load, split and index ``paths`` into the conversation's temporary knowledge base.

        Returns one outcome per file (``failed`` ones carry the same message as ``kb add``).
        """
        kb = self.open(conversation_id, owner)
        present = [p for p in paths if p.exists()]
        outcomes = kb.add(present, listener=listener) if present else []
        for path in paths:  # one missing file must not stop the others
            if not path.exists():
                outcome = FileOutcome(path.name, str(path), "failed", f"{path}: no such file")
                listener.file_done(outcome)
                outcomes.append(outcome)
        return outcomes

    def files(self, conversation_id: str, owner: str | None) -> list[FileRecord]:
        """The files attached to a conversation, with their status (empty if none)."""
        kb = self.find(conversation_id, owner)
        return [] if kb is None else kb.files()

    def delete(self, conversation_id: str, owner: str | None) -> bool:
        """Drop a conversation's files; False when it had none."""
        return self._drop(
            temporary_kb_name(conversation_id, owner), self.folder(conversation_id, owner)
        )

    def expire(self) -> list[str]:
        """Drop every temporary knowledge base unused for ``ttl_s``; returns their names.

        Also drops temporary knowledge bases that have no row (left by a crash mid-create).
        """
        cutoff = self.clock() - self.ttl_s
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    file_chat_kbs.c.kb_name,
                    file_chat_kbs.c.conversation_id,
                    file_chat_kbs.c.owner,
                    file_chat_kbs.c.used_at,
                )
            ).all()
        tracked = {row.kb_name for row in rows}
        expired = [row for row in rows if row.used_at < cutoff]
        dropped = []
        for row in expired:
            if self._drop(row.kb_name, self.folder(row.conversation_id, row.owner)):
                dropped.append(row.kb_name)
        for name in self.library.catalog.kb_names():
            if name.startswith(TEMPORARY_PREFIX) and name not in tracked:
                self._drop_kb(name)
                dropped.append(name)
        return dropped

    def _drop(self, name: str, folder: Path) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(delete(file_chat_kbs).where(file_chat_kbs.c.kb_name == name))
        dropped = self._drop_kb(name)
        shutil.rmtree(folder, ignore_errors=True)
        return dropped or gone.rowcount > 0

    def _drop_kb(self, name: str) -> bool:
        try:
            self.library.drop(name)
        except NotFound:
            return False
        return True


def whole_file_tokens(kb: KnowledgeBase, model: ChatModel) -> int | None:
    """Tokens of all the knowledge base's chunks, or None when it has over MAX_WHOLE_CHUNKS."""
    catalog = kb.catalog
    ids = catalog.chunk_ids(kb.record.id)
    if len(ids) == 0 or len(ids) > MAX_WHOLE_CHUNKS:
        return None
    stored = catalog.get_chunks([int(i) for i in ids])
    return sum(model.count_tokens(row.chunk.text) for row in stored.values())


def file_search_options(
    base: SearchOptions, kb: KnowledgeBase, model: ChatModel, *, whole_tokens: int
) -> SearchOptions:
    """Search options for answering from attached files alone.

    When the files hold at most ``whole_tokens`` tokens, every chunk is a source (no
    threshold), so the whole text goes into the prompt; otherwise ``base`` is used as is.
    """
    if whole_tokens <= 0:
        return base
    tokens = whole_file_tokens(kb, model)
    if tokens is None or tokens > whole_tokens:
        return base
    chunks = len(kb.catalog.chunk_ids(kb.record.id))
    return replace(
        base,
        top_k=max(base.top_k, chunks),
        candidates=max(base.candidates, chunks),
        threshold=0.0,
        rerank_threshold=0.0,
    )


def answer_sources(
    kbs: Sequence[KnowledgeBase],
    files_kb: KnowledgeBase | None,
    model: ChatModel,
    options: ChatOptions,
    *,
    whole_tokens: int,
) -> tuple[list[KnowledgeBase], ChatOptions]:
    """The knowledge bases to answer from, and the options, once files are attached.

    Files that hold no chunk (none loaded) are left out. Files alone, small enough, are
    put whole into the prompt (see ``file_search_options``).
    """
    sources = list(kbs)
    if files_kb is None or len(files_kb.catalog.chunk_ids(files_kb.record.id)) == 0:
        return sources, options
    if not sources:
        search = file_search_options(options.search, files_kb, model, whole_tokens=whole_tokens)
        options = replace(options, search=search)
    return [*sources, files_kb], options
