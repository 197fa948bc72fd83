"""Scale-out for real: PostgreSQL holding the catalog, the job queue and the vectors (pgvector),
two `kbchat serve` processes on different ports and two `kbchat worker` processes, each with a
home of its own as if on four machines.

- A file uploaded through one server is searchable and answerable through the other.
- Concurrent uploads of different files to one knowledge base through both lose nothing.
- A worker killed with SIGKILL mid-file has its task picked up by the other within 90 s,
  with no duplicate or orphan chunks (the catalog and pgvector hold the same ids).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from kbchat.testing.postgres import TestPostgres
from tests.server.test_serve import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.integration, pytest.mark.slow]


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    db: str
    servers: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        home = self.root / name
        home.mkdir()
        log = (home / "out.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "kbchat", *args],
            env={**self.env, "KBCHAT_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.root / name / "out.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db) as conn:
            return list(conn.execute(query, params).fetchall())


@pytest.fixture(scope="module")
def cluster(postgres: TestPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = postgres.new_database()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KBCHAT_PLUGINS": "kbchat.testing.plugin",
        "KBCHAT_CATALOG__URL": db,
        "KBCHAT_STORE__BACKEND": "pgvector",
        "KBCHAT_EMBEDDER__BACKEND": "hash",
        "KBCHAT_MODELS": json.dumps({"fake": {"backend": "scripted"}}),
        "KBCHAT_DEFAULT_MODEL": "fake",
        "KBCHAT_SERVER__WORKERS": "0",  # the servers only queue; the workers run
        "KBCHAT_TEST_EMBED_SECONDS": "0.01",
    }
    env.pop("KBCHAT_CONFIG", None)
    found = Cluster(tmp_path_factory.mktemp("cluster"), env, db)
    try:
        for name in ("server-a", "server-b"):
            port = free_port()
            found.start(name, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-sample")
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda url=url: httpx.get(f"{url}/api/health").status_code == 200, 120, name)
            found.servers.append(url)
        for name in ("worker-1", "worker-2"):
            found.start(name, "worker")
        yield found
    finally:
        found.stop()


def wait_done(server: str, job: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(f"{server}/api/jobs/{job['id']}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"job {job['id']} not finished after {timeout:.0f} s: {body}")


def upload(server: str, kb: str, name: str, text: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server}/api/kbs/{kb}/files", files=[("files", (name, text.encode(), "text/plain"))]
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


def search(server: str, kb: str, query: str) -> list[str]:
    body = {"kbs": [kb], "query": query, "top_k": 3, "threshold": 0}
    response = httpx.post(f"{server}/api/search", json=body)
    assert response.status_code == 200, response.text
    return [hit["file"] for hit in response.json()["hits"]]


def test_a_file_uploaded_through_one_server_is_found_and_answered_through_the_other(
    cluster: Cluster,
) -> None:
    a, b = cluster.servers
    created = httpx.post(f"{a}/api/kbs", json={"name": "team"})
    assert created.status_code == 201, created.text
    job = upload(a, "team", "kettle.txt", "The K3 kettle warranty lasts two years.")
    done = wait_done(b, job)  # the job is visible through the other server too
    assert done["status"] == "done" and done["files"][0]["status"] == "indexed", done
    assert search(b, "team", "kettle warranty") == ["kettle.txt"]
    answer = httpx.post(
        f"{b}/v1/chat/completions",
        json={
            "model": "kb:team",
            "messages": [{"role": "user", "content": "How long is the K3 kettle warranty?"}],
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    sources = answer.json().get("citations") or answer.json().get("closest") or []
    assert any(source.get("file") == "kettle.txt" for source in sources), answer.json()


def test_concurrent_uploads_through_both_servers_lose_nothing(cluster: Cluster) -> None:
    a, b = cluster.servers
    assert httpx.post(f"{a}/api/kbs", json={"name": "shared"}).status_code == 201
    names = [f"note-{i:02d}.txt" for i in range(16)]

    def send(i_name: tuple[int, str]) -> tuple[str, dict[str, Any]]:
        i, name = i_name
        server = (a, b)[i % 2]
        return server, upload(server, "shared", name, f"Note {i} is about topic{i}word only.")

    with ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(send, enumerate(names)))
    for server, job in sent:
        assert wait_done(server, job)["status"] == "done"
    files = httpx.get(f"{b}/api/kbs/shared/files").json()
    assert sorted(f["name"] for f in files) == names
    assert {f["status"] for f in files} == {"indexed"}
    for i, name in enumerate(names):
        assert search((b, a)[i % 2], "shared", f"topic{i}word")[0] == name


def test_a_killed_worker_s_task_is_finished_by_the_other(cluster: Cluster) -> None:
    a, b = cluster.servers
    assert httpx.post(f"{a}/api/kbs", json={"name": "big"}).status_code == 201
    # ~1,600 passages at 10 ms each: about 16 s of embedding, long enough to be caught
    text = "\n\n".join(f"Paragraph {i} tells of item{i} and its many parts." for i in range(1600))
    job = upload(a, "big", "manual.txt", text)

    def holder() -> str | None:
        rows = cluster.sql(
            "SELECT lease_owner FROM job_tasks WHERE job_id = %s AND status = 'running'",
            job["id"],
        )
        return rows[0][0] if rows else None

    wait_for(lambda: holder() is not None, 60, "a worker to claim the file")
    owner = holder()
    assert owner is not None
    pid = int(owner.split(":")[1])
    victim = next(n for n, p in cluster.processes.items() if p.pid == pid)
    time.sleep(2)  # mid-file: embedding is under way
    os.kill(pid, signal.SIGKILL)
    cluster.processes[victim].wait(10)
    killed_at = time.monotonic()
    done = wait_done(b, job, timeout=90)
    assert time.monotonic() - killed_at < 90
    assert done["status"] == "done" and done["files"][-1]["status"] == "indexed", done
    [(kb_id,)] = cluster.sql("SELECT id FROM kbs WHERE name = 'big'")
    catalog_ids = {row[0] for row in cluster.sql("SELECT id FROM chunks WHERE kb_id = %s", kb_id)}
    [(file_chunks,)] = cluster.sql(
        "SELECT chunks FROM files WHERE kb_id = %s AND name = 'manual.txt'", kb_id
    )
    assert len(catalog_ids) == file_chunks > 100  # one copy of each chunk, no duplicates
    search(b, "big", "item1500 parts")  # a search brings the vector store in step
    vector_ids = {row[0] for row in cluster.sql(f"SELECT id FROM kb_{kb_id}")}
    assert vector_ids == catalog_ids  # no orphan vectors, none missing
    assert search(a, "big", "item1500 parts")[0] == "manual.txt"
