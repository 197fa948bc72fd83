"""The OpenAI-compatible API, driven by the official ``openai`` client."""

from __future__ import annotations

import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient

from kbchat.config import Settings
from kbchat.testing.fakes import HashEmbedder, ScriptedChatModel
from kbchat.types import Message


@pytest.fixture
def oai(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def test_models_lists_chat_models_and_knowledge_bases(
    oai: openai.OpenAI, docs_kb: str, settings: Settings
) -> None:
    models = {m.id: m.model_extra or {} for m in oai.models.list()}
    assert list(models) == [settings.default_model, f"kb:{docs_kb}", "agent:default", "default"]
    chat = models[settings.default_model]
    assert (chat["kind"], chat["context_length"], chat["backend"]) == ("chat", 4096, "llamacpp")
    assert models[f"kb:{docs_kb}"]["kind"] == "kb"
    assert models["default"]["kind"] == "embedding" and models["default"]["backend"] == "hash"
    assert all(m.owned_by == "kbchat" for m in oai.models.list())


def test_kb_model_answers_with_citations(oai: openai.OpenAI, docs_kb: str) -> None:
    completion = oai.chat.completions.create(
        model=f"kb:{docs_kb}",
        messages=[{"role": "user", "content": "How long is the kettle warranty?"}],
    )
    assert completion.object == "chat.completion" and completion.model == f"kb:{docs_kb}"
    assert completion.choices[0].message.content == "The K3 kettle warranty is two years [1]."
    assert completion.choices[0].finish_reason == "stop"
    citations = (completion.model_extra or {})["citations"]
    assert [c["file"] for c in citations] == ["kettle.txt"] and citations[0]["marker"] == 1
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_kb_model_streams(oai: openai.OpenAI, docs_kb: str) -> None:
    stream = oai.chat.completions.create(
        model=f"kb:{docs_kb}",
        stream=True,
        stream_options={"include_usage": True},
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "kettle warranty?"},
        ],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The K3 kettle warranty is two years [1]."
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert final.choices[0].finish_reason == "stop"
    assert (final.model_extra or {})["citations"][0]["file"] == "kettle.txt"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_history_reaches_the_kb_answer(
    oai: openai.OpenAI, docs_kb: str, model: ScriptedChatModel
) -> None:
    oai.chat.completions.create(
        model=f"kb:{docs_kb}",
        messages=[
            {"role": "user", "content": "What is the K3?"},
            {"role": "assistant", "content": "A kettle."},
            {"role": "user", "content": "How long is the K3 kettle warranty?"},
        ],
    )
    prompt = model.received[-1]
    assert Message("assistant", "A kettle.") in prompt
    assert "How long is the K3 kettle warranty?" in prompt[-1].content


def test_plain_model_gets_the_messages_as_sent(
    oai: openai.OpenAI, settings: Settings, model: ScriptedChatModel
) -> None:
    completion = oai.chat.completions.create(
        model=settings.default_model,
        max_tokens=3,
        temperature=0,
        stop=["zzz"],
        messages=[
            {"role": "developer", "content": "You are terse."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            },
        ],
    )
    assert completion.choices[0].message.content == "The K3 kettle "
    assert completion.choices[0].finish_reason == "length"
    assert model.received[-1] == [Message("system", "You are terse."), Message("user", "Hi there")]
    sent = {key: model.params[-1][key] for key in ("temperature", "max_tokens", "stop")}
    assert sent == {"temperature": 0.0, "max_tokens": 3, "stop": ["zzz"]}
    stream = oai.chat.completions.create(
        model=settings.default_model, stream=True, messages=[{"role": "user", "content": "Hi"}]
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).startswith(
        "The K3"
    )


def test_unknown_models_are_404_in_openai_shape(oai: openai.OpenAI, client: TestClient) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="gpt-99", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    body = client.post(
        "/v1/chat/completions",
        json={"model": "kb:nope", "messages": [{"role": "user", "content": "x"}]},
    ).json()
    assert set(body["error"]) >= {"message", "type", "code"}
    assert body["error"]["code"] == "model_not_found" and "kb:nope" in body["error"]["message"]


def test_bad_requests_are_400s_in_openai_shape(client: TestClient, docs_kb: str) -> None:
    no_messages = client.post("/v1/chat/completions", json={"model": "x", "messages": []})
    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["type"] == "invalid_request_error"
    assert no_messages.json()["error"]["param"] == "messages"
    last_not_user = client.post(
        "/v1/chat/completions",
        json={"model": f"kb:{docs_kb}", "messages": [{"role": "assistant", "content": "x"}]},
    )
    assert (
        last_not_user.status_code == 400
        and "last message" in last_not_user.json()["error"]["message"]
    )
    for model in (f"kb:{docs_kb}", "agent:default"):
        blank = client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "  "}]},
        )
        assert blank.status_code == 400, (model, blank.text)
        assert blank.json()["error"]["param"] == "messages"
        assert "empty" in blank.json()["error"]["message"]
    image = client.post(
        "/v1/chat/completions",
        json={
            "model": "qwen2.5-0.5b",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
            ],
        },
    )
    assert image.status_code == 400 and "image_url" in image.json()["error"]["message"]
    assert image.json()["error"]["param"] == "messages.0.content"


def test_embeddings_default_and_per_kb(oai: openai.OpenAI, docs_kb: str) -> None:
    one = oai.embeddings.create(model="default", input="kettle warranty")  # base64 on the wire
    vector = np.asarray(one.data[0].embedding)
    expected = HashEmbedder().embed_batch(["kettle warranty"])[0]
    assert vector.shape == (1000,) and np.allclose(vector, expected, atol=1e-6)
    many = oai.embeddings.create(model=docs_kb, input=["a", "b", "c"], encoding_format="float")
    assert [d.index for d in many.data] == [0, 1, 2] and many.model == "hash-1000"
    assert many.usage.prompt_tokens > 0
    small = oai.embeddings.create(model="hash", input="x", encoding_format="float")
    assert small.model == "hash-1000" and len(small.data[0].embedding) == 1000
    with pytest.raises(openai.NotFoundError, match="several joined"):
        oai.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError, match="1000-dimensional") as info:
        oai.embeddings.create(model="default", input="x", dimensions=12)
    assert info.value.param == "dimensions"
    same = oai.embeddings.create(model="default", input="x", dimensions=1000)
    assert len(same.data[0].embedding) == 1000


def test_openai_unknown_model_names_param_and_every_kind(client: TestClient, docs_kb: str) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-99", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["param"] == "model" and error["code"] == "model_not_found"
    assert "qwen2.5-0.5b" in error["message"] and f"kb:{docs_kb}" in error["message"]
    assert "agent:default" in error["message"]


def test_an_embedding_model_or_kb_name_asked_to_chat_says_what_it_is(
    client: TestClient, docs_kb: str
) -> None:
    listed = {m["id"]: m["kind"] for m in client.get("/v1/models").json()["data"]}
    assert listed["default"] == "embedding"
    for name, says in [
        ("default", "'default' is an embedding model: use it with /v1/embeddings; chat models: "),
        ("hash", "'hash' is an embedding model: use it with /v1/embeddings; chat models: "),
        (
            docs_kb,
            f"{docs_kb!r} is a knowledge base: ask it as model 'kb:{docs_kb}'; chat models: ",
        ),
    ]:
        response = client.post(
            "/v1/chat/completions",
            json={"model": name, "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["param"] == "model" and error["message"].startswith(says)
        assert "qwen2.5-0.5b" in error["message"] and f"kb:{docs_kb}" in error["message"]
