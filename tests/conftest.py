"""Shared fixtures: every test gets its own KBCHAT_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def kbchat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "kbchat-home"
    monkeypatch.setenv("KBCHAT_HOME", str(home))
    for var in ("KBCHAT_CONFIG", "KBCHAT_EMBEDDER__BACKEND"):
        monkeypatch.delenv(var, raising=False)
    return home
