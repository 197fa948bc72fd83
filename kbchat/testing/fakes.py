"""Deterministic fakes for tests (shipped so that users' own tests can use them too)."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence

import numpy as np

from kbchat.embed.base import Vectors, normalise
from kbchat.text import HAN_RE, WIDE

_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Bag of hashed words and CJK characters: fast, deterministic, roughly lexical.

    Texts that share words get similar vectors, which is enough to test ranking logic.
    ``KBCHAT_TEST_EMBED_SECONDS`` (environment) makes each passage take that long, so that
    tests in other processes can catch an ingest in the middle (e.g. to kill its worker).
    """

    def __init__(self, dim: int = 1000, **_: object) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.dim = dim
        self.name = f"hash-{dim}"
        self.score_width = 0.5
        self.seconds_per_text = float(os.environ.get("KBCHAT_TEST_EMBED_SECONDS") or 0)

    def _features(self, text: str) -> list[str]:
        features: list[str] = []
        for token in _TOKEN.findall(text.lower()):
            if HAN_RE.search(token):
                features.extend(token)
            else:
                features.append(token)
        return features

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        if self.seconds_per_text and not is_query:
            time.sleep(self.seconds_per_text * len(texts))
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=9).digest()
                sign = 1.0 if digest[8] & 1 else -1.0  # signed hashing: collisions cancel out
                matrix[row, int.from_bytes(digest[:8], "little") % self.dim] += sign
        return normalise(matrix)


import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from kbchat.errors import ContextLengthExceeded  # noqa: E402
from kbchat.llm.base import (  # noqa: E402
    CAN_GRAMMAR,
    CAN_RESPONSE_FORMAT,
    CAN_TOOLS,
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    ResponseFormat,
    ToolChoice,
    check_params,
    check_structured,
    estimate_prompt_tokens,
    estimate_tokens,
)
from kbchat.types import Delta, Message, ToolCall, ToolSpec, Usage  # noqa: E402

_WORD = re.compile(rf"[{WIDE}]\s*|[^\s{WIDE}]+\s*|\s+")

ScriptedReply = str | Sequence[ToolCall]
ALL_CAPABILITIES = frozenset({CAN_RESPONSE_FORMAT, CAN_GRAMMAR, CAN_TOOLS})


class ScriptedChatModel:
    """A chat model that streams pre-set replies word by word (CJK: character by character).

    Replies are used in order; the last one repeats once they run out. A reply is text,
    or a list of ``ToolCall`` given out as calls (finish_reason "tool_calls"; only when
    the request has tools and tool_choice is not "none"). Every call's messages and
    parameters are recorded in ``received`` and ``params``. Each word counts as one
    token, so ``max_tokens`` cuts replies with finish_reason "length"; ``stop`` sequences
    and ``cancel`` behave as in a real backend, and so does a prompt longer than
    ``context_window`` (estimated tokens). ``capabilities`` says which structured
    parameters it accepts; others raise ``Unsupported`` as a real backend's would. The
    replies are not checked against a requested format: script the JSON a test needs.
    """

    def __init__(
        self,
        replies: Sequence[ScriptedReply] = ("OK",),
        *,
        name: str = "scripted",
        context_window: int = 4096,
        capabilities: frozenset[str] = ALL_CAPABILITIES,
        **_: object,
    ) -> None:
        if not replies:
            raise ValueError("replies must not be empty")
        self.replies = list(replies)
        self.name = name
        self.context_window = context_window
        self.capabilities = capabilities
        self.received: list[list[Message]] = []
        self.params: list[dict[str, object]] = []

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

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
        check_params(temperature, max_tokens, stop)
        check_structured(
            self.name,
            self.capabilities,
            response_format=response_format,
            grammar=grammar,
            tools=tools,
            tool_choice=tool_choice,
        )
        reply = self.replies[min(len(self.received), len(self.replies) - 1)]
        self.received.append(list(messages))
        self.params.append(
            {
                "temperature": temperature,
                "max_tokens": max_tokens,
                "stop": stop,
                "response_format": response_format,
                "grammar": grammar,
                "tools": list(tools),
                "tool_choice": tool_choice,
                "parallel_tool_calls": parallel_tool_calls,
            }
        )
        prompt_tokens = estimate_prompt_tokens(self, messages)
        if prompt_tokens > self.context_window:
            raise ContextLengthExceeded(
                f"the prompt takes ~{prompt_tokens} tokens, more than the "
                f"{self.context_window}-token context of model {self.name}"
            )
        if not isinstance(reply, str):
            if not tools or tool_choice == "none":
                raise ValueError("the scripted reply is tool calls, but the request allows none")
            return self._calls(tuple(reply), prompt_tokens)
        return self._words(reply, prompt_tokens, max_tokens, stop, cancel)

    def _calls(self, calls: tuple[ToolCall, ...], prompt_tokens: int) -> Iterator[Delta]:
        yield Delta(tool_calls=calls)
        yield Delta(finish_reason=FINISH_TOOL_CALLS, usage=Usage(prompt_tokens, len(calls)))

    def _words(
        self,
        reply: str,
        prompt_tokens: int,
        max_tokens: int,
        stop: Sequence[str],
        cancel: threading.Event | None,
    ) -> Iterator[Delta]:
        cut = min((i for s in stop if (i := reply.find(s)) >= 0), default=len(reply))
        words = _WORD.findall(reply[:cut])
        finish = FINISH_LENGTH if len(words) > max_tokens else FINISH_STOP
        sent = 0
        for word in words[:max_tokens]:
            if cancel is not None and cancel.is_set():
                finish = FINISH_CANCELLED
                break
            yield Delta(text=word)
            sent += 1
        yield Delta(finish_reason=finish, usage=Usage(prompt_tokens, sent))
