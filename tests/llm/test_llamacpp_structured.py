"""Constrained decoding and tool calls on the embedded Qwen2.5-Coder-0.5B model."""

from __future__ import annotations

import json

import pytest

from kbchat.errors import BadInput, ContextLengthExceeded
from kbchat.llm.base import ForcedTool, ResponseFormat, complete_message
from kbchat.llm.llamacpp import LlamaCppChatModel
from kbchat.llm.structured import complete_json
from kbchat.types import Message, ToolCall, ToolSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_json_schema_answer_is_valid_json(llamacpp_model: LlamaCppChatModel) -> None:
    person = complete_json(
        llamacpp_model, [Message("user", "Invent a person.")], PERSON, max_tokens=60
    )
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)


def test_json_object_and_grammar_constrain_the_answer(llamacpp_model: LlamaCppChatModel) -> None:
    done = complete_message(
        llamacpp_model,
        [Message("user", "Give the city and country of the Eiffel Tower as JSON, briefly.")],
        response_format=ResponseFormat("json_object"),
        max_tokens=120,
        temperature=0,
    )
    assert done.finish_reason == "stop" and isinstance(json.loads(done.text), dict)
    done = complete_message(
        llamacpp_model,
        [Message("user", "Is Paris in France? Answer at length.")],
        grammar='root ::= "yes" | "no"',
        temperature=0,
    )
    assert done.text in ("yes", "no")
    with pytest.raises(BadInput, match="parse grammar"):
        complete_message(llamacpp_model, [Message("user", "Hi")], grammar="root ::= (")


def test_required_tool_call_comes_back_as_a_call(llamacpp_model: LlamaCppChatModel) -> None:
    ask = [Message("user", "What is the weather in Paris?")]
    done = complete_message(
        llamacpp_model, ask, tools=[WEATHER], tool_choice="required", max_tokens=60, temperature=0
    )
    assert done.finish_reason == "tool_calls" and done.text == ""
    (call,) = done.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}


def test_tool_result_is_used_in_the_answer(llamacpp_model: LlamaCppChatModel) -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    history = [
        Message("user", "What is the weather in Paris?"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "Sunny, 22 degrees Celsius", tool_call_id="call_1"),
    ]
    done = complete_message(
        llamacpp_model, history, tools=[WEATHER], tool_choice="none", max_tokens=40, temperature=0
    )
    assert done.finish_reason == "stop" and not done.tool_calls
    assert "22" in done.text


def test_forced_tool_and_overflow(llamacpp_model: LlamaCppChatModel) -> None:
    done = complete_message(
        llamacpp_model,
        [Message("user", "Tell me about Rome.")],
        tools=[WEATHER],
        tool_choice=ForcedTool("get_weather"),
        max_tokens=60,
        temperature=0,
    )
    assert [c.name for c in done.tool_calls] == ["get_weather"]
    with pytest.raises(ContextLengthExceeded, match="4096-token context"):
        complete_message(llamacpp_model, [Message("user", "这是很长的背景材料。" * 1500)])
