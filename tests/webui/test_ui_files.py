"""The web UI's files as the management listener serves them: no authentication for the
files, the API still authenticated, security headers on every response, and every JS
module the app imports present (the browser test, test_ui_browser.py, runs them)."""

from __future__ import annotations

import re
from typing import AsyncIterator

import aiohttp
import pytest

from amqpbroker.embed import Broker
from amqpbroker.management import ui

IMPORT = re.compile(r'''(?:from|import)\s+["'](\.{1,2}/[^"']+)["']''')


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with Broker(management=True) as b:
        yield b.management_url


async def fetch(url: str, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        return r.status, dict(r.headers), await r.read()


async def test_index_is_served_without_credentials_with_security_headers(base: str) -> None:
    status, headers, body = await fetch(base + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="/js/app.js">' in body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_modules_and_stylesheet_have_their_content_types(base: str) -> None:
    status, headers, body = await fetch(base + "/js/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"export" in body or b"import" in body
    status, headers, _ = await fetch(base + "/app.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")


async def test_only_the_ui_files_are_served(base: str) -> None:
    for path in ("/nope.js", "/js/../../ui.py", "/%2E%2E/app.py", "/ui.py", "/js/"):
        status, headers, _ = await fetch(base + path)
        assert status == 404, path
        assert headers["X-Frame-Options"] == "DENY"


async def test_the_api_stays_authenticated_and_gets_the_headers_too(base: str) -> None:
    status, headers, _ = await fetch(base + "/api/overview")
    assert status == 401 and "WWW-Authenticate" in headers
    assert headers["X-Frame-Options"] == "DENY"
    bad = {"Authorization": "Basic Z3Vlc3Q6d3Jvbmc="}  # guest:wrong
    status, headers, body = await fetch(base + "/api/whoami", bad)
    assert status == 401 and "WWW-Authenticate" in headers and b"Login failed" in body
    # the UI's own calls: no Basic challenge, so the browser shows no login dialog of its own
    status, headers, body = await fetch(base + "/api/whoami",
                                        {**bad, "X-Requested-With": "XMLHttpRequest"})
    assert status == 401 and "WWW-Authenticate" not in headers and b"Login failed" in body


def test_every_imported_module_ships_and_no_html_is_built_from_strings() -> None:
    files = ui.load_files()
    scripts = {path: body.decode() for path, (body, _) in files.items() if path.endswith(".js")}
    assert "/js/app.js" in scripts and len(scripts) >= 10
    for path, text in scripts.items():
        folder = path.rsplit("/", 1)[0]
        for target in IMPORT.findall(text):
            parts = (folder + "/" + target).split("/")
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part not in (".", ""):
                    resolved.append(part)
            assert "/" + "/".join(resolved) in files, f"{path} imports missing {target}"
        # names (queues, users) are always text: no HTML strings, no inline handlers
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path
        assert "eval(" not in text, path
    for path, (body, _) in files.items():
        if path.endswith(".html"):
            assert not re.search(rb"<script(?![^>]*\bsrc=)", body), "inline script in " + path
            assert b"style=" not in body and b"<style" not in body, path
