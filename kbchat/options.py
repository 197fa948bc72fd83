"""One typed definition per option, and a request's options from the settings.

An option is an ``Annotated`` type: its value type, bounds (or allowed values) and help
text, in one place. Every layer uses that type, so the bounds cannot disagree:
- settings: ``RetrievalOptions`` is the ``[retrieval]`` section of ``kbchat.toml``, and
  ``AnswerOptions`` (plus ``top_k``) the ``[chat]`` section, defaults included;
- the library: ``SearchOptions`` (``retrieve.search``) and ``ChatOptions`` (``chat.rag``)
  extend those two classes with what only a request sets, and validate on construction;
- the REST and OpenAI request models declare ``top_k: TopK | None`` and so on;
- the CLI builds its flags from the same types (``kbchat.cli.flags``).

``search_options`` and ``chat_options`` then build a request's options from the settings,
overridden by the values the caller gave, field by field so that mypy sees every name.

This module imports nothing heavy: ``config`` imports it, and the CLI starts from there.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from kbchat.errors import BadInput

if TYPE_CHECKING:
    from kbchat.chat.rag import ChatOptions
    from kbchat.chat.summarize import SummaryOptions
    from kbchat.config import Settings
    from kbchat.retrieve.search import SearchOptions

# -- the options that more than one layer sets -------------------------------------------

SearchModeName = Literal["hybrid", "dense", "bm25"]
FusionName = Literal["weighted", "rrf"]
NoHitName = Literal["refuse", "fallback", "message"]

TOP_K_MAX = 100
TopK = Annotated[
    int,
    Field(
        ge=1,
        le=TOP_K_MAX,
        description="Most passages: the hits of a search, the sources of an answer.",
    ),
]
SearchMode = Annotated[
    SearchModeName,
    Field(
        description="hybrid (dense + BM25 relevance, fused), dense (embeddings) or bm25 (words)."
    ),
]
Threshold = Annotated[
    float, Field(ge=0, le=1, description="Minimum relevance in [0, 1]: weaker hits are dropped.")
]
NoHit = Annotated[
    NoHitName,
    Field(
        description="When no passage supports an answer: refuse (say the files do not say), "
        "fallback (the model's own knowledge, labelled as such) or message (reply "
        "no_hit_message, required then)."
    ),
]
NoHitMessage = Annotated[
    str, Field(min_length=1, max_length=2000, description="The fixed reply of no_hit=message.")
]
Temperature = Annotated[float, Field(ge=0, le=2, description="Sampling temperature.")]
MaxTokens = Annotated[int, Field(ge=1, le=32_768, description="Most tokens in one answer.")]
ChunkSize = Annotated[
    int, Field(ge=21, le=100_000, description="Target chunk length in characters.")
]
ChunkOverlap = Annotated[
    int,
    Field(ge=0, le=100_000, description="Characters repeated between neighbours (< chunk_size)."),
]
SummaryStrategyName = Literal["auto", "map-reduce", "refine", "extract"]
SummaryStrategy = Annotated[
    SummaryStrategyName,
    Field(
        description="auto (the fastest good one for the model), map-reduce, refine or "
        "extract (key sentences; fast on a CPU)."
    ),
]
Share = Annotated[float, Field(ge=0, le=1)]
"""A share or a relevance, in [0, 1] (the options below add their own help)."""
RerankThreshold = Annotated[Share, Field(description="Drop reranked hits scoring below this.")]


class OptionError(BadInput, ValueError):
    """An option outside its type, bounds or allowed values (a ValueError for pydantic)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """What an option type accepts, for CLI flags and error messages."""

    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    max_open: bool = False


def bounds(option: object) -> Bounds:
    """The help text, allowed values and bounds of an option type such as ``TopK``."""
    inner, *metadata = typing.get_args(option)
    found = Bounds(description="", choices=tuple(typing.get_args(inner)))
    for item in metadata:
        for constraint in [item, *(item.metadata if isinstance(item, FieldInfo) else [])]:
            if isinstance(constraint, FieldInfo) and constraint.description:
                found = dataclasses.replace(found, description=constraint.description)
            elif isinstance(constraint, Ge):
                found = dataclasses.replace(found, minimum=_number(constraint.ge))
            elif isinstance(constraint, Gt):
                found = dataclasses.replace(found, minimum=_number(constraint.gt), min_open=True)
            elif isinstance(constraint, Le):
                found = dataclasses.replace(found, maximum=_number(constraint.le))
            elif isinstance(constraint, Lt):
                found = dataclasses.replace(found, maximum=_number(constraint.lt), max_open=True)
    return found


