"""A follower forwards client connections (AMQP, byte for byte) to the current leader.

So a load balancer or a client's host list may point at any node: the follower accepts the
TCP connection and pipes it to the leader's listener. When leadership moves, every
forwarded connection is closed; clients reconnect (to any node) as after a broker restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger("amqpbroker.cluster")
CHUNK = 1 << 16


class Forwarder:
    def __init__(self) -> None:
        self.target: str | None = None  # "host:port" of the leader's AMQP listener
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
            log.info("cluster.forward_failed", leader=target, error=repr(exc))
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
