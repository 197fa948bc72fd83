"""KnowledgeBase write path: idempotent, incremental, atomic per file, consistent indexes."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kbchat.config import load_settings
from kbchat.errors import BadInput, Conflict, NotFound
from kbchat.kb.knowledge_base import FileOutcome, KnowledgeBase
from kbchat.kb.library import Library
from kbchat.store.bm25 import tokenize


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root / "warranty.txt", "The warranty period of the K3 kettle is two years from purchase.")
    write(root / "zh" / "保修.md", "# 保修政策\n\n本产品保修期为两年，自购买之日起计算。\n")
    write(root / "recipes.md", "# Tea\n\nBrew green tea at 80 degrees for three minutes.\n")
    return root


def assert_consistent(kb: KnowledgeBase) -> None:
    """Catalog, vector store and BM25 hold exactly the same chunk ids."""
    truth = set(kb.catalog.chunk_ids(kb.record.id).tolist())
    assert set(kb.index.fresh_vectors().ids().tolist()) == truth
    lexical = kb.index.fresh_lexical()
    assert lexical.count() == len(truth)
    for record in kb.files():
        if record.status == "indexed":
            assert record.chunks == len(kb.catalog.chunk_ids_for_files(kb.record.id, [record.name]))


def test_add_folder_indexes_every_file_and_search_finds_it(library: Library, docs: Path) -> None:
    library.create("manuals")
    kb = library.get("manuals")
    outcomes = kb.add([docs])
    assert {o.name: o.status for o in outcomes} == {
        "recipes.md": "indexed",
        "warranty.txt": "indexed",
        "zh/保修.md": "indexed",
    }
    hits = kb.search("warranty period kettle", top_k=1)
    assert hits[0].file == "warranty.txt" and hits[0].kb == "manuals"
    assert kb.search("保修期", top_k=1)[0].file == "zh/保修.md"
    assert_consistent(kb)


def test_readding_unchanged_files_is_a_no_op(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    generation = kb.catalog.generation(kb.record.id)
    again = kb.add([docs])
    assert {o.status for o in again} == {"unchanged"}
    assert kb.catalog.generation(kb.record.id) == generation


def test_changed_file_replaces_its_chunks(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    before = set(kb.catalog.chunk_ids_for_files(kb.record.id, ["warranty.txt"]).tolist())
    write(docs / "warranty.txt", "The K3 kettle now has a five year warranty.")
    outcomes = {o.name: o.status for o in kb.add([docs])}
    assert outcomes["warranty.txt"] == "indexed" and outcomes["recipes.md"] == "unchanged"
    after = set(kb.catalog.chunk_ids_for_files(kb.record.id, ["warranty.txt"]).tolist())
    assert before.isdisjoint(after)
    assert "five year" in kb.search("kettle warranty", top_k=1)[0].text
    assert not before & set(kb.index.fresh_vectors().ids().tolist())
    assert_consistent(kb)


def test_same_file_name_in_two_kbs_never_collides(library: Library, tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "notes.txt", "alpha notes about apples")
    b = write(tmp_path / "b" / "notes.txt", "beta notes about bananas")
    library.create("one")
    library.create("two")
    library.get("one").add([a])
    library.get("two").add([b])
    assert "apples" in library.get("one").search("notes", top_k=1)[0].text
    assert "bananas" in library.get("two").search("notes", top_k=1)[0].text
    library.get("two").remove(["notes.txt"])
    assert library.get("one").files()[0].status == "indexed"


def test_remove_deletes_chunks_everywhere(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    gone = set(kb.catalog.chunk_ids_for_files(kb.record.id, ["recipes.md"]).tolist())
    outcomes = kb.remove(["recipes.md", "nope.txt"])
    assert [o.status for o in outcomes] == ["removed", "failed"]
    assert "nope.txt" in (outcomes[1].error or "")
    assert [f.name for f in kb.files()] == ["warranty.txt", "zh/保修.md"]
    assert not gone & set(kb.index.fresh_vectors().ids().tolist())
    assert all(f.file != "recipes.md" for f in kb.search("green tea", top_k=5))
    assert_consistent(kb)


def test_sync_adds_updates_and_removes(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.sync(docs)
    (docs / "recipes.md").unlink()
    write(docs / "new.txt", "A brand new document about descaling.")
    write(docs / "warranty.txt", "Warranty: three years.")
    outcomes = {o.name: o.status for o in kb.sync(docs)}
    assert outcomes == {
        "new.txt": "indexed",
        "warranty.txt": "indexed",
        "zh/保修.md": "unchanged",
        "recipes.md": "removed",
    }
    assert_consistent(kb)


def test_bad_files_fail_alone_and_the_batch_lands(library: Library, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    write(root / "good.txt", "A perfectly good file about descaling kettles.")
    write(root / "binary.txt", bytes(range(256)) * 50)
    write(root / "empty.md", "")
    write(root / "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    write(root / "tool.exe", b"MZ\x00\x00")
    library.create("m")
    kb = library.get("m")
    outcomes = {o.name: o for o in kb.add([root])}
    assert outcomes["good.txt"].status == "indexed"
    assert outcomes["tool.exe"].status == "skipped"
    for name in ("binary.txt", "empty.md", "broken.pdf"):
        assert outcomes[name].status == "failed", name
        assert name in (outcomes[name].error or "")
    statuses = {f.name: f.status for f in kb.files()}
    assert statuses["good.txt"] == "indexed" and statuses["broken.pdf"] == "failed"
    # A file that was read but failed shows what was read, as an indexed one does.
    broken = next(f for f in kb.files() if f.name == "broken.pdf")
    assert broken.size == len(b"%PDF-1.4 this is not really a pdf")
    assert broken.sha256 == hashlib.sha256(b"%PDF-1.4 this is not really a pdf").hexdigest()
    assert_consistent(kb)


def test_size_limit_and_unreadable_file(docs: Path, tmp_path: Path) -> None:
    lib = Library(load_settings(embedder={"backend": "hash"}, ingest={"max_file_mb": 0.001}))
    lib.create("m")
    kb = lib.get("m")
    big = write(tmp_path / "big.txt", "word " * 1000)
    outcome = kb.add([big])[0]
    assert outcome.status == "failed" and "size limit" in (outcome.error or "")
    if os.geteuid() != 0:  # root reads everything
        locked = write(tmp_path / "locked.txt", "secret")
        locked.chmod(0)
        assert kb.add([locked])[0].status == "failed"
    lib.close()


def test_missing_path_is_a_clear_error(library: Library, tmp_path: Path) -> None:
    library.create("m")
    with pytest.raises(BadInput, match="no such file or folder"):
        library.get("m").add([tmp_path / "does-not-exist"])


def test_failed_update_keeps_the_previous_version(library: Library, tmp_path: Path) -> None:
    library.create("m")
    kb = library.get("m")
    doc = write(tmp_path / "doc.txt", "Original content about kettles.")
    kb.add([doc])
    doc.write_bytes(b"")
    outcome = kb.add([doc])[0]
    assert outcome.status == "failed"
    record = kb.files()[0]
    assert record.status == "indexed" and "previous version kept" in (record.error or "")
    assert "Original" in kb.search("kettles", top_k=1)[0].text


def test_unknown_kb_lists_the_known_ones(library: Library) -> None:
    library.create("alpha")
    with pytest.raises(NotFound, match="known: alpha"):
        library.get("beta")


def test_kb_name_is_validated(library: Library) -> None:
    with pytest.raises(BadInput, match="invalid knowledge base name"):
        library.create("../etc")


def test_kb_refuses_a_different_embedder(library: Library) -> None:
    record = library.create("m")
    library.catalog.engine.dispose()
    from sqlalchemy import update

    from kbchat.store.catalog import kbs

    with library.catalog.engine.begin() as conn:
        conn.execute(update(kbs).where(kbs.c.id == record.id).values(embedder="other-model"))
    with pytest.raises(Conflict, match="other-model"):
        Library(library.settings).get("m")


def test_index_is_reconciled_after_it_falls_behind(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    (kb.directory / "vectors.faiss").unlink()
    shutil.rmtree(kb.directory / "bm25")
    fresh = Library(library.settings).get("m")
    assert fresh.search("warranty kettle", top_k=1)[0].file == "warranty.txt"
    assert_consistent(fresh)


def test_rebuild_reindexes_from_sources(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    (docs / "recipes.md").unlink()
    outcomes = {o.name: o.status for o in kb.rebuild()}
    assert outcomes == {"warranty.txt": "indexed", "zh/保修.md": "indexed", "recipes.md": "failed"}
    assert_consistent(kb)
    tokens = tokenize("保修期")
    assert kb.index.fresh_lexical().search(tokens, 3)


def test_drop_removes_everything(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    directory = kb.directory
    library.drop("m")
    assert library.names() == []
    assert not directory.exists()
    assert len(library.catalog.chunk_ids(kb.record.id)) == 0
    assert np.all(library.catalog.chunk_ids(kb.record.id) == np.zeros(0))


def test_drop_removes_the_uploads_and_a_new_kb_never_takes_the_old_id(
    library: Library, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from kbchat.kb.originals import save_blob, uploads_dir
    from kbchat.store.catalog_schema import blobs

    first = library.create("first")
    dropped = library.create("dropped")
    upload = write(uploads_dir(library.settings, dropped.id) / "manual.txt", "The K3 kettle.")
    library.get("dropped").add([upload])
    sha = library.get("dropped").files()[0].sha256
    save_blob(library.catalog, upload, sha)  # as a shared catalog keeps an upload's bytes
    library.drop("dropped")  # as `kbchat kb drop` does, not only the API's delete
    assert not uploads_dir(library.settings, dropped.id).exists()
    with library.catalog.engine.connect() as conn:
        assert conn.execute(select(blobs.c.sha256)).all() == []
    # SQLite would hand the largest id out again; the new KB must not see the old one's files.
    fresh = library.create("fresh")
    assert fresh.id not in (first.id, dropped.id)
    assert library.get("fresh").files() == []


def test_a_new_kb_does_not_inherit_what_an_earlier_kb_of_its_id_left_here(
    library: Library,
) -> None:
    from kbchat.kb.originals import uploads_dir

    # An older catalog reused ids: leftovers of a KB with the next id must not leak in.
    next_id = library.create("probe").id + 1
    stale = write(uploads_dir(library.settings, next_id) / "old.txt", "from a dropped KB")
    write(library.settings.kb_root / str(next_id) / "state.json", '{"vectors": 3}')
    record = library.create("new")
    assert record.id == next_id
    assert not stale.exists()
    assert not (library.settings.kb_root / str(next_id) / "state.json").exists()


def test_damaged_index_files_are_rebuilt_not_fatal(library: Library, docs: Path) -> None:
    library.create("m")
    kb = library.get("m")
    kb.add([docs])
    (kb.directory / "vectors.faiss").write_bytes(b"garbage")
    (kb.directory / "bm25" / "ids.npy").write_bytes(b"garbage")
    fresh = Library(library.settings).get("m")
    assert fresh.search("warranty kettle", top_k=1)[0].file == "warranty.txt"
    assert_consistent(fresh)


def test_a_big_file_reports_its_chunks_as_they_are_embedded(
    library: Library, tmp_path: Path
) -> None:
    from kbchat.kb.knowledge_base import IngestListener

    class Spy(IngestListener):
        def __init__(self) -> None:
            self.embedded: list[tuple[int, int]] = []

        def chunks_embedded(self, done: int, total: int) -> None:
            self.embedded.append((done, total))

    paragraphs = "\n\n".join(
        f"Paragraph {n}: the kettle model K{n} boils water." for n in range(300)
    )
    big = write(tmp_path / "big.txt", paragraphs)
    library.create("big", chunk_size=200, chunk_overlap=0)
    spy = Spy()
    outcome = library.get("big").add([big], listener=spy)[0]
    assert outcome.status == "indexed" and outcome.chunks > 32
    # One report per embedding batch (embedder.batch_size, 32), counting up to every chunk.
    assert len(spy.embedded) == -(-outcome.chunks // 32)
    assert spy.embedded[-1] == (outcome.chunks, outcome.chunks)
    assert [d for d, _ in spy.embedded] == sorted(d for d, _ in spy.embedded)


def test_small_files_land_before_a_big_one_is_embedded(library: Library, tmp_path: Path) -> None:
    from kbchat.kb.knowledge_base import IngestListener

    class Spy(IngestListener):
        def __init__(self) -> None:
            self.events: list[tuple[str, str | int]] = []

        def file_done(self, outcome: FileOutcome) -> None:
            self.events.append(("done", outcome.name))

        def chunks_embedded(self, done: int, total: int) -> None:
            self.events.append(("embedded", total))

    folder = tmp_path / "mixed"
    write(folder / "a.txt", "The K3 kettle boils water in two minutes.")
    write(folder / "b.txt", "Descale the kettle every month.")
    write(
        folder / "c.txt", "\n\n".join(f"Paragraph {n} about kettle model K{n}." for n in range(200))
    )
    library.create("mixed", chunk_size=200, chunk_overlap=0)
    spy = Spy()
    library.get("mixed").add([folder], listener=spy)
    # The two small files are committed (and reported) before the big one's batch starts.
    first_big = next(
        i for i, (kind, n) in enumerate(spy.events) if kind == "embedded" and int(n) > 2
    )
    assert {"a.txt", "b.txt"} <= {e[1] for e in spy.events[:first_big] if e[0] == "done"}


def test_files_waiting_in_an_add_are_listed_with_their_size(
    library: Library, tmp_path: Path
) -> None:
    from kbchat.kb.knowledge_base import IngestListener

    kb = library.create("sizes")
    first = write(tmp_path / "a.txt", "The K3 kettle boils water in two minutes.")
    second = write(tmp_path / "b.txt", "Descale the kettle every month. " * 50)
    seen: dict[str, tuple[str, int]] = {}

    class Spy(IngestListener):
        def file_done(self, outcome: FileOutcome) -> None:
            if not seen:  # the first file is done; the other still waits
                seen.update({r.name: (r.status, r.size) for r in library.get("sizes").files()})

    library.get(kb.name).add([first, second], listener=Spy())
    assert seen["b.txt"] == ("pending", second.stat().st_size)
    assert seen["a.txt"] == ("indexed", first.stat().st_size)


def test_a_cancelled_write_keeps_what_it_committed_and_leaves_the_rest_as_it_was(
    library: Library, tmp_path: Path
) -> None:
    from kbchat.kb.knowledge_base import IngestListener

    class StopAfterFirstBatch(IngestListener):
        """Asks to stop once the big file's first embedding batch is done."""

        def __init__(self) -> None:
            self.reason: str | None = None
            self.done: list[FileOutcome] = []

        def chunks_embedded(self, done: int, total: int) -> None:
            if total > 32:
                self.reason = "stopped by test"

        def cancelled(self) -> str | None:
            return self.reason

        def file_done(self, outcome: FileOutcome) -> None:
            self.done.append(outcome)

    folder = tmp_path / "mixed"  # files in name order: the small one is committed first
    write(folder / "a_small.txt", "The K3 kettle boils water in two minutes.")
    write(folder / "c_updated.txt", "The old manual says: descale every week.")
    library.create("mixed", chunk_size=200, chunk_overlap=0)
    kb = library.get("mixed")
    kb.add([folder / "c_updated.txt"])
    before = {r.name: (r.sha256, r.chunks, r.status) for r in kb.files()}
    write(
        folder / "c_updated.txt",
        "\n\n".join(f"New paragraph {n} on zebra care." for n in range(80)),
    )
    write(
        folder / "b_big.txt",
        "\n\n".join(f"Paragraph {n} about giraffe model G{n}." for n in range(200)),
    )
    spy = StopAfterFirstBatch()
    outcomes = kb.add([folder], listener=spy)

    status = {o.name: o.status for o in outcomes}
    assert status == {
        "a_small.txt": "indexed",
        "b_big.txt": "cancelled",
        "c_updated.txt": "cancelled",
    }
    assert [o.error for o in outcomes if o.status == "cancelled"] == ["stopped by test"] * 2
    assert spy.done == outcomes  # every file reported once, as it happened
    files = {r.name: (r.sha256, r.chunks, r.status) for r in kb.files()}
    assert set(files) == {"a_small.txt", "c_updated.txt"}  # the new big file left no pending row
    assert files["c_updated.txt"] == before["c_updated.txt"]  # the indexed version is untouched
    assert kb.stats()["chunks"] == files["a_small.txt"][1] + before["c_updated.txt"][1]
    assert all(h.file != "b_big.txt" for h in kb.search("giraffe model", top_k=5))
    assert kb.search("descale every week", top_k=1)[0].file == "c_updated.txt"
    assert_consistent(kb)
    again = {o.name: o.status for o in kb.add([folder])}  # nothing half-done blocks a rerun
    assert again == {"a_small.txt": "unchanged", "b_big.txt": "indexed", "c_updated.txt": "indexed"}
