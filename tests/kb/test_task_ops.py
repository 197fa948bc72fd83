"""What a worker does for each task, on a real library: uploads added and removed with their
copies, bytes carried by the catalog to a worker on another machine, and a replacement that
goes into place only when its ingest commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from kbchat.kb.jobs import JobQueue
from kbchat.kb.originals import save_blob
from kbchat.kb.prepare import file_sha256
from kbchat.kb.task_ops import add_tasks, remove_task
from kbchat.kb.worker import Worker
from kbchat.store.catalog_schema import blobs
from tests.kb.support import drain, services, staged_replacement, with_upload


def test_an_upload_is_added_then_removed_with_its_copy(tmp_path: Path) -> None:
    here, _kb_id, upload = with_upload(tmp_path)
    queue = JobQueue(here.library.catalog)
    worker = Worker(here, queue)
    job = queue.submit(
        "docs", "add", add_tasks([("kettle.txt", upload, file_sha256(upload))], shared=False)
    )
    drain(worker)
    assert queue.get(job.id).files[0].status == "indexed"
    assert here.library.get("docs").search("kettle warranty")[0].file == "kettle.txt"
    removed = queue.submit("docs", "remove", [remove_task("kettle.txt", str(upload), "")])
    drain(worker)
    assert queue.get(removed.id).files[0].status == "removed"
    assert not upload.exists() and here.library.get("docs").files() == []


def test_a_worker_on_another_machine_reads_the_upload_from_the_catalog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    server = services(tmp_path / "server", url)
    elsewhere = services(tmp_path / "worker", url)  # another home: another machine's disk
    record = server.library.create("docs")
    upload = server.settings.home / "uploads" / str(record.id) / "说明书.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("电水壶的保修期为两年。", encoding="utf-8")
    sha = file_sha256(upload)
    save_blob(server.library.catalog, upload, sha)
    upload.unlink()  # only the catalog has the bytes now
    queue = JobQueue(server.library.catalog)
    job = queue.submit("docs", "add", add_tasks([("说明书.txt", upload, sha)], shared=True))
    drain(Worker(elsewhere, JobQueue(elsewhere.library.catalog)))
    assert queue.get(job.id).files[0].status == "indexed"
    local = elsewhere.settings.home / "uploads" / str(record.id) / "说明书.txt"
    assert local.read_text(encoding="utf-8") == "电水壶的保修期为两年。"
    queue.submit("docs", "remove", [remove_task("说明书.txt", str(local), sha)])
    drain(Worker(elsewhere, JobQueue(elsewhere.library.catalog)))
    with server.library.catalog.engine.connect() as conn:  # nothing names it: the blob goes
        assert conn.execute(select(blobs.c.sha256)).all() == []


def test_removing_a_file_that_kept_no_copy_needs_no_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbchat.kb.originals import remove_upload

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # another test's temporary folder, removed while a worker still runs
    uploads = tmp_path / "uploads"
    kept = uploads / "k" / "a.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("x")
    remove_upload(uploads, Path(""))  # a file refused at upload: its path is empty
    assert kept.exists()
    remove_upload(uploads, kept)
    assert not uploads.joinpath("k").exists() and uploads.exists()


@pytest.mark.parametrize("new", [b'{"note": "the zebra manual"}', b'{"note": broken'])
def test_a_replacement_goes_into_place_only_when_its_ingest_commits(
    tmp_path: Path, new: bytes
) -> None:
    old = b'{"note": "descale the kettle every week"}'
    here, kb_id, upload = with_upload(tmp_path, "manual.json", old)
    queue = JobQueue(here.library.catalog)
    queue.submit("docs", "add", add_tasks([(upload.name, upload, "")], shared=False))
    drain(Worker(here, queue))
    kb = here.library.get("docs")
    before = [(r.sha256, r.chunks) for r in kb.files()]
    staged = staged_replacement(here, kb_id, upload.name, new)
    sha = file_sha256(staged)
    tasks = add_tasks([(upload.name, upload, sha)], shared=False, staged={upload.name: staged})
    job = queue.submit("docs", "add", tasks)
    assert upload.read_bytes() == old  # waiting: the previous bytes stay in place
    drain(Worker(here, queue))
    [outcome] = queue.get(job.id).files
    if outcome.status == "indexed":
        assert upload.read_bytes() == new and kb.files()[0].sha256 == sha
        assert kb.search("zebra manual", top_k=1)[0].file == "manual.json"
    else:  # a failed replacement: the knowledge base and its copy are as they were
        assert outcome.status == "failed"
        assert upload.read_bytes() == old
        assert [(r.sha256, r.chunks) for r in kb.files()] == before
    assert not staged.exists() and not (upload.parent / ".staging").exists()


def test_a_worker_elsewhere_stages_a_replacement_from_the_catalog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    server = services(tmp_path / "server", url)
    elsewhere = services(tmp_path / "worker", url)
    record = server.library.create("docs")
    folder = server.settings.home / "uploads" / str(record.id)
    folder.mkdir(parents=True)
    old, new = b'{"note": "descale weekly"}', b'{"note": broken'
    (folder / "manual.json").write_bytes(old)
    old_sha = file_sha256(folder / "manual.json")
    save_blob(server.library.catalog, folder / "manual.json", old_sha)
    (folder / "manual.json").unlink()  # the worker's machine has only the catalog's copy
    queue = JobQueue(server.library.catalog)
    queue.submit(
        "docs", "add", add_tasks([("manual.json", folder / "manual.json", old_sha)], shared=True)
    )
    drain(Worker(elsewhere, JobQueue(elsewhere.library.catalog)))
    local = elsewhere.settings.home / "uploads" / str(record.id) / "manual.json"
    assert local.read_bytes() == old
    staged = staged_replacement(server, record.id, "manual.json", new)  # on the server only
    new_sha = file_sha256(staged)
    save_blob(server.library.catalog, staged, new_sha)
    staged.unlink()
    tasks = add_tasks(
        [("manual.json", folder / "manual.json", new_sha)],
        shared=True,
        staged={"manual.json": staged},
    )
    job = queue.submit("docs", "add", tasks)
    drain(Worker(elsewhere, JobQueue(elsewhere.library.catalog)))
    assert queue.get(job.id).files[0].status == "failed"
    assert local.read_bytes() == old  # never written over before a commit
    assert not (local.parent / ".staging").exists()
    with server.library.catalog.engine.connect() as conn:  # the failed bytes are not kept
        assert conn.execute(select(blobs.c.sha256)).scalars().all() == [old_sha]
