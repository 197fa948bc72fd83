"""Plain dataclasses passed between the stages: Document -> Chunk -> Hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from kbchat.text import Language, detect_language

DocumentKind = Literal["text", "table"]


@dataclass(frozen=True, slots=True)
class Document:
    """One unit a loader produces: a whole text file, a pdf page, a sheet, a slide.

    Table documents hold one self-describing row per line ("header: value | ...");
    the splitter cuts them only between rows.
    """

    text: str
    source: str
    page: int | None = None
    sheet: str | None = None
    slide: int | None = None
    headings: tuple[str, ...] = ()
    title: str | None = None
    kind: DocumentKind = "text"
    notes: tuple[str, ...] = ()
    """What the loader could not read as the file's author sees it (shown, not indexed)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document small enough to embed, with where it came from."""

    text: str
    source: str
    position: int
    page: int | None = None
    sheet: str | None = None
    slide: int | None = None
    headings: tuple[str, ...] = ()
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk found by a search, with a similarity score in [0, 1]."""

    kb: str
    file: str
    text: str
    score: float
    chunk_id: int
    page: int | None = None
    sheet: str | None = None
    slide: int | None = None
    headings: tuple[str, ...] = ()
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def language(self) -> Language:
        """The passage's language (``kbchat.text.detect_language`` of its first 300
        characters: enough to tell, cheap on a long chunk)."""
        return detect_language(self.text[:300])


Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: its name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks for: ``arguments`` is a JSON object as text (OpenAI's shape)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation.

    An assistant turn may carry the ``tool_calls`` it made (``content`` may then be
    empty); a ``tool`` turn carries a call's result, with the ``tool_call_id`` it answers.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation, or (summed with ``+``) of all an answer took."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed answer; the last one carries finish_reason and usage.

    ``tool_calls`` holds whole calls (never fragments); a stream that ends in calls has
    finish_reason "tool_calls".
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Citation:
    """A source an answer used: ``marker`` is the [n] in the answer text."""

    marker: int
    kb: str
    file: str
    text: str
    score: float
    quote: str = ""
    page: int | None = None
    sheet: str | None = None
    slide: int | None = None


@dataclass(frozen=True, slots=True)
class ToolStep:
    """A tool call, sent when it starts (``done`` False) and when it ends (``result`` or
    ``error``, and ``ms``)."""

    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    done: bool = False
    result: str | None = None
    error: str | None = None
    ms: float | None = None


OutcomeStatus = Literal[
    "indexed", "failed", "skipped", "unchanged", "removed", "pending", "running", "cancelled"
]
"""What happened to one file in a knowledge-base write; ``pending`` (waiting) and ``running``
while a job has not decided it yet, ``cancelled`` when its job was cancelled first."""
FileStatus = Literal["indexed", "failed", "skipped", "pending"]
"""A file's state in the catalog."""

AnswerOutcome = Literal["answered", "refused", "fallback"]
"""What an answer is based on: ``answered`` from the sources (see ``grounded``), ``refused``
because the sources do not say (the text is the refusal), ``fallback`` the model's own
knowledge, labelled as such (``chat.no_hit = "fallback"``)."""


@dataclass(slots=True)
class Answer:
    """A finished answer with its sources, usage and timings (seconds).

    ``closest`` holds the best passages found when the answer is refused or falls back, so a
    user can judge for themselves; ``citations`` only the sources an answer rests on.
    """

    text: str
    model: str
    citations: list[Citation] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    finish_reason: str | None = None
    question: str = ""
    grounded: bool = True
    notices: list[str] = field(default_factory=list)
    outcome: AnswerOutcome = "answered"
    closest: list[Citation] = field(default_factory=list)
    tool_steps: list[ToolStep] = field(default_factory=list)
    """The finished tool calls an agent made before answering (empty otherwise)."""

    @property
    def refused(self) -> bool:
        """True when kbchat declined: the sources do not hold the answer (``text`` is the
        refusal)."""
        return self.outcome == "refused"
