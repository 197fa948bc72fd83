"""Tool calls under a JSON schema, for models whose runtime cannot be trusted to format them.

The reply is constrained to JSON: one call ``{"name": <tool>, "arguments": {...}}``, a
list of calls (when parallel calls are allowed), or ``{"answer": "<text>"}`` (when the
model may decline to call, tool_choice "auto"). Each call's arguments follow that tool's
own parameter schema, so a malformed call cannot be produced. This is the shape Qwen 2.5
is trained to write inside ``<tool_call>`` tags, without the tags.

The schema makes the format safe, not the choice: on a 10-prompt probe (5 needing a tool,
zh + en) Qwen2.5-Coder-0.5B under "auto" picked the right tool for all 5 but also called
one for the 5 that needed none (greetings, a haiku); yes/no and pick-a-name pre-steps
under a grammar did no better (4/10, 7/10, 5/10). Callers that need it to decline
reliably must decide otherwise (or use a larger model).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from kbchat.errors import BackendError
from kbchat.llm.base import ForcedTool, ToolChoice
from kbchat.types import ToolCall, ToolSpec

ANSWER_KEY = "answer"


def reply_schema(
    tools: Sequence[ToolSpec], tool_choice: ToolChoice, parallel_tool_calls: bool
) -> dict[str, Any]:
    """The JSON schema a reply must match under ``tool_choice`` (not "none")."""
    if isinstance(tool_choice, ForcedTool):
        chosen = [tool for tool in tools if tool.name == tool_choice.name]
    else:
        chosen = list(tools)
    calls = [_call_schema(tool) for tool in chosen]
    one_call: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    options = [one_call]
    if parallel_tool_calls and not isinstance(tool_choice, ForcedTool):
        options.append({"type": "array", "items": one_call, "minItems": 1})
    if tool_choice == "auto":
        options.append(
            {
                "type": "object",
                "properties": {ANSWER_KEY: {"type": "string"}},
                "required": [ANSWER_KEY],
                "additionalProperties": False,
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


def answer_hint(tool_choice: ToolChoice) -> str:
    """What to tell the model about the reply's shape, appended to its system prompt."""
    hint = 'Reply with JSON only: a call {"name": <function-name>, "arguments": {...}}'
    if tool_choice == "auto":
        hint += ', or {"answer": "<your reply>"} when no function is needed'
    return hint + "."


def read_reply(text: str, tools: Sequence[ToolSpec]) -> tuple[str, tuple[ToolCall, ...]]:
    """Read a reply written under ``reply_schema``: (answer text, tool calls).

    Raises:
        BackendError: the reply is not such JSON (only if the runtime ignored the schema).
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        excerpt = text[:200]
        message = f"the model's tool-call reply is not JSON ({exc}): {excerpt!r}"
        raise BackendError(message) from None
    if isinstance(value, dict) and set(value) == {ANSWER_KEY}:
        return str(value[ANSWER_KEY]), ()
    known = {tool.name for tool in tools}
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not (isinstance(item, dict) and item.get("name") in known):
            raise BackendError(f"the model's tool-call reply names no known tool: {text[:200]!r}")
        arguments = json.dumps(item.get("arguments") or {}, ensure_ascii=False)
        calls.append(ToolCall(new_call_id(), str(item["name"]), arguments))
    return "", tuple(calls)


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's style (``call_`` + 24 hex digits)."""
    return "call_" + secrets.token_hex(12)


def _call_schema(tool: ToolSpec) -> dict[str, Any]:
    parameters = tool.parameters or {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
