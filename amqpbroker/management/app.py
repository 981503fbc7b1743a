"""The aiohttp side: one catch-all route that authenticates, finds the endpoint's small
handler (router.py), runs it, and writes JSON. Errors become responses in errors.py.

Served in the broker's own event loop; handlers are plain synchronous functions over the
admin facade, so a request never interleaves with client traffic mid-change.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import ipaddress
import json
import ssl
from typing import Any

import structlog
from aiohttp import web

from amqpbroker.broker.admin import Admin
from amqpbroker.management import auth, router, ui
from amqpbroker.management.errors import HttpError, to_response

# The handler modules register their routes on import.
from amqpbroker.management import (  # noqa: F401  (imported for their routes)
    access,
    certificates,
    connections,
    definitions,
    overview,
    parameters,
    shovels,
    topology,
)

log = structlog.get_logger("amqpbroker.management")

MAX_BODY = 20 * 1024 * 1024  # RabbitMQ's management.http.max_body_size default (20 MB)
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_default, ensure_ascii=False).encode("utf-8")


class Api:
    def __init__(self, admin: Admin, stats: Any = None) -> None:
        self.admin = admin
        self.stats = stats

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method, raw_path = request.method, request.raw_path
        try:
            return await self._handle(request)
        except Exception as exc:  # noqa: BLE001 - every failure is answered, never a 500
            if (isinstance(exc, HttpError) and exc.status == 401
                    and "Authorization" not in request.headers):
                # no credentials at all: RabbitMQ answers the challenge without a body
                response = web.Response(status=401, headers=exc.headers)
            else:
                response = to_response(exc, method, raw_path)
            if request.headers.get("X-Requested-With") == "XMLHttpRequest":
                # the web UI's own calls: a Basic challenge would make the browser pop
                # its login dialog over the UI's login form
                response.headers.pop("WWW-Authenticate", None)
            return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=200, headers={"Allow": "GET, PUT, POST, DELETE"})
        route, params = router.match(request.method, request.raw_path)
        user = auth.authenticate(self.admin, request.headers.get("Authorization"),
                                 _loopback(request.remote))
        auth.require(user, route.access)
        if route.vhost and "vhost" in params:
            auth.require_vhost(self.admin, user, params["vhost"],
                               write=request.method not in ("GET", "HEAD"))
        body = b""
        if request.method in ("PUT", "POST", "DELETE") and request.body_exists:
            body = await self._read_body(request)
        ctx = router.Context(self.admin, user, params, dict(request.query), body,
                             request.method, request.headers, self.stats)
        cluster = self.admin.cluster
        mark = cluster.mark() if cluster is not None else 0
        try:
            result = route.handler(ctx)
        finally:
            if cluster is not None:  # a cluster leader answers once the ISR has the change
                await cluster.replicated(mark)
        if isinstance(result, router.Reply):
            if result.body is None:
                return web.Response(status=result.status, headers=result.headers)
            return web.Response(status=result.status, body=dumps(result.body),
                                content_type="application/json", headers=result.headers)
        return web.Response(status=200, body=dumps(result), content_type="application/json",
                            headers={"Cache-Control": "no-cache"})

    async def _read_body(self, request: web.Request) -> bytes:
        ctype = request.content_type.lower() if request.headers.get("Content-Type") else ""
        if ctype not in JSON_TYPES and not ctype.endswith("+json"):
            raise HttpError(415, "unsupported_media_type",
                            f"content type '{ctype}' is not accepted; send application/json")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise HttpError(413, "payload_too_large",
                            f"the body is larger than {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > MAX_BODY:
                raise HttpError(413, "payload_too_large",
                                f"the body is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def make_app(admin: Admin, stats: Any = None) -> web.Application:
    api = Api(admin, stats)
    # aiohttp's own body limit is ours (checked while reading, above).
    app = web.Application(client_max_size=MAX_BODY + 1)
    app.router.add_route("*", "/api", api.handle)
    app.router.add_route("*", "/api/{tail:.*}", api.handle)
    ui.add_routes(app)  # the web UI at / (management/ui.py)
    return app


class ManagementServer:
    """The management listeners: an aiohttp runner and one TCP site per host, for HTTP
    (15672) and, with an SSL context, HTTPS (RabbitMQ's `management.ssl.port`, 15671).
    Either may be off (port None)."""

    def __init__(self, admin: Admin, host: str | list[str] | None, port: int | None,
                 stats: Any = None, tls_port: int | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.admin = admin
        self.host = host
        self.requested_port = port
        self.requested_tls_port = tls_port if ssl_context is not None else None
        self.ssl_context = ssl_context
        self.port = 0
        self.tls_port = 0
        self.stats = stats
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(make_app(self.admin, self.stats), access_log=None,
                                     handle_signals=False)
        await self._runner.setup()
        try:
            if self.requested_port is not None:
                self.port = await self._start_sites(self.requested_port, None)
            if self.requested_tls_port is not None:
                self.tls_port = await self._start_sites(self.requested_tls_port,
                                                        self.ssl_context)
        except BaseException:
            await self.stop()
            raise
        log.info("management.listening", host=self.host, port=self.port or None,
                 tls_port=self.tls_port or None)

    async def _start_sites(self, port: int, ctx: ssl.SSLContext | None) -> int:
        """One site per host, all on the same port (port 0: the first site's free one)."""
        assert self._runner is not None
        hosts = self.host if isinstance(self.host, list) else [self.host]
        for host in hosts:
            site = web.TCPSite(self._runner, host, port, reuse_address=True, ssl_context=ctx)
            before = set(map(tuple, self._runner.addresses))
            await site.start()
            if not port:
                new = [a for a in map(tuple, self._runner.addresses) if a not in before]
                port = new[0][1]
        return port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
