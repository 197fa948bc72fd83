"""The JSON schema that makes small models' tool calls well-formed, and reading it back."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from kbchat.errors import BackendError, BadInput
from kbchat.llm.base import ForcedTool
from kbchat.llm.llamacpp import _as_tool_calls
from kbchat.llm.tool_calls import read_reply, reply_schema
from kbchat.types import Delta, ToolSpec, Usage

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

TOOLS = [ToolSpec("get_weather", "Weather in a city", WEATHER), ToolSpec("now", "The time")]
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


def valid(schema: dict[str, Any], value: object) -> bool:
    return bool(jsonschema_rs.validator_for(schema).is_valid(value))


def test_auto_allows_a_call_a_list_of_calls_or_an_answer() -> None:
    schema = reply_schema(TOOLS, "auto", parallel_tool_calls=True)
    assert valid(schema, CALL)
    assert valid(schema, [CALL, {"name": "now", "arguments": {}}])
    assert valid(schema, {"answer": "Hello"})
    assert not valid(schema, {"name": "get_weather", "arguments": {}})  # city required
    assert not valid(schema, {"name": "delete_all", "arguments": {}})
    assert not valid(schema, {"answer": "Hi", "name": "now"})


def test_required_and_forced_choices_leave_no_way_out() -> None:
    required = reply_schema(TOOLS, "required", parallel_tool_calls=False)
    assert valid(required, CALL) and not valid(required, {"answer": "no"})
    assert not valid(required, [CALL])  # no parallel calls
    forced = reply_schema(TOOLS, ForcedTool("now"), parallel_tool_calls=True)
    assert valid(forced, {"name": "now", "arguments": {}}) and not valid(forced, CALL)


def test_read_reply_turns_json_into_calls_or_text() -> None:
    text, calls = read_reply(json.dumps([CALL, {"name": "now", "arguments": {}}]), TOOLS)
    assert text == "" and [c.name for c in calls] == ["get_weather", "now"]
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert calls[0].id.startswith("call_") and calls[0].id != calls[1].id
    assert read_reply('{"answer": "你好"}', TOOLS) == ("你好", ())
    with pytest.raises(BackendError, match="names no known tool"):
        read_reply('{"name": "rm", "arguments": {}}', TOOLS)


def test_embedded_reply_is_read_whole_into_calls_or_text() -> None:
    def reply(*parts: str, finish: str = "stop") -> list[Delta]:
        return [*(Delta(text=p) for p in parts), Delta(finish_reason=finish, usage=Usage(5, 2))]

    calls = list(_as_tool_calls(iter(reply('{"name": "now", ', '"arguments": {}}')), TOOLS, 50))
    assert [c.name for c in calls[0].tool_calls] == ["now"] and calls[0].text == ""
    assert calls[-1].finish_reason == "tool_calls" and calls[-1].usage == Usage(5, 2)
    answer = list(_as_tool_calls(iter(reply('{"answer": ', '"Hi"}')), TOOLS, 50))
    assert [d.text for d in answer] == ["Hi", ""] and answer[-1].finish_reason == "stop"
    cancelled = list(_as_tool_calls(iter(reply('{"na', finish="cancelled")), TOOLS, 50))
    assert [d.finish_reason for d in cancelled] == ["cancelled"]
    with pytest.raises(BadInput, match="max_tokens=7 ran out"):
        list(_as_tool_calls(iter(reply('{"name": "no', finish="length")), TOOLS, 7))
