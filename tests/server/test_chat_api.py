"""/api/chat (SSE and JSON), conversations, errors before and during a stream, load limits."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.errors import BackendError
from kbchat.server import create_app
from kbchat.server.generation_queue import FIRST_SERVICE_S
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Delta, Message
from tests.server.support import (
    DOCS,
    GatedChatModel,
    eventually,
    make_services,
    make_settings,
    sse_events,
    upload,
)


def chat(client: TestClient, **payload: Any) -> list[tuple[str, Any]]:
    response = client.post("/api/chat", json=payload)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


def test_stream_sends_deltas_then_citations_then_done(client: TestClient, docs_kb: str) -> None:
    events = chat(client, question="How long is the kettle warranty?", kbs=[docs_kb])
    names = [name for name, _ in events]
    assert names[-2:] == ["citations", "done"] and set(names[:-2]) == {"delta"}
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    done = events[-1][1]
    assert streamed == done["answer"] == "The K3 kettle warranty is two years [1]."
    assert [c["file"] for c in events[-2][1]["citations"]] == ["kettle.txt"]
    assert done["citations"] == events[-2][1]["citations"] and done["grounded"] is True
    assert {"model", "usage", "timings", "finish_reason", "notices"} <= set(done)
    assert len(done["conversation_id"]) == 32


def test_json_answer_when_not_streaming(client: TestClient, docs_kb: str) -> None:
    response = client.post(
        "/api/chat",
        json={
            "question": "kettle warranty?",
            "kbs": [docs_kb],
            "stream": False,
            "top_k": 2,
            "max_tokens": 3,
        },
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["answer"].startswith("The K3 kettle") and body["finish_reason"] == "length"
    assert body["conversation_id"]


def test_conversation_is_stored_and_continued(
    client: TestClient, docs_kb: str, model: ScriptedChatModel
) -> None:
    first = chat(client, question="How long is the kettle warranty?", kbs=[docs_kb])[-1][1]
    conversation_id = first["conversation_id"]
    chat(
        client,
        question="How often should I descale the K3 kettle?",
        kbs=[docs_kb],
        conversation_id=conversation_id,
    )
    last_prompt = model.received[-1]
    assert Message("user", "How long is the kettle warranty?") in last_prompt
    assert any(m.role == "assistant" and "two years" in m.content for m in last_prompt)

    listed = client.get("/api/conversations").json()
    assert [c["id"] for c in listed] == [conversation_id]
    assert listed[0]["title"] == "How long is the kettle warranty?"
    assert listed[0]["kbs"] == [docs_kb] and listed[0]["model"] == "scripted"
    full = client.get(f"/api/conversations/{conversation_id}").json()
    roles = [m["role"] for m in full["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert full["messages"][1]["citations"][0]["file"] == "kettle.txt"
    assert "citations" not in full["messages"][0]

    assert client.delete(f"/api/conversations/{conversation_id}").status_code == 204
    assert client.get(f"/api/conversations/{conversation_id}").status_code == 404
    assert client.delete(f"/api/conversations/{conversation_id}").status_code == 404


def test_plain_chat_without_knowledge_bases(client: TestClient, model: ScriptedChatModel) -> None:
    done = chat(client, question="Say something", kbs=[])[-1][1]
    assert done["grounded"] is False and done["citations"] == []
    assert model.received[-1][-1] == Message("user", "Say something")


@pytest.mark.parametrize(
    ("payload", "status", "kind"),
    [
        ({"question": "q", "kbs": ["nope"]}, 404, "NotFound"),
        ({"question": "q", "model": "gpt-99"}, 404, "NotFound"),
        ({"question": "q", "conversation_id": "missing"}, 404, "NotFound"),
        ({"question": ""}, 422, "BadInput"),
        ({"question": "   "}, 422, "BadInput"),
        ({"question": 42}, 422, "BadInput"),
        ({"question": "q", "no_hit": "shrug"}, 422, "BadInput"),
        ({"question": "q", "max_tokens": 0}, 422, "BadInput"),
        ({"kbs": []}, 422, "BadInput"),
    ],
)
def test_errors_before_streaming_are_json(
    client: TestClient, payload: dict[str, Any], status: int, kind: str
) -> None:
    response = client.post("/api/chat", json=payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == kind


class FailingModel(ScriptedChatModel):
    """Streams ``good`` words, then fails as a broken model server would."""

    def __init__(self, good: int) -> None:
        super().__init__(["a b c d"], name="failing")
        self.good = good

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[Delta]:
        words = list(super().stream(messages, **kwargs))[: self.good]

        def run() -> Iterator[Delta]:
            yield from words
            raise BackendError("the model server at http://127.0.0.1:9/v1 went away")

        return run()


def test_backend_failure_before_the_first_token_is_a_502() -> None:
    settings = make_settings()
    services = make_services(settings, FailingModel(good=0))
    with TestClient(create_app(settings, services=services)) as client:
        response = client.post("/api/chat", json={"question": "hello"})
        assert response.status_code == 502
        assert response.json()["error"]["type"] == "BackendError"
        # The slot is freed by the generation's thread as it ends, just after the reply.
        assert eventually(lambda: client.get("/api/health").json()["generations"]["running"] == 0)
    services.close()


def test_failure_mid_stream_is_an_error_event() -> None:
    settings = make_settings()
    services = make_services(settings, FailingModel(good=2))
    with TestClient(create_app(settings, services=services)) as client:
        events = chat(client, question="hello")
        assert [name for name, _ in events] == ["delta", "delta", "error"]
        assert events[-1][1]["error"]["type"] == "BackendError"
        assert "went away" in events[-1][1]["error"]["message"]
        assert client.get("/api/conversations").json() == []
    services.close()


def test_full_queue_is_refused_at_once_with_retry_after() -> None:
    settings = make_settings(parallel=1, queue_size=0)
    gate = threading.Event()
    model = GatedChatModel(gate=gate)
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        results: list[Any] = []
        first = threading.Thread(
            target=lambda: results.append(client.post("/api/chat", json={"question": "first"}))
        )
        first.start()
        assert model.started.wait(10)
        refused = client.post("/api/chat", json={"question": "second"})
        assert refused.status_code == 429
        # Nothing measured yet: one answer is assumed to hold its slot for 30 s.
        assert refused.headers["Retry-After"] == f"{FIRST_SERVICE_S:.0f}"
        assert refused.json()["error"]["type"] == "Busy"
        gate.set()
        first.join(10)
        assert results[0].status_code == 200 and sse_events(results[0].text)[-1][0] == "done"
        assert results[0].headers["X-Queue-Position"] == "0"
        assert client.post("/api/chat", json={"question": "third"}).status_code == 200
    services.close()


def test_a_wait_estimated_beyond_the_timeout_is_refused_at_once() -> None:
    settings = make_settings(parallel=1, queue_size=4, queue_timeout_s=10)
    gate = threading.Event()
    model = GatedChatModel(gate=gate)
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        holder = threading.Thread(
            target=lambda: client.post("/api/chat", json={"question": "first"})
        )
        holder.start()
        assert model.started.wait(10)
        try:
            refused = client.post("/api/chat", json={"question": "second", "stream": False})
        finally:
            gate.set()
        holder.join(10)
        assert refused.status_code == 429
        # The running answer should end 30 s after it started; 10 s before that the wait
        # fits (less the seconds it has already run: more of them on a busy machine).
        assert FIRST_SERVICE_S - 20 <= int(refused.headers["Retry-After"]) <= FIRST_SERVICE_S - 10
        assert "would exceed 10 s" in refused.json()["error"]["message"]
        assert client.get("/api/health").json()["generations"]["waiting"] == 0
    services.close()


def test_queued_requests_run_in_turn_and_say_where_they_waited() -> None:
    settings = make_settings(parallel=1, queue_size=4)
    gate = threading.Event()
    model = GatedChatModel(gate=gate)
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        results: list[Any] = []
        lock = threading.Lock()

        def ask(i: int) -> None:
            response = client.post("/api/chat", json={"question": f"q{i}", "stream": False})
            with lock:
                results.append(response)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        assert eventually(lambda: client.get("/api/health").json()["generations"]["waiting"] == 2)
        gate.set()
        for thread in threads:
            thread.join(20)
        assert [r.status_code for r in results] == [200, 200, 200]
        assert model.finishes == ["stop"] * 3
        places = sorted(
            (int(r.headers["X-Queue-Position"]), int(r.headers["X-Queue-ETA"])) for r in results
        )
        assert [place for place, _ in places] == [0, 1, 2] and places[0][1] == 0
        # A round of 30 s (the first estimate) per place, less what the first answer has run
        # by the time each arrived (more on a busy machine).
        assert 20 <= places[1][1] <= 30 and 50 <= places[2][1] <= 60
        assert all(float(r.headers["X-Queue-Wait"]) >= 0 for r in results)
    services.close()


def queued_comment(text: str) -> tuple[int, int]:
    """The place and wait (seconds) of the ``: queued`` comment a stream starts with."""
    found = re.match(r": queued position=(\d+) eta_s=(\d+)\n\n", text)
    assert found is not None, text[:80]
    return int(found[1]), int(found[2])


def wait_behind_a_held_slot(
    client: TestClient, model: GatedChatModel, gate: threading.Event, path: str, body: Any
) -> Any:
    """POST ``body`` while another answer holds the only slot; returns its response."""
    results: list[Any] = []
    holder = threading.Thread(target=lambda: client.post("/api/chat", json={"question": "hi"}))
    holder.start()
    assert model.started.wait(10)
    waiter = threading.Thread(target=lambda: results.append(client.post(path, json=body)))
    waiter.start()
    assert eventually(lambda: client.get("/api/health").json()["generations"]["waiting"] == 1)
    gate.set()
    holder.join(20)
    waiter.join(20)
    return results[0]


def test_a_waiting_stream_reports_its_place_then_answers() -> None:
    settings = make_settings(parallel=1)
    gate = threading.Event()
    model = GatedChatModel(gate=gate)
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        waited = wait_behind_a_held_slot(client, model, gate, "/api/chat", {"question": "second"})
        assert waited.status_code == 200
        assert waited.headers["X-Queue-Position"] == "1"
        # The slot's holder is expected to end 30 s (the first estimate) after it started;
        # the seconds it has already run come off the wait (more of them on a busy machine).
        assert 20 <= int(waited.headers["X-Queue-ETA"]) <= 30
        assert queued_comment(waited.text) == (1, int(waited.headers["X-Queue-ETA"]))
        events = sse_events(waited.text)
        assert [name for name, _ in events] == ["delta"] * 3 + ["citations", "done"]
    services.close()


def test_an_openai_stream_reports_its_place_as_comments() -> None:
    settings = make_settings(parallel=1)
    gate = threading.Event()
    model = GatedChatModel(gate=gate)
    services = make_services(settings, model)
    body = {
        "model": settings.default_model,
        "messages": [{"role": "user", "content": "second"}],
        "stream": True,
    }
    with TestClient(create_app(settings, services=services)) as client:
        waited = wait_behind_a_held_slot(client, model, gate, "/v1/chat/completions", body)
        assert waited.status_code == 200 and waited.headers["X-Queue-Position"] == "1"
        place, eta = queued_comment(waited.text)
        assert place == 1 and 20 <= eta <= 30
        chunks = [data for _, data in sse_events(waited.text)]
        assert chunks[-1] == "[DONE]"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
        assert text == "one two three"
    services.close()


class GatedThenFailing(GatedChatModel):
    """The first answer waits for the gate; every later one fails at once."""

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[Delta]:
        if self.started.is_set():
            raise BackendError("the model server at http://127.0.0.1:9/v1 went away")
        return super().stream(messages, **kwargs)


def test_a_failure_after_waiting_is_the_streams_error_event() -> None:
    settings = make_settings(parallel=1)
    gate = threading.Event()
    model = GatedThenFailing(gate=gate)
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        waited = wait_behind_a_held_slot(client, model, gate, "/api/chat", {"question": "second"})
        assert waited.status_code == 200
        events = sse_events(waited.text)
        assert [name for name, _ in events] == ["error"]
        assert events[0][1]["error"]["type"] == "BackendError"
        assert eventually(lambda: client.get("/api/health").json()["generations"]["running"] == 0)
    services.close()


def test_chinese_file_names_and_questions(client: TestClient) -> None:
    client.post("/api/kbs", json={"name": "zh"})
    job = upload(client, "zh", {"保修.txt": "本产品保修期为两年。".encode(), **DOCS})
    assert {f["name"] for f in job["files"]} == {"保修.txt", *DOCS}
    done = chat(client, question="保修期多长？", kbs=["zh"])[-1][1]
    assert [c["file"] for c in done["citations"]] == ["保修.txt"]


def test_a_declined_answer_stays_declined_after_a_reload(
    client: TestClient, docs_kb: str, model: ScriptedChatModel
) -> None:
    # The scripted model would invent a port: the answer is declined, never streamed.
    model.replies = ["Edit ~/.kbchat/config.yaml and set port: 8080."]
    events = chat(client, question="How do I change the port of the kettle?", kbs=[docs_kb])
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    done = events[-1][1]
    assert "8080" not in streamed and done["outcome"] == "refused" and done["grounded"] is False
    assert done["citations"] == [] and done["closest"][0]["file"] in DOCS
    stored = client.get(f"/api/conversations/{done['conversation_id']}").json()["messages"][-1]
    assert stored["content"] == done["answer"] and stored["outcome"] == "refused"
    assert stored["closest"] == done["closest"] and stored["grounded"] is False


def test_openai_kb_model_reports_the_outcome_beside_citations(
    client: TestClient, docs_kb: str, model: ScriptedChatModel
) -> None:
    model.replies = ["Edit ~/.kbchat/config.yaml and set port: 8080."]
    body = client.post(
        "/v1/chat/completions",
        json={"model": f"kb:{docs_kb}", "messages": [{"role": "user", "content": "kettle port?"}]},
    ).json()
    assert "8080" not in body["choices"][0]["message"]["content"]
    assert body["outcome"] == "refused" and body["citations"] == [] and body["closest"]
    assert any(n.startswith("declined: ") for n in body["notices"])  # why, as ask --json says
