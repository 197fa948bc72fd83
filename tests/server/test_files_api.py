"""Files attached to conversations over REST, and file parts in OpenAI chat completions."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from kbchat.app import Services
from kbchat.server import create_app
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import make_services, make_settings

MANUAL = b"The Z9 blender has a five year warranty. Clean the blades after each use."


def untyped(client: openai.OpenAI) -> Any:
    """The client without its request types: these tests send plain dicts, some invalid."""
    return client


@pytest.fixture
def model() -> ScriptedChatModel:
    # an answer the manual supports: answers are checked against the passages before they
    # stream, and one that is not in them is declined (without citations)
    return ScriptedChatModel(["The Z9 blender has a five year warranty [1]."])


def attach(client: TestClient, conversation: str, files: dict[str, bytes]) -> dict[str, Any]:
    response = client.post(
        f"/api/conversations/{conversation}/files",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files.items()],
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["conversation_id"] == conversation
    job = body["job"]
    # the jobs API does not show it (temporary KBs are not readable there): poll the files
    for _ in range(1000):
        listed = client.get(f"/api/conversations/{conversation}/files").json()
        current = next(j for j in listed["jobs"] if j["id"] == job["id"])
        if current["status"] in ("done", "failed"):
            found: dict[str, Any] = current
            return found
    raise AssertionError("attach job did not finish")


def test_attached_files_answer_questions_in_their_conversation(
    client: TestClient, model: ScriptedChatModel
) -> None:
    job = attach(client, "c1", {"manual.txt": MANUAL, "photo.exe": b"MZ\x00\x00"})
    outcomes = {f["name"]: f for f in job["files"]}
    assert outcomes["manual.txt"]["status"] == "indexed"
    assert outcomes["photo.exe"]["status"] == "skipped"
    assert "unsupported file type .exe" in outcomes["photo.exe"]["error"]
    listed = client.get("/api/conversations/c1/files").json()
    assert [(f["name"], f["status"]) for f in listed["files"]] == [("manual.txt", "indexed")]
    # the conversation exists (titled by its files) before its first question
    assert client.get("/api/conversations/c1").json()["title"] == "manual.txt, photo.exe"

    reply = client.post(
        "/api/chat",
        json={
            "question": "How long is the blender warranty?",
            "conversation_id": "c1",
            "stream": False,
        },
    )
    assert reply.status_code == 200, reply.text
    assert "five year warranty" in model.received[-1][-1].content
    assert [c["file"] for c in reply.json()["citations"]] == ["manual.txt"]
    stored = client.get("/api/conversations/c1").json()
    assert stored["kbs"] == [] and len(stored["messages"]) == 2  # no temporary name leaks


def test_temporary_knowledge_bases_stay_out_of_kb_endpoints(client: TestClient) -> None:
    attach(client, "c1", {"manual.txt": MANUAL})
    assert client.get("/api/kbs").json() == []
    models = client.get("/v1/models").json()["data"]
    assert [(m["id"], m["kind"]) for m in models] == [
        ("qwen2.5-0.5b", "chat"),
        ("agent:default", "agent"),
        ("default", "embedding"),
    ]
    name = client.get("/api/conversations/c1/files").json()["jobs"][0]["kb"]
    # a temporary name is outside the knowledge base name rule: the KB routes refuse it
    for path in (f"/api/kbs/{name}", f"/api/kbs/{name}/files"):
        refused = client.get(path)
        assert refused.status_code == 422, path
        assert "invalid knowledge base name" in refused.json()["error"]["message"]
    searched = client.post("/api/search", json={"kbs": [name], "query": "blender"})
    assert searched.status_code == 422 and "kbs" in searched.json()["error"]["message"]


def test_a_file_that_fails_reports_why(client: TestClient) -> None:
    job = attach(client, "c2", {"empty.txt": b"", "broken.docx": b"PK\x03\x04 truncated"})
    errors = {f["name"]: f["error"] for f in job["files"]}
    assert errors["empty.txt"] == "empty.txt: the file is empty"
    assert errors["broken.docx"].startswith("broken.docx: ")


def test_deleting_the_conversation_deletes_its_files(
    client: TestClient, services: Services
) -> None:
    attach(client, "c3", {"manual.txt": MANUAL})
    folder = services.file_chats().folder("c3", None)
    assert folder.is_dir()
    assert client.delete("/api/conversations/c3").status_code == 204
    assert services.library.catalog.kb_names() == [] and not folder.exists()
    assert client.get("/api/conversations/c3/files").json()["files"] == []


def test_removing_files_keeps_the_conversation(client: TestClient, services: Services) -> None:
    attach(client, "c4", {"manual.txt": MANUAL})
    assert client.delete("/api/conversations/c4/files").status_code == 204
    assert client.get("/api/conversations/c4").status_code == 200
    assert client.delete("/api/conversations/c4/files").status_code == 404


# -- OpenAI file content parts -------------------------------------------------------


@pytest.fixture
def oai(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def file_part(name: str, data: bytes, mime: str = "text/plain") -> dict[str, Any]:
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return {"type": "file", "file": {"filename": name, "file_data": url}}


def test_openai_file_parts_are_ingested_and_answered_from(
    oai: openai.OpenAI, model: ScriptedChatModel, services: Services
) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                file_part("manual.txt", MANUAL),
                {"type": "text", "text": "How long is the blender warranty?"},
            ],
        }
    ]
    completion = untyped(oai).chat.completions.create(model="qwen2.5-0.5b", messages=messages)
    assert completion.choices[0].message.content == "The Z9 blender has a five year warranty [1]."
    prompt = model.received[-1][-1].content
    assert "five year warranty" in prompt and "How long is the blender warranty?" in prompt
    citations = (completion.model_extra or {})["citations"]
    assert [c["file"] for c in citations] == ["manual.txt"]
    # the same file again (a client resending history) reuses the knowledge base
    untyped(oai).chat.completions.create(model="qwen2.5-0.5b", messages=messages)
    assert len(services.library.catalog.kb_names()) == 1


def test_openai_file_parts_with_a_kb_model_use_both(
    oai: openai.OpenAI, model: ScriptedChatModel, docs_kb: str
) -> None:
    completion = untyped(oai).chat.completions.create(
        model=f"kb:{docs_kb}",
        messages=[
            {
                "role": "user",
                "content": [
                    file_part("manual.txt", MANUAL),
                    {"type": "text", "text": "Which warranty is longer, kettle or blender?"},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content
    prompt = model.received[-1][-1].content
    assert "manual.txt" in prompt and "kettle.txt" in prompt


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (file_part("broken.docx", b"PK\x03\x04 truncated"), "broken.docx: "),
        (file_part("empty.txt", b""), "empty.txt: the file is empty"),
        ({"type": "file", "file": {"filename": "x.txt", "file_data": "data:;base64,@@"}}, "base64"),
        ({"type": "file", "file": {"file_id": 7}}, "file.file_id must be the id"),
        ({"type": "file", "file": {"file_data": "aGk="}}, "file.filename"),
    ],
)
def test_bad_file_parts_are_400_with_the_reason(
    oai: openai.OpenAI, part: dict[str, Any], message: str
) -> None:
    # the OpenAI API answers invalid requests with 400, as OpenAI does
    with pytest.raises(openai.BadRequestError, match=message):
        untyped(oai).chat.completions.create(
            model="qwen2.5-0.5b",
            messages=[{"role": "user", "content": [part, {"type": "text", "text": "what is it?"}]}],
        )


def test_file_parts_may_exceed_the_json_body_limit() -> None:
    settings = make_settings(max_body_kb=1)
    services = make_services(settings, ScriptedChatModel(["Five years."]))
    big = MANUAL + b" " + b"More text about blenders. " * 100  # ~2.6 KB, ~3.5 KB in base64
    body = {
        "model": settings.default_model,
        "messages": [
            {
                "role": "user",
                "content": [file_part("manual.txt", big), {"type": "text", "text": "warranty?"}],
            }
        ],
    }
    try:
        with TestClient(create_app(settings, services=services)) as client:
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            assert (
                client.post("/api/search", json={"query": "x" * 2000, "kbs": []}).status_code == 413
            )
    finally:
        services.close()


def test_what_is_this_file_about_is_answered_from_its_summary(
    client: TestClient, model: ScriptedChatModel
) -> None:
    attach(client, "c5", {"manual.txt": MANUAL})
    reply = client.post(
        "/api/chat",
        json={"question": "What is this file about?", "conversation_id": "c5", "stream": False},
    )
    assert reply.status_code == 200, reply.text
    assert "Summarise the document below" in model.received[-1][0].content
    assert [c["file"] for c in reply.json()["citations"]] == ["manual.txt"]
    listed = client.get("/api/conversations/c5/files").json()["files"]
    assert listed[0]["name"] == "manual.txt"
