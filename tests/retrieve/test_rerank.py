"""Rerankers: a real ONNX cross-encoder graph (tiny, built here) and a real HTTP endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from kbchat.errors import BackendError, ConfigError
from kbchat.retrieve.rerank import OnnxCrossEncoder, RemoteReranker
from kbchat.retrieve.search import Reranker
from kbchat.testing.contracts import RerankerContract

onnx = pytest.importorskip("onnx")
tokenizers = pytest.importorskip("tokenizers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "kettle", "warranty", "tea", "coffee", "two", "years"]
RELEVANT = VOCAB.index("warranty")


def make_cross_encoder(folder: Path) -> Path:
    """A 'cross-encoder' whose logit is 4 * (count of the token 'warranty') - 2."""
    from onnx import TensorProto, helper

    folder.mkdir()
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1])
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["target"],
            value=helper.make_tensor("t", TensorProto.INT64, [], [RELEVANT]),
        ),
        helper.make_node("Equal", ["input_ids", "target"], ["hit"]),
        helper.make_node("Cast", ["hit"], ["hitf"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["hitf", "maskf"], ["masked"]),
        helper.make_node(
            "Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])
        ),
        helper.make_node("ReduceSum", ["masked", "axes"], ["count"], keepdims=1),
        helper.make_node(
            "Constant", [], ["four"], value=helper.make_tensor("f", TensorProto.FLOAT, [], [4.0])
        ),
        helper.make_node(
            "Constant", [], ["two"], value=helper.make_tensor("w", TensorProto.FLOAT, [], [2.0])
        ),
        helper.make_node("Mul", ["count", "four"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "two"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "tiny-cross-encoder", [ids, mask], [logits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "model.onnx")

    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_onnx_cross_encoder_scores_pairs(tmp_path: Path) -> None:
    reranker = OnnxCrossEncoder(path=make_cross_encoder(tmp_path / "ce"), batch_size=2)
    scores = reranker.rerank(
        "kettle", ["tea coffee", "kettle warranty two years", "warranty warranty", "tea"]
    )
    assert scores[0] == pytest.approx(0.1192, abs=1e-3)  # sigmoid(-2)
    assert scores[1] == pytest.approx(0.8808, abs=1e-3)  # sigmoid(2)
    assert scores[2] > scores[1] > scores[0]
    assert all(0 <= s <= 1 for s in scores)


def test_onnx_cross_encoder_missing_files_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.onnx not found"):
        OnnxCrossEncoder(path=tmp_path)


@pytest.fixture(scope="module")
def rerank_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body["query"] == "boom":
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b'{"error": "model crashed"}')
                return
            results = [
                {"index": i, "relevance_score": 0.9 if "warranty" in d else 0.2}
                for i, d in enumerate(body["documents"])
            ]
            payload = json.dumps({"results": list(reversed(results))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_remote_reranker_over_http(rerank_server: str) -> None:
    reranker = RemoteReranker(base_url=rerank_server, model="bge-reranker", backoff_s=0)
    assert reranker.rerank("q", ["tea", "warranty info"]) == [0.2, 0.9]
    with pytest.raises(BackendError, match="answered HTTP 500: model crashed"):
        reranker.rerank("boom", ["x"])


def test_remote_reranker_down_is_a_clear_error() -> None:
    reranker = RemoteReranker(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=2, backoff_s=0)
    with pytest.raises(
        BackendError, match=r"cannot connect to reranker .*/rerank after 3 attempts"
    ):
        reranker.rerank("q", ["x"])


def test_remote_reranker_retries_a_busy_server_after_its_retry_after() -> None:
    answers = [
        httpx.Response(503, headers={"retry-after": "0"}, json={"error": "loading"}),
        httpx.Response(429, headers={"retry-after": "0"}, json={"error": "slow down"}),
        httpx.Response(200, json={"results": [{"index": 0, "relevance_score": 0.7}]}),
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    client = httpx.Client(transport=httpx.MockTransport(handler))
    reranker = RemoteReranker(base_url="http://r.test/v1", model="m", api_key="sk-k", client=client)
    assert reranker.rerank("q", ["x"]) == [0.7]
    assert len(seen) == 3 and seen[-1].headers["authorization"] == "Bearer sk-k"


def test_remote_reranker_gives_up_after_its_retries() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502, text="bad gateway")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    reranker = RemoteReranker(
        base_url="http://r.test/v1", model="m", client=client, max_retries=1, backoff_s=0
    )
    with pytest.raises(BackendError, match="reranker at http://r.test/v1/rerank answered HTTP 502"):
        reranker.rerank("q", ["x"])
    assert calls == 2


class TestOnnxCrossEncoderContract(RerankerContract):
    @pytest.fixture(scope="class")
    @classmethod
    def reranker(cls, tmp_path_factory: pytest.TempPathFactory) -> Reranker:
        return OnnxCrossEncoder(path=make_cross_encoder(tmp_path_factory.mktemp("ce") / "ce"))


class TestRemoteRerankerContract(RerankerContract):
    @pytest.fixture(scope="class")
    @classmethod
    def reranker(cls, rerank_server: str) -> Reranker:
        return RemoteReranker(base_url=rerank_server, model="bge-reranker")
