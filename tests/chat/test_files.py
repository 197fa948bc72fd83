"""Chat with files: temporary knowledge bases per conversation, with the scripted chat model."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.chat.files import FileChats, answer_sources, temporary_kb_name
from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.config import load_settings
from kbchat.errors import BadInput
from kbchat.kb.knowledge_base import FileOutcome, IngestListener
from kbchat.kb.library import Library
from kbchat.retrieve.search import SearchOptions
from kbchat.server.auth import Principal
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Answer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def library() -> Library:
    return Library(
        load_settings(embedder={"backend": "hash"}, ingest={"chunk_size": 60, "chunk_overlap": 0})
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def chats(library: Library, clock: Clock) -> FileChats:
    return FileChats(library, ttl_s=3600, clock=clock)


@pytest.fixture
def manual(tmp_path: Path) -> Path:
    path = tmp_path / "manual.txt"
    path.write_text(
        "The K3 kettle boils water in ninety seconds.\n\n"
        "Its warranty lasts two years from the date of purchase.\n\n"
        "Descale the kettle every month with citric acid.\n\n"
        "The base plugs into any socket of 220 to 240 volts.",
        encoding="utf-8",
    )
    return path


class Recorder(IngestListener):
    def __init__(self) -> None:
        self.outcomes: list[FileOutcome] = []

    def file_done(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)


def test_attached_file_is_searchable_and_hidden_from_listings(
    chats: FileChats, library: Library, manual: Path
) -> None:
    recorder = Recorder()
    outcomes = chats.attach("c1", None, [manual], listener=recorder)
    assert [(o.name, o.status) for o in outcomes] == [("manual.txt", "indexed")]
    assert recorder.outcomes == outcomes
    assert library.names() == [] and library.records() == []
    kb = chats.find("c1", None)
    assert kb is not None and kb.name == temporary_kb_name("c1", None)
    assert [f.name for f in chats.files("c1", None)] == ["manual.txt"]
    hits = kb.search("warranty two years", top_k=1)
    assert "warranty" in hits[0].text


def test_answer_from_files_alone_puts_a_small_file_whole_in_the_prompt(
    chats: FileChats, manual: Path
) -> None:
    chats.attach("c1", None, [manual])
    kb = chats.find("c1", None)
    model = ScriptedChatModel(["Two years [1]."])
    options = ChatOptions(search=SearchOptions(top_k=1), min_score=0.0, min_score_cross=0.0)
    kbs, whole = answer_sources([], kb, model, options, whole_tokens=1000)
    assert kbs == [kb] and whole.search.top_k >= 4 and whole.search.threshold == 0.0
    *_, answer = stream_answer(model, kbs, "How long is the warranty?", options=whole)
    prompt = model.received[0][-1].content
    for fact in ("ninety seconds", "two years", "citric acid", "240 volts"):
        assert fact in prompt
    assert isinstance(answer, Answer) and answer.citations[0].file == "manual.txt"


def test_a_file_over_the_budget_is_searched(chats: FileChats, manual: Path) -> None:
    chats.attach("c1", None, [manual])
    kb = chats.find("c1", None)
    model = ScriptedChatModel(["Two years [1]."])
    options = ChatOptions(search=SearchOptions(top_k=1), min_score=0.0, min_score_cross=0.0)
    for budget in (0, 5):
        kbs, searched = answer_sources([], kb, model, options, whole_tokens=budget)
        assert searched == options
    list(stream_answer(model, kbs, "How long is the warranty?", options=searched))
    prompt = model.received[0][-1].content
    assert "two years" in prompt and "citric acid" not in prompt


def test_files_beside_a_knowledge_base_keep_the_options(
    chats: FileChats, library: Library, manual: Path, tmp_path: Path
) -> None:
    other = tmp_path / "tea.txt"
    other.write_text("Green tea likes water at 80 degrees.", encoding="utf-8")
    library.create("tea")
    tea = library.get("tea")
    tea.add([other])
    chats.attach("c1", None, [manual])
    files_kb = chats.find("c1", None)
    options = ChatOptions()
    model = ScriptedChatModel()
    kbs, same = answer_sources([tea], files_kb, model, options, whole_tokens=10_000)
    assert kbs == [tea, files_kb] and same == options


def test_files_that_fail_say_why_like_kb_add(
    chats: FileChats, library: Library, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04 truncated")
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"\x00\x01")
    missing = tmp_path / "gone.pdf"
    outcomes = {o.name: o for o in chats.attach("c1", None, [empty, broken, odd, missing])}
    assert outcomes["empty.txt"].status == "failed"
    assert outcomes["empty.txt"].error == "empty.txt: file is empty (0 bytes)"
    assert outcomes["broken.docx"].status == "failed"
    assert outcomes["broken.docx"].error is not None
    assert outcomes["broken.docx"].error.startswith("broken.docx: ")
    assert outcomes["data.bin"].status == "skipped"
    assert "unsupported file type .bin" in (outcomes["data.bin"].error or "")
    assert outcomes["gone.pdf"].error == f"{missing}: no such file"
    # the same files in a knowledge base give the same messages
    library.create("same")
    same = {o.name: o.error for o in library.get("same").add([empty, broken, odd])}
    assert all(same[name] == outcomes[name].error for name in same)
    kb = chats.find("c1", None)
    model = ScriptedChatModel()
    assert answer_sources([], kb, model, ChatOptions(), whole_tokens=100) == ([], ChatOptions())


def test_delete_drops_the_knowledge_base_and_its_folder(
    chats: FileChats, library: Library, manual: Path
) -> None:
    chats.attach("c1", None, [manual])
    folder = chats.folder("c1", None)
    folder.mkdir(parents=True)
    (folder / "upload.txt").write_text("x", encoding="utf-8")
    assert chats.delete("c1", None) is True
    assert chats.find("c1", None) is None and not folder.exists()
    assert library.catalog.kb_names() == []
    assert chats.delete("c1", None) is False


def test_expire_drops_only_what_went_unused(
    chats: FileChats, library: Library, clock: Clock, manual: Path
) -> None:
    chats.attach("old", None, [manual])
    clock.now += 1800
    chats.attach("new", None, [manual])
    clock.now += 1801  # "old" unused for 3601 s, "new" for 1801 s
    assert chats.expire() == [temporary_kb_name("old", None)]
    assert chats.find("old", None) is None and chats.find("new", None) is not None
    clock.now += 3000  # find() above counted as a use of "new"
    assert chats.expire() == []


def test_expire_drops_a_temporary_kb_left_without_its_row(
    chats: FileChats, library: Library
) -> None:
    library.create("~files-orphan", temporary=True)
    assert chats.expire() == ["~files-orphan"]
    assert library.catalog.kb_names() == []


def test_conversations_of_different_owners_never_share_files(
    chats: FileChats, manual: Path
) -> None:
    chats.attach("c1", "alice", [manual])
    assert chats.find("c1", "bob") is None and chats.find("c1", None) is None
    assert temporary_kb_name("c1", "alice") != temporary_kb_name("c1", "bob")


def test_temporary_names_are_reserved(library: Library) -> None:
    with pytest.raises(BadInput, match="start with '~'"):
        library.create("~mine")
    with pytest.raises(BadInput, match="start with '~'"):
        library.create("plain", temporary=True)
    admin = Principal(None)
    assert admin.can("docs", "read") and not admin.can(temporary_kb_name("c1", None), "read")


def test_an_image_only_pdf_says_it_has_no_text(chats: FileChats, tmp_path: Path) -> None:
    from tests.ingest.test_pdf import make_pdf

    scan = make_pdf(tmp_path / "scan.pdf", [None])
    (outcome,) = chats.attach("c1", None, [scan])
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("scan.pdf: no text found: 1 page(s) without a text layer")
