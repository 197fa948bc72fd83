"""JobManager: serialised per knowledge base, parallel across them, progress and failures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from kbchat.errors import BadInput, KbchatError, NotFound
from kbchat.kb.jobs import JobManager
from kbchat.kb.knowledge_base import FileOutcome, IngestListener


def outcome(name: str, status: str = "indexed") -> FileOutcome:
    return FileOutcome(name, f"/x/{name}", status, None, 1)  # type: ignore[arg-type]


@pytest.fixture
def jobs() -> Iterator[JobManager]:
    manager = JobManager()
    yield manager
    manager.close(timeout=5)


def test_progress_is_recorded_per_file(jobs: JobManager) -> None:
    def work(listener: IngestListener) -> list[FileOutcome]:
        listener.started(2)
        for name in ("a.txt", "b.txt"):
            listener.file_done(outcome(name))
        return []

    refused = outcome("bad.pdf", "failed")
    job = jobs.submit("kb", "add", work, outcomes=[refused])
    done = jobs.wait(job.id, timeout=5)
    body = done.to_json()
    assert body["status"] == "done" and body["total"] == body["done"] == 3
    assert [f["name"] for f in body["files"]] == ["bad.pdf", "a.txt", "b.txt"]
    assert body["started_at"] <= body["finished_at"] and body["error"] is None


def test_jobs_of_one_kb_run_in_order_one_at_a_time(jobs: JobManager) -> None:
    running = 0
    most = 0
    order: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> Callable[[IngestListener], list[FileOutcome]]:
        def run(listener: IngestListener) -> list[FileOutcome]:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            order.append(i)
            threading.Event().wait(0.01)
            with lock:
                running -= 1
            return []

        return run

    submitted = [jobs.submit("kb", "add", work(i)) for i in range(6)]
    for job in submitted:
        jobs.wait(job.id, timeout=5)
    assert order == list(range(6)) and most == 1


def test_different_kbs_run_side_by_side(jobs: JobManager) -> None:
    both = threading.Barrier(2, timeout=5)

    def work(listener: IngestListener) -> list[FileOutcome]:
        both.wait()  # only passes if the other KB's job runs at the same time
        return []

    first, second = jobs.submit("a", "add", work), jobs.submit("b", "add", work)
    assert jobs.wait(first.id, 5).status == jobs.wait(second.id, 5).status == "done"


def test_a_failing_job_does_not_stop_the_next(jobs: JobManager) -> None:
    def bad_input(listener: IngestListener) -> list[FileOutcome]:
        raise BadInput("folder vanished")

    def crash(listener: IngestListener) -> list[FileOutcome]:
        raise RuntimeError("bug")

    failed = jobs.submit("kb", "sync", bad_input)
    crashed = jobs.submit("kb", "sync", crash)
    fine = jobs.submit("kb", "sync", lambda listener: [])
    assert jobs.wait(failed.id, 5).error == "folder vanished"
    assert jobs.wait(crashed.id, 5).status == "failed"
    assert "RuntimeError: bug" in (crashed.error or "")
    assert jobs.wait(fine.id, 5).status == "done"


def test_lookup_listing_and_forgetting() -> None:
    jobs = JobManager(keep=2)
    ids = [jobs.submit("kb", "add", lambda listener: []).id for _ in range(4)]
    for job_id in ids[-2:]:
        jobs.wait(job_id, 5)
    jobs.submit("other", "add", lambda listener: [])
    remembered = {job.id for job in jobs.list_jobs("kb")}
    assert ids[0] not in remembered and ids[-1] in remembered
    with pytest.raises(NotFound):
        jobs.get(ids[0])
    jobs.close(timeout=5)


def test_close_drops_queued_jobs_and_refuses_new_ones() -> None:
    jobs = JobManager()
    gate = threading.Event()
    started = threading.Event()

    def hold(listener: IngestListener) -> list[FileOutcome]:
        started.set()
        gate.wait(5)
        return []

    running = jobs.submit("kb", "add", hold)
    queued = jobs.submit("kb", "add", lambda listener: [])
    assert started.wait(5)
    closer = threading.Thread(target=jobs.close)
    closer.start()
    gate.set()
    closer.join(10)
    assert running.status == "done"
    assert queued.status == "failed" and "shut down" in (queued.error or "")
    with pytest.raises(KbchatError, match="shutting down"):
        jobs.submit("kb", "add", lambda listener: [])


def test_observers_hear_every_change_until_stopped(jobs: JobManager) -> None:
    heard: list[str] = []
    stop = jobs.observe(lambda: heard.append("change"))

    def work(listener: IngestListener) -> list[FileOutcome]:
        listener.started(1)
        listener.file_done(outcome("a.txt"))
        return []

    jobs.wait(jobs.submit("kb", "add", work).id, timeout=5)
    assert len(heard) == 4  # running, total, one file, finished
    stop()
    jobs.wait(jobs.submit("kb", "add", work).id, timeout=5)
    assert len(heard) == 4