def _number(bound: object) -> float:
    assert isinstance(bound, int | float), bound
    return bound  # an int stays an int: a CLI range of whole numbers


def check_fields(options: object) -> None:
    """Check every field of an options dataclass against its declared type.

    Raises:
        OptionError: the first field out of bounds or not an allowed value, named with it.
    """
    for name, adapter in _field_adapters(type(options)):
        _check(adapter, name, getattr(options, name))


def check_value(option: Any, name: str, value: object) -> None:
    """Check one value against an option type such as ``ChunkSize``.

    Raises:
        OptionError: the value is out of bounds or not an allowed value, named ``name``.
    """
    _check(TypeAdapter(option), name, value)


def _check(adapter: TypeAdapter[Any], name: str, value: object) -> None:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise OptionError(f"{name}: {problem[:1].lower()}{problem[1:]}, got {value!r}") from None


_ADAPTERS: dict[type, list[tuple[str, TypeAdapter[Any]]]] = {}
"""A validator per field of each options class, built on first use."""


def _field_adapters(cls: type) -> list[tuple[str, TypeAdapter[Any]]]:
    if cls not in _ADAPTERS:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = [f for f in dataclasses.fields(cls) if f.init]
        _ADAPTERS[cls] = [(f.name, TypeAdapter(hints[f.name])) for f in fields]
    return _ADAPTERS[cls]


# -- the [retrieval] and [chat] sections: defaults for every request ----------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalOptions:
    """How to search: the ``[retrieval]`` settings; every search starts from them."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    top_k: TopK = 5
    mode: SearchMode = "hybrid"
    threshold: Threshold = 0.1
    fusion: Annotated[
        FusionName,
        Field(description="weighted (normalised scores) or rrf (reciprocal rank fusion)."),
    ] = "weighted"
    dense_weight: Annotated[Share, Field(description="Weight of dense vs BM25 scores.")] = 0.6
    second_weight: Annotated[
        Share,
        Field(
            description="Composite embedders (e5+use): weight of the second model, same language."
        ),
    ] = 0.2
    second_weight_cross: Annotated[
        Share,
        Field(
            description="Composite embedders: weight of the second model for a passage in "
            "another language than the question."
        ),
    ] = 0.5
    language_margin: Annotated[
        Share,
        Field(
            description="A passage in another language than the question ranks below a "
            "same-language one whose dense relevance is at most this much lower (0: off)."
        ),
    ] = 0.1
    candidates: Annotated[
        int, Field(ge=1, description="Candidates taken from each retriever (at least top_k).")
    ] = 50

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerOptions:
    """How to answer: the ``[chat]`` settings but ``top_k``; every answer starts from them."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    no_hit: NoHit = "refuse"
    no_hit_message: NoHitMessage | None = None
    temperature: Temperature = 0.1
    max_tokens: MaxTokens = 512
    history_tokens: Annotated[
        int, Field(ge=0, description="Token budget for remembered turns.")
    ] = 1024
    rewrite: Annotated[bool, Field(description="Rewrite follow-up questions before retrieval.")] = (
        True
    )
    verify: Annotated[
        bool,
        Field(
            description="Decline answers the sources do not support: a named item no source "
            "holds, or an answer whose claims are not in the sources (see README, Trust)."
        ),
    ] = True
    min_support: Annotated[
        Share,
        Field(
            description="Share of an answer's new words (not in the question) the sources "
            "must contain: invented answers scored 0 on the dev sets, paraphrased how-to "
            "answers 0.43+."
        ),
    ] = 0.35
    min_score: Annotated[
        Share,
        Field(
            description="Answer only when the best passage (in the question's language) is "
            "at least this relevant: a higher bar than retrieval.threshold, which filters hits."
        ),
    ] = 0.45
    min_score_cross: Annotated[
        Share,
        Field(
            description="The same bar when the best passage is in another language than the "
            "question (cross-lingual relevance runs lower)."
        ),
    ] = 0.25
    min_evidence: Annotated[
        Share,
        Field(
            description="Answer only when one place in the sources (a sentence, its neighbours "
            "and the passage's first line) holds this share of the question's key terms: "
            "more than half (dev sets, 30+30 questions each: no correct answer had its "
            "evidence at 0.5 or below; a third of the unanswerable questions did)."
        ),
    ] = 0.55
    min_coverage: Annotated[
        Share,
        Field(
            description="Share of the question's key terms the place the answer was read from "
            "must hold: more than half (dev sets, 30+30 questions each: correct answers held "
            "0.57-1; a fifth of the answers to unanswerable questions held exactly 0.5)."
        ),
    ] = 0.55
    context_tokens: Annotated[
        int, Field(ge=64, description="Most tokens of sources in one prompt (the top_k best fit).")
    ] = 900
    source_ratio: Annotated[
        Share,
        Field(description="Skip sources scoring below this share of the best one (0: keep top_k)."),
    ] = 0.0
    search_summaries: Annotated[
        bool,
        Field(
            description="Search the files' kept summaries beside their chunks (kbchat "
            "summarize makes them). Off: bench/results/summary_search.json."
        ),
    ] = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.no_hit == "message" and not self.no_hit_message:
            raise OptionError("no_hit 'message' needs no_hit_message")


