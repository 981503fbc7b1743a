"""The metrics listener: aiohttp in the broker's event loop, on HTTP (15692) and HTTPS
(15691), as RabbitMQ's rabbitmq_prometheus plugin (https://www.rabbitmq.com/docs/prometheus).

    GET /metrics                         aggregated: one sample per metric
    GET /metrics/per-object              a sample per queue, channel, connection, exchange
    GET /metrics/detailed?family=F&vhost=V&queue=REGEX    the chosen groups, per object

Anything else is 404; a method other than GET/HEAD 405; a bad `queue` regex 400. No
authentication, as RabbitMQ's default. The figures are read in the loop in slices
(snapshot.py); the text of a per-object scrape is rendered in a worker thread, so a big
scrape does not hold the loop while it formats. `Accept-Encoding: gzip` (Prometheus sends
it) gets a gzip body.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Any

import structlog
from aiohttp import web

from amqpbroker import __version__
from amqpbroker.metrics import snapshot
from amqpbroker.metrics.collector import render

log = structlog.get_logger("amqpbroker.metrics")

# The 0.0.4 text format (what prometheus_client renders and Prometheus scrapes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENDPOINTS = {"/metrics": "aggregated", "/metrics/per-object": "per-object",
             "/metrics/detailed": "detailed"}
MAX_QUEUE_FILTER = 2000  # rabbit_prometheus_handler's limit on the `queue` regex


class BadRequest(Exception):
    """A query parameter that cannot mean anything (answered 400 with the reason)."""


class MetricsApi:
    def __init__(self, admin: Any) -> None:
        self.admin = admin

    async def handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = ENDPOINTS.get(request.path.rstrip("/") or "/")
        if endpoint is None:  # RabbitMQ: 404 "Unknown Registry"
            return web.Response(status=404, text="Unknown Registry\n")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"},
                                text="Method Not Allowed\n")
        try:
            options = _options(request, self.admin) if endpoint == "detailed" else {}
            snap = await snapshot.read(self.admin, endpoint, __version__, **options)
            gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
            if snap.per_object:  # big: format it off the loop
                body = await asyncio.to_thread(render, snap, gzipped)
            else:
                body = render(snap, gzipped)
        except BadRequest as exc:
            return web.Response(status=400, text=f"{exc}\n")
        except Exception:  # noqa: BLE001 - logged; the scraper gets a clear status, not a 500
            log.exception("metrics.scrape_failed", path=request.path)
            return web.Response(status=503, text="metrics are unavailable, see the log\n")
        headers = {"Content-Type": CONTENT_TYPE}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)


def _options(request: web.Request, admin: Any) -> dict[str, Any]:
    """The detailed endpoint's filters: `family` (repeatable; unknown names are ignored,
    as RabbitMQ does), `vhost` (repeatable; vhosts that do not exist are ignored),
    `queue` (a regular expression matched anywhere in the queue name)."""
    query = request.query
    known = set(admin.vhost_names())
    vhosts = [v for v in query.getall("vhost", []) if v in known]
    options: dict[str, Any] = {"families": query.getall("family", []),
                               "vhosts": vhosts if "vhost" in query else None}
    pattern = query.get("queue", "")
    if pattern:
        if len(pattern) > MAX_QUEUE_FILTER:
            raise BadRequest("'queue' regex too long")
        try:
            options["queue"] = re.compile(pattern)
        except re.error as exc:
            raise BadRequest(f"Invalid 'queue' regex at position {exc.pos}: {exc.msg}") from None
    return options


def make_app(admin: Any) -> web.Application:
    api = MetricsApi(admin)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    return app


class MetricsServer:
    """The metrics listener: one aiohttp runner, a plain site per host on `port` and a TLS
    site per host on `tls_port` (None: that one is off; 0: a free port)."""

    def __init__(self, admin: Any, host: str | list[str] | None, port: int | None,
                 tls_port: int | None = None, ssl_context: ssl.SSLContext | None = None
                 ) -> None:
        self.admin = admin
        self.host = host
        self.requested = (port, tls_port)
        self.ssl_context = ssl_context
        self.port = 0
        self.tls_port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(make_app(self.admin), access_log=None,
                                     handle_signals=False)
        await self._runner.setup()
        hosts = self.host if isinstance(self.host, list) else [self.host]
        port, tls_port = self.requested
        try:
            if port is not None:
                self.port = await self._sites(hosts, port, None)
            if tls_port is not None:
                self.tls_port = await self._sites(hosts, tls_port, self.ssl_context)
        except BaseException:
            await self.stop()
            raise
        log.info("metrics.listening", host=self.host, port=self.port or None,
                 tls_port=self.tls_port or None)

    async def _sites(self, hosts: list[Any], port: int, ctx: ssl.SSLContext | None) -> int:
        assert self._runner is not None
        chosen = port
        for host in hosts:
            site = web.TCPSite(self._runner, host, chosen, ssl_context=ctx,
                               reuse_address=True)
            await site.start()
            if not chosen:  # port 0: every host gets the port the first one was given
                chosen = self._runner.addresses[-1][1]
        return chosen

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
