"""OpenAI's request shapes for ``/v1/chat/completions`` and ``/v1/embeddings``, and their
translation into kbchat's types.

Every field of OpenAI's chat request is known here. Those kbchat honours are typed; the
others are accepted only at their neutral value (``n=1``, ``top_p=1``, ``logprobs=false``,
...) and refused otherwise with ``Unsupported`` naming the field, so that nothing a client
asks for is silently ignored. A field OpenAI does not define is refused by validation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kbchat.errors import BadInput, Unsupported
from kbchat.llm.base import ForcedTool, ResponseFormat, ToolChoice
from kbchat.options import MaxTokens, Temperature, Threshold, TopK
from kbchat.types import Message, Role, ToolCall, ToolSpec

_FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"

# OpenAI fields kbchat does not act on, with the values that mean "not asked for".
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "top_p": (1, 1.0),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "seed": (),
    "store": (False,),
    "metadata": ({},),
    "service_tier": ("auto", "default"),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "reasoning_effort": (),
    "verbosity": (),
    "web_search_options": (),
    "functions": ([],),
    "function_call": ("none",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionCall(_Strict):
    name: str = Field(..., pattern=_FUNCTION_NAME)
    arguments: str = Field(..., description="The arguments as a JSON object in text.")


class ToolCallItem(_Strict):
    id: str = Field(..., min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCallItem] | None = Field(None, description="assistant: calls it made.")
    tool_call_id: str | None = Field(None, description="tool: the call this result answers.")
    name: str | None = Field(None, description="Not supported (refused when set).")
    # Fields the SDKs echo back on assistant messages; only null is accepted.
    refusal: None = None
    annotations: None = None
    audio: None = None
    function_call: None = None


class FunctionSpec(_Strict):
    name: str = Field(..., pattern=_FUNCTION_NAME)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class ToolItem(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Strict):
    name: str = Field(..., pattern=_FUNCTION_NAME)


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaSpec(_Strict):
    name: str = Field("response", pattern=_FUNCTION_NAME)
    description: str | None = None
    schema_: dict[str, Any] = Field(..., alias="schema")
    strict: bool | None = None


class ResponseFormatText(_Strict):
    type: Literal["text"]


class ResponseFormatJSONObject(_Strict):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(_Strict):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormatField = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
    Field(discriminator="type"),
]


class ChatCompletionRequest(_Strict):
    """OpenAI's chat completion request; ``top_k`` and ``threshold`` are kbchat's own."""

    model: str = Field(..., min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=500)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    stop: str | list[str] | None = None
    response_format: ResponseFormatField | None = None
    tools: list[ToolItem] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    grammar: str | None = Field(
        None,
        max_length=100_000,
        description="kbchat extension: a GBNF grammar the answer must match (llamacpp models).",
    )
    user: str | None = Field(None, description="An end-user id; recorded nowhere.")
    safety_identifier: str | None = Field(None, description="Like user; recorded nowhere.")
    prompt_cache_key: str | None = Field(None, description="Accepted; prompts are cached anyway.")
    top_k: TopK | None = None
    threshold: Threshold | None = None
    n: int | None = Field(None, ge=1, description="Only 1 is supported.")
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None

    def refuse_unsupported(self) -> None:
        """Raise ``Unsupported`` for the first field set to something kbchat cannot do."""
        for name, neutral in _NEUTRAL.items():
            value = getattr(self, name)
            if value is not None and value not in neutral:
                raise Unsupported(_unsupported_message(name, value), param=name)
        if self.stream_options and set(self.stream_options) - {"include_usage"}:
            extra = sorted(set(self.stream_options) - {"include_usage"})
            raise Unsupported(
                f"stream_options {', '.join(extra)} are not supported (only include_usage)",
                param="stream_options",
            )

    def to_messages(self) -> list[Message]:
        """The conversation as kbchat messages (developer turns become system turns)."""
        return [_message(i, m) for i, m in enumerate(self.messages)]

    def stop_sequences(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def to_response_format(self) -> ResponseFormat | None:
        given = self.response_format
        if given is None or isinstance(given, ResponseFormatText):
            return None
        if isinstance(given, ResponseFormatJSONObject):
            return ResponseFormat("json_object")
        spec = given.json_schema
        return ResponseFormat("json_schema", spec.schema_, spec.name, bool(spec.strict))

    def to_tools(self) -> list[ToolSpec]:
        return [
            ToolSpec(t.function.name, t.function.description, t.function.parameters)
            for t in self.tools or ()
        ]

    def to_tool_choice(self) -> ToolChoice:
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return ForcedTool(choice.function.name)
        if choice is None:
            return "auto"
        if choice != "none" and not self.tools:
            raise BadInput(f"tool_choice {choice!r} needs tools", param="tool_choice")
        return choice

    def wants_structure(self) -> bool:
        """Whether the request asks for JSON answers or tools (beyond plain text)."""
        return self.to_response_format() is not None or bool(self.tools)


class EmbeddingRequest(_Strict):
    """OpenAI's embeddings request; ``model`` is ``default``, a knowledge base or a backend.

    ``input`` may be token ids (as LangChain's ``OpenAIEmbeddings`` sends by default);
    kbchat cannot decode them offline and says so.
    """

    input: str | list[Annotated[str, Field(max_length=50_000)]] | list[int] | list[list[int]] = (
        Field(..., max_length=2048)
    )
    model: str = Field("default", max_length=200)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = Field(None, description="An end-user id; recorded nowhere.")
    input_type: Literal["query", "passage"] = Field(
        "passage", description="kbchat extension: embed as search queries or as passages."
    )


def _unsupported_message(name: str, value: Any) -> str:
    hints = {
        "n": "ask n times for n answers",
        "functions": "use tools",
        "function_call": "use tool_choice",
    }
    hint = f"; {hints[name]}" if name in hints else ""
    return f"{name}={value!r} is not supported by kbchat{hint}"


def _message(index: int, given: ChatMessage) -> Message:
    where = f"messages.{index}"
    if given.name is not None:
        raise Unsupported(f"{where}.name is not supported", param=f"{where}.name")
    role: Role = "system" if given.role == "developer" else given.role
    if given.tool_calls and role != "assistant":
        raise BadInput(f"{where}: only assistant messages carry tool_calls", param=where)
    if role == "tool" and not given.tool_call_id:
        raise BadInput(f"{where}: a tool message needs tool_call_id", param=where)
    calls = tuple(
        ToolCall(c.id, c.function.name, c.function.arguments) for c in given.tool_calls or ()
    )
    tool_call_id = given.tool_call_id if role == "tool" else None
    return Message(role, _text(where, given.content), calls, tool_call_id)


def _text(where: str, content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise Unsupported(
                f"{where}: only text message parts are supported, got {part.get('type')!r}",
                param=f"{where}.content",
            )
        parts.append(part["text"])
    return "".join(parts)
