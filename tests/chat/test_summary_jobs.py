"""Summary jobs: planned with their expected seconds, followed file by file, cancellable."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kbchat.chat.summaries import SummaryStore
from kbchat.chat.summarize import SummaryOptions
from kbchat.chat.summary_jobs import SummaryJobs
from kbchat.config import load_settings
from kbchat.errors import BadInput, NotFound
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import Library
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Delta, Message

WAIT_S = 30.0  # a bound for a hung job, never a pause


class GatedModel(ScriptedChatModel):
    """Answers after ``gate`` opens; says when a call has begun."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.called = threading.Event()

    def stream(self, messages: Sequence[Message], **params: Any) -> Iterator[Delta]:
        self.called.set()
        cancel: threading.Event | None = params.get("cancel")
        while not self.gate.wait(0.05):
            if cancel is not None and cancel.is_set():
                break
        return super().stream(messages, **params)


@pytest.fixture
def lab(tmp_path: Path) -> KnowledgeBase:
    library = Library(load_settings(embedder={"backend": "hash"}))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The kettle boils in ninety seconds. " * 40, encoding="utf-8")
    (docs / "b.txt").write_text("The toaster has four slots. " * 40, encoding="utf-8")
    kb = library.ensure("lab")
    kb.add([docs])
    return kb


def test_a_job_summarises_each_file_then_the_whole(lab: KnowledgeBase) -> None:
    jobs = SummaryJobs()
    model = ScriptedChatModel(["Kettles.", "Toasters.", "Kitchen appliances."])
    job = jobs.start(lab, model, ["a.txt", "b.txt"], options=SummaryOptions())
    assert job.estimated_s > 0 and all(f.estimated_s > 0 for f in job.files)
    assert job.finished.wait(WAIT_S)
    assert job.status == "done" and job.overview_text == "Kitchen appliances."
    assert [(f.file, f.status, f.cached) for f in job.files] == [
        ("a.txt", "done", False),
        ("b.txt", "done", False),
    ]
    kept = SummaryStore(lab.catalog.engine).for_files(lab.record.id, lab.files())
    assert {name: s.text for name, s in kept.items()} == {"a.txt": "Kettles.", "b.txt": "Toasters."}
    again = jobs.start(lab, model, ["a.txt"], options=SummaryOptions(), overview=False)
    assert again.estimated_s == 0  # kept: nothing to make
    assert again.finished.wait(WAIT_S) and again.files[0].cached
    assert [j.id for j in jobs.list("lab")] == [again.id, job.id]


def test_a_cancelled_job_stops_and_keeps_what_it_finished(lab: KnowledgeBase) -> None:
    jobs = SummaryJobs()
    model = GatedModel(["Kettles."])
    job = jobs.start(lab, model, ["a.txt", "b.txt"], options=SummaryOptions())
    assert model.called.wait(WAIT_S)
    assert jobs.cancel("lab", job.id) is job
    assert job.finished.wait(WAIT_S)
    assert job.status == "cancelled"
    assert [f.status for f in job.files] == ["cancelled", "cancelled"]
    assert len(model.received) <= 1 and job.overview_text is None
    assert SummaryStore(lab.catalog.engine).for_files(lab.record.id, lab.files()) == {}


def test_unknown_files_and_jobs_are_refused(lab: KnowledgeBase) -> None:
    jobs = SummaryJobs()
    model = ScriptedChatModel()
    with pytest.raises(NotFound, match="nope.txt"):
        jobs.start(lab, model, ["nope.txt"], options=SummaryOptions())
    with pytest.raises(BadInput, match="no indexed file"):
        jobs.start(lab, model, [], options=SummaryOptions())
    with pytest.raises(NotFound, match="no summary job 'x1'"):
        jobs.cancel("lab", "x1")
    assert jobs.list("lab") == []
