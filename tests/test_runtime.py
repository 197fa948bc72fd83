"""Process-wide state is set by the edges only: library code leaves it alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbchat.runtime import configure_process

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, os, sys, faiss
before = faiss.omp_get_max_threads()
{code}
print(json.dumps({{"policy": os.environ.get("OMP_WAIT_POLICY"),
                   "before": before, "after": faiss.omp_get_max_threads()}}))
"""

_LIBRARY_WORK = """
from pathlib import Path
from kbchat.config import load_settings
from kbchat.kb.library import Library
from kbchat.testing.plugin import register
register()
docs = Path(sys.argv[1])
(docs / "a.txt").write_text("The kettle warranty is two years.")
library = Library(load_settings(embedder={"backend": "hash"}))
library.create("m")
kb = library.get("m")
kb.add([docs])
assert kb.search("warranty", top_k=1)
library.close()
"""


def _probe(code: str, tmp_path: Path, **env: str) -> dict[str, object]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")
    }
    environ.update(PYTHONPATH=str(ROOT), KBCHAT_HOME=str(tmp_path / "home"), **env)
    script = _PROBE.format(code=code)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_library_work_leaves_process_state_alone(tmp_path: Path) -> None:
    result = _probe(_LIBRARY_WORK, tmp_path, OMP_NUM_THREADS="2")
    assert result == {"policy": None, "before": 2, "after": 2}


def test_the_edge_sets_it(tmp_path: Path) -> None:
    code = "from kbchat.runtime import configure_process\nconfigure_process()"
    result = _probe(code, tmp_path, OMP_NUM_THREADS="2")
    assert result == {"policy": "PASSIVE", "before": 2, "after": 1}


def test_a_users_wait_policy_is_kept(tmp_path: Path) -> None:
    code = "from kbchat.runtime import configure_process\nconfigure_process()"
    assert _probe(code, tmp_path, OMP_WAIT_POLICY="ACTIVE")["policy"] == "ACTIVE"


def test_thread_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="faiss_threads"):
        configure_process(faiss_threads=0)
