"""Crash safety and concurrent writers, with real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kbchat.config import load_settings
from kbchat.kb.library import Library
from tests.kb.test_knowledge_base import assert_consistent

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kbchat.config import load_settings
    from kbchat.kb.library import Library
    from kbchat.registry import embedders
    from kbchat.testing.fakes import HashEmbedder

    class SlowHash(HashEmbedder):
        def embed_batch(self, texts, *, is_query=False):
            time.sleep(float(sys.argv[3]))
            return super().embed_batch(texts, is_query=is_query)

    embedders.register("hash", SlowHash)
    library = Library(load_settings(embedder={"backend": "hash", "batch_size": 1}))
    kb = library.ensure(sys.argv[1])
    outcomes = kb.add([Path(sys.argv[2])])
    print(sum(o.status == "indexed" for o in outcomes))
    """
)


def make_files(folder: Path, count: int, word: str) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{word}-{i:03d}.txt").write_text(
            f"Document {i} about {word}. " + f"{word} detail {i}. " * 20, encoding="utf-8"
        )


def start_writer(kb: str, folder: Path, delay: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, kb, str(folder), str(delay)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def indexed_count(home: Path) -> int:
    db = home / "catalog.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            return int(
                conn.execute("select count(*) from files where status='indexed'").fetchone()[0]
            )
        except sqlite3.OperationalError:
            return 0


def test_sigkill_mid_ingest_leaves_a_consistent_kb_and_rerun_completes(
    tmp_path: Path, kbchat_home: Path
) -> None:
    folder = tmp_path / "many"
    make_files(folder, 40, "kettle")
    writer = start_writer("crashy", folder, 0.15)
    deadline = time.monotonic() + 60
    while indexed_count(kbchat_home) < 5:
        assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
        assert time.monotonic() < deadline, "writer made no progress"
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    settings = load_settings(embedder={"backend": "hash"})
    library = Library(settings)
    kb = library.get("crashy")
    statuses = [f.status for f in kb.files()]
    assert 5 <= statuses.count("indexed") < 40
    assert set(statuses) <= {"indexed", "pending"}
    assert_consistent(kb)
    outcomes = kb.add([folder])
    assert sum(o.status == "indexed" for o in outcomes) == 40 - statuses.count("indexed")
    assert {f.status for f in kb.files()} == {"indexed"}
    assert_consistent(kb)
    library.close()


@pytest.mark.slow
def test_two_processes_adding_at_once_do_not_corrupt(tmp_path: Path, kbchat_home: Path) -> None:
    make_files(tmp_path / "a", 15, "apple")
    make_files(tmp_path / "b", 15, "banana")
    Library(load_settings(embedder={"backend": "hash"})).create("shared")
    writers = [start_writer("shared", tmp_path / name, 0.02) for name in ("a", "b")]
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
        assert stdout.strip() == "15"
    library = Library(load_settings(embedder={"backend": "hash"}))
    kb = library.get("shared")
    assert len(kb.files()) == 30
    assert {f.status for f in kb.files()} == {"indexed"}
    assert_consistent(kb)
    assert kb.search("banana detail", top_k=1)[0].file.startswith("banana")
    library.close()
