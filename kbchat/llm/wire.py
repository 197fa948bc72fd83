"""OpenAI's chat wire format, both ways: request parts as JSON dicts, answer chunks read back.

Shared by every backend whose runtime speaks this format (a remote server, embedded llama.cpp).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kbchat.llm.base import ForcedTool, ResponseFormat, ToolChoice
from kbchat.types import Message, ToolCall, ToolSpec, Usage


def message_dict(message: Message) -> dict[str, Any]:
    """``message`` as an OpenAI chat message (with its tool calls or the call it answers)."""
    body: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        body["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        body["tool_call_id"] = message.tool_call_id
    return body


def tool_dict(tool: ToolSpec) -> dict[str, Any]:
    """``tool`` as an OpenAI ``tools`` entry."""
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def tool_choice_value(choice: ToolChoice) -> str | dict[str, Any]:
    """``choice`` as OpenAI's ``tool_choice`` value."""
    if isinstance(choice, ForcedTool):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def response_format_dict(response_format: ResponseFormat) -> dict[str, Any]:
    """``response_format`` as OpenAI's ``response_format`` value."""
    if response_format.type != "json_schema":
        return {"type": response_format.type}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": response_format.name,
            "schema": response_format.schema,
            "strict": response_format.strict,
        },
    }


@dataclass(slots=True)
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChunkReader:
    """Reads OpenAI ``chat.completion.chunk`` objects: text, tool calls, usage, finish reason.

    Tool calls arrive in fragments keyed by ``index`` (id and name first, arguments in
    pieces); ``tool_calls()`` joins them. ``on_error`` turns an ``{"error": ...}`` chunk
    into the exception to raise.
    """

    def __init__(self, on_error: Callable[[object], Exception]) -> None:
        self.on_error = on_error
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.timings: dict[str, float] = {}
        self._calls: dict[int, _CallParts] = {}

    def feed(self, chunk: dict[str, Any]) -> str:
        """Take one chunk; return the answer text it adds ("" if none)."""
        if chunk.get("error"):
            raise self.on_error(chunk["error"])
        if progress := chunk.get("prompt_progress"):
            self.prompt_tokens = int(progress.get("total", 0))
        if usage := chunk.get("usage"):
            self.usage = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        if timings := chunk.get("timings"):
            self.timings = {k: float(v) for k, v in timings.items() if _is_number(v)}
        text = ""
        for choice in chunk.get("choices") or ():
            part = choice.get("delta") or choice.get("message") or {}
            if content := part.get("content"):
                text += content
                self.completion_tokens += 1
            self._feed_calls(part.get("tool_calls") or ())
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return text

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls read so far, joined from their fragments, in index order."""
        return tuple(
            ToolCall(parts.id, parts.name, "".join(parts.arguments) or "{}")
            for _, parts in sorted(self._calls.items())
        )

    def usage_so_far(self) -> Usage:
        """Usage counted from the chunks seen (one chunk ~ one token), for cut-off streams."""
        return Usage(self.prompt_tokens, self.completion_tokens)

    def _feed_calls(self, fragments: Sequence[dict[str, Any]]) -> None:
        for position, fragment in enumerate(fragments):
            index = int(fragment.get("index", position))
            parts = self._calls.setdefault(index, _CallParts())
            parts.id = fragment.get("id") or parts.id
            function = fragment.get("function") or {}
            parts.name = function.get("name") or parts.name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                parts.arguments.append(arguments)
            elif arguments is not None:  # some servers send the object itself
                parts.arguments.append(json.dumps(arguments, ensure_ascii=False))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
