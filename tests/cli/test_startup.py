"""The command line starts without the heavy stack: numpy, FAISS and FastAPI load where used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "faiss", "fastapi")


def _loaded_after(code: str, home: Path) -> list[str]:
    """The HEAVY modules present in sys.modules after running ``code`` in a fresh interpreter."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KBCHAT_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_module(tmp_path: Path) -> None:
    assert _loaded_after("import kbchat.cli.main", tmp_path) == []


def test_listing_knowledge_bases_loads_no_heavy_module(tmp_path: Path) -> None:
    code = "from kbchat.cli.main import app\napp(['kb', 'list', '--json'], standalone_mode=False)"
    assert _loaded_after(code, tmp_path) == []


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    assert _loaded_after("import kbchat.store.base", tmp_path) == ["numpy"]
