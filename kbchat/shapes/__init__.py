"""The public JSON shapes of kbchat: what the REST API answers and the CLI's ``--json`` prints.

One pydantic model per shape, built from the internal dataclasses by the functions next to
it, so the API (``response_model``), its OpenAPI document and the CLI print the same thing,
and internal fields (a hit's ranking key) never leak.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    """A response shape: every field is always present (required in the OpenAPI document)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)
