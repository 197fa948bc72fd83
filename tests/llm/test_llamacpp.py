"""The embedded llama.cpp backend with the real Qwen2.5-Coder-0.5B model."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from kbchat.errors import BadInput, ConfigError, ContextLengthExceeded
from kbchat.llm import complete
from kbchat.llm.assemble import DEFAULT_MODEL, KNOWN_MODELS
from kbchat.llm.base import ChatModel
from kbchat.llm.llamacpp import LlamaCppChatModel
from kbchat.testing.contracts import ChatModelContract
from kbchat.types import Message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LONG = "The quick brown fox jumps over the lazy dog. " * 300  # ~3000 prompt tokens, ~30 s


def ask(question: str) -> list[Message]:
    return [Message("system", "You are a helpful assistant."), Message("user", question)]


def test_default_model_is_assembled_and_verified(default_model_path: Path) -> None:
    expected = KNOWN_MODELS[DEFAULT_MODEL]
    assert default_model_path.stat().st_size == expected.size
    sidecar = default_model_path.with_name(default_model_path.name + ".sha256")
    assert sidecar.read_text().split()[0] == expected.sha256
    with default_model_path.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_short_generation_uses_the_chat_template(llamacpp_model: LlamaCppChatModel) -> None:
    text, usage, finish = complete(
        llamacpp_model, ask("What is the capital of France? Answer in one word."), temperature=0
    )
    assert "Paris" in text
    assert finish == "stop"
    # the template wraps the two messages in <|im_start|>role ... <|im_end|> markers
    assert usage.prompt_tokens > llamacpp_model.count_tokens("What is the capital of France?")
    assert 0 < usage.completion_tokens < 20


def test_streams_chinese_in_several_deltas(llamacpp_model: LlamaCppChatModel) -> None:
    deltas = list(llamacpp_model.stream(ask("法国的首都是哪里？用一句话回答。"), temperature=0))
    assert len(deltas) > 2
    assert all(d.finish_reason is None and d.usage is None for d in deltas[:-1])
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None
    assert "巴黎" in "".join(d.text for d in deltas)


def test_max_tokens_ends_with_length(llamacpp_model: LlamaCppChatModel) -> None:
    text, usage, finish = complete(
        llamacpp_model, ask("Write a long story about a dragon."), max_tokens=5
    )
    assert finish == "length"
    assert usage.completion_tokens == 5
    assert text


def test_stop_sequence_cuts_the_answer(llamacpp_model: LlamaCppChatModel) -> None:
    text, _, finish = complete(
        llamacpp_model,
        ask("Count from 1 to 20, separated by commas."),
        temperature=0,
        stop=["7"],
    )
    assert finish == "stop"
    assert "5" in text and "7" not in text


def test_count_tokens_uses_the_model_tokenizer(llamacpp_model: LlamaCppChatModel) -> None:
    assert llamacpp_model.count_tokens("") == 0
    assert llamacpp_model.count_tokens("hello") == 1
    assert llamacpp_model.count_tokens("你好，世界! Hello world") == 6


def test_cancel_during_a_long_prompt_is_prompt_and_frees_the_model(
    llamacpp_model: LlamaCppChatModel,
) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    started = time.monotonic()
    timer.start()
    text, usage, finish = complete(llamacpp_model, [Message("user", LONG)], cancel=cancel)
    assert finish == "cancelled" and text == ""
    assert usage.prompt_tokens > 2500  # the prompt alone would take ~30 s here
    assert time.monotonic() - started < 2.0
    # The model is free once the runtime finishes its current 64-token prompt step (~0.6 s
    # here, several seconds on a busy machine); the whole prompt would take ~30 s to minutes.
    assert llamacpp_model._slots.acquire(timeout=15.0)  # its one slot (parallel=1)
    llamacpp_model._slots.release()
    text, _, finish = complete(llamacpp_model, ask("Say OK."), max_tokens=4)
    assert finish in {"stop", "length"} and text


def test_cancel_and_abandon_during_generation(llamacpp_model: LlamaCppChatModel) -> None:
    cancel = threading.Event()
    stream = llamacpp_model.stream(ask("Write a long story."), max_tokens=300, cancel=cancel)
    first = next(stream)
    assert first.text
    cancel.set()
    final = next(stream)
    assert final.finish_reason == "cancelled"
    abandoned = llamacpp_model.stream(ask("Write a long story."), max_tokens=300)
    assert next(abandoned).text
    close = getattr(abandoned, "close")  # noqa: B009 (a generator; the protocol says Iterator)
    close()  # a client that disconnects mid-answer
    assert complete(llamacpp_model, ask("Say OK."), max_tokens=4)[0]


def test_concurrent_requests_are_served_one_at_a_time(
    llamacpp_model: LlamaCppChatModel,
) -> None:
    answers: dict[str, str] = {}

    def run(key: str, question: str) -> None:
        answers[key] = complete(llamacpp_model, ask(question), temperature=0, max_tokens=16)[0]

    threads = [
        threading.Thread(target=run, args=("fr", "What is the capital of France? One word.")),
        threading.Thread(target=run, args=("jp", "What is the capital of Japan? One word.")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert "Paris" in answers["fr"] and "Tokyo" in answers["jp"]


def test_prompt_beyond_the_context_window_is_bad_input(
    llamacpp_model: LlamaCppChatModel,
) -> None:
    # ContextLengthExceeded (a BadInput) says how many tokens against which context.
    with pytest.raises(BadInput, match=r"takes \d+ tokens, more than the 4096-token context"):
        complete(llamacpp_model, [Message("user", LONG * 2)])
    assert complete(llamacpp_model, ask("Say OK."), max_tokens=4)[0]


def test_speed_is_measured(llamacpp_model: LlamaCppChatModel) -> None:
    """Prompt and generation throughput of the 0.5B model on this machine."""
    complete(
        llamacpp_model,
        [Message("user", "Speed probe. " + LONG[:2000] + "\nSummarise.")],
        max_tokens=48,
    )
    timings = llamacpp_model.last_timings
    print(
        f"\n0.5B: prompt {timings['prompt_per_second']:.0f} tok/s over {timings['prompt_n']:.0f}"
        f", generation {timings['predicted_per_second']:.1f} tok/s"
        f" over {timings['predicted_n']:.0f}"
    )
    # no speed floor: the machine is shared (2 cores) and contention would make it flaky
    assert timings["prompt_n"] > 0 and timings["predicted_per_second"] > 0


def test_corrupt_model_file_is_a_config_error(default_model_path: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    with default_model_path.open("rb") as src:
        truncated.write_bytes(src.read(10_000_000))
    with pytest.raises(ConfigError) as info:
        LlamaCppChatModel(path=truncated)
    assert str(truncated) in str(info.value) and "corrupt" in str(info.value)
    assert hashlib.sha256(truncated.read_bytes()).hexdigest()  # the file is left as it was


class TestLlamaCppContract(ChatModelContract):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, llamacpp_model: LlamaCppChatModel) -> ChatModel:
        return llamacpp_model


def test_parallel_slots_answer_concurrent_requests_each_with_its_own_context(
    default_model_path: Path,
) -> None:
    model = LlamaCppChatModel(path=default_model_path, n_ctx=1024, parallel=2, name="two-slots")
    questions = {
        "Paris": "What is the capital of France? Answer in one word.",
        "Tokyo": "What is the capital of Japan? Answer in one word.",
    }
    answers: dict[str, str] = {}
    finishes: dict[str, str | None] = {}

    def answer(key: str) -> None:
        text, _, finish = complete(model, ask(questions[key]), temperature=0, max_tokens=8)
        answers[key], finishes[key] = text, finish

    try:
        threads = [threading.Thread(target=answer, args=(key,)) for key in questions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert all(key in answers[key] for key in questions), answers
        assert set(finishes.values()) <= {"stop", "length"}
        # The context is per slot (n_ctx), not shared out: a longer prompt is refused by name.
        with pytest.raises(ContextLengthExceeded, match="1024-token context"):
            complete(model, ask("word " * 1100), max_tokens=4)
    finally:
        model.close()
