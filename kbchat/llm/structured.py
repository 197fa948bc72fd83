"""JSON answers that match a schema, from any chat model.

A model that can constrain its decoding (``CAN_RESPONSE_FORMAT``: embedded llama.cpp, a
remote server) is asked for the schema directly. Any other model is told the schema in
the prompt; its reply is parsed and validated, and one retry shows it the error. Either
way the result is checked against the schema before it is returned.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import jsonschema_rs

from kbchat.errors import BackendError, BadInput
from kbchat.llm.base import (
    CAN_RESPONSE_FORMAT,
    FINISH_LENGTH,
    ChatModel,
    ResponseFormat,
    capabilities,
    complete_message,
)
from kbchat.types import Message

_EXCERPT = 300


class StructuredOutputError(BackendError):
    """The model's answer is not JSON matching the schema (after the retry, if any)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def complete_json(
    model: ChatModel,
    messages: Sequence[Message],
    schema: dict[str, Any],
    *,
    temperature: float = 0.0,
    max_tokens: int = 512,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Ask ``model`` for a JSON object matching ``schema`` and return it, validated.

    Args:
        schema: A JSON schema whose instances are objects.
        max_tokens: Budget per attempt; the answer must fit whole.

    Raises:
        BadInput: ``schema`` is not a valid JSON schema.
        StructuredOutputError: the answer is not a JSON object matching ``schema``
            (constrained models: cut off by ``max_tokens``; others: wrong after a retry).
    """
    validator = _validator(schema)
    params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
    if cancel is not None:
        params["cancel"] = cancel
    if CAN_RESPONSE_FORMAT in capabilities(model):
        params["response_format"] = ResponseFormat("json_schema", schema)
        done = complete_message(model, messages, **params)
        return _checked(model, done.text, done.finish_reason, validator, max_tokens)
    prompt = _with_instruction(messages, schema)
    done = complete_message(model, prompt, **params)
    try:
        return _checked(model, done.text, done.finish_reason, validator, max_tokens)
    except StructuredOutputError as first:
        retry = [
            *prompt,
            Message("assistant", done.text),
            Message("user", f"{first.reason} Reply again with only the corrected JSON object."),
        ]
        again = complete_message(model, retry, **params)
        return _checked(model, again.text, again.finish_reason, validator, max_tokens)


def parse_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (code fences and text around it are skipped).

    Raises:
        ValueError: there is no JSON object in ``text``.
    """
    start = text.find("{")
    if start < 0:
        raise ValueError("there is no JSON object in it")
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    if not isinstance(value, dict):
        raise ValueError("it is not a JSON object")
    return value


def _validator(schema: dict[str, Any]) -> Any:
    try:
        return jsonschema_rs.validator_for(schema)
    except (ValueError, jsonschema_rs.ValidationError) as exc:
        raise BadInput(f"not a valid JSON schema: {exc}") from None


def _checked(
    model: ChatModel, text: str, finish: str | None, validator: Any, max_tokens: int
) -> dict[str, Any]:
    def fail(reason: str) -> StructuredOutputError:
        return StructuredOutputError(
            f"model {model.name} did not answer with JSON matching the schema: {reason} "
            f"(answer: {text[:_EXCERPT]!r})",
            reason,
        )

    if finish == FINISH_LENGTH:
        raise fail(f"the answer was cut off at max_tokens={max_tokens}.")
    try:
        value = parse_json_object(text)
    except ValueError as exc:
        raise fail(f"the answer is not a JSON object ({exc}).") from None
    problems = [error.message for error in validator.iter_errors(value)]
    if problems:
        raise fail(f"the JSON does not match the schema ({'; '.join(problems[:3])}).")
    return value


def _with_instruction(messages: Sequence[Message], schema: dict[str, Any]) -> list[Message]:
    """``messages`` with the schema spelled out in the system prompt."""
    instruction = (
        "Answer with one JSON object only, no other text, matching this JSON schema:\n"
        + json.dumps(schema, ensure_ascii=False)
    )
    if messages and messages[0].role == "system":
        first = messages[0]
        return [Message("system", f"{first.content}\n\n{instruction}"), *messages[1:]]
    return [Message("system", instruction), *messages]
