"""/docs and /redoc work offline: every asset they load is served by kbchat itself."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_api_docs_load_nothing_from_other_hosts(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html)
        loaded = [u for pair in urls for u in pair if u]
        assert loaded, page
        for url in loaded:
            assert not re.match(r"(?:https?:)?//", url), f"{page} loads {url}"
            assert client.get(url).status_code == 200, url
    assert "swagger-ui-bundle.js" in client.get("/docs").text
