"""Shapes of the read path's answers: citations, answers, conversations, summaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field

from kbchat.chat.summarize import Strategy, Summary
from kbchat.chat.summary_jobs import SummaryJob
from kbchat.shapes import Shape
from kbchat.store.conversations import Conversation, Feedback, Verdict
from kbchat.text import Language
from kbchat.types import Answer, AnswerOutcome, Citation, Role, ToolStep


class CitationInfo(Shape):
    """A source of an answer: ``marker`` is the [n] in the answer's text."""

    marker: int
    kb: str
    file: str
    text: str = Field(description="The passage.")
    score: float = Field(description="Relevance in [0, 1].")
    quote: str = Field("", description="The words of the passage the answer rests on.")
    page: int | None = None
    sheet: str | None = None
    slide: int | None = None


def citation_info(citation: Citation) -> CitationInfo:
    return CitationInfo.model_validate(citation, from_attributes=True)


class UsageInfo(Shape):
    """Tokens of one generation."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ToolStepInfo(Shape):
    """One tool call of an agent: sent when it starts (``done`` false) and when it ends."""

    step: int = Field(description="1 for the first tool call of the answer, then 2...")
    call_id: str
    tool: str
    arguments: dict[str, Any]
    done: bool
    result: str | None = Field(description="What the tool returned (what the model read).")
    error: str | None = Field(description="Why the call failed (shown to the model too).")
    ms: float | None = Field(description="Milliseconds the call took.")


class ToolInfo(Shape):
    """A tool the agent may use."""

    name: str
    description: str
    source: str = Field(description="builtin, user (agent.user_tools) or mcp:<server>.")


def tool_step_info(step: ToolStep) -> ToolStepInfo:
    return ToolStepInfo.model_validate(step, from_attributes=True)


class AnswerMeta(Shape):
    """What an answer rests on; stored with it, so it shows the same after a reload."""

    outcome: AnswerOutcome = Field(
        description="answered (from the sources, see grounded), refused (the sources do not "
        "say; the answer is the refusal) or fallback (the model's own knowledge, labelled)."
    )
    grounded: bool = Field(description="Every claim of the answer is backed by a citation.")
    notices: list[str] = Field(description="What the reader should know about the answer.")
    closest: list[CitationInfo] = Field(
        description="The best passages found when the answer is refused or falls back."
    )
    tool_steps: list[ToolStepInfo] = Field(
        default_factory=list, description="The tool calls an agent made before answering."
    )


class AnswerInfo(AnswerMeta):
    """A finished answer with its sources, usage and timings."""

    answer: str
    citations: list[CitationInfo]
    model: str
    usage: UsageInfo
    timings: dict[str, float] = Field(description="Seconds per step (ttft_s, total_s...).")
    finish_reason: str | None = Field(description="stop, length, cancelled...")
    question: str


class ChatAnswer(AnswerInfo):
    """An answer in a conversation."""

    conversation_id: str = Field(description="Pass it back to continue the conversation.")
    message_id: int | None = Field(
        description="The stored answer's id (to rate it). Null when it was not stored."
    )
    question_id: int | None = Field(
        description="The stored question's id: pass it as replace_from to regenerate the "
        "answer or edit the question. Null when it was not stored."
    )


def answer_meta(answer: Answer) -> AnswerMeta:
    return AnswerMeta(
        outcome=answer.outcome,
        grounded=answer.grounded,
        notices=answer.notices,
        closest=[citation_info(c) for c in answer.closest],
        tool_steps=[tool_step_info(s) for s in answer.tool_steps],
    )


def answer_info(answer: Answer) -> AnswerInfo:
    usage = answer.usage
    return AnswerInfo(
        answer=answer.text,
        citations=[citation_info(c) for c in answer.citations],
        model=answer.model,
        usage=UsageInfo(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        ),
        timings=answer.timings,
        finish_reason=answer.finish_reason,
        question=answer.question,
        **answer_meta(answer).model_dump(),
    )


def chat_answer(answer: Answer, conversation_id: str, stored: Sequence[int] = ()) -> ChatAnswer:
    """The answer in its conversation; ``stored``: the ids of its question and answer."""
    question_id, message_id = stored if len(stored) == 2 else (None, None)
    return ChatAnswer(
        **answer_info(answer).model_dump(),
        conversation_id=conversation_id,
        message_id=message_id,
        question_id=question_id,
    )


class FeedbackInfo(Shape):
    """A reader's rating of an answer."""

    verdict: Verdict = Field(description="up (a good answer) or down.")
    comment: str = Field(description="What the reader said about it; may be empty.")
    at: float = Field(description="When it was rated, Unix time in seconds.")


