"""Moving a knowledge base's vectors to another store backend, without re-embedding.

The catalog keeps every chunk's vector, so the new store is filled from it. The knowledge base
switches to the new store only once the copy is verified: the same ids as the catalog, the
same stored vectors for a sample, and identical top-k results from the old and the new store
for a sample of stored vectors used as queries. Until the switch the old store is only read;
on any failure (or an interruption) the new store is dropped and the knowledge base stays as
it was. After the switch the old store is dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock, Timeout
from numpy.typing import NDArray
from sqlalchemy import update

from kbchat.errors import BackendError, BadInput, Conflict
from kbchat.registry import vector_stores
from kbchat.store.catalog import kbs

if TYPE_CHECKING:
    from kbchat.kb.index import KBIndex
    from kbchat.kb.library import Library
    from kbchat.store.base import Ids, VectorStore
    from kbchat.store.catalog import Catalog, KBRecord

log = logging.getLogger(__name__)

SAMPLE_QUERIES = 20
"""Stored vectors searched in both stores to verify a copy."""
VERIFY_UNIVERSE = 5_000
"""Verification searches run among at most this many ids (an allow-list), so that every
backend answers them exactly (pgvector searches allow-lists up to 10,000 ids exactly) and an
approximate index cannot make two correct copies differ."""
TOP_K = 10
SCORE_TOLERANCE = 1e-4
"""Scores of the same hit from two backends may differ by float rounding up to this."""

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total): stage ``copy`` counts vectors, ``verify`` queries."""


@dataclass(frozen=True, slots=True)
class Migration:
    """The outcome of a migration that switched the knowledge base to its new store."""

    name: str
    source: str
    target: str
    vectors: int
    queries_compared: int
    seconds: float
    source_dropped: bool
    note: str | None = None


