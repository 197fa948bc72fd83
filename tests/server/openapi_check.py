"""Checks a response (JSON or server-sent events) against the app's OpenAPI document, strictly.

Strict: an object may hold only the properties its schema names, so an undocumented field
(a leaked internal, or a test fake's invention) fails as surely as a missing one.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema_rs

Event = tuple[str, Any]


def strict(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists properties."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    value = {key: strict(item) for key, item in schema.items()}
    if "properties" in value and "additionalProperties" not in value:
        value["additionalProperties"] = False
    return value


class OpenAPIContract:
    """The documented responses of an OpenAPI document, by method, path and status.

    Args:
        document: The app's OpenAPI document (``app.openapi()``).
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = strict(copy.deepcopy(document.get("components", {})))
        self.routes = [
            (_template_regex(path), path, method)
            for path, item in document["paths"].items()
            for method in item
        ]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The documented path template and operation serving ``method path``, if any."""
        found = [
            (template, self.document["paths"][template][method.lower()])
            for regex, template, documented in self.routes
            if documented == method.lower() and regex.fullmatch(path)
        ]
        # Literal segments beat parameters: /api/jobs/{job_id}/events over a catch-all.
        found.sort(key=lambda item: -len(re.sub(r"\{[^}]*\}", "", item[0])))
        return found[0] if found else None

    def schema(self, method: str, path: str, status: int, media_type: str) -> dict[str, Any]:
        """The schema documented for a response; raises AssertionError if there is none."""
        match = self.operation(method, path)
        assert match is not None, f"{method} {path}: no such operation in the OpenAPI document"
        template, operation = match
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {template}: status {status} is not documented"
        content = response.get("content", {}).get(media_type)
        assert content is not None and content.get("schema"), (
            f"{method} {template} {status}: no {media_type} schema documented"
        )
        schema: dict[str, Any] = content["schema"]
        return schema

    def problems(self, schema: dict[str, Any], instance: Any) -> list[str]:
        validator = jsonschema_rs.validator_for({**strict(schema), "components": self.components})
        return [
            f"{error.instance_path}: {error.message}" for error in validator.iter_errors(instance)
        ]

    def check_json(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """What is wrong with a JSON response ``body`` (empty: it matches its documentation)."""
        schema = self.schema(method, path, status, "application/json")
        return [f"{method} {path} {status} {p}" for p in self.problems(schema, body)]

    def check_events(self, method: str, path: str, events: list[Event]) -> list[str]:
        """What is wrong with the (event name, data parsed as JSON) pairs of an SSE response.

        An event's documented ``data`` is a string whose ``contentSchema`` is the schema
        of the JSON it holds (JSON Schema does not validate that by itself).
        """
        schema = self.schema(method, path, 200, "text/event-stream")
        choices = {c["properties"]["event"]["const"]: c for c in schema["oneOf"]}
        found = []
        for name, data in events:
            choice = choices.get(name)
            if choice is None:
                found.append(f"{method} {path}: event {name!r} is not documented")
                continue
            documented = choice["properties"]["data"]
            content = documented.get("contentSchema")
            problems = self.problems(content if content is not None else documented, data)
            found += [f"{method} {path} event {name}: {problem}" for problem in problems]
        return found


def _template_regex(path: str) -> re.Pattern[str]:
    pattern = re.escape(path)
    pattern = re.sub(r"\\\{file\\\}", ".+", pattern)  # file names keep their folders
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", pattern))