def feedback_info(feedback: Feedback) -> FeedbackInfo:
    return FeedbackInfo(verdict=feedback.verdict, comment=feedback.comment, at=feedback.at)


class MessageInfo(BaseModel):
    """One turn of a stored conversation. An assistant turn has its ``citations`` and what
    it rested on (``outcome``...); fields a turn does not have are absent."""

    role: Role
    content: str
    created_at: float = Field(description="Unix time in seconds.")
    id: int | None = Field(
        None, description="The message's id (for feedback, and replace_from in /api/chat)."
    )
    feedback: FeedbackInfo | None = Field(None, description="The reader's rating of an answer.")
    citations: list[CitationInfo] | None = None
    outcome: AnswerOutcome | None = None
    grounded: bool | None = None
    notices: list[str] | None = None
    closest: list[CitationInfo] | None = None
    tool_steps: list[ToolStepInfo] | None = None


class ConversationInfo(Shape):
    """A conversation's header."""

    id: str
    title: str
    kbs: list[str] = Field(description="The knowledge bases its answers came from.")
    model: str
    created_at: float = Field(description="Unix time in seconds.")
    updated_at: float = Field(description="Unix time in seconds.")


class ConversationDetail(ConversationInfo):
    """A conversation and its messages, in order."""

    messages: list[MessageInfo]


def conversation_info(conversation: Conversation) -> ConversationInfo:
    return ConversationInfo.model_validate(conversation.to_json())


def conversation_detail(conversation: Conversation) -> ConversationDetail:
    """The conversation with its messages; serialise with ``exclude_unset`` so the fields a
    message does not have stay absent."""
    return ConversationDetail.model_validate(conversation.to_json(with_messages=True))


class SummaryInfo(Shape):
    """A summary and what it took."""

    summary: str = Field(validation_alias=AliasChoices("text", "summary"))
    strategy: Strategy
    language: Language
    cached: bool = Field(description="Kept from before: the file has not changed since.")
    steps: int = Field(description="Model calls made.")
    estimated_s: float = Field(description="Seconds expected before starting.")
    seconds: float = Field(description="Seconds taken.")


class FileSummary(SummaryInfo):
    """The summary of one file."""

    file: str


class KBSummaries(BaseModel):
    """Summaries of a knowledge base's files and, for several, of the whole."""

    kb: str
    files: list[FileSummary]
    overview: SummaryInfo | None = Field(None, description="Absent for a single file.")


def summary_info(summary: Summary) -> SummaryInfo:
    return SummaryInfo.model_validate(summary, from_attributes=True)


def file_summary(file: str, summary: Summary) -> FileSummary:
    return FileSummary(**summary_info(summary).model_dump(), file=file)


class SummaryFileProgress(Shape):
    """One file of a summary job."""

    file: str
    status: Literal["pending", "running", "done", "failed", "cancelled"]
    estimated_s: float = Field(description="Seconds expected (0: its summary is kept).")
    stage: str = Field(description="plan, map, combine, refine or extract (empty: not begun).")
    done: int = Field(description="Steps of the stage done.")
    total: int = Field(description="Steps of the stage in all.")
    strategy: Strategy | None = None
    cached: bool = Field(description="Its kept summary was current: nothing was made.")
    seconds: float = Field(description="Seconds taken.")
    error: str | None = None


class SummaryJobInfo(Shape):
    """A background summary of a knowledge base's files (then of the whole)."""

    id: str
    kb: str
    status: Literal["running", "done", "failed", "cancelled"]
    estimated_s: float = Field(description="Seconds expected when the job was planned.")
    files: list[SummaryFileProgress]
    overview: str | None = Field(
        validation_alias=AliasChoices("overview_text", "overview"),
        description="The knowledge base's overview, once made.",
    )
    error: str | None = None
    created_at: float = Field(description="Unix seconds.")
    finished_at: float | None = None


def summary_job_info(job: SummaryJob) -> SummaryJobInfo:
    return SummaryJobInfo.model_validate(job, from_attributes=True)
