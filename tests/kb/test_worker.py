"""Workers running the real ops on a real library: uploads added and removed, bytes carried by
the catalog to a worker on another machine, and a file whose embedding keeps failing marked
failed with the reason."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kbchat.app import Services, build
from kbchat.config import load_settings
from kbchat.errors import BackendError
from kbchat.kb import job_leases
from kbchat.kb.jobs import JobQueue
from kbchat.kb.prepare import file_sha256
from kbchat.kb.task_ops import add_tasks, rebuild_task, this_host
from kbchat.kb.worker import Worker
from tests.kb.support import drain, services, staged_replacement, with_upload


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_leases, "BACKOFF_S", 0.0)


def test_a_file_whose_embedding_keeps_failing_is_marked_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = services(tmp_path / "a", f"sqlite:///{tmp_path / 'catalog.db'}")
    here.library.create("docs")
    kb = here.library.get("docs")
    source = tmp_path / "tea.txt"
    source.write_text("Green tea is brewed at eighty degrees.")

    def down(texts: object, *, is_query: bool = False) -> object:
        raise BackendError("embedding server at http://127.0.0.1:9 refused the connection")

    monkeypatch.setattr(kb.embedder, "embed_batch", down)
    queue = JobQueue(here.library.catalog)
    job = queue.submit("docs", "add", add_tasks([("tea.txt", source, "")], shared=False))
    drain(Worker(here, queue))
    finished = queue.get(job.id)
    assert finished.status == "failed" and "gave up after 3 attempts" in (finished.error or "")
    [record] = kb.files()
    assert record.status == "failed" and "refused the connection" in (record.error or "")


def test_the_same_file_uploaded_twice_at_once_is_indexed_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    here = services(tmp_path / "a", url)
    record = here.library.create("docs")
    upload = here.settings.home / "uploads" / str(record.id) / "kettle.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("The K3 kettle warranty lasts two years.")
    sha = file_sha256(upload)
    queue = JobQueue(here.library.catalog)
    jobs = [
        queue.submit("docs", "add", add_tasks([("kettle.txt", upload, sha)], shared=False))
        for _ in range(2)
    ]
    workers = [
        Worker(here, queue),
        Worker(services(tmp_path / "b", url), JobQueue(here.library.catalog)),
    ]
    # two workers (two machines) ask at once: the second task waits for the first
    first, second = (
        workers[0].queue.claim("w1", workers[0].host),
        workers[1].queue.claim("w2", workers[1].host),
    )
    assert len(first) == 1 and second == []
    workers[0].queue.retry([first[0].id], "handed back for the test")
    while any(w.run_once() for w in workers):
        pass
    statuses = [queue.get(job.id).files[0].status for job in jobs]
    assert statuses == ["indexed", "unchanged"]
    assert here.library.get("docs").stats()["chunks"] == 1


def test_a_worker_logs_each_task_and_file_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    here = services(tmp_path / "a", f"sqlite:///{tmp_path / 'catalog.db'}")
    record = here.library.create("docs")
    folder = here.settings.home / "uploads" / str(record.id)
    folder.mkdir(parents=True)
    good, bad = folder / "kettle.txt", folder / "empty.txt"
    good.write_text("The K3 kettle warranty lasts two years.")
    bad.write_text("")
    queue = JobQueue(here.library.catalog)
    queue.submit(
        "docs",
        "add",
        add_tasks([(p.name, p, file_sha256(p)) for p in (good, bad)], shared=False),
    )
    with caplog.at_level("INFO", logger="kbchat.kb.worker"):
        drain(Worker(here, queue))
    lines = [r.getMessage() for r in caplog.records if r.name == "kbchat.kb.worker"]
    assert any("add on 'docs'" in line for line in lines)
    assert any(line.startswith("kettle.txt: indexed (") for line in lines)
    assert any(line.startswith("empty.txt: failed: ") for line in lines)


def test_dropping_a_kb_cancels_its_queued_writes(tmp_path: Path) -> None:
    here, _kb_id, upload = with_upload(tmp_path)
    queue = JobQueue(here.library.catalog)
    job = queue.submit(
        "docs", "add", add_tasks([("kettle.txt", upload, file_sha256(upload))], shared=False)
    )
    here.library.drop("docs")
    here.library.create("docs")  # a new knowledge base under the same name
    drain(Worker(here, queue))
    assert here.library.get("docs").files() == []
    dropped = queue.get(job.id)
    assert dropped.status == "failed" and "was dropped" in (dropped.error or "")


def test_a_cancelled_upload_leaves_the_kb_as_it_was_for_the_file_in_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from kbchat.kb.cancel import cancel_job

    here = services(tmp_path / "a", f"sqlite:///{tmp_path / 'catalog.db'}")
    record = here.library.create("docs", chunk_size=200, chunk_overlap=0)
    folder = here.settings.home / "uploads" / str(record.id)
    folder.mkdir(parents=True)
    small, big, manual = folder / "a_small.txt", folder / "b_big.txt", folder / "c_manual.txt"
    manual.write_text("The old manual says: descale the kettle every week.")
    queue = JobQueue(here.library.catalog)
    queue.submit("docs", "add", add_tasks([(manual.name, manual, "")], shared=False))
    drain(Worker(here, queue))
    kb = here.library.get("docs")
    before = {r.name: (r.sha256, r.chunks, r.status) for r in kb.files()}
    small.write_text("The K3 kettle boils water in two minutes.")
    big.write_text("\n\n".join(f"Paragraph {n} about giraffe model G{n}." for n in range(200)))
    manual.write_text("\n\n".join(f"New paragraph {n} on zebra care." for n in range(60)))
    uploads = [(p.name, p, file_sha256(p)) for p in (small, big, manual)]
    here.library.catalog.mark_pending(
        record.id, [(n, str(p), p.stat().st_size) for n, p, _ in uploads]
    )  # as the API
    entered, release = threading.Event(), threading.Event()
    embed = kb.embedder.embed_batch

    def gated(texts: list[str], *, is_query: bool = False) -> object:
        if not is_query and any("giraffe" in t for t in texts):
            entered.set()
            assert release.wait(10)
        return embed(texts, is_query=is_query)

    monkeypatch.setattr(kb.embedder, "embed_batch", gated)
    job = queue.submit("docs", "add", add_tasks(uploads, shared=False))
    worker = Worker(here, queue)
    running = threading.Thread(target=worker.run_once)
    running.start()
    try:
        assert entered.wait(10)  # a_small.txt is committed; b_big.txt's first batch embeds
        elsewhere = JobQueue(here.library.catalog)  # e.g. `kbchat kb cancel` in a shell
        assert cancel_job(here.library, elsewhere, job.id, "cancelled by test").status == "running"
    finally:
        release.set()
        running.join(10)
    done = queue.get(job.id)
    assert (done.status, done.error) == ("cancelled", "cancelled by test")
    assert [(f.name, f.status) for f in done.files] == [
        ("a_small.txt", "indexed"),
        ("b_big.txt", "cancelled"),
        ("c_manual.txt", "cancelled"),
    ]
    files = {r.name: (r.sha256, r.chunks, r.status) for r in kb.files()}
    assert set(files) == {"a_small.txt", "c_manual.txt"}  # no pending row for b_big.txt
    assert files["c_manual.txt"] == before["c_manual.txt"]  # the indexed version is kept
    assert kb.stats()["chunks"] == files["a_small.txt"][1] + before["c_manual.txt"][1]
    assert all(hit.file != "b_big.txt" for hit in kb.search("giraffe model", top_k=5))
    assert kb.search("descale the kettle every week", top_k=1)[0].file == "c_manual.txt"
    assert kb.search("kettle boils water", top_k=1)[0].file == "a_small.txt"
    assert not big.exists() and small.exists()  # the cancelled new upload's copy goes


def _gated_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, texts: dict[str, str]
) -> tuple[Services, JobQueue, str, threading.Event, threading.Event, list[list[str]]]:
    """A KB embedding one chunk per call, whose first embedding call waits to be released;
    a job adding ``texts`` (file name -> text) queued."""
    here = build(
        load_settings(
            home=tmp_path / "a",
            embedder={"backend": "hash", "batch_size": 1},
            catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        )
    )
    record = here.library.create("docs", chunk_size=200, chunk_overlap=0)
    folder = here.settings.home / "uploads" / str(record.id)
    folder.mkdir(parents=True)
    for name, text in texts.items():
        (folder / name).write_text(text)
    kb = here.library.get("docs")
    entered, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []
    embed = kb.embedder.embed_batch

    def gated(batch: list[str], *, is_query: bool = False) -> object:
        if not is_query:
            calls.append(list(batch))
            if len(calls) == 1:
                entered.set()
                assert release.wait(10)
        return embed(batch, is_query=is_query)

    monkeypatch.setattr(kb.embedder, "embed_batch", gated)
    queue = JobQueue(here.library.catalog)
    found = [(name, folder / name, file_sha256(folder / name)) for name in texts]
    job = queue.submit("docs", "add", add_tasks(found, shared=False))
    return here, queue, job.id, entered, release, calls


def test_a_stopping_worker_commits_the_file_in_hand_and_starts_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = {
        "a.txt": "The kettle boils water.",
        "b.txt": "Giraffes eat leaves.",
        "c.txt": "Zebras have stripes.",
    }
    here, queue, job_id, entered, release, calls = _gated_library(tmp_path, monkeypatch, texts)
    worker = Worker(here, queue)
    running = threading.Thread(target=worker.run_once)
    running.start()
    try:
        assert entered.wait(10)  # a.txt's one chunk is being embedded
        assert worker.in_hand() == ("docs", ["a.txt"])
        worker.stop_soon()  # the first Ctrl-C
    finally:
        release.set()
        running.join(10)
    assert calls == [["The kettle boils water."]]  # no other file was started
    job = queue.get(job_id)
    assert [(f.name, f.status) for f in job.files] == [
        ("a.txt", "indexed"),
        ("b.txt", "pending"),
        ("c.txt", "pending"),
    ]
    assert job.status == "queued" and (job.done, job.total) == (1, 3)  # waits for a worker
    listed = {r.name: r.status for r in here.library.get("docs").files()}
    assert listed == {"a.txt": "indexed", "b.txt": "pending", "c.txt": "pending"}  # handed back
    drain(Worker(here, queue))  # the next start: the files handed back run, as first tries
    job = queue.get(job_id)
    assert job.status == "done" and [f.status for f in job.files] == ["indexed"] * 3


def test_a_stopping_worker_leaves_a_file_at_its_next_embedding_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paragraphs = "\n\n".join(f"Paragraph {n} on giraffe model G{n}, " * 6 for n in range(4))
    texts = {"big.txt": paragraphs, "small.txt": "Zebras have stripes."}
    here, queue, job_id, entered, release, calls = _gated_library(tmp_path, monkeypatch, texts)
    worker = Worker(here, queue)
    running = threading.Thread(target=worker.run_once)
    running.start()
    try:
        assert entered.wait(10)
        worker.stop_soon()
    finally:
        release.set()
        running.join(10)
    assert len(calls) == 1  # stopped after the batch in hand
    job = queue.get(job_id)
    assert job.status == "queued" and job.chunks_done is None  # waits for the next worker
    assert [(f.name, f.status) for f in job.files] == [
        ("big.txt", "pending"),
        ("small.txt", "pending"),
    ]
    assert here.library.get("docs").stats()["chunks"] == 0
    listed = {r.name: r.status for r in here.library.get("docs").files()}
    assert listed == {"big.txt": "pending", "small.txt": "pending"}  # still listed, to be written


def test_a_file_committed_just_before_its_worker_died_shows_indexed_not_unchanged(
    tmp_path: Path,
) -> None:
    from sqlalchemy import update

    from kbchat.ingest.discover import FoundFile
    from kbchat.store.catalog_schema import job_tasks

    here, _kb_id, upload = with_upload(tmp_path)
    queue = JobQueue(here.library.catalog)
    job = queue.submit(
        "docs", "add", add_tasks([("kettle.txt", upload, file_sha256(upload))], shared=False)
    )
    assert queue.claim("killed-worker", this_host())
    # it committed the file, then was killed before recording what happened
    here.library.get("docs").add_found([FoundFile("kettle.txt", upload)])
    with here.library.catalog.engine.begin() as conn:
        conn.execute(update(job_tasks).values(lease_expires=0.0))
    drain(Worker(here, queue))  # the next start takes the task back and runs it again
    [outcome] = queue.get(job.id).files
    assert (outcome.status, outcome.chunks) == ("indexed", 1)


def test_staged_copies_no_unfinished_task_names_are_swept(tmp_path: Path) -> None:
    import os

    from kbchat.kb.originals import sweep_staged

    here, kb_id, upload = with_upload(tmp_path, "m.json", b'{"a": 1}')
    waiting = staged_replacement(here, kb_id, "m.json", b'{"a": 2}')
    orphan = staged_replacement(here, kb_id, "m.json", b'{"a": 3}')
    fresh = staged_replacement(here, kb_id, "m.json", b'{"a": 4}')
    for path in (waiting, orphan):
        os.utime(path, (1.0, 1.0))  # long ago
    queue = JobQueue(here.library.catalog)
    queue.submit(
        "docs",
        "add",
        add_tasks(
            [("m.json", upload, file_sha256(waiting))], shared=False, staged={"m.json": waiting}
        ),
    )
    assert sweep_staged(here.library.catalog, here.settings) == 1
    assert waiting.exists() and fresh.exists() and not orphan.exists()
    assert not orphan.parent.exists() and upload.read_bytes() == b'{"a": 1}'


def test_work_stopped_by_an_error_fails_only_the_files_not_yet_decided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbchat.errors import BadInput

    texts = {"a.txt": "The kettle boils water.", "b.txt": "Giraffes eat leaves."}
    here, queue, job_id, _, release, _ = _gated_library(tmp_path, monkeypatch, texts)
    release.set()
    kb = here.library.get("docs")
    embed = kb.embedder.embed_batch

    def refusing(batch: list[str], *, is_query: bool = False) -> object:
        if any("Giraffes" in text for text in batch):
            raise BadInput("the embedder refuses giraffes")
        return embed(batch, is_query=is_query)

    monkeypatch.setattr(kb.embedder, "embed_batch", refusing)
    drain(Worker(here, queue))
    job = queue.get(job_id)
    assert job.status == "failed" and "refuses giraffes" in (job.error or "")
    files = {r.name: (r.status, r.error) for r in kb.files()}
    assert files["a.txt"] == ("indexed", None)  # decided before the error: left alone
    assert files["b.txt"][0] == "failed" and "refuses giraffes" in (files["b.txt"][1] or "")


def test_a_finished_add_and_rebuild_report_the_chunks_they_wrote(tmp_path: Path) -> None:
    text = "\n\n".join(
        f"Paragraph {n}: the K{n} kettle boils in {n + 30} s. " * 8 for n in range(6)
    )
    here, _, upload = with_upload(tmp_path, data=text.encode())
    try:
        queue = JobQueue(here.library.catalog)
        added = queue.submit(
            "docs", "add", add_tasks([("kettle.txt", upload, file_sha256(upload))], shared=False)
        )
        drain(Worker(here, queue))
        stored = here.library.get("docs").stats()["chunks"]
        assert stored > 1
        rebuilt = queue.submit("docs", "rebuild", [rebuild_task()])
        drain(Worker(here, queue))
        for job_id in (added.id, rebuilt.id):
            body = queue.get(job_id).to_json()
            assert body["status"] == "done" and body["chunks"] == stored
            assert (body["chunks_done"], body["chunks_total"]) == (None, None)  # none in hand
    finally:
        here.close()