# -- a request's options: the settings, overridden by what the caller gave -----------------


def search_options(
    settings: Settings,
    *,
    top_k: int | None = None,
    mode: SearchModeName | None = None,
    threshold: float | None = None,
    files: typing.Sequence[str] = (),
    file_types: typing.Sequence[str] = (),
    pages: tuple[int, int] | None = None,
) -> SearchOptions:
    """The options of one search: ``[retrieval]`` settings, overridden by the values given.

    Raises:
        OptionError: a value given is out of bounds (named with its bounds).
    """
    from kbchat.retrieve.search import SearchOptions

    configured = settings.retrieval
    return SearchOptions(
        mode=configured.mode if mode is None else mode,
        threshold=configured.threshold if threshold is None else threshold,
        fusion=configured.fusion,
        dense_weight=configured.dense_weight,
        second_weight=configured.second_weight,
        second_weight_cross=configured.second_weight_cross,
        language_margin=configured.language_margin,
        candidates=configured.candidates,
        rerank_threshold=settings.rerank.threshold,
        top_k=configured.top_k if top_k is None else top_k,
        files=tuple(files),
        file_types=tuple(file_types),
        pages=pages,
    )


def answer_search_options(
    settings: Settings, *, top_k: int | None = None, threshold: float | None = None
) -> SearchOptions:
    """The options of the search behind an answer: ``top_k`` defaults to ``chat.top_k``."""
    return search_options(
        settings, top_k=settings.chat.top_k if top_k is None else top_k, threshold=threshold
    )


def chat_options(
    settings: Settings,
    search: SearchOptions,
    *,
    no_hit: NoHitName | None = None,
    no_hit_message: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stop: typing.Sequence[str] = (),
    instructions: str = "",
) -> ChatOptions:
    """The options of one answer: ``[chat]`` settings, overridden by the values given.

    Raises:
        OptionError: a value given is out of bounds (named with its bounds).
    """
    from kbchat.chat.rag import ChatOptions

    configured = settings.chat
    return ChatOptions(
        search=search,
        no_hit=configured.no_hit if no_hit is None else no_hit,
        no_hit_message=configured.no_hit_message if no_hit_message is None else no_hit_message,
        temperature=configured.temperature if temperature is None else temperature,
        max_tokens=configured.max_tokens if max_tokens is None else max_tokens,
        history_tokens=configured.history_tokens,
        rewrite=configured.rewrite,
        verify=configured.verify,
        min_support=configured.min_support,
        min_score=configured.min_score,
        min_score_cross=configured.min_score_cross,
        min_evidence=configured.min_evidence,
        min_coverage=configured.min_coverage,
        context_tokens=configured.context_tokens,
        source_ratio=configured.source_ratio,
        search_summaries=configured.search_summaries,
        stop=tuple(stop),
        instructions=instructions,
    )


def summary_options(
    settings: Settings, *, strategy: SummaryStrategyName = "auto", model: str | None = None
) -> SummaryOptions:
    """SummaryOptions for ``model``: map steps run 4 at a time on a remote model."""
    from kbchat.chat.summarize import SUMMARY_TOKENS, SummaryOptions

    configured = settings.models.get(model or settings.default_model)
    remote = configured is not None and configured.backend != "llamacpp"
    return SummaryOptions(
        strategy=strategy,
        parallel=4 if remote else 1,
        max_tokens=min(settings.chat.max_tokens, SUMMARY_TOKENS),
    )
