"""The OpenAI Files API (/v1/files) through the openai SDK, and chat parts by file_id."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from kbchat.testing.fakes import ScriptedChatModel

MANUAL = b"The Z9 blender has a five year warranty. Clean the blades after each use."


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel(["The Z9 blender has a five year warranty [1]."])


@pytest.fixture
def oai(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def ask(oai: openai.OpenAI, file_id: str, question: str) -> Any:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "file", "file": {"file_id": file_id}},
                {"type": "text", "text": question},
            ],
        }
    ]
    return oai.chat.completions.create(model="qwen2.5-0.5b", messages=messages)


def test_upload_list_get_read_and_delete(oai: openai.OpenAI) -> None:
    first = oai.files.create(file=("manual.txt", MANUAL), purpose="user_data")
    assert first.id.startswith("file-") and first.object == "file"
    assert (first.filename, first.bytes, first.purpose) == ("manual.txt", len(MANUAL), "user_data")
    second = oai.files.create(file=("notes.md", b"# Notes\nBuy milk."), purpose="assistants")
    assert [f.id for f in oai.files.list()] == [second.id, first.id]
    assert [f.id for f in oai.files.list(purpose="user_data")] == [first.id]
    page = oai.files.list(limit=1, order="asc")
    assert [f.id for f in page.data] == [first.id] and page.has_more
    assert [f.id for f in oai.files.list(after=first.id, order="asc")] == [second.id]
    assert oai.files.retrieve(first.id).filename == "manual.txt"
    deleted = oai.files.delete(first.id)
    assert deleted.deleted and deleted.id == first.id
    assert [f.id for f in oai.files.list()] == [second.id]


def test_a_chat_refers_to_an_uploaded_file_by_id(
    oai: openai.OpenAI, model: ScriptedChatModel
) -> None:
    uploaded = oai.files.create(file=("manual.txt", MANUAL), purpose="user_data")
    completion = ask(oai, uploaded.id, "How long is the blender warranty?")
    assert completion.choices[0].message.content == "The Z9 blender has a five year warranty [1]."
    assert "five year warranty" in model.received[-1][-1].content
    citations = (completion.model_extra or {})["citations"]
    assert [c["file"] for c in citations] == ["manual.txt"]


def test_an_unknown_file_id_is_404_in_openai_shape(oai: openai.OpenAI, client: TestClient) -> None:
    with pytest.raises(openai.NotFoundError, match="No such File object: file-nope"):
        oai.files.retrieve("file-nope")
    with pytest.raises(openai.NotFoundError, match="No such File object: file-nope"):
        ask(oai, "file-nope", "what is it?")
    body = client.delete("/v1/files/file-nope").json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "not_found"


def test_empty_files_and_unknown_purposes_are_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="empty.txt: the file is empty"):
        oai.files.create(file=("empty.txt", b""), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        oai.files.create(file=("a.txt", b"hi"), purpose="magic")  # type: ignore[arg-type]
    assert list(oai.files.list()) == []


def test_an_uploaded_file_that_cannot_be_read_says_why_in_chat(oai: openai.OpenAI) -> None:
    uploaded = oai.files.create(file=("broken.docx", b"PK\x03\x04 truncated"), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="broken.docx: "):
        ask(oai, uploaded.id, "what is it?")


def test_what_is_this_file_about_is_answered_from_its_summary(
    oai: openai.OpenAI, model: ScriptedChatModel
) -> None:
    uploaded = oai.files.create(file=("manual.txt", MANUAL), purpose="user_data")
    completion = ask(oai, uploaded.id, "总结一下这个文件")
    assert "Summarise the document below" in model.received[-1][0].content
    citations = (completion.model_extra or {})["citations"]
    assert [c["file"] for c in citations] == ["manual.txt"]
    assert completion.choices[0].message.content.endswith("[1]")
    ask(oai, uploaded.id, "What is this file about?")
    assert len(model.received) == 1  # the kept summary answers again
