"""Types the API's schema shares between routes: the knowledge-base and model name rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

from kbchat.kb.library import KB_NAME_MAX, KB_NAME_PATTERN, KB_NAME_RULE

_RULE = f"A knowledge base name: {KB_NAME_RULE}."

KBName = Annotated[
    str, Field(min_length=1, max_length=KB_NAME_MAX, pattern=KB_NAME_PATTERN, description=_RULE)
]
"""A knowledge base name in a request body."""

KBNameInPath = Annotated[
    str, Path(min_length=1, max_length=KB_NAME_MAX, pattern=KB_NAME_PATTERN, description=_RULE)
]
"""A knowledge base name as a path parameter (``/api/kbs/{name}``)."""

KBNameInQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=KB_NAME_MAX, pattern=KB_NAME_PATTERN, description=_RULE),
]
"""An optional knowledge base name as a query parameter (``?kb=``)."""


MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A chat model's name (its [models.NAME] table in kbchat.toml)."""
MODEL_REFERENCE_PATTERN = r"^[^/:\s]+/[^/:\s]+(:\S+)?$"
"""A model on a hub: OWNER/REPO or OWNER/REPO:FILE."""

PATTERN_RULES = {
    KB_NAME_PATTERN: f"invalid knowledge base name: {KB_NAME_RULE}",
    MODEL_NAME_PATTERN: "a model name is 1-64 letters, digits, '.', '_' or '-', "
    "starting with a letter or digit",
    MODEL_REFERENCE_PATTERN: "a model reference is OWNER/REPO or OWNER/REPO:FILE.gguf",
}
"""What a schema pattern means, for error messages (a regular expression helps nobody)."""
