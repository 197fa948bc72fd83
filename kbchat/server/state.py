"""What the running server shares between requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from kbchat.app import Services
from kbchat.chat.summary_jobs import SummaryJobs
from kbchat.config import Settings
from kbchat.errors import NotFound
from kbchat.kb.jobs import JobQueue
from kbchat.kb.worker import Worker
from kbchat.server.access_log import CALLER_KEY
from kbchat.server.auth import Authenticator, Principal, Role, kb_not_found
from kbchat.server.generation_queue import GenerationQueues
from kbchat.server.model_pulls import ModelPulls
from kbchat.store.catalog_schema import KBRecord
from kbchat.store.conversations import ConversationStore


@dataclass(slots=True)
class ServerState:
    """Services plus the server's own parts, built once in the app's lifespan."""

    settings: Settings
    services: Services
    jobs: JobQueue
    conversations: ConversationStore
    queues: GenerationQueues
    auth: Authenticator
    summary_jobs: SummaryJobs = field(default_factory=SummaryJobs)
    pulls: ModelPulls = field(default_factory=ModelPulls)
    workers: list[Worker] = field(default_factory=list)
    """This process's ingest workers (``server.workers``)."""


def get_state(request: Request) -> ServerState:
    """FastAPI dependency: the running server's state."""
    state: ServerState = request.app.state.kbchat
    return state


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, from the Authorization header (401 if keys are needed).

    The caller's name is left in the request state for the access log.
    """
    principal = get_state(request).auth.authenticate(request.headers.get("authorization"))
    setattr(request.state, CALLER_KEY, principal.name)
    return principal


def find_kb(state: ServerState, caller: Principal, name: str, role: Role) -> KBRecord:
    """The knowledge base ``name``, if ``caller`` has ``role`` on it.

    Raises:
        NotFound: it does not exist or the caller may not read it (one error for both).
        Forbidden: the caller may read it but lacks ``role``.
    """
    if not caller.can(name, "read"):
        raise kb_not_found(name)
    try:
        record = state.services.library.catalog.get_kb(name)
    except NotFound:
        raise kb_not_found(name) from None
    caller.require(name, role)
    return record
