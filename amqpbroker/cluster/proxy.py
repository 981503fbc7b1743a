"""A follower forwards client connections, byte for byte, to the current leader.

So a load balancer or a client's host list may point at any node: the follower listens on
every client port the node is configured with (AMQP, amqps, MQTT, Web-MQTT, the management
HTTP API: `client_listeners`) and pipes each TCP connection to the leader's listener of the
same kind. Byte for byte: TLS, WebSocket upgrades and HTTP keep-alive pass through
unchanged, and the leader answers as RabbitMQ's every node does. When leadership moves,
every forwarded connection is closed; clients reconnect (to any node) as after a broker
restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger("amqpbroker.cluster")
CHUNK = 1 << 16


def client_listeners(settings: Any) -> dict[str, tuple[Any, int]]:
    """kind -> (bind host(s), port) of the client listeners this node's settings open; the
    leader advertises each in etcd (`host:port`), followers forward each to it."""
    s = settings
    mgmt_host = s.host if s.management_host is None else s.management_host
    tls = s.tls is not None
    # TLS listeners are forwarded as bytes: the leader terminates TLS with its certificate.
    # The metrics listeners are not: each node reports its own figures (as RabbitMQ's).
    candidates = (("amqp", s.host, s.port, True),
                  ("amqps", s.host if s.tls_host is None else s.tls_host, s.tls_port, tls),
                  ("mqtt", s.host, s.mqtt_port, True),
                  ("mqtt_ws", s.host, s.mqtt_ws_port, True),
                  ("http", mgmt_host, s.management_port, True),
                  ("mqtts", s.host, s.mqtt_tls_port, tls),
                  ("mqtt_wss", s.host, s.mqtt_wss_port, tls),
                  ("https", mgmt_host, s.management_tls_port, tls))
    return {kind: (host, port) for kind, host, port, usable in candidates if usable and port}


class Forwarder:
    def __init__(self, kind: str = "amqp") -> None:
        self.kind = kind
        self.target: str | None = None  # "host:port" of the leader's listener of this kind
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: Any, port: int) -> int:
        self._server = await asyncio.start_server(self._client, host, port,
                                                  reuse_address=True, backlog=1024)
        return self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.target
        if target is None:  # no leader right now: refuse, the client retries
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), 5)
        except (OSError, asyncio.TimeoutError) as exc:
            log.info("cluster.forward_failed", kind=self.kind, leader=target, error=repr(exc))
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    def close_all(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def stop(self) -> None:
        self.close_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
