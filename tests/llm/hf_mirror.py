"""A tiny model-hub mirror on loopback, with the two endpoints ``models pull`` uses of each hub:
Hugging Face (``/api/models/<repo>/tree/<rev>`` and ``/<repo>/resolve/<rev>/<file>``) and
ModelScope (``/api/v1/models/<repo>/repo/files?Revision=`` and
``/api/v1/models/<repo>/repo?Revision=&FilePath=``); both serve files with Range."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Mirror:
    """Files by repository; ``sha256`` overrides what the tree lists (to fake corruption)."""

    repos: dict[str, dict[str, bytes]]
    sha256: dict[str, str] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""

    def modelscope_files(self, repo: str) -> dict[str, Any]:
        """What ModelScope's ``repo/files`` answers (a folder entry included, as it lists them)."""
        files = [
            {
                "Name": name.rsplit("/", 1)[-1],
                "Path": name,
                "Type": "blob",
                "Size": len(data),
                "Sha256": self.sha256.get(name, hashlib.sha256(data).hexdigest()),
            }
            for name, data in self.repos[repo].items()
        ]
        folder = {"Name": "docs", "Path": "docs", "Type": "tree", "Size": 0, "Sha256": ""}
        return {"Code": 200, "Data": {"Files": [folder, *files]}, "Success": True}

    def tree(self, repo: str) -> list[dict[str, Any]]:
        return [
            {
                "type": "file",
                "path": name,
                "size": len(data),
                "oid": hashlib.sha1(data).hexdigest(),
                "lfs": {
                    "oid": self.sha256.get(name, hashlib.sha256(data).hexdigest()),
                    "size": len(data),
                    "pointerSize": 134,
                },
            }
            for name, data in self.repos[repo].items()
        ]


_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/?]+)")
_MS_FILES = re.compile(r"^/api/v1/models/([^/]+/[^/]+)/repo/files$")
_MS_FILE = re.compile(r"^/api/v1/models/([^/]+/[^/]+)/repo$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            return

        def _missing(self, code: str) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            body = json.dumps({"error": f"{code}"}).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_file(self, data: bytes) -> None:
            wanted = self.headers.get("Range")
            mirror.ranges.append(wanted)
            start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted else 0
            self.send_response(206 if wanted else 200)
            if wanted:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("X-Repo-Commit", "0" * 40)
            self.end_headers()
            self.wfile.write(data[start:])

        def _modelscope(self, path: str, query: dict[str, list[str]]) -> bool:
            listing, file = _MS_FILES.match(path), _MS_FILE.match(path)
            found = listing or file
            if found is None:
                return False
            repo = found[1]
            if repo not in mirror.repos:
                missing = {"Code": 404, "Message": f"model {repo} not found", "Success": False}
                self._json(404, missing)
            elif listing:
                self._json(200, mirror.modelscope_files(repo))
            elif (name := query.get("FilePath", [""])[0]) in mirror.repos[repo]:
                self._send_file(mirror.repos[repo][name])
            else:
                self._json(404, {"Code": 404, "Message": "file not found", "Success": False})
            return True

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if self._modelscope(path, urllib.parse.parse_qs(query)):
                return None
            if tree := _TREE.match(path):
                if tree[1] not in mirror.repos:
                    return self._missing("RepoNotFound")
                body = json.dumps(mirror.tree(tree[1])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None
            resolve = _RESOLVE.match(path)
            if not resolve or resolve[3] not in mirror.repos.get(resolve[1], {}):
                return self._missing("EntryNotFound")
            self._send_file(mirror.repos[resolve[1]][resolve[3]])
            return None

    return Handler


@contextmanager
def serve_mirror(mirror: Mirror) -> Iterator[Mirror]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
