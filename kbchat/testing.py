"""Deterministic fakes for tests (shipped so that users' own tests can use them too)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kbchat.embed.base import Vectors, normalise
from kbchat.store.base import VectorStore

_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Bag of hashed words and CJK characters: fast, deterministic, roughly lexical.

    Texts that share words get similar vectors, which is enough to test ranking logic.
    """

    def __init__(self, dim: int = 1000, **_: object) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.dim = dim
        self.name = f"hash-{dim}"
        self.score_width = 0.5

    def _features(self, text: str) -> list[str]:
        features: list[str] = []
        for token in _TOKEN.findall(text.lower()):
            if any("\u4e00" <= ch <= "\u9fff" for ch in token):
                features.extend(token)
            else:
                features.append(token)
        return features

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=9).digest()
                sign = 1.0 if digest[8] & 1 else -1.0  # signed hashing: collisions cancel out
                matrix[row, int.from_bytes(digest[:8], "little") % self.dim] += sign
        return normalise(matrix)


class VectorStoreContract:
    """The contract every VectorStore backend passes; subclass it in a test module.

    Subclasses implement ``make_store(tmp_path, dim)`` (and ``reopen`` for persistent
    backends); pytest collects the ``test_*`` methods.
    """

    dim = 8

    def make_store(self, tmp_path: Path, dim: int) -> VectorStore:
        raise NotImplementedError

    def reopen(self, store: VectorStore, tmp_path: Path) -> VectorStore | None:
        """Open the persisted store again; None if the backend is not persistent."""
        return None

    @staticmethod
    def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
        return normalise(np.random.default_rng(seed).normal(size=(n, dim)))

    def test_empty_store_finds_nothing(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        assert store.count() == 0
        assert store.search(self._vectors(1, self.dim)[0], 3) == []

    def test_nearest_first_with_scores_in_unit_range(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(20, self.dim)
        store.add(np.arange(100, 120, dtype=np.int64), vectors)
        hits = store.search(vectors[7], 5)
        assert hits[0][0] == 107
        assert abs(hits[0][1] - 1.0) < 1e-4
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        opposite = store.search(-vectors[7], 20)
        assert all(0.0 <= s <= 1.0 for _, s in opposite)

    def test_delete_and_replace(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(10, self.dim)
        ids = np.arange(10, dtype=np.int64)
        store.add(ids, vectors)
        store.delete(np.array([3, 4, 999], dtype=np.int64))
        assert store.count() == 8
        assert 3 not in {i for i, _ in store.search(vectors[3], 10)}
        store.add(np.array([5], dtype=np.int64), vectors[3:4])
        assert store.count() == 8
        assert store.search(vectors[3], 1)[0][0] == 5
        assert sorted(store.ids().tolist()) == [0, 1, 2, 5, 6, 7, 8, 9]

    def test_allow_list_restricts_results(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(10, self.dim)
        store.add(np.arange(10, dtype=np.int64), vectors)
        hits = store.search(vectors[0], 5, allowed=np.array([2, 8], dtype=np.int64))
        assert {i for i, _ in hits} == {2, 8}
        assert store.search(vectors[0], 5, allowed=np.zeros(0, dtype=np.int64)) == []

    def test_persist_and_reopen(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path, self.dim)
        vectors = self._vectors(6, self.dim)
        store.add(np.arange(6, dtype=np.int64), vectors)
        store.persist()
        again = self.reopen(store, tmp_path)
        if again is None:
            return
        assert again.count() == 6
        assert again.search(vectors[2], 1)[0][0] == 2

    def test_rejects_bad_arguments(self, tmp_path: Path) -> None:
        import pytest

        store = self.make_store(tmp_path, self.dim)
        with pytest.raises(ValueError, match="k must be > 0"):
            store.search(self._vectors(1, self.dim)[0], 0)
        with pytest.raises(ValueError):
            store.add(np.arange(2, dtype=np.int64), self._vectors(3, self.dim))


# --- chat models ---------------------------------------------------------------------------

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

_CJK_CHAR = "\u3000-\u9fff\uf900-\ufaff\uff00-\uffef"
_WORD = re.compile(rf"[{_CJK_CHAR}]\s*|[^\s{_CJK_CHAR}]+\s*|\s+")

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
