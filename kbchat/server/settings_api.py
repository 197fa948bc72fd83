"""The settings editor: an admin changes the main settings from the page or the API.

A change is checked by the options' own types (``kbchat.options``), written to kbchat.toml
with the user's comments kept (``kbchat.config_file``), and applied to the running server
at once: every setting offered here is read per request (answers, searches, the default
model, the embedder of knowledge bases created from now on), so none needs a restart. A
value the environment overrides (``KBCHAT_*``) is saved but does not take effect; the
answer says which.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kbchat.config import Settings
from kbchat.errors import BadInput
from kbchat.options import NoHit, NoHitMessage, Share, Threshold, TopK
from kbchat.server.auth import ALL_KBS, Principal
from kbchat.server.errors import BadRequestRoute, documented
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.shapes import Shape
from kbchat.shapes.system import PublicSettings

router = APIRouter(tags=["system"], route_class=BadRequestRoute)
StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]

EDITABLE: dict[str, tuple[str, ...]] = {
    "default_model": ("default_model",),
    "top_k": ("chat", "top_k"),
    "threshold": ("retrieval", "threshold"),
    "min_score": ("chat", "min_score"),
    "no_hit": ("chat", "no_hit"),
    "no_hit_message": ("chat", "no_hit_message"),
    "embedder": ("embedder", "backend"),
}
"""Request field -> its key in kbchat.toml."""

_WRITING = threading.Lock()


class SettingsChange(BaseModel):
    """The settings to change; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    default_model: str | None = Field(None, description="Model used when none is named.")
    top_k: TopK | None = Field(None, description="chat.top_k: sources of an answer.")
    threshold: Threshold | None = Field(None, description="retrieval.threshold.")
    min_score: Share | None = Field(
        None, description="chat.min_score: the best passage's relevance needed to answer."
    )
    no_hit: NoHit | None = None
    no_hit_message: NoHitMessage | None = None
    embedder: str | None = Field(
        None, min_length=1, description="embedder.backend: for knowledge bases created from now."
    )

    @model_validator(mode="after")
    def _something(self) -> SettingsChange:
        if not self.model_fields_set:
            raise ValueError("name at least one setting to change")
        return self


class SettingsChanged(Shape):
    """The settings after a change, and how it took effect."""

    settings: PublicSettings
    applied: list[str] = Field(description="Keys in effect now (no restart needed).")
    overridden: list[str] = Field(
        description="Keys saved but overridden by a KBCHAT_* environment variable."
    )


@router.put(
    "/api/settings",
    responses=documented(400, 401, 403, 404, 413),
    response_model=SettingsChanged,
)
async def change_settings(
    body: SettingsChange, state: StateDep, caller: CallerDep
) -> SettingsChanged:
    """Change the main settings (admins only); saved to kbchat.toml and applied at once."""
    caller.require(ALL_KBS, "admin")
    wanted = {name: getattr(body, name) for name in body.model_fields_set}
    return await run_in_threadpool(_change, state, wanted)


def _change(state: ServerState, wanted: dict[str, Any]) -> SettingsChanged:
    from kbchat.config_file import change_config, table
    from kbchat.registry import check_embedder
    from kbchat.server.app import public_settings

    live = state.settings
    if (name := wanted.get("default_model")) is not None and name not in live.models:
        known = ", ".join(sorted(live.models))
        raise BadInput(f"no model named {name!r}; configured: {known}", param="default_model")
    if (embedder := wanted.get("embedder")) is not None:
        check_embedder(embedder)

    def edit(document: Any) -> None:
        for name, value in wanted.items():
            *sections, key = EDITABLE[name]
            node = table(document, *sections) if sections else document
            if value is None:
                node.pop(key, None)
            else:
                node[key] = value

    with _WRITING:
        saved = change_config(edit)
        for name in wanted:
            _set(live, EDITABLE[name], _get(saved, EDITABLE[name]))
            if state.services.settings is not live:
                _set(state.services.settings, EDITABLE[name], _get(saved, EDITABLE[name]))
    keys = {name: ".".join(EDITABLE[name]) for name in wanted}
    overridden = [
        keys[name]
        for name, value in wanted.items()
        if value is not None and _get(saved, EDITABLE[name]) != value
    ]
    return SettingsChanged(
        settings=public_settings(live, state.auth.required),
        applied=[key for key in keys.values() if key not in overridden],
        overridden=overridden,
    )


def _set(settings: Settings, path: tuple[str, ...], value: Any) -> None:
    """Set one key of the running server's settings (sections are replaced, not mutated:
    ``chat`` and ``retrieval`` are frozen, and a request may be reading them)."""
    if len(path) == 1:
        setattr(settings, path[0], value)
        return
    section_name, key = path
    section = getattr(settings, section_name)
    if isinstance(section, BaseModel):
        setattr(settings, section_name, section.model_copy(update={key: value}))
    else:
        setattr(settings, section_name, dataclasses.replace(section, **{key: value}))


def _get(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value
