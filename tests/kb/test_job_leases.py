"""Claiming tasks under a lease: order per file, parallel across files and knowledge bases, no
task claimed twice, retries with backoff, leases that run out, and tasks handed back by a
stopping worker; on SQLite and (marker postgres) on PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from kbchat.errors import BackendError
from kbchat.kb import job_leases
from kbchat.kb.jobs import JobQueue, Task
from kbchat.kb.worker import Work
from kbchat.store.catalog import Catalog
from tests.kb.support import outcome, run_until_idle, worker
from tests.store.support import create_hash_kb


def test_writes_to_one_file_wait_for_earlier_ones_and_whole_kb_tasks_for_all(
    queue: JobQueue,
) -> None:
    add_a = queue.submit("kb", "add", [Task("add", file="a.txt")])
    add_b = queue.submit("kb", "add", [Task("add", file="b.txt")])
    remove_a = queue.submit("kb", "remove", [Task("remove", file="a.txt")])
    rebuild = queue.submit("kb", "rebuild", [Task("rebuild")])
    other_kb = queue.submit("other", "add", [Task("add", file="a.txt")])
    first = queue.claim("w1", "host", batch=1)
    second = queue.claim("w2", "host", batch=1)
    third = queue.claim("w3", "host", batch=1)
    # a.txt's remove waits for its add, the rebuild for everything before it
    assert [t.job_id for t in first + second + third] == [add_a.id, add_b.id, other_kb.id]
    assert queue.claim("w4", "host") == []
    queue.finish([first[0].id])
    assert [t.job_id for t in queue.claim("w1", "host")] == [remove_a.id]
    assert queue.claim("w5", "host") == []  # the rebuild waits for b.txt and the remove
    queue.finish([second[0].id])
    assert queue.claim("w5", "host") == []
    assert queue.get(rebuild.id).status == "queued"


def test_adds_of_one_job_are_claimed_in_batches(queue: JobQueue) -> None:
    job = queue.submit("kb", "add", [Task("add", file=f"{i}.txt") for i in range(5)])
    claimed = queue.claim("w1", "host", batch=3)
    assert [t.file for t in claimed] == ["0.txt", "1.txt", "2.txt"]
    assert [t.file for t in queue.claim("w2", "host", batch=3)] == ["3.txt", "4.txt"]
    assert queue.get(job.id).status == "running"


def test_tasks_bound_to_a_host_wait_for_a_worker_there(queue: JobQueue) -> None:
    queue.submit("kb", "sync", [Task("sync", host="server-a")])
    assert queue.claim("w", "server-b") == []
    assert len(queue.claim("w", "server-a")) == 1


def test_two_workers_write_different_files_side_by_side(queue: JobQueue) -> None:
    both = threading.Barrier(2, timeout=10)

    def add(work: Work) -> None:
        both.wait()  # passes only if the other file's task runs at the same time

    job = queue.submit("kb", "add", [Task("add", file="a.txt"), Task("add", file="b.txt")])
    workers = [worker(queue, {"add": add}, batch=1) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        assert queue.wait(job.id, timeout=20).status == "done"
    finally:
        for w in workers:
            w.stop()


def test_no_task_is_claimed_twice_by_racing_workers(queue: JobQueue) -> None:
    queue.submit("kb", "add", [Task("add", file=f"{i}.txt") for i in range(40)])
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(owner: str) -> None:
        while tasks := queue.claim(owner, "host", batch=2):
            with lock:
                claimed.extend(t.id for t in tasks)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40


def test_a_transient_error_is_retried_then_given_up(queue: JobQueue) -> None:
    calls = {"flaky": 0, "down": 0}

    def flaky(work: Work) -> None:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise BackendError("embedding server at http://127.0.0.1:9 refused the connection")

    def down(work: Work) -> None:
        calls["down"] += 1
        raise BackendError("store unreachable")

    recovered = queue.submit("kb", "add", [Task("flaky", file="a.txt")])
    lost = queue.submit("kb2", "add", [Task("down", file="a.txt")])
    run_until_idle(worker(queue, {"flaky": flaky, "down": down}))
    assert queue.get(recovered.id).status == "done" and calls["flaky"] == 2
    gone = queue.get(lost.id)
    assert gone.status == "failed" and calls["down"] == job_leases.MAX_ATTEMPTS
    assert "store unreachable (gave up after 3 attempts)" in (gone.error or "")


def test_a_task_whose_worker_stopped_renewing_goes_to_another(catalog: Catalog) -> None:
    queue = JobQueue(catalog, lease_s=0.3)
    job = queue.submit("kb", "add", [Task("add", file="a.txt")])
    held = queue.claim("killed-worker", "host")
    assert held and queue.claim("other", "host") == []
    threading.Event().wait(0.4)  # the lease runs out: nobody renewed it
    ran: list[str] = []
    backoff_s = job_leases.BACKOFF_S
    try:
        job_leases.BACKOFF_S = 0.0
        run_until_idle(worker(queue, {"add": lambda w: ran.append(w.tasks[0].file or "")}))
    finally:
        job_leases.BACKOFF_S = backoff_s
    assert ran == ["a.txt"] and queue.get(job.id).status == "done"


def test_a_live_worker_keeps_its_lease(catalog: Catalog) -> None:
    queue = JobQueue(catalog, lease_s=0.3)
    release = threading.Event()
    started = threading.Event()

    def slow(work: Work) -> None:
        started.set()
        assert release.wait(10)

    job = queue.submit("kb", "add", [Task("slow", file="a.txt")])
    busy = worker(queue, {"slow": slow})
    busy.start()
    try:
        assert started.wait(10)
        threading.Event().wait(0.8)  # more than two lease lengths, renewed meanwhile
        assert queue.requeue_expired() == 0
        assert queue.claim("other", "host") == []
        release.set()
        assert queue.wait(job.id, timeout=10).status == "done"
    finally:
        release.set()
        busy.stop()


def expire_leases(catalog: Catalog) -> None:
    """The lease of every running task has run out (its worker was killed)."""
    from sqlalchemy import update

    from kbchat.store.catalog_schema import job_tasks

    with catalog.engine.begin() as conn:
        conn.execute(
            update(job_tasks).where(job_tasks.c.status == "running").values(lease_expires=0.0)
        )


def test_a_dead_worker_s_tasks_are_taken_back_once_keeping_the_files_it_finished(
    queue: JobQueue, catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    job = queue.submit("kb", "add", [Task("add", file=f"{n}.txt") for n in "abc"])
    held = queue.claim("killed-worker", "host")  # one batch of the three
    assert [t.file for t in held] == ["a.txt", "b.txt", "c.txt"]
    queue.file_started(held[0].id)
    queue.record(held[0].id, outcome("a.txt"))  # a.txt was committed before the kill
    queue.file_started(held[1].id)
    expire_leases(catalog)
    restarted = [JobQueue(catalog), JobQueue(catalog)]  # two workers of the new start
    with caplog.at_level("WARNING", logger="kbchat.kb.jobs"):
        taken = [q.requeue_expired() for q in restarted]
    assert taken == [3, 0]  # each task is taken back once
    warnings = [r.getMessage() for r in caplog.records if r.name == "kbchat.kb.jobs"]
    assert len(warnings) == 1 and job.id in warnings[0] and "killed-worker" in warnings[0]
    assert [(f.name, f.status) for f in queue.get(job.id).files] == [
        ("a.txt", "indexed"),  # not run again, not shown as unchanged later
        ("b.txt", "pending"),
        ("c.txt", "pending"),
    ]
    ran: list[str] = []

    def add(work: Work) -> None:
        for task in work.tasks:
            assert task.file is not None
            ran.append(task.file)
            work.listener.file_done(outcome(task.file))

    run_until_idle(worker(queue, {"add": add}))
    assert ran == ["b.txt", "c.txt"]
    finished = queue.get(job.id)
    assert finished.status == "done" and [f.status for f in finished.files] == ["indexed"] * 3


def test_a_job_whose_only_worker_was_killed_reads_queued_not_running(
    queue: JobQueue, catalog: Catalog
) -> None:
    job = queue.submit("kb", "add", [Task("add", file=f"{n}.txt") for n in "ab"])
    held = queue.claim("killed-worker", "host")
    queue.file_started(held[0].id)
    assert queue.get(job.id).status == "running"
    expire_leases(catalog)  # killed; no other worker claims
    for seen in (queue.get(job.id), queue.list_jobs("kb")[0]):
        assert seen.status == "queued"
        assert seen.error == "retrying: worker killed-worker stopped while running it"
        assert [(f.name, f.status) for f in seen.files] == [
            ("a.txt", "pending"),
            ("b.txt", "pending"),
        ]


def test_a_file_whose_workers_all_died_is_listed_failed_not_pending(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_leases, "BACKOFF_S", 0.0)  # the retry may run at once
    kb_id = create_hash_kb(catalog)
    catalog.mark_pending(kb_id, [("a.txt", "/uploads/a.txt", 12), ("b.txt", "/uploads/b.txt", 9)])
    queue = JobQueue(catalog, max_attempts=2)
    job = queue.submit("kb", "add", [Task("add", file="a.txt")])
    for attempt in range(2):  # each worker is killed mid-file
        assert [t.file for t in queue.claim(f"worker-{attempt}", "host")] == ["a.txt"]
        expire_leases(catalog)
        assert queue.requeue_expired() == 1
    assert queue.get(job.id).status == "failed"
    listed = {f.name: f for f in catalog.list_files(kb_id)}
    assert listed["a.txt"].status == "failed" and "gave up after 2 attempts" in (
        listed["a.txt"].error or ""
    )
    assert listed["a.txt"].error.startswith("a.txt: ")  # type: ignore[union-attr]
    assert listed["b.txt"].status == "pending"  # not this job's file


def test_a_transient_error_retries_only_the_files_not_yet_decided(queue: JobQueue) -> None:
    ran: list[str] = []

    def add(work: Work) -> None:
        for task in work.tasks:
            assert task.file is not None
            ran.append(task.file)
            if task.file == "b.txt" and task.attempts == 1:
                raise BackendError("the embedding server went away")
            work.listener.file_done(outcome(task.file))

    job = queue.submit("kb", "add", [Task("add", file=f"{n}.txt") for n in "abc"])
    run_until_idle(worker(queue, {"add": add}))
    assert ran == ["a.txt", "b.txt", "b.txt", "c.txt"]  # a.txt was not read twice
    finished = queue.get(job.id)
    assert [(f.name, f.status) for f in finished.files] == [
        ("a.txt", "indexed"),
        ("b.txt", "indexed"),
        ("c.txt", "indexed"),
    ]


def test_a_job_whose_tasks_were_handed_back_waits_for_a_worker_again(queue: JobQueue) -> None:
    tasks = [Task("add", file=f"{n}.txt", payload={"path": f"/in/{n}.txt"}) for n in "abc"]
    job_id = queue.submit("kb", "add", tasks).id
    held = queue.claim("stopping-worker", "host")
    queue.file_started(held[0].id)
    queue.record(held[0].id, outcome("a.txt"))
    queue.file_started(held[1].id)
    assert queue.get(job_id).status == "running"
    queue.finish([held[0].id])  # a.txt committed before the Ctrl-C; b.txt and c.txt go back
    queue.release([t.id for t in held[1:]])
    back = queue.get(job_id)
    assert back.status == "queued" and back.finished_at is None
    assert [(f.name, f.status) for f in back.files] == [
        ("a.txt", "indexed"),
        ("b.txt", "pending"),
        ("c.txt", "pending"),
    ]
    assert (back.done, back.total) == (1, 3)
    assert [(j.id, j.status) for j in queue.active("kb")] == [(job_id, "queued")]

    def add(work: Work) -> None:
        for task in work.tasks:
            assert task.file is not None
            work.listener.file_done(outcome(task.file))

    run_until_idle(worker(queue, {"add": add}))  # the next worker to start runs them
    assert queue.get(job_id).status == "done"


def test_a_job_handed_back_before_any_file_started_reads_queued(queue: JobQueue) -> None:
    job_id = queue.submit("kb", "rebuild", [Task("rebuild")]).id
    held = queue.claim("stopping-worker", "host")
    assert queue.get(job_id).status == "running"
    queue.release([t.id for t in held])
    assert queue.get(job_id).status == "queued"
