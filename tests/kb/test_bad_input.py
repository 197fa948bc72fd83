"""KnowledgeBase against odd file systems and oversized input: each bad file fails alone."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kbchat.config import load_settings
from kbchat.errors import BadInput
from kbchat.kb.knowledge_base import FileOutcome, IngestListener, KnowledgeBase
from kbchat.kb.library import Library
from kbchat.kb.prepare import file_sha256


def kb_with(library: Library, **settings: object) -> KnowledgeBase:
    if settings:
        library = Library(load_settings(embedder={"backend": "hash"}, ingest=settings))
    library.create("m", chunk_size=100, chunk_overlap=20)
    return library.get("m")


def chunk_texts(kb: KnowledgeBase, name: str) -> list[str]:
    ids = kb.catalog.chunk_ids_for_files(kb.record.id, [name]).tolist()
    return [row.chunk.text for row in kb.catalog.get_chunks(ids).values()]


def assert_consistent(kb: KnowledgeBase) -> None:
    truth = set(kb.catalog.chunk_ids(kb.record.id).tolist())
    assert set(kb.index.fresh_vectors().ids().tolist()) == truth
    assert kb.index.fresh_lexical().count() == len(truth)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.txt").write_text("The library opens at nine.")
    return root


# -- file types and names ------------------------------------------------------------


def test_a_fifo_is_skipped_without_being_opened(library: Library, folder: Path) -> None:
    os.mkfifo(folder / "pipe.txt")
    kb = kb_with(library)
    outcomes: list[FileOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.extend(kb.add([folder])))
    worker.start()
    worker.join(timeout=120)  # a deadlock guard: opening the pipe would block forever
    assert not worker.is_alive(), "kb.add blocked on the named pipe"
    statuses = {o.name: (o.status, o.error) for o in outcomes}
    assert statuses["a.txt"] == ("indexed", None)
    assert statuses["pipe.txt"] == (
        "skipped",
        "pipe.txt: is a named pipe (FIFO), not a regular file",
    )
    assert {f.name: f.status for f in kb.files()} == {"a.txt": "indexed", "pipe.txt": "skipped"}


def test_hashing_refuses_a_pipe_without_blocking(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.txt"
    os.mkfifo(pipe)
    with pytest.raises(BadInput, match=r"pipe\.txt: is a named pipe"):
        file_sha256(pipe)


def test_undecodable_file_name_is_indexed_and_shown_readably(
    library: Library, folder: Path
) -> None:
    with open(os.fsencode(folder) + b"/caf\xe9.txt", "w") as handle:
        handle.write("The menu of the day is soup.")
    kb = kb_with(library)
    assert {o.name: o.status for o in kb.add([folder])} == {
        "a.txt": "indexed",
        "caf\\xe9.txt": "indexed",
    }
    assert "soup" in kb.search("menu of the day", top_k=1)[0].text
    assert {o.name: o.status for o in kb.sync(folder)} == {
        "a.txt": "unchanged",
        "caf\\xe9.txt": "unchanged",
    }
    rebuilt = {o.name: o.status for o in kb.rebuild()}
    assert rebuilt == {"a.txt": "indexed", "caf\\xe9.txt": "indexed"}
    assert_consistent(kb)


# -- symbolic links ------------------------------------------------------------------


@pytest.fixture
def leak(folder: Path, tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("zebra-passphrase-7741")
    (folder / "leak.txt").symlink_to(secret)
    (folder / "same.txt").symlink_to(folder / "a.txt")
    return secret


def _indexed_text(kb: KnowledgeBase) -> str:
    return " ".join(text for record in kb.files() for text in chunk_texts(kb, record.name))


def test_links_out_of_the_folder_are_never_indexed_by_default(
    library: Library, folder: Path, leak: Path
) -> None:
    kb = kb_with(library)
    outcomes = {o.name: o for o in kb.add([folder])}
    assert outcomes["same.txt"].status == "indexed"
    assert outcomes["leak.txt"].status == "skipped"
    assert "outside the folder" in (outcomes["leak.txt"].error or "")
    kb.sync(folder)
    kb.rebuild()
    assert "7741" not in _indexed_text(kb)
    assert {f.name: f.status for f in kb.files()}["leak.txt"] == "skipped"


def test_follow_symlinks_is_the_callers_choice(library: Library, folder: Path, leak: Path) -> None:
    kb = kb_with(library)
    outcomes = {o.name: o.status for o in kb.sync(folder, follow_symlinks=True)}
    assert outcomes["leak.txt"] == "indexed"
    assert "7741" in _indexed_text(kb)


# -- unbounded work ------------------------------------------------------------------


def test_identical_chunks_are_stored_once_per_file(library: Library, folder: Path) -> None:
    (folder / "big.txt").write_text("longline word " * 20_000)  # 280k characters, one line
    kb = kb_with(library)
    outcomes = {o.name: o for o in kb.add([folder])}
    big = outcomes["big.txt"]
    assert big.status == "indexed"
    texts = chunk_texts(kb, "big.txt")
    assert len(texts) == len(set(texts)) == big.chunks
    assert big.chunks < 20  # a repeating 14-character phrase has few distinct windows
    assert_consistent(kb)


def test_a_file_over_the_chunk_budget_fails_alone_naming_the_setting(
    library: Library, folder: Path
) -> None:
    (folder / "novel.txt").write_text(" ".join(f"sentence{i} says {i * 7}." for i in range(3000)))
    kb = kb_with(library, max_chunks_per_file=50)
    outcomes = {o.name: o for o in kb.add([folder])}
    assert outcomes["a.txt"].status == "indexed"
    error = outcomes["novel.txt"].error or ""
    assert outcomes["novel.txt"].status == "failed"
    assert error.startswith("novel.txt: has more than 50 distinct chunks")
    assert "ingest.max_chunks_per_file" in error
    assert chunk_texts(kb, "novel.txt") == []
    assert_consistent(kb)


def test_a_failed_update_over_budget_keeps_the_previous_version(
    library: Library, folder: Path
) -> None:
    kb = kb_with(library, max_chunks_per_file=50)
    doc = folder / "a.txt"
    kb.add([doc])
    before = chunk_texts(kb, "a.txt")
    doc.write_text(" ".join(f"word{i}" for i in range(5000)))
    assert kb.add([doc])[0].status == "failed"
    assert chunk_texts(kb, "a.txt") == before
    assert_consistent(kb)


def test_small_files_are_not_queued_behind_a_large_one(library: Library, folder: Path) -> None:
    (folder / "0-large.txt").write_text("word " * 300_000)  # 1.5 MB, sorts first by name
    (folder / "z-small.txt").write_text("Small file.")
    kb = kb_with(library)
    order: list[str] = []

    class Recorder(IngestListener):
        def file_done(self, outcome: FileOutcome) -> None:
            order.append(outcome.name)

    kb.add([folder], listener=Recorder())
    assert order.index("0-large.txt") > order.index("z-small.txt")
    assert order.index("0-large.txt") > order.index("a.txt")


# -- counting ------------------------------------------------------------------------


def test_new_chunks_counts_only_text_the_file_did_not_have(library: Library, folder: Path) -> None:
    doc = folder / "manual.txt"
    paragraphs = [f"Paragraph {i} explains step {i} of the setup in plain words." for i in range(8)]
    doc.write_text("\n\n".join(paragraphs))
    kb = kb_with(library)
    first = kb.add([doc])[0]
    assert first.new_chunks == first.chunks > 2
    doc.write_text("\n\n".join([*paragraphs, "A new closing paragraph about the warranty."]))
    second = kb.add([doc])[0]
    assert second.status == "indexed"
    assert 1 <= second.new_chunks < second.chunks
    forced = kb.add([doc], force=True)[0]
    assert forced.status == "indexed" and forced.new_chunks == 0


def test_a_loaders_note_reaches_the_outcome(library: Library, folder: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["a", "b"])
    workbook.active.append([1, "=A2*2"])
    workbook.save(folder / "calc.xlsx")
    outcome = {o.name: o for o in kb_with(library).add([folder])}["calc.xlsx"]
    assert outcome.status == "indexed"
    assert len(outcome.notes) == 1 and "formula cells without a saved value" in outcome.notes[0]
