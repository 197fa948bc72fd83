"""The server over a real loopback socket: a client that leaves mid-stream stops generation."""

from __future__ import annotations

import httpx

from kbchat.server import create_app
from tests.server.support import (
    GatedChatModel,
    eventually,
    live_server,
    make_services,
    make_settings,
)


def test_client_leaving_mid_stream_cancels_generation_and_frees_the_slot() -> None:
    settings = make_settings()
    model = GatedChatModel(words=["word "] * 400, delay=0.05)  # 20 s if never cancelled
    services = make_services(settings, model)
    with (
        live_server(create_app(settings, services=services)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        with http.stream("POST", "/api/chat", json={"question": "talk"}) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
        assert eventually(lambda: model.finishes == ["cancelled"], timeout=5)
        assert eventually(lambda: http.get("/api/health").json()["generations"]["running"] == 0)
        conversation = http.get("/api/conversations").json()[0]
        stored = http.get(f"/api/conversations/{conversation['id']}").json()["messages"]
        assert 0 < len(stored[1]["content"]) < len("word ") * 400
        model.words = ["ok"]
        follow_up = http.post("/api/chat", json={"question": "again", "stream": False})
        assert follow_up.status_code == 200 and follow_up.json()["answer"] == "ok"
    services.close()


def test_openai_stream_left_early_is_cancelled_too() -> None:
    settings = make_settings()
    model = GatedChatModel(words=["word "] * 400, delay=0.05)
    services = make_services(settings, model)
    with (
        live_server(create_app(settings, services=services)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        request = {
            "model": settings.default_model,
            "stream": True,
            "messages": [{"role": "user", "content": "talk"}],
        }
        with http.stream("POST", "/v1/chat/completions", json=request) as response:
            assert response.status_code == 200
            chunks = (line for line in response.iter_lines() if line.startswith("data:"))
            next(chunks)
            next(chunks)
        assert eventually(lambda: model.finishes == ["cancelled"], timeout=5)
        assert eventually(lambda: http.get("/api/health").json()["generations"]["running"] == 0)
    services.close()
