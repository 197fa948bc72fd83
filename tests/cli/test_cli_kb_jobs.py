"""`kbchat kb add` refusing a named file it cannot read, `kb files` sizes, and `kb jobs` /
`kb cancel` counting a job's files as they really are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbchat.cli.kb import files_done
from kbchat.config import load_settings
from kbchat.kb.jobs import JobQueue, Task
from kbchat.kb.knowledge_base import FileOutcome
from kbchat.kb.library import Library
from tests.cli.test_cli import run


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")


def test_a_named_unsupported_file_is_an_error_naming_it_and_the_supported_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drawing = tmp_path / "plans" / "drawing.xyz"
    drawing.parent.mkdir()
    drawing.write_bytes(b"sixteen bytes!!!")
    (tmp_path / "plans" / "notes.txt").write_text("The kettle plans.", encoding="utf-8")
    assert run("kb", "create", "k", capsys=capsys)[0] == 0
    code, out, err = run("kb", "add", "k", str(drawing), capsys=capsys)
    assert code == 1
    assert str(drawing) in err and ".xyz" in err
    assert ".pdf" in err and ".txt" in err  # the supported types
    assert json.loads(run("kb", "files", "k", "--json", capsys=capsys)[1]) == []
    code, out, err = run("kb", "add", "k", str(drawing.parent), capsys=capsys)
    assert code == 0, err  # in a folder it is skipped, as before
    files = {f["name"]: f for f in json.loads(run("kb", "files", "k", "--json", capsys=capsys)[1])}
    assert files["drawing.xyz"]["status"] == "skipped"
    assert files["drawing.xyz"]["size"] == 16  # its real size, not 0
    code, out, _ = run("kb", "files", "k", capsys=capsys)
    assert "16 B" in out and "0 B" not in out


def queue_of_six() -> tuple[Library, JobQueue, str]:
    library = Library(load_settings())
    queue = JobQueue(library.catalog)
    tasks = [Task("add", file=f"{n}.txt", payload={"path": f"/srv/{n}.txt"}) for n in "abcdef"]
    return library, queue, queue.submit("manuals", "add", tasks).id


def test_cancelling_counts_the_files_a_worker_holds_but_has_not_started(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("kb", "create", "manuals", capsys=capsys)[0] == 0
    library, queue, job_id = queue_of_six()
    try:
        held = queue.claim("a-worker", "host", batch=3)  # a.txt, b.txt, c.txt
        queue.file_started(held[0].id)  # it is reading a.txt
        code, out, err = run("kb", "cancel", job_id, capsys=capsys)
        assert code == 0, err
        assert "0 file(s) finished and kept, 5 not started are left out, 1 in hand stops" in out
    finally:
        library.close()


def test_a_job_cancelled_part_way_lists_its_files_by_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("kb", "create", "manuals", capsys=capsys)[0] == 0
    library, queue, job_id = queue_of_six()
    try:
        held = queue.claim("a-worker", "host", batch=2)
        queue.record(held[0].id, FileOutcome("a.txt", "/srv/a.txt", "indexed", None, 1))
        queue.record(held[1].id, FileOutcome("b.txt", "/srv/b.txt", "skipped", "why"))
        queue.finish([t.id for t in held])
        queue.cancel(job_id, "cancelled by erin")
    finally:
        library.close()
    code, out, _ = run("kb", "jobs", "manuals", capsys=capsys)
    assert code == 0 and "2/6" in out and "6/6" not in out
    assert all(word in out for word in ("cancelled,", "indexed,", "skipped"))  # may wrap
    job = json.loads(run("kb", "jobs", "manuals", "--json", capsys=capsys)[1])[0]
    assert (job["status"], job["done"], job["total"]) == ("cancelled", 2, 6)


def test_jobs_of_an_unknown_knowledge_base_is_an_error_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("kb", "create", "manuals", capsys=capsys)[0] == 0
    for extra in ([], ["--json"]):
        code, out, err = run("kb", "jobs", "nosuch", *extra, capsys=capsys)
        assert code == 1 and out == ""
        assert "no knowledge base named 'nosuch'" in err and "manuals" in err
    assert run("kb", "jobs", "manuals", "--json", capsys=capsys)[:2] == (0, "[]\n")
    code, out, _ = run("kb", "jobs", "manuals", capsys=capsys)
    assert code == 0 and out.startswith("no jobs for knowledge base 'manuals'")


def test_jobs_show_the_chunks_written_and_those_being_embedded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("kb", "create", "manuals", capsys=capsys)[0] == 0
    library, queue, job_id = queue_of_six()
    try:
        held = queue.claim("a-worker", "host", batch=2)
        queue.record(held[0].id, FileOutcome("a.txt", "/srv/a.txt", "indexed", None, 417))
        queue.progress(held[1].id, 40, 96)  # b.txt is being embedded
        assert files_done(queue.get(job_id)) == (
            "1/6: 1 indexed, 5 pending; 417 chunks (+40/96 embedding)"
        )
        code, out, _ = run("kb", "jobs", "manuals", capsys=capsys)
        assert code == 0 and "417" in out and "embedding" in out  # wrapped in its column
        queue.record(held[1].id, FileOutcome("b.txt", "/srv/b.txt", "indexed", None, 96))
        queue.finish([t.id for t in held])
    finally:
        library.close()
    job = json.loads(run("kb", "jobs", "manuals", "--json", capsys=capsys)[1])[0]
    assert (job["status"], job["chunks"], job["chunks_done"], job["chunks_total"]) == (
        "queued",  # c.txt to f.txt wait for a worker
        513,
        None,
        None,
    )
    code, out, _ = run("kb", "jobs", "manuals", capsys=capsys)
    assert code == 0 and "513" in out and "embedding" not in out
