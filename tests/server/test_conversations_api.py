"""Conversation routes: regenerate and edit through /api/chat, rename, search, ratings, export,
and what the OpenAI-compatible API leaves in the history (nothing)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.server import create_app
from kbchat.server.auth import hash_key
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Message
from tests.server.support import make_services, make_settings, sse_events


def ask(client: TestClient, question: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/chat", json={"question": question, "kbs": [], **extra})
    assert response.status_code == 200, response.text
    name, done = sse_events(response.text)[-1]
    assert name == "done", done
    return dict(done)


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel(["first answer", "second answer", "third answer", "fourth answer"])


def messages(client: TestClient, conversation_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def test_the_done_event_names_the_stored_answer(client: TestClient) -> None:
    done = ask(client, "Warranty?")
    stored = messages(client, done["conversation_id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert done["question_id"] == stored[0]["id"] and done["message_id"] == stored[1]["id"]


def test_regenerate_replaces_the_last_answer_and_a_reload_shows_the_same(
    client: TestClient, model: ScriptedChatModel
) -> None:
    first = ask(client, "Warranty?")
    conversation_id = first["conversation_id"]
    second = ask(client, "Price?", conversation_id=conversation_id)
    question_id = messages(client, conversation_id)[2]["id"]

    again = ask(client, "Price?", conversation_id=conversation_id, replace_from=question_id)
    assert again["answer"] == "third answer"
    stored = messages(client, conversation_id)
    assert [m["content"] for m in stored] == ["Warranty?", "first answer", "Price?", "third answer"]
    assert stored[3]["id"] == again["message_id"] != second["message_id"]
    # the regenerated answer saw the history before the question, not the replaced answer
    assert model.received[-1][-1] == Message("user", "Price?")
    assert Message("assistant", "second answer") not in model.received[-1]


def test_edit_and_resend_drops_the_later_turns(
    client: TestClient, model: ScriptedChatModel
) -> None:
    conversation_id = ask(client, "Warranty?")["conversation_id"]
    ask(client, "Price?", conversation_id=conversation_id)
    first_question = messages(client, conversation_id)[0]["id"]
    edited = ask(
        client, "Warranty of the K3?", conversation_id=conversation_id, replace_from=first_question
    )
    stored = messages(client, conversation_id)
    assert [m["content"] for m in stored] == ["Warranty of the K3?", edited["answer"]]
    sent = model.received[-1]
    assert sent[-1] == Message("user", "Warranty of the K3?")
    assert all(m.content not in ("Warranty?", "Price?", "first answer") for m in sent)


def test_replace_from_must_be_a_question_of_the_conversation(client: TestClient) -> None:
    done = ask(client, "Warranty?")
    conversation_id, answer_id = done["conversation_id"], done["message_id"]
    cases = [
        ({"conversation_id": conversation_id, "replace_from": answer_id}, 404, "no question"),
        ({"conversation_id": conversation_id, "replace_from": 999999}, 404, "no message 999999"),
        ({"replace_from": answer_id}, 422, "needs the conversation_id"),
    ]
    for extra, status, words in cases:
        response = client.post("/api/chat", json={"question": "x", "kbs": [], **extra})
        assert response.status_code == status, response.text
        assert words in response.json()["error"]["message"]
    assert len(messages(client, conversation_id)) == 2


def test_rename(client: TestClient) -> None:
    conversation_id = ask(client, "Warranty?")["conversation_id"]
    path = f"/api/conversations/{conversation_id}"
    renamed = client.patch(path, json={"title": "  Kettle  warranty "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Kettle warranty"
    assert client.get("/api/conversations").json()[0]["title"] == "Kettle warranty"

    for blank in ("", "   "):
        empty = client.patch(path, json={"title": blank})
        assert empty.status_code == 400
        assert empty.json()["error"] == {
            "type": "BadInput",
            "message": "title must not be empty",
            "status": 400,
        }
    missing = client.patch("/api/conversations/nope", json={"title": "x"})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no conversation with id 'nope'"
    unknown = client.patch(path, json={"name": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == (
        "invalid request: title: Field required; name: unknown or unsupported field"
    )


def test_search_titles_and_messages(client: TestClient) -> None:
    kettle = ask(client, "Kettle warranty?")["conversation_id"]
    tea = ask(client, "绿茶水温？")["conversation_id"]
    assert [c["id"] for c in client.get("/api/conversations", params={"q": "KETTLE"}).json()] == [
        kettle
    ]
    assert [c["id"] for c in client.get("/api/conversations", params={"q": "绿茶"}).json()] == [tea]
    both = client.get("/api/conversations", params={"q": "answer"}).json()  # in the answers
    assert {c["id"] for c in both} == {kettle, tea}
    assert client.get("/api/conversations", params={"q": "nothing like it"}).json() == []
    blank = client.get("/api/conversations", params={"q": " "})
    assert blank.status_code == 200 and len(blank.json()) == 2  # a blank search lists all


def test_rate_change_and_clear(client: TestClient) -> None:
    done = ask(client, "Warranty?")
    conversation_id, answer_id = done["conversation_id"], done["message_id"]

    def feedback(conversation: str = conversation_id, message: int = answer_id) -> str:
        return f"/api/conversations/{conversation}/messages/{message}/feedback"

    path = feedback()
    rated = client.put(path, json={"verdict": "down", "comment": "It is three years"})
    assert rated.status_code == 200
    assert rated.json()["verdict"] == "down" and rated.json()["comment"] == "It is three years"
    assert messages(client, conversation_id)[1]["feedback"]["verdict"] == "down"
    assert client.put(path, json={"verdict": "up"}).json()["comment"] == ""
    assert messages(client, conversation_id)[1]["feedback"]["verdict"] == "up"
    assert client.delete(path).status_code == 204
    assert "feedback" not in messages(client, conversation_id)[1]

    question_id = messages(client, conversation_id)[0]["id"]
    bad = [
        (path, {"verdict": "meh"}, 400, "verdict"),
        (feedback(message=question_id), {"verdict": "up"}, 404, "only answers"),
        (feedback(message=424242), {"verdict": "up"}, 404, "no message 424242"),
        (feedback(conversation="nope"), {"verdict": "up"}, 404, "no conversation"),
        (path, {"verdict": "up", "comment": "x" * 2001}, 400, "comment"),
        (feedback(message=2**64), {"verdict": "up"}, 400, "message_id"),
    ]
    for target, body, status, words in bad:
        response = client.put(target, json=body)
        assert response.status_code == status, (target, response.text)
        assert words in response.json()["error"]["message"]


def test_export_markdown_and_json(client: TestClient) -> None:
    done = ask(client, "Warranty?")
    conversation_id = done["conversation_id"]
    client.put(
        f"/api/conversations/{conversation_id}/messages/{done['message_id']}/feedback",
        json={"verdict": "down", "comment": "too short"},
    )
    markdown = client.get(f"/api/conversations/{conversation_id}/export")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert (
        f'filename="conversation-{conversation_id}.md"' in markdown.headers["content-disposition"]
    )
    text = markdown.text
    assert text.startswith("# Warranty?\n")
    assert "## Question" in text and "## Answer" in text and "first answer" in text
    assert "Rating: 👎 not helpful: too short" in text

    exported = client.get(f"/api/conversations/{conversation_id}/export", params={"format": "json"})
    assert exported.headers["content-type"] == "application/json"
    body = json.loads(exported.text)
    assert body == client.get(f"/api/conversations/{conversation_id}").json()

    assert client.get("/api/conversations/nope/export").status_code == 404
    bad_format = client.get(f"/api/conversations/{conversation_id}/export?format=pdf")
    assert bad_format.status_code == 400 and "format" in bad_format.text


def test_each_key_sees_only_its_conversations_and_openai_chats_are_not_stored() -> None:
    keys = [
        {"name": name, "sha256": hash_key(f"{name}-key"), "permissions": {"*": "admin"}}
        for name in ("page", "script")
    ]
    settings = make_settings(auth="on", api_keys=keys)
    services = make_services(settings, ScriptedChatModel(["an answer"]))
    page = {"Authorization": "Bearer page-key"}
    script = {"Authorization": "Bearer script-key"}
    with TestClient(create_app(settings, services=services)) as client:
        asked = client.post("/api/chat", json={"question": "Mine?", "kbs": []}, headers=page)
        conversation_id = sse_events(asked.text)[-1][1]["conversation_id"]
        for _ in range(3):
            completion = client.post(
                "/v1/chat/completions",
                json={
                    "model": settings.default_model,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                headers=script,
            )
            assert completion.status_code == 200, completion.text
        assert [c["id"] for c in client.get("/api/conversations", headers=page).json()] == [
            conversation_id
        ]
        assert client.get("/api/conversations", headers=script).json() == []
        other = client.patch(
            f"/api/conversations/{conversation_id}", json={"title": "x"}, headers=script
        )
        assert other.status_code == 404
    services.close()
