"""The web UI's files: a single-page app (plain HTML, JS modules, CSS; no build step, no
CDN) shipped in the package under `management/ui/` and served at `/` of the management
listener. The app itself only talks to the HTTP API (`/api/...`), with the user's
credentials; its files carry nothing secret, so they are served without authentication,
as RabbitMQ serves its UI's files.

Only the files found under `ui/` at start-up are served (read once into memory: a few
dozen small files), so no request path can reach anything else on disk.

Every response of the management listener (the API's too) gets the security headers
below: the UI has no inline script or style, so the Content-Security-Policy allows only
this origin's files; no page may frame it (RabbitMQ sends `X-Frame-Options` and a CSP
from its management plugin as well, https://www.rabbitmq.com/docs/management#csp).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

UI_DIR = Path(__file__).parent / "ui"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def load_files(root: Path = UI_DIR) -> dict[str, tuple[bytes, str]]:
    """URL path (`/index.html`, `/js/app.js`) -> (contents, content type)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(root.rglob("*")):
        ctype = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and ctype is not None:
            files["/" + path.relative_to(root).as_posix()] = (path.read_bytes(), ctype)
    return files


class StaticFiles:
    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        self.files = files

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path if request.path != "/" else "/index.html"
        found = self.files.get(path)
        if found is None or request.method not in ("GET", "HEAD"):
            return web.Response(status=404, text="Not Found")
        body, ctype = found
        # no-cache: a browser revalidates, so an upgraded broker's UI is never stale
        return web.Response(body=body, headers={"Content-Type": ctype,
                                                "Cache-Control": "no-cache"})


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def add_routes(app: web.Application) -> None:
    """`/` and the UI's files; the API's routes are added before these by app.py."""
    static = StaticFiles(load_files())
    app.router.add_get("/", static.handle)
    for path in static.files:
        app.router.add_get(path, static.handle)
    app.on_response_prepare.append(add_security_headers)
