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


def _kbchat(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "KBCHAT_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "kbchat", *args], env=environ, capture_output=True, text=True
    )


def test_a_bad_log_level_names_the_flag_and_the_variable(tmp_path: Path) -> None:
    by_flag = _kbchat("--log-level", "LOUD", "kb", "list", home=tmp_path)
    by_env = _kbchat("kb", "list", home=tmp_path, KBCHAT_LOG_LEVEL="LOUD")
    for done in (by_flag, by_env):
        assert done.returncode == 1
        assert "--log-level, KBCHAT_LOG_LEVEL" in done.stderr and "'LOUD'" in done.stderr


def test_a_bad_log_format_is_refused(tmp_path: Path) -> None:
    done = _kbchat("kb", "list", home=tmp_path, KBCHAT_LOG_FORMAT="xml")
    assert done.returncode == 1 and "KBCHAT_LOG_FORMAT" in done.stderr
