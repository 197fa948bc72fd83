"""The page's files and how they are served (no browser needed)."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from kbchat.options import TOP_K_MAX
from kbchat.server.ui import STATIC_DIR, mount_ui


def client() -> TestClient:
    app = FastAPI()
    mount_ui(app)
    return TestClient(app)


def test_page_and_assets_are_served_with_a_strict_policy() -> None:
    http = client()
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/static/app.js">' in page.text
    script = http.get("/static/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert http.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert http.get("/static/missing.js").status_code == 404


def test_page_loads_nothing_from_other_hosts() -> None:
    for path in (p for p in STATIC_DIR.iterdir() if p.is_file()):  # vendor/: see below
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path.name
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", text), path.name
        assert not re.search(r"(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", text), (
            f"{path.name} builds markup from strings"
        )


def test_vendored_libraries_are_served_with_their_licence() -> None:
    http = client()
    folders = [p for p in (STATIC_DIR / "vendor").iterdir() if p.is_dir()]
    assert folders, "no vendored library"
    for folder in folders:
        assert (folder / "LICENSE").is_file(), f"{folder.name} has no LICENSE"
        for script in folder.glob("*.mjs"):
            served = http.get(f"/static/vendor/{folder.name}/{script.name}")
            assert served.status_code == 200, script.name
            assert "javascript" in served.headers["content-type"], script.name  # module scripts
    cmap = http.get("/static/vendor/pdfjs/cmaps/UniGB-UCS2-H.bcmap")  # Chinese pdfs' fonts
    assert cmap.status_code == 200 and cmap.content


def test_every_text_key_used_is_translated() -> None:
    catalog = (STATIC_DIR / "i18n.js").read_text(encoding="utf-8")
    english, chinese = catalog.split("const zh = {")
    defined_en = set(re.findall(r'"([\w.]+)":', english))
    defined_zh = set(re.findall(r'"([\w.]+)":', chinese))
    assert defined_en == defined_zh
    used: set[str] = set()
    for path in STATIC_DIR.glob("*.js"):
        used |= set(re.findall(r'\bt\("([\w.]+)"', path.read_text(encoding="utf-8")))
    for path in STATIC_DIR.glob("*.html"):
        used |= set(re.findall(r'data-i18n="([\w.]+)"', path.read_text(encoding="utf-8")))
    assert used, "no keys found"
    assert used - defined_en == set()


def test_bundled_libraries_are_served_with_their_licences() -> None:
    vendor = STATIC_DIR / "vendor"
    listing = (vendor / "README.md").read_text(encoding="utf-8")
    scripts = sorted(p.name for p in vendor.glob("*.js"))
    assert scripts == ["markdown-it.min.js", "purify.min.js"]
    for name, licence in (
        ("markdown-it.min.js", "LICENSE.markdown-it"),
        ("purify.min.js", "LICENSE.dompurify"),
    ):
        assert f"| {name} |" in listing, f"vendor/README.md does not list {name}"
        assert (vendor / licence).is_file(), f"{name} is bundled without {licence}"
        text = (vendor / name).read_text(encoding="utf-8")
        assert not re.search(r"import\s*\(?\s*['\"]https?:", text), f"{name} imports from a host"
    served = client().get("/static/vendor/purify.min.js")
    assert served.status_code == 200 and "javascript" in served.headers["content-type"]
    markdown = (STATIC_DIR / "markdown.js").read_text(encoding="utf-8")
    assert 'import "./vendor/markdown-it.min.js";' in markdown
    assert 'import "./vendor/purify.min.js";' in markdown


def test_the_page_bounds_top_k_as_the_option_does() -> None:
    limits = (STATIC_DIR / "limits.js").read_text(encoding="utf-8")
    declared = re.search(r"export const TOP_K_MAX = (\d+);", limits)
    assert declared is not None and int(declared[1]) == TOP_K_MAX
    for name in ("chat.js", "kbsearch.js", "settings.js"):  # every top-k input takes it
        script = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert 'import { TOP_K_MAX } from "./limits.js";' in script, name
        assert not re.search(r"max: \"?(50|100)\b", script), name  # no bound of its own
