"""The job queue in the catalog: jobs submitted, followed, listed, cancelled, and the progress
its workers report (files, chunks); on SQLite and (marker postgres) on PostgreSQL. Claiming and
leases: test_job_leases."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kbchat.errors import BackendError, BadInput, Conflict, KbchatError, NotFound
from kbchat.kb import task_listener
from kbchat.kb.jobs import JobQueue, Task
from kbchat.kb.prepare import FileOutcome
from kbchat.kb.worker import Work
from kbchat.store.catalog import Catalog
from tests.kb.support import Op, outcome, run_until_idle, worker


def test_progress_is_recorded_per_file(queue: JobQueue) -> None:
    def add(work: Work) -> None:
        for task in work.tasks:
            assert task.file is not None
            work.listener.file_done(outcome(task.file))

    refused = outcome("bad.pdf", "failed")
    job = queue.submit(
        "kb", "add", [Task("add", file="a.txt"), Task("add", file="b.txt")], outcomes=[refused]
    )
    assert queue.get(job.id).status == "queued" and job.total == 3 and job.done == 1
    run_until_idle(worker(queue, {"add": add}))
    body = queue.get(job.id).to_json()
    assert body["status"] == "done" and body["total"] == body["done"] == 3
    assert [f["name"] for f in body["files"]] == ["bad.pdf", "a.txt", "b.txt"]
    assert body["started_at"] <= body["finished_at"] and body["error"] is None


def test_a_job_lists_every_file_from_the_start(queue: JobQueue) -> None:
    seen: list[list[tuple[str, str]]] = []
    job_id = ""

    def states() -> list[tuple[str, str]]:
        return [(f.name, f.status) for f in queue.get(job_id).files]

    def add(work: Work) -> None:  # as the knowledge base runs it: one file after the other
        seen.append(states())  # claimed together, none started yet
        for task in work.tasks:
            assert task.file is not None
            work.listener.file_started(task.file)
            seen.append(states())
            work.listener.file_done(outcome(task.file))

    tasks = [
        Task("add", file="a.txt", payload={"path": "/in/a.txt"}),
        Task("add", file="b.txt", payload={"path": "/in/b.txt"}),
    ]
    job_id = queue.submit("kb", "add", tasks, outcomes=[outcome("bad.pdf", "failed")]).id
    waiting = queue.get(job_id).to_json()["files"]
    assert [(f["name"], f["path"], f["status"]) for f in waiting] == [
        ("bad.pdf", "/x/bad.pdf", "failed"),
        ("a.txt", "/in/a.txt", "pending"),
        ("b.txt", "/in/b.txt", "pending"),
    ]
    run_until_idle(worker(queue, {"add": add}))
    assert seen == [  # only the file in hand is running; the others wait their turn
        [("bad.pdf", "failed"), ("a.txt", "pending"), ("b.txt", "pending")],
        [("bad.pdf", "failed"), ("a.txt", "running"), ("b.txt", "pending")],
        [("bad.pdf", "failed"), ("a.txt", "indexed"), ("b.txt", "running")],
    ]
    assert states() == [("bad.pdf", "failed"), ("a.txt", "indexed"), ("b.txt", "indexed")]


def test_a_whole_kb_task_counts_the_files_it_finds(queue: JobQueue) -> None:
    def sync(work: Work) -> None:
        work.listener.started(2)
        work.listener.file_done(outcome("a.txt"))
        work.listener.file_done(outcome("b.txt", "removed"))

    job = queue.submit("kb", "sync", [Task("sync")])
    run_until_idle(worker(queue, {"sync": sync}))
    done = queue.get(job.id)
    assert (done.status, done.total, done.done) == ("done", 2, 2)


def test_a_big_file_shows_its_chunks_embedded_while_it_runs(
    queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_listener, "PROGRESS_EVERY_S", 0.0)
    seen: list[tuple[int | None, int | None]] = []
    job_id = ""

    def add(work: Work) -> None:
        for done in (32, 64, 100):
            work.listener.chunks_embedded(done, 100)
            running = queue.get(job_id)
            seen.append((running.chunks_done, running.chunks_total))
        work.listener.file_done(outcome("big.pdf"))

    job_id = queue.submit("kb", "add", [Task("add", file="big.pdf")]).id
    run_until_idle(worker(queue, {"add": add}))
    assert seen == [(32, 100), (64, 100), (100, 100)]
    finished = queue.get(job_id).to_json()
    assert (finished["chunks_done"], finished["chunks_total"], finished["done"]) == (None, None, 1)
    assert finished["chunks"] == 1  # what its indexed file holds


def test_a_job_counts_the_chunks_its_indexed_files_were_written_with(queue: JobQueue) -> None:
    def sync(work: Work) -> None:
        work.listener.started(4)
        for name, status, chunks in [
            ("a.txt", "indexed", 5),
            ("b.txt", "unchanged", 7),
            ("c.txt", "removed", 3),
            ("d.txt", "indexed", 2),
        ]:
            work.listener.file_done(FileOutcome(name, f"/x/{name}", status, None, chunks))  # type: ignore[arg-type]

    job = queue.submit("kb", "sync", [Task("sync")])
    assert (job.chunks, job.chunks_done, job.chunks_total) == (0, None, None)
    run_until_idle(worker(queue, {"sync": sync}))
    body = queue.get(job.id).to_json()
    assert (body["chunks"], body["chunks_done"], body["chunks_total"]) == (7, None, None)


def test_chunk_progress_is_written_at_most_once_a_second_and_always_at_the_end(
    queue: JobQueue,
) -> None:
    writes: list[tuple[int, int]] = []

    def add(work: Work) -> None:
        for done in range(32, 1001, 32):
            work.listener.chunks_embedded(min(done, 1000), 1000)
        work.listener.chunks_embedded(1000, 1000)
        work.listener.file_done(outcome("big.pdf"))

    original = queue.progress

    def spy(task_id: int, done: int, total: int) -> None:
        writes.append((done, total))
        original(task_id, done, total)

    queue.progress = spy  # type: ignore[method-assign]
    queue.submit("kb", "add", [Task("add", file="big.pdf")])
    run_until_idle(worker(queue, {"add": add}))
    assert writes[0] == (32, 1000) and writes[-1] == (1000, 1000)
    assert len(writes) < 10  # 32 batches in well under a second: the first and the last


def test_failures_say_why_and_do_not_stop_the_next_job(queue: JobQueue) -> None:
    def bad_input(work: Work) -> None:
        raise BadInput("folder vanished")

    def crash(work: Work) -> None:
        raise RuntimeError("bug")

    failed = queue.submit("kb", "sync", [Task("bad")])
    crashed = queue.submit("kb", "sync", [Task("crash")])
    fine = queue.submit("kb", "sync", [Task("fine")])
    unknown = queue.submit("kb", "sync", [Task("from-the-future")])
    run_until_idle(worker(queue, {"bad": bad_input, "crash": crash, "fine": lambda w: None}))
    assert queue.get(failed.id).error == "folder vanished"
    assert queue.get(crashed.id).status == "failed"
    assert "RuntimeError: bug" in (queue.get(crashed.id).error or "")
    assert queue.get(fine.id).status == "done"
    assert "unknown task 'from-the-future'" in (queue.get(unknown.id).error or "")


def test_listing_and_forgetting(catalog: Catalog) -> None:
    queue = JobQueue(catalog, keep=2)
    ids = [queue.submit("kb", "add", []).id for _ in range(4)]  # no tasks: done at once
    queue.submit("other", "add", [Task("add", file="x")])
    remembered = {job.id for job in queue.list_jobs("kb")}
    assert ids[0] not in remembered and ids[-1] in remembered
    assert [j.kb for j in queue.active("other")] == ["other"] and queue.unfinished() == 1
    with pytest.raises(NotFound, match="no job with id"):
        queue.get(ids[0])


def test_a_closed_queue_refuses_new_jobs_and_keeps_queued_ones(queue: JobQueue) -> None:
    queued = queue.submit("kb", "add", [Task("add", file="a.txt")])
    queue.close()
    with pytest.raises(KbchatError, match="shutting down"):
        queue.submit("kb", "add", [])
    assert JobQueue(queue.catalog).get(queued.id).status == "queued"  # for the next start


def test_observers_hear_changes_until_stopped(queue: JobQueue) -> None:
    heard: list[str] = []
    stop = queue.observe(lambda: heard.append("change"))

    def add(work: Work) -> None:
        work.listener.file_done(outcome("a.txt"))

    queue.submit("kb", "add", [Task("add", file="a.txt")])
    run_until_idle(worker(queue, {"add": add}))
    assert len(heard) == 4  # submitted, claimed, one file, finished
    stop()
    queue.submit("kb", "add", [])
    assert len(heard) == 4


def test_a_process_s_workers_leave_a_kb_one_of_them_is_writing(queue: JobQueue) -> None:
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def slow(work: Work) -> None:
        started.set()
        assert release.wait(10)

    def quick(work: Work) -> None:
        ran.append(work.kb)

    ops: dict[str, Op] = {"slow": slow, "quick": quick}
    busy: set[str] = set()
    first, second = worker(queue, ops, busy=busy), worker(queue, ops, busy=busy)
    queue.submit("big", "add", [Task("slow", file="huge.pdf")])
    waiting = queue.submit("big", "add", [Task("quick", file="other.txt")])
    chat = queue.submit("~chat", "attach", [Task("quick")])
    first.start()
    try:
        assert started.wait(10)
        # the second worker skips the big KB's next file and serves the file chat at once
        assert second.run_once() and ran == ["~chat"]
        assert queue.get(chat.id).status == "done"
        assert not second.run_once() and queue.get(waiting.id).status == "queued"
    finally:
        release.set()
        first.stop()


def test_a_catalog_made_before_chunk_progress_gains_its_columns(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, inspect, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    Catalog(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:  # as a catalog made by an earlier kbchat has it
        conn.execute(text("ALTER TABLE job_tasks DROP COLUMN chunks_done"))
        conn.execute(text("ALTER TABLE job_tasks DROP COLUMN chunks_total"))
        conn.execute(text("ALTER TABLE job_tasks DROP COLUMN cancel_reason"))
    engine.dispose()
    reopened = Catalog(url)
    try:
        columns = {c["name"] for c in inspect(reopened.engine).get_columns("job_tasks")}
        assert {"chunks_done", "chunks_total", "cancel_reason"} <= columns
        queue = JobQueue(reopened)
        job = queue.submit("kb", "add", [Task("add", file="a.txt")])
        assert queue.get(job.id).chunks_total is None
    finally:
        reopened.close()


def cancelled_by_test(work: Work) -> None:
    """An add op as the knowledge base runs it: each file checks for a cancel before its
    commit, and a cancelled one is reported so and left alone."""
    for task in work.tasks:
        assert task.file is not None
        reason = work.listener.cancelled()
        if reason is not None:
            work.listener.file_done(FileOutcome(task.file, "", "cancelled", reason))
        else:
            work.listener.file_done(outcome(task.file))


def test_cancelling_finishes_queued_tasks_at_once_and_a_second_cancel_conflicts(
    queue: JobQueue,
) -> None:
    job = queue.submit("kb", "add", [Task("add", file="a.txt", payload={"path": "/u/a.txt"})])
    other = queue.submit("kb", "add", [Task("add", file="b.txt")])
    stopped = queue.cancel(job.id, "cancelled by alice")
    assert [task.file for task in stopped] == ["a.txt"]
    cancelled = queue.get(job.id)
    assert (cancelled.status, cancelled.error, cancelled.finished) == (
        "cancelled",
        "cancelled by alice",
        True,
    )
    assert [(f.name, f.path, f.status, f.error) for f in cancelled.files] == [
        ("a.txt", "/u/a.txt", "cancelled", "cancelled by alice")
    ]
    assert (cancelled.done, cancelled.total) == (0, 1)  # a cancelled file was not processed
    assert cancelled.counts() == {"cancelled": 1}
    assert cancelled.to_json()["status"] == "cancelled"
    with pytest.raises(Conflict, match="already finished"):
        queue.cancel(job.id, "again")
    with pytest.raises(NotFound):
        queue.cancel("no-such-job", "x")
    run_until_idle(worker(queue, {"add": cancelled_by_test}))  # the other job is untouched
    assert queue.get(other.id).status == "done"
    assert queue.unfinished() == 0


def test_a_running_task_is_flagged_and_abandoned_while_finished_ones_stay(
    catalog: Catalog,
) -> None:
    queue = JobQueue(catalog)
    elsewhere = JobQueue(catalog)  # a server in another process, sharing the catalog
    started, go = threading.Event(), threading.Event()

    def add(work: Work) -> None:
        if work.tasks[0].file == "b.txt":
            started.set()
            assert go.wait(10)
        cancelled_by_test(work)

    job = queue.submit("kb", "add", [Task("add", file=f"{n}.txt") for n in "abc"])
    one = worker(queue, {"add": add}, batch=1)
    assert one.run_once()  # a.txt indexed
    running = threading.Thread(target=one.run_once)
    running.start()
    try:
        assert started.wait(10)
        assert [t.file for t in elsewhere.cancel(job.id, "cancelled by bob")] == ["c.txt"]
        assert elsewhere.get(job.id).status == "running"  # b.txt is still in its worker's hands
        assert elsewhere.cancel(job.id, "again") == []  # still stopping: no error, no change
    finally:
        go.set()
        running.join(10)
    done = queue.get(job.id)
    assert done.status == "cancelled" and done.error == "cancelled by bob"
    assert [(f.name, f.status) for f in done.files] == [
        ("a.txt", "indexed"),
        ("b.txt", "cancelled"),
        ("c.txt", "cancelled"),
    ]
    assert not one.run_once()  # nothing of the job is left to run


def test_a_cancelled_task_that_fails_for_now_is_not_tried_again(queue: JobQueue) -> None:
    job_id = ""

    def add(work: Work) -> None:
        queue.cancel(job_id, "cancelled by carol")
        raise BackendError("the embedding server went away")

    job_id = queue.submit("kb", "add", [Task("add", file="a.txt")]).id
    run_until_idle(worker(queue, {"add": add}))
    job = queue.get(job_id)
    assert (job.status, job.error) == ("cancelled", "cancelled by carol")


def test_a_cancel_from_another_process_reaches_the_running_worker(catalog: Catalog) -> None:
    import subprocess
    import sys

    queue = JobQueue(catalog)
    started, go = threading.Event(), threading.Event()

    def add(work: Work) -> None:
        started.set()
        assert go.wait(10)
        cancelled_by_test(work)

    job = queue.submit("kb", "add", [Task("add", file="a.txt")])
    one = worker(queue, {"add": add})
    running = threading.Thread(target=one.run_once)
    running.start()
    try:
        assert started.wait(10)
        script = (
            "import sys; from kbchat.store.catalog import Catalog; "
            "from kbchat.kb.jobs import JobQueue; "
            "print(len(JobQueue(Catalog(sys.argv[1])).cancel(sys.argv[2], 'cancelled elsewhere')))"
        )
        url = catalog.engine.url.render_as_string(hide_password=False)
        done = subprocess.run(
            [sys.executable, "-c", script, url, job.id],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],  # this tree's kbchat
        )
        assert done.stdout.strip() == "0"  # nothing was queued: the one task is running
    finally:
        go.set()
        running.join(10)
    finished = queue.get(job.id)
    assert (finished.status, finished.files[0].status) == ("cancelled", "cancelled")
    assert finished.error == "cancelled elsewhere"


def test_a_cancelled_job_counts_the_files_done_and_those_left(queue: JobQueue) -> None:
    job_id = ""

    def add(work: Work) -> None:  # two files finish, then the job is cancelled
        for task in work.tasks:
            assert task.file is not None
            work.listener.file_started(task.file)
            if task.file == "c.txt":
                queue.cancel(job_id, "cancelled by dora")
            reason = work.listener.cancelled()
            status = "skipped" if task.file == "b.txt" else "indexed"
            work.listener.file_done(
                FileOutcome(task.file, "", "cancelled", reason)
                if reason
                else outcome(task.file, status)
            )

    tasks = [Task("add", file=f"{n}.txt") for n in "abcdef"]
    job_id = queue.submit("kb", "add", tasks, outcomes=[outcome("x.bin", "skipped")]).id
    run_until_idle(worker(queue, {"add": add}))
    job = queue.get(job_id)
    assert job.status == "cancelled"
    assert (job.done, job.total) == (3, 7)  # x.bin, a.txt, b.txt; not 7/7
    assert job.counts() == {"indexed": 1, "skipped": 2, "cancelled": 4}
