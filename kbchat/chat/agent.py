"""Agent chat: the model may call tools (search, calculator, clock, SQL over sheets...) before
it answers; every step is streamed as an event.

Two ways to choose a tool:
- ``router="model"``: the OpenAI tools protocol with ``tool_choice="auto"`` in a loop of at
  most ``max_steps`` calls, for models that choose tools well (remote, larger ones).
- ``router="examples"`` (default for the embedded small models): the question is matched
  against each tool's example questions and against questions that need no tool, by the
  embedder's cosine similarity; the model then only fills in the chosen tool's arguments,
  under that tool's JSON schema (constrained decoding on llama.cpp), so a format error
  cannot happen. Qwen2.5-0.5B under ``auto`` calls a tool for nearly every question
  (kbchat.llm.tool_calls), so it is not asked to choose.

Either way the answer is written last, streamed, from the tool results; sources that tools
marked [n] become the answer's citations. Bounded: ``max_steps`` tool calls, ``max_seconds``
in all; a repeated identical call is not run again; unknown tools, bad arguments and tool
exceptions are shown to the model and the user, never swallowed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kbchat.chat.memory import fit_history
from kbchat.chat.tools import Tool, ToolContext, ToolError
from kbchat.embed.base import Embedder
from kbchat.errors import BackendError, BadInput, ConfigError, KbchatError
from kbchat.llm.base import ChatModel, Completion, ForcedTool, complete_message
from kbchat.llm.tool_calls import new_call_id
from kbchat.prompts import render, template
from kbchat.text import detect_language
from kbchat.types import Answer, Message, ToolCall, ToolSpec, ToolStep, Usage

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kbchat.app import Services
    from kbchat.config import Settings

Router = Literal["model", "examples"]

NO_TOOL_EXAMPLES = (
    "Hello, how are you?",
    "Write a short poem about autumn.",
    "Translate 'good morning' into French.",
    "What is the capital of France?",
    "Explain what recursion is.",
    "Thanks, that helps!",
    "Tell me a joke.",
    "Write a Python function that reverses a string.",
    "你好",
    "写一首关于春天的诗",
    "把“早上好”翻译成英文",
    "解释一下什么是递归",
    "谢谢你的帮助",
    "讲个笑话",
    "中国的首都是哪里？",
    "用 Python 写一个冒泡排序",
)
"""Questions that need no tool, matched against like the tools' own examples."""

ARGUMENT_TOKENS = 256
"""Most tokens a tool call may take (arguments are short; a cut-off call is a failed step)."""
_ARITHMETIC = re.compile(
    r"\d\s*[-+*/×÷^]\s*[\d(]|[\d)]\s*[-+*/×÷^]\s*\d"
    r"|\d\s*(加上?|减去?|乘以?|除以?)\s*\d|\d\s*的\s*(平方根?|立方|\d+\s*次方)"
    r"|\d\s*(plus|minus|times|divided by|multiplied by)\s*\d|square root of \d",
    re.IGNORECASE,
)
"""An arithmetic expression, in symbols or words (zh, en), between numbers."""
_CALCULATION = re.compile(
    r"\b(total|in all|altogether|together|combined|sum|difference|how much more|how much less|"
    r"times|twice|percent|average)\b|%|一共|总共|合计|总计|加起来|一起|相差|多多少|少多少|贵多少|"
    r"便宜多少|百分之|倍|平均|[两二三四五六七八九十]\s*[台个件瓶只套]",
    re.IGNORECASE,
)
"""Words asking for a calculation over numbers that must first be found (in documents)."""
_WEB_REQUEST = re.compile(
    r"\b(search|look|find)\b[^.?!]{0,20}\b(web|online|internet)\b|\b(google|search online)\b|"
    r"上网|网上|在线搜|联网|搜一下|搜索一下|百度一下",
    re.IGNORECASE,
)
"""An explicit request to search the web."""


@dataclass(frozen=True)
class AgentOptions:
    """Bounds and choices of one agent run.

    Attributes:
        max_steps: tool calls at most (a call the model repeats counts once).
        max_seconds: wall time for all steps before the answer is written from what is there.
        router: how the tool is chosen (module docstring).
        max_tokens / temperature: for the written answer; tool arguments use 256 / 0.
        history_tokens: budget for earlier turns.
    """

    max_steps: int = 3
    max_seconds: float = 120.0
    router: Router = "examples"
    max_tokens: int = 512
    temperature: float = 0.1
    history_tokens: int = 1024


