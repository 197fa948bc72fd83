"""`kbchat serve` for real: a subprocess on a loopback port, the sample KB, the embedded model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("serve-home")
    port = free_port()
    cache = os.environ.get("KBCHAT_MODEL_CACHE") or str(REPO / ".cache" / "models")
    env = {
        **os.environ,
        "KBCHAT_HOME": str(home),
        "KBCHAT_MODEL_CACHE": cache,
        "PYTHONPATH": str(REPO),
        "KBCHAT_LOG_FORMAT": "json",
    }
    env.pop("KBCHAT_CONFIG", None)
    env.pop("KBCHAT_EMBEDDER__BACKEND", None)
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kbchat", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/api/health").status_code == 200, 120, "the server")

        def jobs() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = httpx.get(
                f"{url}/api/jobs", params={"kb": "kbchat-docs"}
            ).json()
            return found

        wait_for(lambda: bool(jobs()) and jobs()[0]["status"] == "done", 600, "the sample KB")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait(10)
        log.close()
        output = (home / "serve.log").read_text(errors="replace")
        assert code in (0, -signal.SIGTERM), output[-3000:]  # uvicorn re-raises the signal
        assert "Application shutdown complete" in output
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        requests = [line for line in lines if line["message"] == "request"]
        assert any(r["path"] == "/api/health" and r["status"] == 200 for r in requests), output[
            -3000:
        ]
        assert any(line["message"] == "answer" for line in lines), output[-3000:]


pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sample_kb_was_built_on_first_start(server: str) -> None:
    kbs = httpx.get(f"{server}/api/kbs").json()
    assert [kb["name"] for kb in kbs] == ["kbchat-docs"]
    assert kbs[0]["files"] >= 10 and kbs[0]["status"].get("failed", 0) == 0


def test_openai_client_against_the_real_model(server: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", timeout=300, max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert "kb:kbchat-docs" in ids and "qwen2.5-0.5b" in ids

    completion = client.chat.completions.create(
        model="kb:kbchat-docs",
        max_tokens=48,
        temperature=0,
        messages=[{"role": "user", "content": "How do I add files to a knowledge base?"}],
    )
    assert completion.choices[0].message.content
    assert isinstance((completion.model_extra or {}).get("citations"), list)
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    chunks = list(
        client.chat.completions.create(
            model="qwen2.5-0.5b",
            max_tokens=24,
            temperature=0,
            stream=True,
            messages=[{"role": "user", "content": "Say hello in three words."}],
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    pieces = [piece for piece in pieces if piece]
    assert len(pieces) >= 2 and "".join(pieces).strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")

    # The sample KB's embedder is the default e5+use (384 + 512 dimensions); e5 alone by name.
    vectors = client.embeddings.create(model="kbchat-docs", input=["warranty", "保修期"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 896
    e5 = client.embeddings.create(model="e5", input="warranty")
    assert len(e5.data[0].embedding) == 384 and e5.model.startswith("e5:")


def test_rest_chat_streams_events(server: str) -> None:
    body = {
        "question": "What file types does kbchat read?",
        "kbs": ["kbchat-docs"],
        "max_tokens": 32,
    }
    names = []
    with httpx.stream("POST", f"{server}/api/chat", json=body, timeout=300) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            if line.startswith("data: ") and names[-1] == "done":
                done = json.loads(line[6:])
    assert names[-1] == "done" and "delta" in names and "citations" in names
    assert done["conversation_id"] and done["timings"]["ttft_s"] > 0
