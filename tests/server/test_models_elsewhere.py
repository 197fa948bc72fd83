"""kbchat with its LLM and embedder served elsewhere, by a real OpenAI-compatible server.

The server is `kbchat serve` itself (embedded 0.5B model, USE embedder) in a subprocess on
a loopback port; a second kbchat, in this process, is configured with ``backend =
"openai"`` for both and answers a question from a knowledge base it indexed through it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from kbchat.config import load_settings
from kbchat.server import create_app
from tests.server.support import sse_events, wait_job
from tests.server.test_serve import REPO, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FACT = "The Zorblax 9 kettle comes with a warranty of seven years. It boils water in 90 seconds."
QUESTION = "How many years of warranty does the Zorblax 9 kettle have?"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kbchat serve` on a free loopback port; yields its OpenAI base URL (.../v1)."""
    home = tmp_path_factory.mktemp("remote-home")
    port = free_port()
    env = {
        **os.environ,
        "KBCHAT_HOME": str(home),
        "KBCHAT_MODEL_CACHE": os.environ.get("KBCHAT_MODEL_CACHE")
        or str(REPO / ".cache" / "models"),
        "KBCHAT_EMBEDDER__BACKEND": "use",
        "PYTHONPATH": str(REPO),
    }
    env.pop("KBCHAT_CONFIG", None)
    log = (home / "serve.log").open("wb")
    command = [sys.executable, "-m", "kbchat", "serve", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--no-sample"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/api/health").status_code == 200, 120, "the server")
        yield f"{url}/v1"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def test_answers_with_llm_and_embeddings_from_a_remote_server(remote: str, tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        embedder={"backend": "openai", "base_url": remote, "model": "use", "timeout_s": 300},
        models={
            "remote": {
                "backend": "openai",
                "base_url": remote,
                "model": "qwen2.5-0.5b",
                "timeout_s": 300,
                "parallel": 2,
            }
        },
        default_model="remote",
    )
    with TestClient(create_app(settings, seed_sample=False)) as client:
        assert client.post("/api/kbs", json={"name": "kettles"}).status_code in (200, 201)
        response = client.post(
            "/api/kbs/kettles/files",
            files=[("files", ("zorblax.txt", FACT.encode(), "text/plain"))],
        )
        assert response.status_code == 202, response.text
        job = wait_job(client, response.json()["job"], timeout=300)
        assert job["status"] == "done", job
        kb = client.get("/api/kbs/kettles").json()
        assert "openai:use@" in str(kb), kb
        health = client.get("/api/health").json()["generations"]
        assert health["slots"] == 2
        response = client.post(
            "/api/chat", json={"question": QUESTION, "kbs": ["kettles"], "max_tokens": 64}
        )
        assert response.status_code == 200, response.text
        done = sse_events(response.text)[-1]
        assert done[0] == "done", response.text
        answer = done[1]
        assert [c["file"] for c in answer["citations"]] == ["zorblax.txt"]
        assert "seven" in answer["answer"].lower() or "7" in answer["answer"], answer["answer"]