AgentEvent = str | ToolStep | Answer
"""Events of a run: tool steps, then answer text deltas, then the finished Answer."""


@dataclass(frozen=True)
class KbEvidence:
    """What a search of the conversation's knowledge bases found for the question: the best
    hit's relevance, its file, whether that file is a spreadsheet, and whether the score
    clears the answer bar (``chat.min_score``, or ``min_score_cross`` across languages)."""

    score: float
    file: str
    sheet: bool
    strong: bool


@dataclass
class ExampleRouter:
    """Chooses the tools for a question without asking the model (see the module docstring).

    In order: an explicit request to search the web goes to web_search; an arithmetic
    expression to the calculator; a question the knowledge bases answer well (``KbEvidence``
    strong) to kb_search, or sheet_sql when the best hit is a spreadsheet; otherwise the
    nearest example questions decide (a tool, or none), except that a document tool chosen
    without evidence gives way to web_search when there is one. ``margin``: the best tool
    must beat the best no-tool example by this much.
    """

    embedder: Embedder
    margin: float = 0.0
    _cache: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)

    def plan(
        self, question: str, tools: Sequence[Tool], evidence: KbEvidence | None = None
    ) -> list[str]:
        """The tools to call in order: the chosen one, then the calculator when the question
        asks to calculate with what a search finds ("two K3 kettles cost in total?")."""
        first = self.choose(question, tools, evidence)
        if first is None:
            return []
        names = {tool.spec.name for tool in tools}
        searches = first in ("kb_search", "web_search")
        if searches and "calculator" in names and _CALCULATION.search(question):
            return [first, "calculator"]
        return [first]

    def choose(
        self, question: str, tools: Sequence[Tool], evidence: KbEvidence | None = None
    ) -> str | None:
        names = [tool.spec.name for tool in tools]
        if "web_search" in names and _WEB_REQUEST.search(question):
            return "web_search"
        if "calculator" in names and _ARITHMETIC.search(question):
            return "calculator"
        if evidence is not None and evidence.strong:
            if evidence.sheet and "sheet_sql" in names:
                return "sheet_sql"
            if "kb_search" in names:
                return "kb_search"
        chosen = self._nearest(question, tools)
        documents = chosen in ("kb_search", "sheet_sql")
        if documents and evidence is not None and not evidence.strong and "web_search" in names:
            return "web_search"
        return chosen

    def _nearest(self, question: str, tools: Sequence[Tool]) -> str | None:
        labels: list[str | None] = []
        texts: list[str] = []
        for tool in tools:
            labels += [tool.spec.name] * len(tool.examples)
            texts += list(tool.examples)
        labels += [None] * len(NO_TOOL_EXAMPLES)
        texts += list(NO_TOOL_EXAMPLES)
        key = tuple(texts)
        if key not in self._cache:
            self._cache[key] = self.embedder.embed_batch(texts, is_query=True)
        query = self.embedder.embed_batch([question], is_query=True)[0]
        scores = self._cache[key] @ query
        best: dict[str | None, float] = {}
        for label, score in zip(labels, scores, strict=True):
            best[label] = max(best.get(label, -1.0), float(score))
        tool_scores = {k: v for k, v in best.items() if k is not None}
        if not tool_scores:
            return None
        chosen = max(tool_scores, key=lambda k: tool_scores[k])
        return chosen if tool_scores[chosen] > best.get(None, -1.0) + self.margin else None


