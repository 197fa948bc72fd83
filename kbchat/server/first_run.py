"""What ``kbchat serve`` does as it starts, said as it does it.

On a first start it builds the sample knowledge base in a job, logging each file
("indexing the sample knowledge base 12/15"), which the page shows from ``/api/jobs``. On
every start it gets the default model ready on a background thread (on a first start
that assembles the embedded GGUF from its packages), so the first question does not wait
for it unseen.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kbchat.kb.knowledge_base import FileOutcome, IngestListener
from kbchat.server.state import ServerState

SAMPLE_KB = "kbchat-docs"
log = logging.getLogger(__name__)


class SampleProgress(IngestListener):
    """Passes the job's progress on and logs it, a line per file."""

    def __init__(self, job_listener: IngestListener) -> None:
        self.job_listener = job_listener
        self.total = 0
        self.done = 0

    def started(self, total: int) -> None:
        self.total = total
        log.info("indexing the sample knowledge base %r: %d files", SAMPLE_KB, total)
        self.job_listener.started(total)

    def file_done(self, outcome: FileOutcome) -> None:
        self.done += 1
        log.info(
            "indexing the sample knowledge base %d/%d: %s %s",
            self.done,
            self.total,
            outcome.name,
            outcome.status,
        )
        self.job_listener.file_done(outcome)

    def waiting(self, message: str) -> None:
        self.job_listener.waiting(message)


def seed_sample(state: ServerState) -> None:
    """Queue the sample KB's build when the library is empty (first start)."""
    from kbchat.sample import sample_dir

    library = state.services.library
    if library.names():
        return

    def work(listener: Any) -> Any:
        kb = library.ensure(SAMPLE_KB, description="kbchat's own documentation (sample)")
        return kb.sync(
            sample_dir(),
            exclude=["__init__.py", "*.pyc", "__pycache__"],
            listener=SampleProgress(listener),
        )

    job = state.jobs.submit(SAMPLE_KB, "sync", work)
    log.info("first start: building the sample knowledge base %r in job %s", SAMPLE_KB, job.id)


def warm_default_model(state: ServerState) -> threading.Thread:
    """Load the default chat model on a background thread; a failure is logged (the first
    question then reports it), never raised."""
    name = state.settings.default_model

    def load() -> None:
        log.info("getting the chat model %r ready (a first start assembles it)", name)
        began = time.monotonic()
        try:
            state.services.models.get(name)
        except Exception as exc:
            log.warning("the chat model %r is not ready: %s", name, exc)
            return
        log.info("the chat model %r is ready (%.1f s)", name, time.monotonic() - began)

    thread = threading.Thread(target=load, name="kbchat-model-warmup", daemon=True)
    thread.start()
    return thread
