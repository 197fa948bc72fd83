"""The ChatModel protocol and the conveniences built on its one required method, ``stream``."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from kbchat.errors import BadInput, Unsupported
from kbchat.text import DENSE_RE
from kbchat.types import Delta, Message, ToolCall, ToolSpec, Usage

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CANCELLED = "cancelled"
FINISH_TOOL_CALLS = "tool_calls"

# What a backend can honour beyond plain text (its ``capabilities`` attribute).
CAN_RESPONSE_FORMAT = "response_format"  # json_object and json_schema answers
CAN_GRAMMAR = "grammar"  # a raw GBNF grammar
CAN_TOOLS = "tools"  # tool calls


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The shape an answer must have: free text, any JSON object, or JSON matching ``schema``.

    Mirrors OpenAI's ``response_format``; ``name`` and ``strict`` are passed on to
    backends that use them.
    """

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool = False

    def __post_init__(self) -> None:
        if self.type == "json_schema" and not isinstance(self.schema, dict):
            raise BadInput("response_format json_schema needs a JSON schema object (its schema)")
        if self.type != "json_schema" and self.schema is not None:
            raise BadInput(f"response_format {self.type} takes no schema")


@dataclass(frozen=True, slots=True)
class ForcedTool:
    """A ``tool_choice`` that makes the model call this one tool."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | ForcedTool


@dataclass(slots=True)
class Completion:
    """A whole answer: text, tool calls, usage and finish reason (None if the backend gave none)."""

    text: str
    usage: Usage
    finish_reason: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)


# Overhead of the chat template per message (role markers, separators), for estimates.
_TOKENS_PER_MESSAGE = 4


@runtime_checkable
class ChatModel(Protocol):
    """A chat model that streams its answer.

    ``name`` is the name clients use; ``context_window`` is the most tokens (prompt and
    answer together) one request may hold. A backend that can do more than plain text
    says so in an optional ``capabilities`` attribute (a set of the ``CAN_*`` names);
    without one it is taken to do none, and ``capabilities(model)`` reads it.
    """

    name: str
    context_window: int

    def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        response_format: ResponseFormat | None = None,
        grammar: str | None = None,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        parallel_tool_calls: bool = True,
    ) -> Iterator[Delta]:
        """Stream the answer to ``messages`` as text deltas.

        The last delta has empty text, ``finish_reason`` ("stop", "length",
        "tool_calls" or "cancelled") and ``usage``. Setting ``cancel`` ends the stream
        promptly with finish_reason "cancelled" and frees the model for the next request.

        Args:
            response_format: JSON answers (``CAN_RESPONSE_FORMAT``).
            grammar: A GBNF grammar the answer must match (``CAN_GRAMMAR``).
            tools: Functions the model may call (``CAN_TOOLS``); calls come as whole
                ``ToolCall`` objects in ``Delta.tool_calls``.
            tool_choice: "auto" (call or answer), "none", "required" (at least one
                call) or ``ForcedTool(name)``.
            parallel_tool_calls: Whether one answer may hold several calls.

        Raises:
            Unsupported: a parameter this backend cannot honour was given.
            ContextLengthExceeded: the prompt does not fit the context window.
            BadInput: the request is otherwise invalid.
            BackendError: the model or its server failed.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes: exact where the backend can tokenize, else an estimate."""
        ...


def estimate_tokens(text: str) -> int:
    """Estimate tokens without a tokenizer: ~1 per CJK character, ~1 per 4 other characters.

    Whitespace counts towards the "other" characters. Good to within ~30% for Qwen- and
    GPT-style BPE vocabularies on Chinese and English prose; use only for budgets.
    """
    cjk = len(DENSE_RE.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def estimate_prompt_tokens(model: ChatModel, messages: Sequence[Message]) -> int:
    """Tokens the prompt of ``messages`` takes, counting the template overhead roughly."""
    return sum(model.count_tokens(m.content) + _TOKENS_PER_MESSAGE for m in messages)


def complete(
    model: ChatModel,
    messages: Sequence[Message],
    *,
    temperature: float = 0.2,
    max_tokens: int = 512,
    stop: Sequence[str] = (),
    cancel: threading.Event | None = None,
) -> tuple[str, Usage, str | None]:
    """Run ``model.stream`` to the end and return the whole answer.

    Returns:
        The answer text, its token usage (estimated if the backend reports none) and the
        finish reason ("stop", "length", "cancelled", or None if the backend gave none).
    """
    done = complete_message(
        model, messages, temperature=temperature, max_tokens=max_tokens, stop=stop, cancel=cancel
    )
    return done.text, done.usage, done.finish_reason


def complete_message(model: ChatModel, messages: Sequence[Message], **params: Any) -> Completion:
    """Run ``model.stream(messages, **params)`` to the end; text, tool calls, usage, finish.

    ``params`` are ``stream``'s keyword arguments. Usage is estimated if the backend
    reports none.
    """
    parts: list[str] = []
    calls: list[ToolCall] = []
    finish_reason: str | None = None
    usage: Usage | None = None
    for delta in model.stream(messages, **params):
        parts.append(delta.text)
        calls.extend(delta.tool_calls)
        if delta.finish_reason is not None:
            finish_reason = delta.finish_reason
        if delta.usage is not None:
            usage = delta.usage
    text = "".join(parts)
    if usage is None:
        usage = Usage(estimate_prompt_tokens(model, messages), model.count_tokens(text))
    return Completion(text, usage, finish_reason, calls)


def capabilities(model: ChatModel) -> frozenset[str]:
    """What ``model`` can honour beyond plain text (``CAN_*`` names); empty if undeclared."""
    declared: frozenset[str] = getattr(model, "capabilities", frozenset())
    return frozenset(declared)


def check_structured(
    model_name: str,
    can: frozenset[str],
    *,
    response_format: ResponseFormat | None,
    grammar: str | None,
    tools: Sequence[ToolSpec],
    tool_choice: ToolChoice,
) -> None:
    """Refuse structured-output and tool parameters a backend cannot honour.

    Raises:
        Unsupported: naming the parameter and the model.
        BadInput: the parameters contradict each other or name an unknown tool.
    """
    wants_json = response_format is not None and response_format.type != "text"
    for wanted, capability, param in (
        (wants_json, CAN_RESPONSE_FORMAT, "response_format"),
        (grammar is not None, CAN_GRAMMAR, "grammar"),
        (bool(tools), CAN_TOOLS, "tools"),
    ):
        if wanted and capability not in can:
            raise Unsupported(f"model {model_name} does not support {param}", param=param)
    if grammar is not None and wants_json:
        raise BadInput("give either grammar or a JSON response_format, not both", param="grammar")
    if grammar is not None and not grammar.strip():
        raise BadInput("grammar must not be empty", param="grammar")
    names = [tool.name for tool in tools]
    if len(set(names)) != len(names):
        raise BadInput(f"tool names must be unique, got {names}", param="tools")
    if isinstance(tool_choice, ForcedTool) and tool_choice.name not in names:
        raise BadInput(
            f"tool_choice names the function {tool_choice.name!r}, which is not among the "
            f"tools ({', '.join(names) or 'none given'})",
            param="tool_choice",
        )
    if tool_choice == "required" and not tools:
        raise BadInput('tool_choice "required" needs tools', param="tool_choice")


def check_params(temperature: float, max_tokens: int, stop: Sequence[str]) -> None:
    """Validate generation parameters; raise BadInput naming the bad one."""
    if not 0.0 <= temperature <= 2.0:
        raise BadInput(f"temperature must be in [0, 2], got {temperature}")
    if max_tokens <= 0:
        raise BadInput(f"max_tokens must be > 0, got {max_tokens}")
    if isinstance(stop, str):
        raise BadInput(f"stop must be a sequence of strings, got the string {stop!r}")
    if any(not s for s in stop):
        raise BadInput(f"stop sequences must not be empty, got {list(stop)!r}")
