"""Plain dataclasses passed between the stages: Document -> Chunk -> Hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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


Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed answer; the last one carries finish_reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


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


@dataclass(slots=True)
class Answer:
    """A finished answer with its sources, usage and timings (seconds).

    ``refused`` is True when the system declined to answer (the files do not support one) and
    ``text`` is that refusal; ``grounded`` is True when the answer cites the files.
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
    refused: bool = False
