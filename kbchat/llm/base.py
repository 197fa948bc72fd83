"""The ChatModel protocol and the conveniences built on its one required method, ``stream``."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from kbchat.errors import BadInput
from kbchat.types import Delta, Message, Usage

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CANCELLED = "cancelled"

# Overhead of the chat template per message (role markers, separators), for estimates.
_TOKENS_PER_MESSAGE = 4


@runtime_checkable
class ChatModel(Protocol):
    """A chat model that streams its answer.

    ``name`` is the name clients use; ``context_window`` is the most tokens (prompt and
    answer together) one request may hold.
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
    ) -> Iterator[Delta]:
        """Stream the answer to ``messages`` as text deltas.

        The last delta has empty text, ``finish_reason`` ("stop", "length" or
        "cancelled") and ``usage``. Setting ``cancel`` ends the stream promptly with
        finish_reason "cancelled" and frees the model for the next request.

        Raises:
            BadInput: the request is invalid (e.g. longer than the context window).
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
    cjk = sum(1 for ch in text if _is_cjk(ch))
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
    parts: list[str] = []
    finish_reason: str | None = None
    usage: Usage | None = None
    deltas = model.stream(
        messages, temperature=temperature, max_tokens=max_tokens, stop=stop, cancel=cancel
    )
    for delta in deltas:
        parts.append(delta.text)
        if delta.finish_reason is not None:
            finish_reason = delta.finish_reason
        if delta.usage is not None:
            usage = delta.usage
    text = "".join(parts)
    if usage is None:
        usage = Usage(estimate_prompt_tokens(model, messages), model.count_tokens(text))
    return text, usage, finish_reason


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


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, unified ideographs (+ ext. A)
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x2FA1F  # ideograph extensions B+
    )