def migrate(
    library: Library,
    name: str,
    target: str,
    *,
    progress: Progress | None = None,
    sample: int = SAMPLE_QUERIES,
    seed: int = 0,
) -> Migration:
    """Copy knowledge base ``name``'s vectors to backend ``target`` and switch it there.

    Args:
        library: the library holding the knowledge base.
        name: the knowledge base.
        target: a registered vector store backend other than its current one.
        progress: receives (stage, done, total) as the copy and the verification go on.
        sample: how many stored vectors are searched in both stores.
        seed: picks the sample.

    Returns:
        What was done; the knowledge base now keeps its vectors in ``target``.

    Raises:
        ConfigError: ``target`` is not a registered backend (the message lists them); checked
            before the knowledge base's name.
        NotFound: no such knowledge base (the message lists the known ones).
        BadInput: the knowledge base already uses ``target``.
        Conflict: another process writes to the knowledge base (before or during the copy).
        BackendError: a store cannot be reached, or the copy did not verify.
    """
    started = time.perf_counter()
    # The option first: a mistyped backend is named (with the known ones) even when the
    # knowledge base's name is mistyped too, as `kb create --store` does.
    vector_stores.factory(target)
    record = library.catalog.get_kb(name)
    if target == record.store:
        raise BadInput(f"knowledge base {name!r} already keeps its vectors in {target!r}")
    kb = library.get(name)
    lock = FileLock(str(kb.directory / "write.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise Conflict(
            f"another process is writing to knowledge base {name!r}; migrate it when that is done"
        ) from None
    try:
        generation = library.catalog.generation(record.id)
        source = kb.index.fresh_vectors()
        destination = _open_empty(library, dataclasses.replace(record, store=target))
        try:
            total = _copy(library.catalog, record.id, destination, progress)
            if library.catalog.generation(record.id) != generation:
                raise _changed(record)
            compared = _verify(
                library.catalog, record.id, source, destination, progress, sample, seed
            )
            _switch(library.catalog, record, target, generation)
        except BaseException:
            _cleanup(destination, target)
            raise
        _close(destination)
    finally:
        lock.release()
    dropped, note = _drop_source(kb.index, record)
    return Migration(
        name=name,
        source=record.store,
        target=target,
        vectors=total,
        queries_compared=compared,
        seconds=round(time.perf_counter() - started, 3),
        source_dropped=dropped,
        note=note,
    )


def _open_empty(library: Library, record: KBRecord) -> VectorStore:
    """The knowledge base's store on the new backend, emptied of any earlier leftovers."""
    opener = library.store_opener(record)
    store = opener()
    if store.count() > 0:  # an earlier migration that could not drop it: never trusted
        log.warning(
            "knowledge base %r: the %s store already held %d vectors; starting it afresh",
            record.name,
            record.store,
            store.count(),
        )
        store.drop()
        store = opener()
    return store


def _copy(catalog: Catalog, kb_id: int, destination: VectorStore, progress: Progress | None) -> int:
    """Add every catalog vector of the knowledge base to ``destination``; how many."""
    total = len(catalog.chunk_ids(kb_id))
    done = 0
    if progress is not None:
        progress("copy", 0, total)
    for ids, vectors in catalog.iter_vectors(kb_id):
        destination.add(ids, vectors)
        done += len(ids)
        if progress is not None:
            progress("copy", done, total)
    destination.persist()
    return done


def _verify(
    catalog: Catalog,
    kb_id: int,
    source: VectorStore,
    destination: VectorStore,
    progress: Progress | None,
    sample: int,
    seed: int,
) -> int:
    """Check ``destination`` against the catalog and ``source``; the queries compared.

    Raises:
        BackendError: naming the first difference found.
    """
    truth = np.sort(catalog.chunk_ids(kb_id))
    copied = np.sort(destination.ids())
    if len(copied) != len(truth) or not np.array_equal(copied, truth):
        missing = len(np.setdiff1d(truth, copied))
        extra = len(np.setdiff1d(copied, truth))
        raise BackendError(
            f"the copy holds {len(copied)} vectors for the catalog's {len(truth)} "
            f"({missing} missing, {extra} unknown)"
        )
    if len(truth) == 0:
        return 0
    rng = np.random.default_rng(seed)
    universe = truth if len(truth) <= VERIFY_UNIVERSE else rng.choice(truth, VERIFY_UNIVERSE, False)
    picked = rng.choice(universe, min(sample, len(universe)), replace=False)
    ids, expected = _catalog_vectors(catalog, kb_id, picked)
    found_ids, stored = destination.get(ids)
    if not np.array_equal(found_ids, ids) or not np.allclose(stored, expected, atol=1e-6):
        raise BackendError("the copy's stored vectors differ from the catalog's")
    k = min(TOP_K, len(universe))
    for done, (chunk_id, query) in enumerate(zip(ids.tolist(), expected, strict=True), 1):
        before = source.search(query, k, allowed=universe)
        after = destination.search(query, k, allowed=universe)
        if not same_hits(before, after):
            raise BackendError(
                f"searching with chunk {chunk_id}'s vector gives other results in the copy: "
                f"{_ids(before)} before, {_ids(after)} after"
            )
        if progress is not None:
            progress("verify", done, len(ids))
    return len(ids)


def same_hits(
    before: Sequence[tuple[int, float]],
    after: Sequence[tuple[int, float]],
    tolerance: float = SCORE_TOLERANCE,
) -> bool:
    """True when two top-k lists agree: the same scores rank by rank (to ``tolerance``) and each
    id with the same score; hits tied in score may come in any order, and those tied with the
    k-th score may be cut differently."""
    if len(before) != len(after):
        return False
    if any(abs(b - a) > tolerance for (_, b), (_, a) in zip(before, after, strict=True)):
        return False
    if not before:
        return True
    cut = before[-1][1] + tolerance
    firm_before = {i: s for i, s in before if s > cut}
    firm_after = {i: s for i, s in after if s > cut}
    return firm_before.keys() == firm_after.keys() and all(
        abs(s - firm_after[i]) <= tolerance for i, s in firm_before.items()
    )


def _ids(hits: Sequence[tuple[int, float]]) -> list[int]:
    return [chunk_id for chunk_id, _ in hits]


def _catalog_vectors(catalog: Catalog, kb_id: int, wanted: Ids) -> tuple[Ids, NDArray[np.float32]]:
    """The catalog's vectors of ``wanted``, in that order: (n,), (n, dim)."""
    found: dict[int, NDArray[np.float32]] = {}
    for ids, vectors in catalog.iter_vectors(kb_id, wanted.tolist()):
        found.update(zip(ids.tolist(), vectors, strict=True))
    order = [i for i in wanted.tolist() if i in found]
    return np.asarray(order, dtype=np.int64), np.stack([found[i] for i in order])


def _switch(catalog: Catalog, record: KBRecord, target: str, generation: int) -> None:
    """Record ``target`` as the knowledge base's store, if nothing changed since the copy began.

    Raises:
        Conflict: the knowledge base changed (a file added or removed) during the copy.
    """
    with catalog.engine.begin() as conn:
        switched = conn.execute(
            update(kbs)
            .where(
                kbs.c.id == record.id,
                kbs.c.store == record.store,
                kbs.c.generation == generation,
            )
            .values(store=target, updated_at=time.time())
        ).rowcount
    if switched != 1:
        raise _changed(record)


def _changed(record: KBRecord) -> Conflict:
    return Conflict(
        f"knowledge base {record.name!r} changed while its vectors were copied; "
        "it stays on its old store: run the migration again"
    )


def _cleanup(destination: VectorStore, target: str) -> None:
    """Drop the unfinished copy; a failure here is logged, the original error is what counts."""
    try:
        destination.drop()
    except Exception as exc:  # the migration failed already; say what is left behind
        log.warning("could not drop the unfinished %s copy (%s); it is never read", target, exc)


def _close(store: VectorStore) -> None:
    """Release a server store's connections (file stores have nothing to close)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _drop_source(index: KBIndex, record: KBRecord) -> tuple[bool, str | None]:
    """Drop the old store after the switch; a failure leaves it in place with a note."""
    try:
        index.drop_vectors()  # server stores close their connections as they drop
    except Exception as exc:  # the knowledge base has switched: the old copy is only waste
        note = f"the old {record.store} store could not be dropped ({exc}); remove it by hand"
        log.warning("knowledge base %r: %s", record.name, note)
        return False, note
    return True, None