def run_agent(
    model: ChatModel,
    question: str,
    tools: Sequence[Tool],
    context: ToolContext,
    *,
    history: Sequence[Message] = (),
    options: AgentOptions | None = None,
    router: ExampleRouter | None = None,
    evidence: KbEvidence | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[AgentEvent]:
    """Answer ``question`` with ``tools``: yields ToolSteps, answer text deltas, then the Answer.

    ``evidence`` (what the knowledge bases hold for the question) informs the example router.

    Raises:
        BadInput: empty question, no tools, or ``router="examples"`` without a router.
        LLMError / BackendError: the model failed (tool failures do not raise: they are
            shown to the model and in the ToolStep).
    """
    options = options or AgentOptions()
    if not question.strip():
        raise BadInput("the question is empty")
    if not tools:
        raise BadInput("the agent has no tools")
    if options.router == "examples" and router is None:
        raise BadInput("router='examples' needs an ExampleRouter")
    started = time.perf_counter()
    language = detect_language(question)
    by_name = {tool.spec.name: tool for tool in tools}
    specs = [_spec(tool, context) for tool in tools]
    budget = max(0, min(options.history_tokens, model.context_window // 4))
    messages = [
        Message("system", template("agent_system", language)),
        *fit_history(history, budget, model.count_tokens),
        Message("user", question),
    ]
    usage = Usage()
    notices: list[str] = []
    seen: set[tuple[str, str]] = set()
    retried: set[str] = set()
    finished: list[ToolStep] = []
    steps = 0
    reply_text = ""
    plan = []
    if router is not None and options.router == "examples":
        plan = router.plan(question, tools, evidence)
    timings: dict[str, float] = {"route": time.perf_counter() - started}
    while steps < options.max_steps:
        forced = plan[steps] if steps < len(plan) else None
        if options.router == "examples" and forced is None:
            break
        if time.perf_counter() - started > options.max_seconds:
            notices.append(
                f"the agent stopped after {options.max_seconds:.0f} s; answering with what it has"
            )
            break
        given = _given_arguments(by_name.get(forced), question) if forced and steps == 0 else None
        if forced and given is not None:
            # the arguments are plain in the question ("what is 1234 * 5678"): no model call
            call = ToolCall(new_call_id(), forced, given)
            done = Completion(text="", usage=Usage(), finish_reason="tool_calls", tool_calls=[call])
        else:
            choice = ForcedTool(forced) if forced else "auto"
            call_specs = [s for s in specs if s.name == forced] if forced else specs
            try:
                done = complete_message(
                    model,
                    messages,
                    tools=call_specs,
                    tool_choice=choice,
                    parallel_tool_calls=False,
                    temperature=0.0,
                    max_tokens=ARGUMENT_TOKENS,
                    cancel=cancel,
                )
            except (BadInput, BackendError) as exc:
                # a call the model could not write (cut off, or unreadable from a remote
                # model): shown as a failed step, and the answer is written from what is there
                steps += 1
                failed = f"the model could not write the call: {exc}"
                failed_step = ToolStep(
                    steps, new_call_id(), forced or "?", {}, True, None, failed, 0.0
                )
                finished.append(failed_step)
                yield failed_step
                notices.append(failed)
                break
            usage += done.usage
        if not done.tool_calls:
            reply_text = done.text
            break
        messages.append(Message("assistant", done.text, tool_calls=tuple(done.tool_calls)))
        repeated = False
        for call in done.tool_calls:
            steps += 1
            key = (call.name, _canonical(call.arguments))
            if key in seen:
                repeated = True
                content = "This exact call was already made; its result is above. Answer now."
                messages.append(Message("tool", content, tool_call_id=call.id))
                continue
            seen.add(key)
            step_events, content = _run_call(call, by_name, context, steps, cancel)
            yield from step_events
            finished.append(step_events[-1])
            last = step_events[-1]
            direct = getattr(by_name.get(call.name), "answers_directly", False)
            if plan and plan[-1] == call.name and direct and last.error is None and last.result:
                reply_text = last.result
            messages.append(Message("tool", content, tool_call_id=call.id))
            if last.error and plan and call.name not in retried and steps < options.max_steps:
                # the error names what was wrong ("no such table: sales.csv. Tables: sales(...)"):
                # the routed tool gets one more try with it in view
                retried.add(call.name)
                plan.insert(steps, call.name)
        if repeated:
            notices.append("the model repeated a tool call; it was not run again")
            break
    else:
        if options.router == "model":
            notices.append(f"the agent reached its limit of {options.max_steps} tool calls")
    timings["tools"] = time.perf_counter() - started - timings["route"]
    answer = Answer(
        text="",
        model=model.name,
        question=question,
        grounded=False,
        notices=notices,
        tool_steps=finished,
    )
    errors = [s for s in finished if s.error]
    if finished and len(errors) == len(finished):
        # every tool call failed: say so rather than let the model guess (it answered
        # "10000" for a sum whose SQL failed)
        answer.text = render("agent_failed", language, error=errors[-1].error or "")
        answer.outcome = "refused"
        yield answer.text
    elif reply_text:
        # the model chose to answer (router "model"), or the last routed tool's result is the
        # answer (the calculator: a small model miscopies long numbers when restating them)
        answer.text = reply_text
        yield reply_text
    else:
        yield from _write_answer(model, messages, language, options, answer, usage, cancel)
        usage = answer.usage
    answer.usage = usage
    cited = [c for c in context.sources if f"[{c.marker}]" in answer.text]
    answer.grounded = bool(cited)
    # an answer written from results without markers still shows what the tools consulted
    answer.citations = cited or list(context.sources)
    timings["total"] = time.perf_counter() - started
    answer.timings = {k: round(v, 4) for k, v in timings.items()}
    answer.timings["steps"] = steps
    yield answer


def _given_arguments(tool: Tool | None, question: str) -> str | None:
    """Arguments a tool reads straight from the question (``arguments_from``), as JSON."""
    read = getattr(tool, "arguments_from", None)
    if not callable(read):
        return None
    arguments = read(question)
    return None if arguments is None else json.dumps(arguments, ensure_ascii=False)


def _run_call(
    call: ToolCall,
    tools: dict[str, Tool],
    context: ToolContext,
    step: int,
    cancel: threading.Event | None,
) -> tuple[list[ToolStep], str]:
    """Run one call: its start and end events, and what the model reads back."""
    try:
        arguments = json.loads(call.arguments or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("arguments are not a JSON object")
    except ValueError as exc:
        arguments = {}
        bad = f"the arguments of {call.name} are not a JSON object: {exc}"
        return [ToolStep(step, call.id, call.name, arguments, done=True, error=bad, ms=0.0)], bad
    begin = ToolStep(step, call.id, call.name, arguments)
    tool = tools.get(call.name)
    started = time.perf_counter()
    try:
        if tool is None:
            raise ToolError(f"there is no tool {call.name!r}; tools: {', '.join(sorted(tools))}")
        _check_arguments(tool.spec, arguments)
        result: str | None = tool.run(arguments, context).text
        error: str | None = None
    except KbchatError as exc:
        result, error = None, str(exc)
    except Exception as exc:  # a tool's own bug is shown, not swallowed, and the run goes on
        result, error = None, f"{call.name} failed: {type(exc).__name__}: {exc}"
    ms = round((time.perf_counter() - started) * 1000, 1)
    end = ToolStep(
        step, call.id, call.name, arguments, done=True, result=result, error=error, ms=ms
    )
    return [begin, end], result if result is not None else f"Error: {error}"


def _write_answer(
    model: ChatModel,
    messages: list[Message],
    language: Literal["zh", "en"],
    options: AgentOptions,
    answer: Answer,
    usage: Usage,
    cancel: threading.Event | None,
) -> Iterator[str]:
    """Stream the answer from the tool results (as plain text, no tool protocol)."""
    question = next(m.content for m in reversed(messages) if m.role == "user")
    results = [m.content for m in messages if m.role == "tool"]
    history = [m for m in messages[1:] if m.role in ("user", "assistant") and not m.tool_calls]
    # "cite it as [n]" only when some result has markers: a 0.5B model told to cite a bare
    # SQL result answered "[1]" (bench/agent.py)
    cited = any(re.search(r"\[\d+\]", result) for result in results)
    name = "agent_answer" if cited else "agent_answer_plain"
    prompt = [Message("system", template(name, language)), *history[:-1]]
    if results:
        body = "\n\n".join(results)
        prompt.append(Message("user", f"Tool results:\n{body}\n\nQuestion: {question}"))
    else:
        prompt.append(Message("user", question))
    parts: list[str] = []
    for delta in model.stream(
        prompt,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        cancel=cancel,
    ):
        if delta.text:
            parts.append(delta.text)
            yield delta.text
        if delta.finish_reason is not None:
            answer.finish_reason = delta.finish_reason
        if delta.usage is not None:
            usage += delta.usage
    answer.text = "".join(parts)
    answer.usage = usage


def _spec(tool: Tool, context: ToolContext) -> ToolSpec:
    describe = getattr(tool, "spec_for", None)
    return describe(context) if callable(describe) else tool.spec


def _check_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> None:
    import jsonschema_rs

    problems = [
        e.message for e in jsonschema_rs.validator_for(spec.parameters).iter_errors(arguments)
    ]
    if problems:
        raise ToolError(f"bad arguments for {spec.name}: {'; '.join(problems[:3])}")


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return arguments


def build_tools(
    settings: Settings,
    names: Sequence[str] | None = None,
    *,
    mcp: Callable[[], Sequence[Tool]] | None = None,
) -> list[Tool]:
    """The tools named (default: ``agent.tools`` plus ``agent.user_tools`` plus the MCP
    servers' tools, from ``mcp``: ``Services.mcp_tools``, which lists each server once rather
    than on every question; default: listed now).

    Raises:
        ConfigError: an unknown tool name (the message lists the known ones), or a user
            tool that is not importable.
    """
    from kbchat.registry import tools as registry

    for name, path in settings.agent.user_tools.items():
        registry.register(name, path)
    if names:
        chosen = list(names)
    else:
        chosen = [*settings.agent.tools, *settings.agent.user_tools]
        if settings.web_search.providers:
            chosen.append("web_search")
        if settings.fetch.enabled:
            chosen.append("fetch_url")
    built: list[Tool] = []
    for name in dict.fromkeys(chosen):
        try:
            tool = registry.create(name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"agent tool {name!r} cannot be loaded: {exc}") from None
        if not isinstance(tool, Tool):
            raise ConfigError(f"agent tool {name!r} lacks spec, examples or run()")
        built.append(tool)
    if not names:
        built += mcp() if mcp is not None else mcp_tools(settings)
    return built


def mcp_tools(settings: Settings) -> list[Tool]:
    """The tools of every configured MCP server; a server that cannot be reached is logged
    and left out, so one broken server does not stop the agent."""
    from kbchat.chat.tools.mcp import list_tools

    found: list[Tool] = []
    for name, server in settings.mcp.servers.items():
        try:
            found += list_tools(name, server)
        except KbchatError as exc:
            log.warning("%s; its tools are left out", exc)
    return found


def stream_agent(
    services: Services,
    question: str,
    *,
    model_name: str | None = None,
    kbs: Sequence[str] = (),
    history: Sequence[Message] = (),
    can_read: Callable[[str], bool] | None = None,
    cancel: threading.Event | None = None,
    tool_names: Sequence[str] | None = None,
) -> Iterator[AgentEvent]:
    """``run_agent`` as configured in ``services.settings.agent``, for the CLI and the server.

    ``tool_names`` narrows the tools (a named agent's ``tools``); default: ``agent.tools``.
    """
    settings = services.settings
    model = services.models.get(model_name)
    configured = settings.agent
    router_name: Router
    if configured.router == "auto":
        backend = settings.models[model_name or settings.default_model].backend
        router_name = "examples" if backend == "llamacpp" else "model"
    else:
        router_name = configured.router
    router = None
    if router_name == "examples":
        library = services.library
        router = ExampleRouter(library.embedder(library.default_embedder_spec()))
    options = AgentOptions(
        max_steps=configured.max_steps,
        max_seconds=configured.max_seconds,
        router=router_name,
        max_tokens=settings.chat.max_tokens,
        temperature=settings.chat.temperature,
        history_tokens=settings.chat.history_tokens,
    )
    context = ToolContext(
        services=services, can_read=can_read or (lambda _: True), kbs=tuple(kbs), cancel=cancel
    )
    tools = build_tools(settings, tool_names, mcp=services.mcp_tools)
    evidence = None
    if router is not None and {"kb_search", "sheet_sql"} & {t.spec.name for t in tools}:
        evidence = kb_evidence(context, question)
    yield from run_agent(
        model,
        question,
        tools,
        context,
        history=history,
        options=options,
        router=router,
        evidence=evidence,
        cancel=cancel,
    )


def kb_evidence(context: ToolContext, question: str) -> KbEvidence | None:
    """The best passage the caller's knowledge bases hold for ``question`` (no threshold), and
    whether it clears the bar an answer needs (``chat.min_score``; ``chat.min_score_cross``
    when the passage is in another language); None when there is nothing to search."""
    from kbchat.options import answer_search_options
    from kbchat.retrieve.search import retrieve

    names = context.readable()
    if not names or not question.strip():
        return None
    services = context.services
    settings = services.settings
    kbs = [services.library.get(name) for name in names]
    options = answer_search_options(settings, top_k=1, threshold=0.0)
    hits = retrieve(kbs, question, options).hits
    if not hits:
        return None
    best = hits[0]
    same = best.language == detect_language(question)
    bar = settings.chat.min_score if same else settings.chat.min_score_cross
    sheet = best.sheet is not None or best.file.lower().endswith((".csv", ".xlsx", ".xlsm"))
    return KbEvidence(best.score, best.file, sheet, best.score >= bar)
