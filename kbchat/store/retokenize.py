"""Bringing a knowledge base's stored BM25 tokens up to the current tokenizer, without re-embedding.

Each knowledge base records the tokenizer version its chunks' tokens were made with
(``kbs.tokenizer``). One made with an older version than ``TOKENIZER_VERSION`` is re-tokenized
in two steps:

1. Read: the chunks are read in batches of ids (each its own short query) and tokenized again;
   the chunks whose tokens change are spooled (id, old tokens, new tokens) to a temporary file
   that stays in memory while small. Nothing is written, nothing is locked, memory stays flat.
2. Write, in one transaction: first ``UPDATE kbs SET tokenizer = new ... WHERE tokenizer = old``
   (if no row matches, another process has done it: nothing more to do), then each spooled
   chunk's tokens ``WHERE tokens = old`` (a chunk written meanwhile already holds current
   tokens and is left alone), and the generation moves on if any token changed, so every
   process's BM25 index, in memory or saved, is rebuilt from the catalog. A failure anywhere
   rolls it all back: old tokens with the old version, never a mix.

Tokenizing (about 0.2 ms per chunk of 500 characters) happens outside the transaction, so a SQLite
catalog's one write lock is held only for the updates.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from sqlalchemy import bindparam, select, update

from kbchat.errors import NotFound
from kbchat.store.bm25 import TOKENIZER_VERSION, chunk_tokens
from kbchat.store.catalog import Catalog, chunks, kbs

log = logging.getLogger(__name__)

BATCH = 1000
"""Chunks read, and updated, per query."""
_SPOOL_IN_MEMORY = 8 * 2**20
"""Bytes of changed tokens kept in memory before the spool moves to a temporary file."""

ChunkTokens = Callable[[str, Sequence[str]], list[str]]
"""(chunk text, headings) -> the BM25 tokens stored for the chunk."""


@dataclass(frozen=True, slots=True)
class Retokenized:
    """A knowledge base whose stored tokens this process brought to tokenizer ``version``."""

    kb: str
    old_version: int
    version: int
    chunks: int
    """Chunks read and tokenized again."""
    changed: int
    """Chunks whose tokens changed (and were rewritten)."""
    old_generation: int
    generation: int
    """The catalog generation after the change (``old_generation + 1`` if any token changed)."""
    seconds: float


def retokenize(
    catalog: Catalog,
    kb_id: int,
    *,
    version: int = TOKENIZER_VERSION,
    tokens_of: ChunkTokens = chunk_tokens,
    batch: int = BATCH,
) -> Retokenized | None:
    """Re-tokenize knowledge base ``kb_id``'s chunks if their tokens are older than ``version``.

    Safe to run from several processes at once (see the module docstring); returns None if the
    tokens were already at ``version`` or another process brought them there meanwhile.

    Raises:
        NotFound: the knowledge base does not exist.
        sqlalchemy.exc.SQLAlchemyError, OSError: the catalog or the spool file failed; the
            transaction is rolled back and the knowledge base keeps its old tokens and version.
    """
    if batch <= 0:
        raise ValueError(f"batch must be > 0, got {batch}")
    started = time.perf_counter()
    with catalog.engine.connect() as conn:
        row = conn.execute(select(kbs.c.name, kbs.c.tokenizer).where(kbs.c.id == kb_id)).first()
    if row is None:
        raise NotFound(f"knowledge base id {kb_id} no longer exists")
    name, old_version = str(row[0]), int(row[1])
    if old_version >= version:
        return None
    with tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY, "w+", encoding="utf-8") as spool:
        total, changed = _spool_changes(catalog, kb_id, tokens_of, batch, spool)
        spool.seek(0)
        generations = _write_changes(catalog, kb_id, (old_version, version), changed, batch, spool)
    if generations is None:
        return None
    done = Retokenized(
        kb=name,
        old_version=old_version,
        version=version,
        chunks=total,
        changed=changed,
        old_generation=generations[0],
        generation=generations[1],
        seconds=time.perf_counter() - started,
    )
    log.info(
        "knowledge base %r: BM25 tokens of %d chunks re-tokenized (tokenizer %d -> %d, "
        "%d changed) in %.2f s",
        name,
        total,
        old_version,
        version,
        changed,
        done.seconds,
    )
    return done


def _spool_changes(
    catalog: Catalog, kb_id: int, tokens_of: ChunkTokens, batch: int, spool: IO[str]
) -> tuple[int, int]:
    """Tokenize every chunk again; spool the changed ones. Returns (chunks read, changed)."""
    total = changed = 0
    for rows in _chunk_batches(catalog, kb_id, batch):
        for chunk_id, text, headings, stored in rows:
            total += 1
            fresh = " ".join(tokens_of(text, json.loads(headings)))
            if fresh != stored:
                spool.write(json.dumps([chunk_id, stored, fresh], ensure_ascii=False) + "\n")
                changed += 1
    return total, changed


def _chunk_batches(
    catalog: Catalog, kb_id: int, batch: int
) -> Iterator[list[tuple[int, str, str, str]]]:
    """(id, text, headings JSON, stored tokens) of the chunks, ``batch`` at a time, by id."""
    after: int | None = None
    query = select(chunks.c.id, chunks.c.text, chunks.c.headings, chunks.c.tokens).where(
        chunks.c.kb_id == kb_id
    )
    while True:
        page = query if after is None else query.where(chunks.c.id > after)
        with catalog.engine.connect() as conn:
            rows = conn.execute(page.order_by(chunks.c.id).limit(batch)).all()
        if not rows:
            return
        yield [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]
        after = int(rows[-1][0])


def _write_changes(
    catalog: Catalog,
    kb_id: int,
    versions: tuple[int, int],
    changed: int,
    batch: int,
    spool: IO[str],
) -> tuple[int, int] | None:
    """The one transaction: claim the version change, rewrite the spooled tokens, move the
    generation on if any changed. Returns (old generation, new generation), or None if the
    knowledge base was no longer at the old version (another process re-tokenized it)."""
    old_version, version = versions
    rewrite = (
        update(chunks)
        .where(
            chunks.c.id == bindparam("chunk_id"),
            chunks.c.kb_id == kb_id,
            chunks.c.tokens == bindparam("old"),
        )
        .values(tokens=bindparam("new"))
    )
    with catalog.engine.begin() as conn:
        claimed = conn.execute(
            update(kbs)
            .where(kbs.c.id == kb_id, kbs.c.tokenizer == old_version)
            .values(tokenizer=version, generation=kbs.c.generation + (1 if changed else 0))
        )
        if claimed.rowcount != 1:
            return None
        generation = int(
            conn.execute(select(kbs.c.generation).where(kbs.c.id == kb_id)).scalar_one()
        )
        for params in _spooled_batches(spool, batch):
            conn.execute(rewrite, params)
    return (generation - 1 if changed else generation), generation


def _spooled_batches(spool: IO[str], batch: int) -> Iterator[list[dict[str, object]]]:
    params: list[dict[str, object]] = []
    for line in spool:
        chunk_id, old, new = json.loads(line)
        params.append({"chunk_id": chunk_id, "old": old, "new": new})
        if len(params) == batch:
            yield params
            params = []
    if params:
        yield params
