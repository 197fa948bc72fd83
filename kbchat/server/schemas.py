"""Types the API's schema shares between routes: the knowledge-base name rule, in one place."""

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


PATTERN_RULES = {KB_NAME_PATTERN: f"invalid knowledge base name: {KB_NAME_RULE}"}
"""What a schema pattern means, for error messages (a regular expression helps nobody)."""
