"""Response shapes of the OpenAI-compatible API (``/v1``), with kbchat's extension fields.

Fields follow OpenAI's API reference; kbchat adds to each model its ``kind`` and
``context_length``, and to completions from ``kb:<name>`` models their ``citations`` and
what the answer rests on (``outcome``, ``grounded``, ``closest``). Fields a response does
not have are absent, as in OpenAI's own responses: a field with a default here is one that
may be absent, and responses are serialised with ``exclude_unset``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kbchat.shapes.chat import CitationInfo, ToolStepInfo
from kbchat.types import AnswerOutcome

FinishReason = Literal["stop", "length", "tool_calls"]


class ModelEntry(BaseModel):
    """A model: a chat model, ``kb:<name>`` for a knowledge base, or the embedder ``default``."""

    id: str
    object: Literal["model"]
    created: int = Field(description="Unix time in seconds (0 for configured models).")
    owned_by: str = Field(description="kbchat, or the host of the model's remote server.")
    kind: Literal["chat", "kb", "agent", "web", "embedding"]
    context_length: int | None = Field(description="Tokens; null for the embedder.")
    backend: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelEntry]


class FunctionCallOut(BaseModel):
    name: str
    arguments: str = Field(description="A JSON object, as text.")


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class ToolCallDelta(ToolCallOut):
    index: int


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None = Field(description="Null when the model only called tools.")
    tool_calls: list[ToolCallOut] | None = Field(None, description="Absent without tool calls.")


class CompletionChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None


class Grounding(BaseModel):
    """kbchat's extension fields of a completion; present for ``kb:<name>`` models and files."""

    citations: list[CitationInfo] = Field(
        default_factory=list, description="The sources the answer cites ([n] markers)."
    )
    outcome: AnswerOutcome | None = Field(
        None, description="answered, refused or fallback (kb models and files only)."
    )
    grounded: bool | None = Field(None, description="kb models and files only.")
    closest: list[CitationInfo] | None = Field(
        None, description="The best passages when the answer is refused (kb models and files)."
    )
    tool_steps: list[ToolStepInfo] | None = Field(
        None, description="The tool calls of an agent: model, finished (agent: models only)."
    )
    notices: list[str] | None = Field(
        None,
        description="What the user should know about the answer: why it was declined, a "
        "cut at max_tokens, files still being indexed (kb models and files).",
    )


class ChatCompletion(Grounding):
    """A finished chat completion."""

    id: str
    object: Literal["chat.completion"]
    created: int = Field(description="Unix time in seconds.")
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: FinishReason | None
    logprobs: None


class ChatCompletionChunk(Grounding):
    """One streamed piece; the last with a finish_reason carries kbchat's extension fields,
    and with ``stream_options.include_usage`` a final chunk with no choices has the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int = Field(description="Unix time in seconds.")
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


class EmbeddingItem(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 bytes.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(description="Estimated: kbchat's embedders do not count tokens.")
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage
