"""Agent chat: routing, tool calls under the scripted model, events, bounds and failures."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from kbchat.app import Services, build
from kbchat.chat.agent import (
    AgentOptions,
    ExampleRouter,
    KbEvidence,
    build_tools,
    run_agent,
    stream_agent,
)
from kbchat.chat.tools import Tool, ToolContext, ToolError, ToolResult
from kbchat.chat.tools.calculator import Calculator, evaluate
from kbchat.chat.tools.clock import Clock
from kbchat.chat.tools.kb_search import KbSearch
from kbchat.chat.tools.sheets_sql import SheetsSql
from kbchat.chat.tools.web import WebSearchTool
from kbchat.config import load_settings
from kbchat.errors import BadInput, ConfigError
from kbchat.llm.base import ForcedTool
from kbchat.testing.fakes import HashEmbedder, ScriptedChatModel
from kbchat.types import Answer, ToolCall, ToolSpec, ToolStep

FIXED_NOW = dt.datetime(2026, 11, 30, 9, 15, tzinfo=dt.UTC)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings(embedder={"backend": "hash"}, ingest={"chunk_size": 200})
    services = build(settings)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle.txt").write_text(
        "The K3 kettle boils water in ninety seconds.\n\nIts warranty lasts two years.",
        encoding="utf-8",
    )
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Q3"
    sheet.append(["region", "month", "revenue"])
    for row in [("East", "Jul", 1200), ("East", "Aug", 1300), ("West", "Jul", "2,500")]:
        sheet.append(row)
    book.save(docs / "sales.xlsx")
    services.library.create("shop")
    services.library.get("shop").add([docs / "kettle.txt", docs / "sales.xlsx"])
    yield services
    services.close()


def context(services: Services, **given: Any) -> ToolContext:
    return ToolContext(services=services, now=lambda: FIXED_NOW, **given)


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(f"call_{name}", name, json.dumps(arguments))


def events(*args: Any, **kwargs: Any) -> tuple[list[ToolStep], str, Answer]:
    steps, text, answer = [], [], None
    for event in run_agent(*args, **kwargs):
        if isinstance(event, ToolStep):
            steps.append(event)
        elif isinstance(event, Answer):
            answer = event
        else:
            text.append(event)
    assert answer is not None
    return steps, "".join(text), answer


# --- tools -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1200 - 950) / 950 * 100", (1200 - 950) / 950 * 100),
        ("15% * 2,340", 351),
        ("２＋３×４", 14),
        ("2^10", 1024),
        ("sqrt(16) + round(2.6)", 7),
    ],
)
def test_calculator_computes(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1/0", "division by zero"),
        ("__import__('os').system('true')", "not an arithmetic expression"),
        ("open('/etc/passwd')", "not an arithmetic expression"),
        ("9**9**9**9", "not an arithmetic expression"),
        ("", "empty"),
        ("'a' * 3", "does not give a number"),
    ],
)
def test_calculator_refuses_what_is_not_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        evaluate(expression)


def test_clock_gives_the_injected_time_in_a_zone(services: Services) -> None:
    text = Clock().run({"timezone": "Asia/Shanghai"}, context(services)).text
    assert "2026-11-30T17:15:00+08:00" in text and "Monday" in text and "星期一" in text
    with pytest.raises(ToolError, match="unknown time zone"):
        Clock().run({"timezone": "Mars/Base"}, context(services))


def test_kb_search_marks_sources_for_citation(services: Services) -> None:
    ctx = context(services)
    text = KbSearch().run({"query": "kettle warranty"}, ctx).text
    assert "[1]" in text and "warranty" in text
    assert ctx.sources[0].file == "kettle.txt" and ctx.sources[0].marker == 1


def test_kb_search_only_reads_what_the_caller_may(services: Services) -> None:
    services.library.create("secret")
    ctx = context(services, can_read=lambda name: name != "secret")
    # a knowledge base the caller may not read is treated as one that does not exist: the
    # search goes to what the caller may read, and the model is told so
    for name in ("secret", "sales"):
        text = KbSearch().run({"query": "kettle warranty", "kb": name}, ctx).text
        assert text.startswith(f"There is no knowledge base named '{name}'; used shop.")
    assert all(source.kb == "shop" for source in ctx.sources)
    assert ctx.readable() == ["shop"]
    nothing = context(services, can_read=lambda name: False)
    with pytest.raises(ToolError, match="no knowledge base named 'secret'"):
        KbSearch().run({"query": "x", "kb": "secret"}, nothing)


def test_sheet_sql_aggregates_and_is_read_only(services: Services) -> None:
    ctx = context(services)
    tool = SheetsSql()
    description = tool.spec_for(ctx).description
    assert "table sales_q3 (from sales.xlsx) with columns region, month, revenue" in description
    text = tool.run({"sql": "SELECT region, SUM(revenue) FROM sales_q3 GROUP BY region"}, ctx).text
    assert "East | 2500" in text and "West | 2500" in text  # "2,500" became a number
    assert ctx.sources[0].file == "sales.xlsx" and ctx.sources[0].sheet == "Q3"
    for sql in ("DELETE FROM sales_q3", "DROP TABLE sales_q3", "ATTACH DATABASE 'x.db' AS x"):
        with pytest.raises(ToolError, match="the SQL failed"):
            tool.run({"sql": sql}, ctx)
    with pytest.raises(ToolError, match="no such table.*sales_q3"):
        tool.run({"sql": "SELECT * FROM nope"}, ctx)


# --- routing -----------------------------------------------------------------------------


def test_example_router_picks_by_similarity_and_arithmetic() -> None:
    router = ExampleRouter(HashEmbedder(dim=256))
    tools: list[Tool] = [Calculator(), Clock(), KbSearch()]
    assert router.choose("what is 1234 * 5678", tools) == "calculator"
    assert router.choose("What day of the week is it today?", tools) == "current_time"
    assert router.choose("Write a short poem about autumn.", tools) is None


# --- the loop ----------------------------------------------------------------------------


def test_routed_question_fills_arguments_under_the_forced_tool(services: Services) -> None:
    model = ScriptedChatModel(
        [[call("current_time", timezone="Asia/Tokyo")], "It is Monday evening in Tokyo."]
    )
    router = ExampleRouter(HashEmbedder(dim=256))
    steps, text, answer = events(
        model,
        "What time is it now in Tokyo?",
        [Calculator(), Clock()],
        context(services),
        router=router,
    )
    assert model.params[0]["tool_choice"] == ForcedTool("current_time")
    assert [s.name for s in model.params[0]["tools"]] == ["current_time"]  # type: ignore[attr-defined]
    assert [(s.tool, s.done) for s in steps] == [("current_time", False), ("current_time", True)]
    assert steps[1].result is not None and "+09:00" in steps[1].result and steps[1].ms is not None
    assert answer.timings["steps"] == 1 and text == "It is Monday evening in Tokyo."


def test_pure_arithmetic_needs_no_model_at_all(services: Services) -> None:
    model = ScriptedChatModel(["unused"])
    router = ExampleRouter(HashEmbedder(dim=256))
    _, text, _ = events(
        model, "what is 1234 * 5678", [Calculator(), Clock()], context(services), router=router
    )
    assert model.received == [] and text == "1234 * 5678 = 7006652"


def test_routed_tool_result_is_written_up_by_the_model(services: Services) -> None:
    model = ScriptedChatModel(["Today is Monday, 30 November 2026."])
    router = ExampleRouter(HashEmbedder(dim=256))
    steps, text, _ = events(
        model,
        "What day of the week is it today?",
        [Calculator(), Clock()],
        context(services),
        router=router,
    )
    assert [s.tool for s in steps if s.done] == ["current_time"]
    assert model.params[0]["tools"] == []  # no zone asked: only the answer needs the model
    assert "2026-11-30" in model.received[0][-1].content and text.startswith("Today is Monday")


def test_router_follows_the_knowledge_base_evidence() -> None:
    router = ExampleRouter(HashEmbedder(dim=256))
    tools: list[Tool] = [KbSearch(), SheetsSql(), Calculator(), Clock(), WebSearchTool()]
    strong = KbEvidence(0.9, "prices.md", sheet=False, strong=True)
    sheet = KbEvidence(0.8, "sales.csv", sheet=True, strong=True)
    weak = KbEvidence(0.1, "prices.md", sheet=False, strong=False)
    question = "How much do two K3 kettles cost in total?"
    assert router.plan(question, tools, strong) == ["kb_search", "calculator"]
    assert router.plan("What is the K3 price?", tools, strong) == ["kb_search"]
    assert router.plan("What was the revenue in the East?", tools, sheet) == ["sheet_sql"]
    assert router.plan("What does the manual say about the warranty?", tools, weak) == [
        "web_search"
    ]
    assert router.plan("Search the web for the K3 price", tools, strong) == ["web_search"]
    assert router.plan("上网查一下明天的天气", tools, strong) == ["web_search"]
    assert router.plan("12345 减去 6789 是多少？", tools, sheet) == ["calculator"]
    assert router.plan("what is 3 times 4", tools, strong) == ["calculator"]


def test_no_tool_question_is_answered_in_one_call(services: Services) -> None:
    model = ScriptedChatModel(["Leaves fall, quietly."])
    router = ExampleRouter(HashEmbedder(dim=256))
    steps, text, answer = events(
        model, "Write a short poem about autumn.", [Calculator()], context(services), router=router
    )
    assert steps == [] and text == "Leaves fall, quietly." and len(model.received) == 1
    assert answer.citations == [] and not answer.grounded


def test_kb_search_citations_come_back_with_the_answer(services: Services) -> None:
    model = ScriptedChatModel(
        [[call("kb_search", query="K3 warranty")], "The warranty lasts two years [1]."]
    )
    _, _, answer = events(
        model,
        "How long is the K3 warranty?",
        [KbSearch()],
        context(services),
        options=AgentOptions(router="model"),
    )
    assert [c.file for c in answer.citations] == ["kettle.txt"] and answer.grounded


def test_model_router_loops_until_an_answer_within_max_steps(services: Services) -> None:
    model = ScriptedChatModel(
        [
            [call("current_time")],
            [call("calculator", expression="30 - 1")],
            "Done.",
        ]
    )
    steps, _, answer = events(
        model,
        "How many days are left in November?",
        [Calculator(), Clock()],
        context(services),
        options=AgentOptions(router="model", max_steps=2),
    )
    assert [s.tool for s in steps if s.done] == ["current_time", "calculator"]
    assert "limit of 2 tool calls" in " ".join(answer.notices)


def test_repeated_call_is_not_run_again(services: Services) -> None:
    repeat = [call("calculator", expression="1+1")]
    model = ScriptedChatModel([repeat, repeat, "2"])
    steps, _, answer = events(
        model, "1+1?", [Calculator()], context(services), options=AgentOptions(router="model")
    )
    assert len([s for s in steps if s.done]) == 1
    assert "repeated a tool call" in " ".join(answer.notices)


class Broken:
    spec = ToolSpec("broken", "always fails", {"type": "object", "properties": {}})
    examples = ("break it",)

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        raise RuntimeError("disk on fire")


def test_tool_failures_unknown_tools_and_bad_arguments_are_shown(services: Services) -> None:
    model = ScriptedChatModel(
        [
            [
                ToolCall("c1", "broken", "{}"),
                ToolCall("c2", "teleport", "{}"),
                ToolCall("c3", "calculator", json.dumps({"expression": 5})),
            ],
            "Sorry, the tools failed.",
        ]
    )
    steps, _, _ = events(
        model,
        "break it",
        [Broken(), Calculator()],
        context(services),
        options=AgentOptions(router="model", max_steps=5),
    )
    errors = [s.error for s in steps if s.done]
    assert errors[0] == "broken failed: RuntimeError: disk on fire"
    assert "there is no tool 'teleport'" in str(errors[1])
    assert "bad arguments for calculator" in str(errors[2])
    shown = [m.content for m in model.received[1] if m.role == "tool"]
    assert "disk on fire" in shown[0] and "teleport" in shown[1] and shown[2].startswith("Error:")


def test_bad_setup_is_refused(services: Services) -> None:
    model = ScriptedChatModel(["x"])
    with pytest.raises(BadInput, match="empty"):
        events(model, " ", [Calculator()], context(services))
    with pytest.raises(BadInput, match="no tools"):
        events(model, "hi", [], context(services))
    with pytest.raises(ConfigError, match="unknown tool 'nope'"):
        build_tools(load_settings(agent={"tools": ["nope"]}))


def test_user_tools_come_through_the_same_registry() -> None:
    settings = load_settings(
        agent={"tools": ["calculator"], "user_tools": {"broken": f"{__name__}:Broken"}}
    )
    assert [t.spec.name for t in build_tools(settings)] == ["calculator", "broken"]


def test_stream_agent_uses_the_configured_model(services: Services) -> None:
    model = ScriptedChatModel(
        [[call("sheet_sql", sql="SELECT SUM(revenue) FROM sales_q3")], "5000 [1]"]
    )
    services.models.add(services.settings.default_model, model)
    answer = next(
        e
        for e in stream_agent(services, "What was the total revenue in Q3 in the sales sheet?")
        if isinstance(e, Answer)
    )
    assert answer.citations[0].file == "sales.xlsx"


@pytest.mark.parametrize(
    ("question", "expression"),
    [
        ("What is 4,821 times 37?", "4821 * 37"),
        ("Divide 98,765 by 5", "98765 / 5"),
        ("What is 18% of 3,450?", "18% * 3450"),
        ("2 to the power of 10?", "2 ** 10"),
        ("7896 乘以 45 等于多少？", "7896 * 45"),
        ("144 的平方根是多少？", "sqrt(144)"),
        ("987 加 1234 再乘以 3 等于多少？", "(987 + 1234) * 3"),
        ("How much do two K3 kettles cost?", None),
        ("What happened in 2026?", None),
        ("Is 3 + 4 more than 2 + 9?", None),  # two expressions: the model decides
    ],
)
def test_calculator_reads_expressions_spelled_out_in_the_question(
    question: str, expression: str | None
) -> None:
    from kbchat.chat.tools.calculator import expression_in

    assert expression_in(question) == expression


def test_routed_arguments_come_from_the_question_when_a_tool_can_read_them(
    services: Services,
) -> None:
    model = ScriptedChatModel([[call("calculator", expression="399 * 2")], "unused"])
    router = ExampleRouter(HashEmbedder(dim=256))
    evidence = KbEvidence(0.9, "kettle.txt", sheet=False, strong=True)
    steps, text, _ = events(
        model,
        "How much do two K3 kettles cost in total?",
        [KbSearch(), Calculator()],
        context(services),
        router=router,
        evidence=evidence,
    )
    calls = [(s.tool, s.arguments) for s in steps if s.done]
    assert calls == [
        ("kb_search", {"query": "How much do two K3 kettles cost in total?"}),
        ("calculator", {"expression": "399 * 2"}),
    ]
    assert len(model.received) == 1  # only the expression needed the model
    assert text == "399 * 2 = 798"


def test_a_call_the_model_cannot_finish_is_a_failed_step(services: Services) -> None:
    class Rambling(ScriptedChatModel):
        def stream(self, messages: Any, **params: Any) -> Any:
            if params.get("tools"):
                raise BadInput("max_tokens=256 ran out before the tool call was complete")
            return super().stream(messages, **params)

    model = Rambling(["I could not compute it."])
    router = ExampleRouter(HashEmbedder(dim=256))
    steps, text, answer = events(
        model, "What time is it now in Tokyo?", [Clock()], context(services), router=router
    )
    assert steps[0].error is not None and "could not write the call" in steps[0].error
    # nothing the tools returned: the answer says so instead of letting the model guess
    assert text.startswith("The tools could not answer this: the model could not write the call")
    assert answer.notices and answer.outcome == "refused"


@pytest.mark.parametrize(
    ("question", "arguments"),
    [
        ("What's the date today?", {}),
        ("今天是星期几？", {}),
        ("What time is it in Tokyo?", None),
        ("现在北京时间几点？", None),
        ("What is the time in UTC?", None),
    ],
)
def test_clock_needs_the_model_only_for_a_place(question: str, arguments: Any) -> None:
    assert Clock().arguments_from(question) == arguments


def test_summarize_file_tool_keeps_and_reuses_the_summary(services: Services) -> None:
    from kbchat.chat.tools.summarize_file import SummarizeFile

    model = ScriptedChatModel(["A note on the K3 kettle: fast boiling, two-year warranty."])
    services.models.add(services.settings.default_model, model)
    ctx = context(services)
    text = SummarizeFile().run({"file": "KETTLE.TXT"}, ctx).text
    assert text.startswith("[1] Summary of kettle.txt: A note on the K3 kettle")
    assert ctx.sources[0].file == "kettle.txt"
    calls = len(model.received)
    again = SummarizeFile().run({"file": "kettle.txt"}, context(services)).text
    assert "two-year warranty" in again and len(model.received) == calls  # kept, not redone
    with pytest.raises(ToolError, match="no indexed file named 'nope.pdf'"):
        SummarizeFile().run({"file": "nope.pdf"}, ctx)


def test_a_failed_routed_call_is_retried_once_with_the_error_in_view(services: Services) -> None:
    model = ScriptedChatModel(
        [
            [call("sheet_sql", sql="SELECT SUM(revenue) FROM sales.xlsx")],
            [call("sheet_sql", sql="SELECT SUM(revenue) FROM sales_q3")],
            "The total revenue is 5000.",
        ]
    )
    router = ExampleRouter(HashEmbedder(dim=256))
    evidence = KbEvidence(0.9, "sales.xlsx", sheet=True, strong=True)
    steps, text, answer = events(
        model,
        "What is the total revenue in the sales sheet?",
        [SheetsSql(), KbSearch()],
        context(services),
        router=router,
        evidence=evidence,
    )
    done = [s for s in steps if s.done]
    assert done[0].error is not None and "no such table" in done[0].error
    assert done[1].result is not None and "5000" in done[1].result
    assert "sales_q3" in model.received[1][-1].content  # the retry saw the error's table list
    assert text == "The total revenue is 5000." and answer.citations[0].file == "sales.xlsx"


def test_when_every_tool_call_fails_the_answer_says_so(services: Services) -> None:
    bad = [call("sheet_sql", sql="SELECT nope FROM nowhere")]
    model = ScriptedChatModel([bad, bad, "The total is 10000."])
    router = ExampleRouter(HashEmbedder(dim=256))
    evidence = KbEvidence(0.9, "sales.xlsx", sheet=True, strong=True)
    _, text, answer = events(
        model,
        "What is the total revenue in the sales sheet?",
        [SheetsSql()],
        context(services),
        router=router,
        evidence=evidence,
    )
    assert "10000" not in text and text.startswith("The tools could not answer this")
    assert answer.outcome == "refused"
