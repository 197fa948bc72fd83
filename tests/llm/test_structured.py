"""complete_json on models that constrain their output and on models that cannot."""

from __future__ import annotations

import pytest

from kbchat.errors import BadInput, Unsupported
from kbchat.llm.base import ForcedTool, ResponseFormat, check_structured, complete_message
from kbchat.llm.structured import StructuredOutputError, complete_json, parse_json_object
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Message, ToolCall, ToolSpec

SCHEMA = {
    "type": "object",
    "properties": {"answerable": {"type": "boolean"}, "quote": {"type": "string"}},
    "required": ["answerable", "quote"],
}
ASK = [Message("system", "Judge the passage."), Message("user", "Does it say?")]


def test_constraining_model_is_asked_for_the_schema_itself() -> None:
    model = ScriptedChatModel(['{"answerable": true, "quote": "two years"}'])
    assert complete_json(model, ASK, SCHEMA) == {"answerable": True, "quote": "two years"}
    assert model.params[0]["response_format"] == ResponseFormat("json_schema", SCHEMA)
    assert model.received[0] == ASK  # no instruction added: the decoder enforces the schema


def test_constrained_answer_cut_by_max_tokens_is_a_clear_error() -> None:
    model = ScriptedChatModel(['{"answerable": true, "quote": "a b c d e f"}'])
    with pytest.raises(StructuredOutputError, match="cut off at max_tokens=3"):
        complete_json(model, ASK, SCHEMA, max_tokens=3)


def test_model_without_constraints_gets_the_schema_in_its_system_prompt() -> None:
    model = ScriptedChatModel(
        ['Sure! ```json\n{"answerable": false, "quote": ""}\n```'], capabilities=frozenset()
    )
    assert complete_json(model, ASK, SCHEMA) == {"answerable": False, "quote": ""}
    assert model.params[0]["response_format"] is None
    system = model.received[0][0]
    assert system.role == "system" and system.content.startswith("Judge the passage.")
    assert '"required": ["answerable", "quote"]' in system.content


def test_one_retry_shows_the_model_its_mistake() -> None:
    model = ScriptedChatModel(
        ['{"answerable": "yes"}', '{"answerable": true, "quote": "q"}'], capabilities=frozenset()
    )
    assert complete_json(model, ASK, SCHEMA) == {"answerable": True, "quote": "q"}
    retry = model.received[1]
    assert retry[-2] == Message("assistant", '{"answerable": "yes"}')
    assert "does not match the schema" in retry[-1].content
    assert "quote" in retry[-1].content


def test_two_wrong_answers_raise_naming_model_and_reason() -> None:
    model = ScriptedChatModel(["I think so."], name="tiny", capabilities=frozenset())
    with pytest.raises(StructuredOutputError, match="model tiny .* not a JSON object"):
        complete_json(model, ASK, SCHEMA)
    assert len(model.received) == 2


def test_invalid_schema_is_bad_input() -> None:
    with pytest.raises(BadInput, match="not a valid JSON schema"):
        complete_json(ScriptedChatModel(), ASK, {"type": 12})


def test_parse_json_object_skips_text_around_it() -> None:
    assert parse_json_object('Here: {"a": [1, {"b": 2}]} done {"c": 3}') == {"a": [1, {"b": 2}]}
    with pytest.raises(ValueError, match="no JSON object"):
        parse_json_object("[1, 2]")


def test_check_structured_names_what_a_backend_cannot_do() -> None:
    tools = [ToolSpec("add")]
    with pytest.raises(Unsupported, match="model remote does not support grammar"):
        check_structured(
            "remote",
            frozenset({"tools"}),
            response_format=None,
            grammar="root ::= x",
            tools=(),
            tool_choice="auto",
        )
    with pytest.raises(BadInput, match="'mul', which is not among the tools \\(add\\)"):
        check_structured(
            "m", frozenset({"tools"}), response_format=None, grammar=None, tools=tools,
            tool_choice=ForcedTool("mul"),
        )  # fmt: skip
    with pytest.raises(BadInput, match="json_schema needs a JSON schema"):
        ResponseFormat("json_schema")


def test_scripted_tool_calls_finish_with_tool_calls() -> None:
    call = ToolCall("call_1", "add", '{"a": 1, "b": 2}')
    model = ScriptedChatModel([[call]])
    done = complete_message(model, ASK, tools=[ToolSpec("add")])
    assert done.tool_calls == [call] and done.finish_reason == "tool_calls" and done.text == ""
    with pytest.raises(ValueError, match="allows none"):
        complete_message(model, ASK)
