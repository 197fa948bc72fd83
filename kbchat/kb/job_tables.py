"""Statements over the catalog's job tables that submitting and running jobs share: a job's
row follows its tasks' (status, version), tasks give up their lease, jobs are read and the old
ones forgotten."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection, Engine

from kbchat.kb.job_types import FINISHED, Job, job_from_rows
from kbchat.store.catalog_schema import files, job_tasks, jobs, kbs

RELEASED: dict[str, Any] = {
    "lease_owner": None,
    "lease_expires": None,
    "chunks_done": None,
    "chunks_total": None,
}
"""What a task that stops running gives up: its worker's lease and its chunk progress."""


def lock_jobs(conn: Connection, task_ids: Sequence[int]) -> list[str]:
    """The jobs of ``task_ids``, their rows locked until the transaction ends, so that
    workers finishing a job's last tasks at once settle its status one after the other
    (each then sees the others' tasks finished). SQLite serialises writers anyway."""
    job_ids = sorted(
        conn.execute(
            select(job_tasks.c.job_id).where(job_tasks.c.id.in_(list(task_ids))).distinct()
        ).scalars()
    )
    if job_ids:
        conn.execute(
            select(jobs.c.id).where(jobs.c.id.in_(job_ids)).order_by(jobs.c.id).with_for_update()
        ).all()
    return job_ids


def bump(conn: Connection, task_id: int) -> None:
    """Count a change to the job of task ``task_id`` (followers compare versions)."""
    job_id = select(job_tasks.c.job_id).where(job_tasks.c.id == task_id).scalar_subquery()
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(version=jobs.c.version + 1))


def settle(conn: Connection, job_id: str, now: float) -> None:
    """Set a job's status from its tasks': running while a worker holds one of them,
    queued when the unfinished ones all wait for a worker (handed back by a stopping
    worker, or taken back to be retried: the error then says why, "retrying: worker w1
    stopped while running it"), else finished."""
    states: dict[str, int] = dict(
        conn.execute(
            select(job_tasks.c.status, func.count())
            .where(job_tasks.c.job_id == job_id)
            .group_by(job_tasks.c.status)
        ).all()
    )
    values: dict[str, Any] = {"version": jobs.c.version + 1}
    if states.get("running"):
        values.update(status="running", error=None)
    elif states.get("queued"):
        values.update(status="queued", error=_first_error(conn, job_id, "queued"))
    elif states.get("cancelled"):
        values.update(
            status="cancelled", error=_first_error(conn, job_id, "cancelled"), finished_at=now
        )
    else:
        failed = conn.execute(
            select(job_tasks.c.error)
            .where(job_tasks.c.job_id == job_id, job_tasks.c.status == "failed")
            .order_by(job_tasks.c.id)
        ).scalars()
        errors = list(dict.fromkeys(e for e in failed if e))
        values.update(
            status="failed" if errors else "done",
            error="; ".join(errors) or None,
            finished_at=now,
        )
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def _first_error(conn: Connection, job_id: str, status: str) -> str | None:
    """The error of the job's first task in ``status`` (why it waits, or was cancelled)."""
    return conn.execute(
        select(job_tasks.c.error)
        .where(job_tasks.c.job_id == job_id, job_tasks.c.status == status)
        .order_by(job_tasks.c.id)
        .limit(1)
    ).scalar()


def load_jobs(engine: Engine, where: Any, *, limit: int | None = None) -> list[Job]:
    """Jobs matching ``where`` (all when None), newest first, with their tasks' files."""
    query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
    if where is not None:
        query = query.where(where)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        if not rows:
            return []
        tasks = (
            conn.execute(
                select(job_tasks)
                .where(job_tasks.c.job_id.in_([row["id"] for row in rows]))
                .order_by(job_tasks.c.id)
            )
            .mappings()
            .all()
        )
    by_job: dict[str, list[Any]] = {}
    for task in tasks:
        by_job.setdefault(task["job_id"], []).append(task)
    return [job_from_rows(row, by_job.get(row["id"], [])) for row in rows]


def forget_old(engine: Engine, keep: int) -> None:
    """Delete the finished jobs (and their tasks) but the ``keep`` that finished last."""
    with engine.begin() as conn:
        kept = (
            select(jobs.c.id)
            .where(jobs.c.status.in_(FINISHED))
            .order_by(jobs.c.finished_at.desc())
            .limit(keep)
        )
        old = list(
            conn.execute(
                select(jobs.c.id).where(jobs.c.status.in_(FINISHED), jobs.c.id.not_in(kept))
            ).scalars()
        )
        if old:
            conn.execute(delete(job_tasks).where(job_tasks.c.job_id.in_(old)))
            conn.execute(delete(jobs).where(jobs.c.id.in_(old)))


def fail_pending_file(conn: Connection, kb: str, name: str, error: str, now: float) -> None:
    """List file ``name`` of knowledge base ``kb`` as failed with ``error`` if it is still
    pending (queued and never indexed)."""
    kb_id = select(kbs.c.id).where(kbs.c.name == kb).scalar_subquery()
    conn.execute(
        update(files)
        .where(files.c.kb_id == kb_id, files.c.name == name, files.c.status == "pending")
        .values(status="failed", error=f"{name}: {error}", updated_at=now)
    )
