"""The models view's changes (admins): add a local GGUF by its path, pull one from Hugging
Face or ModelScope with progress. Both are saved to kbchat.toml (as ``kbchat models add`` and
``pull`` save them) and used by the running server at once. The default model is changed
through ``PUT /api/settings`` (``default_model``); ``GET /api/models`` lists them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from kbchat.config import Settings
from kbchat.errors import BadInput
from kbchat.llm.pull import Progress
from kbchat.server.auth import ALL_KBS, Principal
from kbchat.server.errors import BadRequestRoute, documented
from kbchat.server.model_pulls import Pull, pulled_name
from kbchat.server.schemas import MODEL_NAME_PATTERN, MODEL_REFERENCE_PATTERN
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.shapes import Shape
from kbchat.shapes.system import ModelInfo, model_info

router = APIRouter(tags=["system"], route_class=BadRequestRoute)
StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]

ModelName = Annotated[
    str,
    Field(
        pattern=MODEL_NAME_PATTERN,
        description="Its name for clients: 1-64 letters, digits, '.', '_' or '-'.",
    ),
]


class AddModelRequest(BaseModel):
    """A GGUF chat model on the server's disk, run by the embedded llama.cpp."""

    model_config = ConfigDict(extra="forbid")

    name: ModelName
    path: str = Field(min_length=1, description="The GGUF file's path on the server.")
    n_ctx: int | None = Field(None, gt=256, le=1_048_576, description="Context window, tokens.")
    default: bool = Field(False, description="Make it the default model.")


class PullRequest(BaseModel):
    """A GGUF model to download from a hub (``HF_ENDPOINT`` / ``MODELSCOPE_ENDPOINT``)."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(
        max_length=300,
        pattern=MODEL_REFERENCE_PATTERN,
        description="OWNER/REPO or OWNER/REPO:FILE.gguf (the Q4_K_M file when none is named).",
    )
    source: Literal["huggingface", "modelscope"] = "huggingface"
    name: ModelName | None = Field(None, description="Default: the file's stem.")
    default: bool = False


class PullInfo(Shape):
    """A model download and how far it has got."""

    id: str
    reference: str
    source: str
    status: Literal["running", "done", "failed"]
    done_bytes: int = Field(description="Bytes on disk so far (a resumed pull starts above 0).")
    total_bytes: int | None = Field(description="The file's size, once the hub has said it.")
    model: str | None = Field(description="The model's name once it is added.")
    error: str | None = Field(description="Why it failed.")


def _info(pull: Pull) -> PullInfo:
    return PullInfo.model_validate(pull, from_attributes=True)


@router.post(
    "/api/models",
    status_code=201,
    responses=documented(400, 401, 403, 404, 413),
    response_model=ModelInfo,
)
async def add_model(body: AddModelRequest, state: StateDep, caller: CallerDep) -> ModelInfo:
    """Add a local GGUF chat model (admins only); saved to kbchat.toml and usable at once."""
    caller.require(ALL_KBS, "admin")
    return await run_in_threadpool(_add_local, state, body)


def _add_local(state: ServerState, body: AddModelRequest) -> ModelInfo:
    from kbchat.llm.inventory import check_gguf, model_entries

    path = Path(body.path).expanduser()
    if not path.is_file():
        raise BadInput(f"path: no file {body.path!r} on the server", param="path")
    check_gguf(path)
    values: dict[str, object] = {"backend": "llamacpp", "path": str(path.resolve())}
    if body.n_ctx is not None:
        values["n_ctx"] = body.n_ctx
    _save(state, body.name, values, default=body.default)
    (entry,) = [e for e in model_entries(state.settings) if e.name == body.name]
    return model_info(entry, public=True)


@router.post(
    "/api/models/pulls",
    status_code=202,
    responses=documented(400, 401, 403, 404, 409, 413),
)
def pull_model(body: PullRequest, state: StateDep, caller: CallerDep) -> PullInfo:
    """Start downloading a GGUF model from Hugging Face or ModelScope (admins only); follow
    it with ``GET /api/models/pulls/{id}``. When done it is a configured model."""
    from kbchat.llm.pull import parse_reference

    caller.require(ALL_KBS, "admin")
    parse_reference(body.reference)
    if body.name is not None and body.name in state.settings.models:
        raise BadInput(f"name: a model named {body.name!r} exists already", param="name")

    def work(progress: Progress) -> str:
        return _pull(state, body, progress)

    return _info(state.pulls.start(body.reference, body.source, work))


def _pull(state: ServerState, body: PullRequest, progress: Progress) -> str:
    from kbchat.llm.inventory import check_gguf
    from kbchat.llm.pull import PULL_FOLDERS, pull_gguf

    folder = state.settings.models_dir / PULL_FOLDERS[body.source]
    path = pull_gguf(body.reference, folder, source=body.source, progress=progress)
    check_gguf(path)
    name = pulled_name(path, body.name)
    if name not in state.settings.models:
        _save(state, name, {"backend": "llamacpp", "path": str(path)}, default=body.default)
    return name


@router.get("/api/models/pulls", responses=documented(401, 403))
def list_pulls(state: StateDep, caller: CallerDep) -> list[PullInfo]:
    """The downloads this server started since it started, newest first (admins only)."""
    caller.require(ALL_KBS, "admin")
    return [_info(pull) for pull in state.pulls.all()]


@router.get("/api/models/pulls/{pull_id}", responses=documented(400, 401, 403, 404))
def get_pull(pull_id: str, state: StateDep, caller: CallerDep) -> PullInfo:
    """How far a download has got (admins only)."""
    caller.require(ALL_KBS, "admin")
    return _info(state.pulls.get(pull_id))


def _save(state: ServerState, name: str, values: dict[str, object], *, default: bool) -> None:
    """Save model ``name`` to kbchat.toml and give it to the running server."""
    from kbchat.llm.configure import save_model

    saved = save_model(state.settings, name, values, default=default)
    for live in _live_settings(state):
        live.models[name] = saved.models[name]
        if default:
            live.default_model = saved.default_model


def _live_settings(state: ServerState) -> list[Settings]:
    if state.services.settings is state.settings:
        return [state.settings]
    return [state.settings, state.services.settings]
