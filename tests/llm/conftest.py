"""Fixtures for the chat model tests: the real embedded model, assembled once per machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def model_cache() -> Path:
    """Where CI and developers keep the assembled GGUF (KBCHAT_MODEL_CACHE or <repo>/.cache)."""
    return Path(os.environ.get("KBCHAT_MODEL_CACHE") or REPO / ".cache" / "models")


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The embedded 0.5B GGUF, assembled from the installed parts on first use."""
    from kbchat.llm.assemble import ensure_default_model

    return ensure_default_model(model_cache())


@pytest.fixture(scope="session")
def llamacpp_model(default_model_path: Path) -> Iterator[object]:
    """One loaded model shared by the integration tests (loading takes ~2 s)."""
    from kbchat.llm.llamacpp import LlamaCppChatModel

    model = LlamaCppChatModel(path=default_model_path, n_ctx=4096, name="qwen-test")
    yield model
    model.close()
