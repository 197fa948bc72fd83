"""`kbchat models`: list with GGUF facts, add/rm/default persisted to kbchat.toml with the
user's comments kept, and pull from a Hugging Face or ModelScope mirror on loopback."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from kbchat.config import load_settings
from kbchat.errors import BackendError, NotFound
from kbchat.llm.pull import pull_gguf
from tests.cli.test_cli import run
from tests.llm.hf_mirror import Mirror, serve_mirror
from tests.llm.tiny_gguf import write_tiny_gguf

USER_FILE = "# my settings\n[chat]\ntop_k = 4  # four is enough\n"


@pytest.fixture
def config(kbchat_home: Path) -> Path:
    kbchat_home.mkdir(parents=True, exist_ok=True)
    path = kbchat_home / "kbchat.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny-q4.gguf")


def listed(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, out, err = run("models", "list", "--json", capsys=capsys)
    assert code == 0, err
    return {row["name"]: row for row in json.loads(out)}


def test_add_default_rm_keep_the_users_comments(
    config: Path, gguf_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run("models", "add", "tiny", str(gguf_file), "--n-ctx", "1024", capsys=capsys)
    assert code == 0, err
    text = config.read_text(encoding="utf-8")
    assert "# my settings" in text and "# four is enough" in text
    saved = tomllib.loads(text)
    assert saved["models"]["tiny"] == {"backend": "llamacpp", "path": str(gguf_file), "n_ctx": 1024}
    assert "qwen2.5-0.5b" in saved["models"]  # the default model stays configured

    rows = listed(capsys)
    tiny = rows["tiny"]
    assert tiny["status"] == "ready" and tiny["quantisation"] == "Q4_K_M"
    assert tiny["context_length"] == 2048 and tiny["n_ctx"] == 1024
    assert tiny["file_bytes"] == gguf_file.stat().st_size
    assert tiny["memory_bytes"] > tiny["file_bytes"]

    assert run("models", "default", "tiny", capsys=capsys)[0] == 0
    assert tomllib.loads(config.read_text(encoding="utf-8"))["default_model"] == "tiny"
    code, _, err = run("models", "rm", "tiny", capsys=capsys)
    assert code == 1 and "is the default model" in err
    assert run("models", "default", "qwen2.5-0.5b", capsys=capsys)[0] == 0
    assert run("models", "rm", "tiny", capsys=capsys)[0] == 0
    assert "tiny" not in listed(capsys)
    assert "# four is enough" in config.read_text(encoding="utf-8")


def test_bad_inputs_change_nothing(
    config: Path, tmp_path: Path, gguf_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not a model", encoding="utf-8")
    code, _, err = run("models", "add", "notes", str(text), capsys=capsys)
    assert code == 1 and "notes.gguf is not a GGUF model file" in err
    code, _, err = run("models", "add", "tiny", str(gguf_file), "--n-ctx", "10", capsys=capsys)
    assert code == 1 and "not saved" in err and "models.tiny.n_ctx" in err
    code, _, err = run("models", "default", "nope", capsys=capsys)
    assert code == 1 and "no model named 'nope'; configured: qwen2.5-0.5b" in err
    code, _, err = run("models", "add", "big", "--embedded", "qwen9", capsys=capsys)
    assert code == 1 and "known: qwen2.5-coder-0.5b" in err
    assert config.read_text(encoding="utf-8") == USER_FILE


def test_list_shows_the_larger_embedded_model_and_how_to_install_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run("models", "list", capsys=capsys)
    assert code == 0
    assert "qwen2.5-coder-1.5b-instruct" in err and "kbchat[llm-large]" in err


def test_list_shows_a_long_model_name_whole_in_a_narrow_terminal(
    config: Path, gguf_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "team-finetune-7b-instruct-v2"
    assert run("models", "add", name, str(gguf_file), capsys=capsys)[0] == 0
    code, out, err = run("models", "list", capsys=capsys)
    assert code == 0
    assert name in out + err  # on one line: not cut to "team-fin…" nor folded


def test_add_embedded_larger_model(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        "models", "add", "big", "--embedded", "qwen2.5-coder-1.5b-instruct", capsys=capsys
    )
    assert code == 0, err
    big = listed(capsys)["big"]
    assert big["source"] == "embedded qwen2.5-coder-1.5b-instruct"
    assert big["status"] in ("not installed", "not assembled", "ready")


# -- pull ---------------------------------------------------------------------------------


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    # Pulls land in a model folder of their own: a shared cache (CI keeps KBCHAT_MODEL_CACHE
    # between runs) may hold the file an earlier run pulled, and then nothing is downloaded.
    monkeypatch.setenv("KBCHAT_MODEL_CACHE", str(tmp_path / "models"))
    return write_tiny_gguf(tmp_path / "w.gguf").read_bytes()


def test_pull_from_the_mirror_named_by_hf_endpoint(
    weights: bytes,
    kbchat_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = {"tiny-q4_k_m.gguf": weights, "tiny-f16.gguf": weights + b"x", "README.md": b"hi"}
    with serve_mirror(Mirror({"owner/tiny-GGUF": files})) as mirror:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        code, _, err = run("models", "pull", "owner/tiny-GGUF", "--default", capsys=capsys)
    assert code == 0, err
    # the models folder: <home>/models, or KBCHAT_MODEL_CACHE when set (as CI sets it)
    pulled = load_settings().models_dir / "hf" / "owner--tiny-GGUF" / "tiny-q4_k_m.gguf"
    assert pulled.read_bytes() == weights  # the Q4_K_M one of two GGUF files
    saved = tomllib.loads((kbchat_home / "kbchat.toml").read_text(encoding="utf-8"))
    assert saved["default_model"] == "tiny-q4_k_m"
    assert saved["models"]["tiny-q4_k_m"]["path"] == str(pulled)


def test_pull_resumes_a_partial_file(weights: bytes, tmp_path: Path) -> None:
    target = tmp_path / "owner--tiny" / "tiny.gguf"
    target.parent.mkdir()
    half = len(weights) // 2
    (target.parent / "tiny.gguf.part").write_bytes(weights[:half])
    with serve_mirror(Mirror({"owner/tiny": {"tiny.gguf": weights}})) as mirror:
        path = pull_gguf("owner/tiny:tiny.gguf", tmp_path, endpoint=mirror.url)
        assert mirror.ranges == [f"bytes={half}-"]  # only the rest was asked for
        again = pull_gguf("owner/tiny", tmp_path, endpoint=mirror.url)
        assert len(mirror.ranges) == 1  # verified and in place: nothing downloaded
    assert path == again == target and path.read_bytes() == weights
    sidecar = target.with_name("tiny.gguf.sha256").read_text(encoding="ascii")
    assert sidecar.split()[0] == hashlib.sha256(weights).hexdigest()


def test_pull_refuses_a_file_whose_sha256_differs(weights: bytes, tmp_path: Path) -> None:
    mirror = Mirror({"owner/tiny": {"tiny.gguf": weights}}, sha256={"tiny.gguf": "0" * 64})
    with serve_mirror(mirror), pytest.raises(BackendError, match="sha256"):
        pull_gguf("owner/tiny", tmp_path, endpoint=mirror.url)
    assert not list((tmp_path / "owner--tiny").iterdir())  # neither the file nor a .part


def test_pull_names_what_is_missing(weights: bytes, tmp_path: Path) -> None:
    with serve_mirror(Mirror({"owner/tiny": {"a.gguf": weights}})) as mirror:
        with pytest.raises(NotFound, match="no repository owner/nope"):
            pull_gguf("owner/nope", tmp_path, endpoint=mirror.url)
        with pytest.raises(NotFound, match=r"no file 'b.gguf'; its GGUF files: a.gguf"):
            pull_gguf("owner/tiny:b.gguf", tmp_path, endpoint=mirror.url)


def test_pull_bad_reference_and_unreachable_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run("models", "pull", "just-a-name", capsys=capsys)
    assert code == 1 and "OWNER/REPO" in err
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    code, _, err = run("models", "pull", "owner/tiny", capsys=capsys)
    assert code == 1 and "cannot reach http://127.0.0.1:1" in err


# -- pull from ModelScope -------------------------------------------------------------------


def test_pull_from_modelscope_at_the_mirror_named_by_modelscope_endpoint(
    weights: bytes,
    kbchat_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = {"tiny-q4_k_m.gguf": weights, "tiny-f16.gguf": weights + b"x", "README.md": b"hi"}
    with serve_mirror(Mirror({"owner/tiny-GGUF": files})) as mirror:
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", mirror.url)
        code, _, err = run(
            "models", "pull", "owner/tiny-GGUF", "--source", "modelscope", capsys=capsys
        )
    assert code == 0, err
    pulled = load_settings().models_dir / "modelscope" / "owner--tiny-GGUF" / "tiny-q4_k_m.gguf"
    assert pulled.read_bytes() == weights  # the Q4_K_M one of two GGUF files
    saved = tomllib.loads((kbchat_home / "kbchat.toml").read_text(encoding="utf-8"))
    assert saved["models"]["tiny-q4_k_m"]["path"] == str(pulled)
    assert mirror.ranges == [None]  # one whole download


def test_modelscope_domain_names_the_host_as_the_modelscope_package_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kbchat.llm.pull import modelscope_endpoint

    monkeypatch.delenv("MODELSCOPE_ENDPOINT", raising=False)
    monkeypatch.delenv("MODELSCOPE_DOMAIN", raising=False)
    assert modelscope_endpoint() == "https://modelscope.cn"
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "www.modelscope.ai")
    assert modelscope_endpoint() == "https://www.modelscope.ai"
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:9/")
    assert modelscope_endpoint() == "http://127.0.0.1:9"


def test_modelscope_pull_resumes_reports_progress_and_checks_sha256(
    weights: bytes, tmp_path: Path
) -> None:
    target = tmp_path / "owner--tiny" / "tiny.gguf"
    target.parent.mkdir()
    half = len(weights) // 2
    (target.parent / "tiny.gguf.part").write_bytes(weights[:half])
    seen: list[tuple[int, int]] = []
    with serve_mirror(Mirror({"owner/tiny": {"tiny.gguf": weights}})) as mirror:
        path = pull_gguf(
            "owner/tiny:tiny.gguf",
            tmp_path,
            source="modelscope",
            endpoint=mirror.url,
            progress=lambda done, total: seen.append((done, total)),
        )
        assert mirror.ranges == [f"bytes={half}-"]  # only the rest was asked for
        again = pull_gguf("owner/tiny", tmp_path, source="modelscope", endpoint=mirror.url)
        assert len(mirror.ranges) == 1  # verified and in place: nothing downloaded
    assert path == again == target and path.read_bytes() == weights
    assert seen[-1] == (len(weights), len(weights)) and seen[0][0] > half
    sidecar = target.with_name("tiny.gguf.sha256").read_text(encoding="ascii")
    assert sidecar.split()[0] == hashlib.sha256(weights).hexdigest()

    corrupt = Mirror({"owner/bad": {"bad.gguf": weights}}, sha256={"bad.gguf": "0" * 64})
    with serve_mirror(corrupt), pytest.raises(BackendError, match="sha256"):
        pull_gguf("owner/bad", tmp_path, source="modelscope", endpoint=corrupt.url)
    assert not list((tmp_path / "owner--bad").iterdir())  # neither the file nor a .part


def test_modelscope_pull_names_what_is_missing_and_an_unreachable_hub(
    weights: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_mirror(Mirror({"owner/tiny": {"a.gguf": weights}})) as mirror:
        with pytest.raises(NotFound, match="no repository owner/nope .*model owner/nope not found"):
            pull_gguf("owner/nope", tmp_path, source="modelscope", endpoint=mirror.url)
        with pytest.raises(NotFound, match=r"no file 'b.gguf'; its GGUF files: a.gguf"):
            pull_gguf("owner/tiny:b.gguf", tmp_path, source="modelscope", endpoint=mirror.url)
    with pytest.raises(BackendError, match="cannot reach http://127.0.0.1:1 for owner/tiny"):
        pull_gguf("owner/tiny", tmp_path, source="modelscope", endpoint="http://127.0.0.1:1")
    code, _, err = run("models", "pull", "owner/tiny", "--source", "gitee", capsys=capsys)
    assert code == 1 and "--source must be huggingface or modelscope, got 'gitee'" in err


def test_a_hugging_face_pull_reports_its_progress(weights: bytes, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    with serve_mirror(Mirror({"owner/tiny": {"tiny.gguf": weights}})) as mirror:
        pull_gguf(
            "owner/tiny",
            tmp_path,
            endpoint=mirror.url,
            progress=lambda done, total: seen.append((done, total)),
        )
    assert seen and seen[-1] == (len(weights), len(weights))
